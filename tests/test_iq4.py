"""IQ4_NL and IQ4_XS (csrc/type_iq4.c) against llama.cpp: dequantized values, the
quantizer's bytes, and matmul results equal to its x86 batch path's, bit for bit, on
every ISA.

llama.cpp's results come from tests/data/iq4_refs.npz (benchmarks/make_iq_refs.py: a
one-op ggml graph in llama-cpp-python's libggml). Its batch paths, whose orders the
emulations below restate from the blocks' bytes:
  IQ4_NL: the repacked gemm/gemv (iq4_nl_8x8_q8_0): acc = fma(I_b, d_w*d_x, acc) per
          32-element block b, I_b the exact integer dot;
  IQ4_XS: the tiled matmul: acc = fma(f32(I)*d_w, d_x, acc) per super-block, I the exact
          sum over its sub-blocks of (6-bit scale - 32) * dot.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as GQT
from gguf import quants as gq
from isa import isas, using_isa
from test_isa_exact import (
    _check_emulation,
    _check_isas_agree,
    _f16,
    _f32_of_int,
    act_blocks,
    fma32,
    q8k_blocks,
)

from llmlite import _lib as L

REFS = np.load(Path(__file__).parent / "data" / "iq4_refs.npz")
TYPES = {"IQ4_NL": int(GQT.IQ4_NL), "IQ4_XS": int(GQT.IQ4_XS)}
KV = np.array(gq.IQ4_NL.kvalues, np.int64)
F32 = np.float32


def codes(qs: np.ndarray, table: np.ndarray = KV) -> np.ndarray:
    """(..., 16) code bytes -> (..., 32) values in element order (low nibbles, then high),
    each nibble mapped through table (IQ4_NL's values; Q4_0's are q - 8)"""
    qs = qs.astype(np.int64)
    return table[np.concatenate([qs & 15, qs >> 4], axis=-1)]


def emulate_nl(wtype: int, raw: np.ndarray, k: int, xq: np.ndarray, table: np.ndarray = KV) -> np.ndarray:
    """(ncols, rows): the repacked 8x8 gemm's order (IQ4_NL's and Q4_0's: fp16 d, then
    16 nibble bytes per block of 32, each nibble through table)"""
    rows, nb = raw.shape[0], k // 32
    b = raw.reshape(rows, nb, 18)
    w, dw = codes(b[:, :, 2:], table), _f16(b[:, :, 0:2])
    x, dx, _ = act_blocks(wtype, xq, k)
    acc = np.zeros((x.shape[0], rows), F32)
    for i in range(nb):
        I = np.einsum("rj,cj->cr", w[:, i], x[:, i])
        acc = fma32(I.astype(F32), (dw[None, :, i] * dx[:, None, i]).astype(F32), acc)
    return acc


def xs_scales(b: np.ndarray) -> np.ndarray:
    """(rows, nb, 136) IQ4_XS blocks -> (rows, nb, 8) sub-block scales ls - 32"""
    sh = b[:, :, 2].astype(np.int64) | b[:, :, 3].astype(np.int64) << 8
    sl = b[:, :, 4:8].astype(np.int64)
    s = np.arange(8)
    return ((sl[:, :, s // 2] >> 4 * (s % 2)) & 15 | ((sh[:, :, None] >> 2 * s) & 3) << 4) - 32


def emulate_xs(wtype: int, raw: np.ndarray, k: int, xq: np.ndarray) -> np.ndarray:
    """(ncols, rows): the tiled matmul's order"""
    rows, nb = raw.shape[0], k // 256
    b = raw.reshape(rows, nb, 136)
    w, dw, ls = codes(b[:, :, 8:].reshape(rows, nb, 8, 16)), _f16(b[:, :, 0:2]), xs_scales(b)
    x, dx, _ = q8k_blocks(xq, k)
    acc = np.zeros((x.shape[0], rows), F32)
    for i in range(nb):
        I = np.einsum("rs,rsj,csj->cr", ls[:, i], w[:, i], x[:, i].reshape(-1, 8, 32))
        acc = fma32((_f32_of_int(I) * dw[None, :, i]).astype(F32), np.broadcast_to(dx[:, None, i], acc.shape), acc)
    return acc


