"""The reference weight quantizers (csrc/quantize.c) against llama.cpp's: the
K-quants against bytes ggml_quantize_chunk wrote (tests/data/quant_refs.npz, made
by benchmarks/make_quant_refs.py), the 32-element types and BF16 against gguf-py's
quantizers (bit-exact with llama.cpp's, spec 2.10), F16 against numpy's RNE."""
from pathlib import Path

import numpy as np
import pytest

from llmlite import _lib

REFS = Path(__file__).parent / "data" / "quant_refs.npz"
K_TYPES = {"Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}
GGUF_PY_TYPES = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "BF16": 30}


@pytest.fixture(scope="module")
def refs():
    return np.load(REFS)


@pytest.mark.parametrize("name", list(K_TYPES))
def test_k_quants_match_llamacpp(refs, name):
    x, want = refs["x"], refs[name]
    got = _lib.quantize_rows(K_TYPES[name], x)
    bad = np.nonzero((got != want).any(axis=1))[0]
    assert len(bad) == 0, f"{name}: rows {bad.tolist()} differ from llama.cpp's"


def _rows(seed, n=512):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((24, n)) * rng.uniform(1e-3, 50, (24, 1))
    x[0] = 0.0
    x[1] = 0.25
    x[2, ::3] = 0.0
    x[3] = np.round(x[3] * 2) / 2       # ties in the rounding steps
    x[4] *= 1e-30                       # subnormal scales
    return x.astype(np.float32)


@pytest.mark.parametrize("name", list(GGUF_PY_TYPES))
def test_legacy_types_match_gguf_py(name):
    from gguf import GGMLQuantizationType, quants

    x = _rows(7)
    want = quants.quantize(x, GGMLQuantizationType[name])
    got = _lib.quantize_rows(GGUF_PY_TYPES[name], x)
    assert np.array_equal(got, want.reshape(got.shape)), name


def test_f16_is_round_to_nearest_even():
    x = _rows(8)
    x[5, :4] = [65520.0, -1e6, 2.0 ** -25, 3 * 2.0 ** -26]   # overflow to inf, subnormal ties
    got = _lib.quantize_rows(1, x)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16)
    assert np.array_equal(got.view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize("name", list(K_TYPES) + list(GGUF_PY_TYPES))
def test_rows_do_not_depend_on_threads(refs, name):
    t = {**K_TYPES, **GGUF_PY_TYPES}[name]
    x = np.tile(refs["x"], (1, 2))
    prev = _lib.set_threads(1)
    try:
        one = _lib.quantize_rows(t, x)
        _lib.set_threads(2)
        two = _lib.quantize_rows(t, x)
    finally:
        _lib.set_threads(prev)
    assert np.array_equal(one, two)
    assert np.array_equal(one[3:5], _lib.quantize_rows(t, x[3:5]))


def test_bad_sizes_are_refused():
    with pytest.raises(_lib.LlmliteError):
        _lib.quantize_rows(12, np.zeros((2, 300), np.float32))      # not whole 256-blocks
    with pytest.raises(_lib.LlmliteError):
        _lib.quantize_rows(9, np.zeros((2, 256), np.float32))       # Q8_1: an activation type, not written


@pytest.mark.slow
def test_every_smollm2_tensor_matches_llamacpp(refs, smollm2_path):
    """Every 2-D SmolLM2 tensor, dequantized, quantized to every type whose blocks
    fit its rows: the sha256 (first 8 bytes) of llama.cpp's bytes, recorded in the
    refs file."""
    import hashlib

    from llmlite.gguf import open_gguf

    types = {"F16": 1, **GGUF_PY_TYPES, **K_TYPES}
    names = [str(n) for n in refs["real_names"]]
    bad = []
    with open_gguf(smollm2_path) as g:
        for i, name in enumerate(names):
            t = g.tensors[name]
            w = _lib.dequantize(t.type, g.tensor_data(name), t.n_elements).reshape(-1, t.shape[0])
            for tn, tid in types.items():
                want = refs["real_" + tn][i].tobytes()
                if want == bytes(8):
                    continue        # rows not whole blocks of this type
                got = hashlib.sha256(_lib.quantize_rows(tid, w).tobytes()).digest()[:8]
                if got != want:
                    bad.append(f"{name} {tn}")
    assert not bad, bad
