"""Liquid LFM2's forward pass (short-convolution layers between attention layers with
q/k norms) against llama.cpp's logits on a tiny random-weight model (tests/lfm2_models.py,
rebuilt here byte for byte; the references from benchmarks/make_lfm2_refs.py in
tests/data/lfm2_refs.npz)."""
import numpy as np
import pytest
import lfm2_models
from helpers import (ROOT, assert_batch_invariant, assert_cli_info_and_run, assert_greedy_match,
                     assert_lookup_decodes_greedy, assert_offload_on_cpu_span, assert_refused_with_one_line,
                     assert_rewinds_exact, assert_same_with_small_n_batch, assert_stages_match,
                     assert_state_restarts, assert_top_logits_match, greedy_tokens, llmlite, one_model_fixtures,
                     rewrite_gguf, traced_stages)
from isa import assert_decode_same_on_every_isa, assert_same_on_every_isa

from llmlite.config import ModelConfig
from llmlite.gguf import open_gguf
from llmlite.model import Weights

REFS = ROOT / "tests" / "data" / "lfm2_refs.npz"
NAME = "lfm2-6l-q8_0"
N_PROMPTS = len(lfm2_models.PROMPT_LENGTHS)
KINDS = ["shortconv", "shortconv", "attention", "shortconv", "shortconv", "attention"]


refs, paths, path, w = one_model_fixtures(lfm2_models, REFS, NAME)


def test_logits_bit_identical_with_llamacpp(w, refs):
    """Teacher-forced, every prompt: the top-20 logits of every position are llama.cpp's
    bits, so the top-1 and the log-normaliser agree too."""
    assert_top_logits_match(w, refs, NAME, N_PROMPTS)


def test_flash_attention_logits_bit_identical_with_llamacpp(path, refs):
    """With flash attention (llama.cpp's -fa: online softmax, F16 accumulator) the top-20
    logits are llama.cpp's flash-attention bits."""
    with open_gguf(path) as g:
        w = Weights(g, 512, n_batch=64, flash_attn=True)
        assert_top_logits_match(w, refs, NAME, N_PROMPTS, flash=True)
        del w


def test_q4_k_model_matches_llamacpp(paths, refs):
    """The published Q4_K_M's types: llama.cpp's Q4_K matmul takes its gemm for the rows of
    a batch in fours and its gemv for the n % 4 left (not batch invariant), so prompts
    of 28 and 52 tokens get its bits and the one of 6 the project's bounds (top-1
    always, |Δlogprob| over the top 20 at most 0.02 on average, 0.2 anywhere); the 48
    greedy tokens of each prompt are its, on every kernel table."""
    name = "lfm2-6l-q4_k"
    with open_gguf(paths[name]) as g:
        w = Weights(g, 512, n_batch=64, flash_attn=False)
        for k in range(N_PROMPTS):
            toks, ids = refs[f"{name}/tokens_{k}"], refs[f"{name}/top_ids_{k}"]
            logits = w.forward(toks, 0, 2)
            mx = logits.max(1, keepdims=True)
            lse = np.log(np.exp(logits - mx).sum(1)) + mx[:, 0]
            dlp = np.abs((np.take_along_axis(logits, ids, 1) - lse[:, None])
                         - (refs[f"{name}/top_logits_{k}"] - refs[f"{name}/logsumexp_{k}"][:, None]))
            assert np.array_equal(logits.argmax(1), ids[:, 0]), k
            assert dlp.mean() <= 0.02 and dlp.max() <= 0.2, (k, dlp.mean(), dlp.max())
            if len(toks) % 4 == 0:
                assert dlp.max() == 0.0, k
            assert greedy_tokens(w, toks, lfm2_models.N_GREEDY) == list(refs[f"{name}/greedy_{k}"]), k
        del w
    toks = [int(t) for t in refs[f"{name}/tokens_2"][:24]]
    assert_same_on_every_isa(paths[name], toks, name)
    assert_decode_same_on_every_isa(paths[name], toks[:6], name)


