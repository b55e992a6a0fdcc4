"""Ministral 3's forward pass (YaRN rope with its log multiplier, llama 4's query
temperature) against llama.cpp's logits on a tiny random-weight model
(tests/mistral3_models.py, rebuilt here byte for byte; the references from
benchmarks/make_mistral3_refs.py in tests/data/mistral3_refs.npz)."""
import mistral3_models
import numpy as np
import pytest
from helpers import (ROOT, assert_batch_invariant, assert_cli_info_and_run, assert_greedy_match,
                     assert_refused_with_one_line, assert_stages_match, assert_top_logits_match, one_model_fixtures,
                     traced_stages)
from isa import assert_same_on_every_isa

from llmlite.config import ModelConfig
from llmlite.gguf import GGUFError, open_gguf
from llmlite.gguf.constants import GGMLType
from llmlite.model import Weights

REFS = ROOT / "tests" / "data" / "mistral3_refs.npz"
NAME = "mistral3-4l-q8_0"
N_PROMPTS = len(mistral3_models.PROMPT_LENGTHS)


refs, paths, path, w = one_model_fixtures(mistral3_models, REFS, NAME)


def test_logits_bit_identical_with_llamacpp(w, refs):
    """Teacher-forced, every prompt: the top-20 logits are llama.cpp's bits."""
    assert_top_logits_match(w, refs, NAME, N_PROMPTS)


def test_stages_bit_identical_with_llamacpp(w, refs):
    """Q roped and scaled by its position's temperature (ours: Qcur, where llama.cpp's
    Qcur is before the temperature), the attention's projection and a layer's output
    are llama.cpp's bits (prompt 2)."""
    ours = traced_stages(w, refs[f"{NAME}/tokens_2"])
    assert_stages_match(ours, refs, NAME, 3, {"Qcur_attn_temp_scaled-0": "Qcur-0"})


def test_greedy_decode_matches_llamacpp(w, refs):
    """48 greedy tokens, each decoded alone after the prompt's batch, are llama.cpp's."""
    assert_greedy_match(w, refs, NAME, N_PROMPTS, mistral3_models.N_GREEDY)


def test_temperature_starts_after_the_original_context(w, refs, tmp_path):
    """The same weights without the temperature key: the positions before the floor
    scale (16) get a temperature of exactly 1, so their logits are the same bits; every
    later position's differ."""
    p = tmp_path / "no_temp.gguf"
    mistral3_models.build(NAME, p, temp_scale=0.0)
    toks = refs[f"{NAME}/tokens_2"]
    with open_gguf(p) as g:
        plain = Weights(g, 128, n_batch=64, flash_attn=False).forward(toks, 0, 2)
    scaled = w.forward(toks, 0, 2)
    floor = mistral3_models.ORIG_CTX
    assert np.array_equal(plain[:floor], scaled[:floor])
    assert all(not np.array_equal(plain[t], scaled[t]) for t in range(floor, len(toks)))


def test_batch_invariance(w, refs):
    """A position's logits are the same bits computed alone, in one batch or in a split batch."""
    assert_batch_invariant(w, list(refs[f"{NAME}/tokens_2"][:40]), NAME)


def test_every_isa_gives_the_same_logits(path, refs):
    assert_same_on_every_isa(path, [int(t) for t in refs[f"{NAME}/tokens_2"][:40]], NAME)


def test_config_and_gpu(path):
    with open_gguf(path) as g:
        cfg = ModelConfig.of(g)
        assert (cfg.attn_temp_scale, cfg.attn_temp_floor) == (np.float32(0.1), 16)
        assert (cfg.rope_scaling_type, cfg.yarn_log_mul, cfg.yarn_beta_fast, cfg.yarn_beta_slow) == ("yarn", 1, 32, 1)
        assert cfg.tokenizer_pre == "tekken"
        assert cfg.gpu_missing


def test_offload_keeps_the_model_on_the_cpu(path, refs):
    """The CPU stand-in for a device gives the CPU's bits; the CUDA backend, which has
    no YaRN or query temperature, leaves the model on the CPU with one line saying so."""
    from llmlite.model import Model

    toks = [int(t) for t in refs[f"{NAME}/tokens_2"]]
    whole = Model(path, n_ctx=64, gpu_layers=0).eval(toks)
    split = Model(path, n_ctx=64, gpu_layers=2, offload_backend="cpu")
    assert split.weights.n_gpu == 2 and np.array_equal(split.eval(toks), whole)
    notes = []
    m = Model(path, n_ctx=64, gpu_layers="all", offload_backend="cuda", notify=notes.append)
    assert m.weights.n_gpu == 0 and np.array_equal(m.eval(toks), whole)
    assert len(notes) == 1 and notes[0].endswith("yet: all on the CPU")


def test_cli_info_and_run(path):
    """`llmlite info` names the architecture and its query temperature; `llmlite run` generates."""
    assert_cli_info_and_run(path, "mistral3", "1 + 0.1 ln(1 + floor(pos / 16))")


@pytest.mark.parametrize("edit, message", [
    ({"kv": {"mistral3.rope.dimension_count": 16}}, "dimension_count is 16, not the head size 32"),
    ({"kv": {"mistral3.expert_count": 4}}, "expert_count is 4: llmlite runs dense mistral3 models only"),
    ({"drop_kv": ["mistral3.rope.scaling.original_context_length", "mistral3.context_length"]},
     "original_context_length is missing or 0"),
    ({"drop_tensors": ["blk.1.ffn_up.weight"]}, "missing tensor blk.1.ffn_up"),
])
def test_bad_files_fail_with_one_line(edit, message, path, tmp_path):
    assert_refused_with_one_line(path, tmp_path / "bad.gguf", edit, message)


def test_ffn_biases_refused_with_one_line(tmp_path):
    """llama.cpp's loader takes optional FFN biases that llmlite's FFN has no slot for:
    such a file is refused rather than run without them."""
    from moe_models import write_model

    s = mistral3_models.MODELS[NAME]
    p = tmp_path / "biased.gguf"
    bias = ("blk.0.ffn_up.bias", np.zeros(s.n_ff, np.float32), GGMLType.F32)
    write_model(p, mistral3_models.metadata(s), mistral3_models.dense_tensors(s) + [bias])
    with pytest.raises(GGUFError, match="tensor blk.0.ffn_up.bias: FFN biases are not supported") as ei, \
            open_gguf(p) as g:
        Weights(g, 64, n_batch=8)
    assert "\n" not in str(ei.value)
