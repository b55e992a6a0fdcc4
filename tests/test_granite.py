"""IBM Granite 3's forward pass (llama's layer with four multipliers: the embeddings',
the residual branches', the attention scores' and the logits'; granitemoe's experts in
place of the FFN) against llama.cpp's logits on tiny random-weight models
(tests/granite_models.py, rebuilt here byte for byte; the references from
benchmarks/make_granite_refs.py in tests/data/granite_refs.npz)."""
import json

import granite_models
import numpy as np
import pytest
from helpers import (ROOT, assert_batch_invariant, assert_cli_info_and_run, assert_greedy_match,
                     assert_refused_with_one_line, assert_stages_match, assert_top_logits_match, cuda_span_refusal,
                     flash_floor, llmlite, oracle_fixtures, rewrite_gguf, traced_stages)
from isa import assert_decode_same_on_every_isa, assert_same_on_every_isa

from llmlite.config import ModelConfig
from llmlite.gguf import GGUFError, open_gguf
from llmlite.model import Weights

REFS = ROOT / "tests" / "data" / "granite_refs.npz"
NAME = "granite-2l-q8_0"            # the dense model: the multipliers' tests
MOE = "granitemoe-40x8-q8_0"
SHARED = "granitemoe-shared-16x4-q8_0"
N_PROMPTS = len(granite_models.PROMPT_LENGTHS)


refs, built, model = oracle_fixtures(granite_models, REFS)


@pytest.fixture(scope="module")
def path(built):
    return built[NAME]


def logits_of(path, toks, flash_attn=False) -> np.ndarray:
    """every position's logits of the file at path over toks, in one batch"""
    with open_gguf(path) as g:
        w = Weights(g, 64, n_batch=64, flash_attn=flash_attn)
        out = w.forward(toks, 0, 2)
        del w
    return out


def test_logits_bit_identical_with_llamacpp(model, refs):
    """Teacher-forced, every prompt: the top-20 logits of every position are llama.cpp's
    bits, so the top-1 and the log-normaliser agree too."""
    name, w = model
    assert_top_logits_match(w, refs, name, N_PROMPTS)


def test_stages_bit_identical_with_llamacpp(model, refs):
    """The scaled embeddings, the attention's output (its scores scaled by attention.scale),
    the first residual sum (the projection times residual_scale, then the add), the last
    layer's output, granitemoe's experts' weighted sum and its shared expert's output are
    llama.cpp's bits (prompt 2):
    a last-bit difference can vanish in a quantized matmul before the logits."""
    name, w = model
    assert_stages_match(traced_stages(w, refs[f"{name}/tokens_2"]), refs, name, {MOE: 5, SHARED: 6}.get(name, 4))


def test_greedy_decode_matches_llamacpp(model, refs):
    """48 greedy tokens decoded one at a time are llama.cpp's."""
    name, w = model
    assert_greedy_match(w, refs, name, N_PROMPTS, granite_models.N_GREEDY)


def test_batch_invariance(model, refs, built):
    """A position's logits are the same bits computed alone, in one batch (granitemoe's
    tokens grouped with others by expert), in a split batch, or in chunks of a smaller
    n_batch."""
    name, w = model
    toks = list(refs[f"{name}/tokens_2"][:40])
    assert_batch_invariant(w, toks, name)
    whole = w.forward(toks, 0, 2)
    with open_gguf(built[name]) as g:
        small = Weights(g, 64, n_batch=7, flash_attn=False)
        assert np.array_equal(small.forward(toks, 0, 2), whole)


@pytest.mark.parametrize("name", list(granite_models.MODELS))
def test_every_isa_gives_the_same_logits(name, built, refs):
    """The scalar, AVX2 and AVX-512 tables give the same bits, in a batch and one token at a time."""
    toks = [int(t) for t in refs[f"{name}/tokens_2"][:40]]
    assert_same_on_every_isa(built[name], toks, name)
    assert_decode_same_on_every_isa(built[name], toks[:12], name)


