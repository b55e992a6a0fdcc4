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


def tiny(shape):
    moe = {"n_expert": 16, "n_expert_used": 4, "n_ff_exp": 256} if shape.n_expert else {}
    return shapes.scaled(shape, n_layer=4, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_vocab=512, **moe)


def expected_q4_k_m(name: str, tied: bool) -> str:
    """Q4_K_M as llama-quantize types a dense model, written out independently of
    llmlite/quantize.py: the head Q6_K (token_embd when tied), attn_v and ffn_down
    Q6_K in the use_more_bits layers (a MoE's ffn_down_exps too), 1-D tensors and the
    router (ffn_gate_inp) F32, the rest Q4_K"""
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        return "Q6_K"
    if not name.endswith("weight") or "norm" in name or name.endswith("ffn_gate_inp.weight"):
        return "F32"
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    if name.endswith(("attn_v.weight", "ffn_down.weight", "ffn_down_exps.weight")) and layer in MORE_BITS_LAYERS:
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
        assert got == {n: expected_q4_k_m(n, shape.tied) for n in got}
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
