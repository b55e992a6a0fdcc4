"""The vocabulary: token texts in one buffer, GGUF token types as llama.cpp's
attribute bits, the scores SPM merges by; and the special tokens: their roles
(bos, eos, eot, ...) and ids, end-of-generation, the attribute fix-ups
llama.cpp's loader makes, and the split of text on special-token texts before
the merges run."""
from __future__ import annotations

import bisect
import re
from itertools import chain
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from llmlite.errors import TokenizerError


# ---- tokens: texts, attributes, scores ---------------------------------------

# token attributes: llama.cpp's llama_token_attr bits
ATTR_UNKNOWN = 1 << 0
ATTR_UNUSED = 1 << 1
ATTR_NORMAL = 1 << 2
ATTR_CONTROL = 1 << 3
ATTR_USER_DEFINED = 1 << 4
ATTR_BYTE = 1 << 5

# tokenizer.ggml.token_type -> attribute (0 and unknown types -> no bits)
_TYPE_ATTR = np.zeros(8, dtype=np.int32)
_TYPE_ATTR[1:7] = [ATTR_NORMAL, ATTR_UNKNOWN, ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_UNUSED, ATTR_BYTE]


def _utf8(s: str) -> bytes:
    """str -> UTF-8 as token texts are stored, a lone surrogate passed through as llama.cpp does."""
    return s.encode("utf-8", "surrogatepass")


def _strings(arr: Any) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A string array (llmlite.gguf.StringArray, or a sequence of str / bytes) ->
    (one bytes buffer, int64 offsets, int64 lengths)."""
    if hasattr(arr, "buffer") and hasattr(arr, "offsets") and hasattr(arr, "lengths"):
        offs = np.asarray(arr.offsets, dtype=np.int64)
        lens = np.asarray(arr.lengths, dtype=np.int64)
        if offs.size == 0:
            return b"", offs, lens
        lo = int(offs.min())
        hi = int((offs + lens).max())
        return np.asarray(arr.buffer[lo:hi]).tobytes(), offs - lo, lens
    items = [x if isinstance(x, (bytes, bytearray)) else _utf8(str(x)) for x in arr]
    lens = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    offs = np.zeros(len(items), dtype=np.int64)
    if len(items) > 1:
        np.cumsum(lens[:-1], out=offs[1:])
    return b"".join(items), offs, lens


def token_table(tokens: Any) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The token texts as _strings gives them, each empty one replaced by
    "[EMPTY_<id>]" (what llama.cpp's loader stores for an empty text)."""
    buf, offs, lens = _strings(tokens)
    n = int(offs.size)
    if n == 0:
        raise TokenizerError("the vocabulary is empty (tokenizer.ggml.tokens)")
    empty = np.flatnonzero(lens == 0)
    if empty.size:
        items = [buf[o:o + ln] for o, ln in zip(offs.tolist(), lens.tolist())]
        for i in empty.tolist():
            items[i] = f"[EMPTY_{i}]".encode()
        buf, offs, lens = _strings(items)
    return buf, offs, lens


def token_scores(scores: Any, n: int) -> np.ndarray:
    """tokenizer.ggml.scores as n float32 (all 0 when absent)."""
    if scores is None:
        sc = np.zeros(n, dtype=np.float32)
    else:
        sc = np.ascontiguousarray(np.asarray(scores).astype(np.float32, copy=False))
        if sc.size < n:
            raise TokenizerError(f"tokenizer.ggml.scores has {sc.size} entries for {n} tokens")
    return sc[:n]


def token_attrs(token_types: Any, n: int) -> np.ndarray:
    """tokenizer.ggml.token_type as n attribute words (all NORMAL when absent)."""
    if token_types is None:
        attrs = np.full(n, ATTR_NORMAL, dtype=np.int32)
    else:
        tt = np.asarray(token_types).astype(np.int64, copy=False)
        if tt.size < n:
            raise TokenizerError(f"tokenizer.ggml.token_type has {tt.size} entries for {n} tokens")
        tt = tt[:n]
        attrs = np.where((tt >= 0) & (tt < 8), _TYPE_ATTR[np.clip(tt, 0, 7)], 0).astype(np.int32)
    return attrs