def test_sliding_window_matches_llamacpp(paths, refs, tmp_path):
    """A file with attention.sliding_window: every attention layer sees the last 8
    positions (llama.cpp's lfm2 with n_swa), its logits llama.cpp's bits with and without
    flash attention and its 48 greedy tokens; without the key the same weights give
    other logits on the prompts longer than the window (the window bites)."""
    name = "lfm2-6l-swa8"
    with open_gguf(paths[name]) as g:
        cfg = ModelConfig.of(g)
        assert cfg.swa_layers == [k == "attention" for k in KINDS] and set(cfg.c_windows()) == {8}
        for fa in (True, False):
            w = Weights(g, 512, n_batch=64, flash_attn=fa)
            assert_top_logits_match(w, refs, name, N_PROMPTS, flash=fa)
        assert_greedy_match(w, refs, name, N_PROMPTS, lfm2_models.N_GREEDY)   # (llama.cpp's without flash)
        del w
    plain = rewrite_gguf(paths[name], tmp_path / "plain.gguf", drop_kv=["lfm2.attention.sliding_window"])
    with open_gguf(plain) as g:
        w = Weights(g, 512, n_batch=64, flash_attn=False)
        for k in range(N_PROMPTS):
            logits = w.forward(refs[f"{name}/tokens_{k}"], 0, 2)
            same = np.array_equal(np.take_along_axis(logits, refs[f"{name}/top_ids_{k}"], 1),
                                  refs[f"{name}/top_logits_{k}"])
            assert same == (len(refs[f"{name}/tokens_{k}"]) <= 8), k
        del w


def test_stages_bit_identical_with_llamacpp(w, refs):
    """A convolution layer's in_proj, convolution and out_proj (the first layer's, and a
    later one's convolution), layers' outputs and the attention layer's output before and
    after its projection are llama.cpp's bits (prompt 2): a last-bit difference can
    vanish in a quantized matmul before the logits."""
    # llama.cpp's names of the stages -> the C trace's
    renames = {"model.layers.{}.conv.in_proj-0": "conv_in_proj-0", "model.layers.{}.conv.conv-0": "conv_conv-0",
               "model.layers.{}.conv.out_proj-0": "conv_out_proj-0", "model.layers.{}.conv.conv-3": "conv_conv-3",
               "model.layers.{}.self_attn.out_proj-2": "attn_out-2"}
    assert_stages_match(traced_stages(w, refs[f"{NAME}/tokens_2"]), refs, NAME, 8, renames)


def test_greedy_decode_matches_llamacpp(w, refs):
    """48 greedy tokens decoded one at a time (the convolution's state carried from step
    to step) are llama.cpp's."""
    assert_greedy_match(w, refs, NAME, N_PROMPTS, lfm2_models.N_GREEDY)


def test_batch_invariance(w, refs, path):
    """A position's logits are the same bits computed alone (the state carried token by
    token), in one batch, in a split batch, or in chunks of a smaller n_batch."""
    toks = list(refs[f"{NAME}/tokens_2"][:40])
    assert_batch_invariant(w, toks, NAME)
    assert_same_with_small_n_batch(w, path, toks)


def test_every_isa_gives_the_same_logits(path, refs):
    """The convolution, the products around it and the attention layers give the same
    bits with every kernel table, in a batch and one token at a time."""
    toks = [int(t) for t in refs[f"{NAME}/tokens_2"][:40]]
    assert_same_on_every_isa(path, toks, NAME)
    assert_decode_same_on_every_isa(path, toks[:8], NAME)


def test_state_restarts_at_zero_and_refuses_another_position(w, refs):
    """The convolution's state holds one position: a pass at 0 starts it over, one anywhere
    but where it stands is refused rather than wrong."""
    assert_state_restarts(w, refs[f"{NAME}/tokens_1"])


def test_config_layer_kinds_and_gpu(path):
    with open_gguf(path) as g:
        cfg = ModelConfig.of(g)
        assert cfg.layer_kinds == KINDS
        assert (cfg.ssm_d_conv, cfg.n_head_kv, cfg.n_head_kv_per_layer) == (3, 2, [0, 0, 2, 0, 0, 2])
        assert cfg.gpu_missing == "short-convolution layers"
        assert cfg.tokenizer_pre == "lfm2"


