"""The vec-dot kernels and the matmul driver.

Every weight type against a float64 reference built from the dequantized
weights (gguf-py as the oracle) and the dequantized activation blocks, on every
ISA this CPU runs; SIMD against the scalar twin; batch and thread invariance
(bitwise); bad input.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
from gguf import GGMLQuantizationType as GQT
from gguf import quants as gq

from llmlite import _lib as L
from llmlite.errors import LlmliteError
from llmlite.gguf.constants import TYPE_NAMES, GGMLType as Q

from isa import isas, using_isa

BLOCK32 = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0]
KQUANTS = [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]
FLOATS = [Q.F32, Q.F16, Q.BF16]
ALL_TYPES = FLOATS + BLOCK32 + KQUANTS
TYPE_IDS = {t: TYPE_NAMES[t] for t in ALL_TYPES}

REL_TOL = 1e-5      # of sum |w_i x_i|
ABS_EPS = 1e-30     # for rows/columns whose products are all zero

# byte offsets of the fp16 super-block scales of the K-quants (spec section 1):
# (block bytes, offset of d, offset of dmin or None)
K_LAYOUT = {Q.Q2_K: (84, 80, 82), Q.Q3_K: (110, 108, None), Q.Q4_K: (144, 0, 2),
            Q.Q5_K: (176, 0, 2), Q.Q6_K: (210, 208, None)}


def _gqt(t: int) -> GQT:
    return GQT(t)


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _bf16_value(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------- weights

@functools.lru_cache(maxsize=None)
def make_weights(wtype: int, rows: int, k: int, seed: int = 0):
    """(raw bytes (rows, row_bytes) uint8, dequantized float64 (rows, k))."""
    rng = np.random.default_rng(1000 * wtype + 7 * rows + k + seed)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    if wtype == Q.F32:
        return x.view(np.uint8).copy(), x.astype(np.float64)
    if wtype == Q.F16:
        # a sprinkling of fp16 subnormals and exact zeros
        tiny = rng.random((rows, k)) < 0.05
        x[tiny] *= np.float32(2.0 ** -20)
        x[rng.random((rows, k)) < 0.02] = 0
        h = x.astype(np.float16)
        return h.view(np.uint8).copy(), h.astype(np.float64)
    if wtype == Q.BF16:
        b = _bf16_bits(x)
        return b.view(np.uint8).copy(), _bf16_value(b).astype(np.float64)
    if wtype in BLOCK32:
        raw = gq.quantize(x, _gqt(wtype))
    else:
        bb, od, om = K_LAYOUT[wtype]
        nb = k // 256
        raw = rng.integers(0, 256, size=(rows, nb, bb), dtype=np.uint8)
        d = rng.uniform(1e-3, 2e-2, size=(rows, nb)).astype(np.float16)
        if om is None:   # Q3_K / Q6_K: symmetric, d of either sign (real Q6_K files store d < 0)
            d = np.where(rng.random((rows, nb)) < 0.5, -d, d).astype(np.float16)
        raw[:, :, od:od + 2] = d.view(np.uint8).reshape(rows, nb, 2)
        if om is not None:
            dm = rng.uniform(1e-3, 2e-2, size=(rows, nb)).astype(np.float16)
            raw[:, :, om:om + 2] = dm.view(np.uint8).reshape(rows, nb, 2)
        raw = raw.reshape(rows, nb * bb)
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    deq = gq.dequantize(raw, _gqt(wtype)).astype(np.float64).reshape(rows, k)
    assert np.isfinite(deq).all()
    return raw, deq


# ------------------------------------------------------------ activations
# Decoders of the activation blocks, written here from spec section 1, so that
# the reference does not rest on llmlite's own dequantizer.

def decode_act(wtype: int, xq: np.ndarray, k: int):
    """Activation blocks (ncols, bytes) -> (values float64 (ncols, k), s-correction).

    The Q8_1 kernels use the block's stored s = h(d·Σq) for the weight minimum
    term, which differs from f(d)·Σq by fp16 rounding. The second result is, per
    column and 32-block, f(s) − f(d)·Σq (None for other types), so that the
    reference is exactly the sum the kernel is defined to compute."""
    at = L.lib.llm_type_act_type(wtype)
    n = xq.shape[0]
    if at == Q.F32:
        return xq.view(np.float32).reshape(n, k).astype(np.float64), None
    if at == Q.F16:
        return xq.view(np.float16).reshape(n, k).astype(np.float64), None
    if at == Q.BF16:
        return _bf16_value(xq.view(np.uint16).reshape(n, k)).astype(np.float64), None
    if at == Q.Q8_0:
        b = xq.reshape(n, k // 32, 34)
        d = b[:, :, 0:2].copy().view(np.float16).astype(np.float64)
        q = b[:, :, 2:].view(np.int8).astype(np.float64)
        return (d * q).reshape(n, k), None
    if at == Q.Q8_1:
        b = xq.reshape(n, k // 32, 36)
        d = b[:, :, 0:2].copy().view(np.float16).astype(np.float64)
        s = b[:, :, 2:4].copy().view(np.float16).astype(np.float64)[:, :, 0]
        q = b[:, :, 4:].view(np.int8).astype(np.float64)
        return (d * q).reshape(n, k), s - d[:, :, 0] * q.sum(axis=2)
    if at == Q.Q8_K:
        b = xq.reshape(n, k // 256, 292)
        d = b[:, :, 0:4].copy().view(np.float32).astype(np.float64)
        q = b[:, :, 4:260].view(np.int8)
        bs = b[:, :, 260:292].copy().view(np.int16)
        # the kernels take the minimum terms from bsums: they must match qs
        # (an all-zero block, d = 0, may leave them unset)
        ok = (bs == q.astype(np.int64).reshape(n, k // 256, 16, 16).sum(axis=3)) | (d == 0)
        assert ok.all(), "Q8_K bsums do not match qs"
        return (d * q.astype(np.float64)).reshape(n, k), None
    raise AssertionError(at)


def make_act_blocks(wtype: int, X: np.ndarray) -> np.ndarray:
    """Activation blocks built in numpy (spec sections 2 and 4), independent of
    llm_quantize_act, to test the kernels through matmul_q."""
    at = L.lib.llm_type_act_type(wtype)
    n, k = X.shape
    X = X.astype(np.float32)
    if at == Q.F32:
        return X.view(np.uint8).copy()
    if at == Q.F16:
        return X.astype(np.float16).view(np.uint8).copy()
    if at == Q.BF16:
        return _bf16_bits(X).view(np.uint8).copy()
    if at == Q.Q8_0:
        return np.ascontiguousarray(gq.quantize(X, GQT.Q8_0))
    if at == Q.Q8_1:
        xb = X.reshape(n, k // 32, 32)
        d = np.abs(xb).max(axis=2) / np.float32(127)
        with np.errstate(divide="ignore"):
            idv = np.where(d > 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
        q = np.rint(xb * idv[:, :, None]).astype(np.int8)
        s = (q.astype(np.float32).sum(axis=2) * d).astype(np.float16)
        out = np.empty((n, k // 32, 36), dtype=np.uint8)
        out[:, :, 0:2] = d.astype(np.float16)[:, :, None].view(np.uint8)
        out[:, :, 2:4] = s[:, :, None].view(np.uint8)
        out[:, :, 4:] = q.view(np.uint8)
        return out.reshape(n, -1)
    if at == Q.Q8_K:
        xb = X.reshape(n, k // 256, 256)
        idx = np.abs(xb).argmax(axis=2)
        mx = np.take_along_axis(xb, idx[:, :, None], axis=2)[:, :, 0]
        with np.errstate(divide="ignore"):
            iscale = np.where(mx != 0, np.float32(-127) / mx, np.float32(0)).astype(np.float32)
        q = np.clip(np.rint(xb * iscale[:, :, None]), -128, 127).astype(np.int8)
        with np.errstate(divide="ignore"):
            d = np.where(iscale != 0, np.float32(1) / iscale, np.float32(0)).astype(np.float32)
        bs = q.astype(np.int16).reshape(n, k // 256, 16, 16).sum(axis=3).astype(np.int16)
        out = np.empty((n, k // 256, 292), dtype=np.uint8)
        out[:, :, 0:4] = d[:, :, None].view(np.uint8)
        out[:, :, 4:260] = q.view(np.uint8)
        out[:, :, 260:] = bs.view(np.uint8)
        return out.reshape(n, -1)
    raise AssertionError(at)


def weight_mins(wtype: int, raw: np.ndarray, k: int):
    """f(m) per row and 32-block for Q4_1 / Q5_1 (None otherwise)."""
    if wtype not in (Q.Q4_1, Q.Q5_1):
        return None
    bb = 20 if wtype == Q.Q4_1 else 24
    b = raw.reshape(raw.shape[0], k // 32, bb)
    return b[:, :, 2:4].copy().view(np.float16).astype(np.float64)[:, :, 0]


def reference(wtype, raw, wdeq, xq, k):
    """(float64 Y (ncols, rows), bound Σ|w_i x_i| (ncols, rows))."""
    a, s_corr = decode_act(wtype, xq, k)
    ref = a @ wdeq.T
    bound = np.abs(a) @ np.abs(wdeq).T
    if s_corr is not None:
        m = weight_mins(wtype, raw, k)
        ref = ref + s_corr @ m.T
        bound = bound + np.abs(s_corr) @ np.abs(m).T
    return ref, bound


def assert_close(y, ref, bound, what=""):
    err = np.abs(y.astype(np.float64) - ref)
    lim = REL_TOL * bound + ABS_EPS
    bad = ~(err <= lim)
    if bad.any():
        c, r = np.argwhere(bad)[0]
        raise AssertionError(f"{what}: {bad.sum()} outputs off, e.g. [col {c}, row {r}] "
                             f"got {y[c, r]!r} want {ref[c, r]!r} (err {err[c, r]:.3g}, limit {lim[c, r]:.3g})")


# ---------------------------------------------------------------- fixtures (isa, simd_isas: tests/conftest.py)

@pytest.fixture
def threads():
    before = L.lib.llm_get_threads()
    yield L.set_threads
    L.set_threads(before)


def shapes_for(wtype):
    if wtype in KQUANTS:
        return [(1, 256), (7, 512), (64, 2048)]
    if wtype in BLOCK32:
        return [(1, 256), (7, 96), (64, 576), (7, 2048)]
    return [(1, 256), (7, 37), (64, 576), (7, 2048)]   # float types: any k, tails too


CASES = [(t, r, k) for t in ALL_TYPES for (r, k) in shapes_for(t)]


def case_id(c):
    return f"{TYPE_NAMES[c[0]]}-r{c[1]}-k{c[2]}"


def random_x(ncols, k, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((ncols, k)).astype(np.float32)
    X[0] *= np.float32(100.0)  # columns of different magnitudes
    return X


# ------------------------------------------------------------------- tests

@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_kernel_vs_reference(case, isa):
    """matmul_q on activation blocks built in numpy: each output within
    1e-5·Σ|w_i x_i| of the float64 sum of the dequantized products."""
    wtype, rows, k = case
    raw, wdeq = make_weights(wtype, rows, k)
    X = random_x(3, k, seed=k + rows)
    xq = make_act_blocks(wtype, X)
    y = L.matmul_q(wtype, raw, rows, k, xq)
    assert y.shape == (3, rows) and y.dtype == np.float32
    ref, bound = reference(wtype, raw, wdeq, xq, k)
    assert_close(y, ref, bound, f"{TYPE_NAMES[wtype]} {isa}")


@pytest.mark.parametrize("wtype", ALL_TYPES, ids=TYPE_IDS.get)
def test_matmul_vs_reference(wtype, isa):
    """matmul (activation conversion inside) against the reference built from
    its own converted activations; an all-zero column gives zeros; matmul equals
    matmul_q on quantize_act's output, bit for bit."""
    rows, k = 19, 512
    raw, wdeq = make_weights(wtype, rows, k)
    X = random_x(4, k, seed=99)
    X[2] = 0.0
    xq = L.quantize_act(wtype, X)
    assert xq.shape == (4, L.row_bytes(L.lib.llm_type_act_type(wtype), k))
    y = L.matmul(wtype, raw, rows, k, X)
    ref, bound = reference(wtype, raw, wdeq, xq, k)
    assert_close(y, ref, bound, f"{TYPE_NAMES[wtype]} {isa}")
    assert np.all(y[2] == 0)
    np.testing.assert_array_equal(y, L.matmul_q(wtype, raw, rows, k, xq))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_simd_vs_scalar(case, simd_isas):
    """Each SIMD table against the scalar twin, same activation blocks."""
    wtype, rows, k = case
    raw, wdeq = make_weights(wtype, rows, k)
    X = random_x(3, k, seed=7 * k + rows)
    xq = make_act_blocks(wtype, X)
    _, bound = reference(wtype, raw, wdeq, xq, k)
    with using_isa("scalar"):
        y0 = L.matmul_q(wtype, raw, rows, k, xq)
    for name in simd_isas:
        with using_isa(name):
            y = L.matmul_q(wtype, raw, rows, k, xq)
        assert_close(y, y0.astype(np.float64), bound, f"{TYPE_NAMES[wtype]} {name} vs scalar")


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("wtype", ALL_TYPES, ids=TYPE_IDS.get)
def test_batch_invariance(wtype, nthreads, isa, threads):
    """A column's result is the same bits whether it is computed alone or in a
    batch of 1 to 9, 17 or 33 columns: every group size of the multi-column
    kernels (up to 4 columns at once) and every leftover, at every position."""
    assert threads(nthreads) == nthreads
    rows = 37              # 37 rows: three 16-row tiles, the last one short
    # 32-element types: 19 blocks (a 4-block loop, then a 2-block and a 1-block tail);
    # floats: not a multiple of the SIMD width; K-quants: two super-blocks
    k = {**{t: 608 for t in BLOCK32}, **{t: 600 for t in FLOATS}}.get(wtype, 512)
    raw, _ = make_weights(wtype, rows, k)
    X = random_x(33, k, seed=5)
    single = np.concatenate([L.matmul(wtype, raw, rows, k, X[c:c + 1]) for c in range(33)])
    for ncols in (*range(2, 10), 17, 33):
        y = L.matmul(wtype, raw, rows, k, X[:ncols])
        np.testing.assert_array_equal(y, single[:ncols], err_msg=f"ncols={ncols}")
    # a batch that starts elsewhere: each column lands at other group positions
    y = L.matmul(wtype, raw, rows, k, X[3:10])
    np.testing.assert_array_equal(y, single[3:10], err_msg="columns 3..9")


