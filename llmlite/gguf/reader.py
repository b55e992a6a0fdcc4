"""Our own GGUF reader: open a file (memory-mapped, read-only), read its metadata and
tensor table.

Hand-written rather than gguf-py's GGUFReader for two reasons: speed (GGUFReader
builds numpy parts for every string: ~13 s on a 262k-token vocabulary, this reader
a few milliseconds) and hostile files, which must give one-line errors: every count,
length, offset and size read from the file is checked against the file size before
it is used (a file is untrusted input); a malformed file raises GGUFError, a ValueError
whose one-line message names the problem and where.

Nothing big is copied at open: numeric arrays are numpy views on the mapping,
string arrays are StringArray objects that only hold the offsets and lengths of
their strings (found by a C scan), and tensor data are views made on request.
The format's numbers (types, block sizes) come from constants.py.
"""
from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from llmlite.errors import GGUFError
from llmlite.gguf.constants import (DEFAULT_ALIGNMENT, alignment_ok, GGML_TYPES, INTEGER_TYPES, MAGIC, SCALAR_DTYPES,
                                    VALUE_TYPE_NAMES, GGMLType, Keys, ValueType, type_name)

MAX_DIMS = 4
MAX_ARRAY_NESTING = 8
_BOOL, _STRING, _ARRAY = ValueType.BOOL, ValueType.STRING, ValueType.ARRAY
# the fewest bytes one value of a type can take (a string: its length; an array: its type + count)
_MIN_SIZE = {**{t: dt.itemsize for t, dt in SCALAR_DTYPES.items()}, _STRING: 8, _ARRAY: 12}


def type_supported(t: int) -> bool:
    """True if llmlite can compute with tensors of type t (dequantize + matmul): the C side's answer."""
    try:
        from llmlite._lib import lib
    except ImportError:  # pragma: no cover - extension not built
        return False
    return bool(lib.llm_type_supported(t))


def supported_types() -> list[int]:
    """The ggml types llmlite computes with, in id order (asked of the C side)."""
    return [int(t) for t in GGMLType if type_supported(t)]


class _Bad(Exception):
    """Internal: a problem found while parsing; open_gguf turns it into GGUFError."""


def _n(x: int) -> str:
    """An integer for messages: thousands separators, powers of two spelled out when huge."""
    if x >= 1 << 40 and x & (x - 1) == 0:
        return f"2^{x.bit_length() - 1}"
    return f"{x:,}"


def _show(s: str, limit: int = 60) -> str:
    """A name from the file, safe to put in a one-line message."""
    r = s if s.isprintable() else s.encode("unicode_escape", "replace").decode("ascii", "replace")
    return r if len(r) <= limit else r[: limit - 3] + "..."


# ---- string arrays ----------------------------------------------------------

