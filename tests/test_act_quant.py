"""Activation quantizers (llm_quantize_act) against numpy versions of the rules
of spec section 4, bit for bit: Q8_0/Q8_1 with llama.cpp's x86 SIMD numerics
(id = 127/amax, round half to even), Q8_K as quantize_row_q8_K_ref, and the
float conversions. Ties, all-zero blocks, the sign of the Q8_K scale, bad input.
"""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as GQT
from gguf import quants as gq

from llmlite import _lib as L
from llmlite.errors import LlmliteError
from llmlite.gguf.constants import GGMLType as Q

F32 = np.float32


# ------------------------------------------------------- numpy references

def ref_q8_0_blocks(x: np.ndarray):
    """(d fp16 bits, q int8, unrounded d) per 32-block, x86 SIMD rules."""
    b = x.reshape(-1, 32).astype(F32)
    amax = np.abs(b).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = (amax / F32(127)).astype(F32)
        iden = np.where(amax != 0, F32(127) / amax, F32(0)).astype(F32)
        v = (b * iden[:, None]).astype(F32)
        # _mm256_round_ps (ties to even), cvtps2dq (|v| >= 2^31 or NaN -> INT_MIN), packs (saturate)
        q = np.clip(np.rint(v), -128, 127)
        q = np.where(np.abs(v) < F32(2.0**31), q, -128).astype(np.int8)
        dh = d.astype(np.float16).view(np.uint16)
    return dh, q, d


def ref_q8_0(x: np.ndarray) -> np.ndarray:
    dh, q, _ = ref_q8_0_blocks(x)
    return np.concatenate([dh.view(np.uint8).reshape(-1, 2), q.view(np.uint8)], axis=1).reshape(-1)


def ref_q8_1(x: np.ndarray) -> np.ndarray:
    dh, q, d = ref_q8_0_blocks(x)
    with np.errstate(over="ignore"):
        s = (d * q.astype(np.int32).sum(axis=1).astype(F32)).astype(F32).astype(np.float16).view(np.uint16)
    return np.concatenate([dh.view(np.uint8).reshape(-1, 2), s.view(np.uint8).reshape(-1, 2),
                           q.view(np.uint8)], axis=1).reshape(-1)


def nearest_int(v: np.ndarray) -> np.ndarray:
    """ggml's nearest_int bit trick (round half to even for |v| <= 2^22)."""
    t = (v.astype(F32) + F32(12582912.0)).astype(F32).view(np.int32)
    return (t & 0x7FFFFF) - 0x400000


def ref_q8_k(x: np.ndarray) -> np.ndarray:
    b = x.reshape(-1, 256).astype(F32)
    nb = b.shape[0]
    imax = np.abs(b).argmax(axis=1)                      # first max-abs (strict >)
    mx = b[np.arange(nb), imax]
    zero = np.abs(mx) == 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = np.where(zero, F32(1), F32(-127) / np.where(zero, F32(1), mx)).astype(F32)
        q = np.minimum(nearest_int(iscale[:, None] * b), 127).astype(np.int8)
        d = np.where(zero, F32(0), (F32(1) / iscale).astype(F32)).astype(F32)
    q[zero] = 0
    bsums = q.astype(np.int16).reshape(nb, 16, 16).sum(axis=2, dtype=np.int16)
    return np.concatenate([d.view(np.uint8).reshape(nb, 4), q.view(np.uint8),
                           bsums.view(np.uint8).reshape(nb, 32)], axis=1).reshape(-1)


# weight type whose paired activation type is the one under test
VIA = {"Q8_0": Q.Q8_0, "Q8_1": Q.Q4_1, "Q8_K": Q.Q4_K}
REF = {"Q8_0": ref_q8_0, "Q8_1": ref_q8_1, "Q8_K": ref_q8_k}
BLOCK = {"Q8_0": 32, "Q8_1": 32, "Q8_K": 256}


def quant(name: str, x: np.ndarray) -> np.ndarray:
    return L.quantize_act(VIA[name], x.reshape(1, -1)).reshape(-1)


