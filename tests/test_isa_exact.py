"""The 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) give the same bits
on every ISA: the scalar, AVX2 and AVX-512 kernels all run llama.cpp's x86
order (per block, 8 exact int32 lane sums of 4 elements each, fma'd with the
float product of the two fp16 scales into 8 float lanes; then the hsum_float_8
tree; Q4_1 / Q5_1 add an fma chain of m_w * s_x).

The K-quants (Q2_K .. Q6_K, against Q8_K) likewise follow llama.cpp's batched
x86 orders (Q4_K: the repacked gemm's, an fma per 64 elements; the others: the
tiled matmul's, per super-block), on every ISA: see the K-quant section below.

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
from llmlite.gguf.constants import TYPE_NAMES, GGMLType as Q

from isa import isas, using_isa

BLOCK32 = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0]
TYPE_IDS = {t: TYPE_NAMES[t] for t in BLOCK32}
F32 = np.float32


def make_weights(wtype: int, rows: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, k)).astype(F32)
    x *= rng.uniform(0.01, 10.0, size=(rows, 1)).astype(F32)   # rows of different scales
    if wtype in (Q.Q4_1, Q.Q5_1):
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
    bb = {Q.Q4_0: 18, Q.Q4_1: 20, Q.Q5_0: 22, Q.Q5_1: 24, Q.Q8_0: 34}[wtype]
    b = raw.reshape(rows, nb, bb)
    d = _f16(b[:, :, 0:2])
    m = _f16(b[:, :, 2:4]) if wtype in (Q.Q4_1, Q.Q5_1) else None
    if wtype == Q.Q8_0:
        return b[:, :, 2:].view(np.int8).astype(np.int64), d, None
    qs = b[:, :, bb - 16:].astype(np.int64)
    q = np.concatenate([qs & 15, qs >> 4], axis=2)            # element j: low nibble j, high nibble j - 16
    if wtype in (Q.Q5_0, Q.Q5_1):
        qh = np.ascontiguousarray(b[:, :, bb - 20:bb - 16]).view("<u4")[..., 0].astype(np.int64)
        q = q | (((qh[:, :, None] >> np.arange(32)) & 1) << 4)
    off = {Q.Q4_0: 8, Q.Q5_0: 16}.get(wtype, 0)
    return q - off, d, m


def act_blocks(wtype: int, xq: np.ndarray, k: int):
    """Q8_0 / Q8_1 activation rows -> (int8 values (ncols, nb, 32) int64, d f32, s f32 or None)."""
    n, nb = xq.shape[0], k // 32
    if wtype in (Q.Q4_1, Q.Q5_1):
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


# ------------------------------------------------------------------ checks shared by both families

def _check_isas_agree(simd_isas, wtype, raw, rows, k):
    """Every ISA in simd_isas gives the scalar kernel's bits for 1 to 9 columns (vec_dot,
    then every multi-column group size and leftover) and for 16 and 27 (the
    two-row kernels' passes of 12 and their tails, and the types whose two-row
    kernel only serves larger batches), through matmul (float activations) and
    matmul_q (activation blocks)."""
    ns = list(range(1, 10)) + [16, 27]
    X = make_x(ns[-1], k, seed=3 * k + wtype)
    xq = L.quantize_act(wtype, X)
    got = {}
    for name in ["scalar", *simd_isas]:
        with using_isa(name):
            got[name] = ([L.matmul(wtype, raw, rows, k, X[:n]) for n in ns],
                         [L.matmul_q(wtype, raw, rows, k, xq[:n]) for n in ns])
    ref = got["scalar"][1][-1]
    for name in simd_isas:
        for form, ys in zip(("matmul", "matmul_q"), got[name]):
            for n, y in zip(ns, ys):
                np.testing.assert_array_equal(y, ref[:n], err_msg=f"{name} {form} ncols={n}")


def _check_emulation(wtype, raw, rows, k, model):
    """The current ISA equals model(wtype, raw, k, xq), the numpy emulation of
    llama.cpp's order, through matmul_q, matmul, and matmul on one column."""
    X = make_x(5, k, seed=k + 100 * wtype)
    xq = L.quantize_act(wtype, X)
    want = model(wtype, raw, k, xq)
    np.testing.assert_array_equal(L.matmul_q(wtype, raw, rows, k, xq), want, err_msg=f"k={k} matmul_q")
    np.testing.assert_array_equal(L.matmul(wtype, raw, rows, k, X), want, err_msg=f"k={k} matmul")
    np.testing.assert_array_equal(L.matmul(wtype, raw, rows, k, X[:1]), want[:1], err_msg=f"k={k} one column")


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("k", [32, 64, 96, 160, 576])
@pytest.mark.parametrize("wtype", BLOCK32, ids=TYPE_IDS.get)
def test_bit_identical_across_isas(wtype, k, simd_isas):
    """Every ISA this CPU runs gives the scalar kernel's bits, for 1 to 9
    columns (vec_dot, then every multi-column group size and leftover), through
    matmul (float activations) and matmul_q (activation blocks)."""
    rows = 21                                   # a 16-row tile and a short one
    _check_isas_agree(simd_isas, wtype, make_weights(wtype, rows, k, seed=k + 31 * wtype), rows, k)


