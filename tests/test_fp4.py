"""MXFP4 (csrc/type_fp4.c): dequantization, the reference quantizer and the dot
kernels, bit for bit against llama.cpp (tests/data/fp4_refs.npz, written by
benchmarks/make_fp4_refs.py from ggml's own functions) and gguf-py, and the same
bits on every ISA whatever the batch.

The dot's order is that of llama.cpp's x86 batch path (the repacked 8x8 gemm and its
gemv): per (row, column) one float chain over the blocks,
acc = fma(I_b, e_half(e_b) * d_b, acc), I_b the block's exact integer dot.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from gguf import GGMLQuantizationType as GQT
from gguf import quants as gq

from llmlite import _lib as L
from llmlite.gguf.constants import GGMLType as Q

from isa import using_isa
from test_isa_exact import fma32

MX, NV = int(Q.MXFP4), int(Q.NVFP4)
# each type's keys in fp4_refs.npz, and its block (elements, bytes)
KEYS = {MX: "", NV: "nv_"}
BLOCKS = {MX: (32, 17), NV: (64, 36)}
TYPE_IDS = {MX: "MXFP4", NV: "NVFP4"}.get
F32 = np.float32
REFS = np.load(__file__.rsplit("/", 1)[0] + "/data/fp4_refs.npz")
FP4 = np.array(gq.MXFP4.kvalues, np.int64)      # the E2M1 values doubled, by code


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, F32).reshape(-1).view(np.uint32)


def quantize(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(gq.quantize(w.astype(F32), GQT.MXFP4), np.uint8)


def make_x(ncols: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((ncols, k)) * 10.0 ** rng.integers(-3, 4, (ncols, 1))
    X[:, :32] *= 50.0          # one block far larger than the rest: the chain's rounding shows
    return X.astype(F32)


def emulate(raw: np.ndarray, k: int, xq: np.ndarray) -> np.ndarray:
    """(ncols, rows): the batch path's chain, in numpy from the block bytes."""
    nb = k // 32
    wb = raw.reshape(raw.shape[0], nb, 17)
    e = wb[:, :, 0].astype(np.uint32)
    scale = np.where(e < 2, np.uint32(0x00200000) << e, (e - 1) << 23).astype(np.uint32).view(F32)
    codes = np.concatenate([wb[:, :, 1:] & 15, wb[:, :, 1:] >> 4], axis=2)
    w = FP4[codes]                                                   # (rows, nb, 32)
    ab = xq.reshape(xq.shape[0], nb, 34)
    dx = np.ascontiguousarray(ab[:, :, :2]).view(np.float16)[..., 0].astype(F32)
    x = ab[:, :, 2:].view(np.int8).astype(np.int64)                  # (ncols, nb, 32)
    acc = np.zeros((x.shape[0], w.shape[0]), F32)
    with np.errstate(over="ignore", invalid="ignore"):
        for b in range(nb):
            isum = np.einsum("rj,cj->cr", w[:, b], x[:, b]).astype(F32)
            s = (scale[None, :, b] * dx[:, None, b]).astype(F32)
            acc = fma32(isum, s, acc)
    return acc


@pytest.mark.parametrize("t", [MX, NV], ids=TYPE_IDS)
def test_dequantize_equals_ggml_and_gguf(t):
    """Every scale byte and random codes: ggml's to_float and gguf-py's dequantize."""
    raw = REFS[KEYS[t] + "dq_raw"]
    got = L.dequantize(t, raw.reshape(-1))
    assert np.array_equal(bits(got), bits(REFS[KEYS[t] + "dq_f32"]))
    with np.errstate(over="ignore"):
        assert np.array_equal(bits(got), bits(gq.dequantize(raw, GQT(t))))


@pytest.mark.parametrize("t", [MX, NV], ids=TYPE_IDS)
def test_quantizer_equals_llamacpp(t):
    """Edge rows (zeros, constants, ties between levels, tiny and subnormal, huge,
    sparse, real-scaled): ggml_quantize_chunk's bytes."""
    x, want = REFS[KEYS[t] + "q_x"], REFS[KEYS[t] + "q_bytes"]
    got = L.quantize_rows(t, x)
    for i in range(x.shape[0]):
        assert np.array_equal(got[i], want[i]), f"edge row {i}"


def test_mxfp4_quantizer_equals_gguf():
    """Random rows of many scales: gguf-py's MXFP4 quantizer (it has none for NVFP4)."""
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((8, 512)) * rng.uniform(1e-3, 1e3, (8, 1))).astype(F32)
    assert np.array_equal(L.quantize_rows(MX, w), quantize(w))


@pytest.mark.parametrize("t", [MX, NV], ids=TYPE_IDS)
@pytest.mark.parametrize("name", ["rand", "real"])
def test_equals_llamacpp_batch_path(t, name, isa):
    """Each ISA gives llama.cpp's batch path bit for bit (MXFP4: the repacked gemm/gemv;
    NVFP4: its vec_dot), for the whole batch and for each column alone. MXFP4's
    vec_dot (another order) differs somewhere: these data tell the orders apart."""
    key = KEYS[t] + f"mm_{name}_"
    w, X, y = REFS[key + "w"], REFS[key + "x"], REFS[key + "y"]
    rows, k = w.shape[0], X.shape[1]
    np.testing.assert_array_equal(L.matmul(t, w, rows, k, X), y)
    for c in range(X.shape[0]):
        np.testing.assert_array_equal(L.matmul(t, w, rows, k, X[c:c + 1])[0], y[c], err_msg=f"column {c} alone")
    if t == MX:
        assert (y != REFS[key + "y_vec_dot"]).any()


