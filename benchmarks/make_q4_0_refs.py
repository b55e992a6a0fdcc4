#!/usr/bin/env python3
"""Writes tests/data/q4_0_refs.npz: llama.cpp's batch-path matmul results for Q4_0,
through the libggml of llama-cpp-python's virtual environment (the one-op ggml graph of
make_iq_refs.py).

On AVX2 and up, ggml repacks a Q4_0 weight whose row count is a multiple of 8
(repack.cpp: q4_0_8x8_q8_0) and its mul_mat then runs ggml_gemm_q4_0_8x8_q8_0 (4
columns at a time) and ggml_gemv_q4_0_8x8_q8_0 (the last ncols % 4); other Q4_0
weights stay unrepacked (tinyBLAS / vec_dot). For a random and a real-scaled matrix
(SmolLM2 rows) at 40 rows (repacked) and 36 rows (not), k = 512, it stores the bytes
(ggml_quantize_chunk) and the result against 19 activation columns with the weight in
the CPU repack buffer where its row count lets ggml repack it, else a plain CPU buffer
(what llama.cpp's model loader does), and, to show the two orders
differ, the 40-row results with the weight in a plain CPU buffer. It checks that the
repacked results of 1, 4 and 5 columns equal the 19-column ones (gemm and gemv agree).

    python3 benchmarks/make_q4_0_refs.py [--venv .venv-llamacpp]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_iq_refs import K, activations, load, matrices, mul_mat, quantize  # noqa: E402

Q4_0 = 2
ROW_COUNTS = (40, 36)


def ggml_stage(venv: str, inp: str, dest: str) -> None:
    base, cpu = load(venv)
    src = np.load(inp)
    X = src["X"]
    out = {"X": X}
    repack, plain = cpu._Z35ggml_backend_cpu_repack_buffer_typev(), base.ggml_backend_cpu_buffer_type()
    for mname in ("random", "real"):
        for rows in ROW_COUNTS:
            wq = quantize(base, Q4_0, src[f"m_{mname}"][:rows])
            # the loader puts a weight in the repack buffer only where it repacks it
            buft = repack if rows % 8 == 0 else plain
            y = mul_mat(base, cpu, Q4_0, wq, X, buft)
            for nc in (1, 4, 5):   # the repacked path is batch invariant: gemm and gemv agree
                if rows % 8 == 0:
                    assert np.array_equal(mul_mat(base, cpu, Q4_0, wq, X[:nc], repack).view(np.uint32),
                                          y[:nc].view(np.uint32)), (mname, rows, nc)
            out[f"w_{mname}_{rows}"], out[f"y_{mname}_{rows}"] = wq, y
            if rows % 8 == 0:
                out[f"yplain_{mname}_{rows}"] = mul_mat(base, cpu, Q4_0, wq, X, plain)
    np.savez_compressed(dest, **out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "q4_0_refs.npz"))
    ap.add_argument("--ggml-stage", metavar="INPUTS", help=argparse.SUPPRESS)   # the venv's half
    a = ap.parse_args()
    if a.ggml_stage:
        ggml_stage(a.venv, a.ggml_stage, a.out)
        return 0
    import subprocess
    import tempfile

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        inp = str(Path(tmp) / "inputs.npz")
        np.savez(inp, X=activations(), **{f"m_{n}": w for n, w in matrices()})
        subprocess.run([str(Path(a.venv) / "bin" / "python"), __file__, "--venv", a.venv, "--out", a.out,
                        "--ggml-stage", inp], check=True)
    print(f"{a.out}: Q4_0 {ROW_COUNTS} rows x {K}, {len(activations())} columns ({Path(a.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