def assert_same(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert got.shape == ref.shape, what
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, f"{what}: {bad.size} bytes differ, first at byte {bad[0]}"


def test_pairing():
    assert [L.lib.llm_type_act_type(t) for t in (Q.Q4_0, Q.Q5_0, Q.Q8_0)] == [Q.Q8_0] * 3
    assert [L.lib.llm_type_act_type(t) for t in (Q.Q4_1, Q.Q5_1)] == [Q.Q8_1] * 2
    assert [L.lib.llm_type_act_type(t) for t in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K)] == [Q.Q8_K] * 5
    assert [L.lib.llm_type_act_type(t) for t in (Q.F32, Q.F16, Q.BF16)] == [Q.F32, Q.F16, Q.BF16]


def _random_acts(rng, n: int) -> np.ndarray:
    """Activations of varied magnitude per block, some blocks sparse or constant."""
    x = rng.standard_normal(n).astype(F32)
    scale = 10.0 ** rng.uniform(-6, 4, size=n // 256).repeat(256)
    x = (x * scale).astype(F32)
    blocks = x.reshape(-1, 256)
    blocks[1::7, ::3] = 0
    blocks[2::11] = F32(0.37)
    blocks[3::13, 5] *= 1e4                                # one outlier
    return x


@pytest.mark.parametrize("name", ["Q8_0", "Q8_1", "Q8_K"])
def test_random_matches_reference(name):
    x = _random_acts(np.random.default_rng(42), 256 * 400)
    assert_same(quant(name, x), REF[name](x), name)


@pytest.mark.parametrize("name", ["Q8_0", "Q8_1", "Q8_K"])
def test_ties_round_half_to_even(name):
    """Scale 1 exactly (amax 127), so x*scale lands on .5 exactly: 2.5 -> 2, -3.5 -> -4."""
    n = BLOCK[name]
    rng = np.random.default_rng(1)
    x = (rng.integers(-126, 126, size=n) + F32(0.5)).astype(F32)
    x[0] = F32(-127.0) if name == "Q8_K" else F32(127.0)  # Q8_K: iscale = -127/max = +1
    x[1:7] = [2.5, -2.5, 3.5, -3.5, 0.5, -0.5]
    got = quant(name, x)
    assert_same(got, REF[name](x), name)
    qoff = {"Q8_0": 2, "Q8_1": 4, "Q8_K": 4}[name]
    q = got[qoff:qoff + n].view(np.int8)
    assert list(q[1:7]) == [2, -2, 4, -4, 0, 0]            # roundf would give 3,-3,4,-4,1,-1
    assert np.array_equal(q[7:], np.rint(x[7:]).astype(np.int8))


def test_q8_0_uses_127_over_amax_not_1_over_d():
    """Find values where x*(127/amax) and x*(1/(amax/127)) round differently: we follow the former."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(32 * 20000).astype(F32)
    b = x.reshape(-1, 32)
    amax = np.abs(b).max(axis=1)
    id_simd = (F32(127) / amax).astype(F32)
    id_ref = (F32(1) / (amax / F32(127)).astype(F32)).astype(F32)
    differs = np.rint(b * id_simd[:, None]) != np.rint(b * id_ref[:, None])
    assert differs.any()                                    # the test can tell the two apart
    got = quant("Q8_0", x).reshape(-1, 34)[:, 2:].view(np.int8)
    assert np.array_equal(got, np.rint(b * id_simd[:, None]).astype(np.int8))


@pytest.mark.parametrize("name", ["Q8_0", "Q8_1", "Q8_K"])
def test_all_zero_blocks(name):
    n = BLOCK[name]
    x = np.zeros(3 * n, dtype=F32)
    x[n:2 * n:2] = F32(-0.0)
    x[2 * n + 5] = F32(1e-3)                                # a non-zero block after them
    at = L.lib.llm_type_act_type(VIA[name])
    rb = L.row_bytes(at, x.size)
    dst = np.full(rb, 0xAA, dtype=np.uint8)                 # garbage: everything must be written
    assert L.lib.llm_quantize_act(at, L.ffi.cast("float *", x.ctypes.data),
                                  L.ffi.cast("void *", dst.ctypes.data), x.size) == 0
    assert_same(dst, REF[name](x), name)
    bb = rb // 3
    assert not dst[:2 * bb].any()                           # d = 0, s = 0, qs = 0, bsums = 0


def test_q8_k_sign_follows_first_max_abs():
    x = np.zeros(256, dtype=F32)
    x[3], x[10], x[20] = -5.0, 5.0, 2.5
    for xx, sign in ((x, 1.0), (-x, -1.0)):
        got = quant("Q8_K", xx)
        assert_same(got, ref_q8_k(xx), "Q8_K")
        d = got[:4].view(np.float32)[0]
        q = got[4:260].view(np.int8)
        assert np.sign(d) == sign                           # max -> -127: d has the sign of -max
        assert q[3] == -127 and q[10] == 127
        assert np.isclose(d * q[3], xx[3]) and np.isclose(d * q[10], xx[10])
        bs = got[260:].view(np.int16)
        assert bs[0] == q[:16].sum() and bs[1] == q[16:32].sum()


def test_q8_k_roundtrip_error():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(256 * 50).astype(F32)
    y = L.dequantize(Q.Q8_K, quant("Q8_K", x))
    amax = np.abs(x.reshape(-1, 256)).max(axis=1).repeat(256)
    assert np.all(np.abs(y - x) <= amax / 127 * 0.5 * 1.0001)


def test_q8_x86_saturation_of_non_finite_products():
    """amax so small that 127/amax overflows to inf: cvtps2dq + packs give -128 for the
    infinite and NaN (0*inf) products, as llama.cpp's AVX2 path does."""
    x = np.zeros(32, dtype=F32)
    x[0], x[1], x[2] = F32(1e-39), F32(-1e-39), F32(5e-40)
    got = quant("Q8_0", x)
    assert_same(got, ref_q8_0(x), "Q8_0")
    assert (got[2:].view(np.int8) == -128).all()


# ------------------------------------------------------------ float types

def test_float_activations():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(5000).astype(F32) * F32(100),
                        rng.integers(0, 2**32, size=5000, dtype=np.uint32).view(F32),
                        np.array([0.0, -0.0, np.inf, -np.inf, 65520.0, 2.0**-25, 1e-40, np.nan], F32)])
    assert_same(L.quantize_act(Q.F32, x).reshape(-1), x.view(np.uint8), "F32")
    f16 = L.quantize_act(Q.F16, x).reshape(-1).view(np.uint16)
    u = x.view(np.uint32)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    with np.errstate(over="ignore", invalid="ignore"):
        ref16 = np.where(nan, ((u >> 16) & 0x8000) | 0x7E00, x.astype(np.float16).view(np.uint16))
    assert np.array_equal(f16, ref16.astype(np.uint16))
    bf = L.quantize_act(Q.BF16, x).reshape(-1)
    assert_same(bf, gq.quantize(x, GQT.BF16).reshape(-1).view(np.uint8), "BF16")


