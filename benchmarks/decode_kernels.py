"""Decode's one-column matmul over the interleaved weight copies (llm_matmul_x4), per
weight shape of a model file, in GB/s of weight bytes read.

Two figures: each distinct shape alone, timed over and over so that its copy sits in
the cache (the kernel's own speed, what the memory does not limit), and the first
tensors of the file together (over the last level cache: streamed from memory, as in
decode). Medians of several passes, at 1 and 2 threads. The activations are
quantized inside each call (as in decode), so tiny shapes include that and the
thread pool's dispatch.

    PYTHONPATH=$PWD python3 benchmarks/decode_kernels.py MODEL.gguf [--threads 1,2]
"""
import argparse
import sys

import numpy as np

from llmlite import _lib
from llmlite._lib import ffi, lib
from llmlite.gguf import open_gguf
from llmlite.gguf.constants import type_name


def prep(g, name):
    t = g.tensors[name]
    k, rows = int(t.shape[0]), int(t.shape[1])
    d = g.tensor_data(name)
    w = np.empty(d.nbytes, np.uint8)
    rc = lib.llm_repack_x4(t.type, ffi.cast("void*", d.ctypes.data), ffi.cast("void*", w.ctypes.data), rows, k)
    assert rc == 0, name
    x = np.random.default_rng(0).standard_normal(k).astype(np.float32)
    return t.type, w, rows, k, x, np.empty(rows, np.float32)


def passes(jobs, reps, gemv):
    """GB/s of each of reps passes over jobs"""
    nb = sum(j[1].nbytes for j in jobs)
    out = []
    for _ in range(reps):
        t0 = lib.llm_now()
        for ty, w, rows, k, x, y in jobs:
            rc = lib.llm_matmul_x4(ty, gemv, ffi.cast("void*", w.ctypes.data), rows, k,
                                   ffi.cast("float*", x.ctypes.data), 1, ffi.cast("float*", y.ctypes.data))
            assert rc == 0
        out.append(nb / (lib.llm_now() - t0) / 1e9)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--cache-bytes", type=float, default=200e6, help="bytes of weights each cache-resident figure times")
    ap.add_argument("--set", type=int, default=60, help="tensors in the from-memory set")
    ap.add_argument("--passes", type=int, default=7)
    a = ap.parse_args()
    g = open_gguf(a.model)
    names = [n for n, t in g.tensors.items()
             if len(t.shape) == 2 and "blk." in n and lib.llm_repack_takes(t.type) and int(t.shape[1]) % 4 == 0]
    shapes = {}
    for n in names:
        t = g.tensors[n]
        shapes.setdefault((t.type, int(t.shape[1]), int(t.shape[0])), n)
    big = [prep(g, n) for n in names[:a.set]]
    setmb = sum(j[1].nbytes for j in big) / 1e6
    for nth in [int(v) for v in a.threads.split(",")]:
        _lib.set_threads(nth)
        print(f"threads {nth}")
        for (ty, rows, k), n in shapes.items():
            j = [prep(g, n)]
            reps = max(20, int(a.cache_bytes / j[0][1].nbytes))
            row = f"  {type_name(ty):5s} {rows:6d} x {k:6d} ({n.split('.', 2)[-1]}): cache-resident GB/s median"
            for gemv in ((0, 1) if type_name(ty) == "Q4_K" else (0,)):
                med = [float(np.median(passes(j, reps, gemv))) for _ in range(a.passes)]
                row += f"  gemv{gemv} {np.median(med):6.1f} (passes {min(med):.1f}-{max(med):.1f})"
            print(row)
            sys.stdout.flush()
        v = passes(big, a.passes, 0)
        print(f"  from memory, first {len(big)} tensors ({setmb:.0f} MB) gemv0: median {np.median(v):.1f} GB/s"
              f" (passes {min(v):.1f}-{max(v):.1f})")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
