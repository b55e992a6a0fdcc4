"""TQ1_0 and TQ2_0 (csrc/type_ternary.c): dequantization, the reference quantizers and
the dot kernels, bit for bit against llama.cpp (tests/data/ternary_refs.npz, written by
benchmarks/make_ternary_refs.py from ggml's own functions) and gguf-py, and the same
bits on every ISA whatever the batch.

Their batch path in llama.cpp is vec_dot (no repacked or tinyBLAS kernel): per
super-block 8 int32 lanes (int16 lanes of codes times quants, less the Q8_K bsums),
fma'd with dy * dx into 8 float lanes, hsum_float_8 at the end.
"""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as GQT
from gguf import quants as gq

from llmlite import _lib as L

from isa import using_isa

F32 = np.float32
REFS = np.load(__file__.rsplit("/", 1)[0] + "/data/ternary_refs.npz")
TYPES = {"TQ1_0": (34, 54), "TQ2_0": (35, 66)}    # ggml id, block bytes


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, F32).reshape(-1).view(np.uint32)


@pytest.mark.parametrize("name", TYPES)
def test_dequantize_equals_ggml_and_gguf(name):
    t, bb = TYPES[name]
    raw = REFS[f"{name}_dq_raw"]
    got = L.dequantize(t, raw.reshape(-1))
    assert np.array_equal(bits(got), bits(REFS[f"{name}_dq_f32"]))
    assert np.array_equal(bits(got), bits(gq.dequantize(raw, GQT(t))))


@pytest.mark.parametrize("name", TYPES)
def test_quantizer_equals_llamacpp(name):
    """Edge rows (zeros, constants, ties at x / amax = 1/2, tiny, huge, sparse, ternary,
    real-scaled): ggml_quantize_chunk's bytes; random rows: gguf-py's."""
    t, _ = TYPES[name]
    x, want = REFS[f"{name}_q_x"], REFS[f"{name}_q_bytes"]
    got = L.quantize_rows(t, x)
    for i in range(x.shape[0]):
        assert np.array_equal(got[i], want[i]), f"edge row {i}"
    rng = np.random.default_rng(t)
    w = (rng.standard_normal((6, 768)) * rng.uniform(1e-3, 1e3, (6, 1))).astype(F32)
    assert np.array_equal(L.quantize_rows(t, w), np.asarray(gq.quantize(w, GQT(t))))


@pytest.mark.parametrize("name", TYPES)
def test_equals_llamacpp_batch_path(name, isa):
    """Each ISA gives llama.cpp's vec_dot results bit for bit, for the whole batch and
    for each column alone."""
    t, _ = TYPES[name]
    w, X, y = REFS[f"{name}_mm_w"], REFS[f"{name}_mm_x"], REFS[f"{name}_mm_y"]
    rows, k = w.shape[0], X.shape[1]
    np.testing.assert_array_equal(L.matmul(t, w, rows, k, X), y)
    for c in range(X.shape[0]):
        np.testing.assert_array_equal(L.matmul(t, w, rows, k, X[c:c + 1])[0], y[c], err_msg=f"column {c} alone")


@pytest.mark.parametrize("name", TYPES)
def test_any_bytes_same_on_every_isa(name, simd_isas):
    """Raw random weight bytes (codes 3, TQ1_0 bytes past 242, any fp16 d) and Q8_K
    activations with random quants and bsums (int16 wrap) give the scalar kernel's bits
    on every ISA, for 1 to 7 columns and k of one to three super-blocks."""
    t, bb = TYPES[name]
    rng = np.random.default_rng(40 + t)
    for k in (256, 512, 768):
        rows = 5
        raw = rng.integers(0, 256, (rows, k // 256 * bb), dtype=np.uint8)
        d16 = (rng.standard_normal(rows * k // 256) * 10.0 ** rng.integers(-3, 3, rows * k // 256)).astype(np.float16)
        raw.reshape(-1, bb)[:, bb - 2:] = d16.view(np.uint8).reshape(-1, 2)
        xq = rng.integers(0, 256, (7, k // 256, 292), dtype=np.uint8)
        xq[:, :, :4] = (rng.standard_normal((7, k // 256, 1)) * 0.01).astype(F32).view(np.uint8)
        xq = xq.reshape(7, -1)
        with using_isa("scalar"):
            ref = L.matmul_q(t, raw, rows, k, xq)
        for isa_name in simd_isas:
            with using_isa(isa_name):
                for n in range(1, 8):
                    np.testing.assert_array_equal(L.matmul_q(t, raw, rows, k, xq[:n]), ref[:n],
                                                  err_msg=f"{isa_name} k={k} n={n}")


@pytest.mark.parametrize("ftype", ["tq1_0", "tq2_0"])
def test_file_type_plan_follows_llama_quantize(ftype):
    """llama-quant.cpp for TQ1_0 / TQ2_0: the type on whole 256-blocks, Q4_0 where rows are
    not (its fallback), an untied token_embd Q4_K (Q5_0 on short rows), the output Q6_K.
    (benchmarks/quantize_vs_llamacpp.py --types tq1_0 tq2_0 compares whole real files.)"""
    from llmlite.quantize import plan

    from test_fp4 import _Source

    shapes = {"token_embd.weight": (512, 100), "output.weight": (512, 100), "blk.0.attn_q.weight": (512, 512),
              "blk.0.attn_k.weight": (576, 64), "blk.0.ffn_down.weight": (1536, 512),
              "blk.0.attn_norm.weight": (512,)}
    got = {p.name: p.dst_type for p in plan(_Source(shapes, arch="llama"), ftype)}
    t = GQT[ftype.upper()]
    assert got == {"token_embd.weight": GQT.Q4_K, "output.weight": GQT.Q6_K, "blk.0.attn_q.weight": t,
                   "blk.0.attn_k.weight": GQT.Q4_0, "blk.0.ffn_down.weight": t, "blk.0.attn_norm.weight": GQT.F32}
    shapes["token_embd.weight"] = (576, 100)
    got = {p.name: p.dst_type for p in plan(_Source(shapes, arch="llama"), ftype)}
    assert got["token_embd.weight"] == GQT.Q5_0
