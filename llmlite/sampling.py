"""Sampling: greedy, temperature, top-k, top-p, min-p, repeat penalty, seed.

The chain follows llama.cpp's default order: penalties -> top-k -> top-p ->
min-p -> temperature -> draw, with llama.cpp's semantics:

- repeat penalty: each distinct token of the last ``repeat_last_n`` tokens (prompt
  included; -1: all of them, 0: none) has its logit divided by the penalty when it
  is positive, multiplied by it otherwise; then, over the same window, the OpenAI
  API's additive penalties: frequency_penalty times the token's count plus
  presence_penalty once (llama.cpp's penalty_freq and penalty_present);
- top-k: the k largest logits (k <= 0 or k >= vocabulary: no-op);
- top-p: the softmax of what top-k kept, then the smallest prefix (most probable
  first) whose cumulative probability reaches p, at least one token (p >= 1: no-op);
- min-p: the tokens whose probability is at least min_p times the largest one
  (min_p <= 0: no-op);
- temperature: logits / T, then the softmax the draw uses; T <= 0 is greedy (argmax
  after the penalties).

Ties are ordered by token id, so a distribution is a deterministic function of
the logits. ``distribution()`` exposes the processed distribution so speculative
verification can sample from exactly the same one. Only the candidates that can
survive are sorted (a full sort of a 262k vocabulary costs tens of milliseconds)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_BLOCK = 64   # top-k pre-selection: block maxima bound the k-th largest logit from below

# GGUF's general.sampling.<key> metadata -> SamplingParams field (GGUF's own spelling;
# the names people write are llmlite/genconfig.py's SAMPLING_KEYS)
GGUF_SAMPLING_KEYS = {"temp": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
                      "penalty_repeat": "repeat_penalty", "penalty_last_n": "repeat_last_n"}


def check_sampling(temperature=None, top_k=None, top_p=None, min_p=None, repeat_penalty=None,
                   presence_penalty=None, frequency_penalty=None) -> None:
    """ValueError naming the command-line option of the first value out of range (None: not given)"""
    if temperature is not None and not temperature >= 0:
        raise ValueError(f"--temp must be >= 0 (got {temperature})")
    if top_k is not None and top_k < 0:
        raise ValueError(f"--top-k must be >= 0 (got {top_k})")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1] (got {top_p})")
    if min_p is not None and not 0 <= min_p <= 1:
        raise ValueError(f"--min-p must be in [0, 1] (got {min_p})")
    if repeat_penalty is not None and not repeat_penalty > 0:
        raise ValueError(f"--repeat-penalty must be > 0 (got {repeat_penalty})")
    for name, v in (("presence_penalty", presence_penalty), ("frequency_penalty", frequency_penalty)):
        if v is not None and not -2 <= v <= 2:
            raise ValueError(f"{name} must be in [-2, 2] (got {v})")


@dataclass
class SamplingParams:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @property
    def penalized(self) -> bool:
        return self.repeat_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    @classmethod
    def from_metadata(cls, md: dict, **overrides) -> "SamplingParams":
        """llama.cpp's defaults, then the GGUF's general.sampling.* values, then explicit
        overrides (None: not given). A metadata value that is not a finite number is ignored."""
        p = cls()
        for k, attr in GGUF_SAMPLING_KEYS.items():
            v = (md or {}).get(f"general.sampling.{k}")
            if isinstance(v, np.ndarray) and v.size == 1:
                v = v.reshape(()).item()
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                continue
            if not math.isfinite(float(v)):
                continue
            setattr(p, attr, type(getattr(p, attr))(v))
        for k, v in overrides.items():
            if v is not None:
                setattr(p, k, v)
        return p


def _sorted_ids(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """ids ordered by logit, largest first, ties by id."""
    return ids[np.lexsort((ids, -logits[ids]))]


def top_k_ids(logits: np.ndarray, k: int) -> np.ndarray:
    """The ids of the k largest logits, largest first, ties by id (exactly what sorting
    the whole vocabulary and taking k gives, without sorting it)."""
    n = logits.size
    if k <= 0 or k >= n:
        return _sorted_ids(logits, np.arange(n))
    nb = n // _BLOCK
    if nb >= 4 * k:
        # the k-th largest of nb group maxima (group j: elements j, j+nb, j+2nb...): k
        # groups hold a value >= it, so the k-th largest logit is >= it too, and every
        # logit of the top k passes the test
        m = logits[: nb * _BLOCK].reshape(_BLOCK, nb).max(axis=0)
        if nb * _BLOCK < n:
            m = np.append(m, logits[nb * _BLOCK:].max())
        thr = np.partition(m, m.size - k)[m.size - k]
    else:
        thr = np.partition(logits, n - k)[n - k]
    cand = np.flatnonzero(logits >= thr)
    return _sorted_ids(logits, cand)[:k]


class Sampler:
    def __init__(self, params: SamplingParams):
        self.p = params
        self.rng = np.random.default_rng(params.seed)

    def _penalize(self, logits: np.ndarray, history) -> np.ndarray:
        p = self.p
        if not p.penalized or history is None or len(history) == 0 or p.repeat_last_n == 0:
            return logits
        window = history[-p.repeat_last_n:] if p.repeat_last_n > 0 else history
        ids, counts = np.unique(np.asarray(window, dtype=np.int64), return_counts=True)
        ok = (ids >= 0) & (ids < logits.size)
        ids, counts = ids[ok], counts[ok]
        logits = logits.copy()
        if p.repeat_penalty != 1.0:
            v = logits[ids]
            logits[ids] = np.where(v > 0, v / p.repeat_penalty, v * p.repeat_penalty)
        if p.presence_penalty != 0.0 or p.frequency_penalty != 0.0:
            logits[ids] -= (counts * p.frequency_penalty + p.presence_penalty).astype(np.float32)
        return logits

    def distribution(self, logits: np.ndarray, history=()) -> tuple[np.ndarray, np.ndarray]:
        """(candidate ids, probabilities) after the whole chain, most probable first;
        one id with p=1 when greedy."""
        p = self.p
        logits = np.asarray(logits, dtype=np.float32).ravel()
        if np.isnan(logits.max()):
            logits = np.where(np.isnan(logits), np.float32(-np.inf), logits)
        logits = self._penalize(logits, history)
        if p.greedy:
            return np.array([int(np.argmax(logits))]), np.array([1.0])
        n = logits.size
        min_p = p.min_p if p.min_p > 0.0 else 0.0
        if 0 < p.top_k < n:
            ids = top_k_ids(logits, p.top_k)
            lg = logits[ids].astype(np.float64)
            e = np.exp(lg - lg[0])
            probs = e / e.sum()             # top-p works on the softmax of what top-k kept
        else:
            # no top-k: top-p's softmax is over the whole vocabulary. Top-p and min-p both
            # keep a most-probable prefix, so only min-p's survivors need sorting.
            mx = logits.max()
            e_all = np.exp(logits - mx)
            z = e_all.sum(dtype=np.float64)
            pool = np.flatnonzero(e_all >= min_p) if min_p > 0.0 else np.arange(n)
            ids = _sorted_ids(logits, pool)
            lg = logits[ids].astype(np.float64)
            e = e_all[ids].astype(np.float64)
            probs = e / z
        if p.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), p.top_p)) + 1
            ids, lg, e = ids[:keep], lg[:keep], e[:keep]
        if min_p > 0.0:
            keep = e >= min_p * e[0]
            keep[0] = True
            ids, lg = ids[keep], lg[keep]
        lg = lg / p.temperature
        probs = np.exp(lg - lg.max())
        probs /= probs.sum()
        return ids, probs

    def sample(self, logits: np.ndarray, history=()) -> int:
        if self.p.greedy and (not self.p.penalized or history is None or len(history) == 0):
            i = int(np.argmax(logits))
            if not np.isnan(logits[i]):      # argmax finds a NaN first if there is one
                return i
        ids, probs = self.distribution(logits, history)
        if ids.size == 1:
            return int(ids[0])
        return int(ids[self.draw(probs)])

    def draw(self, probs: np.ndarray) -> int:
        u = self.rng.random()
        idx = int(np.searchsorted(np.cumsum(probs), u * probs.sum(), side="right"))
        return min(idx, probs.size - 1)
