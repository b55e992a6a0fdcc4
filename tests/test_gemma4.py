"""The Gemma 4 forward pass against llama.cpp's logits on tiny random-weight models
(tests/gemma4_models.py, rebuilt here byte for byte; the references from
benchmarks/make_gemma4_refs.py in tests/data/gemma4_refs.npz): the dense E2B/E4B
shape (two head sizes, shared K/V, per-layer embeddings, output scales, the final
softcap) and 26B-A4B's expert layers (a dense FFN beside the experts, K as V)."""
import gemma4_models
import numpy as np
import pytest
from helpers import (ROOT, assert_batch_invariant, assert_top_logits_match, flash_floor, greedy_tokens,
                     oracle_fixtures, rewrite_gguf, traced_stages)
from isa import assert_decode_same_on_every_isa, assert_same_on_every_isa

from llmlite.gguf import GGUFError, open_gguf
from llmlite.model import Weights

REFS = ROOT / "tests" / "data" / "gemma4_refs.npz"
NAME = "gemma4-e-q8_0"            # the dense one: shared K/V, per-layer embeddings
MOE = "gemma4-moe-8x2-q8_0"
N_PROMPTS = len(gemma4_models.PROMPT_LENGTHS)
# the stages each model's references must have (a check that the refs hold what the tests mean)
KEY_STAGES = {NAME: {"inp_per_layer", "kqv_out-3", "kqv_out-5", "per_layer_embd_out-0"},
              MOE: {"ffn_moe_logits-0", "ffn_moe_out-0", "kqv_out-2"}}


refs, built, model = oracle_fixtures(gemma4_models, REFS)


@pytest.fixture(scope="module")
def path(built):
    return built[NAME]


@pytest.fixture(scope="module")
def w(path):
    g = open_gguf(path)
    yield Weights(g, 512, n_batch=64, flash_attn=False)
    g.close()


def test_logits_bit_identical_with_llamacpp(model, refs):
    """Teacher-forced, every prompt (the longer ones past the window of 8): the top-20
    logits of every position are llama.cpp's bits, so the top-1 and the log-normaliser
    agree too."""
    name, w = model
    assert_top_logits_match(w, refs, name, N_PROMPTS)


def test_stages_bit_identical_with_llamacpp(model, refs):
    """Prompt 2's per-layer inputs (the table's rows and the embedding's projection,
    normed and mixed), the attention output of layers reading their own and another
    layer's K/V (sliding and full) or K as V, the first layer's per-layer embedding
    term, the router's logits, the experts' weighted sum and layer outputs are
    llama.cpp's bits: a last-bit difference there could vanish in a quantized matmul
    before the logits."""
    name, w = model
    ours = traced_stages(w, refs[f"{name}/tokens_2"])
    stages = [k for k in refs if k.startswith(f"{name}/stage/")]
    assert KEY_STAGES[name] <= {k.split("/")[-1] for k in stages}
    for k in stages:
        stage = k.split("/")[-1]
        assert np.array_equal(ours[stage], refs[k].ravel()), (name, stage, np.abs(ours[stage] - refs[k].ravel()).max())


def test_greedy_decode_matches_llamacpp(model, refs):
    """48 greedy tokens decoded one at a time (the shared layers reading the cache the
    earlier ones wrote a step before; each token's k experts alone) are llama.cpp's."""
    name, w = model
    for k in range(N_PROMPTS):
        got = greedy_tokens(w, refs[f"{name}/tokens_{k}"], gemma4_models.N_GREEDY)
        assert got == list(refs[f"{name}/greedy_{k}"]), (name, k)


def test_batch_invariance(model, refs):
    """A position's logits are the same bits computed alone, in one batch or in a split one."""
    name, w = model
    assert_batch_invariant(w, list(refs[f"{name}/tokens_2"][:40]), name)


@pytest.mark.parametrize("name", list(gemma4_models.MODELS))
def test_every_isa_gives_the_same_logits(name, built, refs):
    assert_same_on_every_isa(built[name], list(refs[f"{name}/tokens_2"][:40]), name)


