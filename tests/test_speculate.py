"""Prompt-lookup speculation: the drafter, and that output never changes."""
import json
import random

import numpy as np
import pytest
from scipy import stats as sstats

from llmlite.genconfig import GenerationConfig
from llmlite.generate import GenStats, drafter_for, generate_tokens
from llmlite.sampling import Sampler, SamplingParams
from llmlite.speculate import DraftLength, Drafter, PromptLookup


# ---- the drafter --------------------------------------------------------------

def test_drafter_longest_suffix_latest_occurrence():
    d = Drafter([1, 2, 3, 4, 9, 2, 3, 5, 7, 1, 2, 3], ngram_max=3)
    # suffix (1,2,3) occurred at the start: propose what followed it
    assert d.draft(3) == [4, 9, 2]
    d.append(6)          # suffix (2,3,6) unseen, (3,6) unseen, (6,) unseen
    assert d.draft(4) == []
    d.extend([2, 3])     # (6,2,3) unseen; the latest earlier (2,3) is at 10..11 -> [6, 2, 3]
    assert d.draft(3) == [6, 2, 3]
    d.append(5)          # (2,3,5) occurred at 5..7 -> [7, 1, 2]
    assert d.draft(3) == [7, 1, 2]


def test_drafter_truncates_at_sequence_end_and_k():
    d = Drafter([5, 6, 5], ngram_max=2)
    assert d.draft(10) == [6, 5]
    assert d.draft(1) == [6]
    assert d.draft(0) == []


def test_draft_length_turns_down_when_rejected():
    s = DraftLength(8)
    s.observe_pass(1, 0.010)
    for n in range(2, 10):
        s.observe_pass(n, 0.010 + 0.004 * (n - 1))   # verifying is not free
    for _ in range(40):
        s.observe_round(8, 0, 3)
    assert s.choose(100, 3) == 0
    for _ in range(60):
        s.observe_round(8, 8, 3)
    assert s.choose(100, 3) >= 4
    assert s.choose(100, 0) == 0          # no match, no draft


# ---- a tiny deterministic "model" with a small vocabulary ------------------------

class MarkovModel:
    """Logits depend on the last two tokens; eval is trivially batch invariant.
    Implements the parts of llmlite.model.Model the decode loop uses."""

    def __init__(self, n_vocab=6, seed=0, n_ctx=512):
        rng = np.random.default_rng(seed)
        self.table = rng.normal(0, 1.5, (n_vocab, n_vocab, n_vocab)).astype(np.float32)
        self.n_vocab, self.n_ctx = n_vocab, n_ctx
        self.tokens, self.last_reused, self.passes = [], 0, 0

    @property
    def n_past(self):
        return len(self.tokens)

    def _row(self, seq):
        a = seq[-2] if len(seq) > 1 else 0
        return self.table[a, seq[-1]].copy()

    def eval(self, ids):
        assert self.n_past + len(ids) <= self.n_ctx     # the loop never asks past the context
        self.passes += 1
        out = []
        for t in ids:
            self.tokens.append(int(t))
            out.append(self._row(self.tokens))
        return np.stack(out)

    def eval_last(self, ids):
        return self.eval(ids)[-1]

    def step(self, tok):
        return self.eval_last([tok])

    def prefill(self, ids):
        self.tokens, self.last_reused = [], 0
        return self.eval_last(ids)

    def truncate(self, n):
        del self.tokens[n:]


PROMPT = [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 5, 1, 2, 3, 4, 1, 2]


def _run(model, params, n, lookup, sampler=None):
    st = GenStats()
    sampler = sampler if sampler is not None else Sampler(params)
    drafter = PromptLookup(draft_max=4, ngram_max=3) if lookup else None
    return list(generate_tokens(model, PROMPT, sampler, n, st, stop_ids=set(), drafter=drafter)), st


