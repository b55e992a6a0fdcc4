"""A model whose matrices are grid i-quants (random valid blocks: their quantizers
need an importance matrix) loads and runs: the tiny llama widened to 256 (one
super-block per row), every matrix of one type; its logits against llama.cpp's
(tests/data/iqgrid_logits.npz, benchmarks/make_iqgrid_logits.py) and against the same
model with the layers' matrices dequantized to F32, and `llmlite run` on it."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import llmlite
from llmlite import _lib as L
from llmlite.gguf import open_gguf
from llmlite.gguf.constants import GGMLType as Q
from llmlite.gguf.constants import ValueType
from llmlite.gguf.writer import TensorOut, encode, write_gguf
from llmlite.model import Weights

from isa import isas, using_isa
from test_iq_grid import GRID, ROOT, random_rows

LLAMACPP = np.load(ROOT / "tests" / "data" / "iqgrid_logits.npz")

N = 256          # embedding, heads (4 x 64), FFN: every matrix's rows are one super-block
WIDE = {"llama.embedding_length": N, "llama.feed_forward_length": N, "llama.attention.key_length": 64,
        "llama.attention.value_length": 64, "llama.rope.dimension_count": 64}
SHAPES = {"attn_q": (N, N), "attn_k": (N, 64), "attn_v": (N, 64), "attn_output": (N, N),
          "ffn_gate": (N, N), "ffn_up": (N, N), "ffn_down": (N, N)}


def write_model(tiny_path, dst, name: str, f32_layers: bool):
    """The tiny llama at width N, its matrices random `name` blocks (f32_layers: the
    layers' matrices as their dequantized floats instead, the embedding unchanged)."""
    t = GRID[name]
    with open_gguf(tiny_path) as g:
        kvs = [(k, encode(ValueType.UINT32, np.uint32(WIDE[k])) if k in WIDE else v) for k, v in g.stored_kvs()]
        n_vocab = g.tensors["token_embd.weight"].shape[1]
        n_layer = 1 + max(int(n.split(".")[1]) for n in g.tensors if n.startswith("blk."))
    table, data = [], []

    def add(tname, shape, ttype, blob):
        table.append(TensorOut(tname, shape, ttype, len(blob)))
        data.append(blob)

    add("token_embd.weight", (N, n_vocab), t, random_rows(name, n_vocab, N, seed=1).tobytes())
    add("output_norm.weight", (N,), Q.F32, np.ones(N, np.float32).tobytes())
    for il in range(n_layer):
        add(f"blk.{il}.attn_norm.weight", (N,), Q.F32, np.ones(N, np.float32).tobytes())
        add(f"blk.{il}.ffn_norm.weight", (N,), Q.F32, np.ones(N, np.float32).tobytes())
        for j, (m, shape) in enumerate(SHAPES.items()):
            raw = random_rows(name, shape[1], shape[0], seed=100 * il + j + 2)
            if f32_layers:
                add(f"blk.{il}.{m}.weight", shape, Q.F32, L.dequantize(t, raw, raw.size // L.lib.llm_type_block_bytes(t) * 256).tobytes())
            else:
                add(f"blk.{il}.{m}.weight", shape, t, raw.tobytes())
    write_gguf(dst, kvs, table, lambda i: data[i])
    return dst


@pytest.fixture(scope="module", params=list(GRID))
def models(request, tiny_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("iqm")
    return (request.param, write_model(tiny_path, d / "iq.gguf", request.param, False),
            write_model(tiny_path, d / "f32.gguf", request.param, True))


def test_logits_follow_the_dequantized_model(models):
    """The i-quant model's logits are the F32 model's up to the rounding of the
    activations to Q8_K (8 bits), which two layers of random weights amplify: the
    typical difference stays a few percent of the logits' spread, the two agree in
    shape (a wrong grid, sign or scale decorrelates them)."""
    name, iq, f32 = models
    tokens = [1, 400, 3000, 77, 12000, 5]
    out = []
    for path in (iq, f32):
        with open_gguf(path) as g:
            w = Weights(g, 64, n_batch=64, flash_attn=False)
            out.append(w.forward(tokens, 0, 2))
    a, b = out
    assert np.isfinite(a).all()
    assert np.median(np.abs(a - b)) < 0.05 * b.std(), name
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99, name


def test_logits_are_llamacpp_s(models):
    """To float32 precision (the bound test_forward_synthetic.py holds the other
    types' models to: the matmuls are bit-exact, other steps round apart), the same
    bits on every ISA; the same top token everywhere."""
    name, iq, _ = models
    ids, want = LLAMACPP[f"{name}/top_ids"], LLAMACPP[f"{name}/top_logits"]
    with open_gguf(iq) as g:
        w = Weights(g, 64, n_batch=64, flash_attn=False)
        first = None
        for isa in isas():
            with using_isa(isa):
                logits = w.forward(list(LLAMACPP["tokens"]), 0, 2)
            first = logits if first is None else first
            assert np.array_equal(logits, first), (name, isa)
            assert np.abs(np.take_along_axis(logits, ids, 1) - want).max() < 1e-4, (name, isa)
            assert (logits.argmax(1) == ids[:, 0]).all(), (name, isa)
            lse = np.log(np.exp((logits - logits.max(1, keepdims=True)).astype(np.float64)).sum(1)) + logits.max(1)
            assert np.abs(lse - LLAMACPP[f"{name}/logsumexp"]).max() < 1e-4, (name, isa)
        del w


def test_run_generates(models):
    name, iq, _ = models
    r = llmlite("run", iq, "--raw", "-p", "Hello", "-n", "4", "--temp", "0", "--no-lookup", "-c", "64")
    assert r.returncode == 0, r.stderr
    assert "generated 4 tokens" in r.stderr, r.stderr