@pytest.mark.parametrize("wtype", BLOCK32, ids=TYPE_IDS.get)
def test_equals_llamacpp_order(wtype, isa):
    """Each ISA equals, bit for bit, the numpy emulation of llama.cpp's x86 order."""
    for k in (32, 96, 576):
        _check_emulation(wtype, make_weights(wtype, 19, k, seed=7 * k + wtype), 19, k, emulate)


# ====================================================== K-quants (Q8_K activations)
# llama.cpp's batched x86 orders, per (weight row, Q8_K column), from the exact
# integers I (sum of scale * w * x) and M (sum of min * bsum) of a super-block,
# dw / dmin the widened fp16 scales, dx the Q8_K float d:
#   Q4_K (repacked gemm): I_k, M_k per 64 elements k = 0..3;
#        acc = fma(I_k, dw*dx, acc), accm = fma(M_k, dmin*dx, accm); acc - accm
#   Q6_K, Q3_K (tiled matmul, no min): acc = fma(I*dw, dx, acc)
#   Q5_K, Q2_K (tiled matmul, with min): acc = fma(fma(-dmin, M, I*dw), dx, acc)

KQUANTS = [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]
KTYPE_IDS = {t: TYPE_NAMES[t] for t in KQUANTS}
# (block bytes, offset of the fp16 d, offset of dmin or None): spec section 1
K_LAYOUT = {Q.Q2_K: (84, 80, 82), Q.Q3_K: (110, 108, None), Q.Q4_K: (144, 0, 2),
            Q.Q5_K: (176, 0, 2), Q.Q6_K: (210, 208, None)}
E = np.arange(256)


def make_kweights(wtype: int, rows: int, k: int, seed: int) -> np.ndarray:
    """Random super-blocks (every byte pattern of the quants and packed scales is
    a valid block), with finite fp16 d of either sign and magnitudes spread over
    two decades, and positive dmin."""
    rng = np.random.default_rng(seed)
    bb, od, om = K_LAYOUT[wtype]
    nb = k // 256
    raw = rng.integers(0, 256, size=(rows, nb, bb), dtype=np.uint8)
    d = rng.uniform(1e-3, 1e-1, size=(rows, nb)) * np.where(rng.random((rows, nb)) < 0.5, -1, 1)
    raw[:, :, od:od + 2] = d.astype(np.float16)[:, :, None].view(np.uint8)
    if om is not None:
        dm = rng.uniform(1e-3, 1e-1, size=(rows, nb)).astype(np.float16)
        raw[:, :, om:om + 2] = dm[:, :, None].view(np.uint8)
    return np.ascontiguousarray(raw.reshape(rows, nb * bb))


def _k4_scale_min(s: np.ndarray):
    """Q4_K / Q5_K 12 packed bytes (..., 12) -> 6-bit scales and mins (..., 8)."""
    s = s.astype(np.int64)
    sc = np.concatenate([s[..., 0:4] & 63, (s[..., 8:12] & 15) | ((s[..., 0:4] >> 6) << 4)], axis=-1)
    m = np.concatenate([s[..., 4:8] & 63, (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)], axis=-1)
    return sc, m


