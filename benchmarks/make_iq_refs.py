#!/usr/bin/env python3
"""Writes tests/data/iq4_refs.npz: llama.cpp's own bytes, values and matmul results for
IQ4_NL and IQ4_XS, through the libggml of llama-cpp-python's virtual environment:

- the edge and real rows of make_quant_refs.py quantized by ggml_quantize_chunk (what
  llama-quantize runs, no importance matrix), and ggml's to_float of those bytes;
- for a random and a real-scaled weight matrix (40 rows x 512), its bytes and the result
  of a one-op ggml graph (mul_mat) against 19 activation columns, computed as llama.cpp's
  batch path computes it: the weight in the CPU repack buffer (IQ4_NL: repacked to
  iq4_nl_8x8 and multiplied by ggml_gemm_iq4_nl_8x8_q8_0 for 16 columns, its gemv for
  the last 3).
  IQ4_XS has no repack on x86: with 8 or more columns its mul_mat takes the tiled matmul
  (ggml-cpu/tiled). 40 rows and 19 columns reach both the AVX-512 and the AVX2 parts of
  the gemm and the tiled matmul's ragged tiles. Each is also run through llama.cpp's other
  path (IQ4_NL: the weight in a plain CPU buffer, tinyBLAS / vec_dot; IQ4_XS: 7 columns
  at a time, its vec_dot), to show that the two paths give different bits;
- SmolLM2 quantized to IQ4_XS by llama.cpp's llama_model_quantize (from an F16 GGUF of
  the cached model): the sha256 (first 8 bytes) of llama.cpp's logits at each position
  of a 24-token batch (its batch kernels), whose bits llmlite's batch and decode match.

    python3 benchmarks/make_iq_refs.py [--venv .venv-llamacpp]

Run by the project's python (llmlite reads the SmolLM2 rows), it runs itself again under
the venv's python (which has llama.cpp's libraries, not llmlite's) for the ggml part.
"""
from __future__ import annotations

import argparse
import ctypes as C
import glob
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TYPES = {"IQ4_NL": 20, "IQ4_XS": 23}
ROWS, K, NCOLS = 40, 512, 19


class InitParams(C.Structure):
    _fields_ = [("mem_size", C.c_size_t), ("mem_buffer", C.c_void_p), ("no_alloc", C.c_bool)]


class TypeTraits(C.Structure):   # ggml.h's struct ggml_type_traits (the fields up to to_float)
    _fields_ = [("type_name", C.c_char_p), ("blck_size", C.c_int64), ("blck_size_interleave", C.c_int64),
                ("type_size", C.c_size_t), ("is_quantized", C.c_bool), ("to_float", C.c_void_p)]


def load(venv: str):
    d = glob.glob(str(Path(venv) / "lib" / "python3*" / "site-packages" / "llama_cpp" / "lib"))
    if not d:
        sys.exit(f"no llama_cpp/lib under {venv}: build llama-cpp-python there first (compare_llamacpp.py)")
    base, cpu = C.CDLL(str(Path(d[0]) / "libggml-base.so")), C.CDLL(str(Path(d[0]) / "libggml-cpu.so"))
    P = C.c_void_p
    sigs = [(base, "ggml_quantize_chunk", C.c_size_t, [C.c_int, P, P, C.c_int64, C.c_int64, C.c_int64, P]),
            (base, "ggml_row_size", C.c_size_t, [C.c_int, C.c_int64]),
            (base, "ggml_get_type_traits", C.POINTER(TypeTraits), [C.c_int]),
            (base, "ggml_init", P, [InitParams]),
            (base, "ggml_free", None, [P]),
            (base, "ggml_new_tensor_2d", P, [P, C.c_int, C.c_int64, C.c_int64]),
            (base, "ggml_mul_mat", P, [P, P, P]),
            (base, "ggml_new_graph", P, [P]),
            (base, "ggml_build_forward_expand", None, [P, P]),
            (base, "ggml_get_data", P, [P]),
            (base, "ggml_backend_alloc_ctx_tensors_from_buft", P, [P, P]),
            (base, "ggml_backend_buffer_free", None, [P]),
            (base, "ggml_backend_tensor_set", None, [P, P, C.c_size_t, C.c_size_t]),
            (base, "ggml_backend_cpu_buffer_type", P, []),
            (cpu, "ggml_cpu_init", None, []),
            (cpu, "ggml_graph_compute_with_ctx", C.c_int, [P, P, C.c_int]),
            (cpu, "_Z35ggml_backend_cpu_repack_buffer_typev", P, [])]   # C++ linkage: its mangled name
    for lib, name, res, args in sigs:
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    cpu.ggml_cpu_init()
    return base, cpu