def tokens_containing(buf: bytes, offs: np.ndarray, ends: np.ndarray, s: bytes) -> list[int]:
    """Ids of the tokens whose text (buf[offs[i]:ends[i]]) contains s."""
    occ = np.array([m.start() for m in re.finditer(re.escape(s), buf)], dtype=np.int64)
    if occ.size == 0:
        return []
    tid = np.searchsorted(offs, occ, side="right") - 1
    ok = occ + len(s) <= ends[tid]
    return np.unique(tid[ok]).tolist()


# ---- special tokens ----------------------------------------------------------

# GGUF keys (tokenizer.ggml.<key>_token_id) of each role
_ROLE_KEYS = {
    "bos": ("bos",), "eos": ("eos",), "eot": ("eot",), "eom": ("eom",), "unk": ("unknown",),
    "sep": ("seperator",), "pad": ("padding",), "mask": ("mask",),
    "fim_pre": ("fim_pre", "prefix"), "fim_suf": ("fim_suf", "suffix"), "fim_mid": ("fim_mid", "middle"),
    "fim_pad": ("fim_pad",), "fim_rep": ("fim_rep",), "fim_sep": ("fim_sep",),
}
# token texts that llama.cpp auto-detects for a role left unset (first present text wins)
_ROLE_TEXTS = {
    "eot": ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
            "<EOT>", "_<EOT>", "[EOT]", "<\uff5cend\u2581of\u2581sentence\uff5c>", "<end_of_utterance>"),
    "eom": ("<|eom_id|>",),
    "fim_pre": ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\uff5cfim\u2581begin\uff5c>", "<PRE>",
                "\u2581<PRE>", "<|code_prefix|>", "<|prefix|>"),
    "fim_suf": ("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\uff5cfim\u2581hole\uff5c>", "<SUF>",
                "\u2581<SUF>", "<|code_suffix|>", "<|suffix|>"),
    "fim_mid": ("<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\uff5cfim\u2581end\uff5c>", "<MID>",
                "\u2581<MID>", "<|code_middle|>", "<|middle|>"),
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}
# token texts that end generation
_EOG_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
              "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
              "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
              "<\uff5cend\u2581of\u2581sentence\uff5c>")
_ALWAYS_USER_DEFINED = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")

# the partition's candidates in order, and their positions grouped by the first 4 bytes of their text
Candidates = tuple[list[tuple[bytes, int]], dict[bytes, list[int]]]


def role_ids(spm: bool, no_bos: bool, n: int, given: Mapping[str, int] | None) -> dict[str, int | None]:
    """Role -> id: the defaults (SPM bos 1, eos 2, unk 0; BPE bos and eos 11, no bos
    where the pre-tokenizer says so), then the GGUF's ids; an id outside the
    vocabulary is none (a default) or ignored (a GGUF id)."""
    ids: dict[str, int | None] = {r: None for r in _ROLE_KEYS}
    if spm:
        ids.update(bos=1, eos=2, unk=0)
    else:
        ids.update(bos=None if no_bos else 11, eos=11)
    for role, v in ids.items():
        if v is not None and v >= n:
            ids[role] = None
    for role, v in (given or {}).items():
        if role not in ids:
            raise TokenizerError(f"unknown special token role '{role}'")
        if v is not None and 0 <= int(v) < n:
            ids[role] = int(v)
    return ids


def fix_up(ids: dict[str, int | None], attrs: np.ndarray, find: Callable[[bytes], int],
           text: Callable[[int], bytes], unused: Iterable[int]) -> set[int]:
    """llama.cpp's load-time fix-ups, in place: a role left unset takes the first
    of its known texts present; those and the end-of-generation texts become
    CONTROL, CONTROL tokens that hold "unused" (the ids in unused) UNUSED, a
    few chat markers exactly USER_DEFINED; two families' EOG clashes are
    undone. Returns the end-of-generation ids."""
    for role, texts in _ROLE_TEXTS.items():
        if ids[role] is None:
            for t in texts:
                tid = find(_utf8(t))
                if tid >= 0:
                    ids[role] = tid
                    attrs[tid] |= ATTR_CONTROL
                    break
    for tid in unused:
        if attrs[tid] & ATTR_CONTROL:
            attrs[tid] |= ATTR_UNUSED
    eog = {ids[r] for r in ("fim_pad", "fim_rep", "fim_sep") if ids[r] is not None}
    for t in _EOG_TEXTS:
        tid = find(_utf8(t))
        if tid >= 0:
            eog.add(tid)
            attrs[tid] |= ATTR_CONTROL
    for t in _ALWAYS_USER_DEFINED:
        tid = find(_utf8(t))
        if tid >= 0:
            attrs[tid] = ATTR_USER_DEFINED
    eog |= {ids[r] for r in ("eos", "eot", "eom") if ids[r] is not None}
    eog_text = {text(i): i for i in eog}
    has_call = b"<|call|>" in eog_text or b"<|calls|>" in eog_text
    if b"<|end|>" in eog_text and has_call and (b"<|return|>" in eog_text or b"<|flush|>" in eog_text):
        end_id = eog_text[b"<|end|>"]
        eog.discard(end_id)
        attrs[end_id] = ATTR_USER_DEFINED
    if b"</s>" in eog_text and (b"<|tool_response>" in eog_text or b"<|plamo:eos|>" in eog_text):
        s_id = eog_text[b"</s>"]
        eog.discard(s_id)
        attrs[s_id] = ATTR_NORMAL
    return eog


