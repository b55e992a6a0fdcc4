#!/usr/bin/env python3
"""Writes tests/data/fp4_refs.npz: llama.cpp's MXFP4 numbers, from the libggml-base /
libggml-cpu of llama-cpp-python's virtual environment (see compare_llamacpp.py):

- q_x, q_bytes: edge rows of floats (zeros, constants, tiny, huge, sparse, ties,
  real-scaled) and the bytes ggml_quantize_chunk makes of them;
- dq_raw, dq_f32: random blocks (every exponent byte) and ggml's to_float of them;
- mm_*: matrices quantized by ggml_quantize_chunk (W, its bytes), float activations X,
  and y (ncols x rows) from llama.cpp's batch path itself: the weights repacked to
  block_mxfp4x8 as repack.cpp's repack_mxfp4_to_mxfp4_8_bl lays them out, the
  activations quantized as forward_mul_mat does (ggml_quantize_mat_t<8, Q8_0> per 4
  columns, from_float for the rest), then ggml_gemm_mxfp4_8x8_q8_0 on the groups of 4
  columns and ggml_gemv_mxfp4_8x8_q8_0 on the leftovers (repack.cpp's
  forward_mul_mat_one_chunk); y_vec_dot: ggml_vec_dot_mxfp4_q8_0 per (row, column),
  the non-batch kernel, for the record (it sums in another order);
- nv_*: the same for NVFP4 (edge rows, every scale byte, matrices), whose batch path is
  its vec_dot (no repacked or tinyBLAS kernel): nv_mm_*_y from ggml_vec_dot_nvfp4_q8_0
  on Q8_0 from_float columns.

    .venv-llamacpp/bin/python benchmarks/make_fp4_refs.py [--venv .venv-llamacpp]
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MXFP4, NVFP4, Q8_0 = 39, 40, 8
N = 256
F32 = np.float32


class TypeTraits(ctypes.Structure):      # ggml.h struct ggml_type_traits
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64), ("blck_size_interleave", ctypes.c_int64),
                ("type_size", ctypes.c_size_t), ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


class TypeTraitsCpu(ctypes.Structure):   # ggml-cpu.h struct ggml_type_traits_cpu
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p), ("vec_dot_type", ctypes.c_int),
                ("nrows", ctypes.c_int64)]


ROW_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)       # to_float, from_float
VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
GEMX = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]


class Ggml:
    def __init__(self, venv: str):
        lib = Path(venv) / "lib"
        base = glob.glob(str(lib / "python3*" / "site-packages" / "llama_cpp" / "lib" / "libggml-base.so"))
        if not base:
            sys.exit(f"no libggml-base.so under {venv}: build llama-cpp-python there first (compare_llamacpp.py)")
        self.base = ctypes.CDLL(base[0], mode=ctypes.RTLD_GLOBAL)
        self.cpu = ctypes.CDLL(str(Path(base[0]).with_name("libggml-cpu.so")))
        self.cpu.ggml_cpu_init()     # fills the E8M0 table the kernels read
        b, c = self.base, self.cpu
        b.ggml_quantize_chunk.restype = ctypes.c_size_t
        b.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        b.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
        c.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TypeTraitsCpu)
        for name in ("ggml_gemm_mxfp4_8x8_q8_0", "ggml_gemv_mxfp4_8x8_q8_0"):
            getattr(c, name).argtypes, getattr(c, name).restype = GEMX, None
        # ggml_quantize_mat_t<8, GGML_TYPE_Q8_0>(const float *, void *, int64_t nrow, int64_t n_per_row)
        qm = getattr(c, "_Z19ggml_quantize_mat_tILl8EL9ggml_type8EEvPKfPvll")
        qm.argtypes, qm.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64], None
        self.quantize_mat = qm

    def quantize(self, t: int, x: np.ndarray, row_bytes: int) -> np.ndarray:
        x = np.ascontiguousarray(x, F32)
        y = np.zeros((x.shape[0], row_bytes), np.uint8)
        self.base.ggml_quantize_chunk(t, x.ctypes.data, y.ctypes.data, 0, x.shape[0], x.shape[1], None)
        return y

    def to_float(self, t: int, raw: np.ndarray, n: int) -> np.ndarray:
        y = np.zeros(n, F32)
        ROW_FN(self.base.ggml_get_type_traits(t).contents.to_float)(raw.ctypes.data, y.ctypes.data, n)
        return y

    def from_float(self, t: int, x: np.ndarray, row_bytes: int) -> np.ndarray:
        y = np.zeros(row_bytes, np.uint8)
        ROW_FN(self.cpu.ggml_get_type_traits_cpu(t).contents.from_float)(x.ctypes.data, y.ctypes.data, x.size)
        return y

    def vec_dot(self, t: int, k: int, w: np.ndarray, a: np.ndarray) -> float:
        s = np.zeros(1, F32)
        VEC_DOT(self.cpu.ggml_get_type_traits_cpu(t).contents.vec_dot)(k, s.ctypes.data, 0, w.ctypes.data, 0,
                                                                        a.ctypes.data, 0, 1)
        return float(s[0])


def repack_x8(wq: np.ndarray, k: int) -> np.ndarray:
    """MXFP4 rows (rows % 8 == 0) -> block_mxfp4x8 (repack.cpp, interleave 8): per group of
    8 rows and block b, the 8 exponents, then 8-byte chunks c = 0..15 taken from row c % 8,
    bytes 8 * (c // 8) .. + 8 of its 16 code bytes."""
    rows, nb = wq.shape[0], k // 32
    blocks = wq.reshape(rows // 8, 8, nb, 17)
    e = blocks[..., 0].transpose(0, 2, 1)                          # (group, block, row)
    qs = blocks[..., 1:].reshape(rows // 8, 8, nb, 2, 8)         # (group, row, block, half, byte)
    chunks = qs.transpose(0, 2, 3, 1, 4).reshape(rows // 8, nb, 128)
    return np.ascontiguousarray(np.concatenate([e, chunks], axis=2))


def batch_matmul(g: Ggml, wq: np.ndarray, k: int, X: np.ndarray) -> np.ndarray:
    """llama.cpp's repacked batch path (forward_mul_mat) for all columns of X."""
    rows, ncols = wq.shape[0], X.shape[0]
    rb = k // 32 * 34
    packed = repack_x8(wq, k)
    X = np.ascontiguousarray(X, F32)
    act = np.zeros(ncols * rb, np.uint8)                     # per column rb bytes (4 at a time interleaved)
    full = ncols - ncols % 4
    for c in range(0, full, 4):
        g.quantize_mat(X[c:].ctypes.data, act[c * rb:].ctypes.data, 4, k)
    for c in range(full, ncols):
        act[c * rb:(c + 1) * rb] = g.from_float(Q8_0, X[c], rb)
    y = np.zeros((ncols, rows), F32)
    if full:
        g.cpu.ggml_gemm_mxfp4_8x8_q8_0(k, y.ctypes.data, rows, packed.ctypes.data, act.ctypes.data, full, rows)
    for c in range(full, ncols):
        g.cpu.ggml_gemv_mxfp4_8x8_q8_0(k, y[c:].ctypes.data, rows, packed.ctypes.data, act[c * rb:].ctypes.data, 1, rows)
    return y


def edge_rows(rng) -> np.ndarray:
    sparse = rng.standard_normal(N)
    sparse[rng.random(N) < 0.8] = 0
    levels = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6])
    ties = (levels[:-1] + levels[1:]) / 2                    # midpoints between E2M1 levels: the first best wins
    tie_row = np.resize(np.concatenate([ties, -ties, [6.0]]), N) * 0.25
    rows = [np.zeros(N), np.full(N, 0.5), np.full(N, -3.0), np.full(N, 6.0 * 2.0 ** -3),
            rng.standard_normal(N) * 1e-20, rng.standard_normal(N) * 1e-38, rng.standard_normal(N) * 1e-41, rng.standard_normal(N) * 1e30,
            rng.standard_normal(N) * 1e38, sparse, tie_row, np.round(rng.standard_normal(N) * 4) / 4,
            rng.standard_t(3, N) * 0.02, rng.standard_normal(N) * 0.02 + rng.standard_normal(N) ** 5 * 0.01]
    rows += [rng.standard_normal(N) * s for s in (1e-3, 0.1, 1.0, 100.0)]
    return np.stack(rows).astype(F32)


def matrices(rng):
    """(name, W rows x k, X ncols x k): random rows of many scales, and real-scaled ones (heavy-tailed
    weights of std ~0.02 as in trained models, activations of a normed hidden state's size)"""
    k = 256
    w = rng.standard_normal((16, k)) * rng.uniform(0.01, 10.0, (16, 1))
    x = rng.standard_normal((7, k)) * 10.0 ** rng.integers(-3, 4, (7, 1))
    x[:, :32] *= 50.0                                        # one block far larger: the chain's rounding shows
    yield "rand", w.astype(F32), x.astype(F32)
    k = 576
    w = rng.standard_t(4, (24, k)) * 0.02
    x = rng.standard_normal((6, k)) * np.exp(rng.standard_normal((1, k)))   # some features much larger
    yield "real", w.astype(F32), x.astype(F32)


def write_refs(doc: str, name: str, make) -> int:
    """The command line of the refs scripts: --venv (llama-cpp-python's), --out (default
    tests/data/NAME); make(ggml) returns the arrays to save."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / name))
    a = ap.parse_args()
    np.savez_compressed(a.out, **make(Ggml(a.venv)))
    print(f"{a.out}: {Path(a.out).stat().st_size} bytes")
    return 0


def make(g: Ggml) -> dict:
    rng = np.random.default_rng(20)
    x = edge_rows(rng)
    out = {"q_x": x, "q_bytes": g.quantize(MXFP4, x, N // 32 * 17)}
    raw = rng.integers(0, 256, (256, 17), dtype=np.uint8)
    raw[:, 0] = np.arange(256)                                # every exponent byte
    out["dq_raw"], out["dq_f32"] = raw, g.to_float(MXFP4, raw, 256 * 32)
    for name, w, X in matrices(rng):
        k = w.shape[1]
        wq = g.quantize(MXFP4, w, k // 32 * 17)
        out[f"mm_{name}_w"], out[f"mm_{name}_x"] = wq, X
        out[f"mm_{name}_y"] = batch_matmul(g, wq, k, X)
        xq = [g.from_float(Q8_0, np.ascontiguousarray(c), k // 32 * 34) for c in X]
        out[f"mm_{name}_y_vec_dot"] = np.array([[g.vec_dot(MXFP4, k, r, c) for r in wq] for c in xq], F32)
    out["nv_q_x"], out["nv_q_bytes"] = x, g.quantize(NVFP4, x, N // 64 * 36)
    raw = rng.integers(0, 256, (64, 36), dtype=np.uint8)
    raw[:, :4] = np.arange(256).reshape(64, 4)                # every scale byte
    out["nv_dq_raw"], out["nv_dq_f32"] = raw, g.to_float(NVFP4, raw, 64 * 64)
    for name, w, X in matrices(rng):
        k = w.shape[1] // 64 * 64
        w, X = np.ascontiguousarray(w[:, :k]), np.ascontiguousarray(X[:, :k])
        wq = g.quantize(NVFP4, w, k // 64 * 36)
        xq = [g.from_float(Q8_0, c, k // 32 * 34) for c in X]
        out[f"nv_mm_{name}_w"], out[f"nv_mm_{name}_x"] = wq, X
        out[f"nv_mm_{name}_y"] = np.array([[g.vec_dot(NVFP4, k, r, c) for r in wq] for c in xq], F32)
    return out


if __name__ == "__main__":
    raise SystemExit(write_refs(__doc__, "fp4_refs.npz", make))
