"""The mixture-of-experts forward pass (qwen3moe, qwen2moe) against llama.cpp's logits
on tiny random-weight models (tests/moe_models.py, rebuilt here byte for byte; the
references from benchmarks/make_moe_refs.py in tests/data/moe_refs.npz)."""
import moe_models
import numpy as np
import pytest
from helpers import ROOT, assert_batch_invariant, rewrite_gguf
from isa import assert_same_on_every_isa

from llmlite.gguf import GGUFError, open_gguf
from llmlite.model import Weights

REFS = ROOT / "tests" / "data" / "moe_refs.npz"
N_PROMPTS = len(moe_models.PROMPT_LENGTHS)


@pytest.fixture(scope="module")
def refs():
    with np.load(REFS) as r:
        return {k: r[k] for k in r.files}


@pytest.fixture(scope="module")
def built(tmp_path_factory, refs):
    """name -> path of the rebuilt GGUF, checked to be the file llama.cpp ran"""
    d = tmp_path_factory.mktemp("moe")
    paths = {}
    for name in moe_models.MODELS:
        paths[name] = d / f"{name}.gguf"
        assert moe_models.build(name, paths[name]) == str(refs[f"{name}/sha256"]), \
            f"{name}: the rebuilt file differs from the one the references were made from"
    return paths


@pytest.fixture(scope="module", params=list(moe_models.MODELS))
def model(request, built):
    g = open_gguf(built[request.param])
    yield request.param, Weights(g, 512, n_batch=64, flash_attn=False)
    g.close()


def test_logits_bit_identical_with_llamacpp(model, refs):
    """Teacher-forced, every prompt: the top-20 logits of every position are llama.cpp's
    bits (its batch kernels), so the top-1 and the log-normaliser agree too."""
    name, w = model
    for k in range(N_PROMPTS):
        logits = w.forward(refs[f"{name}/tokens_{k}"], 0, 2)
        ours, want = np.take_along_axis(logits, refs[f"{name}/top_ids_{k}"], 1), refs[f"{name}/top_logits_{k}"]
        assert np.array_equal(ours, want), (name, k, np.abs(ours - want).max())
        assert np.array_equal(logits.argmax(1), refs[f"{name}/top_ids_{k}"][:, 0]), (name, k)
        mx = logits.max(1, keepdims=True)
        lse = np.log(np.exp(logits - mx).sum(1)) + mx[:, 0]
        assert np.allclose(lse, refs[f"{name}/logsumexp_{k}"], rtol=0, atol=1e-5), (name, k)


def test_greedy_decode_matches_llamacpp(model, refs):
    """48 greedy tokens decoded one at a time (each step reads only its k experts)
    are llama.cpp's: with bit-identical logits no near-tie can part them."""
    name, w = model
    for k in range(N_PROMPTS):
        toks = refs[f"{name}/tokens_{k}"]
        logits = w.forward(toks, 0, 1)
        got = []
        for pos in range(len(toks), len(toks) + moe_models.N_GREEDY):
            got.append(int(np.argmax(logits)))
            logits = w.forward([got[-1]], pos, 1)
        assert got == list(refs[f"{name}/greedy_{k}"]), (name, k)


def test_batch_invariance(model, refs):
    """A position's logits are the same bits computed alone, in the whole batch (its
    tokens grouped with others by expert), or in a split batch."""
    name, w = model
    assert_batch_invariant(w, list(refs[f"{name}/tokens_2"][:40]), name)


@pytest.mark.parametrize("name", ["qwen3moe-8x2-q8_0", "qwen2moe-60x4-q8_0"])
def test_every_isa_gives_the_same_logits(name, built, refs):
    """The expert FFN (router softmax, matmuls, sums) gives the same bits with every
    kernel table."""
    assert_same_on_every_isa(built[name], list(refs[f"{name}/tokens_2"][:40]), name)


@pytest.mark.parametrize("edit, message", [
    ({"drop_tensors": ["blk.0.ffn_down_exps.weight"]}, "missing tensor blk.0.ffn_down_exps"),
    ({"kv": {"qwen3moe.expert_gating_func": 2}}, r"expert_gating_func is 2 \(sigmoid\)"),
    ({"kv": {"qwen3moe.expert_used_count": 9}}, "expert_used_count is 9"),
    ({"kv": {"qwen3moe.expert_count": 0}}, "expert_count is 0"),
])
def test_bad_expert_files_fail_with_one_line(edit, message, built, tmp_path):
    bad = rewrite_gguf(built["qwen3moe-8x2-q8_0"], tmp_path / "bad.gguf", **edit)
    with pytest.raises(GGUFError, match=message) as ei, open_gguf(bad) as g:
        Weights(g, 64, n_batch=8)
    assert "\n" not in str(ei.value)
