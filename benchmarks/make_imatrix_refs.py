#!/usr/bin/env python3
"""Writes tests/data/imatrix_quant_refs.npz: rows of floats, importance matrices,
and the bytes llama.cpp's quantizers make of them with the importance matrix
(ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix)) for every
type llmlite has a weighted quantizer for, through the libggml-base of
llama-cpp-python's virtual environment (see compare_llamacpp.py).

    .venv-llamacpp/bin/python benchmarks/make_imatrix_refs.py [--venv .venv-llamacpp]

Layout: for each row length n in SIZES, x_<n> (ROW_KINDS rows of n floats) and
for each importance matrix kind k, im_<n>_<k> (n weights) and <TYPE>_<n>_<k>
(the quantized rows, one per x row).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from make_iq_refs import load

ROOT = Path(__file__).resolve().parents[1]
TYPES = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13,
         "Q6_K": 14, "IQ4_NL": 20, "IQ4_XS": 23}
SIZES = (256, 512, 1024)
ROW_KINDS = ("normal", "heavy", "zero", "constant", "outlier", "tiny")
IM_KINDS = ("positive", "zeros", "huge")


def make_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    outlier = rng.standard_normal(n) * 0.05
    outlier[rng.integers(n)] = 40.0
    rows = {"normal": rng.standard_normal(n), "heavy": rng.standard_t(2, n) * 0.02, "zero": np.zeros(n),
            "constant": np.full(n, -0.75), "outlier": outlier, "tiny": rng.standard_normal(n) * 1e-12}
    return np.stack([rows[k] for k in ROW_KINDS]).astype(np.float32)


def make_imatrix(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """importance weights as llama-imatrix makes them (mean squared activations:
    positive, spread over orders of magnitude), some zero, or one huge"""
    im = np.exp(rng.standard_normal(n) * 1.5)
    if kind == "zeros":
        im[rng.random(n) < 0.3] = 0
        im[: n // 8] = 0          # a whole sub-block (and a whole 32-block) of zeros
    elif kind == "huge":
        im[rng.integers(n)] = 1e6
    return im.astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "imatrix_quant_refs.npz"))
    a = ap.parse_args()
    base, _cpu = load(a.venv)
    rng = np.random.default_rng(20)
    out = {}
    for n in SIZES:
        x = make_rows(rng, n)
        out[f"x_{n}"] = x
        for k in IM_KINDS:
            im = make_imatrix(rng, n, k)
            out[f"im_{n}_{k}"] = im
            for name, t in TYPES.items():
                y = np.zeros((x.shape[0], base.ggml_row_size(t, n)), np.uint8)
                base.ggml_quantize_chunk(t, x.ctypes.data, y.ctypes.data, 0, x.shape[0], n, im.ctypes.data)
                out[f"{name}_{n}_{k}"] = y
    np.savez_compressed(a.out, **out)
    print(f"{a.out}: {len(SIZES)} sizes x {len(IM_KINDS)} importance matrices x {len(TYPES)} types "
          f"({Path(a.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
