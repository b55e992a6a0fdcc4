"""Prompt-lookup speculative decoding.

The drafter finds the longest suffix n-gram (n = ngram_max .. 1) of the sequence in
what came before (the prompt and the generated text) and proposes the tokens that
followed its latest earlier occurrence. One forward pass over [last token] + draft
verifies it: greedy accepts the prefix equal to the model's own argmax; sampling draws
from the model's processed distribution at each drafted position, in order, and
accepts while the draw equals the draft. The first mismatch (or the position after a
fully accepted draft) emits the model's own token. The forward pass is batch
invariant (DESIGN.md principle 3), so the logits of every verified position are the
ones plain decoding would compute: the output is identical, token for token, and with
a seed the random draws are the same draws in the same order.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict

import numpy as np


class Drafter:
    """An index from n-grams (n = 1..ngram_max) to the positions just after them,
    updated as tokens arrive (no rescan of the sequence per step)."""

    def __init__(self, tokens=(), ngram_max: int = 3):
        self.n = max(1, int(ngram_max))
        self.seq: list[int] = []
        self.index: list[dict] = [defaultdict(list) for _ in range(self.n + 1)]
        self.extend(tokens)

    def append(self, tok: int) -> None:
        self.seq.append(int(tok))
        end = len(self.seq)
        for n in range(1, self.n + 1):
            if end >= n:
                self.index[n][tuple(self.seq[end - n:end])].append(end)

    def extend(self, toks) -> None:
        for t in toks:
            self.append(t)

    def draft(self, k: int) -> list[int]:
        """Up to k tokens that followed the latest earlier occurrence of the longest
        matching suffix; [] when nothing matches."""
        return self.match(k)[0]

    def match(self, k: int) -> tuple[list[int], int]:
        """(draft, n): the draft and the length of the suffix n-gram it was found by
        (0 when nothing matches)."""
        if k <= 0:
            return [], 0
        end = len(self.seq)
        for n in range(min(self.n, end), 0, -1):
            hits = self.index[n].get(tuple(self.seq[end - n:end]))
            if not hits:
                continue
            # the latest occurrence that is not the suffix itself and has a follower
            for p in reversed(hits):
                if p < end:
                    return self.seq[p:p + k], n
        return [], 0


class DraftLength:
    """Chooses the draft length from the running acceptance rate and the measured
    cost of verifying n tokens in one pass relative to decoding one."""

    # prior per-token acceptance by the length of the matched n-gram: a long match
    # predicts well, a single repeated token much less
    PRIOR = {1: 0.3, 2: 0.45, 3: 0.6}

    def __init__(self, k_max: int = 8):
        self.k_max = max(0, int(k_max))
        self.accept = dict(self.PRIOR)      # match length -> acceptance estimate (EMA)
        self.cost: dict[int, float] = {}    # batch size -> seconds per pass (EMA)

    def observe_pass(self, n: int, seconds: float) -> None:
        old = self.cost.get(n)
        self.cost[n] = seconds if old is None else 0.8 * old + 0.2 * seconds

    def observe_round(self, drafted: int, accepted: int, n: int = 3) -> None:
        if drafted <= 0:
            return
        # an estimate of the per-position acceptance probability from this round
        rate = accepted / drafted if accepted < drafted else 1.0
        a = self.accept.get(n, self.PRIOR.get(n, 0.6))
        self.accept[n] = 0.85 * a + 0.15 * rate

    def _cost(self, n: int) -> float:
        """Seconds for a pass over n tokens: measured, or scaled from the nearest
        measured size with a mild slope (only relative costs matter)."""
        if n in self.cost:
            return self.cost[n]
        slope = lambda x: 1.0 + 0.08 * (x - 1)
        if not self.cost:
            return slope(n)
        m = min(self.cost, key=lambda x: (abs(x - n), x))
        return self.cost[m] * slope(n) / slope(m)

    def choose(self, available: int, n: int = 3) -> int:
        """Draft length for a draft found by an n-gram match; 0: do not speculate."""
        k_cap = min(self.k_max, available)
        if k_cap <= 0 or n <= 0:
            return 0
        a = min(max(self.accept.get(n, self.PRIOR.get(n, 0.6)), 0.0), 0.999)
        c1 = self._cost(1)
        best_k, best_rate = 0, 1.0 / c1
        for k in range(1, k_cap + 1):
            expected = (1.0 - a ** (k + 1)) / (1.0 - a)   # tokens emitted per verify pass
            rate = expected / self._cost(k + 1)
            # a longer draft must promise 5% more tokens per second: the estimates
            # are noisy, and a wrong guess costs most where acceptance is low
            # (open-ended prompts: 1.02 gave 0.97x there, 1.05 gives >= 1.01x)
            if rate > best_rate * 1.05:
                best_k, best_rate = k, rate
        return best_k


def speculative_tokens(model, prompt_ids, sampler, max_tokens: int, eog, stats, ngram_max: int = 3,
                       draft_max: int = 8):
    """Yield generated token ids exactly as plain decoding would, verifying drafts in
    batches. The end-of-generation token is not yielded."""
    history = list(prompt_ids)
    drafter = Drafter(history, ngram_max)
    sizer = DraftLength(draft_max)
    t0 = time.perf_counter()
    logits = model.prefill(prompt_ids)
    stats.prompt_tokens = len(prompt_ids)
    stats.cached_tokens = model.last_reused
    t1 = time.perf_counter()
    stats.prefill_s = t1 - t0
    decided = None          # a token already drawn in a verify round (its mismatch)
    produced = 0
    try:
        while produced < max_tokens:
            tok = decided if decided is not None else sampler.sample(logits, history)
            decided = None
            if tok in eog:
                stats.stop_reason = "eos"
                return
            history.append(tok)
            drafter.append(tok)
            produced += 1
            stats.generated += 1
            yield tok
            if produced >= max_tokens:
                break
            if model.n_past >= model.n_ctx:
                stats.stop_reason = "context"
                return
            avail = min(max_tokens - produced, model.n_ctx - model.n_past - 1)
            draft, n_match = drafter.match(min(sizer.k_max, avail))
            k = sizer.choose(min(len(draft), avail), n_match) if draft else 0
            draft = draft[:k]
            ts = time.perf_counter()
            if not draft:
                logits = model.step(tok)
                sizer.observe_pass(1, time.perf_counter() - ts)
                continue
            base = model.n_past
            rows = model.eval([tok] + draft)          # row i predicts the token after input i
            sizer.observe_pass(len(draft) + 1, time.perf_counter() - ts)
            stats.drafted += len(draft)
            accepted, stop = 0, None
            for i, d in enumerate(draft):
                t = sampler.sample(rows[i], history)
                if t != d:
                    decided = t                        # the model's own token: emitted next
                    break
                if t in eog:
                    stop = "eos"
                    break
                history.append(t)
                drafter.append(t)
                accepted += 1
                produced += 1
                stats.generated += 1
                yield t
                if produced >= max_tokens:
                    stop = "length"
                    break
            else:
                logits = rows[len(draft)]              # all accepted: the bonus row
            stats.accepted += accepted
            sizer.observe_round(len(draft), accepted, n_match)
            model.truncate(base + 1 + accepted)        # roll back the rejected positions
            if stop:
                stats.stop_reason = stop
                return
        stats.stop_reason = "length"
    finally:
        stats.decode_s = time.perf_counter() - t1
