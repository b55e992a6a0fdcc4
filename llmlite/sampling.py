"""Sampling: greedy, temperature, top-k, top-p, min-p, repeat penalty, seed.

The chain follows llama.cpp's default order: penalties -> top-k -> top-p ->
min-p -> temperature -> draw. `distribution()` exposes the processed
distribution so speculative verification can sample from exactly the same one."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SamplingParams:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @classmethod
    def from_metadata(cls, md: dict, **overrides) -> "SamplingParams":
        """llama.cpp's defaults, then the GGUF's general.sampling.* values, then explicit overrides."""
        p = cls()
        keys = {"temp": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
                "penalty_repeat": "repeat_penalty", "penalty_last_n": "repeat_last_n"}
        for k, attr in keys.items():
            v = md.get(f"general.sampling.{k}")
            if v is not None:
                setattr(p, attr, type(getattr(p, attr))(v))
        for k, v in overrides.items():
            if v is not None:
                setattr(p, k, v)
        return p


class Sampler:
    def __init__(self, params: SamplingParams):
        self.p = params
        self.rng = np.random.default_rng(params.seed)

    def _penalize(self, logits: np.ndarray, history) -> np.ndarray:
        p = self.p
        if p.repeat_penalty == 1.0 or not history or p.repeat_last_n == 0:
            return logits
        window = history[-p.repeat_last_n:] if p.repeat_last_n > 0 else history
        ids = np.unique(np.asarray(window, dtype=np.int64))
        ids = ids[(ids >= 0) & (ids < logits.size)]
        logits = logits.copy()
        v = logits[ids]
        logits[ids] = np.where(v > 0, v / p.repeat_penalty, v * p.repeat_penalty)
        return logits

    def distribution(self, logits: np.ndarray, history=()) -> tuple[np.ndarray, np.ndarray]:
        """(candidate ids, probabilities) after the whole chain; one id with p=1 when greedy."""
        p = self.p
        logits = self._penalize(np.asarray(logits, dtype=np.float32), history)
        if p.greedy:
            return np.array([int(np.argmax(logits))]), np.array([1.0])
        n = logits.size
        k = p.top_k if 0 < p.top_k < n else n
        if k < n:
            ids = np.argpartition(-logits, k - 1)[:k]
        else:
            ids = np.arange(n)
        # sort descending by logit, ties by id (deterministic)
        order = np.lexsort((ids, -logits[ids]))
        ids = ids[order]
        lg = logits[ids].astype(np.float64)
        probs = np.exp(lg - lg[0])
        probs /= probs.sum()
        if p.top_p < 1.0:
            cum = np.cumsum(probs)
            keep = int(np.searchsorted(cum, p.top_p) + 1)
            ids, lg = ids[:keep], lg[:keep]
            probs = probs[:keep]
        if p.min_p > 0.0 and ids.size > 1:
            keep = probs >= p.min_p * probs[0]
            ids, lg = ids[keep], lg[keep]
        lg = lg / p.temperature
        probs = np.exp(lg - lg.max())
        probs /= probs.sum()
        return ids, probs

    def sample(self, logits: np.ndarray, history=()) -> int:
        if self.p.greedy and (self.p.repeat_penalty == 1.0 or not history):
            return int(np.argmax(logits))
        ids, probs = self.distribution(logits, history)
        if ids.size == 1:
            return int(ids[0])
        return int(ids[self.draw(probs)])

    def draw(self, probs: np.ndarray) -> int:
        u = self.rng.random()
        idx = int(np.searchsorted(np.cumsum(probs), u * probs.sum(), side="right"))
        return min(idx, probs.size - 1)
