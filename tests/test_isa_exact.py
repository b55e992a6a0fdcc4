"""The 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) give the same bits
on every ISA: the scalar, AVX2 and AVX-512 kernels all run llama.cpp's x86
order (per block, 8 exact int32 lane sums of 4 elements each, fma'd with the
float product of the two fp16 scales into 8 float lanes; then the hsum_float_8
tree; Q4_1 / Q5_1 add an fma chain of m_w * s_x).

Each ISA is checked against the others (one column and every multi-column group
size: matmul, which on AVX-512 takes the wide-layout vec_dot_ncw, and matmul_q,
vec_dot_nc) and against a numpy emulation of that order written here from the
spec (block layouts of spec section 1), with a correctly rounded float32 fma.
"""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as GQT
from gguf import quants as gq

from llmlite import _lib as L

ISAS = ["scalar", "avx2", "avx512"]
BLOCK32 = [L.Q4_0, L.Q4_1, L.Q5_0, L.Q5_1, L.Q8_0]
TYPE_IDS = {t: L.TYPE_NAMES[t] for t in BLOCK32}
F32 = np.float32


def _supported():
    return [i for i in ISAS if L.cpu_has(i)]


@pytest.fixture
def restore_isa():
    before = L.isa()
    yield
    assert L.set_isa(before)


def make_weights(wtype: int, rows: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, k)).astype(F32)
    x *= rng.uniform(0.01, 10.0, size=(rows, 1)).astype(F32)   # rows of different scales
    if wtype in (L.Q4_1, L.Q5_1):
        x += rng.uniform(-3.0, 3.0, size=(rows, 1)).astype(F32)  # nonzero minimums
    return np.ascontiguousarray(gq.quantize(x, GQT(wtype)), dtype=np.uint8)


