"""What the commands print: sizes, counts, dim notes on stderr, the reply stream, stats."""
from __future__ import annotations

import sys


def fmt_bytes(n: int) -> str:
    for unit, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= f:
            return f"{n / f:.2f} {unit}"
    return f"{n} B"


def fmt_params(n: int) -> str:
    for unit, f in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= f:
            return f"{n / f:.1f}{unit}"
    return str(n)


def stderr_style(text: str, code: str = "2") -> str:
    import os

    if sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
        return f"\x1b[{code}m{text}\x1b[0m"
    return text


def stats_line(st, lookup: bool) -> str:
    s = f"prompt {st.prompt_tokens} tokens"
    if st.cached_tokens:
        s += f" ({st.cached_tokens} cached)"
    s += f", {st.prefill_tps:.1f} t/s | generated {st.generated} tokens, {st.decode_tps:.1f} t/s"
    s += f" | stop: {st.stop_reason or 'interrupted'}"
    if lookup:
        rate = f" ({100.0 * st.accepted / st.drafted:.0f}%)" if st.drafted else ""
        s += f" | lookup: {st.drafted} drafted, {st.accepted} accepted{rate}"
    return s


def print_stats(st, lookup: bool) -> None:
    print(stderr_style(stats_line(st, lookup)), file=sys.stderr, flush=True)


def utf8_stdout() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


def stream(pieces, plain: bool = True) -> None:
    """Write the reply's pieces to stdout as they come, rendered as Markdown on a
    terminal that takes it unless `plain`; end the output with a newline."""
    from llmlite.render import markdown_ok, stream_pieces

    stream_pieces(pieces, markdown=not plain and markdown_ok())


def note(msg: str) -> None:
    print(stderr_style(msg), file=sys.stderr, flush=True)
