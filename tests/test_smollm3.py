"""SmolLM3's forward pass (every 4th layer attends without rope) against llama.cpp's
logits on a tiny random-weight model (tests/smollm3_models.py, rebuilt here byte for
byte; the references from benchmarks/make_smollm3_refs.py in tests/data/smollm3_refs.npz)."""
import numpy as np
import pytest
import smollm3_models
from helpers import (ROOT, assert_batch_invariant, assert_cli_info_and_run, assert_greedy_match,
                     assert_refused_with_one_line, assert_stages_match, assert_top_logits_match, cuda_span_refusal,
                     one_model_fixtures, traced_stages)
from isa import assert_same_on_every_isa

from llmlite.config import ModelConfig
from llmlite.gguf import open_gguf

REFS = ROOT / "tests" / "data" / "smollm3_refs.npz"
NAME = "smollm3-8l-q8_0"
N_PROMPTS = len(smollm3_models.PROMPT_LENGTHS)


refs, paths, path, w = one_model_fixtures(smollm3_models, REFS, NAME)


def test_logits_bit_identical_with_llamacpp(w, refs):
    """Teacher-forced, every prompt: the top-20 logits are llama.cpp's bits."""
    assert_top_logits_match(w, refs, NAME, N_PROMPTS)


def test_stages_bit_identical_with_llamacpp(w, refs):
    """The NoPE layer's Q and K as it attends with them (3) are llama.cpp's projections
    (its first "Qcur" is the projection, before any rope): unrotated; and the attention's
    projection of a roped layer (2) and of the NoPE layer, and that layer's output, are
    llama.cpp's bits (prompt 2)."""
    ours = traced_stages(w, refs[f"{NAME}/tokens_2"])
    assert_stages_match(ours, refs, NAME, 5)
    assert not np.array_equal(ours["Qcur-2"], ours["Qraw-2"])   # a roped layer's Q is turned


def test_greedy_decode_matches_llamacpp(w, refs):
    """48 greedy tokens, each decoded alone after the prompt's batch, are llama.cpp's."""
    assert_greedy_match(w, refs, NAME, N_PROMPTS, smollm3_models.N_GREEDY)


def test_batch_invariance(w, refs):
    """A position's logits are the same bits computed alone, in one batch or in a split batch."""
    assert_batch_invariant(w, list(refs[f"{NAME}/tokens_2"][:40]), NAME)


def test_every_isa_gives_the_same_logits(path, refs):
    assert_same_on_every_isa(path, [int(t) for t in refs[f"{NAME}/tokens_2"][:40]], NAME)


def test_config_nope_layers_and_gpu(path):
    with open_gguf(path) as g:
        cfg = ModelConfig.of(g)
        assert [il for il, nope in enumerate(cfg.nope_layers) if nope] == [3, 7]
        assert cfg.gpu_missing == "layers without rotary embedding (NoPE)"


def test_offload_keeps_the_model_on_the_cpu(path, refs):
    """The CPU stand-in for a device runs the NoPE layers as the CPU does; the CUDA
    backend, which has none, leaves the model on the CPU with one line saying so."""
    from llmlite.model import Model

    toks = [int(t) for t in refs[f"{NAME}/tokens_1"]]
    whole = Model(path, n_ctx=64, gpu_layers=0).eval(toks)
    split = Model(path, n_ctx=64, gpu_layers=5, offload_backend="cpu")
    assert split.weights.n_gpu == 5 and np.array_equal(split.eval(toks), whole)
    notes = []
    m = Model(path, n_ctx=64, gpu_layers="all", offload_backend="cuda", notify=notes.append)
    assert m.weights.n_gpu == 0 and np.array_equal(m.eval(toks), whole)
    assert notes == ["the GPU backend has no layers without rotary embedding (NoPE) yet: all on the CPU"]


def test_cli_info_and_run(path):
    """`llmlite info` names the architecture and its NoPE layers; `llmlite run` generates."""
    assert_cli_info_and_run(path, "smollm3", "layers 3, 7")


@pytest.mark.parametrize("edit, message", [
    ({"kv": {"smollm3.rope.dimension_count": 16}}, "dimension_count is 16, not the head size 32"),
    ({"drop_tensors": ["blk.3.attn_k.weight"]}, "missing tensor blk.3.attn_k"),
])
def test_bad_files_fail_with_one_line(edit, message, path, tmp_path):
    assert_refused_with_one_line(path, tmp_path / "bad.gguf", edit, message)


def test_cuda_span_refuses_nope_layers(emulated_cuda_lib, path):
    """The CUDA span itself (the real code under the emulated runtime), handed layers the
    planner would keep on the CPU, refuses them with one line rather than rotate them."""
    assert cuda_span_refusal(emulated_cuda_lib, path, 2) == "cuda span: no layers without rope or query temperature yet\n"
