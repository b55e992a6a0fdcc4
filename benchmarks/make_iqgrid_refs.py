#!/usr/bin/env python3
"""Writes tests/data/iqgrid_refs.npz: for each grid i-quant (IQ2_XXS, IQ2_XS, IQ2_S,
IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) a few weight rows of random blocks, the floats
llama.cpp's dequantizer makes of them (type traits' to_float), and its x86 vec_dot
of each row against Q8_K activation columns (type_traits_cpu's vec_dot, the
activations quantized by its from_float), through the libggml of llama-cpp-python's
virtual environment. CI has no llama.cpp: tests/test_iq_grid.py compares with this.

Random bytes are valid blocks of these types; the fp16 scale is then set to a sane
value (rows 0..2: 2^-12 .. 2^-4, both signs); the last row's scales are a NaN, a
negative NaN, an infinity and a subnormal (to_float only; its dot is not used).

    .venv-llamacpp/bin/python benchmarks/make_iqgrid_refs.py [--venv .venv-llamacpp]
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# ggml type id, block bytes
TYPES = {"IQ2_XXS": (16, 66), "IQ2_XS": (17, 74), "IQ2_S": (22, 82), "IQ3_XXS": (18, 98),
         "IQ3_S": (21, 110), "IQ1_S": (19, 50), "IQ1_M": (29, 56)}
Q8_K = 15
K = 1024          # elements per row: 4 super-blocks
ROWS = 4          # 3 with sane scales, 1 with special ones
SPECIAL = np.array([0x7E01, 0xFD00, 0x7C00, 0x0003], dtype=np.uint16)   # one per super-block
COLS = 3


class Traits(ctypes.Structure):
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p), ("from_float_ref", ctypes.c_void_p)]


class TraitsCpu(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def load(venv: str):
    lib = Path(venv) / "lib"
    base = glob.glob(str(lib / "python3*" / "site-packages" / "llama_cpp" / "lib" / "libggml-base.so"))
    cpu = glob.glob(str(lib / "python3*" / "site-packages" / "llama_cpp" / "lib" / "libggml-cpu.so"))
    if not base or not cpu:
        sys.exit(f"no libggml-base.so / libggml-cpu.so under {venv}: build llama-cpp-python there first")
    gb = ctypes.CDLL(base[0], mode=ctypes.RTLD_GLOBAL)
    gc = ctypes.CDLL(cpu[0])
    gb.ggml_get_type_traits.restype = ctypes.POINTER(Traits)
    gb.ggml_get_type_traits.argtypes = [ctypes.c_int]
    gc.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TraitsCpu)
    gc.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    gc.ggml_cpu_init()   # the fp16 table the CPU kernels read
    return gb, gc


def weight_rows(rng, bytes_per_block: int, name: str) -> np.ndarray:
    nb = K // 256
    raw = rng.integers(0, 256, size=(ROWS, nb, bytes_per_block), dtype=np.uint8)
    scales = np.array([2.0 ** -12, -(2.0 ** -8), 2.0 ** -4], dtype=np.float32)
    for r in range(ROWS):
        d = SPECIAL if r == ROWS - 1 else (scales[r] * rng.uniform(0.5, 2.0, size=nb)).astype(np.float16).view(np.uint16)
        if name == "IQ1_M":   # its fp16 scale: the top nibble of each of the 4 scale words
            words = raw[r, :, 48:56].copy().view(np.uint16).reshape(nb, 4)
            for j in range(4):
                words[:, j] = (words[:, j] & 0x0FFF) | (((d >> (4 * j)) & 15) << 12)
            raw[r, :, 48:56] = words.view(np.uint8).reshape(nb, 8)
        else:
            raw[r, :, 0:2] = d.view(np.uint8).reshape(nb, 2)
    return raw.reshape(ROWS, -1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "iqgrid_refs.npz"))
    a = ap.parse_args()
    gb, gc = load(a.venv)
    rng = np.random.default_rng(20)

    x = rng.standard_normal((COLS, K)).astype(np.float32)
    x *= (np.float32(10.0) ** rng.integers(-2, 3, size=(COLS, 1))).astype(np.float32)
    from_float = FROM_FLOAT(gc.ggml_get_type_traits_cpu(Q8_K).contents.from_float)
    xq = np.empty((COLS, K // 256 * 292), dtype=np.uint8)
    for c in range(COLS):
        from_float(x[c].ctypes.data, xq[c].ctypes.data, K)

    out = {"x": x, "xq": xq}
    for name, (t, bb) in TYPES.items():
        w = weight_rows(rng, bb, name)
        to_float = TO_FLOAT(gb.ggml_get_type_traits(t).contents.to_float)
        vec_dot = VEC_DOT(gc.ggml_get_type_traits_cpu(t).contents.vec_dot)
        deq = np.empty((ROWS, K), dtype=np.float32)
        dots = np.empty((ROWS, COLS), dtype=np.float32)
        s = np.zeros(1, dtype=np.float32)
        for r in range(ROWS):
            to_float(w[r].ctypes.data, deq[r].ctypes.data, K)
            for c in range(COLS):
                vec_dot(K, s.ctypes.data, 0, w[r].ctypes.data, 0, xq[c].ctypes.data, 0, 1)
                dots[r, c] = s[0]
        out[f"{name}_w"], out[f"{name}_deq"], out[f"{name}_dot"] = w, deq, dots
    np.savez_compressed(a.out, **out)
    print(f"wrote {a.out} ({Path(a.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
