#!/usr/bin/env python3
"""Prefill matmul benchmark: llm_matmul on a batch of columns (pp512's shape) for
random Q4_K and Q6_K weights of a 1.5 B model's matrix shapes (Qwen2.5-1.5B:
width 1536, FFN 8960, 2 KV heads of 128), with 1 and 2 threads; GOP/s =
2 * rows * k * cols / s, the median of several timed runs.

    python3 benchmarks/prefill_kernels.py [--types Q4_K Q6_K] [--threads 1 2] [--cols 512]
                                          [--repeats 5] [--shapes 1536x1536 8960x1536] [--isa avx512]
                                          [--clock cpu]

The weights are quantized with llmlite's reference quantizer (llm_quantize_rows),
from normal random floats. The activations' conversion to Q8_K is inside the
timing (as in the forward pass). On a shared machine compare figures taken back
to back.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np

from llmlite import _lib
from llmlite.gguf.constants import GGMLType

# rows x k of Qwen2.5-1.5B's matrices: Q/O, K/V, gate/up, down (the head, 151936 x 1536, by --shapes)
SHAPES = ["1536x1536", "256x1536", "8960x1536", "1536x8960"]


def weights(wtype: int, rows: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((rows, _lib.row_bytes(wtype, k)), np.uint8)
    step = 1024
    for r in range(0, rows, step):   # in slices: the float matrix of the head would be 0.9 GB
        x = rng.standard_normal((min(step, rows - r), k), dtype=np.float32)
        out[r:r + len(x)] = _lib.quantize_rows(wtype, x)
    return out


def time_matmul(wtype: int, W: np.ndarray, rows: int, k: int, X: np.ndarray, repeats: int, clock) -> float:
    _lib.matmul(wtype, W, rows, k, X)   # warm: scratch buffers, caches, thread pool
    ts = []
    for _ in range(repeats):
        t0 = clock()
        _lib.matmul(wtype, W, rows, k, X)
        ts.append(clock() - t0)
    return statistics.median(ts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--types", nargs="+", default=["Q4_K", "Q6_K"])
    ap.add_argument("--shapes", nargs="+", default=SHAPES, help="rows x k, e.g. 8960x1536")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--cols", type=int, default=512, help="activation columns (tokens)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per case (the median is shown)")
    ap.add_argument("--isa", default=None, help="kernel table to use (scalar, avx2, avx512)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: the process's CPU seconds (all threads), steadier on a busy machine: "
                         "GOP/s per CPU-second")
    a = ap.parse_args(argv)

    if a.isa and _lib.lib.llm_set_isa(a.isa.encode()) != 0:
        print(f"this CPU does not run {a.isa}", file=sys.stderr)
        return 2
    X = np.random.default_rng(1).standard_normal((a.cols, max(int(s.split("x")[1]) for s in a.shapes)),
                                                 dtype=np.float32)
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    print(f"isa {_lib.isa()}, {a.cols} columns, median of {a.repeats}; GOP/s = 2*rows*k*cols/s ({a.clock} clock)")
    print(f"{'type':6} {'rows x k':>12} " + " ".join(f"{str(t) + ' thr':>10}" for t in a.threads))
    for tname in a.types:
        wtype = int(getattr(GGMLType, tname))
        for shape in a.shapes:
            rows, k = (int(v) for v in shape.split("x"))
            W = weights(wtype, rows, k, seed=rows * 7 + k)
            Xk = np.ascontiguousarray(X[:, :k])
            cells = []
            for nt in a.threads:
                _lib.set_threads(nt)
                dt = time_matmul(wtype, W, rows, k, Xk, a.repeats, clock)
                cells.append(f"{2 * rows * k * a.cols / dt / 1e9:10.1f}")
            print(f"{tname:6} {shape:>12} " + " ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