@pytest.mark.parametrize("name", list(gemma4_models.MODELS))
def test_decode_same_on_every_isa(name, built, refs):
    """Decode (one column: the tables' gemv kernels) gives every table's bits."""
    assert_decode_same_on_every_isa(built[name], [int(t) for t in refs[f"{name}/tokens_1"]], name)


def test_shared_layers_have_no_cache(w):
    """The K/V cache holds the layers with their own K/V only, each at its head size:
    layers 0, 1 (sliding, 32) and 2 (full, 64) of the six; the planner's figure is the same."""
    s = gemma4_models.MODELS[NAME]
    per_pos = sum(2 * s.n_head_kv * hd * 2 for hd in (s.head_dim_swa, s.head_dim_swa, s.head_dim))
    assert w.kv_bytes == 512 * per_pos
    assert w.config.kv_cache_bytes(512) == w.kv_bytes


@pytest.mark.parametrize("name, edit, message", [
    (NAME, {"drop_tensors": ["blk.4.inp_gate.weight"]}, "missing tensor blk.4.inp_gate"),
    (NAME, {"drop_tensors": ["blk.1.attn_k.weight"]}, "missing tensor blk.1.attn_k"),
    # the shared layers would read layer 2 as their sliding one: llama.cpp's map needs it full
    (NAME, {"kv": {"gemma4.attention.shared_kv_layers": 4}}, "shared_kv_layers is 4"),
    (NAME, {"kv": {"gemma4.rope.dimension_count_swa": 48}}, "dimension_count_swa is 48"),
    (MOE, {"drop_tensors": ["blk.1.ffn_gate_inp.scale"]}, "missing tensor blk.1.ffn_gate_inp.scale"),
    (MOE, {"drop_tensors": ["blk.0.ffn_up.weight"]}, "missing tensor blk.0.ffn_up"),
    (MOE, {"kv": {"gemma4.expert_used_count": 9}}, "expert_used_count is 9"),
])
def test_bad_files_fail_with_one_line(name, edit, message, built, tmp_path):
    bad = rewrite_gguf(built[name], tmp_path / "bad.gguf", **edit)
    with pytest.raises(GGUFError, match=message) as ei, open_gguf(bad) as g:
        Weights(g, 64, n_batch=8)
    assert "\n" not in str(ei.value)


def test_gpu_keeps_gemma4_on_the_cpu(path):
    """The CUDA span has no Gemma 4 layers yet: asked for all of them, every layer stays
    on the CPU, said in one line, and the logits are the CPU's."""
    from llmlite.model import Model

    toks = list(range(20))
    whole = Model(path, n_ctx=64, gpu_layers=0).eval(toks)
    notes = []
    m = Model(path, n_ctx=64, gpu_layers="all", offload_backend="cuda", notify=notes.append)
    assert m.weights.n_gpu == 0 and np.array_equal(m.eval(toks), whole)
    assert len(notes) == 1 and "Gemma 4" in notes[0] and "all on the CPU" in notes[0], notes


def test_offload_costs_count_shared_kv_and_per_layer_embeddings(path, w):
    """The planner sizes the cache as the model allocates it (none for the shared layers,
    each layer at its head size), the CPU's buffers as the C model's own figure (two head
    sizes, the widest FFN, the per-layer inputs), and counts what a token reads of the
    per-layer embeddings: its row of the table and the projection whole."""
    from llmlite._lib import lib
    from llmlite.offload import model_costs

    with open_gguf(path) as g:
        c = model_costs(g, 512, 64, backend="cpu")
        T = {k: t.nbytes for k, t in g.tensors.items()}
    nv = gemma4_models.n_vocab()
    assert sum(c.layer_kv) == w.kv_bytes and c.layer_kv[3:] == [0, 0, 0]
    assert c.layer_kv[0] == c.layer_kv[1] == c.layer_kv[2] // 2
    assert c.scratch_bytes == lib.llm_scratch_bytes(w.cfg, 512, 64)
    assert c.embd_row_bytes == (T["token_embd.weight"] // nv + T["per_layer_token_embd.weight"] // nv
                                + T["per_layer_model_proj.weight"] + T["per_layer_proj_norm.weight"])