@pytest.mark.parametrize("wtype", BLOCK32, ids=TYPE_IDS.get)
@pytest.mark.parametrize("k", [32, 64, 96, 128, 160])
def test_batch_invariance_short_rows(wtype, k, isa):
    """Rows of 1 to 5 blocks (only the tails of the block loops) stay batch invariant."""
    rows = 5
    raw, _ = make_weights(wtype, rows, k)
    X = random_x(6, k, seed=k)
    single = np.concatenate([L.matmul(wtype, raw, rows, k, X[c:c + 1]) for c in range(6)])
    np.testing.assert_array_equal(L.matmul(wtype, raw, rows, k, X), single)


@pytest.mark.parametrize("wtype", ALL_TYPES, ids=TYPE_IDS.get)
def test_threads_identical(wtype, isa, threads):
    """Rows split across 2 threads give the results of 1 thread, bit for bit,
    for row counts below, at and above the thread/tile counts."""
    k = 256
    for rows in (1, 2, 16, 33, 100):
        raw, _ = make_weights(wtype, rows, k)
        X = random_x(5, k, seed=rows)
        out = {}
        for n in (1, 2):
            assert threads(n) == n
            out[n] = (L.matmul(wtype, raw, rows, k, X[:1]), L.matmul(wtype, raw, rows, k, X))
        np.testing.assert_array_equal(out[1][0], out[2][0], err_msg=f"rows={rows} ncols=1")
        np.testing.assert_array_equal(out[1][1], out[2][1], err_msg=f"rows={rows} ncols=5")