@pytest.mark.parametrize("temp", [0.0, 0.7, 1.5])
def test_identical_tokens_with_and_without_lookup(temp):
    m = MarkovModel()
    for seed in range(40):
        p = SamplingParams(temperature=temp, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
        a, _ = _run(m, p, 24, False)
        b, st = _run(m, p, 24, True)
        assert a == b
    assert st.drafted > 0


def test_lookup_saves_passes_when_copying():
    m = MarkovModel()
    m.table[:] = -5.0
    for b in range(6):          # a deterministic cycle 1 -> 2 -> 3 -> 4 -> 1 ..., as in the prompt
        m.table[:, b, b % 4 + 1] = 5.0
    p = SamplingParams(temperature=0.0)
    m.passes = 0
    plain, _ = _run(m, p, 64, False)
    plain_passes = m.passes
    m.passes = 0
    spec, st = _run(m, p, 64, True)
    assert plain == spec
    assert st.accepted > 32 and m.passes < plain_passes / 2


class GuessingDrafter:
    """A drafter that is not prompt lookup: random guesses (end-of-generation ids
    included), recording what the loop tells it."""

    def __init__(self, seed, n_vocab):
        self.rng, self.n_vocab = random.Random(seed), n_vocab
        self.seq, self.rounds = None, []

    def begin(self, prompt_ids):
        self.seq = list(prompt_ids)

    def append(self, tok):
        self.seq.append(tok)

    def propose(self, room):
        return [self.rng.randrange(self.n_vocab) for _ in range(self.rng.randint(0, max(0, min(room, 5))))]

    def observe(self, drafted, accepted, seconds):
        self.rounds.append((drafted, accepted))


@pytest.mark.parametrize("temp", [0.0, 1.0])
def test_any_drafter_gives_plain_decoding(temp):
    """Whatever a drafter guesses, the tokens, their count and the stop reason (a full
    context, an end-of-generation id, max tokens) are plain decoding's, and the drafter
    is told every token in order and every pass."""
    accepted = 0
    for seed in range(60):
        for n_ctx, n, eog in ((24, 40, set()), (512, 30, {5}), (512, 7, set())):
            p = SamplingParams(temperature=temp, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
            st0, st = GenStats(), GenStats()
            plain = list(generate_tokens(MarkovModel(seed=seed % 3, n_ctx=n_ctx), PROMPT, Sampler(p), n, st0,
                                         stop_ids=eog))
            m = MarkovModel(seed=seed % 3, n_ctx=n_ctx)
            d = GuessingDrafter(seed, m.n_vocab)
            got = list(generate_tokens(m, PROMPT, Sampler(p), n, st, stop_ids=eog, drafter=d))
            assert got == plain
            assert (st.generated, st.stop_reason) == (st0.generated, st0.stop_reason)
            assert d.seq == PROMPT + got
            assert sum(k for k, _ in d.rounds) == st.drafted and sum(a for _, a in d.rounds) == st.accepted
            accepted += st.accepted
    assert accepted > 0


def _first3(seed, lookup, wrong=False):
    m = MarkovModel(seed=3)
    p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
    if not wrong:
        toks, _ = _run(m, p, 3, lookup)
        return tuple(toks)
    s = Sampler(p)
    orig = s.sample

    def biased(logits, history=()):
        ids, probs = s.distribution(logits, history)
        # favour the token the prompt had after the current suffix (what a drafter proposes)
        d = Drafter(list(history), 3).draft(1)
        if d and probs[list(ids).index(d[0])] >= 0.2:
            s.draw(probs)  # consume a draw as the real rule would
            return d[0]
        return orig(logits, history)

    s.sample = biased
    toks, _ = _run(m, p, 3, True, sampler=s)
    return tuple(toks)


def _chi2_p(a, b):
    keys = sorted(set(a) | set(b))
    ca = np.array([a.count(k) for k in keys], float)
    cb = np.array([b.count(k) for k in keys], float)
    keep = (ca + cb) >= 10          # pool the rare cells
    table = np.array([np.append(ca[keep], ca[~keep].sum()), np.append(cb[keep], cb[~keep].sum())])
    table = table[:, table.sum(0) > 0]
    return sstats.chi2_contingency(table)[1]


def test_sampling_distribution_unchanged_and_wrong_rule_detected():
    n = 3000
    plain = [_first3(s, False) for s in range(n)]
    spec = [_first3(s, True) for s in range(n, 2 * n)]      # independent seeds
    wrong = [_first3(s, True, wrong=True) for s in range(2 * n, 3 * n)]
    assert _chi2_p(plain, spec) > 0.01
    assert _chi2_p(plain, wrong) < 0.01


# ---- the real model: greedy output byte-identical ---------------------------------

def test_greedy_identical_on_workloads(smollm2_path, shared_dir):
    import llmlite
    from llmlite.chat import prompt_ids, template_for

    m = llmlite.load(smollm2_path, n_ctx=2048)
    tpl = template_for(m)
    wl = [json.loads(line) for line in open(shared_dir / "bench" / "lookup-workloads.jsonl")]
    drafted = 0
    for w in wl[::4]:   # three kinds; benchmarks/lookup_bench.py runs all ten at 256 tokens
        ids = prompt_ids(m, tpl.render([{"role": "user", "content": w["prompt"]}]))
        out = {}
        for lk in (False, True):
            m.reset()
            st = GenStats()
            out[lk] = list(generate_tokens(m, ids, Sampler(SamplingParams(temperature=0.0)), 40, st,
                                           drafter=drafter_for(GenerationConfig(lookup=lk))))
            drafted += st.drafted
        assert out[True] == out[False], w["kind"]
    assert drafted > 0
