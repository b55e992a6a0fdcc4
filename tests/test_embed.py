"""llmlite.embed against llama.cpp's own embeddings (tests/data/embed_refs.npz, written by
benchmarks/make_embed_refs.py: llama-cpp-python with embedding=True and each pooling
type, the pooled vectors before normalisation), and what an embedding call leaves behind."""
import re

import numpy as np
import pytest
from helpers import ROOT, load_npz, rewrite_gguf, run_python
from helpers import llmlite as cli

import llmlite
from llmlite.embed import embed, l2_normalize, text_ids
from llmlite.errors import ContextFullError, LlmliteError, UserError
from llmlite.model import Model

REFS = ROOT / "tests" / "data" / "embed_refs.npz"
N_TEXTS = 3
COS = 0.99999   # where llama.cpp's arithmetic order is not ours (its F16 kernels, its mean as a float matmul)


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def refs():
    return load_npz(REFS)


@pytest.fixture(scope="module")
def smollm2_b16(smollm2_path):
    """n_batch 16: the longest text (47 tokens) runs in three chunks against llama.cpp's one batch"""
    m = llmlite.load(smollm2_path, n_ctx=128, n_batch=16)
    yield m
    m.close()


@pytest.mark.parametrize("k", range(N_TEXTS))
def test_smollm2_matches_llamacpp(smollm2_b16, refs, k):
    """SmolLM2 Q4_1 (llama.cpp's batch kernels, which ours follow bit for bit): cls and last
    are rows of result_norm, bit-equal to llama.cpp's, across chunks of n_batch too; mean
    is summed in another order (llama.cpp: a float32 matmul against 1/n)."""
    ids = refs[f"smollm2/tokens_{k}"]
    for pooling in ("cls", "last"):
        got = embed(smollm2_b16, ids, pooling, normalize=False)
        assert got.dtype == np.float32 and got.shape == (576,)
        assert np.array_equal(got.view(np.uint32), refs[f"smollm2/{pooling}_{k}"].view(np.uint32)), pooling
    assert cosine(embed(smollm2_b16, ids, "mean", normalize=False), refs[f"smollm2/mean_{k}"]) >= COS


@pytest.mark.parametrize("k", range(N_TEXTS))
def test_tiny_matches_llamacpp(tiny, refs, k):
    """The tiny F16 MQA llama (llama.cpp takes other kernels for it, as
    test_forward_synthetic notes): every pooling, and every token's row, to a cosine"""
    ids = refs[f"tiny/tokens_{k}"]
    for pooling in ("mean", "cls", "last"):
        assert cosine(embed(tiny, ids, pooling, normalize=False), refs[f"tiny/{pooling}_{k}"]) >= COS, pooling
    rows = tiny.hidden_states(ids)
    assert rows.shape == refs[f"tiny/none_{k}"].shape
    assert min(cosine(a, b) for a, b in zip(rows, refs[f"tiny/none_{k}"])) >= COS


def test_normalized_as_llamacpp_server(smollm2_b16, refs):
    """normalize (the default) is llama.cpp's server's embd_normalize 2: the pooled vector
    over its Euclidean length, so unit length and llama.cpp's direction"""
    ids = refs["smollm2/tokens_1"]
    ref = refs["smollm2/last_1"].astype(np.float64)
    got = embed(smollm2_b16, ids, "last")
    assert abs(np.linalg.norm(got.astype(np.float64)) - 1.0) < 1e-6
    np.testing.assert_allclose(got, ref / np.linalg.norm(ref), rtol=0, atol=1e-7)
    assert not np.any(l2_normalize(np.zeros(4, np.float32)))     # a zero vector stays zero, no NaN