def candidates(attrs: np.ndarray, buf: bytes, offs: np.ndarray, ends: np.ndarray) -> tuple[Candidates, Candidates]:
    """The partition's candidates with parse_special on, and with it off (USER_DEFINED
    only): the CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first."""
    cand = np.flatnonzero(attrs & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN))
    cand = cand[np.argsort(offs[cand] - ends[cand], kind="stable")]   # minus the length
    user_only = (attrs[cand] & (ATTR_CONTROL | ATTR_UNKNOWN)) == 0
    return _groups(buf, offs, ends, cand.tolist()), _groups(buf, offs, ends, cand[user_only].tolist())


def _groups(buf: bytes, offs: np.ndarray, ends: np.ndarray, ids: list[int]) -> Candidates:
    """Candidates in order, and their positions grouped by the first 4 bytes of their text."""
    lst = [(buf[o:e], i) for o, e, i in zip(offs[ids].tolist(), ends[ids].tolist(), ids)]
    groups: dict[bytes, list[int]] = {}
    for k, (t, _) in enumerate(lst):
        groups.setdefault(t[:4], []).append(k)
    return lst, groups


def _present(groups: dict[bytes, list[int]], data: bytes) -> Iterable[int]:
    """The candidates (grouped by the first 4 bytes of their text) whose group prefix occurs in data."""
    if len(data) < 4096:
        return (k for p, ks in groups.items() if p in data for k in ks)
    d = np.frombuffer(data, dtype=np.uint8)
    one = np.zeros(256, dtype=bool)
    one[d] = True
    two = np.zeros(1 << 16, dtype=bool)
    two[(d[:-1].astype(np.int32) << 8) | d[1:]] = True
    out: list[int] = []
    for p, ks in groups.items():
        if not (two[(p[0] << 8) | p[1]] if len(p) >= 2 else one[p[0]]):
            continue
        if len(p) > 2 and p not in data:
            continue
        out.extend(ks)
    return out


def partition(data: bytes, cands: Candidates) -> list[bytes | int]:
    """Split data into raw fragments (bytes) and special tokens (int): each candidate
    in turn, longest first, is placed at every occurrence that overlaps no token
    placed before it."""
    if not data:
        return []
    lst, groups = cands
    if not lst:
        return [data]
    present = sorted(_present(groups, data))
    starts: list[int] = []
    ends: list[int] = []
    toks: list[int] = []
    for k in present:
        text, tid = lst[k]
        if text not in data:
            continue
        L = len(text)
        found: list[int] = []
        p = data.find(text)
        while p >= 0:
            j = bisect.bisect_right(starts, p) - 1
            if j >= 0 and ends[j] > p:           # starts inside a placed token
                p = data.find(text, ends[j])
                continue
            if j + 1 < len(starts) and starts[j + 1] < p + L:  # runs into the next one
                p = data.find(text, p + 1)
                continue
            found.append(p)
            p = data.find(text, p + L)
        if found:
            merged = sorted(chain(zip(starts, ends, toks), ((q, q + L, tid) for q in found)))
            starts = [m[0] for m in merged]
            ends = [m[1] for m in merged]
            toks = [m[2] for m in merged]
    out: list[bytes | int] = []
    pos = 0
    for a, b, t in zip(starts, ends, toks):
        if a > pos:
            out.append(data[pos:a])
        out.append(t)
        pos = b
    if pos < len(data):
        out.append(data[pos:])
    return out
