"""The GGUF format's numbers, from the `gguf` package (llama.cpp's gguf-py): ggml type
ids with their block sizes, metadata value types, file types, key names. Everything
here is derived from its tables; llmlite writes none of these numbers itself.

Only the module gguf/constants.py is loaded, from its file: `import gguf.constants`
would first run the package's __init__, which imports its reader, writer, vocab
and metadata modules (about 50 ms more at startup, for nothing llmlite uses).
Which types llmlite can compute with is the C side's fact: ask it (type_supported).
"""
from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np


def _load_gguf_constants():
    loaded = sys.modules.get("gguf.constants")
    if loaded is not None:               # the whole package is imported already: share it
        return loaded
    spec = importlib.util.find_spec("gguf")   # finds the package without running it
    path = os.path.join(spec.submodule_search_locations[0], "constants.py") if spec else ""
    if not os.path.isfile(path):         # not a plain folder (a zip...): the ordinary import
        import gguf.constants

        return gguf.constants
    # a private copy, not registered as gguf.constants: a later `import gguf` makes its
    # own (its enums compare equal to these: they are IntEnums of the same values)
    cspec = importlib.util.spec_from_file_location("gguf.constants", path)
    mod = importlib.util.module_from_spec(cspec)
    cspec.loader.exec_module(mod)
    return mod


_gc = _load_gguf_constants()

GGMLType = _gc.GGMLQuantizationType   # tensor types: GGMLType.Q4_K == 12
ValueType = _gc.GGUFValueType         # metadata value types
FileType = _gc.LlamaFileType          # general.file_type values
Keys = _gc.Keys                       # metadata key names ("{arch}.block_count"...)
ExpertGatingFuncType = _gc.ExpertGatingFuncType   # {arch}.expert_gating_func values

MAGIC = _gc.GGUF_MAGIC.to_bytes(4, "little")     # b"GGUF"
DEFAULT_ALIGNMENT = _gc.GGUF_DEFAULT_ALIGNMENT   # when general.alignment is absent


def alignment_ok(a: int) -> bool:
    """general.alignment as reader and writer accept it: a power of two, 1 .. 2^30"""
    return 0 < a <= 1 << 30 and not a & (a - 1)
QUANT_VERSION = _gc.GGML_QUANT_VERSION           # general.quantization_version

# ---- tensor types: id -> (name, elements per block, bytes per block) ----------
# Every ggml type, including those llmlite cannot compute with, so that a file using
# them can still be described. One correction: gguf-py still gives Q8_1 blocks two
# float32 scales (40 bytes); ggml's block_q8_1 holds two F16s (36 bytes), as in
# every ggml file and in csrc/types.c.
_BLOCK_FIXES = {GGMLType.Q8_1: (32, 36)}
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    int(t): (t.name, *_BLOCK_FIXES.get(t, _gc.GGML_QUANT_SIZES[t])) for t in GGMLType}
TYPE_NAMES: dict[int, str] = {t: name for t, (name, _, _) in GGML_TYPES.items()}


def type_name(t: int) -> str:
    return TYPE_NAMES.get(t, f"type {t}")


# ---- metadata value types ---------------------------------------------------
# How the file stores a fixed-size value: numpy's type of the same name, little-endian
# (a bool is one byte, read as uint8 so that any non-zero byte is True).
SCALAR_DTYPES: dict[int, np.dtype] = {
    vt: np.dtype("u1" if vt == ValueType.BOOL else vt.name.lower()).newbyteorder("<")
    for vt in ValueType if vt not in (ValueType.STRING, ValueType.ARRAY)}
# short names for messages: u8 .. f64, bool, string, array
VALUE_TYPE_NAMES: dict[int, str] = {
    vt: f"{SCALAR_DTYPES[vt].kind}{8 * SCALAR_DTYPES[vt].itemsize}"
    if vt in SCALAR_DTYPES and vt != ValueType.BOOL else vt.name.lower() for vt in ValueType}
INTEGER_TYPES = tuple(vt for vt, dt in SCALAR_DTYPES.items() if dt.kind in "iu" and vt != ValueType.BOOL)

# ---- file types (general.file_type) ------------------------------------------
# llama.cpp's names without the ALL_/MOSTLY_ prefix: F32, Q4_K_M, BF16...
FILE_TYPE_NAMES: dict[int, str] = {int(f): f.name.split("_", 1)[1] for f in FileType if "_" in f.name}


def file_type(name: str) -> tuple[int, int]:
    """A file type by llama-quantize's name ("q4_k_m"): (its general.file_type value,
    the tensor type its rules start from: Q4_K for Q4_K_M, as llama.cpp's default_type)"""
    ftype = {n: f for f, n in FILE_TYPE_NAMES.items()}[name.upper()]
    tname = name.upper()
    while tname not in GGMLType.__members__ and "_" in tname:     # Q4_K_M -> Q4_K
        tname = tname.rsplit("_", 1)[0]
    return ftype, int(GGMLType[tname])