def random_weights(wtype: int, rows: int, k: int, seed: int) -> np.ndarray:
    """Random code bytes and 6-bit scales, fp16 d of either sign over two decades"""
    rng = np.random.default_rng(seed)
    bb = 18 if wtype == TYPES["IQ4_NL"] else 136
    raw = rng.integers(0, 256, (rows, k // (32 if bb == 18 else 256), bb), dtype=np.uint8)
    d = rng.uniform(1e-3, 1e-1, raw.shape[:2]) * np.where(rng.random(raw.shape[:2]) < 0.5, -1, 1)
    raw[:, :, 0:2] = d.astype(np.float16)[:, :, None].view(np.uint8)
    return np.ascontiguousarray(raw.reshape(rows, -1))


# ---------------------------------------------------------------- values and bytes

@pytest.mark.parametrize("name", TYPES)
def test_dequantize_equals_ggml(name):
    """ggml's to_float of llama.cpp's bytes, bit for bit"""
    got = L.dequantize(TYPES[name], REFS[f"q_{name}"]).reshape(REFS["x"].shape)
    np.testing.assert_array_equal(got.view(np.uint32), REFS[f"dq_{name}"].view(np.uint32))


@pytest.mark.parametrize("name", TYPES)
def test_quantizer_equals_llamacpp(name):
    """ggml_quantize_chunk's bytes (llama-quantize without an importance matrix) for
    each edge row (zeros, constants, tiny, huge, sparse, one-signed) and real row"""
    got, want = L.quantize_rows(TYPES[name], REFS["x"]), REFS[f"q_{name}"]
    bad = [i for i in range(len(want)) if not np.array_equal(got[i], want[i])]
    assert not bad, f"rows {bad} differ"


# ---------------------------------------------------------------- products

KS = {"IQ4_NL": (32, 96, 288, 576), "IQ4_XS": (256, 512, 768)}


@pytest.mark.parametrize("name", TYPES)
def test_bit_identical_across_isas(name, simd_isas):
    """Every ISA gives the scalar kernel's bits, 1 to 9, 16 and 27 columns (k up to
    past a group of 8 blocks and its tail)"""
    for k in KS[name]:
        _check_isas_agree(simd_isas, TYPES[name], random_weights(TYPES[name], 21, k, seed=k), 21, k)


@pytest.mark.parametrize("name", TYPES)
def test_equals_batch_path_order(name, isa):
    """Each ISA equals the emulation of llama.cpp's batch order, 1 and 5 columns"""
    model = emulate_nl if name == "IQ4_NL" else emulate_xs
    for k in KS[name]:
        _check_emulation(TYPES[name], random_weights(TYPES[name], 19, k, seed=3 * k), 19, k, model)


@pytest.mark.parametrize("matrix", ["random", "real"])
@pytest.mark.parametrize("name", TYPES)
def test_matmul_equals_llamacpp(name, matrix):
    """llama.cpp's own batch-path results (40 rows x 512, 19 columns), on every ISA,
    also one column at a time; its other path (IQ4_NL not repacked, IQ4_XS under 8
    columns) differs from them on this data, so only the batch order passes"""
    t, w, X = TYPES[name], REFS[f"w_{matrix}_{name}"], REFS["X"]
    want = REFS[f"y_{matrix}_{name}"]
    assert np.any(REFS[f"yother_{matrix}_{name}"] != want)
    for i in isas():
        with using_isa(i):
            np.testing.assert_array_equal(L.matmul(t, w, 40, 512, X), want, err_msg=i)
            np.testing.assert_array_equal(L.matmul(t, w, 40, 512, X[:1]), want[:1], err_msg=f"{i} one column")


@pytest.mark.parametrize("name", TYPES)
def test_row_tiles_over_many_columns(name, isa):
    """Each ISA equals the emulation of llama.cpp's batch order on 140 columns (past
    a 128-column pass of a row tile) in one batch and in batches of 16 and 1, 37 rows
    (two 16-row tiles and a short one), blocks past a multiple of 8"""
    t = TYPES[name]
    k = 288 if name == "IQ4_NL" else 768
    raw = random_weights(t, 37, k, seed=11)
    X = np.random.default_rng(5).standard_normal((140, k)).astype(F32)
    want = (emulate_nl if name == "IQ4_NL" else emulate_xs)(t, raw, k, L.quantize_act(t, X))
    np.testing.assert_array_equal(L.matmul(t, raw, 37, k, X), want)
    for step in (16, 1):
        got = np.concatenate([L.matmul(t, raw, 37, k, X[c:c + step]) for c in range(0, 48, step)])
        np.testing.assert_array_equal(got, want[:48], err_msg=f"batches of {step}")
