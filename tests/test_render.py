"""Tests for llmlite.render: streaming Markdown of chat replies (no model needed)."""
import io
import random
import re
import time

import pytest
from rich.console import Console
from rich.markdown import Markdown

from llmlite.render import MarkdownStream, markdown_ok, stream_pieces

REPLY = (
    "# Shopping plan\n\n"
    "Buy **fresh bread** today.\n\n"
    "- apples\n- pears\n\n"
    "```python\nprint('hi')  # fenced\n\nx = 1\n```\n\n"
    "Done.\n"
)
# blocks that only look finished at a blank line: loose lists, list continuations, numbered items
TRICKY = (
    "Intro text\nwith a soft break.\n\n"
    "1. first\n\n2. second\n\n   more about second\n\n"
    "- a\n\n  ```\n  code in a list\n  ```\n- b\n"
    "## Next\nText right after the heading.\n"
    "```\nfence after text\n```\nTail line"
)
_TOKENS = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|[\r\n]|[^\x1b\r\n]+")


def chunks(text, seed=0):
    """Split text into pieces of 1 to 3 characters, like a token stream."""
    rnd, i, out = random.Random(seed), 0, []
    while i < len(text):
        n = rnd.randint(1, 3)
        out.append(text[i:i + n])
        i += n
    return out


def term(width=80, height=25, interactive=False):
    buf = io.StringIO()
    console = Console(file=buf, width=width, height=height, force_terminal=True,
                      force_interactive=interactive, color_system=None, highlight=False)
    return console, buf


def screen(out):
    """What `out` leaves on a simple terminal (\\r, \\n, erase line, cursor up; other escapes ignored)."""
    rows, y, x = [""], 0, 0
    for tok in _TOKENS.findall(out):
        if tok == "\n":
            y, x = y + 1, 0
            rows += [""] * (y + 1 - len(rows))
        elif tok == "\r":
            x = 0
        elif tok == "\x1b[2K":
            rows[y] = ""
        elif tok.startswith("\x1b[") and tok.endswith("A"):
            y = max(0, y - int(tok[2:-1] or 1))
        elif not tok.startswith("\x1b"):
            rows[y] = rows[y][:x].ljust(x) + tok + rows[y][x + len(tok):]
            x += len(tok)
    return "\n".join(r.rstrip() for r in rows).strip("\n")


def whole(text, width=80):
    """The reply rendered by Rich in one go: what the screen should show at the end."""
    console, buf = term(width)
    console.print(Markdown(text))
    return screen(buf.getvalue())


def check_rendered(shown):
    assert "Shopping plan" in shown and "# Shopping" not in shown
    assert "• apples" in shown and "• pears" in shown and "- apples" not in shown
    assert "fresh bread" in shown and "**" not in shown
    assert "print('hi')  # fenced" in shown and "```" not in shown


@pytest.mark.parametrize("text", [REPLY, TRICKY])
@pytest.mark.parametrize("live", [False, True])
def test_streamed_blocks_equal_whole_render(text, live):
    console, buf = term(interactive=live)
    md = MarkdownStream(console=console, live=live)
    for piece in chunks(text):
        md.feed(piece)
    md.close()
    assert md.text == text
    assert screen(buf.getvalue()) == whole(text)
    assert buf.getvalue().removesuffix("\x1b[?25h").endswith("\n")  # the cursor on a fresh line
    if text is REPLY:
        check_rendered(screen(buf.getvalue()))


def test_settled_block_printed_once_before_the_end(monkeypatch):
    rendered = []
    import rich.markdown

    monkeypatch.setattr(rich.markdown, "Markdown", lambda text, **kw: rendered.append(text) or Markdown(text, **kw))
    console, buf = term()
    with MarkdownStream(console=console, live=False) as md:
        for piece in chunks("# Shopping plan\nBuy"):  # a heading line ends its block by itself
            md.feed(piece)
        assert "Shopping plan" in buf.getvalue() and "Buy" not in buf.getvalue()
        for piece in chunks(" **bread**.\n\n" + "".join(f"Paragraph {i}.\n\n" for i in range(30))):
            md.feed(piece)
    out = screen(buf.getvalue())
    assert out.count("Shopping plan") == 1 and out.count("Paragraph 7.") == 1 and "Buy bread." in out
    # each render got one block, not the reply so far: the cost stays O(size of the block)
    assert len(rendered) == 32 and max(len(t) for t in rendered) < 20


