"""benchmarks/shapes.py: each shape family, scaled down to 4 layers 256 wide, is a
file llmlite loads and runs, typed by the Q4_K_M rules, and the CLI keeps a file it
already wrote."""
import sys

import numpy as np
import pytest

from helpers import ROOT, _run

sys.path.insert(0, str(ROOT / "benchmarks"))
import shapes  # noqa: E402

from llmlite.gguf import open_gguf  # noqa: E402
from llmlite.model import Weights  # noqa: E402

# 4 layers: llama-quantize's use_more_bits(i, 4) picks layers 2 and 3 (the last
# eighth and every third after the first eighth), so both branches of the rule show
MORE_BITS_LAYERS = (2, 3)


def more_bits(i: int, n: int) -> bool:
    """llama-quantize's use_more_bits: the first and last eighth, every third between"""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tiny(shape):
    moe = {"n_expert": 16, "n_expert_used": 4, "n_ff_exp": 256} if shape.n_expert else {}
    # qwen35: 3 delta-net layers then a full one (its interval 4); fewer delta-net heads
    ssm = {"ssm_n_group": 2, "ssm_n_v_head": 4} if shape.full_attn_interval else {}
    # gemma4: sliding, full, sliding, full; the last two reading layers 0 and 1's K/V
    swa = {"swa_period": 2, "n_kv_shared": 2} if shape.swa_period else {}
    return shapes.scaled(shape, n_layer=4, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_vocab=512,
                         **moe, **ssm, **swa)


def expected_q4_k_m(name: str, n_dims: int, tied: bool, names) -> str:
    """Q4_K_M as llama-quantize types a dense model, written out independently of
    llmlite/quantize.py: the head Q6_K (token_embd when tied, and then gemma4's
    per_layer_token_embd too: llama-quantize puts it in the token-embedding category);
    attn_v-like tensors (attn_v, qwen35's fused attn_qkv) Q6_K where use_more_bits picks
    their index among them; ffn_down Q6_K in the use_more_bits layers (a MoE's
    ffn_down_exps too); 1-D tensors, biases, norms, the router (ffn_gate_inp), the
    delta-net's conv kernel and gemma4's per_layer_model_proj F32 (llama-quantize leaves
    them as they are); the rest Q4_K"""
    if name == "output.weight" or (tied and name in ("token_embd.weight", "per_layer_token_embd.weight")):
        return "Q6_K"
    if (n_dims < 2 or not name.endswith("weight") or "norm" in name
            or name.endswith(("ffn_gate_inp.weight", "ssm_conv1d.weight", "per_layer_model_proj.weight"))):
        return "F32"
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    v_like = sorted((n for n in names if n.endswith(("attn_v.weight", "attn_qkv.weight"))),
                    key=lambda n: int(n.split(".")[1]))
    if name in v_like and more_bits(v_like.index(name), len(v_like)):
        return "Q6_K"
    n_layer = 1 + max(int(n.split(".")[1]) for n in names if n.startswith("blk."))
    if name.endswith(("ffn_down.weight", "ffn_down_exps.weight")) and more_bits(layer, n_layer):
        return "Q6_K"
    return "Q4_K"


@pytest.mark.parametrize("name", list(shapes.SHAPES))
def test_tiny_shape_loads_typed_and_runs(name, tmp_path):
    shape = tiny(shapes.SHAPES[name])
    path = tmp_path / f"{name}.gguf"
    shapes.build(path, name, shape)
    with open_gguf(path) as g:
        assert g.get("general.architecture") == shape.arch
        assert set(g.tensors) == set(shapes.tensor_shapes(shape))
        got = {n: t.type_name for n, t in g.tensors.items()}
        assert tuple(i for i in range(4) if more_bits(i, 4)) == MORE_BITS_LAYERS
        assert got == {n: expected_q4_k_m(n, len(t.shape), shape.tied, got) for n, t in g.tensors.items()}
        w = Weights(g, 64, n_batch=64)
        logits = w.forward([1, 300, 7, 511], 0, 2)   # mode 2: every position's logits
        assert logits.shape == (4, shape.n_vocab)
        assert np.isfinite(logits).all() and logits.std() > 0
        del w


def test_cli_builds_once_and_names_the_parameters(tmp_path, monkeypatch):
    # the smallest real shape is still 1 GB: the CLI runs here on a tiny stand-in
    monkeypatch.setitem(shapes.SHAPES, "tiny", tiny(shapes.SHAPES["llama3.2-1b"]))
    first = shapes.ensure("tiny", "q8_0", tmp_path, seed=3)
    assert first.name == shapes.file_name("tiny", "q8_0", 3) and "q8_0" in first.name and "seed3" in first.name
    stamp = first.stat().st_mtime_ns
    assert shapes.ensure("tiny", "q8_0", tmp_path, seed=3) == first
    assert first.stat().st_mtime_ns == stamp          # kept, not rewritten
    assert shapes.ensure("tiny", "q8_0", tmp_path, seed=4) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        shapes.file_name("tiny", "q8_0", s) for s in (3, 4))   # no temporary file left behind


def test_cli_list_and_bad_input():
    r = _run([sys.executable, "benchmarks/shapes.py", "--list"])
    assert r.returncode == 0 and all(n in r.stdout for n in shapes.SHAPES)
    for args, word in ((["nosuch"], "unknown shape"), (["llama3.2-1b", "--type", "q9"], "unknown type")):
        r = _run([sys.executable, "benchmarks/shapes.py", *args])
        assert r.returncode == 2 and r.stderr.startswith(f"error: {word}") and "Traceback" not in r.stderr
