"""Sampling (llama.cpp's chain and semantics) and the decode loop's stops: each stage
against a plain numpy reference, seeds, the empirical distribution of draws,
general.sampling.* metadata, stop strings, EOS/EOT ids and max_tokens."""
import numpy as np
import pytest

from llmlite.genconfig import GenerationConfig
from llmlite.generate import GenStats, generate_text, generate_tokens
from llmlite.sampling import Sampler, SamplingParams, top_k_ids

from helpers import llmlite as cli, rewrite_gguf

# every stage off: what a test turns on is the only thing that acts
OFF = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)


def sampler(**kw):
    return Sampler(SamplingParams(**{**OFF, **kw}))


# ---- a plain reference of llama.cpp's chain --------------------------------------------------

def ref_order(logits):
    """All ids, largest logit first, ties by id (a full sort, written the obvious way)."""
    return sorted(range(len(logits)), key=lambda i: (-float(logits[i]), i))


def ref_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def ref_penalize(logits, history, penalty, last_n):
    out = np.asarray(logits, dtype=np.float64).copy()
    if penalty == 1.0 or last_n == 0:
        return out
    window = list(history)[-last_n:] if last_n > 0 else list(history)
    for t in set(window):
        out[t] = out[t] / penalty if out[t] > 0 else out[t] * penalty
    return out


def ref_chain(logits, history=(), temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0,
              repeat_last_n=64):
    """{id: probability} after penalties -> top-k -> top-p -> min-p -> temperature."""
    lg = ref_penalize(logits, history, repeat_penalty, repeat_last_n)
    if temperature <= 0:
        return {int(np.argmax(lg)): 1.0}
    ids = ref_order(lg)
    if 0 < top_k < len(ids):
        ids = ids[:top_k]
    if top_p < 1.0:
        probs = ref_softmax(lg[ids])
        cum, keep = 0.0, len(ids)
        for i, p in enumerate(probs):
            cum += p
            if cum >= top_p:
                keep = i + 1
                break
        ids = ids[:keep]
    if min_p > 0.0:
        probs = ref_softmax(lg[ids])
        ids = [i for i, p in zip(ids, probs) if p >= min_p * probs.max()]
    probs = ref_softmax(lg[ids] / temperature)
    return dict(zip(ids, probs))


def dist(s, logits, history=()):
    ids, probs = s.distribution(np.asarray(logits, dtype=np.float32), history)
    assert abs(probs.sum() - 1.0) < 1e-9
    assert list(probs) == sorted(probs, reverse=True)     # most probable first
    return dict(zip((int(i) for i in ids), probs))


def assert_same_dist(got, want):
    assert list(got) == list(want)                          # same ids, same order
    np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=2e-5, atol=1e-9)


