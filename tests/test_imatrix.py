"""Importance matrices: the weighted quantizers (csrc/quantize_weighted.c, the
IQ4 ones in type_iq4.c) against the bytes llama.cpp's quantize_<type> wrote with
an importance matrix (tests/data/imatrix_quant_refs.npz, made by
benchmarks/make_imatrix_refs.py)."""
from pathlib import Path

import numpy as np
import pytest

from llmlite import _lib

REFS = Path(__file__).parent / "data" / "imatrix_quant_refs.npz"
TYPES = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13,
         "Q6_K": 14, "IQ4_NL": 20, "IQ4_XS": 23}


@pytest.fixture(scope="module")
def refs():
    with np.load(REFS) as z:
        return dict(z)


def _cases(refs, name):
    for key in sorted(k for k in refs if k.startswith(name + "_") and k.count("_") == name.count("_") + 2):
        n, kind = key[len(name) + 1:].split("_")
        yield key, refs[f"x_{n}"], refs[f"im_{n}_{kind}"], refs[key]


@pytest.mark.parametrize("name", TYPES)
def test_weighted_quantizers_match_llamacpp(refs, name):
    cases = list(_cases(refs, name))
    assert len(cases) == 9
    for key, x, im, want in cases:
        got = _lib.quantize_rows(TYPES[name], x, imatrix=im)
        bad = [i for i in range(len(x)) if not np.array_equal(got[i], want[i])]
        assert not bad, f"{key}: rows {bad} differ"


@pytest.mark.parametrize("name", TYPES)
def test_weighted_rows_do_not_depend_on_threads(refs, name):
    x = np.tile(refs["x_512"], (3, 1))
    im = refs["im_512_positive"]
    prev = _lib.set_threads(1)
    try:
        one = _lib.quantize_rows(TYPES[name], x, imatrix=im)
        _lib.set_threads(2)
        two = _lib.quantize_rows(TYPES[name], x, imatrix=im)
    finally:
        _lib.set_threads(prev)
    assert np.array_equal(one, two)
    assert np.array_equal(one[3:5], _lib.quantize_rows(TYPES[name], x[3:5], imatrix=im))


@pytest.mark.parametrize("name", ["Q4_0", "Q4_K", "Q6_K", "IQ4_XS"])
def test_the_imatrix_changes_the_bytes(refs, name):
    """the weights are read: a different importance matrix gives other bytes than
    none (the plain quantizer) and than another matrix"""
    x = refs["x_1024"][:2]
    plain = _lib.quantize_rows(TYPES[name], x)
    a = _lib.quantize_rows(TYPES[name], x, imatrix=refs["im_1024_positive"])
    b = _lib.quantize_rows(TYPES[name], x, imatrix=refs["im_1024_huge"])
    assert not np.array_equal(plain, a) and not np.array_equal(a, b)


def test_imatrix_of_the_wrong_length_is_refused(refs):
    with pytest.raises(_lib.LlmliteError, match="importance matrix"):
        _lib.quantize_rows(12, refs["x_256"], imatrix=np.ones(512, np.float32))