@pytest.mark.parametrize("name", list(granite_models.MODELS))
def test_flash_attention_within_the_floor(name, built, refs):
    """With flash attention (attention.scale applied in its online softmax), every prompt
    stays within the issue's floor of llama.cpp's own flash-attention logits: top-1 all,
    mean |dlogprob| <= 0.02 and max <= 0.2 over the top 20."""
    for k in range(N_PROMPTS):
        top1, dlp = flash_floor(logits_of(built[name], refs[f"{name}/tokens_{k}"], flash_attn=True), refs, name, k)
        assert top1, (name, k)
        assert dlp.mean() <= 0.02 and dlp.max() <= 0.2, (name, k, dlp.mean(), dlp.max())


@pytest.mark.parametrize("key, neutral", [
    ("granite.embedding_scale", 1.0),
    ("granite.residual_scale", 1.0),
    ("granite.attention.scale", 0.25),     # 1/sqrt(head_dim 16): the scale it replaces
])
def test_each_multiplier_changes_the_logits(key, neutral, path, refs, tmp_path):
    """Without the multiplier the logits are not llama.cpp's (the references depend on
    each); set to its neutral value they are those of a file without it (llama.cpp reads
    an absent one as none, and attention.scale replaces 1/sqrt(head_dim))."""
    toks = refs[f"{NAME}/tokens_1"]
    dropped = logits_of(rewrite_gguf(path, tmp_path / "dropped.gguf", drop_kv=[key]), toks)
    top = np.take_along_axis(dropped, refs[f"{NAME}/top_ids_1"], 1)
    assert np.abs(top - refs[f"{NAME}/top_logits_1"]).max() > 1e-3
    assert np.array_equal(logits_of(rewrite_gguf(path, tmp_path / "neutral.gguf", kv={key: neutral}), toks), dropped)


def test_logit_scale_multiplies_by_its_float_reciprocal(path, refs, tmp_path):
    """llama.cpp scales the logits by 1.0f / logit_scale (rounded to a float), not divides
    them by it: the logits of the file with logit_scale 1 times float32(1/6) are the
    references' bits, where a division by 6 differs in some."""
    toks = refs[f"{NAME}/tokens_1"]
    unscaled = logits_of(rewrite_gguf(path, tmp_path / "one.gguf", kv={"granite.logit_scale": 1.0}), toks)
    scaled = unscaled * (np.float32(1) / np.float32(6))
    assert np.array_equal(np.take_along_axis(scaled, refs[f"{NAME}/top_ids_1"], 1), refs[f"{NAME}/top_logits_1"])
    assert not np.array_equal(unscaled / np.float32(6), scaled)


def test_config_and_gpu(path):
    """The multipliers read, as float32 into the C config (the attention's in place of
    1/sqrt(head_dim), the logits' as its reciprocal); the CUDA span has no residual or
    logit scale, so the planner keeps the model on the CPU."""
    with open_gguf(path) as g:
        cfg = ModelConfig.of(g)
        assert (cfg.embedding_scale, cfg.attention_scale, cfg.logit_scale) == (12.0, np.float32(0.07), 6.0)
        assert cfg.residual_scale == np.float32(0.22) and cfg.head_dim == cfg.n_rot == 16
        c = cfg.to_c(granite_models.n_vocab())
        assert (c.embd_scale, c.attn_scale, c.q_prescale) == (12.0, np.float32(0.07), 1.0)
        assert (c.residual_scale, c.logit_mul) == (np.float32(0.22), np.float32(1) / np.float32(6))
        assert c.rope_neox == 0
        assert cfg.gpu_missing == "Granite residual and logit scales"


@pytest.mark.parametrize("name, experts", [(MOE, (40, 8, 32, 0)), (SHARED, (16, 4, 32, 64))])
def test_granitemoe_config(name, experts, built):
    """granitemoe's experts are feed_forward_length wide (llama.cpp's granite graph reads no
    other width), routed by softmax with the chosen weights renormalised, a shared expert
    (where the file sets its width) added without a gate; the CUDA span has no expert layers."""
    with open_gguf(built[name]) as g:
        cfg = ModelConfig.of(g)
        assert (cfg.n_expert, cfg.n_expert_used, cfg.n_ff_exp, cfg.n_ff_shexp) == experts
        c = cfg.to_c(granite_models.n_vocab())
        assert (c.expert_norm_w, c.shexp_ungated, c.residual_scale) == (1, 1, np.float32(0.22))
        assert cfg.gpu_missing == "mixture-of-experts layers"