@pytest.mark.parametrize("edit, message", [
    ({"drop_tensors": ["blk.1.shortconv.out_proj.weight"]},
     "layer 1 is a short-convolution layer but has no tensor blk.1.shortconv.out_proj.weight"),
    ({"kv": {"lfm2.attention.head_count_kv": np.array([0, 2, 2, 0, 0, 2], np.int32)}},
     "layer 1 is an? attention layer but has tensor"),
    ({"drop_tensors": ["blk.0.shortconv.conv.weight"]}, "missing tensor blk.0.shortconv.conv"),
    ({"drop_tensors": ["blk.3.shortconv.in_proj.weight"]}, "missing tensor blk.3.shortconv.in_proj"),
    ({"drop_tensors": ["token_embd_norm.weight"]}, "missing tensor output_norm"),
    ({"drop_kv": ["lfm2.shortconv.l_cache"]}, "l_cache is 0"),
    ({"kv": {"lfm2.shortconv.l_cache": 4}}, r"tensor blk.0.shortconv.conv has shape \[3, 64\], expected \[4, 64\]"),
    ({"kv": {"lfm2.attention.head_count_kv": np.array([0, 0, 2, 0, 0, 4], np.int32)}},
     "head_count_kv differs between attention layers"),
    ({"kv": {"lfm2.attention.causal": False}}, "causal is False: bidirectional"),
])
def test_bad_files_fail_with_one_line(edit, message, path, tmp_path):
    assert_refused_with_one_line(path, tmp_path / "bad.gguf", edit, message)


def test_model_rewinds_are_exact(path, refs):
    """Truncate then continue (a guess's rejected tokens, a regenerated reply, a new turn
    sharing a prefix) over a convolution's state that cannot drop tokens: a fresh run's logits."""
    assert_rewinds_exact(path, [int(t) for t in refs[f"{NAME}/tokens_2"]])


def test_info_shows_layer_kinds_and_state(path):
    from llmlite.cli.info import model_facts

    f = model_facts(path, 512)
    assert f["layer_kinds"] == KINDS
    # two attention layers' F16 K and V for 512 positions, four layers' F32 conv state
    # (the last 2 inputs of 64 channels) and its two copies
    kv = 512 * 2 * 16 * 2 * 2
    assert f["memory"]["kv_cache_bytes"] == 2 * kv + 4 * (3 * 4 * 64 * 2)


def test_cli_info_and_run(path):
    """`llmlite info` names the layer kinds; `llmlite run` prints text through the
    "lfm2" pre-tokenizer the file declares"""
    assert_cli_info_and_run(path, "4 short convolution, 2 full attention", "pre lfm2")


def test_offload(path, refs):
    """Layers on the CPU stand-in for a device (their state with them) give the same bits;
    the CUDA backend, which has no short-convolution layers yet, leaves the model on the CPU."""
    assert_offload_on_cpu_span(path, [int(t) for t in refs[f"{NAME}/tokens_1"]], 3,
                               "the GPU backend has no short-convolution layers yet: all on the CPU")


def test_speculation_gives_the_greedy_tokens(path, refs):
    """Prompt-lookup speculation over the convolution's state (each rejected guess rolled back
    through its copy) decodes the tokens plain greedy decoding does, llama.cpp's 48."""
    prompt, greedy = ([int(t) for t in refs[f"{NAME}/{what}_2"]] for what in ("tokens", "greedy"))
    assert_lookup_decodes_greedy(path, prompt, greedy)

def test_quantize_plan_reads_the_per_layer_kv_heads(path, tmp_path):
    """`llmlite quantize` of an lfm2 file (head_count_kv per layer, 0 on the conv layers:
    llama.cpp's n_gqa() is then 0) plans it as llama-quantize does (checked byte for byte
    against llama_model_quantize with benchmarks/quantize_vs_llamacpp.py): the
    convolution's kernel stays F32, the projections take the type, and the file runs."""
    from llmlite.gguf.constants import GGMLType as Q

    out = tmp_path / "q8.gguf"
    r = llmlite("quantize", path, out, "--type", "q8_0", "--allow-requantize")
    assert r.returncode == 0, r.stderr
    with open_gguf(out) as g:
        assert g.tensors["blk.0.shortconv.conv.weight"].type == Q.F32
        assert g.tensors["blk.0.shortconv.in_proj.weight"].type == Q.Q8_0
    r = llmlite("run", out, "--raw", "-p", "the cat", "-n", "4", "--temp", "0")
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