def shuffled_logits(probs, seed=0):
    """Logits whose softmax is probs, placed at shuffled ids; returns (logits, ids by rank)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(probs))
    lg = np.empty(len(probs), np.float32)
    lg[perm] = np.log(np.asarray(probs, dtype=np.float64))
    return lg, [int(i) for i in perm]


P5 = [0.5, 0.2, 0.15, 0.1, 0.05]


# ---- each stage -----------------------------------------------------------------------------

def test_defaults_are_llama_cpp():
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.min_p, p.repeat_penalty, p.repeat_last_n) == \
        (0.8, 40, 0.95, 0.05, 1.0, 64)


def test_top_k():
    lg, rank = shuffled_logits(P5 + [0.0004, 0.0003, 0.0002, 0.0001, 0.00005])
    got = dist(sampler(top_k=3), lg)
    assert list(got) == rank[:3]
    np.testing.assert_allclose(list(got.values()), np.array(P5[:3]) / sum(P5[:3]), rtol=1e-6)
    assert list(dist(sampler(top_k=0), lg)) == rank          # 0: off
    assert list(dist(sampler(top_k=100), lg)) == rank        # more than the vocabulary: off
    # a tie across the cut: the lower id stays
    lg = np.array([1.0, 3.0, 2.0, 2.0, 0.0], np.float32)
    assert list(dist(sampler(top_k=2), lg)) == [1, 2]


@pytest.mark.parametrize("n, k", [(1000, 40), (49152, 40), (262144, 40), (50000, 1), (70000, 3000)])
def test_top_k_ids_match_a_full_sort(n, k):
    rng = np.random.default_rng(n + k)
    for lg in (rng.normal(0, 3, n).astype(np.float32),
               np.round(rng.normal(0, 2, n)).astype(np.float32)):     # many ties, also at the cut
        want = np.lexsort((np.arange(n), -lg))[:k]
        assert top_k_ids(lg, k).tolist() == want.tolist()


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    lg, rank = shuffled_logits(P5, seed=1)
    for p, n_keep in [(0.69, 2), (0.71, 3), (0.01, 1), (0.5 - 1e-6, 1), (0.999, 5), (1.0, 5)]:
        got = dist(sampler(top_p=p), lg)
        assert list(got) == rank[:n_keep], p
        np.testing.assert_allclose(list(got.values()), np.array(P5[:n_keep]) / sum(P5[:n_keep]), rtol=1e-6)
    # reaching p exactly is enough (cum >= p): four equal logits give exact quarters
    assert list(dist(sampler(top_p=0.5), np.zeros(4, np.float32))) == [0, 1]
    assert list(dist(sampler(top_p=0.75), np.zeros(4, np.float32))) == [0, 1, 2]
    # top-p works on the softmax of what top-k kept: with k=2, [0.5, 0.2] renormalises to
    # [0.714, 0.286], so p=0.69 keeps one token (over the whole vocabulary it keeps two)
    assert list(dist(sampler(top_k=2, top_p=0.69), lg)) == rank[:1]
    assert list(dist(sampler(top_p=0.69), lg)) == rank[:2]


def test_min_p_is_relative_to_the_most_probable():
    lg, rank = shuffled_logits(P5, seed=2)
    for m, n_keep in [(0.25, 3), (0.39, 2), (0.41, 1), (0.09, 5), (0.11, 4), (1.0, 1), (0.0, 5)]:
        got = dist(sampler(min_p=m), lg)
        assert list(got) == rank[:n_keep], m
        np.testing.assert_allclose(list(got.values()), np.array(P5[:n_keep]) / sum(P5[:n_keep]), rtol=1e-6)
    # a scale-free rule: shifting every logit changes nothing
    assert list(dist(sampler(min_p=0.25), lg + 7.5)) == rank[:3]


def test_temperature():
    lg, rank = shuffled_logits(P5, seed=3)
    for t in (0.3, 0.8, 1.0, 2.5):
        got = dist(sampler(temperature=t), lg)
        want = ref_softmax(lg[rank] / t)
        assert list(got) == rank
        np.testing.assert_allclose(list(got.values()), want, rtol=1e-6)


def test_temperature_comes_after_the_truncations():
    # at T=1 the prefix reaching p=0.65 is [0.4, 0.3]; sharpened first (T=0.3) it would be one token
    lg, rank = shuffled_logits([0.4, 0.3, 0.2, 0.1], seed=4)
    got = dist(sampler(top_p=0.65, temperature=0.3), lg)
    assert list(got) == rank[:2]
    np.testing.assert_allclose(list(got.values()), ref_softmax(lg[rank[:2]] / 0.3), rtol=1e-6)
    # likewise min-p: at T=1 only 0.3/0.4 >= 0.6; flattened first (T=3) four tokens would pass
    got = dist(sampler(min_p=0.6, temperature=3.0), lg)
    assert list(got) == rank[:2]


def test_repeat_penalty():
    lg = np.array([2.0, 1.9, -1.0, -1.05, 0.5, 0.0], np.float32)
    s = sampler(repeat_penalty=1.1, repeat_last_n=64)
    got = dist(s, lg, history=[0, 2, 5])
    want = ref_softmax(np.array([2.0 / 1.1, 1.9, -1.1, -1.05, 0.5, 0.0]))
    order = ref_order([2.0 / 1.1, 1.9, -1.1, -1.05, 0.5, 0.0])
    assert list(got) == order
    np.testing.assert_allclose(list(got.values()), want[order], rtol=1e-6)
    # greedy sees the penalty: a positive logit is divided, a negative one multiplied
    g = Sampler(SamplingParams(temperature=0, repeat_penalty=1.1))
    assert g.sample(lg, history=[0]) == 1
    assert g.sample(np.array([-1.0, -1.05], np.float32), history=[0]) == 1
    assert g.sample(lg, history=[]) == 0
    # each distinct token once: 2.0/1.1 = 1.82 > 1.7 (three times would be 1.50)
    assert g.sample(np.array([2.0, 1.7], np.float32), history=[0, 0, 0]) == 0
    # the window: only the last repeat_last_n tokens count; -1: all; 0: none
    w = Sampler(SamplingParams(temperature=0, repeat_penalty=1.1, repeat_last_n=2))
    assert w.sample(lg, history=[0, 4, 5]) == 0
    assert w.sample(lg, history=[4, 0, 5]) == 1
    assert Sampler(SamplingParams(temperature=0, repeat_penalty=1.1, repeat_last_n=-1)).sample(
        lg, history=[0] + [4] * 500) == 1
    assert Sampler(SamplingParams(temperature=0, repeat_penalty=1.1, repeat_last_n=0)).sample(
        lg, history=[0]) == 0
    # the caller's logits are not modified
    assert lg[0] == 2.0


def test_presence_and_frequency_penalties():
    """the OpenAI API's additive penalties, after the repeat penalty, over its window:
    logit - count * frequency - presence (llama.cpp's penalty_freq, penalty_present)"""
    lg = np.array([2.0, 1.9, -1.0, 0.5, 0.0], np.float32)
    s = sampler(repeat_penalty=1.1, frequency_penalty=0.3, presence_penalty=0.2, repeat_last_n=64)
    x = [2.0 / 1.1 - 2 * 0.3 - 0.2, 1.9, -1.1 - 0.3 - 0.2, 0.5, 0.0]
    got = dist(s, lg, history=[0, 2, 0])
    assert list(got) == ref_order(x)
    np.testing.assert_allclose(list(got.values()), ref_softmax(np.array(x))[ref_order(x)], rtol=1e-6)
    g = Sampler(SamplingParams(temperature=0, frequency_penalty=0.2))
    assert g.sample(lg, history=[0]) == 1 and g.sample(lg, history=[]) == 0   # greedy sees them too
    assert Sampler(SamplingParams(temperature=0, presence_penalty=-2.0)).sample(lg, history=[3]) == 3
    with pytest.raises(ValueError, match="presence_penalty"):
        GenerationConfig(presence_penalty=2.5)
    assert lg[0] == 2.0


def test_greedy_is_argmax():
    rng = np.random.default_rng(5)
    lg = rng.normal(0, 3, 5000).astype(np.float32)
    for t in (0.0, -1.0):
        s = Sampler(SamplingParams(temperature=t, top_k=1, top_p=0.1, min_p=0.9, seed=1))
        assert s.sample(lg) == int(np.argmax(lg))
        assert list(dist(s, lg)) == [int(np.argmax(lg))]
    lg[[10, 20]] = lg.max() + 1          # a tie: the lower id, as argmax
    assert Sampler(SamplingParams(temperature=0)).sample(lg) == 10
    # greedy does not consume random numbers
    s = Sampler(SamplingParams(temperature=0, seed=3))
    s.sample(lg)
    assert s.rng.random() == np.random.default_rng(3).random()


def test_nan_logits_are_never_drawn():
    lg = np.array([np.nan, 1.0, 2.0, np.nan], np.float32)
    got = dist(sampler(), lg)
    assert got.get(0, 0.0) == 0.0 and got.get(3, 0.0) == 0.0
    s = sampler(seed=9)
    assert {s.sample(lg) for _ in range(300)} == {1, 2}
    assert Sampler(SamplingParams(temperature=0, repeat_penalty=1.1)).sample(lg, [1]) == 2
    assert Sampler(SamplingParams(temperature=0)).sample(lg) == 2


@pytest.mark.parametrize("seed", range(24))
def test_whole_chain_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n = [50, 1000, 49152][seed % 3]
    lg = (rng.normal(0, rng.uniform(0.5, 4), n)).astype(np.float32)
    kw = dict(temperature=float(rng.choice([0.0, 0.3, 0.8, 1.0, 1.7])),
              top_k=int(rng.choice([0, 1, 5, 40, 200])),
              top_p=float(rng.choice([0.5, 0.9, 0.95, 1.0])),
              min_p=float(rng.choice([0.0, 0.01, 0.05, 0.2])),
              repeat_penalty=float(rng.choice([1.0, 1.1, 1.5])),
              repeat_last_n=int(rng.choice([-1, 0, 8, 64])))
    history = rng.integers(0, n, 100).tolist()
    got = dist(Sampler(SamplingParams(**kw)), lg, history)
    assert_same_dist(got, ref_chain(lg, history, **kw))


# ---- draws ----------------------------------------------------------------------------------

CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 6: 22.46, 7: 24.32, 8: 26.12, 9: 27.88}