@pytest.mark.parametrize("name, missing", [(NAME, "Granite residual and logit scales"),
                                           (MOE, "mixture-of-experts layers")])
def test_offload(name, missing, built, refs):
    """Layers and the head given to the CPU stand-in for a device give the same bits (the
    residual and logit scales with them); the CUDA backend, which has neither those scales
    nor expert layers, leaves the model on the CPU with one line saying so."""
    from llmlite.model import Model

    path, toks = built[name], [int(t) for t in refs[f"{name}/tokens_1"]]
    whole = Model(path, n_ctx=64, gpu_layers=0).eval(toks)
    for n in (1, "all"):
        split = Model(path, n_ctx=64, gpu_layers=n, offload_backend="cpu")
        assert split.weights.n_gpu == (1 if n == 1 else 2) and np.array_equal(split.eval(toks), whole)
    notes = []
    m = Model(path, n_ctx=64, gpu_layers="all", offload_backend="cuda", notify=notes.append)
    assert m.weights.n_gpu == 0 and np.array_equal(m.eval(toks), whole)
    assert notes == [f"the GPU backend has no {missing} yet: all on the CPU"]


@pytest.mark.parametrize("edit, message", [
    ({"drop_kv": ["granite.logit_scale"]}, "logit_scale is missing"),
    ({"kv": {"granite.logit_scale": 0.0}}, "logit_scale is 0, expected a positive"),
    ({"kv": {"granite.residual_scale": -0.5}}, "residual_scale is -0.5, expected a non-negative"),
    ({"kv": {"granite.attention.scale": float("nan")}}, "attention.scale is nan"),
    ({"kv": {"granite.embedding_scale": float("inf")}}, "embedding_scale is inf"),
    ({"kv": {"granite.rope.scaling.finetuned": False}}, "granite without rope is not supported"),
    ({"kv": {"granite.rope.dimension_count": 8}}, "granite rotates whole heads"),
    ({"kv": {"granite.deepstack_mapping": np.array([-1, 1], np.int32)}}, "Granite Vision"),
    ({"drop_tensors": ["blk.1.ffn_up.weight"]}, "missing tensor blk.1.ffn_up"),
    ({"kv": {"granite.attention.head_count_kv": np.array([2, 4], np.int32)}},
     r"head_count_kv differs between layers \(2, 4\)"),
])
def test_bad_files_fail_with_one_line(edit, message, path, tmp_path):
    assert_refused_with_one_line(path, tmp_path / "bad.gguf", edit, message)


@pytest.mark.parametrize("name, edit, message", [
    (MOE, {"kv": {"granitemoe.expert_shared_feed_forward_length": 16}}, "missing tensor blk.0.ffn_gate_shexp"),
    (MOE, {"drop_tensors": ["blk.1.ffn_down_exps.weight"]}, "missing tensor blk.1.ffn_down_exps"),
    (MOE, {"kv": {"granitemoe.expert_used_count": 41}}, "expert_used_count is 41"),
    (MOE, {"drop_kv": ["granitemoe.logit_scale"]}, "logit_scale is missing"),
    (SHARED, {"drop_tensors": ["blk.1.ffn_down_shexp.weight"]}, "missing tensor blk.1.ffn_down_shexp"),
    (SHARED, {"kv": {"granitemoe.expert_shared_feed_forward_length": 32}},
     r"tensor blk.0.ffn_gate_shexp has shape \[64, 64\], expected \[64, 32\]"),
])
def test_bad_granitemoe_files_fail_with_one_line(name, edit, message, built, tmp_path):
    assert_refused_with_one_line(built[name], tmp_path / "bad.gguf", edit, message)


