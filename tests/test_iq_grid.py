"""The grid i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M):
their tables generated from gguf-py, their sizes, and their dequantizer and vec_dot
bit for bit llama.cpp's (tests/data/iqgrid_refs.npz, from
benchmarks/make_iqgrid_refs.py: ggml's to_float and its x86 vec_dot against its own
Q8_K activations), on every ISA; scalar = AVX2 = AVX-512 on random blocks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from llmlite import _lib as L
from llmlite.gguf.constants import GGMLType as Q

from isa import isas, using_isa

ROOT = Path(__file__).resolve().parents[1]
REFS = np.load(ROOT / "tests" / "data" / "iqgrid_refs.npz")
GRID = {"IQ2_XXS": Q.IQ2_XXS, "IQ2_XS": Q.IQ2_XS, "IQ2_S": Q.IQ2_S, "IQ3_XXS": Q.IQ3_XXS,
        "IQ3_S": Q.IQ3_S, "IQ1_S": Q.IQ1_S, "IQ1_M": Q.IQ1_M}
NAMES = list(GRID)
K = REFS["x"].shape[1]


def u32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def test_header_is_what_the_generator_makes():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_iq_grids.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", NAMES)
def test_block_sizes_are_ggml_s(name):
    t = GRID[name]
    elems, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(t)]
    assert (L.lib.llm_type_block_elems(t), L.lib.llm_type_block_bytes(t)) == (elems, size)
    assert L.lib.llm_type_act_type(t) == Q.Q8_K and L.lib.llm_type_supported(t)


@pytest.mark.parametrize("name", NAMES)
def test_dequantize_is_ggml_s(name):
    """Every row, the one with NaN, infinite and subnormal scales included (NaN signs too)."""
    w, ref = REFS[f"{name}_w"], REFS[f"{name}_deq"]
    for r in range(w.shape[0]):
        got = L.dequantize(GRID[name], w[r], K)
        bad = np.flatnonzero(u32(got) != u32(ref[r]))
        assert bad.size == 0, f"{name} row {r}: {bad.size} differ, first at {bad[0]}: {got[bad[0]]} vs {ref[r][bad[0]]}"


@pytest.mark.parametrize("isa", isas())
@pytest.mark.parametrize("name", NAMES)
def test_vec_dot_is_ggml_s(name, isa):
    """ggml's Q8_K bytes in, its vec_dot's bits out (the rows with finite scales)."""
    w, ref = REFS[f"{name}_w"][:3], REFS[f"{name}_dot"][:3]
    with using_isa(isa):
        got = L.matmul_q(GRID[name], w, w.shape[0], K, REFS["xq"]).T
        one = np.array([[L.matmul_q(GRID[name], w[r], 1, K, REFS["xq"][c])[0, 0] for c in range(ref.shape[1])]
                        for r in range(w.shape[0])])
    assert np.array_equal(u32(got), u32(ref)), f"{name} {isa}: {got} vs ggml {ref}"
    assert np.array_equal(u32(one), u32(ref)), f"{name} {isa}: one at a time differs"


def random_rows(name: str, rows: int, k: int, seed: int) -> np.ndarray:
    """Random bytes (valid blocks of these types) with sane fp16 scales."""
    rng = np.random.default_rng(seed)
    bb = L.lib.llm_type_block_bytes(GRID[name])
    raw = rng.integers(0, 256, size=(rows, k // 256, bb), dtype=np.uint8)
    d = (rng.uniform(-1, 1, size=(rows, k // 256)) * 2.0 ** -6).astype(np.float16).view(np.uint16)
    if name == "IQ1_M":   # the fp16 scale is the top nibbles of the 4 scale words
        words = raw[..., 48:56].copy().view(np.uint16)
        for j in range(4):
            words[..., j] = (words[..., j] & 0x0FFF) | (((d >> (4 * j)) & 15) << 12)
        raw[..., 48:56] = words.view(np.uint8)
    else:
        raw[..., 0:2] = d[..., None].view(np.uint8)
    return raw.reshape(rows, -1)


@pytest.mark.skipif(len(isas()) < 2, reason="one ISA on this CPU")
@pytest.mark.parametrize("name", NAMES)
def test_every_isa_gives_the_scalar_bits(name):
    """Sizes of 1..9 super-blocks, 1..7 columns; activations with q8 = -128 too
    (the sign goes on q8 as an int8 negation on every ISA)."""
    rng = np.random.default_rng(7)
    for k, ncols in ((256, 1), (512, 3), (1280, 7), (2304, 2)):
        w = random_rows(name, 5, k, seed=k)
        x = rng.standard_normal((ncols, k)).astype(np.float32) * np.float32(10.0) ** rng.integers(-2, 3, (ncols, 1))
        xq = L.quantize_act(GRID[name], x)
        xq[:, 4 + rng.integers(0, k, size=8)] = 0x80   # some q8 = -128 (bsums left as they are)
        outs = {}
        for isa in isas():
            with using_isa(isa):
                outs[isa] = L.matmul_q(GRID[name], w, w.shape[0], k, xq)
        for isa in isas()[1:]:
            assert np.array_equal(u32(outs[isa]), u32(outs["scalar"])), f"{name} k={k}: {isa} != scalar"


@pytest.mark.parametrize("isa", isas())
@pytest.mark.parametrize("name", NAMES)
def test_batch_invariant(name, isa):
    """A (row, column)'s result is the same whatever the columns and rows computed
    with it (vec_dot_nc's passes of 4, matmul's passes of 6, one row alone) and the threads."""
    rng = np.random.default_rng(11)
    k = 768
    w = random_rows(name, 5, k, seed=3)
    xq = L.quantize_act(GRID[name], rng.standard_normal((9, k)).astype(np.float32))
    before = L.lib.llm_get_threads()
    try:
        with using_isa(isa):
            L.set_threads(3)
            full = L.matmul_q(GRID[name], w, 5, k, xq)
            cols = np.concatenate([L.matmul_q(GRID[name], w, 5, k, xq[c:c + 1]) for c in range(9)])
            rows = np.concatenate([L.matmul_q(GRID[name], w[r], 1, k, xq) for r in range(5)], axis=1)
            L.set_threads(1)
            one_thread = L.matmul_q(GRID[name], w, 5, k, xq)
    finally:
        L.set_threads(before)
    for other, what in ((cols, "one column at a time"), (rows, "one row at a time"), (one_thread, "one thread")):
        assert np.array_equal(u32(full), u32(other)), f"{name} {isa}: {what} differs"


@pytest.mark.parametrize("name", NAMES)
def test_large_tensor_dequantize_in_threads_is_the_same(name):
    """2^20 elements and more go through the thread pool: the same floats as block by block."""
    w = random_rows(name, 1, 1 << 20, seed=5)[0]
    whole = L.dequantize(GRID[name], w, 1 << 20)
    bb = w.size // 8
    parts = np.concatenate([L.dequantize(GRID[name], w[i * bb:(i + 1) * bb], 1 << 17) for i in range(8)])
    assert np.array_equal(u32(whole), u32(parts)), name
