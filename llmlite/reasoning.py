"""Reasoning and answer: the split of a streamed reply from a model that thinks first.

Two formats are known, as llama.cpp's common/chat.cpp parses them:

* ``think`` (Qwen3, DeepSeek-R1 and others, Hermes style): the reply opens with
  ``<think>``, the reasoning runs to ``</think>``, the answer follows. A template may
  print ``<think>`` itself at the end of the generation prompt: then the model's
  output starts inside the block (the splitter is told so). Only a block at the
  start of the reply is reasoning: a ``<think>`` later in an answer is answer text.
* ``harmony`` (gpt-oss): the reply is a run of messages, each a header
  (``<|start|>assistant``, ``<|channel|>NAME``, options) then ``<|message|>`` and
  the text up to ``<|end|>``, ``<|return|>``, ``<|call|>`` or the next header. The
  ``analysis`` channel is reasoning, the others (``final``, ``commentary``) answer.
  ``<|end|>`` is a control token the decoder does not print: a message usually ends
  where the next ``<|start|>`` begins.

A model whose vocabulary has neither format's tokens gets no splitter: everything is
answer. A splitter is fed the decoded pieces as they stream; a marker may be cut
across pieces, so only text that could still begin a marker is held back, and each
piece costs work in proportion to its own length (the reply is never scanned again).
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator, Optional

from llmlite.generate import find_stop as _first_at, stop_prefix_len as _held_len

__all__ = ["REASONING", "ANSWER", "HISTORY_KEY", "reasoning_format", "splitter_for", "split"]

REASONING, ANSWER = "reasoning", "answer"

# the assistant message's field for the reasoning, named as each format's templates
# read it (Qwen3: message.reasoning_content; gpt-oss: message.thinking)
HISTORY_KEY = {"think": "reasoning_content", "harmony": "thinking"}

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_HEADER_OPENERS = ("<|start|>", "<|channel|>")
_MESSAGE = "<|message|>"
_MESSAGE_ENDS = ("<|end|>", "<|return|>", "<|call|>") + _HEADER_OPENERS
_CHANNEL = re.compile(r"<\|channel\|>\s*([A-Za-z_]+)")
_MAX_HEADER = 256      # a "header" longer than this is not one: it is shown as answer text


def reasoning_format(tokenizer, template_source: Optional[str]) -> Optional[str]:
    """"harmony", "think" or None for a model: from the special tokens its vocabulary
    holds (harmony's also in its chat template, as gpt-oss's is)."""
    def has(*texts):
        return all(tokenizer.token_to_id(t) is not None for t in texts)

    if has("<|channel|>", _MESSAGE, "<|start|>") and "<|channel|>" in (template_source or ""):
        return "harmony"
    if has(_THINK_OPEN, _THINK_CLOSE):
        return "think"
    return None


def _opens_think(prompt: str) -> bool:
    """Whether a rendered prompt ends inside an open think block (the template opened it)."""
    return prompt.rstrip().endswith(_THINK_OPEN)


class _Splitter:
    """The shared half: text held back, the current kind, and the cut of leading
    whitespace at the start of each part (the newlines around the markers)."""

    def __init__(self, kind: Optional[str]):
        self._buf = ""
        self._kind = kind          # None: not yet known (the reply's start)
        self._lstrip = True

    def _emit(self, out: list, kind: str, text: str) -> None:
        if self._lstrip:
            text = text.lstrip()
            if not text:
                return
            self._lstrip = False
        out.append((kind, text))

    def _switch(self, kind: Optional[str]) -> None:
        self._kind, self._lstrip = kind, True

    def feed(self, piece: str) -> list:
        """The (kind, text) parts a new piece settles (text that may begin a marker waits)."""
        self._buf += piece
        out: list = []
        while self._buf and self._step(out):
            pass
        return out

    def flush(self) -> list:
        """The end of the reply: whatever is held, as the current kind (answer if unknown)."""
        out: list = []
        if self._buf:
            self._emit(out, self._kind or ANSWER, self._buf)
            self._buf = ""
        return out

    def _step(self, out: list) -> bool:      # one state's work; True: call again
        raise NotImplementedError


class ThinkSplitter(_Splitter):
    """``<think>reasoning</think>answer``; ``inside``: the prompt opened the block."""

    def __init__(self, inside: bool = False):
        super().__init__(REASONING if inside else None)

    def _step(self, out: list) -> bool:
        buf = self._buf
        if self._kind is None:                    # the start: a think block or not
            s = buf.lstrip()
            if not s or _THINK_OPEN.startswith(s):
                return False                      # wait: it may still be "<think>"
            if s.startswith(_THINK_OPEN):
                self._buf = s[len(_THINK_OPEN):]
                self._switch(REASONING)
            else:
                self._switch(ANSWER)
            return True
        if self._kind == ANSWER:                  # no markers after the block
            self._emit(out, ANSWER, buf)
            self._buf = ""
            return False
        i = buf.find(_THINK_CLOSE)
        if i >= 0:
            self._emit(out, REASONING, buf[:i])
            self._buf = buf[i + len(_THINK_CLOSE):]
            self._switch(ANSWER)
            return True
        keep = _held_len(buf, (_THINK_CLOSE,))
        if len(buf) > keep:
            self._emit(out, REASONING, buf[:len(buf) - keep])
            self._buf = buf[len(buf) - keep:]
        return False


class HarmonySplitter(_Splitter):
    """gpt-oss's messages: headers dropped, the analysis channel reasoning, the rest answer."""

    def __init__(self):
        super().__init__(None)
        self._header = False               # inside a header (up to <|message|>)

    def flush(self) -> list:
        if self._header:                   # a reply cut inside a header: no text of a message
            self._buf = ""
        return super().flush()

    def _step(self, out: list) -> bool:
        buf = self._buf
        if self._header:
            i = buf.find(_MESSAGE)
            if i < 0:
                if len(buf) <= _MAX_HEADER:
                    return False           # wait for the rest of the header
                self._header = False       # not a header after all: show it
                self._switch(ANSWER)
                self._emit(out, ANSWER, buf)
                self._buf = ""
                return False
            m = _CHANNEL.search(buf, 0, i)
            self._buf = buf[i + len(_MESSAGE):]
            self._header = False
            self._switch(REASONING if m and m.group(1) == "analysis" else ANSWER)
            return True
        if self._kind is None:                     # between messages: a header or plain text
            s = buf.lstrip()
            if not s or any(h.startswith(s) for h in _HEADER_OPENERS):
                return False
            if s.startswith(_HEADER_OPENERS):
                self._buf, self._header = s, True
            else:
                self._switch(ANSWER)
            return True
        i = _first_at(buf, _MESSAGE_ENDS)
        if i >= 0:
            self._emit(out, self._kind, buf[:i])
            end = next(e for e in _MESSAGE_ENDS if buf.startswith(e, i))
            # a header opener stays: it begins the next message's header
            self._buf = buf[i:] if end in _HEADER_OPENERS else buf[i + len(end):]
            self._switch(None)
            return True
        keep = _held_len(buf, _MESSAGE_ENDS)
        if len(buf) > keep:
            self._emit(out, self._kind, buf[:len(buf) - keep])
            self._buf = buf[len(buf) - keep:]
        return False


def splitter_for(fmt: Optional[str], prompt: str = ""):
    """The splitter for a format and the rendered prompt; None: no format."""
    if fmt == "think":
        return ThinkSplitter(inside=_opens_think(prompt))
    if fmt == "harmony":
        return HarmonySplitter()
    return None


def split(pieces: Iterable[str], splitter) -> Iterator[tuple]:
    """(kind, text) for each settled part of a stream of pieces (all answer without a splitter)."""
    if splitter is None:
        for piece in pieces:
            if piece:
                yield ANSWER, piece
        return
    for piece in pieces:
        yield from splitter.feed(piece)
    yield from splitter.flush()