@pytest.mark.parametrize("stored, expect", [(None, "mean"), (0, "mean"), (1, "mean"), (2, "cls"), (3, "last")])
def test_pooling_from_the_file(tiny_path, refs, tmp_path, stored, expect):
    """{arch}.pooling_type names the pooling; a file that names none (a generative model's)
    or pooling none gets mean"""
    path = rewrite_gguf(tiny_path, tmp_path / "p.gguf", kv=None if stored is None else {"llama.pooling_type": stored})
    m = llmlite.load(path, n_ctx=64)
    ids = refs["tiny/tokens_1"]
    assert np.array_equal(embed(m, ids), embed(m, ids, expect))
    other = "cls" if expect != "cls" else "last"
    assert not np.array_equal(embed(m, ids), embed(m, ids, other))
    m.close()


def test_refusals(tiny_path, tmp_path, tiny):
    """too long for the context, nothing at all, an id outside the vocabulary, a pooling we
    do not know, a reranker's file: each one line"""
    with pytest.raises(ContextFullError, match="longer than the context of 256") as e:
        embed(tiny, [1] * 257)
    assert "\n" not in str(e.value) and (e.value.n_tokens, e.value.n_ctx) == (257, 256)
    with pytest.raises(UserError, match="no tokens"):
        embed(tiny, [])
    with pytest.raises(UserError, match=f"token id {tiny.n_vocab} is outside the vocabulary"):
        embed(tiny, [1, tiny.n_vocab])
    with pytest.raises(UserError, match="token id -1 "):
        embed(tiny, [-1])
    with pytest.raises(ValueError, match="pooling 'max'"):
        embed(tiny, [1, 2], "max")
    rank = llmlite.load(rewrite_gguf(tiny_path, tmp_path / "r.gguf", kv={"llama.pooling_type": 4}), n_ctx=64)
    with pytest.raises(LlmliteError, match="reranker"):
        embed(rank, [1, 2])
    rank.close()


def test_generation_after_an_embedding_is_unchanged(tiny, refs):
    """The embedding overwrites the KV cache from position 0 and empties it: the same
    prompt generated again after it evaluates the whole prompt again and gives the same
    tokens (had the cache kept its prompt, prefill would reuse positions the embedding
    overwrote)."""
    prompt = tiny.tokenize("Once upon a time there was")
    tiny.reset()
    before = list(tiny.generate(prompt, max_tokens=12, temperature=0.0))
    embed(tiny, refs["tiny/tokens_2"])
    assert tiny.n_past == 0
    after = list(tiny.generate(prompt, max_tokens=12, temperature=0.0))
    assert tiny.last_reused == 0
    assert after == before


def test_offloaded_layers(tiny_path, tiny, refs):
    """Layers in a span (the CPU backend standing in for a device) hand the hidden state
    back and give the same bits; with every layer there the span holds the output norm
    and returns logits only: one line saying so."""
    ids = refs["tiny/tokens_2"]
    part = Model(tiny_path, n_ctx=64, gpu_layers=1, offload_backend="cpu")
    assert np.array_equal(embed(part, ids, "mean"), embed(tiny, ids, "mean"))
    part.close()
    full = Model(tiny_path, n_ctx=64, gpu_layers="all", offload_backend="cpu")
    with pytest.raises(LlmliteError, match="output norm on the CPU"):
        embed(full, ids)
    full.close()


def test_cli_prints_the_embedding(tiny_path, tiny):
    """`llmlite embed MODEL TEXT` prints JSON: the text tokenized as llama.cpp's server
    does (the model's BOS if it adds one, special-token texts read as tokens) and embed's
    vector, every float32 bit kept; a pooling it does not know is a usage error"""
    import json

    text = "<|im_start|>Hello world"
    r = cli("embed", tiny_path, text, "--pooling", "last")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    ids = text_ids(tiny, text)
    assert ids[0] == tiny.tokenize("<|im_start|>", False, True)[0] and len(ids) < len(tiny.tokenize(text))
    assert out["pooling"] == "last" and out["n_tokens"] == len(ids)
    assert np.array_equal(np.array(out["embedding"], np.float32), embed(tiny, ids, "last"))
    r = cli("embed", tiny_path, "Hello", "--pooling", "max")
    assert r.returncode == 2 and r.stderr.strip() == "error: --pooling max: one of mean, cls, last"
    r = cli("embed", tiny_path, "Hello " * 40, "-c", "16")
    assert r.returncode == 2 and re.fullmatch(r"error: input of \d+ tokens is longer than the context of 16 .*\n",
                                              r.stderr)


