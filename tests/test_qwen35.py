"""Qwen 3.5's hybrid forward pass (gated delta-net layers, a gated full-attention layer
with the interleaved multi-section rope) against llama.cpp's logits on a tiny
random-weight model (tests/qwen35_models.py, rebuilt here byte for byte; the references
from benchmarks/make_qwen35_refs.py in tests/data/qwen35_refs.npz)."""
import numpy as np
import pytest
import qwen35_models
from helpers import (ROOT, assert_batch_invariant, assert_lookup_decodes_greedy, assert_offload_on_cpu_span,
                     assert_rewinds_exact, assert_same_with_small_n_batch, assert_state_restarts,
                     assert_top_logits_match, greedy_tokens, one_model_fixtures, rewrite_gguf, traced_stages)
from isa import assert_decode_same_on_every_isa, assert_same_on_every_isa

from llmlite.config import ModelConfig
from llmlite.gguf import GGUFError, open_gguf
from llmlite.model import Weights

REFS = ROOT / "tests" / "data" / "qwen35_refs.npz"
NAME = "qwen35-4l-q8_0"
N_PROMPTS = len(qwen35_models.PROMPT_LENGTHS)


refs, paths, path, w = one_model_fixtures(qwen35_models, REFS, NAME)


def test_logits_bit_identical_with_llamacpp(w, refs):
    """Teacher-forced, every prompt: the top-20 logits of every position are llama.cpp's
    bits, so the top-1 and the log-normaliser agree too."""
    assert_top_logits_match(w, refs, NAME, N_PROMPTS)


def test_stages_bit_identical_with_llamacpp(w, refs):
    """Each step of the delta-net layer (the convolution after SiLU, the delta rule's
    output, the gated norm, the output projection), a layer's output, and the gated
    attention layer's roped Q, gated output and projection are llama.cpp's bits
    (prompt 2): a last-bit difference can vanish in a quantized matmul before the logits."""
    ours = traced_stages(w, refs[f"{NAME}/tokens_2"])
    stages = [k for k in refs if k.startswith(f"{NAME}/stage/")]
    assert len(stages) == 8
    ours_name = {"attn_output-3": "attn_out-3"}   # llama.cpp's name of an attention layer's projection
    for k in stages:
        stage = k.split("/")[-1]
        got = ours[ours_name.get(stage, stage)]
        assert np.array_equal(got, refs[k].ravel()), (stage, np.abs(got - refs[k].ravel()).max())


def test_greedy_decode_matches_llamacpp(w, refs):
    """48 greedy tokens decoded one at a time (the recurrent state carried from step to
    step) are llama.cpp's."""
    for k in range(N_PROMPTS):
        got = greedy_tokens(w, refs[f"{NAME}/tokens_{k}"], qwen35_models.N_GREEDY)
        assert got == list(refs[f"{NAME}/greedy_{k}"]), k


def test_batch_invariance(w, refs, path):
    """A position's logits are the same bits computed alone (the state carried token by
    token), in one batch, in a split batch, or in chunks of a smaller n_batch."""
    toks = list(refs[f"{NAME}/tokens_2"][:40])
    assert_batch_invariant(w, toks, NAME)
    assert_same_with_small_n_batch(w, path, toks)


def test_every_isa_gives_the_same_logits(path, refs):
    """The delta rule's dots, the SiLU and the gated attention give the same bits with
    every kernel table, in a batch and one token at a time."""
    toks = [int(t) for t in refs[f"{NAME}/tokens_2"][:40]]
    assert_same_on_every_isa(path, toks, NAME)
    assert_decode_same_on_every_isa(path, toks[:8], NAME)


def test_state_restarts_at_zero_and_refuses_another_position(w, refs):
    """The recurrent state holds one position: a pass at 0 starts it over, one anywhere
    but where it stands is refused rather than wrong."""
    assert_state_restarts(w, refs[f"{NAME}/tokens_1"])