@pytest.mark.parametrize("k", [32, 64, 224, 256, 288, 800])
def test_isas_agree_and_equal_emulation(k, simd_isas):
    """Scalar, AVX2 and AVX-512 give the same bits, equal to the numpy chain, for 1 to 9
    columns and 16 (k: below, at and past the SIMD kernels' 8-block steps), through
    matmul and matmul_q."""
    rng = np.random.default_rng(k)
    rows = 21
    raw = quantize(rng.standard_normal((rows, k)) * rng.uniform(0.01, 10.0, (rows, 1)))
    ns = list(range(1, 10)) + [16]
    X = make_x(ns[-1], k, seed=k + 1)
    xq = L.quantize_act(MX, X)
    want = emulate(raw, k, xq)
    for name in ["scalar", *simd_isas]:
        with using_isa(name):
            for n in ns:
                np.testing.assert_array_equal(L.matmul(MX, raw, rows, k, X[:n]), want[:n], err_msg=f"{name} matmul {n}")
                np.testing.assert_array_equal(L.matmul_q(MX, raw, rows, k, xq[:n]), want[:n], err_msg=f"{name} q {n}")


@pytest.mark.parametrize("t", [MX, NV], ids=TYPE_IDS)
def test_any_bytes_same_on_every_isa(t, simd_isas):
    """Raw random weight and activation bytes (quants of -128, huge and NaN scales)
    give the scalar kernel's bits on every ISA, for k of 1 to 11 blocks of 64 (MXFP4's
    8-block steps and their tails) and 1 to 5 columns."""
    rng = np.random.default_rng(9 + t)
    be, bb = BLOCKS[t]
    for k in (64, 128, 320, 576, 704):
        rows = 9
        raw = rng.integers(0, 256, (rows, k // be * bb), dtype=np.uint8)
        xq = rng.integers(0, 256, (5, k // 32 * 34), dtype=np.uint8)
        with using_isa("scalar"):
            ref = L.matmul_q(t, raw, rows, k, xq)
        for name in simd_isas:
            with using_isa(name):
                for n in range(1, 6):
                    np.testing.assert_array_equal(L.matmul_q(t, raw, rows, k, xq[:n]), ref[:n], err_msg=f"{name} k={k} n={n}")


# ------------------------------------------------------------ the MXFP4_MOE file type

class _Source:
    """What quantize.plan reads of a GGUF: metadata and tensor infos (GGUF order shapes)."""
    def __init__(self, shapes: dict, arch: str = "gpt-oss"):
        self.meta = {"general.architecture": arch, f"{arch}.block_count": 1, f"{arch}.expert_count": 4,
                     f"{arch}.attention.head_count": 4, f"{arch}.attention.head_count_kv": 1}
        self.tensors = {n: SimpleNamespace(type=int(Q.F32), shape=s, n_elements=int(np.prod(s)),
                                           nbytes=4 * int(np.prod(s))) for n, s in shapes.items()}

    def get(self, key, default=None):
        return self.meta.get(key, default)


def _plan(shapes: dict) -> dict:
    from llmlite.quantize import plan

    return {p.name: Q(p.dst_type).name for p in plan(_Source(shapes), "mxfp4_moe")}


def test_mxfp4_moe_plan_follows_llama_quantize():
    """llama-quant.cpp's MXFP4_MOE: the expert tensors (more than one matrix) to MXFP4,
    the output and every other quantizable tensor to Q8_0 (token_embd too, tied or
    not), rows that are not whole blocks to F16; norms and the router stay F32."""
    moe = {"token_embd.weight": (64, 100), "output.weight": (64, 100), "output_norm.weight": (64,),
           "blk.0.attn_norm.weight": (64,), "blk.0.attn_q.weight": (64, 256), "blk.0.attn_k.weight": (48, 64),
           "blk.0.ffn_gate_inp.weight": (64, 4), "blk.0.ffn_gate_exps.weight": (64, 32, 4),
           "blk.0.ffn_down_exps.weight": (32, 64, 4), "blk.0.ffn_up_exps.weight": (48, 32, 4)}
    assert _plan(moe) == {
        "token_embd.weight": "Q8_0", "output.weight": "Q8_0", "output_norm.weight": "F32",
        "blk.0.attn_norm.weight": "F32", "blk.0.attn_q.weight": "Q8_0", "blk.0.attn_k.weight": "F16",
        "blk.0.ffn_gate_inp.weight": "F32", "blk.0.ffn_gate_exps.weight": "MXFP4",
        "blk.0.ffn_down_exps.weight": "MXFP4", "blk.0.ffn_up_exps.weight": "F16"}
    del moe["output.weight"]
    assert _plan(moe)["token_embd.weight"] == "Q8_0"


def test_mxfp4_moe_on_a_dense_model_is_q8_0():
    """Without expert tensors nothing becomes MXFP4: llama-quantize writes Q8_0 throughout."""
    dense = {"token_embd.weight": (64, 100), "blk.0.attn_q.weight": (64, 64), "blk.0.ffn_down.weight": (128, 64),
             "blk.0.ffn_up.weight": (64, 128), "blk.0.attn_v.weight": (64, 16), "blk.0.ffn_norm.weight": (64,)}
    got = _plan(dense)
    assert got.pop("blk.0.ffn_norm.weight") == "F32"
    assert set(got.values()) == {"Q8_0"}