def kweight_blocks(wtype: int, raw: np.ndarray, k: int):
    """raw rows -> (w (rows, nb, 256) int64: the integer each element multiplies x
    by within its sub-block, scale (rows, nb, nsub) int64, min (rows, nb, nsub)
    int64 or None, dw f32, dmin f32 or None); sub-blocks of 256 / nsub elements."""
    rows, nb = raw.shape[0], k // 256
    bb, od, om = K_LAYOUT[wtype]
    b = raw.reshape(rows, nb, bb)
    dw = _f16(b[:, :, od:od + 2])
    dmin = _f16(b[:, :, om:om + 2]) if om is not None else None
    if wtype in (Q.Q2_K, Q.Q3_K):
        qs = b[:, :, 16:80] if wtype == Q.Q2_K else b[:, :, 32:96]
        low2 = (qs[:, :, 32 * (E // 128) + E % 32].astype(np.int64) >> (2 * ((E % 128) // 32))) & 3
        if wtype == Q.Q2_K:
            s = b[:, :, 0:16].astype(np.int64)
            return low2, s & 15, s >> 4, dw, dmin
        hbit = (b[:, :, E % 32].astype(np.int64) >> (E // 32)) & 1            # hmask
        p = b[:, :, 96:108].astype(np.int64)
        j = np.arange(16)
        s6 = (p[:, :, j % 8] >> (4 * (j // 8))) & 15
        s6 |= ((p[:, :, 8 + j % 4] >> (2 * (j // 4))) & 3) << 4
        return low2 + 4 * hbit - 4, s6 - 32, None, dw, None
    if wtype in (Q.Q4_K, Q.Q5_K):
        qs = b[:, :, 16:144] if wtype == Q.Q4_K else b[:, :, 48:176]
        q = (qs[:, :, 32 * (E // 64) + E % 32].astype(np.int64) >> (4 * ((E // 32) % 2))) & 15
        if wtype == Q.Q5_K:
            q |= ((b[:, :, 16 + E % 32].astype(np.int64) >> (E // 32)) & 1) << 4   # qh
        sc, m = _k4_scale_min(b[:, :, 4:16])
        return q, sc, m, dw, dmin
    # Q6_K
    h, r = E // 128, E % 128
    qq, l = r // 32, r % 32
    low4 = (b[:, :, 64 * h + l + 32 * (qq & 1)].astype(np.int64) >> (4 * (qq >= 2))) & 15
    high2 = (b[:, :, 128 + 32 * h + l].astype(np.int64) >> (2 * qq)) & 3
    return (low4 | (high2 << 4)) - 32, b[:, :, 192:208].view(np.int8).astype(np.int64), None, dw, None


def q8k_blocks(xq: np.ndarray, k: int):
    """Q8_K rows -> (qs (n, nb, 256) int64, d (n, nb) f32, bsums (n, nb, 16) int64)."""
    n, nb = xq.shape[0], k // 256
    b = xq.reshape(n, nb, 292)
    d = np.ascontiguousarray(b[:, :, 0:4]).view("<f4")[..., 0].astype(F32)
    return (b[:, :, 4:260].view(np.int8).astype(np.int64), d,
            np.ascontiguousarray(b[:, :, 260:292]).view("<i2").astype(np.int64))


def _f32_of_int(i: np.ndarray) -> np.ndarray:
    return i.astype(np.float64).astype(F32)       # exact, then one rounding


ORDER = {Q.Q2_K: "tiled", Q.Q3_K: "tiled", Q.Q4_K: "gemm64", Q.Q5_K: "tiled", Q.Q6_K: "tiled"}


def emulate_k(wtype: int, raw: np.ndarray, k: int, xq: np.ndarray, order: str | None = None) -> np.ndarray:
    """(ncols, rows) float32: llama.cpp's batched order for wtype (ORDER), from the
    block bytes. Other orders, to show the data tells them apart: "gemm64" on any
    type with 8 sub-blocks, "superblock" (acc = fma(I, dw*dx, acc) and
    accm = fma(M, dmin*dx, accm) once per super-block; acc - accm)."""
    order = order or ORDER[wtype]
    w, sc, mn, dw, dmin = kweight_blocks(wtype, raw, k)
    x, dx, bs = q8k_blocks(xq, k)
    nsub = sc.shape[2]
    rows, ncols, nb = w.shape[0], x.shape[0], k // 256
    # exact per-sub-block dots (ncols, rows, nb, nsub), and sub-block sums of x from the bsums (per 16)
    S = np.einsum("rbsl,cbsl->crbs", w.reshape(rows, nb, nsub, 256 // nsub), x.reshape(ncols, nb, nsub, 256 // nsub))
    xs = bs.reshape(ncols, nb, nsub, 16 // nsub).sum(axis=3)
    shape = (ncols, rows)
    acc = np.zeros(shape, F32)
    accm = np.zeros(shape, F32)
    for i in range(nb):
        dwi = np.broadcast_to(dw[None, :, i], shape)
        dxi = np.broadcast_to(dx[:, None, i], shape)
        ISub = sc[None, :, i] * S[:, :, i]                                          # (ncols, rows, nsub)
        MSub = (np.broadcast_to(mn[None, :, i] * xs[:, None, i], ISub.shape) if mn is not None
                else np.zeros_like(ISub))
        if order == "tiled":
            r = (_f32_of_int(ISub.sum(axis=2)) * dwi).astype(F32)
            if mn is not None:
                r = fma32(-np.broadcast_to(dmin[None, :, i], shape), _f32_of_int(MSub.sum(axis=2)), r)
            acc = fma32(r, dxi, acc)
            continue
        d = (dwi * dxi).astype(F32)
        dm = (np.broadcast_to(dmin[None, :, i], shape) * dxi).astype(F32) if mn is not None else d
        steps = [(ISub.sum(axis=2), MSub.sum(axis=2))] if order == "superblock" else \
                [(ISub[..., 2 * s:2 * s + 2].sum(axis=2), MSub[..., 2 * s:2 * s + 2].sum(axis=2)) for s in range(4)]
        for I, M in steps:
            acc = fma32(_f32_of_int(I), d, acc)
            accm = fma32(_f32_of_int(M), dm, accm)
    return (acc - accm).astype(F32)


def test_kquant_model_decodes_like_gguf():
    """The emulation's block decoder agrees with gguf's dequantizer (so the
    orders are emulated on the right integers)."""
    for wtype in KQUANTS:
        raw = make_kweights(wtype, 3, 512, seed=wtype)
        w, sc, mn, dw, dmin = kweight_blocks(wtype, raw, 512)
        nsub = sc.shape[2]
        v = dw[:, :, None].astype(np.float64) * np.repeat(sc, 256 // nsub, axis=2) * w
        if mn is not None:
            v -= dmin[:, :, None].astype(np.float64) * np.repeat(mn, 256 // nsub, axis=2)
        want = gq.dequantize(raw, GQT(wtype)).reshape(3, 2, 256).astype(np.float64)
        np.testing.assert_allclose(v, want, rtol=1e-6, atol=1e-6, err_msg=TYPE_NAMES[wtype])


@pytest.mark.parametrize("wtype", KQUANTS, ids=KTYPE_IDS.get)
def test_kquant_orders_differ(wtype):
    """On data like the tests' below, another order of the float steps changes
    some results (so the bit-exact tests are met by one order only), by a
    rounding-sized amount (so the emulated orders compute the same sums)."""
    k, rows = 768, 19
    raw = make_kweights(wtype, rows, k, seed=11 + wtype)
    xq = L.quantize_act(wtype, make_x(5, k, seed=5 + wtype))
    want = emulate_k(wtype, raw, k, xq)
    others = ["superblock"] + [o for o in ("tiled", "gemm64") if o != ORDER[wtype] and (o != "gemm64" or wtype in (Q.Q4_K, Q.Q5_K))]
    for o in others:
        y = emulate_k(wtype, raw, k, xq, order=o)
        assert np.any(y != want), o
        np.testing.assert_allclose(y, want, rtol=0, atol=1e-5 * np.abs(want).max(), err_msg=o)


@pytest.mark.parametrize("k", [256, 512, 768])
@pytest.mark.parametrize("wtype", KQUANTS, ids=KTYPE_IDS.get)
def test_kquant_bit_identical_across_isas(wtype, k, simd_isas):
    """Every ISA this CPU runs gives the scalar kernel's bits for 1 to 9 columns,
    through matmul (float activations) and matmul_q (Q8_K blocks)."""
    rows = 21
    _check_isas_agree(simd_isas, wtype, make_kweights(wtype, rows, k, seed=k + 31 * wtype), rows, k)


@pytest.mark.parametrize("wtype", KQUANTS, ids=KTYPE_IDS.get)
def test_kquant_equals_llamacpp_order(wtype, isa):
    """Each ISA equals, bit for bit, the numpy emulation of llama.cpp's batched order."""
    for k in (256, 512, 768):
        _check_emulation(wtype, make_kweights(wtype, 19, k, seed=7 * k + wtype), 19, k, emulate_k)


@pytest.mark.parametrize("wtype,gtype", [(8, GQT.Q8_0), (6, GQT.Q5_0), (2, GQT.Q4_0), (3, GQT.Q4_1), (7, GQT.Q5_1)])
def test_row_pairs_and_wide_column_groups_match_scalar(wtype, gtype):
    """The two-row kernels (vec_dot_ncw2 / vec_dot_nc2, up to 12 columns a pass) and the one-row
    tail of an odd row count give every row the scalar result's bits."""
    rng = np.random.RandomState(wtype)
    for rows in (1, 7, 33):
        W = gq.quantize(rng.randn(rows, 256).astype(np.float32), gtype)
        for nc in (2, 7, 13, 25):
            X = rng.randn(nc, 256).astype(np.float32)
            with using_isa("scalar"):
                want = L.matmul(wtype, W, rows, 256, X)
            for name in isas()[1:]:
                with using_isa(name):
                    assert np.array_equal(L.matmul(wtype, W, rows, 256, X), want), (name, rows, nc)


@pytest.mark.parametrize("wtype", KQUANTS, ids=KTYPE_IDS.get)
def test_kquant_row_tiles_match_vec_dot(wtype):
    """The 16-row tile kernels (vec_dot_r16, AVX-512 Q4_K / Q5_K / Q6_K: prefill-sized
    batches) give every (row, column) vec_dot's bits: row counts short of, at and
    past a tile (odd ones too), 1 to 40 columns and past a 128-column pass, three
    super-blocks (a transposed chunk of two, then one), 1 and 2 threads; on every
    ISA, each against its own one-column results and against scalar."""
    k = 768
    X = make_x(130, k, seed=wtype)
    before = L.lib.llm_get_threads()
    try:
        for rows in (1, 7, 16, 17, 37):
            for raw in (make_kweights(wtype, rows, k, seed=rows + 100 * wtype),
                        L.quantize_rows(wtype, X[:rows] * F32(0.01)) if L.lib.llm_quantize_type_supported(wtype) else None):
                if raw is None:
                    continue
                with using_isa("scalar"):
                    want = L.matmul(wtype, raw, rows, k, X)
                for name in isas():
                    with using_isa(name):
                        L.set_threads(1)
                        single = np.concatenate([L.matmul(wtype, raw, rows, k, X[c:c + 1]) for c in range(40)])
                        np.testing.assert_array_equal(single, want[:40], err_msg=f"{name} rows={rows} one column")
                        for nt in (1, 2):
                            L.set_threads(nt)
                            for nc in (*range(2, 41), 64, 65, 130):
                                y = L.matmul(wtype, raw, rows, k, X[:nc])
                                np.testing.assert_array_equal(y, want[:nc], err_msg=f"{name} rows={rows} nc={nc} threads={nt}")
                            xq = L.quantize_act(wtype, X[3:40])
                            np.testing.assert_array_equal(L.matmul_q(wtype, raw, rows, k, xq), want[3:40],
                                                          err_msg=f"{name} rows={rows} matmul_q threads={nt}")
    finally:
        L.set_threads(before)


@pytest.mark.parametrize("wtype", KQUANTS, ids=KTYPE_IDS.get)
def test_kquant_one_column_row_groups_match_vec_dot(wtype):
    """The one-column multi-row kernels (vec_dot_r4, AVX-512 Q4_K: decode) give every
    row vec_dot's bits: row counts 1 to 37 (groups of 4 and the odd rows left one by
    one), three super-blocks, 1 and 2 threads; on every ISA, each against its own
    one-row results (a matrix of one row goes through vec_dot) and against scalar."""
    k = 768
    X = make_x(6, k, seed=7 + wtype)
    before = L.lib.llm_get_threads()
    try:
        for rows in (*range(1, 10), 15, 16, 17, 31, 33, 37):
            for raw in (make_kweights(wtype, rows, k, seed=rows + 300 * wtype),
                        L.quantize_rows(wtype, X[:1].repeat(rows, 0) * F32(0.01) + make_x(rows, k, seed=rows) * F32(1e-3))
                        if L.lib.llm_quantize_type_supported(wtype) else None):
                if raw is None:
                    continue
                raw = np.ascontiguousarray(raw)
                rb = raw.size // rows
                flat = raw.reshape(-1)
                for c in range(len(X)):
                    xc = X[c:c + 1]
                    with using_isa("scalar"):
                        want = L.matmul(wtype, raw, rows, k, xc)
                    for name in isas():
                        with using_isa(name):
                            L.set_threads(1)
                            one = np.concatenate([L.matmul(wtype, flat[r * rb:(r + 1) * rb].copy(), 1, k, xc).reshape(-1)
                                                  for r in range(rows)])
                            np.testing.assert_array_equal(one, want.reshape(-1), err_msg=f"{name} rows={rows} one row")
                            for nt in (1, 2):
                                L.set_threads(nt)
                                y = L.matmul(wtype, raw, rows, k, xc)
                                np.testing.assert_array_equal(y, want, err_msg=f"{name} rows={rows} c={c} threads={nt}")
    finally:
        L.set_threads(before)