def test_config_layer_kinds_and_gpu(path):
    with open_gguf(path) as g:
        cfg = ModelConfig.of(g)
        assert cfg.layer_kinds == ["linear", "linear", "linear", "attention"]
        assert (cfg.ssm_d_conv, cfg.ssm_d_state, cfg.ssm_n_group, cfg.ssm_n_v_head) == (4, 64, 2, 4)
        assert cfg.rope_sections == [2, 1, 1, 0]
        assert "delta-net" in cfg.gpu_missing


@pytest.mark.parametrize("edit, message", [
    ({"drop_tensors": ["blk.1.ssm_out.weight"]}, "layer 1 is a linear-attention layer but has no tensor"),
    ({"kv": {"qwen35.full_attention_interval": 2}}, "layer 1 is a full-attention layer but has tensor"),
    ({"drop_tensors": ["blk.0.ssm_conv1d.weight"]}, "missing tensor blk.0.ssm_conv1d"),
    ({"kv": {"qwen35.ssm.time_step_rank": 3}}, "time_step_rank is 3, not a multiple"),
    ({"drop_kv": ["qwen35.ssm.state_size"]}, "state_size is 0"),
])
def test_bad_files_fail_with_one_line(edit, message, path, tmp_path):
    bad = rewrite_gguf(path, tmp_path / "bad.gguf", **edit)
    with pytest.raises(GGUFError, match=message) as ei, open_gguf(bad) as g:
        Weights(g, 64, n_batch=8)
    assert "\n" not in str(ei.value)


def test_model_rewinds_are_exact(path, refs):
    """Truncate then continue (a guess's rejected tokens, a regenerated reply, a new turn
    sharing a prefix) over a recurrent state that cannot drop tokens: a fresh run's logits."""
    assert_rewinds_exact(path, [int(t) for t in refs[f"{NAME}/tokens_2"]])


def test_info_shows_layer_kinds_and_state(path):
    from llmlite.cli.info import model_facts

    f = model_facts(path, 512)
    assert f["layer_kinds"] == ["linear", "linear", "linear", "attention"]
    # one attention layer's F16 K and V for 512 positions, three layers' F32 state and its
    # two copies (the prompt's end, a verify's start)
    kv = 512 * 2 * 2 * 32 * 2
    state = 3 * 4 * ((2 * 64 * 2 + 64 * 4) * 3 + 4 * 64 * 64)
    assert f["memory"]["kv_cache_bytes"] == kv + 3 * state


def test_offload(path, refs):
    """Layers on the CPU stand-in for a device (their state with them) give the same bits;
    the CUDA backend, which has no delta-net layers yet, leaves the model on the CPU."""
    assert_offload_on_cpu_span(path, [int(t) for t in refs[f"{NAME}/tokens_1"]], 2,
                               "the GPU backend has no linear-attention (gated delta-net) layers yet: all on the CPU")


def test_mtp_blocks_loaded_and_not_run(tmp_path, refs):
    """A file with a multi-token-prediction block after the trunk (nextn_predict_layers,
    counted in block_count; the trunk's weights unchanged) loads, and its logits are the
    plain file's, as llama.cpp's main pass does not run that block either."""
    p = tmp_path / "mtp.gguf"
    qwen35_models.build(NAME, p, n_mtp=1)
    with open_gguf(p) as g:
        cfg = ModelConfig.of(g)
        assert cfg.n_layer == 4 and cfg.layer_kinds[-1] == "attention"
        w = Weights(g, 64, n_batch=64, flash_attn=False)
        logits = w.forward(refs[f"{NAME}/tokens_1"], 0, 2)
        got = np.take_along_axis(logits, refs[f"{NAME}/top_ids_1"], 1)
        assert np.array_equal(got, refs[f"{NAME}/top_logits_1"])
        del w


def test_speculation_gives_the_greedy_tokens(path, refs):
    """Prompt-lookup speculation over the recurrent state (each rejected guess rolled back
    through its copy) decodes the tokens plain greedy decoding does, llama.cpp's 48."""
    prompt, greedy = ([int(t) for t in refs[f"{NAME}/{what}_2"]] for what in ("tokens", "greedy"))
    assert_lookup_decodes_greedy(path, prompt, greedy)