def make_x(ncols: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((ncols, k)).astype(F32)
    X *= (F32(10.0) ** rng.integers(-3, 4, size=(ncols, 1))).astype(F32)  # columns of different magnitudes
    X[:, :32] *= F32(50.0)   # one block much larger than the rest: rounding of the chain matters
    return X


# ------------------------------------------------------- numpy emulation

def _f16(b: np.ndarray) -> np.ndarray:
    """(..., 2) uint8 -> float32 values of the little-endian fp16."""
    return np.ascontiguousarray(b).view(np.float16)[..., 0].astype(F32)


def weight_blocks(wtype: int, raw: np.ndarray, k: int):
    """raw weight rows -> (integer weights (rows, nb, 32) int64, d (rows, nb) f32, m or None)."""
    rows, nb = raw.shape[0], k // 32
    bb = {L.Q4_0: 18, L.Q4_1: 20, L.Q5_0: 22, L.Q5_1: 24, L.Q8_0: 34}[wtype]
    b = raw.reshape(rows, nb, bb)
    d = _f16(b[:, :, 0:2])
    m = _f16(b[:, :, 2:4]) if wtype in (L.Q4_1, L.Q5_1) else None
    if wtype == L.Q8_0:
        return b[:, :, 2:].view(np.int8).astype(np.int64), d, None
    qs = b[:, :, bb - 16:].astype(np.int64)
    q = np.concatenate([qs & 15, qs >> 4], axis=2)            # element j: low nibble j, high nibble j - 16
    if wtype in (L.Q5_0, L.Q5_1):
        qh = np.ascontiguousarray(b[:, :, bb - 20:bb - 16]).view("<u4")[..., 0].astype(np.int64)
        q = q | (((qh[:, :, None] >> np.arange(32)) & 1) << 4)
    off = {L.Q4_0: 8, L.Q5_0: 16}.get(wtype, 0)
    return q - off, d, m


def act_blocks(wtype: int, xq: np.ndarray, k: int):
    """Q8_0 / Q8_1 activation rows -> (int8 values (ncols, nb, 32) int64, d f32, s f32 or None)."""
    n, nb = xq.shape[0], k // 32
    if wtype in (L.Q4_1, L.Q5_1):
        b = xq.reshape(n, nb, 36)
        return b[:, :, 4:].view(np.int8).astype(np.int64), _f16(b[:, :, 0:2]), _f16(b[:, :, 2:4])
    b = xq.reshape(n, nb, 34)
    return b[:, :, 2:].view(np.int8).astype(np.int64), _f16(b[:, :, 0:2]), None


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 fma(a, b, c) (finite inputs). a*b is exact in
    float64; a two-sum gives s + e == a*b + c exactly; rounding s to float32 is
    then correct unless s is a float32 midpoint, where e decides."""
    p = a.astype(np.float64) * b.astype(np.float64)
    c = c.astype(np.float64)
    s = p + c
    bp = s - c
    e = (p - bp) + (c - (s - bp))
    f = s.astype(F32)
    toward = np.nextafter(f, np.where(s > f, F32(np.inf), F32(-np.inf)).astype(F32))
    mid = (f.astype(np.float64) + toward.astype(np.float64)) / 2
    fix = (s == mid) & (s != f) & (np.sign(e) == np.sign(s - f.astype(np.float64)))
    return np.where(fix, toward, f).astype(F32)


def emulate(wtype: int, raw: np.ndarray, k: int, xq: np.ndarray) -> np.ndarray:
    """(ncols, rows) float32: llama.cpp's x86 order, from the block bytes."""
    w, dw, mw = weight_blocks(wtype, raw, k)
    x, dx, sx = act_blocks(wtype, xq, k)
    ncols, rows, nb = x.shape[0], w.shape[0], k // 32
    acc = np.zeros((ncols, rows, 8), F32)
    ms = np.zeros((ncols, rows), F32)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(nb):
            # lane l: exact sum over elements 4l..4l+3
            lanes = np.einsum("rlj,clj->crl", w[:, i].reshape(rows, 8, 4), x[:, i].reshape(ncols, 8, 4))
            d = (dw[None, :, i] * dx[:, None, i]).astype(F32)       # one float32 rounding
            acc = fma32(np.broadcast_to(d[:, :, None], acc.shape), lanes.astype(F32), acc)
            if mw is not None:
                ms = fma32(np.broadcast_to(mw[None, :, i], ms.shape), np.broadcast_to(sx[:, None, i], ms.shape), ms)
    r = acc[..., 4:] + acc[..., :4]
    r0, r1 = r[..., 0] + r[..., 2], r[..., 1] + r[..., 3]
    out = r0 + r1
    if mw is not None:
        out = out + ms
    return out.astype(F32)


def test_fma32_rounds_once():
    """The emulation's fma rounds once, where a*b+c in float32 (or in float64,
    then float32) rounds twice."""
    def f(a, b, c):
        return fma32(np.array([a], F32), np.array([b], F32), np.array([c], F32))[0]
    a = F32(1 + 2 ** -12)                       # a*a = 1 + 2^-11 + 2^-24, a float32 tie
    c = F32(-(1 + 2 ** -11))
    assert f(a, a, c) == F32(2.0 ** -24)
    assert F32(a * a) + c == F32(0)
    # a*b + c = 2^24 + 3 - 2^-46: float64 rounds it to the float32 midpoint 2^24 + 3,
    # whose tie goes to 2^24 + 4; the exact value lies below it
    a, b, c = F32(1 + 2 ** -23), F32(1 - 2 ** -23), F32(2 ** 24 + 2)
    assert f(a, b, c) == F32(2 ** 24 + 2)
    assert F32(np.float64(a) * np.float64(b) + np.float64(c)) == F32(2 ** 24 + 4)
    assert f(F32(3), F32(-5), F32(0.5)) == F32(-14.5)


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("k", [32, 64, 96, 160, 576])
@pytest.mark.parametrize("wtype", BLOCK32, ids=TYPE_IDS.get)
def test_bit_identical_across_isas(wtype, k, restore_isa):
    """Every ISA this CPU runs gives the scalar kernel's bits, for 1 to 9
    columns (vec_dot, then every multi-column group size and leftover), through
    matmul (float activations) and matmul_q (activation blocks)."""
    isas = _supported()
    if len(isas) < 2:
        pytest.skip("this CPU runs no SIMD ISA that llmlite uses")
    rows = 21                                   # a 16-row tile and a short one
    raw = make_weights(wtype, rows, k, seed=k + 31 * wtype)
    X = make_x(9, k, seed=3 * k + wtype)
    xq = L.quantize_act(wtype, X)
    got = {}
    for name in isas:
        assert L.set_isa(name)
        got[name] = ([L.matmul(wtype, raw, rows, k, X[:n]) for n in range(1, 10)],
                     [L.matmul_q(wtype, raw, rows, k, xq[:n]) for n in range(1, 10)])
    ref = got["scalar"][1][8]
    for name in isas:
        for form, ys in zip(("matmul", "matmul_q"), got[name]):
            for n, y in enumerate(ys, start=1):
                np.testing.assert_array_equal(y, ref[:n], err_msg=f"{name} {form} ncols={n}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("wtype", BLOCK32, ids=TYPE_IDS.get)
def test_equals_llamacpp_order(wtype, isa, restore_isa):
    """Each ISA equals, bit for bit, the numpy emulation of llama.cpp's x86 order."""
    if not L.cpu_has(isa):
        pytest.skip(f"this CPU does not run {isa}")
    assert L.set_isa(isa)
    for k in (32, 96, 576):
        rows = 19
        raw = make_weights(wtype, rows, k, seed=7 * k + wtype)
        X = make_x(5, k, seed=k + 100 * wtype)
        xq = L.quantize_act(wtype, X)
        want = emulate(wtype, raw, k, xq)
        np.testing.assert_array_equal(L.matmul_q(wtype, raw, rows, k, xq), want, err_msg=f"k={k} matmul_q")
        np.testing.assert_array_equal(L.matmul(wtype, raw, rows, k, X), want, err_msg=f"k={k} matmul")
        np.testing.assert_array_equal(L.matmul(wtype, raw, rows, k, X[:1]), want[:1], err_msg=f"k={k} one column")
