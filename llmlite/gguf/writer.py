"""The one GGUF writer: `llmlite quantize` writes every file through it, whether its
input is a GGUF (quantize.py) or a Hugging Face checkpoint (convert_hf.py).

The layout is llama.cpp's: header, key/values, tensor table, then the data, each
tensor starting at a multiple of the alignment, the file's general.alignment when
its key/values carry one, else 32; zero bytes pad the table and every tensor up to
it. The file goes to a temporary name beside the destination and is renamed when
complete (llmlite/atomic.py), so an error, Ctrl-C or SIGTERM leaves nothing at the
destination.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from llmlite.atomic import atomic_write
from llmlite.gguf.constants import DEFAULT_ALIGNMENT, MAGIC, alignment_ok, SCALAR_DTYPES, VALUE_TYPE_NAMES, Keys, ValueType

# the layout written here: version 3 (64-bit counts and sizes), as llama.cpp writes it
VERSION = 3


def gguf_string(s: str | bytes) -> bytes:
    """A string as GGUF stores it: its length (u64), then its UTF-8 bytes."""
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def encode(vtype, value) -> bytes:
    """One metadata value as the file stores it, its type id first. vtype: a
    ValueType, or (ValueType.ARRAY, the items' type) for an array (of scalars or strings)."""
    if isinstance(vtype, tuple):
        _, item = vtype
        head = struct.pack("<IIQ", ValueType.ARRAY, item, len(value))
        if item == ValueType.STRING:
            return head + b"".join(gguf_string(x) for x in value)
        return head + np.asarray(value, dtype=SCALAR_DTYPES[item]).tobytes()
    if vtype == ValueType.STRING:
        return struct.pack("<I", vtype) + gguf_string(value)
    if vtype == ValueType.BOOL:
        value = bool(value)
    return struct.pack("<I", vtype) + np.asarray(value, dtype=SCALAR_DTYPES[vtype]).tobytes()


def with_alignment(kvs: list[tuple[str, bytes]], alignment: int) -> list[tuple[str, bytes]]:
    """kvs declaring `alignment` (a u32 general.alignment, in place of the one they
    carry or after the last); the writer then aligns the data to it."""
    if not alignment_ok(alignment):
        raise ValueError(f"alignment {alignment}: not a power of two (1 .. 2^30)")
    kv = (Keys.General.ALIGNMENT, encode(ValueType.UINT32, alignment))
    if any(k == kv[0] for k, _ in kvs):
        return [kv if k == kv[0] else (k, v) for k, v in kvs]
    return [*kvs, kv]


def alignment_of(kvs: list[tuple[str, bytes]]) -> int:
    """The alignment stored key/values declare (general.alignment), else the default."""
    for k, v in kvs:
        if k != Keys.General.ALIGNMENT:
            continue
        vt = int.from_bytes(v[:4], "little")
        dt = SCALAR_DTYPES.get(vt)
        if dt is None or dt.kind not in "iu" or vt == ValueType.BOOL:
            raise ValueError(f"{k} has type {VALUE_TYPE_NAMES.get(vt, vt)}, expected an integer")
        a = int(np.frombuffer(v, dtype=dt, count=1, offset=4)[0])
        if not alignment_ok(a):
            raise ValueError(f"{k} is {a}, not a power of two (1 .. 2^30)")
        return a
    return DEFAULT_ALIGNMENT


@dataclass(frozen=True)
class TensorOut:
    """A tensor as the table declares it."""
    name: str
    shape: tuple          # GGUF order: ne[0] (elements per row) first
    type: int             # ggml type id
    nbytes: int


def write_gguf(dst, kvs: list[tuple[str, bytes]], tensors: Sequence[TensorOut], data: Callable[[int], object],
               progress: Callable[[int, int], None] | None = None) -> None:
    """Write dst: kvs as (key, encoded value: encode(), or a reader's stored_kvs()),
    the tensors in this order, data(i) the bytes of tensors[i] (any buffer of exactly
    nbytes), progress(done, total) after each tensor."""
    align = alignment_of(kvs)

    def pad(n: int) -> int:
        return -n % align

    infos, off = [], 0
    for t in tensors:
        infos.append(gguf_string(t.name) + struct.pack(f"<I{len(t.shape)}Q", len(t.shape), *t.shape)
                     + struct.pack("<IQ", t.type, off))
        off += t.nbytes + pad(t.nbytes)
    head = (MAGIC + struct.pack("<IQQ", VERSION, len(tensors), len(kvs))
            + b"".join(gguf_string(k) + v for k, v in kvs) + b"".join(infos))
    head += bytes(pad(len(head)))
    with atomic_write(dst) as f:
        f.write(head)
        for i, t in enumerate(tensors):
            buf = memoryview(np.ascontiguousarray(data(i))).cast("B")
            if buf.nbytes != t.nbytes:
                raise ValueError(f"{t.name}: {buf.nbytes} bytes of data, the table says {t.nbytes}")
            f.write(buf)
            f.write(bytes(pad(t.nbytes)))
            del buf
            if progress:
                progress(i + 1, len(tensors))
