"""Importance matrices (llama-imatrix's output) for `llmlite quantize --imatrix`.

Two file forms, read as llama.cpp's common_imatrix_load reads them and turned
into per-tensor weight vectors as llama-quantize's load_imatrix does:

- GGUF (what llama-imatrix writes by default): per tensor `<name>.in_sum2` (F32,
  ne0 x n_expert: the sums of squared activations) and `<name>.counts` (F32,
  one per expert: the tokens seen), and the keys imatrix.datasets (strings),
  imatrix.chunk_count and imatrix.chunk_size (u32), all three required. A
  tensor's vector is in_sum2 / count per expert (each count rounded to an
  integer first; an expert never seen gets 1 everywhere).
- legacy `.dat`: int32 entry count; per entry an int32 name length, the name,
  int32 ncall, int32 value count, the values (float32, already means times
  ncall); optionally an int32 chunk count and an int32-length dataset name. A
  vector is values / ncall (as stored when ncall <= 0).

A 3-D expert tensor's vector holds one ne0-long vector per expert, in order.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmlite.errors import UserError

# llama-quantize's key/values in the output (quantize.cpp's LLM_KV_QUANTIZE_IMATRIX_*)
KV_FILE = "quantize.imatrix.file"
KV_DATASET = "quantize.imatrix.dataset"
KV_N_ENTRIES = "quantize.imatrix.entries_count"
KV_N_CHUNKS = "quantize.imatrix.chunks_count"
KV_KEYS = (KV_FILE, KV_DATASET, KV_N_ENTRIES, KV_N_CHUNKS)
# llama.cpp copies a string override into a 128-byte field
_KV_STR_MAX = 127


class ImatrixError(UserError, ValueError):
    """An importance matrix file that cannot be used (one-line message)."""


@dataclass
class ImportanceMatrix:
    path: str                                   # as given (llama-quantize records it so)
    weights: dict[str, np.ndarray]              # tensor name -> float32 vector (ne0 * n_expert)
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0

    def select(self, include=(), exclude=()) -> ImportanceMatrix:
        """llama-quantize's --include-weights / --exclude-weights: keep only the
        entries whose name contains one of include, or drop those containing one
        of exclude (names are substrings, not patterns)"""
        if include and exclude:
            raise ImatrixError("--include-weights and --exclude-weights cannot be used together")
        w = self.weights
        if exclude:
            w = {k: v for k, v in w.items() if not any(s in k for s in exclude)}
        if include:
            w = {k: v for k, v in w.items() if any(s in k for s in include)}
        return ImportanceMatrix(self.path, w, self.datasets, self.chunk_count)

    def for_tensor(self, name: str, ne0: int, n_expert: int) -> np.ndarray | None:
        """the tensor's weights (n_expert vectors of ne0), None when the file has no
        entry for it; an entry of another size is an error (llama-quantize's), except
        for the token embeddings, which go without"""
        w = self.weights.get(name)
        if w is None:
            return None
        if w.size != ne0 * n_expert:
            if name in ("token_embd.weight", "per_layer_token_embd.weight"):
                return None
            raise ImatrixError(f"{self.path}: the importance matrix of {name} has {w.size} values, "
                               f"the tensor needs {ne0 * n_expert}")
        return w.reshape(n_expert, ne0)

    def kvs(self) -> list[tuple[str, object, object]]:
        """(key, value type name, value) of the keys llama-quantize adds to its output,
        in its order: the file as given, the first dataset, the entry count, the
        chunk count (when known)"""
        out = [(KV_FILE, "str", self.path.encode()[:_KV_STR_MAX])]
        if self.datasets:
            out.append((KV_DATASET, "str", self.datasets[0].encode()[:_KV_STR_MAX]))
        out.append((KV_N_ENTRIES, "u32", len(self.weights)))
        if self.chunk_count > 0:
            out.append((KV_N_CHUNKS, "u32", self.chunk_count))
        return out


def load_imatrix(path, include=(), exclude=()) -> ImportanceMatrix:
    """Read an importance matrix in either form, keeping the entries include /
    exclude select (ImportanceMatrix.select). ImatrixError (one line) for a file
    llama-quantize would refuse, or a non-finite weight in an entry kept (the
    only ones llama-quantize checks)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise ImatrixError(f"{path}: no such file") from None
    except OSError as e:
        raise ImatrixError(f"{path}: cannot read ({e.strerror or e})") from None
    im = _load_gguf(p, str(path)) if magic == b"GGUF" else _load_legacy(p, str(path))
    im = im.select(include, exclude)
    for name, w in im.weights.items():
        if not np.isfinite(w).all():
            raise ImatrixError(f"{path}: the importance matrix of {name} has a non-finite value")
    return im


# ------------------------------------------------------------------ GGUF form

def _u32_key(g, key: str):
    """a key's value when stored as a u32 (llama.cpp reads these with gguf_get_val_u32,
    which refuses another type), None when absent"""
    from llmlite.gguf.constants import ValueType

    for k, v in g.stored_kvs():
        if k == key:
            if int.from_bytes(v[:4], "little") != ValueType.UINT32:
                raise ImatrixError(f"{g.path}: {key} is not a u32")
            return int.from_bytes(v[4:8], "little")
    return None


def _load_gguf(p: Path, given: str) -> ImportanceMatrix:
    from llmlite.errors import GGUFError
    from llmlite.gguf import open_gguf
    from llmlite.gguf.constants import GGMLType
    from llmlite.gguf.reader import StringArray

    try:
        g = open_gguf(p)
    except GGUFError as e:
        raise ImatrixError(f"not an importance matrix: {e}") from None
    with g:
        if not g.tensors:
            raise ImatrixError(f"{given}: no data in the importance matrix")
        missing = [k for k in ("imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size") if g.get(k) is None]
        if missing:
            raise ImatrixError(f"{given}: missing importance matrix metadata ({', '.join(missing)})")
        datasets = g.get("imatrix.datasets")   # used only as an array of strings, as llama.cpp does
        datasets = datasets.tolist() if isinstance(datasets, StringArray) else []
        chunk_count = _u32_key(g, "imatrix.chunk_count")
        _u32_key(g, "imatrix.chunk_size")
        pairs: dict[str, list] = {}
        for name, t in g.tensors.items():
            for suffix, slot in ((".in_sum2", 0), (".counts", 1)):
                if name.endswith(suffix) and len(name) > len(suffix):
                    pairs.setdefault(name[: -len(suffix)], [None, None])[slot] = t
        weights = {}
        for name, (sums, counts) in sorted(pairs.items()):
            if sums is None or counts is None:
                raise ImatrixError(f"{given}: {name} has {'no in_sum2' if sums is None else 'no counts'}")
            if sums.type != GGMLType.F32 or counts.type != GGMLType.F32:
                raise ImatrixError(f"{given}: the sums and counts of {name} must be F32")
            s = np.frombuffer(g.tensor_data(sums.name), np.float32)
            c = np.frombuffer(g.tensor_data(counts.name), np.float32)
            weights[name] = _normalize(s, c)
    return ImportanceMatrix(given, weights, datasets, chunk_count or 0)


def _normalize(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums / count per expert (count rounded half away from zero, as lround), 1
    where an expert's count is not positive; values past n_expert * (size //
    n_expert) stay 0, as llama-quantize leaves them"""
    n = counts.size
    ne0 = sums.size // n
    rounded = np.sign(counts.astype(np.float64)) * np.floor(np.abs(counts.astype(np.float64)) + 0.5)
    out = np.zeros(sums.size, np.float32)
    for j in range(n):
        part = slice(j * ne0, (j + 1) * ne0)
        out[part] = sums[part] / np.float32(rounded[j]) if rounded[j] > 0 else 1
    return out


# ---------------------------------------------------------------- legacy form

class _Reader:
    def __init__(self, data: bytes, given: str):
        self.data, self.off, self.given = data, 0, given

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.off + n > len(self.data):
            raise ImatrixError(f"{self.given}: not an importance matrix (truncated or corrupt {what})")
        b = self.data[self.off:self.off + n]
        self.off += n
        return b

    def i32(self, what: str) -> int:
        return struct.unpack("<i", self.take(4, what))[0]


def _load_legacy(p: Path, given: str) -> ImportanceMatrix:
    r = _Reader(p.read_bytes(), given)
    if len(r.data) < 4 or r.i32("header") < 1:
        raise ImatrixError(f"{given}: no data in the importance matrix (neither GGUF nor a legacy .dat)")
    r.off = 0
    n_entries = r.i32("header")
    weights = {}
    for i in range(n_entries):
        # the name as a C string: up to its first NUL
        name = r.take(r.i32(f"entry {i + 1}"), f"entry {i + 1}").split(b"\0")[0].decode("utf-8", "replace")
        ncall = r.i32(f"entry {i + 1}")
        nval = r.i32(f"entry {i + 1}")
        if nval < 1:
            raise ImatrixError(f"{given}: entry {i + 1} ({name}) has {nval} values")
        vals = np.frombuffer(r.take(4 * nval, f"entry {i + 1}"), np.float32)
        weights[name] = vals / np.float32(ncall) if ncall > 0 else vals.copy()
    chunk_count, datasets = 0, []
    # the trailing chunk count and dataset name are optional, each read if present
    if len(r.data) - r.off >= 4:
        chunk_count = r.i32("chunk count")
        n = r.i32("dataset") if len(r.data) - r.off >= 4 else 0
        if 0 < n <= len(r.data) - r.off:
            datasets.append(r.take(n, "dataset").split(b"\0")[0].decode("utf-8", "replace"))
    return ImportanceMatrix(given, weights, datasets, chunk_count)


# ------------------------------------------------- what llama-quantize requires

def requires_imatrix(name: str, dst_type: int, ftype: str) -> bool:
    """llama-quant.cpp's tensor_requires_imatrix: the very low-bit types (and Q2_K
    in a Q2_K_S file), never for the token embeddings or the output"""
    from llmlite.gguf.constants import GGMLType
    from llmlite.quantize import NEEDS_IMATRIX

    if name in ("token_embd.weight", "per_layer_token_embd.weight", "output.weight"):
        return False
    return dst_type in NEEDS_IMATRIX or (dst_type == GGMLType.Q2_K and ftype == "q2_k_s")


def tensor_weights(im: ImportanceMatrix | None, planned, ftype: str) -> np.ndarray | None:
    """the importance weights a tensor is quantized with (n_expert x ne0), None for
    none; the refusals of llama-quantize: a tensor of a very low-bit type without
    weights, with or without a file"""
    from llmlite.gguf.constants import type_name

    n_expert = planned.shape[2] if len(planned.shape) > 2 else 1
    w = im.for_tensor(planned.name, planned.shape[0], n_expert) if im is not None else None
    if w is None and requires_imatrix(planned.name, planned.dst_type, ftype):
        if im is None:
            raise ImatrixError(f"{ftype.upper()} needs an importance matrix ({planned.name} is "
                               f"{type_name(planned.dst_type)}): pass --imatrix FILE (llama-imatrix makes one)")
        raise ImatrixError(f"Missing importance matrix for tensor {planned.name} in a very low-bit quantization")
    return w