def test_cuda_span_hands_back_the_hidden_state(emulated_cuda_lib, tiny_path):
    """The real CUDA span code (the emulated runtime) with all but the first layer: the
    hidden state comes back to the CPU's output norm, the same vector to float rounding
    (the span's kernels are not the CPU's bits); every layer there: the one-line refusal"""
    code = ("import sys, numpy as np; from llmlite.model import Model; from llmlite.embed import embed\n"
            "ids = [int(i) for i in sys.argv[2].split(',')]\n"
            "cpu = Model(sys.argv[1], n_ctx=64)\n"
            "span = Model(sys.argv[1], n_ctx=64, gpu_layers=cpu.config.n_layer - 1)\n"
            "print(span.weights.backend, span.weights.n_gpu)\n"
            "for p in ('mean', 'cls', 'last'): print(p, float(embed(span, ids, p) @ embed(cpu, ids, p)))\n"
            "try: embed(Model(sys.argv[1], n_ctx=64, gpu_layers='all'), ids)\n"
            "except Exception as e: print(type(e).__name__, e)\n")
    ids = ",".join(map(str, load_npz(REFS)["tiny/tokens_2"]))
    r = run_python(code, tiny_path, ids, env={"LLMLITE_CUDA_LIB": emulated_cuda_lib, "LLMLITE_OFFLOAD_BACKEND": "cuda"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[0] == "cuda" and int(lines[0].split()[1]) >= 1
    assert all(float(line.split()[1]) >= COS for line in lines[1:4]), r.stdout
    assert lines[4].startswith("LlmliteError embeddings need the output norm on the CPU"), r.stdout


def test_recurrent_state_after_an_embedding_or_a_reset(tmp_path):
    """A qwen35's recurrent state cannot drop tokens: Model keeps copies of it to rewind to.
    After an embedding (or a reset) the state holds another history until a pass starts
    it again, and no copy of that may be restored later: every rewind below gives the
    logits of a fresh run (prefill's new turn sharing a prefix; eval after a reset, then
    a truncate)."""
    import qwen35_models
    from helpers import rebuilt_models

    name = "qwen35-4l-q8_0"
    q_refs = load_npz(ROOT / "tests" / "data" / "qwen35_refs.npz")
    path = rebuilt_models(qwen35_models, {k: v for k, v in q_refs.items() if k.startswith(name)}, tmp_path)[name]
    toks = [int(t) for t in q_refs[f"{name}/tokens_2"]]
    m = Model(path, n_ctx=128, n_batch=16)
    fresh = m.eval(toks)
    for other in (lambda: embed(m, toks[30:50]), lambda: (m.prefill(toks[30:50]), m.reset())):
        m.reset()
        m.prefill(toks[:5])
        other()
        m.prefill(toks[:40])
        for t in toks[40:43]:
            m.step(t)
        assert np.array_equal(m.prefill(toks[:25]), fresh[24])
    m.reset()
    m.prefill(toks[30:50])          # a copy of the state before this prompt's last token, at 19
    m.reset()
    m.eval(toks[:10])
    m.eval(toks[10:30])
    m.truncate(22)
    assert np.array_equal(m.eval(toks[22:24]), fresh[22:24])
    m.close()


def test_text_ids_add_the_eos_a_file_asks_for(tiny_path, tiny, tmp_path):
    """an embedding model's file asks for an EOS after the text (add_eos_token), which
    llama.cpp's server adds and its last-token pooling reads"""
    m = llmlite.load(rewrite_gguf(tiny_path, tmp_path / "e.gguf", kv={"tokenizer.ggml.add_eos_token": True}), n_ctx=64)
    ids = text_ids(m, "Hello world")
    assert ids[-1] == m.tokenizer.eos_id and ids[:-1] == text_ids(tiny, "Hello world")
    m.close()
