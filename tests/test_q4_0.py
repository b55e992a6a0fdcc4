"""Q4_0 against llama.cpp's x86 batch path, bit for bit, on every ISA.

On AVX2 and up llama.cpp repacks a Q4_0 weight whose row count is a multiple of 8
(ggml-cpu/repack.cpp: q4_0_8x8_q8_0) and multiplies it by ggml_gemm_q4_0_8x8_q8_0 (4
columns at a time) and ggml_gemv_q4_0_8x8_q8_0 (the leftover columns), which both run
arch/x86/repack.cpp's gemm/gemv_q4_b32_8x8_q8_0_lut_avx, the kernels IQ4_NL's repacked
path runs, on the table q - 8: per (row, column) one float accumulator and per block b
    acc = fma((float)I_b, d_w * d_x, acc)
(I_b the exact integer dot; d_w * d_x the widened fp16 scales' product, rounded once).
Other Q4_0 weights are not repacked and keep vec_dot's order (test_isa_exact.py's
emulation, 8 float lanes; its tests use 19 and 21 rows). llama.cpp's own results come
from tests/data/q4_0_refs.npz (benchmarks/make_q4_0_refs.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from isa import isas, using_isa
from test_iq4 import emulate_nl
from test_isa_exact import (
    _check_emulation,
    _check_isas_agree,
    emulate,
    make_weights,
)

from llmlite import _lib as L

REFS = np.load(Path(__file__).parent / "data" / "q4_0_refs.npz")
Q4_0 = 2


Q4_0_VALUES = np.arange(16, dtype=np.int64) - 8   # a Q4_0 nibble q stands for q - 8


def emulate_repacked(wtype: int, raw: np.ndarray, k: int, xq: np.ndarray) -> np.ndarray:
    """(ncols, rows): the repacked gemm/gemv's order, the one IQ4_NL's kernels share"""
    return emulate_nl(wtype, raw, k, xq, Q4_0_VALUES)


@pytest.mark.parametrize("matrix", ["random", "real"])
@pytest.mark.parametrize("rows", [40, 36])
def test_matmul_equals_llamacpp(matrix, rows):
    """llama.cpp's own batch-path results (k = 512, 19 columns; 40 rows repacked, 36
    not) on every ISA, in one batch, one column at a time, and in batches of 4 and 7;
    the 40-row weight unrepacked would give other bits on this data"""
    w, X, want = REFS[f"w_{matrix}_{rows}"], REFS["X"], REFS[f"y_{matrix}_{rows}"]
    if rows % 8 == 0:
        assert np.count_nonzero(REFS[f"yplain_{matrix}_{rows}"] != want) > want.size // 2
    for i in isas():
        with using_isa(i):
            np.testing.assert_array_equal(L.matmul(Q4_0, w, rows, 512, X), want, err_msg=i)
            for step in (1, 4, 7):
                got = np.concatenate([L.matmul(Q4_0, w, rows, 512, X[c:c + step]) for c in range(0, len(X), step)])
                np.testing.assert_array_equal(got, want, err_msg=f"{i} batches of {step}")


@pytest.mark.parametrize("k", [32, 96, 288, 576])
def test_repacked_bit_identical_across_isas(k, simd_isas):
    """24 rows (a 16-row tile and a short one, repacked order): every ISA gives the
    scalar kernel's bits, 1 to 9, 16 and 27 columns (k up to past a group of 8 blocks
    and its tail)"""
    _check_isas_agree(simd_isas, Q4_0, make_weights(Q4_0, 24, k, seed=k + 7), 24, k)


@pytest.mark.parametrize("k", [32, 96, 288, 576])
def test_order_follows_row_count(k, isa):
    """Each ISA: 24 rows in the repacked order, 20 rows (the first 20 of the same
    weight) in vec_dot's, 1 and 5 columns"""
    raw = make_weights(Q4_0, 24, k, seed=3 * k)
    _check_emulation(Q4_0, raw, 24, k, emulate_repacked)
    _check_emulation(Q4_0, np.ascontiguousarray(raw[:20]), 20, k, emulate)


def test_thread_count_does_not_matter():
    """3 threads (row tiles dealt out otherwise) give llama.cpp's bits too"""
    before = L.lib.llm_get_threads()
    L.set_threads(3)
    try:
        for rows in (40, 36):
            got = L.matmul(Q4_0, REFS[f"w_real_{rows}"], rows, 512, REFS["X"])
            np.testing.assert_array_equal(got, REFS[f"y_real_{rows}"])
    finally:
        L.set_threads(before)
