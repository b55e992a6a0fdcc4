#!/usr/bin/env python3
"""What a speculative verify pass costs against a plain decode step: the median time
of Model.step (one token) and of Model.eval over 1+k tokens, at a given context fill.
Prompt-lookup pays off only when the drafted columns are cheap next to a step.

Usage: python benchmarks/verify_cost.py [MODEL] [--fill 300] [-t 2] [--reps 30]"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmlite.model import load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="smollm2-135m")
    ap.add_argument("--fill", type=int, default=300, help="tokens in the KV cache before timing")
    ap.add_argument("-t", "--threads", type=int, default=None)
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    m = load(a.model, n_ctx=a.fill + 64, threads=a.threads)
    m.eval(np.random.default_rng(1).integers(10, 3000, a.fill).tolist())
    base = m.n_past

    def median_ms(fn) -> float:
        ts = []
        for _ in range(a.reps):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
            m.truncate(base)
        return 1e3 * float(np.median(ts))

    step = median_ms(lambda: m.step(11))
    print(f"{a.model}, context fill {a.fill}, {m.threads} threads: plain step {step:.2f} ms")
    for k in (0, 1, 2, 4, 8, 16):
        ms = median_ms(lambda: m.eval([11] * (k + 1)))
        print(f"  verify 1+{k:<2} tokens  {ms:7.2f} ms  ({(ms - step) / k if k else 0:.2f} ms per drafted token)")


if __name__ == "__main__":
    main()
