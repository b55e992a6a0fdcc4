"""Streaming Markdown rendering of chat replies in the terminal.

A reply arrives as small pieces.  MarkdownStream splits its text into settled
blocks (a paragraph, list or heading ended by a blank line, a fenced code block
ended by its closing fence) and the unfinished tail.  A settled block is printed
once, rendered by Rich, and never touched again; the tail is shown in a Rich
Live region that a background thread re-renders about 12 times a second, so a
refresh costs O(size of the current block), not O(size of the reply).
stream_pieces() renders this way or writes the pieces raw.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys

from typing import TYPE_CHECKING

from llmlite import settings

if TYPE_CHECKING:                    # rich is imported on first use: plain output never loads it
    from rich.console import Console
    from rich.live import Live

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r" {0,3}#{1,6}(\s|$)")
_ITEM = re.compile(r" {0,3}([-*+]|\d{1,9}[.)])(\s|$)")
_NEXT = re.compile(r"(?:[ \t]*\n)*([ \t]*)(\S)")  # the next non-blank line: indent, first char


def markdown_ok(stream=None) -> bool:
    """True when `stream` (default sys.stdout) is a terminal that should get rendered Markdown."""
    env = os.environ
    if settings.env_flag("LLMLITE_PLAIN", False) or env.get("NO_COLOR"):
        return False
    if env.get("TERM", "") in ("", "dumb"):
        return False
    try:
        return bool((sys.stdout if stream is None else stream).isatty())
    except (AttributeError, ValueError):  # no isatty(), or a closed file
        return False


class _Block:
    """Markdown text rendered without Rich's leading blank lines; `sep` puts one blank line first.
    `live` (the tail while it streams) keeps the lines that fit on the screen and adds an empty
    last line, so the cursor waits at column 0: an echoed ^C cannot wrap and shift the region."""

    def __init__(self, text: str, sep: bool, live: bool = False):
        self.text, self.sep, self.live = text, sep, live

    def __rich_console__(self, console, options):
        from rich.markdown import Markdown
        from rich.segment import Segment

        lines = console.render_lines(Markdown(self.text), options, pad=False)
        while lines and all(not s.text.strip() and not (s.style and s.style.bgcolor) for s in lines[0]):
            del lines[0]
        if self.sep and lines:
            lines.insert(0, [])
        if self.live and lines:
            lines = lines[-max(1, options.size.height - 2):] + [[]]
        for line in lines:
            yield from line
            yield Segment.line()


class MarkdownStream:
    """Show a reply rendered as Markdown while it streams: feed(piece)..., then close(); or `with`.

    `live=False` prints only settled blocks until close() prints the rest (the default is a live
    tail when the console is an interactive terminal).  `.text` is the raw text fed so far."""

    def __init__(self, file=None, *, console: Console | None = None, live: bool | None = None):
        if console is None:
            from rich.console import Console

            file = sys.stdout if file is None else file
            console = Console(file=file, force_terminal=True if markdown_ok(file) else None, highlight=False)
        self.console = console
        self._want_live = console.is_interactive if live is None else live
        self._live: Live | None = None
        self._lock = contextlib.nullcontext()  # the Live's lock once it runs: its thread renders _view
        self._parts: list[str] = []
        self._tail = ""             # raw text not yet settled: the current block
        self._pos = 0               # start of the first line of the tail not yet scanned
        self._cut: int | None = None  # a possible end of the current block
        self._fence: str | None = None  # the open code fence
        self._body = 0              # where the open fence's code starts in the tail
        self._is_list: bool | None = None  # does the block start with a list item (None: empty so far)
        self._blocks = 0
        self._closed = False

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def feed(self, piece: str) -> None:
        if not piece or self._closed:
            return
        self._parts.append(piece)
        if self._want_live and self._live is None:
            from rich.live import Live

            self._live = Live(get_renderable=self._view, console=self.console, refresh_per_second=12,
                              vertical_overflow="visible", transient=False)
            self._lock = self._live._lock
            self._live.start()
        with self._lock:
            self._tail += piece
            self._settle()

    def close(self) -> None:
        """Show the whole tail rendered and leave the cursor on a fresh line (safe to call twice)."""
        if self._closed:
            return
        with self._lock:  # no refresh may draw the full tail before stop() takes over
            self._closed = True
            if self._live is not None:
                self._live.stop()  # renders the tail in full, moves to a new line, shows the cursor
            elif self._tail.strip():
                self.console.print(_Block(self._tail, self._blocks > 0))

    def __enter__(self) -> "MarkdownStream":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise  # else the original exception (e.g. KeyboardInterrupt) goes on unchanged
        return False

    def _view(self) -> _Block:
        text = self._tail
        if self._fence and not self._closed:  # a long open code block: show only its last lines
            i = len(text)
            for _ in range(self.console.height):
                i = text.rfind("\n", self._body, i)
                if i < 0:
                    break
            if i > self._body:
                text = text[:self._body] + text[i + 1:]
        return _Block(text, self._blocks > 0, live=not self._closed)

    def _settle(self) -> None:
        """Scan the new complete lines of the tail; print each block that is complete."""
        while True:
            if self._cut is not None:  # a block may end here: decide on the next line's first char
                m = _NEXT.match(self._tail, self._cut)
                if m is None:
                    return
                if m.group(1) or (self._is_list and m.group(2) in "-*+0123456789"):
                    self._cut, self._pos = None, m.start(1)  # continuation: same block
                else:
                    self.console.print(_Block(self._tail[:self._cut], self._blocks > 0))
                    self._blocks += 1
                    self._tail = self._tail[m.start(1):]
                    self._pos, self._cut, self._is_list = 0, None, None
                continue
            end = self._tail.find("\n", self._pos)
            if end < 0:
                return
            line, self._pos = self._tail[self._pos:end], end + 1
            stripped = line.strip()
            if self._fence:
                if len(stripped) >= len(self._fence) and stripped == self._fence[0] * len(stripped):
                    self._fence, self._cut = None, self._pos
            elif not stripped:
                if self._is_list is not None:
                    self._cut = self._pos
            else:
                if self._is_list is None:
                    self._is_list = bool(_ITEM.match(line))
                m = _FENCE.match(line)
                if m:
                    self._fence, self._body = m.group(1), self._pos
                elif _HEADING.match(line):
                    self._cut = self._pos


def stream_pieces(pieces, markdown: bool, file=None) -> str:
    """Show `pieces` on `file` (default sys.stdout), as Markdown or raw; return the raw text.
    On KeyboardInterrupt the display is finished and the exception re-raised."""
    file = sys.stdout if file is None else file
    if markdown:
        with MarkdownStream(file) as md:
            for piece in pieces:
                md.feed(piece)
        return md.text
    parts: list[str] = []
    try:
        for piece in pieces:
            if piece:
                file.write(piece)
                file.flush()
                parts.append(piece)
    finally:
        if parts and not parts[-1].endswith("\n"):
            file.write("\n")
        file.flush()
    return "".join(parts)
