#!/usr/bin/env python3
"""Writes tests/data/ternary_refs.npz: llama.cpp's TQ1_0 and TQ2_0 numbers, from the
libggml-base / libggml-cpu of llama-cpp-python's virtual environment, per type T:

- T_q_x, T_q_bytes: edge rows of floats and the bytes ggml_quantize_chunk makes of them;
- T_dq_raw, T_dq_f32: random blocks (finite fp16 d) and ggml's to_float of them;
- T_mm_w, T_mm_x, T_mm_y: a matrix quantized by ggml_quantize_chunk, float activations,
  and llama.cpp's batch path: these types have no repacked or tinyBLAS kernel, so
  mul_mat quantizes each column with Q8_K's from_float and runs vec_dot
  (ggml_vec_dot_tq*_q8_K) per (row, column), which is what is called here.

    .venv-llamacpp/bin/python benchmarks/make_ternary_refs.py [--venv .venv-llamacpp]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fp4_refs import F32, write_refs  # noqa: E402

TYPES = {"TQ1_0": (34, 54), "TQ2_0": (35, 66)}   # ggml id, block bytes
Q8_K, N = 15, 256


def edge_rows(rng) -> np.ndarray:
    sparse = rng.standard_normal(N)
    sparse[rng.random(N) < 0.8] = 0
    half = np.resize([0.5, -0.5, 1.0, -1.0, 0.49, 0.51, 0.0], N)       # x / amax at the rounding ties
    rows = [np.zeros(N), np.full(N, 0.7), np.full(N, -2.0), rng.standard_normal(N) * 1e-20,
            rng.standard_normal(N) * 1e4, sparse, half, rng.choice([-1.0, 0.0, 1.0], N) * 0.03,
            rng.standard_t(3, N) * 0.02]
    rows += [rng.standard_normal(N) * s for s in (1e-3, 1.0, 100.0)]
    return np.stack(rows).astype(F32)


def make(g) -> dict:
    rng = np.random.default_rng(21)
    x = edge_rows(rng)
    out = {}
    for name, (t, bb) in TYPES.items():
        out[f"{name}_q_x"], out[f"{name}_q_bytes"] = x, g.quantize(t, x, bb)
        raw = rng.integers(0, 256, (64, bb), dtype=np.uint8)
        d = (rng.standard_normal(64) * 10.0 ** rng.integers(-4, 3, 64)).astype(np.float16)
        raw[:, bb - 2:] = d.view(np.uint8).reshape(64, 2)
        out[f"{name}_dq_raw"], out[f"{name}_dq_f32"] = raw, g.to_float(t, raw, 64 * N)
        k, rows = 768, 12
        w = rng.standard_normal((rows, k)) * rng.uniform(0.01, 10.0, (rows, 1))
        w[rows // 2:] = rng.choice([-1.0, 0.0, 1.0], (rows - rows // 2, k)) * 0.05   # truly ternary rows
        wq = g.quantize(t, w.astype(F32), k // N * bb)
        X = (rng.standard_normal((5, k)) * 10.0 ** rng.integers(-3, 4, (5, 1))).astype(F32)
        X[:, :N] *= 30.0                                    # one super-block far larger: the lanes' rounding shows
        xq = [g.from_float(Q8_K, np.ascontiguousarray(c), k // N * 292) for c in X]
        out[f"{name}_mm_w"], out[f"{name}_mm_x"] = wq, X
        out[f"{name}_mm_y"] = np.array([[g.vec_dot(t, k, r, c) for r in wq] for c in xq], F32)
    return out


if __name__ == "__main__":
    raise SystemExit(write_refs(__doc__, "ternary_refs.npz", make))
