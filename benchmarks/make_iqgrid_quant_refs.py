#!/usr/bin/env python3
"""Writes tests/data/iqgrid_quant_refs.npz: rows of floats and the bytes llama.cpp's
quantizers of the grid i-quants (IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M)
make of them through ggml_quantize_chunk (libggml-base of llama-cpp-python's
virtual environment), with an importance matrix (random positive; all zero) and
without one where llama.cpp allows that.

    /work/main/.venv-llamacpp/bin/python benchmarks/make_iqgrid_quant_refs.py

Keys: x_N (rows of N floats), qw_N (the random positive imatrix of N), and
TYPE_CASE_N (the rows' bytes; CASE: w random weights, z zero weights, n none).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from make_iq_refs import load  # noqa: E402  (libggml-base / -cpu with their signatures)

TYPES = {"IQ3_XXS": 18, "IQ3_S": 21, "IQ2_XXS": 16, "IQ2_XS": 17, "IQ2_S": 22, "IQ1_S": 19, "IQ1_M": 29}
REQUIRES_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ1_S"}   # ggml_quantize_requires_imatrix (ggml.c)
LENGTHS = (256, 512, 1024)


def rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """random normal at three scales, heavy-tailed, all zero, constant, one
    outlier, groups of 32 zeroed (IQ3_S skips such groups), small integers"""
    out = [rng.standard_normal(n) * s for s in (0.02, 1.0, 30.0)]
    out.append(rng.standard_t(2, n) * 0.05)
    out += [np.zeros(n), np.full(n, 0.37)]
    spike = rng.standard_normal(n) * 0.01
    spike[rng.integers(n)] = 5.0
    out.append(spike)
    holes = rng.standard_normal(n)
    for g in rng.choice(n // 32, size=max(1, n // 128), replace=False):
        holes[32 * g:32 * g + 32] = 0
    out.append(holes)
    out.append(np.round(rng.standard_normal(n) * 3))
    return np.stack(out).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "iqgrid_quant_refs.npz"))
    a = ap.parse_args()
    ggml, _ = load(a.venv)
    rng = np.random.default_rng(20)
    out = {}
    for n in LENGTHS:
        x = rows(rng, n)
        qw = (rng.random(n) ** 3 * 10 + 1e-3).astype(np.float32)
        out[f"x_{n}"], out[f"qw_{n}"] = x, qw
        cases = {"w": qw, "z": np.zeros(n, np.float32), "n": None}
        for name, t in TYPES.items():
            for case, w in cases.items():
                if w is None and name in REQUIRES_IMATRIX:
                    continue
                y = np.zeros((x.shape[0], ggml.ggml_row_size(t, n)), np.uint8)
                ggml.ggml_quantize_chunk(t, x.ctypes.data, y.ctypes.data, 0, x.shape[0], n,
                                         None if w is None else w.ctypes.data)
                out[f"{name}_{case}_{n}"] = y
    np.savez_compressed(a.out, **out)
    print(f"{a.out}: {len(out)} arrays ({Path(a.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