def test_live_tail_is_shown_before_close_and_long_code_is_windowed():
    console, buf = term(height=10, interactive=True)
    with MarkdownStream(console=console) as md:
        md.feed("Hello **wo")
        deadline = time.monotonic() + 3
        while "Hello" not in buf.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "Hello **wo" in screen(buf.getvalue())  # the unfinished tail, live
        md.feed("rld**\n\n```\n" + "".join(f"line {i}\n" for i in range(100)))
        assert md._view().text.count("\n") <= 12  # an open code block: only its last lines re-render
    out = screen(buf.getvalue())
    assert "Hello world" in out and "**" not in out
    assert all(f"line {i}" in out for i in range(100))
    assert buf.getvalue().endswith("\x1b[?25h")  # cursor shown again


def interrupted(pieces):
    yield from pieces
    raise KeyboardInterrupt


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_stream_pieces_markdown_interrupt(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("LLMLITE_PLAIN", raising=False)
    out = FakeTTY()
    with pytest.raises(KeyboardInterrupt):
        stream_pieces(interrupted(chunks("Some **bold** words\n\n- one\n- tw")), markdown=True, file=out)
    shown = screen(out.getvalue())
    assert "Some bold words" in shown and "• one" in shown and "• tw" in shown and "**" not in shown
    assert out.getvalue().endswith("\n\x1b[?25h")  # on a fresh line, cursor visible


def test_stream_pieces_markdown_not_a_terminal():
    out = io.StringIO()
    assert stream_pieces(iter(chunks(REPLY)), markdown=True, file=out) == REPLY
    check_rendered(out.getvalue())
    assert "\x1b" not in out.getvalue()


@pytest.mark.parametrize("pieces, shown", [
    (["Hel", "lo", ""], "Hello\n"),
    (["Hello", "\n"], "Hello\n"),
    (["a\n", "b", ""], "a\nb\n"),
    (["", ""], ""),
    ([], ""),
])
def test_stream_pieces_plain(pieces, shown):
    out = io.StringIO()
    assert stream_pieces(iter(pieces), markdown=False, file=out) == "".join(pieces)
    assert out.getvalue() == shown


def test_stream_pieces_plain_interrupt():
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        stream_pieces(interrupted(["**Hel", "lo"]), markdown=False, file=out)
    assert out.getvalue() == "**Hello\n"


def test_context_manager_lets_the_interrupt_through_unchanged():
    console, buf = term()
    stop = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as caught:
        with MarkdownStream(console=console, live=False) as md:
            md.feed("Partial **bold")
            raise stop
    assert caught.value is stop
    assert "Partial **bold" in buf.getvalue() and md.text == "Partial **bold"
    md.close()  # a second close does nothing
    assert screen(buf.getvalue()).count("Partial") == 1


def test_markdown_ok(monkeypatch):
    for name in ("NO_COLOR", "LLMLITE_PLAIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert markdown_ok(FakeTTY())
    assert not markdown_ok(io.StringIO())
    assert not markdown_ok(object())  # no isatty at all
    monkeypatch.setenv("NO_COLOR", "1")
    assert not markdown_ok(FakeTTY())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("LLMLITE_PLAIN", "1")
    assert not markdown_ok(FakeTTY())
    monkeypatch.setenv("LLMLITE_PLAIN", "0")
    assert markdown_ok(FakeTTY())
    for term_value in ("dumb", ""):
        monkeypatch.setenv("TERM", term_value)
        assert not markdown_ok(FakeTTY())
    monkeypatch.delenv("TERM")
    assert not markdown_ok(FakeTTY())