def test_empty_shapes(threads):
    raw, _ = make_weights(Q.Q4_0, 4, 64)
    for n in (1, 2):
        threads(n)
        assert L.matmul(Q.Q4_0, raw, 0, 64, np.ones((3, 64), np.float32)).shape == (3, 0)
        assert L.matmul(Q.Q4_0, raw, 4, 64, np.ones((0, 64), np.float32)).shape == (0, 4)


@pytest.mark.parametrize("bad_type", [Q.Q8_1, Q.Q8_K, 4, 5, 24, 28, 31, 99, -1])
def test_unsupported_type(bad_type):
    W = np.zeros(4096, np.uint8)
    X = np.ones((2, 256), np.float32)
    with pytest.raises(LlmliteError):
        L.matmul(bad_type, W, 2, 256, X)
    with pytest.raises(LlmliteError):
        L.matmul_q(bad_type, W, 2, 256, np.zeros((2, 292), np.uint8))
    # the C entry points refuse too (no crash, no write)
    Y = np.full(4, 7.0, np.float32)
    ptr = L.ffi.cast("void *", W.ctypes.data)
    assert L.lib.llm_matmul(bad_type, ptr, 2, 256, L.ffi.cast("float *", X.ctypes.data), 2,
                            L.ffi.cast("float *", Y.ctypes.data)) == -1
    assert L.lib.llm_matmul_q(bad_type, ptr, 2, 256, ptr, 2, L.ffi.cast("float *", Y.ctypes.data)) == -1
    assert np.all(Y == 7.0)


