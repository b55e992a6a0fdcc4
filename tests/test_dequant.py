"""Dequantization (llm_dequantize) against gguf-py's dequantize, bit for bit.

Random blocks of every weight type (scales as random finite halves, and raw
random bits with inf/NaN scales), every tensor of both real models, the fp16
helpers of internal.h (all 65536 halves; RNE narrowing on random and edge
floats), Q8_1/Q8_K (not in gguf-py) against numpy, and bad input.
"""
from __future__ import annotations


import numpy as np
import pytest
from gguf import GGMLQuantizationType as GQT
from gguf import GGUFReader
from gguf import quants as gq

from llmlite import _lib as L
from llmlite.errors import LlmliteError
from llmlite.gguf import supported_types
from llmlite.gguf.constants import TYPE_NAMES

BLOCK = {  # type: (elements, bytes, byte offsets of the fp16 scale fields)
    GQT.F32: (1, 4, ()), GQT.F16: (1, 2, ()), GQT.BF16: (1, 2, ()),
    GQT.Q4_0: (32, 18, (0,)), GQT.Q4_1: (32, 20, (0, 2)), GQT.Q5_0: (32, 22, (0,)),
    GQT.Q5_1: (32, 24, (0, 2)), GQT.Q8_0: (32, 34, (0,)),
    GQT.Q2_K: (256, 84, (80, 82)), GQT.Q3_K: (256, 110, (108,)), GQT.Q4_K: (256, 144, (0, 2)),
    GQT.Q5_K: (256, 176, (0, 2)), GQT.Q6_K: (256, 210, (208,)),
    GQT.MXFP4: (32, 17, ()),   # its scale is an E8M0 byte: every value of it is a power of 2
    GQT.NVFP4: (64, 36, ()), GQT.TQ1_0: (256, 54, (52,)), GQT.TQ2_0: (256, 66, (64,)),
    GQT.IQ2_XXS: (256, 66, (0,)), GQT.IQ2_XS: (256, 74, (0,)), GQT.IQ2_S: (256, 82, (0,)),
    GQT.IQ3_XXS: (256, 98, (0,)), GQT.IQ3_S: (256, 110, (0,)), GQT.IQ1_S: (256, 50, (0,)),
    GQT.IQ1_M: (256, 56, ()),  # its fp16 scale is spread over the scales' top nibbles
    GQT.IQ4_NL: (32, 18, (0,)), GQT.IQ4_XS: (256, 136, (0,)),
}
WEIGHT_IDS = [TYPE_NAMES[t] for t in supported_types()]
# ggml's C puts an element's sign on a NaN (db * grid * -1.f); gguf-py's numpy does
# not: for these the NaNs' signs are checked against ggml's own (test_iq_grid.py)
SIGNED_GRID = {GQT.IQ2_XXS, GQT.IQ2_XS, GQT.IQ2_S, GQT.IQ3_XXS, GQT.IQ3_S}


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).reshape(-1).view(np.uint32)


def oracle(raw: np.ndarray, t: int) -> np.ndarray:
    with np.errstate(all="ignore"):  # NaN/inf scales in the raw-bits cases
        return gq.dequantize(raw, GQT(t)).reshape(-1)