def _scan_strings(buf: np.ndarray, off: int, count: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Offsets and lengths of `count` GGUF strings starting at buf[off].

    Returns (end offset or -1, offsets, lengths)."""
    offsets = np.empty(count, dtype=np.int64)
    lengths = np.empty(count, dtype=np.int64)
    size = buf.size
    try:
        from llmlite._lib import ffi, lib
    except ImportError:  # pragma: no cover - slow fallback when the extension is not built
        return _scan_strings_py(buf, off, count, offsets, lengths), offsets, lengths
    if count == 0:
        return off, offsets, lengths
    end = lib.llm_gguf_scan_strings(ffi.cast("const unsigned char *", buf.ctypes.data), size, off,
                                    count, size, ffi.cast("long long *", offsets.ctypes.data),
                                    ffi.cast("long long *", lengths.ctypes.data))
    return int(end), offsets, lengths


def _scan_strings_py(buf, off, count, offsets, lengths) -> int:
    """The same walk as csrc/gguf_scan.c, in Python (fallback and test oracle)."""
    size = len(buf)
    mv = memoryview(buf)
    for i in range(count):
        if size - off < 8:
            return -1
        (n,) = struct.unpack_from("<Q", mv, off)
        off += 8
        if n > size - off:
            return -1
        offsets[i] = off
        lengths[i] = n
        off += n
    return off


class StringArray:
    """A GGUF array of strings, decoded lazily.

    `offsets[i]`, `lengths[i]` locate string i's bytes in `buffer` (the whole
    file as a uint8 array), so that C code can use them without Python objects.
    """

    __slots__ = ("buffer", "offsets", "lengths")

    def __init__(self, buffer: np.ndarray, offsets: np.ndarray, lengths: np.ndarray):
        self.buffer = buffer
        self.offsets = offsets
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.offsets)

    def raw(self, i: int) -> bytes:
        o = int(self.offsets[i])
        return self.buffer[o : o + int(self.lengths[i])].tobytes()

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.raw(i).decode("utf-8", "replace")

    def __iter__(self) -> Iterator[str]:
        buf = self.buffer
        for o, n in zip(self.offsets.tolist(), self.lengths.tolist()):
            yield buf[o : o + n].tobytes().decode("utf-8", "replace")

    def tolist(self) -> list[str]:
        return list(self)

    def raw_list(self) -> list[bytes]:
        buf = self.buffer
        return [buf[o : o + n].tobytes() for o, n in zip(self.offsets.tolist(), self.lengths.tolist())]

    def __eq__(self, other):
        if isinstance(other, StringArray):
            return self.raw_list() == other.raw_list()
        if isinstance(other, (list, tuple)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(self[i]) for i in range(min(3, len(self))))
        return f"StringArray([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"


# ---- the file ---------------------------------------------------------------

@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]   # GGUF order: ne[0] (elements per row) first
    type: int                # ggml type id
    offset: int              # absolute file offset of the data
    nbytes: int
    n_elements: int

    @property
    def type_name(self) -> str:
        return type_name(self.type)


class _Cursor:
    """Bounds-checked little-endian reads from the mapped file."""

    __slots__ = ("mm", "size", "pos", "where")

    def __init__(self, mm, size: int):
        self.mm, self.size, self.pos, self.where = mm, size, 0, "the header"

    def need(self, n: int) -> int:
        p = self.pos
        if n > self.size - p:
            raise _Bad(f"truncated GGUF: {self.where} runs past the end of the file "
                       f"(needs offset {_n(p + n)}, file size {_n(self.size)})")
        self.pos = p + n
        return p

    def u32(self) -> int:
        return struct.unpack_from("<I", self.mm, self.need(4))[0]

    def u64(self) -> int:
        return struct.unpack_from("<Q", self.mm, self.need(8))[0]

    def string_bytes(self, what: str) -> bytes:
        n = self.u64()
        if n > self.size - self.pos:
            raise _Bad(f"truncated GGUF: {self.where}: {what} of {_n(n)} bytes runs past the end of the "
                       f"file (offset {_n(self.pos)}, file size {_n(self.size)})")
        p = self.pos
        self.pos = p + n
        return self.mm[p : p + n]

    def string(self, what: str) -> str:
        return self.string_bytes(what).decode("utf-8", "replace")


class GGUFFile:
    """A parsed GGUF file. Use open_gguf(path)."""

    def __init__(self, path: Path, mm: mmap.mmap, file_size: int):
        self.path = path
        self.file_size = file_size
        self._mm = mm
        self._buf = np.frombuffer(mm, dtype=np.uint8)
        self.version = 0
        self.alignment = DEFAULT_ALIGNMENT
        self.data_offset = 0
        self.metadata: dict[str, Any] = {}
        self.metadata_types: dict[str, int] = {}
        self.array_types: dict[str, int] = {}   # array key -> element type
        self._kv_spans: list[tuple[str, int, int]] = []   # (key, where its type starts, where its value ends)
        self.tensors: dict[str, TensorInfo] = {}

    # -- access --
    @property
    def buffer(self) -> np.ndarray:
        """The whole file as a read-only uint8 array (no copy)."""
        if self._buf is None:
            raise GGUFError(f"{self.path}: file is closed")
        return self._buf

    def tensor_data(self, name: str) -> np.ndarray:
        """A tensor's raw bytes: a read-only uint8 view on the mapping."""
        t = self.tensors[name]
        return self.buffer[t.offset : t.offset + t.nbytes]

    def stored_kvs(self) -> list[tuple[str, bytes]]:
        """(key, its type id and value as the file stores them) for every key/value, in
        file order: what a writer copies to keep values bit for bit (NaN payloads too)."""
        buf = self.buffer
        return [(k, buf[a:b].tobytes()) for k, a, b in self._kv_spans]

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str | None:
        a = self.metadata.get("general.architecture")
        return a if isinstance(a, str) else None

    def param_count(self) -> int:
        return sum(t.n_elements for t in self.tensors.values())

    def check_computable(self) -> None:
        """Raise GGUFError if a tensor has a type llmlite cannot compute with."""
        bad = [t for t in self.tensors.values() if not type_supported(t.type)]
        if bad:
            kinds = sorted({t.type_name for t in bad})
            can = [type_name(t) for t in supported_types()]
            raise GGUFError(f"{self.path}: unsupported tensor type {', '.join(kinds)} "
                            f"({len(bad)} tensors, e.g. '{_show(bad[0].name)}'); llmlite computes with "
                            f"{', '.join(can[:-1])} and {can[-1]}")

    def close(self) -> None:
        """Drop this object's hold on the mapping. Views handed out earlier stay
        valid (the mapping is unmapped when the last of them is gone)."""
        mm, self._mm, self._buf = self._mm, None, None
        self.metadata = {}
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                pass  # views still alive; the mapping goes with them

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"GGUFFile({str(self.path)!r}, v{self.version}, {len(self.metadata)} keys, "
                f"{len(self.tensors)} tensors)")

    # -- parsing --
    def _parse(self) -> None:
        c = _Cursor(self._mm, self.file_size)
        size = self.file_size
        if size < 4:
            raise _Bad("not a GGUF file (it is empty)" if size == 0 else f"not a GGUF file (only {size} bytes)")
        magic = self._mm[0:4]
        if magic != MAGIC:
            raise _Bad(_bad_magic(magic))
        c.pos = 4
        c.where = "the header"
        version = c.u32()
        if version & 0xFFFF == 0 and 0 < (version >> 24) <= 3 and (version >> 16) & 0xFF == 0:
            raise _Bad(f"big-endian GGUF (version {version >> 24}, byte-swapped) is not supported; "
                       "use a little-endian file")
        if version == 1:
            raise _Bad("GGUF version 1 is not supported (obsolete format); re-convert the model "
                       "with a current llama.cpp")
        if version not in (2, 3):
            raise _Bad(f"unsupported GGUF version {_n(version)} (llmlite reads versions 2 and 3)")
        self.version = version
        n_tensors = c.u64()
        n_kv = c.u64()
        rest = size - c.pos
        # each key-value takes at least 8 (key length) + 4 (type) + 1 bytes,
        # each tensor info at least 8 (name length) + 4 + 8 (one dim) + 4 + 8
        if n_kv > rest // 13:
            raise _Bad(f"truncated or corrupt GGUF: the header promises {_n(n_kv)} metadata entries, more "
                       f"than the {_n(rest)} bytes after it can hold")
        if n_tensors > rest // 32 or n_kv * 13 + n_tensors * 32 > rest:
            raise _Bad(f"truncated or corrupt GGUF: the header promises {_n(n_tensors)} tensors and "
                       f"{_n(n_kv)} metadata entries, more than the {_n(rest)} bytes after it can hold")

        md, mt, at = self.metadata, self.metadata_types, self.array_types
        first_at: dict[str, int] = {}
        for i in range(n_kv):
            c.where = f"metadata key {i}"
            key = c.string("the key")
            c.where = f"metadata key {i} '{_show(key)}'"
            if key in first_at:
                raise _Bad(f"corrupt GGUF: duplicate metadata key '{_show(key)}' (entries {first_at[key]} and {i})")
            first_at[key] = i
            start = c.pos
            vt = c.u32()
            if vt not in _MIN_SIZE:
                raise _Bad(f"corrupt GGUF: {c.where} has unknown value type {_n(vt)}")
            md[key] = self._read_value(c, vt, 0)
            mt[key] = vt
            self._kv_spans.append((key, start, c.pos))
            if vt == _ARRAY:
                at[key] = self._last_array_type

        ak = c.where = Keys.General.ALIGNMENT
        if ak in md:
            a = md[ak]
            if mt[ak] not in INTEGER_TYPES:
                raise _Bad(f"corrupt GGUF: {ak} has type {VALUE_TYPE_NAMES[mt[ak]]}, expected an integer")
            if not alignment_ok(a):
                raise _Bad(f"corrupt GGUF: {ak} is {_n(a)}, not a power of two (1 .. 2^30)")
            self.alignment = int(a)

        infos = []
        names: dict[str, int] = {}
        for i in range(n_tensors):
            c.where = f"tensor info {i}"
            name = c.string("the name")
            c.where = f"tensor {i} '{_show(name)}'"
            if name in names:
                raise _Bad(f"corrupt GGUF: duplicate tensor name '{_show(name)}' (tensors {names[name]} and {i})")
            names[name] = i
            n_dims = c.u32()
            if not 1 <= n_dims <= MAX_DIMS:
                raise _Bad(f"corrupt GGUF: {c.where} has {_n(n_dims)} dimensions (expected 1 to {MAX_DIMS})")
            shape = struct.unpack_from(f"<{n_dims}Q", self._mm, c.need(8 * n_dims))
            ttype = c.u32()
            rel = c.u64()
            infos.append((i, name, shape, ttype, rel))

        align = self.alignment
        end_of_table = c.pos
        self.data_offset = data_offset = (end_of_table + align - 1) // align * align
        if infos and data_offset > size:
            raise _Bad(f"truncated GGUF: the tensor data would start at offset {_n(data_offset)}, "
                       f"past the end of the file ({_n(size)} bytes)")
        for i, name, shape, ttype, rel in infos:
            where = f"tensor {i} '{_show(name)}'"
            if ttype not in GGML_TYPES:
                raise _Bad(f"corrupt GGUF: {where} has unknown type {_n(ttype)}")
            tname, be, bb = GGML_TYPES[ttype]
            if any(d == 0 for d in shape):
                raise _Bad(f"corrupt GGUF: {where} has a zero dimension (shape {list(shape)})")
            n_el = math.prod(shape)
            if n_el >= 1 << 62:
                raise _Bad(f"corrupt GGUF: {where} has too many elements (shape {list(shape)})")
            if shape[0] % be:
                raise _Bad(f"corrupt GGUF: {where} has rows of {_n(shape[0])} elements, not a multiple "
                           f"of the {tname} block size {be}")
            nbytes = n_el // be * bb
            if rel % align:
                raise _Bad(f"corrupt GGUF: {where} data offset {_n(rel)} is not a multiple of the "
                           f"alignment {align}")
            if rel > size or nbytes > size - data_offset - rel:
                raise _Bad(f"truncated GGUF: {where} data ({tname}, {_n(nbytes)} bytes at offset "
                           f"{_n(data_offset + rel)}) runs past the end of the file ({_n(size)} bytes)")
            self.tensors[name] = TensorInfo(name, tuple(shape), ttype, data_offset + rel, nbytes, n_el)
        _check_disjoint(self.tensors.values())

    _last_array_type = -1

    def _read_value(self, c: _Cursor, vt: int, depth: int):
        dt = SCALAR_DTYPES.get(vt)
        if dt is not None:
            v = np.frombuffer(self._mm, dtype=dt, count=1, offset=c.need(dt.itemsize))[0].item()
            return bool(v) if vt == _BOOL else v
        if vt == _STRING:
            return c.string("the string value")
        # ARRAY
        if depth >= MAX_ARRAY_NESTING:
            raise _Bad(f"corrupt GGUF: {c.where} nests arrays more than {MAX_ARRAY_NESTING} deep")
        et = c.u32()
        count = c.u64()
        if et not in _MIN_SIZE:
            raise _Bad(f"corrupt GGUF: {c.where} is an array of unknown value type {_n(et)}")
        self._last_array_type = et
        rest = c.size - c.pos
        if count > rest // _MIN_SIZE[et]:
            raise _Bad(f"truncated GGUF: {c.where}: array of {_n(count)} {VALUE_TYPE_NAMES[et]} values "
                       f"runs past the end of the file (offset {_n(c.pos)}, file size {_n(c.size)})")
        if dt := SCALAR_DTYPES.get(et):
            p = c.need(dt.itemsize * count)
            a = np.frombuffer(self._mm, dtype=dt, count=count, offset=p)
            return a.astype(bool) if et == _BOOL else a
        if et == _STRING:
            start = c.pos
            end, offs, lens = _scan_strings(self._buf, start, count)
            if end < 0:
                raise _Bad(self._string_scan_error(c, start, count))
            c.pos = end
            return StringArray(self._buf, offs, lens)
        out = []
        where = c.where
        for j in range(count):
            c.where = f"{where} item {j}"
            out.append(self._read_value(c, _ARRAY, depth + 1))
        c.where = where
        self._last_array_type = _ARRAY
        return out

    def _string_scan_error(self, c: _Cursor, start: int, count: int) -> str:
        # the first string that does not fit: bisect on prefix lengths (C scans)
        lo, hi = 0, count  # prefix of lo strings fits; of hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _scan_strings(self._buf, start, mid)[0] >= 0:
                lo = mid
            else:
                hi = mid
        pos = _scan_strings(self._buf, start, lo)[0]
        bad = hi - 1
        if c.size - pos < 8:
            return (f"truncated GGUF: {c.where}: string {bad} of {_n(count)} runs past the end of the "
                    f"file (offset {_n(pos)}, file size {_n(c.size)})")
        (n,) = struct.unpack_from("<Q", self._mm, pos)
        return (f"truncated GGUF: {c.where}: string {bad} of {_n(count)} ({_n(n)} bytes at offset "
                f"{_n(pos + 8)}) runs past the end of the file (file size {_n(c.size)})")