@pytest.mark.parametrize("wtype,k", [(Q.Q4_0, 48), (Q.Q8_0, 100), (Q.Q5_1, 16), (Q.Q4_K, 288),
                                     (Q.Q6_K, 128), (Q.Q2_K, 32)], ids=lambda v: str(v))
def test_k_not_block_multiple(wtype, k):
    W = np.zeros(8192, np.uint8)
    X = np.ones((1, k), np.float32)
    with pytest.raises(LlmliteError):
        L.matmul(wtype, W, 2, k, X)
    with pytest.raises(LlmliteError):
        L.matmul_q(wtype, W, 2, k, np.zeros((1, 4096), np.uint8))
    Y = np.full(2, 7.0, np.float32)
    ptr = L.ffi.cast("void *", W.ctypes.data)
    assert L.lib.llm_matmul(wtype, ptr, 2, k, L.ffi.cast("float *", X.ctypes.data), 1,
                            L.ffi.cast("float *", Y.ctypes.data)) == -1
    assert L.lib.llm_matmul_q(wtype, ptr, 2, k, ptr, 1, L.ffi.cast("float *", Y.ctypes.data)) == -1
    assert np.all(Y == 7.0)


def test_wrapper_size_checks():
    raw, _ = make_weights(Q.Q4_K, 4, 512)
    X = np.ones((2, 512), np.float32)
    with pytest.raises(LlmliteError):          # weight buffer shorter than rows·row_bytes
        L.matmul(Q.Q4_K, raw[:3], 4, 512, X)
    with pytest.raises(LlmliteError):          # activation width
        L.matmul(Q.Q4_K, raw, 4, 256, X)
    xq = L.quantize_act(Q.Q4_K, X)
    with pytest.raises(LlmliteError):          # activation blocks too short for k
        L.matmul_q(Q.Q4_K, raw, 4, 512, xq[:, :292])
    with pytest.raises(LlmliteError):
        L.matmul_q(Q.Q4_K, raw[:3], 4, 512, xq)


