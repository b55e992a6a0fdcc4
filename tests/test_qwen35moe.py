"""Qwen 3.5 MoE (qwen35moe): qwen35's hybrid layers (gated delta-net, gated full
attention) with a mixture of experts in every FFN (softmax top-k renormalised, a
sigmoid-gated shared expert) against llama.cpp's logits on a tiny random-weight model
(tests/qwen35moe_models.py, rebuilt here byte for byte; the references from
benchmarks/make_qwen35moe_refs.py in tests/data/qwen35moe_refs.npz)."""
import pytest
import qwen35moe_models
from helpers import (ROOT, assert_batch_invariant, assert_cli_info_and_run, assert_greedy_match,
                     assert_lookup_decodes_greedy, assert_offload_on_cpu_span, assert_refused_with_one_line,
                     assert_rewinds_exact, assert_same_with_small_n_batch, assert_stages_match,
                     assert_top_logits_match, oracle_fixtures, traced_stages)
from isa import assert_decode_same_on_every_isa, assert_same_on_every_isa

from llmlite.config import ModelConfig
from llmlite.gguf import open_gguf
from llmlite.model import Weights

NAME = "qwen35moe-4l-8x2-q8_0"
N_PROMPTS = len(qwen35moe_models.PROMPT_LENGTHS)
refs, built, model = oracle_fixtures(qwen35moe_models, ROOT / "tests" / "data" / "qwen35moe_refs.npz")


@pytest.fixture(scope="module")
def path(built):
    return built[NAME]


def test_logits_bit_identical_with_llamacpp(model, refs):
    """Teacher-forced, every prompt: the top-20 logits of every position are llama.cpp's
    bits (the router's softmax, the renormalised top-2, the shared expert's gate)."""
    name, w = model
    assert_top_logits_match(w, refs, name, N_PROMPTS)


def test_stages_bit_identical_with_llamacpp(built, refs):
    """The router's logits, the renormalised top-2 weights, the experts' weighted sum, the
    shared expert before its gate and the FFN's output (layer 0, a delta-net layer's; and
    the full-attention layer's) are llama.cpp's bits (prompt 2): a last-bit difference
    can vanish in a quantized matmul before the logits. Of the models whose stages the
    references keep (STAGED: the Q4_K model's would make the file large)."""
    for name in qwen35moe_models.STAGED:
        with open_gguf(built[name]) as g:
            w = Weights(g, 512, n_batch=64, flash_attn=False)
            assert_stages_match(traced_stages(w, refs[f"{name}/tokens_2"]), refs, name, 6)
            del w


@pytest.mark.parametrize("change, has, lacks", [
    ({"fused_gate_up": True}, "blk.0.ffn_gate_up_exps.weight", "blk.0.ffn_up_exps.weight"),
    ({"n_mtp": 1}, "blk.4.ffn_gate_inp.weight", "blk.5.attn_norm.weight"),
])
def test_file_variants_give_the_same_logits(change, has, lacks, tmp_path, refs):
    """The experts' gate and up rows in one ffn_gate_up_exps tensor (gate rows first, as
    llama.cpp splits it), or a multi-token-prediction block with its own experts after
    the trunk (loaded, not run, as llama.cpp's main pass): llama.cpp's bits still."""
    p = tmp_path / "variant.gguf"
    qwen35moe_models.build(NAME, p, **change)
    with open_gguf(p) as g:
        assert has in g.tensors and lacks not in g.tensors
        assert ModelConfig.of(g).n_layer == 4
        assert_top_logits_match(Weights(g, 64, n_batch=64, flash_attn=False), refs, NAME, N_PROMPTS)


def test_greedy_decode_matches_llamacpp(model, refs):
    """48 greedy tokens decoded one at a time (each token routed alone) are llama.cpp's."""
    name, w = model
    assert_greedy_match(w, refs, name, N_PROMPTS, qwen35moe_models.N_GREEDY)


def test_batch_invariance(model, refs, built):
    """A position's logits are the same bits alone, in one batch, in a split batch or in
    chunks of a smaller n_batch, whichever other tokens share its experts."""
    name, w = model
    toks = list(refs[f"{name}/tokens_2"][:40])
    assert_batch_invariant(w, toks, name)
    assert_same_with_small_n_batch(w, built[name], toks)


@pytest.mark.parametrize("name", list(qwen35moe_models.MODELS))
def test_every_isa_gives_the_same_logits(name, built, refs):
    """The router, the experts' Q8_0 / K-quant dots and the shared expert give the same
    bits with every kernel table, in a batch and one token at a time."""
    toks = [int(t) for t in refs[f"{name}/tokens_2"][:40]]
    assert_same_on_every_isa(built[name], toks, name)
    assert_decode_same_on_every_isa(built[name], toks[:8], name)


def test_model_rewinds_are_exact(path, refs):
    """Truncate then continue over the recurrent state: a fresh run's logits."""
    assert_rewinds_exact(path, [int(t) for t in refs[f"{NAME}/tokens_2"]])


def test_config_and_info(path):
    from llmlite.cli.info import model_facts

    with open_gguf(path) as g:
        cfg = ModelConfig.of(g)
        assert (cfg.n_expert, cfg.n_expert_used, cfg.n_ff_exp, cfg.n_ff_shexp) == (8, 2, 32, 64)
        assert cfg.layer_kinds == ["linear", "linear", "linear", "attention"]
        assert cfg.gpu_missing   # neither experts nor delta-net layers on the CUDA span yet
    assert model_facts(path, 512)["layer_kinds"] == ["linear", "linear", "linear", "attention"]


def test_offload_keeps_the_model_on_the_cpu(path, refs):
    assert_offload_on_cpu_span(path, [int(t) for t in refs[f"{NAME}/tokens_1"]], 2,
                               "the GPU backend has no mixture-of-experts layers yet: all on the CPU")


@pytest.mark.parametrize("edit, message", [
    ({"drop_tensors": ["blk.2.ffn_down_shexp.weight"]}, "ffn_down_shexp"),
    ({"drop_tensors": ["blk.0.ffn_gate_inp.weight"]}, "ffn_gate_inp"),
    ({"kv": {"qwen35moe.expert_used_count": 9}}, "expert_used_count is 9"),
    ({"kv": {"qwen35moe.ssm.time_step_rank": 3}}, "time_step_rank is 3, not a multiple"),
])
def test_bad_files_fail_with_one_line(edit, message, path, tmp_path):
    assert_refused_with_one_line(path, tmp_path / "bad.gguf", edit, message)


def test_cli_info_and_run(path):
    assert_cli_info_and_run(path, "qwen35moe")


def test_speculation_gives_the_greedy_tokens(path, refs):
    """Prompt-lookup speculation (rejected guesses rolled back through the recurrent
    state's copy, accepted ones routed in a batch) decodes llama.cpp's 48 greedy tokens."""
    prompt, greedy = ([int(t) for t in refs[f"{NAME}/{what}_2"]] for what in ("tokens", "greedy"))
    assert_lookup_decodes_greedy(path, prompt, greedy)