def test_info_shows_gemma4_facts(path):
    """`llmlite info`: the sliding layers' head size, the shared K/V layers and the
    per-layer embedding width, and the cache without the shared layers'"""
    import json

    from typer.testing import CliRunner

    from llmlite.cli import app

    r = CliRunner().invoke(app, ["info", str(path), "--json", "-c", "512"])
    assert r.exit_code == 0, r.stderr
    f = json.loads(r.stdout)
    assert (f["head_dim"], f["head_dim_swa"], f["shared_kv_layers"], f["per_layer_embedding"]) == (64, 32, 3, 32)
    assert f["memory"]["kv_cache_bytes"] == 512 * 2 * 2 * (32 + 32 + 64)
    text = " ".join(CliRunner().invoke(app, ["info", str(path)]).stdout.split())
    assert "64, sliding layers 32" in text
    assert "the last 3 layers read an earlier layer's cache" in text
    assert "32 per layer per token" in text


def test_info_shows_gemma4_experts(built):
    """`llmlite info` on the expert model: its experts, and the parameters a token runs
    (the fused gate/up counted with the down as the experts' weights)"""
    import json

    from typer.testing import CliRunner

    from llmlite.cli import app

    f = json.loads(CliRunner().invoke(app, ["info", str(built[MOE]), "--json"]).stdout)
    assert f["experts"] == {"count": 8, "used": 2, "n_ff_exp": 32, "n_ff_shexp": 0}
    with open_gguf(built[MOE]) as g:
        exps = sum(t.n_elements for n, t in g.tensors.items() if n.endswith("_exps.weight"))
    assert exps == 4 * 8 * (2 * 32 * 64 + 64 * 32)
    assert f["active_parameters"] == f["parameters"] - exps * 6 // 8


def test_kv_heads_per_layer_kind(built):
    """26B-A4B's sliding layers have more KV heads than its full ones (8 and 2; here 2
    and 1): each layer's cache at its own heads and head size, the planner's figure the same."""
    with open_gguf(built[MOE]) as g:
        w = Weights(g, 512, n_batch=8)
        assert w.kv_bytes == 512 * 2 * 2 * (3 * 2 * 32 + 1 * 1 * 64)
        assert w.config.kv_cache_bytes(512) == w.kv_bytes
        del w


def test_flash_attention_within_the_floor(built, refs):
    """With flash attention (llama.cpp's online softmax with an F16 accumulator, which
    llmlite's follows but not bit for bit), the dense model stays within the issue's floor
    of llama.cpp's own flash-attention logits over every prompt: top-1 all, mean
    |dlogprob| <= 0.02 over the top 20. Most positions are its bits; not the max floor
    (0.22 at one position of prompt 1), as for gpt-oss in test_moe."""
    with open_gguf(built[NAME]) as g:
        w = Weights(g, 512, n_batch=64, flash_attn=True)
        for k in range(N_PROMPTS):
            top1, dlp = flash_floor(w.forward(refs[f"{NAME}/tokens_{k}"], 0, 2), refs, NAME, k)
            assert top1, k
            assert dlp.mean() <= 0.02, (k, dlp.mean(), dlp.max())
        del w


def test_bench_counts_one_row_of_the_per_layer_table(path):
    """`llmlite bench`'s bytes per decoded token: one row of the per-layer embedding table
    (not the table), and each layer's K/V at its own head size, the shared layers reading
    an earlier layer's"""
    import llmlite
    from llmlite.bench import decode_bytes_per_token

    m = llmlite.load(path, n_ctx=64)
    T = m.gguf.tensors
    nv = gemma4_models.n_vocab()
    table = T["per_layer_token_embd.weight"].nbytes
    weights = sum(t.nbytes for t in T.values()) - table + table // nv
    s = gemma4_models.MODELS[NAME]
    per_pos = sum(2 * s.n_head_kv * (s.head_dim_swa if swa else s.head_dim) * 2 for swa in s.swa)
    assert decode_bytes_per_token(m, 0) == weights
    assert decode_bytes_per_token(m, 10) == weights + 10 * per_pos
