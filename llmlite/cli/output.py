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


def print_calls(calls) -> None:
    """a reply's tool calls, one JSON object a line on stdout: {"name", "arguments"}"""
    import json

    for c in calls:
        print(json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False), flush=True)


def utf8_stdout() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


def stream(parts, plain: bool = True, reasoning: bool = True) -> None:
    """Write a reply's (kind, text) parts as they come: the answer to stdout, rendered as
    Markdown on a terminal that takes it unless `plain`, ended with a newline; the
    reasoning (unless not `reasoning`) to stderr, dim on a terminal, so that stdout
    holds the answer alone (`run -p ... > file`) while the terminal shows both."""
    from llmlite.render import markdown_ok, stream_pieces

    stream_pieces(answer_pieces(parts, reasoning), markdown=not plain and markdown_ok())


def answer_pieces(parts, show_reasoning: bool):
    """The answer's pieces of a stream of (kind, text) parts; the reasoning's are written
    to stderr as they pass (or dropped), a newline ending the reasoning before an answer."""
    from llmlite.reasoning import ANSWER

    open_line = False                  # reasoning written without a newline after it yet
    try:
        for kind, text in parts:
            if kind == ANSWER:
                if open_line:
                    print(file=sys.stderr, flush=True)
                    open_line = False
                yield text
            elif show_reasoning:
                print(stderr_style(text), end="", file=sys.stderr, flush=True)
                open_line = not text.endswith("\n")
    finally:                           # an interrupted reasoning too: the next line starts clean
        if open_line:
            print(file=sys.stderr, flush=True)


def note(msg: str) -> None:
    print(stderr_style(msg), file=sys.stderr, flush=True)
