"""The grid i-quants' quantizers: bytes identical with llama.cpp's
(tests/data/iqgrid_quant_refs.npz, from benchmarks/make_iqgrid_quant_refs.py:
ggml_quantize_chunk with a random positive importance matrix, an all-zero one, and
none where llama.cpp allows that), the same on one thread and on two, and our
dequantization of our bytes equal to gguf-py's."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import quants as gq

from llmlite import _lib as L
from llmlite.gguf.constants import GGMLType as Q

ROOT = Path(__file__).resolve().parents[1]
REFS = np.load(ROOT / "tests" / "data" / "iqgrid_quant_refs.npz")
LENGTHS = (256, 512, 1024)
CASES = ("w", "z", "n")   # random weights, zero weights, none

# the types whose quantizer exists (the rest of the grid family is not written yet)
WRITTEN = {"IQ3_XXS": Q.IQ3_XXS, "IQ3_S": Q.IQ3_S, "IQ2_XXS": Q.IQ2_XXS, "IQ2_XS": Q.IQ2_XS,
           "IQ2_S": Q.IQ2_S, "IQ1_S": Q.IQ1_S, "IQ1_M": Q.IQ1_M}


def imatrix(case: str, n: int):
    return {"w": REFS[f"qw_{n}"], "z": np.zeros(n, np.float32), "n": None}[case]


def cases():
    for name in WRITTEN:
        for n in LENGTHS:
            for case in CASES:
                if f"{name}_{case}_{n}" in REFS:
                    yield name, case, n


@pytest.fixture
def threads():
    before = L.lib.llm_get_threads()
    yield L.set_threads
    L.set_threads(before)


@pytest.mark.parametrize("name,case,n", list(cases()))
def test_bytes_are_llama_cpp_s(name, case, n, threads):
    x, want = REFS[f"x_{n}"], REFS[f"{name}_{case}_{n}"]
    for nt in (1, 2):
        threads(nt)
        got = L.quantize_rows(WRITTEN[name], x, imatrix(case, n))
        bad = [i for i in range(len(x)) if not np.array_equal(got[i], want[i])]
        assert not bad, f"{name} {case} n={n} threads={nt}: rows {bad} differ"


@pytest.mark.parametrize("name", list(WRITTEN))
def test_dequantized_bytes_are_gguf_py_s(name):
    x = REFS["x_512"]
    got = L.quantize_rows(WRITTEN[name], x, REFS["qw_512"])
    ours = L.dequantize(WRITTEN[name], got, x.size).reshape(x.shape)
    theirs = gq.dequantize(got, WRITTEN[name]).reshape(x.shape)
    assert np.array_equal(ours.view(np.uint32), theirs.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("name", list(WRITTEN))
def test_quantization_follows_the_data(name):
    """a fit, not a constant: the dequantized row is closer to the row than zero is"""
    x = REFS["x_1024"][1:2]
    y = L.dequantize(WRITTEN[name], L.quantize_rows(WRITTEN[name], x, REFS["qw_1024"]), x.size)
    assert np.linalg.norm(y - x[0]) < np.linalg.norm(x[0])


@pytest.mark.parametrize("name", list(WRITTEN))
def test_rows_not_a_multiple_of_256_are_refused(name):
    with pytest.raises(Exception, match="not a whole number of blocks"):
        L.quantize_rows(WRITTEN[name], np.ones((2, 288), np.float32))


@pytest.mark.parametrize("name", ["IQ2_XXS", "IQ2_XS", "IQ1_S"])
def test_types_whose_quantizer_needs_an_imatrix_refuse_rows_without_one(name):
    """ggml_quantize_requires_imatrix: llama.cpp asserts; we refuse with one line"""
    with pytest.raises(Exception, match="without an importance matrix"):
        L.quantize_rows(WRITTEN[name], REFS["x_256"])
