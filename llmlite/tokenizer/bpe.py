"""BPE, and the Python side of the merge loops in C (csrc/bpe.c).

BPE (tokenizer.ggml.model = gpt2): each raw fragment is decoded to code points
leniently (_decode_lenient), each word of the pre-tokenizer's split is
byte-encoded (GPT-2's bytes_to_unicode) and merged by rank, the lowest rank
first and on a tie the leftmost pair. That loop is C: merge_symbols in
csrc/bpe.c (bpe_word per word; spm_frag runs it for SPM by score), reached
through CVocab.run. Words repeat, so each word's ids are cached.
"""
from __future__ import annotations

import re
from itertools import chain
from typing import Any

import numpy as np

from llmlite.errors import TokenizerError
from llmlite.tokenizer.vocab import _strings, _utf8


def _decode_lenient(b: bytes) -> str:
    """UTF-8 -> code points as llama.cpp decodes them (a BPE fragment before the
    split, a BPE token's text before its characters turn back into bytes): a
    well-formed lead byte with its continuation bytes gives the code point (no
    overlong or surrogate check); anything else gives U+FFFD and consumes one byte."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            out.append(chr(c))
            i += 1
            continue
        if c & 0x40 == 0:
            need, cp = 0, -1
        elif c & 0x20 == 0:
            need, cp = 1, c & 0x1F
        elif c & 0x10 == 0:
            need, cp = 2, c & 0x0F
        elif c & 0x08 == 0:
            need, cp = 3, c & 0x07
        else:
            need, cp = 0, -1
        if cp >= 0 and i + need < n and all(b[i + k] & 0xC0 == 0x80 for k in range(1, need + 1)):
            for k in range(1, need + 1):
                cp = (cp << 6) | (b[i + k] & 0x3F)
            if cp > 0x10FFFF:
                raise ValueError(f"invalid UTF-8 in the text: code point U+{cp:X} at byte {i} is above U+10FFFF")
            out.append(chr(cp))
            i += need + 1
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


class CVocab:
    """The token table in C (csrc/bpe.c): text -> id lookup, BPE merge ranks, and
    the merge loops over batches of words."""

    def __init__(self, buf: bytes, offs: np.ndarray, lens: np.ndarray, scores: np.ndarray):
        # imported here, not at the top: loading the C extension is kept out of
        # `import llmlite.tokenizer`, which the CLI does on every start
        from llmlite._lib import ffi, lib
        self.ffi, self.lib = ffi, lib
        h = lib.llm_tok_new(int(offs.size), ffi.from_buffer("unsigned char[]", buf or b"\0"),
                            ffi.cast("const long long *", offs.ctypes.data),
                            ffi.cast("const long long *", lens.ctypes.data),
                            ffi.cast("const float *", scores.ctypes.data))
        if h == ffi.NULL:
            raise TokenizerError("could not build the vocabulary (out of memory or bad token table)")
        self.h = ffi.gc(h, lib.llm_tok_free)

    def set_merges(self, merges: Any) -> None:
        """BPE's merges, "left right" in rank order (tokenizer.ggml.merges)."""
        ffi = self.ffi
        mbuf, moffs, mlens = _strings(merges)
        rc = self.lib.llm_tok_set_merges(self.h, int(moffs.size), ffi.from_buffer("unsigned char[]", mbuf or b"\0"),
                                         ffi.cast("const long long *", moffs.ctypes.data),
                                         ffi.cast("const long long *", mlens.ctypes.data))
        if rc != 0:
            raise TokenizerError("could not build the merge table (out of memory or bad merges)")

    def find(self, text: bytes) -> int:
        """The id of the token whose text is exactly text, or -1."""
        return self.lib.llm_tok_find(self.h, text, len(text))

    def run(self, fn: str, items: list[bytes], per_byte: int,
            ignore_merges: bool = False) -> tuple[list[int], list[int]]:
        """Run a C batch (llm_tok_bpe / llm_tok_spm) over items -> (all ids, count per item)."""
        ffi, lib = self.ffi, self.lib
        lens = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        offs = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lens, out=offs[1:])
        buf = b"".join(items)
        cap = max(1, per_byte * len(buf))
        out = np.empty(cap, dtype=np.int32)
        counts = np.empty(max(1, len(items)), dtype=np.int64)
        args = (self.h, ffi.from_buffer("unsigned char[]", buf or b"\0"),
                ffi.cast("const long long *", offs.ctypes.data), len(items))
        tail = (ffi.cast("int *", out.ctypes.data), cap, ffi.cast("long long *", counts.ctypes.data))
        if fn == "bpe":
            rc = lib.llm_tok_bpe(*args, int(ignore_merges), *tail)
        elif fn == "bpe_raw":
            rc = lib.llm_tok_bpe_raw(*args, *tail)
        else:
            rc = lib.llm_tok_spm(*args, *tail)
        if rc == -3:
            raise TokenizerError("the text has a byte with no token (the vocabulary lacks <0xXX> byte tokens)")
        if rc < 0:
            raise MemoryError("tokenizer: out of memory") if rc == -2 else TokenizerError("tokenizer: internal error")
        return out[:rc].tolist(), counts[:len(items)].tolist()


class WordCache(dict):
    """Word -> its ids, for the words (BPE) or SPM words merged so far."""

    MAX = 1 << 20   # words; past it the cache starts over, so that endless text cannot grow it without bound

    def store(self, words: list[Any], ids: list[int], counts: list[int]) -> int:
        """Cache each word's ids (ids holds them in order, counts[i] of them for
        words[i]); returns where the ids after them start."""
        if len(self) + len(words) > self.MAX:
            self.clear()
        pos = 0
        for w, c in zip(words, counts):
            self[w] = tuple(ids[pos:pos + c])
            pos += c
        return pos


def encode_bpe(words: list[str], cache: WordCache, cv: CVocab, ignore_merges: bool, out: list[int]) -> None:
    """Append the ids of the pre-tokenizer's words to out."""
    missing = list(set(words).difference(cache))
    if missing:
        ids, counts = cv.run("bpe", [_utf8(w) for w in missing], 2, ignore_merges)
        cache.store(missing, ids, counts)
    out.extend(chain.from_iterable(map(cache.__getitem__, words)))


# Gemma 4's split (llama.cpp's PRE_TYPE_GEMMA4 regex "[^\n]+|[\n]+"): runs of newlines,
# runs of anything else
_RAW_WORDS = re.compile(rb"[^\n]+|\n+")
_SPACE_ESC = "\u2581".encode()  # U+2581, SentencePiece's escaped space (spm.py's too)


def encode_bpe_raw(frag: bytes, cache: WordCache, cv: CVocab, out: list[int]) -> None:
    """Append the ids of a raw fragment under Gemma 4's BPE (tokenizer.ggml.model gemma4):
    its invalid UTF-8 as U+FFFD (llama.cpp's split decodes and re-encodes the text),
    spaces escaped to U+2581, then each run: a run of newlines that is a token whole,
    any other merged by rank over its raw UTF-8 characters (csrc/bpe.c bpe_raw_word)."""
    text = _utf8(_decode_lenient(frag)).replace(b" ", _SPACE_ESC)
    words = _RAW_WORDS.findall(text)
    missing = list(set(words).difference(cache))
    merged = []
    for w in missing:
        tid = cv.find(w) if w[:1] == b"\n" else -1
        if tid >= 0:
            cache[w] = (tid,)
        else:
            merged.append(w)
    if merged:
        ids, counts = cv.run("bpe_raw", merged, 1)
        cache.store(merged, ids, counts)
    out.extend(chain.from_iterable(map(cache.__getitem__, words)))
