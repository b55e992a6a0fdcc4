"""Detokenization, as llama.cpp's token_to_piece and llama_detokenize: each
token's piece (a control token renders only with special on, a BPE token's
characters turn back into bytes, an SPM token's U+2581 into spaces, a <0xXX>
token into its byte), the leading space the vocabulary's space prefix put there
dropped, and BPE's clean-up of spaces before punctuation; and StreamDecoder,
the same one chunk of ids at a time."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

import numpy as np

from llmlite.tokenizer.bpe import _decode_lenient
from llmlite.tokenizer.spm import _SPACE_ESC
from llmlite.tokenizer.vocab import ATTR_BYTE, ATTR_CONTROL, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_USER_DEFINED, _utf8

if TYPE_CHECKING:
    from llmlite.tokenizer.tokenizer import Tokenizer


# GPT-2 bytes_to_unicode: byte -> char, and its inverse
def _gpt2_maps() -> tuple[list[str], dict[int, int]]:
    fwd: list[str] = []
    nxt = 256
    for b in range(256):
        if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE:
            fwd.append(chr(b))
        else:
            fwd.append(chr(nxt))
            nxt += 1
    return fwd, {ord(ch): b for b, ch in enumerate(fwd)}


_GPT2_FWD, _GPT2_INV = _gpt2_maps()


def _gpt2_decode(text: bytes) -> bytes:
    """A BPE token's text -> the bytes it stands for (unmapped code points are spelled out)."""
    out = bytearray()
    for ch in _decode_lenient(text):
        b = _GPT2_INV.get(ord(ch))
        if b is not None:
            out.append(b)
        else:
            out += b"[UNK_BYTE_0x" + _utf8(ch).hex().encode() + text + b"]"
    return bytes(out)


def _clean_spaces(b: bytes) -> bytes:
    """llama.cpp's clean_spaces passes over detokenized bytes."""
    b = re.sub(rb" (?=[?!.,])", b"", b)
    b = b.replace(b" ' ", b"'")
    return re.sub(rb" '(?=s|m|re|ve)", b"'", b)


def _strtol_hex2(s: bytes) -> int:
    """strtol(s, NULL, 16) on (at most) two bytes, as a char."""
    m = re.match(rb"\s*([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]*)", s)
    v = int(m.group(2), 16) if m and m.group(2) else 0
    if m and m.group(1) == b"-":
        v = -v
    return v & 0xFF


def make_piece(text: bytes, a: int, special: bool, escape_whitespaces: bool) -> bytes:
    """The bytes a token with text and attributes a renders to (token_to_piece, lstrip 0)."""
    if not special and a & (ATTR_UNKNOWN | ATTR_CONTROL):
        return b""
    if a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED):
        return text
    if a & ATTR_NORMAL:
        if escape_whitespaces:
            return text.replace(_SPACE_ESC, b" ")
        return _gpt2_decode(text)
    if a & ATTR_BYTE:
        return bytes([_strtol_hex2(text[3:5])])
    return b""


def detokenize(tok: Tokenizer, ids: Iterable[int], special: bool, remove_special: bool) -> bytes:
    """Tokenizer.decode: llama_detokenize(ids, remove_special, unparse_special=special)."""
    ids = [int(i) for i in ids]
    remove_space = tok.add_space_prefix
    if remove_special and tok.add_bos and ids and ids[0] == tok.bos_id:
        remove_space = False
        ids = ids[1:]
    if remove_special and tok.add_eos and ids and ids[-1] == tok.eos_id:
        ids = ids[:-1]
    parts = [tok.piece(i, special) for i in ids]
    if remove_space and parts and parts[0][:1] == b" ":
        parts[0] = parts[0][1:]
    out = b"".join(parts)
    return _clean_spaces(out) if tok.clean_spaces else out


def _complete_len(b: bytes) -> int:
    """Length of the longest prefix of b that does not end inside a UTF-8 sequence
    that later bytes could still complete."""
    n = len(b)
    j = n - 1
    while j >= 0 and j >= n - 3 and b[j] & 0xC0 == 0x80:
        j -= 1
    if j < 0:
        return n
    c = b[j]
    need = 2 if c & 0xE0 == 0xC0 else 3 if c & 0xF0 == 0xE0 else 4 if c & 0xF8 == 0xF0 else 1
    return j if n - j < need else n


class StreamDecoder:
    """Incremental detokenizer: ``feed(ids)`` returns the text completed so far as a
    str that never ends inside a UTF-8 sequence; ``flush()`` returns the rest.
    The chunks join to ``tok.decode(all_ids, special).decode("utf-8", "replace")``.

    start: the ids begin the text, so the first token loses its leading space
    when the vocabulary adds a space prefix (llama_detokenize's rule). Pass
    False for ids that continue a text, e.g. tokens generated after a prompt."""

    def __init__(self, tok: Tokenizer, special: bool = False, start: bool = True):
        self.tok = tok
        self.special = special
        self._first = start
        self._raw = b""   # bytes not yet through clean_spaces
        self._buf = b""   # final bytes not yet emitted

    def feed(self, ids: int | Iterable[int]) -> str:
        tok = self.tok
        if isinstance(ids, (int, np.integer)):
            ids = (int(ids),)
        for tid in ids:
            p = tok.piece(int(tid), self.special)
            if self._first:
                self._first = False
                if tok.add_space_prefix and p[:1] == b" ":
                    p = p[1:]
            if tok.clean_spaces:
                self._raw += p
            else:
                self._buf += p
        if tok.clean_spaces and self._raw:
            # cut where the 3 bytes before carry no space: no clean-up pattern spans the cut
            raw = self._raw
            cut = len(raw)
            while cut > 0 and b" " in raw[max(0, cut - 3):cut]:
                cut -= 1
            if cut:
                self._buf += _clean_spaces(raw[:cut])
                self._raw = raw[cut:]
        k = _complete_len(self._buf)
        s = self._buf[:k].decode("utf-8", "replace")
        self._buf = self._buf[k:]
        return s

    def flush(self) -> str:
        if self._raw:
            self._buf += _clean_spaces(self._raw)
            self._raw = b""
        s = self._buf.decode("utf-8", "replace")
        self._buf = b""
        return s
