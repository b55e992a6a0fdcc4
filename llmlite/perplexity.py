"""Perplexity as llama.cpp's llama-perplexity computes it.

Tokenize the whole text without BOS, cut it into chunks of n_ctx tokens, replace the
first token of each chunk by BOS when the model adds one, evaluate each chunk from an
empty cache and score positions n_ctx/2 .. n_ctx-2 (the logit at j predicts token j+1)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PerplexityResult:
    ppl: float
    n_ctx: int
    n_chunks: int
    scored_per_chunk: int
    n_tokens_corpus: int
    per_chunk_ppl: list[float] = field(default_factory=list)
    seconds: float = 0.0
    add_bos: bool = False

    def to_dict(self) -> dict:
        return {"ppl": self.ppl, "n_ctx": self.n_ctx, "n_chunks": self.n_chunks,
                "scored_per_chunk": self.scored_per_chunk, "n_tokens_corpus": self.n_tokens_corpus,
                "per_chunk_ppl": self.per_chunk_ppl, "seconds": self.seconds, "add_bos": self.add_bos}


def _nll_rows(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row, in float64."""
    lg = logits.astype(np.float64, copy=False)
    mx = lg.max(axis=1, keepdims=True)
    lse = np.log(np.exp(lg - mx).sum(axis=1)) + mx[:, 0]
    return lse - lg[np.arange(lg.shape[0]), targets]


def perplexity(model, text: str, n_ctx: int = 512, n_chunks: int | None = None, rows_per_eval: int = 64,
               progress=None) -> PerplexityResult:
    t0 = time.perf_counter()
    tokens = np.asarray(model.tokenize(text, add_special=False, parse_special=False), dtype=np.int64)
    if n_ctx > model.n_ctx:
        raise ValueError(f"-c {n_ctx} is larger than the model's context {model.n_ctx} (load with a larger n_ctx)")
    avail = len(tokens) // n_ctx
    if avail == 0:
        raise ValueError(f"the text has {len(tokens)} tokens, fewer than one chunk of {n_ctx}")
    n = avail if n_chunks is None or n_chunks <= 0 else min(n_chunks, avail)
    add_bos = bool(getattr(model.tokenizer, "add_bos", False))
    bos = getattr(model.tokenizer, "bos_id", None)
    first = n_ctx // 2
    nll_sum, count, per_chunk = 0.0, 0, []
    for c in range(n):
        chunk = tokens[c * n_ctx:(c + 1) * n_ctx].copy()
        if add_bos and bos is not None:
            chunk[0] = bos
        model.reset()
        model._run(chunk[:first].tolist(), 0)
        chunk_nll = 0.0
        # positions first .. n_ctx-2 predict tokens first+1 .. n_ctx-1; the last position is
        # evaluated too (it is part of the chunk) but not scored
        for s in range(first, n_ctx, rows_per_eval):
            e = min(s + rows_per_eval, n_ctx)
            logits = model.eval(chunk[s:e].tolist())
            rows = min(e, n_ctx - 1) - s
            if rows > 0:
                chunk_nll += float(_nll_rows(logits[:rows], chunk[s + 1:s + 1 + rows]).sum())
        scored = n_ctx - 1 - first
        per_chunk.append(math.exp(chunk_nll / scored))
        nll_sum += chunk_nll
        count += scored
        if progress:
            progress(c + 1, n, math.exp(nll_sum / count))
    model.reset()
    return PerplexityResult(ppl=math.exp(nll_sum / count), n_ctx=n_ctx, n_chunks=n, scored_per_chunk=n_ctx - 1 - first,
                            n_tokens_corpus=len(tokens), per_chunk_ppl=per_chunk,
                            seconds=time.perf_counter() - t0, add_bos=add_bos)