def quantize(base, t: int, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    y = np.zeros((x.shape[0], base.ggml_row_size(t, x.shape[1])), np.uint8)
    base.ggml_quantize_chunk(t, x.ctypes.data, y.ctypes.data, 0, x.shape[0], x.shape[1], None)
    return y


def to_float(base, t: int, q: np.ndarray, n: int) -> np.ndarray:
    fn = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_int64)(base.ggml_get_type_traits(t).contents.to_float)
    out = np.zeros(n, np.float32)
    fn(np.ascontiguousarray(q).ctypes.data, out.ctypes.data, n)
    return out


def mul_mat(base, cpu, t: int, wq: np.ndarray, X: np.ndarray, buft) -> np.ndarray:
    """Y (ncols, rows) = X W^T by a one-op ggml graph, the weight in buffer type buft
    (set through the buffer, which repacks it where buft is the repack buffer)."""
    rows, k = wq.shape[0], X.shape[1]
    wctx = base.ggml_init(InitParams(1 << 16, None, True))
    W = base.ggml_new_tensor_2d(wctx, t, k, rows)
    buf = base.ggml_backend_alloc_ctx_tensors_from_buft(wctx, buft)
    wq = np.ascontiguousarray(wq)
    base.ggml_backend_tensor_set(W, wq.ctypes.data, 0, wq.nbytes)
    ctx = base.ggml_init(InitParams(64 << 20, None, False))
    Xt = base.ggml_new_tensor_2d(ctx, 0, k, X.shape[0])   # F32
    C.memmove(base.ggml_get_data(Xt), np.ascontiguousarray(X, np.float32).ctypes.data, X.size * 4)
    Y = base.ggml_mul_mat(ctx, W, Xt)
    gf = base.ggml_new_graph(ctx)
    base.ggml_build_forward_expand(gf, Y)
    assert cpu.ggml_graph_compute_with_ctx(ctx, gf, 2) == 0
    out = np.zeros((X.shape[0], rows), np.float32)
    C.memmove(out.ctypes.data, base.ggml_get_data(Y), out.nbytes)
    base.ggml_free(ctx)
    base.ggml_backend_buffer_free(buf)
    base.ggml_free(wctx)
    return out


def matrices():
    """(name, ROWS x K float32): random rows of spread scales, and real SmolLM2 rows"""
    from llmlite import _lib
    from llmlite.gguf import open_gguf
    from llmlite.registry import ensure_model

    rng = np.random.default_rng(20)
    rnd = rng.standard_normal((ROWS, K)) * rng.uniform(0.01, 10.0, (ROWS, 1))
    with open_gguf(ensure_model("smollm2-135m", quiet=True)) as g:
        t = g.tensors["blk.3.ffn_down.weight"]
        real = _lib.dequantize(t.type, g.tensor_data("blk.3.ffn_down.weight"), t.n_elements).reshape(-1, t.shape[0])
    return [("random", rnd.astype(np.float32)), ("real", np.ascontiguousarray(real[:ROWS, :K]))]


def activations() -> np.ndarray:
    rng = np.random.default_rng(21)
    X = rng.standard_normal((NCOLS, K)) * 10.0 ** rng.integers(-2, 3, (NCOLS, 1))
    X[:, :32] *= 30          # one block much larger than the rest: the order of the float sums shows
    return X.astype(np.float32)