def test_several_columns_are_independent():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((5, 512)).astype(F32)
    for name in ("Q8_0", "Q8_1", "Q8_K"):
        out = L.quantize_act(VIA[name], X)
        for c in range(5):
            assert_same(out[c], REF[name](X[c]), f"{name} column {c}")


# --------------------------------------------------------------- bad input

def test_bad_type_or_count_is_refused():
    x = np.ones(512, dtype=F32)
    dst = np.zeros(4096, dtype=np.uint8)
    px, pd = L.ffi.cast("float *", x.ctypes.data), L.ffi.cast("void *", dst.ctypes.data)
    for t in (Q.Q4_0, Q.Q4_K, Q.Q6_K, 4, 99, -1):           # weight-only or unknown types
        assert L.lib.llm_quantize_act(t, px, pd, 256) == -1
    for t, n in ((Q.Q8_0, 31), (Q.Q8_1, 48), (Q.Q8_K, 128), (Q.Q8_K, -256)):
        assert L.lib.llm_quantize_act(t, px, pd, n) == -1
    assert not dst.any()
    with pytest.raises(LlmliteError):
        L.quantize_act(Q.Q4_0, np.ones((2, 48), dtype=F32))
    with pytest.raises(LlmliteError):
        L.quantize_act(Q.Q8_K, np.ones(256, dtype=F32))    # Q8_K has no paired activation type