def assert_same_bits(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    g, r = bits(got), bits(ref)
    assert g.size == r.size, what
    bad = np.flatnonzero(g != r)
    assert bad.size == 0, (
        f"{what}: {bad.size} of {g.size} differ; first at {bad[0]}: "
        f"got {g[bad[0]]:#010x}, gguf {r[bad[0]]:#010x}")


def finite_halves(rng, n: int) -> np.ndarray:
    """Random finite fp16 bit patterns (subnormals and zeros included), either sign."""
    h = rng.integers(0, 0x7C00, size=n, dtype=np.uint16)
    return h | (rng.integers(0, 2, size=n, dtype=np.uint16) << 15)


def random_blocks(t: int, nblocks: int, rng, finite: bool) -> np.ndarray:
    be, bb, scales = BLOCK[t]
    if t == GQT.F32:
        x = rng.integers(0, 2**32, size=nblocks, dtype=np.uint32)
        if finite:
            x = rng.standard_normal(nblocks).astype(np.float32).view(np.uint32)
        return x.view(np.uint8)
    if t in (GQT.F16, GQT.BF16):
        h = finite_halves(rng, nblocks) if (finite and t == GQT.F16) else \
            rng.integers(0, 2**16, size=nblocks, dtype=np.uint16)
        if finite and t == GQT.BF16:
            h = (rng.standard_normal(nblocks).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        return h.view(np.uint8)
    raw = rng.integers(0, 256, size=(nblocks, bb), dtype=np.uint8)
    if finite:
        for off in scales:
            raw[:, off:off + 2] = finite_halves(rng, nblocks).view(np.uint8).reshape(nblocks, 2)
    return raw.reshape(-1)


# ------------------------------------------------------------ random blocks

@pytest.mark.parametrize("t", supported_types(), ids=WEIGHT_IDS)
@pytest.mark.parametrize("finite", [True, False], ids=["finite-scales", "raw-bits"])
def test_random_blocks_match_gguf(t, finite):
    rng = np.random.default_rng(1234 + t + 100 * finite)
    be, bb, f16_scales = BLOCK[t]
    nblocks = 3000 if be > 1 else 3000 * 32
    raw = random_blocks(t, nblocks, rng, finite)
    ref = oracle(raw.reshape(-1, bb) if be > 1 else raw, t)
    got = L.dequantize(t, raw)
    assert got.shape == (nblocks * be,)
    if not finite and f16_scales:
        # the raw bits really did exercise non-finite scales (NVFP4's and MXFP4's
        # scale bytes have none: every pattern is a finite value)
        assert not np.isfinite(ref).all()
    if not finite and t in SIGNED_GRID:
        got, ref = got.copy(), ref.copy()
        got[np.isnan(got)] = np.abs(got[np.isnan(got)])
        ref[np.isnan(ref)] = np.abs(ref[np.isnan(ref)])
    assert_same_bits(got, ref, TYPE_NAMES[t])


@pytest.mark.parametrize("t", supported_types(), ids=WEIGHT_IDS)
def test_unaligned_source_and_partial_count(t):
    """An odd source address, and n smaller than the buffer (a prefix of whole blocks)."""
    rng = np.random.default_rng(77 + t)
    be, bb, _ = BLOCK[t]
    nblocks = 64 if be > 1 else 2048
    raw = random_blocks(t, nblocks, rng, True)
    buf = np.empty(raw.size + 1, dtype=np.uint8)
    buf[1:] = raw
    shifted = buf[1:]
    assert shifted.ctypes.data % 2 == 1
    ref = oracle(raw.reshape(-1, bb) if be > 1 else raw, t)
    assert_same_bits(L.dequantize(t, shifted), ref, "unaligned")
    n = (nblocks // 2) * be
    assert_same_bits(L.dequantize(t, raw, n), ref[:n], "prefix")


def test_special_scales_exact():
    """Hand-made Q8_0/Q4_1 blocks: zero, -0, subnormal, inf and NaN scales."""
    halves = np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00,
                       0x7E00, 0x7C01, 0xFE55, 0x3C00, 0xBC00], dtype=np.uint16)
    for t in (GQT.Q8_0, GQT.Q4_1):
        _, bb, offs = BLOCK[t]
        n = halves.size
        raw = np.random.default_rng(5).integers(0, 256, size=(n * n, bb), dtype=np.uint8)
        raw[:, 2 if t == GQT.Q8_0 else 4] = 0  # some zero quants: 0*inf, 0*NaN
        hb = halves.view(np.uint8).reshape(n, 2)
        raw[:, offs[0]:offs[0] + 2] = np.repeat(hb, n, axis=0)   # d: each special value ...
        if len(offs) > 1:
            raw[:, offs[1]:offs[1] + 2] = np.tile(hb, (n, 1))      # ... with every m
        assert_same_bits(L.dequantize(t, raw), oracle(raw, t), TYPE_NAMES[t])


# ----------------------------------------------------------- fp16 helpers

def test_f16_to_f32_all_halves():
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    ref = h.view(np.float16).astype(np.float32)
    got = L.dequantize(GQT.F16, h)
    assert_same_bits(got, ref, "f16 -> f32")
    # numpy widening keeps NaN payloads (signalling ones too): so must we
    nan = (h & 0x7C00) == 0x7C00
    nan &= (h & 0x3FF) != 0
    assert np.array_equal(bits(got)[nan], ((h[nan].astype(np.uint32) & 0x8000) << 16)
                          | 0x7F800000 | ((h[nan].astype(np.uint32) & 0x3FF) << 13))


def _f16_narrow_cases(rng) -> np.ndarray:
    edge = [0.0, -0.0, 1.0, -1.0, 65504.0, -65504.0, 65519.996, 65520.0, -65520.0, 65536.0,
            1e30, -1e30, np.inf, -np.inf, 2.0**-14, 2.0**-24, -(2.0**-24), 2.0**-25, 2.0**-26,
            3 * 2.0**-26, 2.0**-25 * 1.0000001, 5.960464477539063e-08, 6.097555160522461e-05,
            2049.0, 2051.0, 4097.0, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 1e-40, -1e-45]
    x = [np.array(edge, dtype=np.float32)]
    # ties: every half value plus/minus half an fp16 ulp, exactly representable in fp32
    hv = np.arange(0, 0x7C00, dtype=np.uint32)
    lo = hv.astype(np.uint16).view(np.float16).astype(np.float64)
    hi = (hv + 1).astype(np.uint16).view(np.float16).astype(np.float64)
    mid = ((lo + hi) / 2).astype(np.float32)
    x.append(mid)
    x.append(-mid)
    x.append(np.nextafter(mid, np.float32(np.inf)))
    x.append(np.nextafter(mid, np.float32(0)))
    # random bit patterns over the whole float range, and random values near fp16's
    x.append(rng.integers(0, 2**32, size=200_000, dtype=np.uint32).view(np.float32))
    x.append((rng.standard_normal(100_000) * 10.0 ** rng.uniform(-9, 5, 100_000)).astype(np.float32))
    return np.concatenate(x)


def test_f32_to_f16_rne():
    x = _f16_narrow_cases(np.random.default_rng(9))
    got = L.quantize_act(GQT.F16, x).view(np.uint16).reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = x.astype(np.float16).view(np.uint16)
    u = x.view(np.uint32)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    assert nan.sum() > 100 and (~nan).sum() > 100_000
    ref = np.where(nan, ((u >> 16) & 0x8000) | 0x7E00, ref).astype(np.uint16)
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, f"{bad.size} differ, first x={x[bad[0]]!r}: {got[bad[0]]:#06x} vs {ref[bad[0]]:#06x}"


def test_bf16_matches_gguf():
    rng = np.random.default_rng(3)
    x = np.concatenate([_f16_narrow_cases(rng),
                        rng.integers(0, 2**32, size=100_000, dtype=np.uint32).view(np.float32)])
    got = L.quantize_act(GQT.BF16, x).view(np.uint16).reshape(-1)
    ref = gq.quantize(x, GQT.BF16).view(np.uint16).reshape(-1)
    assert np.array_equal(got, ref)
    # and back: bf16 widening is exact
    assert_same_bits(L.dequantize(GQT.BF16, got), oracle(got.view(np.uint8), GQT.BF16), "bf16")


# ------------------------------------------------ Q8_1 / Q8_K dequantize

def test_q8_1_and_q8_k_dequantize():
    rng = np.random.default_rng(11)
    nb = 500
    raw = rng.integers(0, 256, size=(nb, 36), dtype=np.uint8)
    raw[:, 0:2] = finite_halves(rng, nb).view(np.uint8).reshape(nb, 2)
    d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
    ref = raw[:, 4:].view(np.int8).astype(np.float32) * d
    assert_same_bits(L.dequantize(GQT.Q8_1, raw), ref, "Q8_1")

    raw = rng.integers(0, 256, size=(nb, 292), dtype=np.uint8)
    raw[:, 0:4] = (rng.standard_normal(nb).astype(np.float32) * 1e-3).view(np.uint8).reshape(nb, 4)
    d = raw[:, 0:4].copy().view(np.float32)
    ref = raw[:, 4:260].view(np.int8).astype(np.float32) * d
    assert_same_bits(L.dequantize(GQT.Q8_K, raw), ref, "Q8_K")


# ------------------------------------------------------------ bad input

def test_bad_type_or_count_is_refused():
    out = np.empty(512, dtype=np.float32)
    src = np.zeros(4096, dtype=np.uint8)
    p_src = L.ffi.cast("void *", src.ctypes.data)
    p_out = L.ffi.cast("float *", out.ctypes.data)
    for t in (4, 5, 24, 28, 31, -1, 1000):  # not a type, or a type with no dequantizer here
        assert L.lib.llm_dequantize(t, p_src, p_out, 256) == -1
    for t, n in ((GQT.Q4_0, 31), (GQT.Q4_0, 33), (GQT.Q4_K, 128), (GQT.Q8_0, -32), (GQT.Q6_K, 257)):
        assert L.lib.llm_dequantize(t, p_src, p_out, n) == -1
    assert L.lib.llm_dequantize(GQT.Q4_0, p_src, p_out, 0) == 0
    with pytest.raises(LlmliteError):
        L.dequantize(GQT.Q4_K, np.zeros(143, dtype=np.uint8))
    with pytest.raises(LlmliteError):
        L.dequantize(GQT.Q4_0, np.zeros(18, dtype=np.uint8), 64)
    with pytest.raises(LlmliteError):
        L.dequantize(99, np.zeros(64, dtype=np.uint8))


# ------------------------------------------------------------ real models

CHUNK_ELEMS = 1 << 23  # compare big tensors a slab of rows at a time (bounded memory)


@pytest.fixture(scope="module")
def readers(smollm2_path, gemma3_path):
    """Each real model opened once (GGUFReader takes ~15 s on gemma3's 262k vocab)."""
    return {"smollm2": GGUFReader(smollm2_path), "gemma3": GGUFReader(gemma3_path)}


def _file_tensor_count(reader) -> int:
    return int(reader.fields["GGUF.tensor_count"].parts[-1][0])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_every_tensor_of_real_models(model, readers, capsys):
    reader = readers[model]
    checked, by_type = 0, {}
    for t in reader.tensors:
        tt = int(t.tensor_type)
        data = t.data
        rows = data.reshape(-1, data.shape[-1])
        ne0 = int(t.shape[0])
        assert ne0 % BLOCK[tt][0] == 0
        assert data.nbytes == t.n_bytes and rows.shape[0] * ne0 == t.n_elements
        step = max(1, CHUNK_ELEMS // ne0)
        for r0 in range(0, rows.shape[0], step):
            slab = np.ascontiguousarray(rows[r0:r0 + step]).view(np.uint8)
            got = L.dequantize(tt, slab, slab.shape[0] * ne0)
            assert_same_bits(got, oracle(slab, tt), f"{t.name} rows {r0}..")
        checked += 1
        by_type[TYPE_NAMES[tt]] = by_type.get(TYPE_NAMES[tt], 0) + 1
    with capsys.disabled():
        print(f"\n{model}: {checked} tensors dequantized bit-exact vs gguf-py {by_type}")
    assert checked == _file_tensor_count(reader) == len(reader.tensors)
    assert checked == {"smollm2": 272, "gemma3": 236}[model]


@pytest.mark.slow
def test_token_embd_whole_tensor(readers):
    """gemma3's 178 MB Q8_0 token_embd in one call (its speed: benchmarks/bench_load.py
    and `make bench`, not a timed test)."""
    t = next(x for x in readers["gemma3"].tensors if x.name == "token_embd.weight")
    assert int(t.tensor_type) == GQT.Q8_0
    raw = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)
    n = int(t.n_elements)
    out = np.zeros(n, dtype=np.float32)
    p_src, p_out = L.ffi.cast("void *", raw.ctypes.data), L.ffi.cast("float *", out.ctypes.data)
    assert L.lib.llm_dequantize(GQT.Q8_0, p_src, p_out, n) == 0
    i = np.random.default_rng(0).integers(0, t.data.shape[0], 64)
    assert_same_bits(out.reshape(t.data.shape[0], -1)[i], oracle(np.ascontiguousarray(t.data[i]), GQT.Q8_0), "rows")
