"""The forward pass on the two real models against llama.cpp's reference logits and
perplexity (shared/refs/<model>/).

These models amplify float rounding: with Q8 activations a last-bit change flips an
int8 rounding and the flip travels through the layers, so two correct engines (or our
own scalar and SIMD paths) differ by tenths of a logit. The checks here are therefore
calibrated at run time against our own cross-ISA spread: our distance to llama.cpp
must be of the same size as the distance between our own correct kernel paths."""
import json

import numpy as np
import pytest

import llmlite
from llmlite import _lib
from llmlite.perplexity import perplexity

REFS = {"smollm2": "smollm2-135m-instruct-q4_1", "gemma3": "gemma3-270m-q4_k_m"}


@pytest.fixture(scope="module", params=["smollm2", "gemma3"])
def real(request, smollm2_path, gemma3_path, shared_dir):
    path = smollm2_path if request.param == "smollm2" else gemma3_path
    m = llmlite.load(path, n_ctx=512)
    yield request.param, m, shared_dir / "refs" / REFS[request.param]
    m.close()


def _logits(m, toks, isa=None):
    prev = _lib.isa()
    if isa:
        assert _lib.set_isa(isa)
    try:
        m.reset()
        return m.eval(list(toks))
    finally:
        _lib.set_isa(prev)
        m.reset()


def test_logits_close_to_llamacpp(real):
    name, m, d = real
    for k in range(2):
        ref = np.load(d / f"logits_{k}.npz")
        ours = _logits(m, ref["tokens"])
        twin = _logits(m, ref["tokens"], "scalar")
        a = np.take_along_axis(ours, ref["top_ids"], 1)
        b = np.take_along_axis(twin, ref["top_ids"], 1)
        spread = np.abs(a - b)                      # our own kernel paths
        dist = np.abs(a - ref["top_logits"])        # us vs llama.cpp
        assert dist.mean() <= 2.0 * spread.mean() + 0.05, (name, k, dist.mean(), spread.mean())
        # lse over the whole vocabulary
        lse = np.log(np.exp(ours - ours.max(1, keepdims=True)).sum(1)) + ours.max(1)
        assert np.abs(lse - ref["logsumexp"]).max() < 1.5
        # top-1 wherever llama.cpp's own margin exceeds the numeric spread
        margin = ref["top_logits"][:, 0] - ref["top_logits"][:, 1]
        clear = margin > 2.0 * spread.max() + 0.05
        assert clear.sum() >= 1
        assert (ours.argmax(1)[clear] == ref["top_ids"][clear, 0]).all(), (name, k)


def test_batch_invariance_real(real):
    name, m, d = real
    toks = list(np.load(d / "logits_1.npz")["tokens"])
    whole = _logits(m, toks)
    m.reset()
    singles = np.stack([m.eval_last([t]) for t in toks])
    m.reset()
    assert np.array_equal(whole, singles), name


def test_greedy_matches_until_a_near_tie(real):
    """Greedy decoding follows llama.cpp's tokens until the first step where our own
    top-1 margin is within the numeric spread (a near-tie either engine may break)."""
    name, m, d = real
    ref = np.load(d / "logits_0.npz")
    m.reset()
    logits = m.eval_last(list(ref["tokens"]))
    matched = 0
    for want in ref["greedy"]:
        top2 = np.partition(logits, -2)[-2:]
        if top2[1] - top2[0] < 1.0:
            break
        got = int(np.argmax(logits))
        assert got == int(want), (name, matched)
        matched += 1
        logits = m.eval_last([got])
    m.reset()
    # the refs' first greedy step is clear on both models (margin > 1 logit)
    assert matched >= 1, (name, matched)


def test_perplexity_first_chunks(real, shared_dir):
    """8 chunks of 512 (the refs' protocol); llama.cpp's per-chunk values for the same
    chunks. Our per-chunk spread from llama.cpp is about 0.7-0.9% (sd), so the 8-chunk
    figure is held to 1%; the 24-chunk figure is in the closing notes."""
    name, m, d = real
    ref = json.loads((d / "perplexity.json").read_text())
    text = (shared_dir / "data" / "wikitext2_test.txt").read_text()
    r = perplexity(m, text, n_ctx=512, n_chunks=8)
    assert r.n_tokens_corpus == ref["n_tokens_corpus"]
    want = float(np.exp(np.mean(np.log(ref["per_chunk_ppl"][:8]))))
    assert abs(r.ppl / want - 1) < 0.01, (name, r.ppl, want)