def test_ffn_biases_refused(tmp_path):
    """llama.cpp adds optional FFN biases that llmlite has no slot for: refused, not ignored."""
    s = granite_models.MODELS[NAME]
    tensors = granite_models._tensors(s) + [("blk.0.ffn_up.bias", np.zeros(s.n_ff, np.float32), 0)]
    p = tmp_path / "biased.gguf"
    granite_models.write_model(p, granite_models._metadata(s), tensors)
    with pytest.raises(GGUFError, match="tensor blk.0.ffn_up.bias: FFN biases are not supported") as ei, \
            open_gguf(p) as g:
        ModelConfig.of(g)
    assert "\n" not in str(ei.value)


def test_cli_info_and_run(path, tmp_path):
    """`llmlite info` describes the file (its multipliers too) and `llmlite run` prints text from it; a file
    without its logit scale gets one error line from each, and the exit status of a bad file."""
    from test_bad_models import one_error_line

    assert_cli_info_and_run(path, "granite", "multipliers")
    r = llmlite("info", path)
    assert "embeddings x12, residual branches x0.22, attention scores x0.07, logits /6" in " ".join(r.stdout.split())
    r = llmlite("info", path, "--json")
    assert json.loads(r.stdout)["multipliers"] == {"embedding": 12.0, "residual": float(np.float32(0.22)),
                                                   "attention": float(np.float32(0.07)), "logit": 6.0}
    bad = rewrite_gguf(path, tmp_path / "bad.gguf", drop_kv=["granite.logit_scale"])
    for cmd in (("info", bad), ("run", bad, "-p", "Hello", "-n", "2")):
        r = llmlite(*cmd)
        one_error_line(r, "bad.gguf", "granite.logit_scale is missing")
        assert r.returncode == 2, r.stderr


def test_hf_checkpoint_converts_as_from_gguf(path, tmp_path):
    """A GraniteForCausalLM checkpoint (the tiny model's weights, q/k rows in HF's order,
    the multipliers under config.json's names, SmolLM's tokenizer structure) quantized by
    `llmlite quantize`: the tensors of the GGUF path byte for byte, and the original's
    metadata values, its multipliers and llama.cpp's name of Granite's pre-tokenizer
    ("refact", where SmolLM's is "smollm") among them."""
    from hf_fixture import assert_converts_as_from_gguf, make_checkpoint

    hf = make_checkpoint(path, tmp_path / "granite-hf")
    assert json.loads((hf / "config.json").read_text())["logits_scaling"] == 6.0
    converted = assert_converts_as_from_gguf(path, hf, tmp_path)
    with open_gguf(converted) as g:
        assert g.metadata["tokenizer.ggml.pre"] == "refact" and g.metadata["granite.residual_scale"] == np.float32(0.22)


def test_granite4_dense_keys(path, refs, tmp_path):
    """A Granite 4.0 dense file (a non-hybrid GraniteMoeHybrid, converted to granite) lists
    its KV heads per layer, says rope.scaling.finetuned (rope on) and carries the mamba
    keys of its family, which no granite layer reads: the logits are the plain file's,
    as llama.cpp's are."""
    kv = {"granite.attention.head_count_kv": np.array([2, 2], np.int32), "granite.rope.scaling.finetuned": True,
          "granite.ssm.conv_kernel": np.uint32(4), "granite.ssm.state_size": np.uint32(128),
          "granite.ssm.group_count": np.uint32(1), "granite.ssm.inner_size": np.uint32(128),
          "granite.ssm.time_step_rank": np.uint32(4)}
    toks = refs[f"{NAME}/tokens_1"]
    got = logits_of(rewrite_gguf(path, tmp_path / "granite4.gguf", kv=kv), toks)
    assert np.array_equal(np.take_along_axis(got, refs[f"{NAME}/top_ids_1"], 1), refs[f"{NAME}/top_logits_1"])


def test_cuda_span_refuses_the_scales(emulated_cuda_lib, path):
    """The CUDA span itself (the real code under the emulated runtime), handed layers the
    planner would keep on the CPU, refuses granite's residual and logit scales with one
    line rather than run without them."""
    assert cuda_span_refusal(emulated_cuda_lib, path, 2) == "cuda span: no residual or logit scales (granite) yet\n"
