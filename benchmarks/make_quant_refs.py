#!/usr/bin/env python3
"""Writes tests/data/quant_refs.npz: rows of floats (edge cases, real SmolLM2 weights,
random rows of many scales) and the bytes llama.cpp's reference quantizers make of
them for the K-quant types; and the sha256 of what they make of every 2-D SmolLM2
tensor (dequantized) for every type llmlite writes (its first 8 bytes), through ggml_quantize_chunk in the libggml-base
of llama-cpp-python's virtual environment (see compare_llamacpp.py).

    .venv-llamacpp/bin/python benchmarks/make_quant_refs.py [--venv .venv-llamacpp]
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the K-quants (gguf-py has no quantizer for them; the tests check the other types
# against gguf-py's, which match llama.cpp's bit for bit)
TYPES = {"Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}
N = 256


def rows() -> np.ndarray:
    from llmlite import _lib
    from llmlite.gguf import open_gguf
    from llmlite.registry import ensure_model

    rng = np.random.default_rng(2026)
    edge = [np.zeros(N), np.full(N, 0.5), np.full(N, -3.0), rng.standard_normal(N) * 1e-20,
            rng.standard_normal(N) * 1e4, np.round(rng.standard_normal(N) * 4) / 4,
            np.abs(rng.standard_normal(N)), -np.abs(rng.standard_normal(N)), rng.standard_t(2, N) * 0.02]
    sparse = rng.standard_normal(N)
    sparse[rng.random(N) < 0.8] = 0
    edge.append(sparse)
    with open_gguf(ensure_model("smollm2-135m", quiet=True)) as g:
        real = []
        for name in ("blk.0.ffn_down.weight", "blk.7.attn_v.weight", "token_embd.weight"):
            t = g.tensors[name]
            w = _lib.dequantize(t.type, g.tensor_data(name), t.n_elements).reshape(-1, t.shape[0])
            real += [w[i, :N] for i in range(0, 48, 12)]
    scaled = [rng.standard_normal(N) * s for s in (1e-3, 0.01, 0.1, 1.0, 10.0, 100.0)]
    return np.stack(edge + real + scaled).astype(np.float32)


ALL_TYPES = {"F16": 1, "BF16": 30, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, **TYPES}


def real_tensors():
    """(name, rows x ne0 float32) for every 2-D SmolLM2 tensor, dequantized"""
    from llmlite import _lib
    from llmlite.gguf import open_gguf
    from llmlite.registry import ensure_model

    with open_gguf(ensure_model("smollm2-135m", quiet=True)) as g:
        for name, t in g.tensors.items():
            if len(t.shape) == 2:
                yield name, _lib.dequantize(t.type, g.tensor_data(name), t.n_elements).reshape(-1, t.shape[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "quant_refs.npz"))
    a = ap.parse_args()
    libs = glob.glob(str(Path(a.venv) / "lib" / "python3*" / "site-packages" / "llama_cpp" / "lib" / "libggml-base.so"))
    if not libs:
        sys.exit(f"no libggml-base.so under {a.venv}: build llama-cpp-python there first (compare_llamacpp.py)")
    ggml = ctypes.CDLL(libs[0])
    ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
    ggml.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                         ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    ggml.ggml_row_size.restype = ctypes.c_size_t
    ggml.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    x = rows()
    out = {"x": x}
    for name, t in TYPES.items():
        y = np.zeros((x.shape[0], ggml.ggml_row_size(t, N)), np.uint8)
        ggml.ggml_quantize_chunk(t, x.ctypes.data, y.ctypes.data, 0, x.shape[0], N, None)
        out[name] = y
    import hashlib

    names, digests = [], {n: [] for n in ALL_TYPES}
    for tname, w in real_tensors():
        names.append(tname)
        for name, t in ALL_TYPES.items():
            be = 256 if t in TYPES.values() else 32 if t not in (1, 30) else 1
            if w.shape[1] % be:
                digests[name].append(bytes(8))
                continue
            y = np.zeros((w.shape[0], ggml.ggml_row_size(t, w.shape[1])), np.uint8)
            ggml.ggml_quantize_chunk(t, np.ascontiguousarray(w).ctypes.data, y.ctypes.data, 0, w.shape[0], w.shape[1], None)
            digests[name].append(hashlib.sha256(y.tobytes()).digest()[:8])   # 64 bits: enough to see a change
    out["real_names"] = np.array(names)
    for name, d in digests.items():
        out["real_" + name] = np.frombuffer(b"".join(d), np.uint8).reshape(len(d), 8)
    np.savez_compressed(a.out, **out)
    print(f"{a.out}: {x.shape[0]} rows of {N}, {len(TYPES)} types ({Path(a.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