# --------------------------------------------------------- real model rows

def _real_rows(path, want_types, nrows=24):
    """The first rows of the first 2-D tensor of each wanted type."""
    from llmlite.gguf import open_gguf

    f = open_gguf(path)
    got = {}
    for t in f.tensors.values():
        if t.type in want_types and t.type not in got and len(t.shape) == 2:
            k = int(t.shape[0])
            rb = L.row_bytes(t.type, k)
            rows = min(nrows, int(t.shape[1]))
            data = f.tensor_data(t.name)[:rows * rb]
            got[t.type] = (t.name, k, rows, np.array(data).reshape(rows, rb))
    f.close()
    return got


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_real_model_rows(model, request):
    """Rows of the real test models, every type they hold, every ISA."""
    path = request.getfixturevalue(f"{model}_path")
    want = {"smollm2": [Q.Q4_1, Q.Q8_0], "gemma3": [Q.Q4_K, Q.Q5_0, Q.Q6_K, Q.Q8_0]}[model]
    got = _real_rows(path, set(want))
    assert sorted(got) == sorted(want)
    for t, (name, k, rows, raw) in got.items():
        wdeq = gq.dequantize(raw, _gqt(t)).astype(np.float64).reshape(rows, k)
        X = random_x(3, k, seed=t)
        xq = L.quantize_act(t, X)
        ref, bound = reference(t, raw, wdeq, xq, k)
        for name_isa in isas():
            with using_isa(name_isa):
                assert_close(L.matmul(t, raw, rows, k, X), ref, bound, f"{name} {name_isa}")


@pytest.mark.parametrize("isa", isas())
@pytest.mark.parametrize("ncols", [1, 3])
def test_q8_K_activations_as_quantize_act(isa, ncols):
    """matmul's Q8_K activations (the table's quantizer where it has one: AVX-512) have
    quantize_act's bits: ties of |x| in a block (the first one sets the scale), a
    block of zeros, -0, one large value, denormals, values rounding half way"""
    k, rows = 1536, 8
    rng = np.random.default_rng(11)
    W = L.quantize_rows(int(Q.Q4_K), rng.standard_normal((rows, k)).astype(np.float32))
    X = rng.standard_normal((ncols, k)).astype(np.float32)
    X[0, 10], X[0, 200] = -3.5, 3.5           # a tie of |x|: the first one's sign
    X[0, 256:512] = 0.0                       # an all-zero block
    X[0, 512:768] *= 1e-40                    # denormals
    X[0, 600] = -0.0
    X[0, 768:1024] = np.arange(256) - 127.5   # iscale * x half way
    X[0, 1024 + 17] = 1e30
    with using_isa(isa):
        got = L.matmul(int(Q.Q4_K), W, rows, k, X)
        want = L.matmul_q(int(Q.Q4_K), W, rows, k, L.quantize_act(int(Q.Q4_K), X))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
