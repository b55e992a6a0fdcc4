"""SPM (tokenizer.ggml.model = llama): spaces escaped as U+2581, then one
score-driven bigram merge per raw fragment (the highest-scoring pair that is a
token first, on a tie the leftmost), with byte fallback through <0xXX> tokens
for a symbol that is no token. The merge loop is C (spm_frag in csrc/bpe.c,
through CVocab.run); here the fragments are cut into words that merge alike,
so that words can be cached as BPE's are."""
from __future__ import annotations

import re
from itertools import chain
from typing import Any

import numpy as np

from llmlite.tokenizer.bpe import _SPACE_ESC, CVocab, WordCache


# SPM words: a run of escaped spaces and what follows up to the next one (a pattern
# text, left to re's cache to compile on first use: a BPE model never needs it)
_SPM_WORDS = rb"(?:\xe2\x96\x81)*(?:[^\xe2]|\xe2(?!\x96\x81))+|(?:\xe2\x96\x81)+"


def _aligned(b: bytes) -> bool:
    """True if every lead byte of b starts a whole UTF-8 sequence (surrogates allowed),
    so that SPM's lead-byte symbols are its characters."""
    try:
        b.decode("utf-8", "surrogatepass")
        return True
    except UnicodeDecodeError:
        return False


def find_bridges(buf: bytes, offs: np.ndarray, ends: np.ndarray) -> list[bytes] | None:
    """Texts of the tokens (token i is buf[offs[i]:ends[i]]) that hold an escaped
    space right after something else.

    SPM runs one merge over a whole fragment, but no merged symbol can cross
    a point where U+2581 follows another character unless one of these
    tokens occurs there. So a fragment that holds none of them is the
    concatenation of its words (a run of U+2581 and what follows up to the
    next one), each merged on its own: the same ids, and the words can be
    cached. None: too many such tokens to bother."""
    b = np.frombuffer(buf, dtype=np.uint8)
    if b.size < 3:
        return []
    occ = np.flatnonzero((b[:-2] == 0xE2) & (b[1:-1] == 0x96) & (b[2:] == 0x81))
    tid = np.searchsorted(offs, occ, side="right") - 1
    start, end = offs[tid], ends[tid]
    inside = (occ > start) & (occ + 3 <= end)
    j = np.minimum(np.searchsorted(occ, occ - 3), occ.size - 1)
    after_space = (occ[j] == occ - 3) & (occ - 3 >= start)
    ids = np.unique(tid[inside & ~after_space])
    if ids.size > 64:
        return None
    return [buf[int(offs[i]):int(ends[i])] for i in ids]


def encode_spm(frags: list[bytes | int], out: list[int], cache: WordCache, cv: CVocab,
               bridges: list[bytes] | None, add_space_prefix: bool) -> None:
    """Append the ids of the partition's fragments (raw bytes, or a special token's id) to out.
    add_space_prefix: a space goes before each fragment that starts the text or follows a special token."""
    plan: list[Any] = []      # token id | list of cached words | a whole fragment (bytes)
    whole: list[bytes] = []
    prev_token = True
    for f in frags:
        if isinstance(f, int):
            plan.append(f)
            prev_token = True
            continue
        if add_space_prefix and prev_token:
            f = b" " + f
        prev_token = False
        x = f.replace(b" ", _SPACE_ESC)
        if bridges is not None and not any(t in x for t in bridges) and _aligned(x):
            plan.append(re.findall(_SPM_WORDS, x))
        else:
            plan.append(x)
            whole.append(x)
    words = [w for p in plan if isinstance(p, list) for w in p]
    missing = list(set(words).difference(cache))
    if missing or whole:
        ids, counts = cv.run("spm", missing + whole, 1)
        pos = cache.store(missing, ids, counts)
        whole_ids = []
        for c in counts[len(missing):]:
            whole_ids.append(ids[pos:pos + c])
            pos += c
    k = 0
    get = cache.__getitem__
    for p in plan:
        if isinstance(p, int):
            out.append(p)
        elif isinstance(p, list):
            out.extend(chain.from_iterable(map(get, p)))
        else:
            out.extend(whole_ids[k])
            k += 1
