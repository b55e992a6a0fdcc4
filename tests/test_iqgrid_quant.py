"""The grid i-quants' quantizers: bytes identical with llama.cpp's
(tests/data/iqgrid_quant_refs.npz, from benchmarks/make_iqgrid_quant_refs.py:
ggml_quantize_chunk with a random positive importance matrix, an all-zero one, and
none where llama.cpp allows that), the same on one thread and on two, and our
dequantization of our bytes equal to gguf-py's. Their file types: the per-tensor
rules against a table read off llama.cpp's source, the refusal without an
importance matrix, and `llmlite quantize --type iq3_s` end to end.
benchmarks/quantize_vs_llamacpp.py compares whole files with llama-quantize's."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import quants as gq

from llmlite import _lib as L
from llmlite.gguf.constants import GGMLType as Q
from llmlite.quantize import FTYPES, plan

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



# ---------------------------------------------------------------- file types

class _Tensor:
    def __init__(self, name, shape):
        self.name, self.shape, self.type = name, shape, Q.F16
        self.n_elements = int(np.prod(shape))
        self.nbytes = 2 * self.n_elements


class _Model:
    """a llama's tensor table for plan(): n_layer layers, rows of width (ne0), tied
    embeddings unless output, n_gqa query heads per KV head"""

    def __init__(self, n_layer=16, width=512, n_gqa=1, output=True):
        names = ["token_embd.weight", "output_norm.weight"] + (["output.weight"] if output else [])
        for i in range(n_layer):
            names += [f"blk.{i}.{m}.weight" for m in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                                      "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")]
        self.tensors = {n: _Tensor(n, (width,) if "norm" in n else (width, 1024)) for n in names}
        self.kv = {"general.architecture": "llama", "llama.block_count": n_layer,
                   "llama.attention.head_count": 8, "llama.attention.head_count_kv": 8 // n_gqa}

    def get(self, key, default=None):
        return self.kv.get(key, default)


# llama.cpp's choices for a 16-layer llama (no experts, n_gqa 1, rows of 512, its own
# output tensor, no importance matrix), read off src/llama-quant.cpp of the oracle's
# version: llama_ftype_get_default_type (the default); llama_tensor_get_type_impl's
# output branch (IQ2_XXS/IQ2_XS/IQ3_XXS/IQ1_S/IQ2_S/IQ2_M/IQ1_M -> Q5_K, else Q6_K),
# its token_embd branch, its low-bit branch (IQ2_XXS/XS, IQ1_S/M, IQ2_S/M: attn_v,
# attn_output, ffn_down while i_ffn_down < n/8 by tensor count) and the generic
# attn_v / attn_k / attn_q / ffn_down / attn_output / ffn_gate / ffn_up branches.
# ffn_down_first: the type of the first n/8 = 2 layers' ffn_down; gate_up_mid: of
# ffn_gate and ffn_up for layers n/8..7n/8-1 (IQ3_XS only).
RULES = {
    #          default  output  token_embd attn_v attn_k/q  attn_output ffn_down_first gate_up_mid
    "iq2_xxs": ("IQ2_XXS", "Q5_K", "Q2_K", "Q2_K", "IQ2_XXS", "IQ2_XXS", "Q2_K", None),
    "iq2_xs": ("IQ2_XS", "Q5_K", "Q2_K", "Q2_K", "IQ2_XS", "IQ2_XS", "Q2_K", None),
    "iq1_s": ("IQ1_S", "Q5_K", "Q2_K", "Q2_K", "IQ1_S", "IQ2_XXS", "Q2_K", None),
    "iq1_m": ("IQ1_M", "Q5_K", "Q2_K", "Q2_K", "IQ1_M", "IQ2_XXS", "Q2_K", None),
    "iq2_s": ("IQ2_XS", "Q5_K", "IQ3_S", "IQ3_S", "IQ2_XS", "IQ3_S", "IQ3_S", None),
    "iq2_m": ("IQ2_S", "Q5_K", "IQ3_S", "IQ3_S", "IQ2_S", "IQ3_S", "IQ3_S", None),
    "iq3_xxs": ("IQ3_XXS", "Q5_K", "IQ3_S", "IQ3_S", "IQ2_S", "IQ3_S", "Q4_K", None),
    "iq3_xs": ("IQ3_S", "Q6_K", "IQ3_S", "IQ3_S", "IQ3_XXS", "IQ3_S", "IQ3_S", "IQ3_XXS"),
    "iq3_s": ("IQ3_S", "Q6_K", "IQ3_S", "IQ3_S", "IQ3_S", "IQ3_S", "IQ3_S", None),
    "iq3_m": ("IQ3_S", "Q6_K", "IQ3_S", "Q4_K", "IQ3_S", "Q4_K", "Q4_K", None),
}
# ffn_down after the first eighth: the default, but IQ3_XXS without an imatrix takes Q3_K
FFN_DOWN_REST = {"iq3_xxs": "Q3_K"}


def _types(ftype, **model):
    return {e.name: Q(e.dst_type).name for e in plan(_Model(**model), ftype)}


@pytest.mark.parametrize("ftype", list(RULES))
def test_plan_follows_llama_cpp_s_rules(ftype):
    default, output, embd, attn_v, attn_kq, attn_out, down_first, mid = RULES[ftype]
    got = _types(ftype)
    assert Q[default] == FTYPES[ftype][1]
    assert (got["output.weight"], got["token_embd.weight"]) == (output, embd)
    for i in range(16):
        b = f"blk.{i}."
        gate_up = mid if mid and 2 <= i < 14 else default
        want = {"attn_v": attn_v, "attn_k": attn_kq, "attn_q": attn_kq, "attn_output": attn_out,
                "ffn_down": down_first if i < 2 else FFN_DOWN_REST.get(ftype, default),
                "ffn_gate": gate_up, "ffn_up": gate_up, "attn_norm": "F16", "ffn_norm": "F16"}   # norms kept
        assert {m: got[b + m + ".weight"] for m in want} == want, (ftype, i)


@pytest.mark.parametrize("ftype", list(RULES))
def test_grouped_query_attention_gives_attn_v_q4_k(ftype):
    """n_gqa >= 4: attn_v Q4_K (the low-bit branch, IQ3_XXS, IQ3_XS, IQ3_S; IQ3_M always)"""
    assert _types(ftype, n_gqa=4)["blk.3.attn_v.weight"] == "Q4_K"


@pytest.mark.parametrize("ftype", list(RULES))
def test_rows_not_whole_super_blocks_fall_back_to_iq4_nl(ftype):
    """tensor_type_fallback: every 256-block i-quant -> IQ4_NL; the tied output Q8_0"""
    got = _types(ftype, width=576, output=False)
    assert got["token_embd.weight"] == "Q8_0"
    assert {got[f"blk.{i}.{m}.weight"] for i in range(16) for m in ("attn_q", "ffn_gate", "ffn_up")} == {"IQ4_NL"}


# ------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def wide_f32(tiny_path, tmp_path_factory):
    """the tiny llama widened to 256 (test_iq_grid_model's shapes), every tensor F32 random"""
    from llmlite.gguf import open_gguf
    from llmlite.gguf.constants import ValueType
    from llmlite.gguf.writer import TensorOut, encode, write_gguf
    from test_iq_grid_model import N, SHAPES, WIDE

    rng = np.random.default_rng(5)
    with open_gguf(tiny_path) as g:
        kvs = [(k, encode(ValueType.UINT32, np.uint32(WIDE[k])) if k in WIDE else v) for k, v in g.stored_kvs()]
        n_vocab = g.tensors["token_embd.weight"].shape[1]
        n_layer = 1 + max(int(n.split(".")[1]) for n in g.tensors if n.startswith("blk."))
    tensors = [("token_embd.weight", (N, n_vocab)), ("output_norm.weight", (N,))]
    for il in range(n_layer):
        tensors += [(f"blk.{il}.attn_norm.weight", (N,)), (f"blk.{il}.ffn_norm.weight", (N,))]
        tensors += [(f"blk.{il}.{m}.weight", shape) for m, shape in SHAPES.items()]
    data = [np.ones(s, np.float32) if len(s) == 1 else (rng.standard_normal(s[::-1]) * 0.05).astype(np.float32)
            for _, s in tensors]
    dst = tmp_path_factory.mktemp("iqq") / "wide-f32.gguf"
    write_gguf(dst, kvs, [TensorOut(n, s, Q.F32, d.nbytes) for (n, s), d in zip(tensors, data)],
               lambda i: data[i].tobytes())
    return dst


def test_iq3_s_file_without_an_imatrix_loads_and_runs(wide_f32, tmp_path):
    import llmlite
    from llmlite.gguf import open_gguf

    from helpers import llmlite as cli

    out = tmp_path / "iq3s.gguf"
    r = cli("quantize", wide_f32, out, "--type", "iq3_s")
    assert r.returncode == 0, r.stderr
    with open_gguf(out) as g:
        types = {n: Q(t.type).name for n, t in g.tensors.items()}
        assert g.get("general.file_type") == FTYPES["iq3_s"][0]
    assert types["blk.0.ffn_up.weight"] == "IQ3_S" and types["blk.0.attn_q.weight"] == "IQ3_S"
    assert types["blk.0.attn_v.weight"] == "Q4_K"        # MQA: n_gqa >= 4
    assert types["token_embd.weight"] == "Q6_K"          # tied: the output's rule
    m = llmlite.load(out, n_ctx=64)
    try:
        logits = m.eval([1, 400, 3000, 77])
    finally:
        m.close()
    assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("ftype", ["iq2_xxs", "iq1_m", "iq3_xxs"])
def test_types_that_need_an_imatrix_are_refused_in_one_line(wide_f32, tmp_path, ftype):
    """tensor_requires_imatrix: a tensor planned as IQ1_S/M, IQ2_XXS/XS/S or IQ3_XXS"""
    from helpers import llmlite as cli

    out = tmp_path / "x.gguf"
    r = cli("quantize", wide_f32, out, "--type", ftype)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "importance matrix" in lines[0], r.stderr
    assert not out.exists()