def chi2(counts, probs, n):
    exp = np.asarray(probs) * n
    return float(((np.asarray(counts) - exp) ** 2 / exp).sum())


def test_draws_follow_the_distribution():
    lg = np.array([2.0, 1.6, 1.5, 1.1, 0.7, 0.3, -0.5, -3.0, 1.8, -6.0], np.float32)
    hist = [8, 8, 3]
    s = Sampler(SamplingParams(temperature=0.7, top_k=8, top_p=0.97, min_p=0.02, repeat_penalty=1.3, seed=1234))
    ids, probs = s.distribution(lg, hist)
    assert 3 <= ids.size <= 8
    n = 20000
    draws = [s.sample(lg, hist) for _ in range(n)]
    assert set(draws) <= set(ids.tolist())
    counts = [draws.count(int(i)) for i in ids]
    stat = chi2(counts, probs, n)
    assert stat < CHI2_999[ids.size - 1], (stat, counts, probs * n)
    # the test has power: the same draws are far from the distribution without temperature
    wrong = dist(sampler(top_k=8, top_p=0.97, min_p=0.02, repeat_penalty=1.3), lg, hist)
    assert list(wrong) == ids.tolist()
    assert chi2(counts, list(wrong.values()), n) > 10 * CHI2_999[ids.size - 1]