def _check_disjoint(tensors) -> None:
    """Raise _Bad if two tensors' data share a byte (as llama.cpp refuses them): one tensor
    written through, or quantized over, would change the other."""
    prev = None
    for t in sorted(tensors, key=lambda t: t.offset):
        if prev is not None and t.offset < prev.offset + prev.nbytes:
            raise _Bad(f"corrupt GGUF: tensor '{_show(t.name)}' data (offset {_n(t.offset)}) overlaps tensor "
                       f"'{_show(prev.name)}' ({_n(prev.nbytes)} bytes at offset {_n(prev.offset)})")
        prev = t


def _bad_magic(magic: bytes) -> str:
    old = {b"lmgg": "GGML", b"fmgg": "GGMF", b"tjgg": "GGJT"}
    if magic in old:
        return f"not a GGUF file (it is an old {old[magic]} model file; convert it to GGUF)"
    return f"not a GGUF file (it starts with {magic!r}, not b'GGUF')"


def open_gguf(path: str | os.PathLike) -> GGUFFile:
    """Map and parse a GGUF file. Raises GGUFError (one-line message) for a
    missing, unreadable or malformed file."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise GGUFError(f"{p}: no such file") from None
    except OSError as e:
        raise GGUFError(f"{p}: cannot read ({e.strerror or e})") from None
    if os.path.isdir(p):
        raise GGUFError(f"{p}: is a directory, not a GGUF file")
    size = st.st_size
    if size == 0:
        raise GGUFError(f"{p}: not a GGUF file (it is empty)")
    try:
        with open(p, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise GGUFError(f"{p}: cannot read ({e.strerror or e})") from None
    except ValueError as e:  # e.g. a file that shrank to 0 bytes
        raise GGUFError(f"{p}: cannot map the file ({e})") from None
    g = GGUFFile(p, mm, len(mm))
    try:
        g._parse()
    except _Bad as e:
        g.close()
        raise GGUFError(f"{p}: {e}") from None
    except BaseException:
        g.close()
        raise
    return g
