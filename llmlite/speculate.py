"""Prompt-lookup speculative decoding: a drafter for the decode loop (llmlite/generate.py).

The drafter finds the longest suffix n-gram (n = ngram_max .. 1) of the sequence in
what came before (the prompt and the generated text) and proposes the tokens that
followed its latest earlier occurrence, as many as DraftLength expects to pay for
their verify pass. The loop verifies them (greedy accepts the prefix equal to the
model's own argmax; sampling draws from the model's processed distribution at each
drafted position, in order, and accepts while the draw equals the draft), so the
output is the one plain decoding gives, token for token.
"""
from __future__ import annotations

from collections import defaultdict


class Drafter:
    """An index from n-grams (n = 1..ngram_max) to the positions just after them,
    updated as tokens arrive (no rescan of the sequence per step)."""

    def __init__(self, tokens, ngram_max: int):
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

    def __init__(self, k_max: int):
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


class PromptLookup:
    """The drafter interface of llmlite/generate.py over a Drafter (what to propose)
    and a DraftLength (how much of it). The defaults of draft_max and ngram_max are
    GenerationConfig's."""

    def __init__(self, draft_max: int, ngram_max: int):
        self.draft_max, self.ngram_max = draft_max, ngram_max
        self.n_match = 0            # the suffix length the last proposal was found by

    def begin(self, prompt_ids) -> None:
        self.index = Drafter(prompt_ids, self.ngram_max)
        self.sizer = DraftLength(self.draft_max)

    def append(self, tok: int) -> None:
        self.index.append(tok)

    def propose(self, room: int) -> list[int]:
        draft, self.n_match = self.index.match(min(self.sizer.k_max, room))
        k = self.sizer.choose(min(len(draft), room), self.n_match) if draft else 0
        return draft[:k]

    def observe(self, drafted: int, accepted: int, seconds: float) -> None:
        self.sizer.observe_pass(drafted + 1, seconds)
        self.sizer.observe_round(drafted, accepted, self.n_match)