def test_same_seed_same_draws():
    lg = np.random.default_rng(0).normal(0, 1, 1000).astype(np.float32)

    def draws(seed):
        s = Sampler(SamplingParams(top_k=0, min_p=0.0, top_p=1.0, temperature=1.0, seed=seed))
        return [s.sample(lg) for _ in range(50)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


# ---- the tiny synthetic model (random weights, SmolLM2's tokenizer) --------------------------

def test_generate_same_seed_same_text(tiny):
    kw = dict(max_tokens=24, temperature=1.5, top_k=0, top_p=1.0, min_p=0.0)
    a = "".join(tiny.generate("Hello world", seed=42, **kw))
    b = "".join(tiny.generate("Hello world", seed=42, **kw))
    c = "".join(tiny.generate("Hello world", seed=43, **kw))
    assert a and a == b
    assert c != a
    g = "".join(tiny.generate("Hello world", max_tokens=24, temperature=0))
    assert g != a      # it did sample


def test_metadata_sampling_overrides_defaults():
    md = {"general.sampling.temp": 0.6, "general.sampling.top_k": np.int32(20), "general.sampling.top_p": 0.9,
          "general.sampling.min_p": 0.0, "general.sampling.penalty_repeat": 1.05,
          "general.sampling.penalty_last_n": -1}
    p = SamplingParams.from_metadata(md)
    assert (p.top_k, p.min_p, p.repeat_last_n) == (20, 0.0, -1)
    assert p.temperature == pytest.approx(0.6) and p.top_p == pytest.approx(0.9)
    assert p.repeat_penalty == pytest.approx(1.05)
    assert isinstance(p.top_k, int)
    # explicit values win; None means "not given"
    p = SamplingParams.from_metadata(md, temperature=0.0, top_k=None, seed=5)
    assert (p.temperature, p.top_k, p.seed) == (0.0, 20, 5)
    # values that are not finite numbers are ignored (the file is untrusted)
    p = SamplingParams.from_metadata({"general.sampling.temp": "hot", "general.sampling.top_k": float("nan"),
                                      "general.sampling.top_p": True})
    assert (p.temperature, p.top_k, p.top_p) == (0.8, 40, 0.95)


def test_gguf_sampling_keys_reach_generate(tiny, tiny_path, tmp_path):
    import llmlite

    greedy = "".join(tiny.generate("Hello world", max_tokens=16, temperature=0))
    sampled = "".join(tiny.generate("Hello world", max_tokens=16, seed=3))
    assert sampled != greedy
    path = rewrite_gguf(tiny_path, tmp_path / "t.gguf", kv={"general.sampling.temp": 0.0, "general.sampling.top_k": 1})
    m = llmlite.load(path, n_ctx=256)
    assert m.metadata["general.sampling.top_k"] == 1
    assert "".join(m.generate("Hello world", max_tokens=16, seed=3)) == greedy          # the file's temp 0
    assert "".join(m.generate("Hello world", max_tokens=16, seed=3, temperature=0.8)) == greedy   # its top-k 1
    assert "".join(m.generate("Hello world", max_tokens=16, seed=3, temperature=0.8, top_k=40)) == sampled
    m.close()
    # the CLI passes only what the user gave
    r = cli("run", path, "--raw", "-p", "Hello world", "-n", "16", "--seed", "3", "--no-lookup")
    assert r.returncode == 0, r.stderr
    assert r.stdout == greedy + ("" if greedy.endswith("\n") else "\n")


# ---- stops: a scripted model gives exact control over tokens and pieces ------------------------

class _Stream:
    def __init__(self, pieces):
        self.pieces = pieces

    def feed(self, tok):
        return self.pieces[tok]

    def flush(self):
        return ""


class _Tok:
    def __init__(self, pieces, eog):
        self.pieces, self.eog_ids = pieces, frozenset(eog)

    def stream(self, special=False, start=True):
        return _Stream(self.pieces)


class Scripted:
    """A model whose greedy continuation is a fixed token script."""

    def __init__(self, pieces, script, eog=(), n_ctx=1000):
        self.tokenizer = _Tok(pieces, eog)
        self.script, self.n_ctx, self.metadata = list(script), n_ctx, {}
        self.tokens, self.last_reused, self.n_vocab = [], 0, len(pieces)
        self.n_prompt = 0

    @property
    def n_past(self):
        return len(self.tokens)

    def _logits(self):
        step = len(self.tokens) - self.n_prompt
        lg = np.zeros(self.n_vocab, np.float32)
        lg[self.script[step] if step < len(self.script) else 0] = 10.0
        return lg

    def prefill(self, ids):
        self.tokens, self.n_prompt = list(ids), len(ids)
        return self._logits()

    def eval_last(self, ids):
        self.tokens += list(ids)
        return self._logits()

    def step(self, tok):
        return self.eval_last([tok])


PIECES = ["Hel", "lo", " wo", "rld", "<", "/st", "op>", " after", "<|eot|>", "<|eos|>", "</stop> tail", "ab</stop>cd",
          "</s", "x"]


def run_text(model, **kw):
    st = GenStats()
    pieces = list(generate_text(model, [0], GenerationConfig(temperature=0, **kw), st))
    return pieces, st


def test_stop_string_across_tokens_never_leaks():
    m = Scripted(PIECES, [0, 1, 2, 3, 4, 5, 6, 7, 7])
    pieces, st = run_text(m, max_tokens=20, stop=["</stop>"])
    assert "".join(pieces) == "Hello world"
    assert st.stop_reason == "stop" and st.generated == 7
    assert not any("<" in p for p in pieces)
    # text that cannot begin the stop string is not held back: it streams at once
    g = generate_text(Scripted(PIECES, [0, 1, 2, 3, 4, 5, 6]), [0],
                      GenerationConfig(max_tokens=20, temperature=0, stop=["</stop>"]))
    assert next(g) == "Hel"
    g.close()


def test_stop_string_inside_one_token_and_at_the_start():
    pieces, st = run_text(Scripted(PIECES, [0, 11, 7]), max_tokens=20, stop=["</stop>"])
    assert "".join(pieces) == "Helab" and st.stop_reason == "stop"
    pieces, st = run_text(Scripted(PIECES, [10, 7]), max_tokens=20, stop=["</stop>"])
    assert pieces == [] and st.stop_reason == "stop"


def test_partial_stop_string_is_released_when_it_does_not_complete():
    # "</s" + "x" begins "</stop>" and then goes elsewhere; "<" at the very end is flushed
    pieces, st = run_text(Scripted(PIECES, [0, 12, 13, 1, 4], eog=[8]), max_tokens=5, stop=["</stop>"])
    assert "".join(pieces) == "Hel</sxlo<" and st.stop_reason == "length"
    # several stop strings: the earliest one wins
    pieces, _ = run_text(Scripted(PIECES, [0, 1, 2, 3, 4, 5, 6]), max_tokens=20, stop=["</stop>", "rld", "xyz"])
    assert "".join(pieces) == "Hello wo"


def test_eos_and_eot_ids_stop_generation():
    for eog in (8, 9):
        m = Scripted(PIECES, [0, 1, eog, 2, 3], eog=[8, 9])
        pieces, st = run_text(m, max_tokens=20)
        assert "".join(pieces) == "Hello" and st.stop_reason == "eos" and st.generated == 2
    m = Scripted(PIECES, [0, 1, 8, 2], eog=[9])       # not an end-of-generation token: just text
    pieces, _ = run_text(m, max_tokens=4)
    assert "".join(pieces) == "Hello<|eot|> wo"
    # generate_tokens' own stop ids
    m = Scripted(PIECES, [0, 1, 2, 3], eog=[8])
    assert list(generate_tokens(m, [0], Sampler(SamplingParams(temperature=0)), 10, stop_ids={2})) == [0, 1]


def test_max_tokens_and_context():
    script = [0, 1, 2, 3, 7, 7, 7, 7, 7, 7]
    for n in (0, 1, 3, 7):
        pieces, st = run_text(Scripted(PIECES, script), max_tokens=n)
        assert st.generated == n and st.stop_reason == "length"
        assert "".join(pieces) == "".join(PIECES[t] for t in script[:n])
    # n_ctx 4: the prompt and 3 tokens fill the cache; the 4th is sampled from the last logits
    pieces, st = run_text(Scripted(PIECES, script, n_ctx=4), max_tokens=100)
    assert st.generated == 4 and st.stop_reason == "context"


def test_stops_on_the_tiny_model(tiny):
    """A stop string made of the ends of two real consecutive pieces; EOS ids; max_tokens."""
    ids = tiny.tokenize("Hello world")
    toks = list(generate_tokens(tiny, ids, Sampler(SamplingParams(temperature=0)), 32, stop_ids=set()))
    assert len(toks) == 32
    dec = tiny.tokenizer.stream(start=False)
    pieces = [dec.feed(t) for t in toks]
    full = "".join(pieces)
    i = next(j for j in range(4, 30) if len(pieces[j].strip()) >= 2 and len(pieces[j + 1].strip()) >= 2)
    stop = pieces[i][-2:] + pieces[i + 1][:2]
    want = full[:full.find(stop)]
    st = GenStats()
    got = list(tiny.generate("Hello world", max_tokens=32, temperature=0, stop=[stop], stats=st))
    assert "".join(got) == want and st.stop_reason == "stop"
    # an EOS id ends generation before it (the model's own list holds the ChatML end of turn)
    assert tiny.tokenizer.token_to_id("<|im_end|>") in tiny.tokenizer.eog_ids
    assert tiny.tokenizer.eos_id in tiny.tokenizer.eog_ids
    cut = list(generate_tokens(tiny, ids, Sampler(SamplingParams(temperature=0)), 32, stop_ids={toks[5]}))
    assert cut == toks[:toks.index(toks[5])]
    st = GenStats()
    assert len("".join(tiny.generate("Hello world", max_tokens=5, temperature=0, stats=st))) > 0
    assert st.generated == 5 and st.stop_reason == "length"


def test_real_models_list_their_end_of_turn_tokens(smollm2_path, gemma3_path):
    from llmlite.tokenizer import Tokenizer

    for path, eot in ((smollm2_path, "<|im_end|>"), (gemma3_path, "<end_of_turn>")):
        tok = Tokenizer.from_file(path)
        assert tok.eos_id in tok.eog_ids
        assert tok.token_to_id(eot) in tok.eog_ids
