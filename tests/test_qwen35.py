"""Qwen 3.5's hybrid forward pass (gated delta-net layers, a gated full-attention layer
with the interleaved multi-section rope) against llama.cpp's logits on a tiny
random-weight model (tests/qwen35_models.py, rebuilt here byte for byte; the references
from benchmarks/make_qwen35_refs.py in tests/data/qwen35_refs.npz)."""
import numpy as np
import pytest
import qwen35_models
from helpers import (ROOT, assert_batch_invariant, assert_top_logits_match, greedy_tokens, load_npz, rebuilt_models,
                     rewrite_gguf, traced_stages)
from isa import assert_same_on_every_isa

from llmlite.config import ModelConfig
from llmlite.errors import LlmliteError
from llmlite.gguf import GGUFError, open_gguf
from llmlite.model import Weights

REFS = ROOT / "tests" / "data" / "qwen35_refs.npz"
NAME = "qwen35-4l-q8_0"
N_PROMPTS = len(qwen35_models.PROMPT_LENGTHS)


@pytest.fixture(scope="module")
def refs():
    return load_npz(REFS)


@pytest.fixture(scope="module")
def path(tmp_path_factory, refs):
    """the rebuilt GGUF, checked to be the file llama.cpp ran"""
    return rebuilt_models(qwen35_models, refs, tmp_path_factory.mktemp("qwen35"))[NAME]


@pytest.fixture(scope="module")
def w(path):
    g = open_gguf(path)
    yield Weights(g, 512, n_batch=64, flash_attn=False)
    g.close()


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
    whole = w.forward(toks, 0, 2)
    with open_gguf(path) as g:
        small = Weights(g, 64, n_batch=7, flash_attn=False)
        assert np.array_equal(small.forward(toks, 0, 2), whole)


def test_every_isa_gives_the_same_logits(path, refs):
    """The delta rule's dots, the SiLU and the gated attention give the same bits with
    every kernel table, in a batch and one token at a time."""
    from isa import isas, using_isa

    toks = [int(t) for t in refs[f"{NAME}/tokens_2"][:40]]
    assert_same_on_every_isa(path, toks, NAME)
    got = {}
    with open_gguf(path) as g:
        w = Weights(g, 64, n_batch=64, flash_attn=False)
        for isa in isas():
            with using_isa(isa):
                got[isa] = np.stack([w.forward([t], i, 1) for i, t in enumerate(toks[:8])])
    for isa, logits in got.items():
        assert np.array_equal(logits, got["scalar"]), isa


def test_state_restarts_at_zero_and_refuses_another_position(w, refs):
    """The recurrent state holds one position: a pass at 0 starts it over (the same
    logits twice), one anywhere but where it stands is refused rather than wrong."""
    toks = refs[f"{NAME}/tokens_1"]
    a = w.forward(toks, 0, 2)
    assert np.array_equal(w.forward(toks, 0, 2), a)
    with pytest.raises(LlmliteError, match="recurrent state holds 28 tokens, not 5"):
        w.forward(toks[:3], 5, 1)
    b = w.forward(toks[:10], 0, 2)
    assert np.array_equal(b, a[:10])
    assert np.array_equal(w.forward(toks[10:], 10, 2), a[10:])


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
    """What the decode loop and chat do to a model's cache, with a recurrent state that
    cannot drop tokens: truncate then continue (a guess's rejected tokens, a regenerated
    reply, a new turn sharing a prefix) gives the logits of a fresh run, from the copy
    of the state kept where it can, else from the start."""
    from llmlite.model import Model

    toks = [int(t) for t in refs[f"{NAME}/tokens_2"]]
    m = Model(path, n_ctx=128, n_batch=16)
    fresh = m.eval(toks)
    m.reset()
    m.eval(toks[:30])
    m.eval(toks[30:36])                  # a guess of 6 tokens, 2 of them kept
    m.truncate(32)
    assert np.array_equal(m.eval(toks[32:40]), fresh[32:40])
    m.truncate(10)                       # below the copy: run again from the start
    assert np.array_equal(m.eval(toks[10:20]), fresh[10:20])
    m.reset()
    last = m.prefill(toks[:40])
    assert np.array_equal(last, fresh[39])
    for t in toks[40:44]:
        m.step(t)
    assert np.array_equal(m.prefill(toks[:40]), fresh[39])     # /regen: the same prompt again
    assert m.last_reused == 39
    assert np.array_equal(m.prefill(toks[:46]), fresh[45])     # a longer prompt sharing the prefix
    # a guess verified after the prompt keeps its own copy: /regen then restores the
    # prompt's copy and runs only the prompt's last token, not the whole history
    m.reset()
    m.prefill(toks[:40])
    m.eval(toks[40:46])
    ran = []
    forward = m.weights.forward
    m.weights.forward = lambda ids, *a, **k: (ran.append(len(ids)), forward(ids, *a, **k))[1]
    assert np.array_equal(m.prefill(toks[:40]), fresh[39]) and ran == [1]
    m.weights.forward = forward
    m.close()


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
    """Layers given to the CPU stand-in for a device (their state with them) give the same
    bits, rewinds included (from the start: the copy would miss the span's part); the
    CUDA backend, which has no delta-net layers yet, leaves the model on the CPU with one
    line saying so."""
    from llmlite.model import Model

    toks = [int(t) for t in refs[f"{NAME}/tokens_1"]]
    whole = Model(path, n_ctx=64, gpu_layers=0).eval(toks)
    split = Model(path, n_ctx=64, gpu_layers=2, offload_backend="cpu")
    assert split.weights.n_gpu == 2 and np.array_equal(split.eval(toks), whole)
    split.truncate(10)
    assert np.array_equal(split.eval(toks[10:]), whole[10:])
    notes = []
    m = Model(path, n_ctx=64, gpu_layers="all", offload_backend="cuda", notify=notes.append)
    assert m.weights.n_gpu == 0 and np.array_equal(m.eval(toks), whole)
    assert notes == ["the GPU backend has no linear-attention (gated delta-net) layers yet: all on the CPU"]


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
    """Prompt-lookup speculation over a recurrent state (each rejected guess rolled back
    through the state's copy) decodes the tokens plain greedy decoding does; and those
    are llama.cpp's 48 greedy tokens for the prompt."""
    from llmlite.generate import GenStats, drafter_for, generate_tokens
    from llmlite.genconfig import GenerationConfig
    from llmlite.model import Model
    from llmlite.sampling import Sampler, SamplingParams

    m = Model(path, n_ctx=256, n_batch=32)
    prompt, greedy = ([int(t) for t in refs[f"{NAME}/{what}_2"]] for what in ("tokens", "greedy"))
    # the prompt again after its continuation: the model partly repeats itself, and the
    # lookup's guesses (from the first continuation) are partly kept, partly rolled back
    out, stats = {}, {}
    for lookup in (False, True):
        m.reset()
        stats[lookup] = GenStats()
        out[lookup] = list(generate_tokens(m, prompt + greedy + prompt, Sampler(SamplingParams(temperature=0.0)), 48,
                                           stats[lookup], stop_ids=[],
                                           drafter=drafter_for(GenerationConfig(lookup=lookup))))
    assert out[True] == out[False]
    assert 0 < stats[True].accepted < stats[True].drafted     # guesses kept and guesses rolled back
    m.reset()
    got = generate_tokens(m, prompt, Sampler(SamplingParams(temperature=0.0)), 48, GenStats(), stop_ids=[],
                          drafter=drafter_for(GenerationConfig(lookup=True)))
    assert list(got) == greedy
    m.close()