LOGIT_TOKENS = np.random.default_rng(5).integers(100, 40000, 24).astype(np.int32)


def inputs(tmp: str) -> dict:
    from make_quant_refs import rows as edge_rows

    sys.path.insert(0, str(ROOT / "tests"))
    from hf_fixture import quantize_gguf
    from llmlite.registry import ensure_model

    out = {"x": edge_rows(), "X": activations()}
    for mname, w in matrices():
        out[f"m_{mname}"] = w
    out["f16_model"] = str(Path(tmp) / "smollm2-f16.gguf")
    quantize_gguf(ensure_model("smollm2-135m", quiet=True), out["f16_model"], "f16", allow_requantize=True)
    return out


def logit_hashes(src: str, tmp: str) -> np.ndarray:
    """(24, 8) uint8: the first 8 bytes of the sha256 of llama.cpp's float32 logits at
    each position of LOGIT_TOKENS, SmolLM2 quantized by llama.cpp to IQ4_XS"""
    import hashlib

    import llama_cpp

    dst = str(Path(tmp) / "smollm2-iq4_xs.gguf")
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype, p.nthread = 30, 2        # LLAMA_FTYPE_MOSTLY_IQ4_XS
    assert llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p) == 0
    llm = llama_cpp.Llama(dst, n_ctx=512, n_batch=512, n_threads=2, logits_all=True, verbose=False, flash_attn=False)
    llm.eval([int(t) for t in LOGIT_TOKENS])
    y = np.array(llm.scores[:len(LOGIT_TOKENS)], np.float32)
    return np.array([list(hashlib.sha256(r.tobytes()).digest()[:8]) for r in y], np.uint8)


def ggml_stage(venv: str, inp: str, dest: str) -> None:
    """llama.cpp's bytes, values and products of the inputs in inp, into dest"""
    base, cpu = load(venv)
    src = np.load(inp)
    x, X = src["x"], src["X"]
    out = {"x": x, "X": X}
    for name, t in TYPES.items():
        q = quantize(base, t, x)
        out[f"q_{name}"] = q
        out[f"dq_{name}"] = to_float(base, t, q, x.size).reshape(x.shape)
    repack, plain = cpu._Z35ggml_backend_cpu_repack_buffer_typev(), base.ggml_backend_cpu_buffer_type()
    for mname in ("random", "real"):
        for name, t in TYPES.items():
            wq = quantize(base, t, src[f"m_{mname}"])
            out[f"w_{mname}_{name}"] = wq
            out[f"y_{mname}_{name}"] = mul_mat(base, cpu, t, wq, X, repack if name == "IQ4_NL" else plain)
            # the other path llama.cpp takes for some batches (IQ4_NL: the weight not
            # repacked; IQ4_XS: under 8 columns, its vec_dot), to show its other bits
            out[f"yother_{mname}_{name}"] = (mul_mat(base, cpu, t, wq, X, plain) if name == "IQ4_NL"
                                             else np.concatenate([mul_mat(base, cpu, t, wq, X[c:c + 7], plain)
                                                                  for c in range(0, NCOLS, 7)]))
    out["logit_tokens"] = LOGIT_TOKENS
    out["logit_sha_IQ4_XS"] = logit_hashes(str(src["f16_model"]), str(Path(inp).parent))
    np.savez_compressed(dest, **out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "iq4_refs.npz"))
    ap.add_argument("--ggml-stage", metavar="INPUTS", help=argparse.SUPPRESS)   # the venv's half
    a = ap.parse_args()
    if a.ggml_stage:
        ggml_stage(a.venv, a.ggml_stage, a.out)
        return 0
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        inp = str(Path(tmp) / "inputs.npz")
        np.savez(inp, **inputs(tmp))
        subprocess.run([str(Path(a.venv) / "bin" / "python"), __file__, "--venv", a.venv, "--out", a.out,
                        "--ggml-stage", inp], check=True)
    print(f"{a.out}: edge rows, matrices {ROWS}x{K} x {NCOLS} columns ({Path(a.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
