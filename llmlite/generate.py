"""The decode loop: prefill, step, stop (EOS/EOT, stop strings, max tokens), stream text."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmlite.sampling import Sampler, SamplingParams


@dataclass
class GenStats:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    stop_reason: str = ""
    drafted: int = 0
    accepted: int = 0

    @property
    def prefill_tps(self) -> float:
        n = self.prompt_tokens - self.cached_tokens
        return n / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        return self.generated / self.decode_s if self.decode_s > 0 else 0.0


def generate_tokens(model, prompt_ids, params: SamplingParams, max_tokens: int, stats: GenStats | None = None,
                    stop_ids=None, lookup: bool = False, draft_max: int = 8, lookup_ngram: int = 3):
    """Yield generated token ids. The end-of-generation token itself is not yielded.
    lookup=True verifies prompt-lookup drafts in batches (llmlite/speculate.py); the
    tokens are the same as without it."""
    stats = stats if stats is not None else GenStats()
    sampler = Sampler(params)
    eog = set(stop_ids) if stop_ids is not None else set(model.tokenizer.eog_ids)
    if lookup and draft_max > 0:
        from llmlite.speculate import speculative_tokens

        yield from speculative_tokens(model, prompt_ids, sampler, max_tokens, eog, stats,
                                      ngram_max=lookup_ngram, draft_max=draft_max)
        return
    history = list(prompt_ids)
    t0 = time.perf_counter()
    logits = model.prefill(prompt_ids)
    stats.prompt_tokens = len(prompt_ids)
    stats.cached_tokens = model.last_reused
    t1 = time.perf_counter()
    stats.prefill_s = t1 - t0
    try:
        for _ in range(max_tokens):
            tok = sampler.sample(logits, history)
            if tok in eog:
                stats.stop_reason = "eos"
                return
            history.append(tok)
            stats.generated += 1
            yield tok
            if stats.generated >= max_tokens:
                break
            if model.n_past >= model.n_ctx:
                stats.stop_reason = "context"
                return
            logits = model.step(tok)
        stats.stop_reason = "length"
    finally:
        stats.decode_s = time.perf_counter() - t1


def generate_text(model, prompt, max_tokens: int = 256, temperature: float | None = None,
                  top_k: int | None = None, top_p: float | None = None, min_p: float | None = None,
                  repeat_penalty: float | None = None, seed: int | None = None, stop=(),
                  add_special: bool = True, parse_special: bool = True, stats: GenStats | None = None,
                  lookup: bool = False, draft_max: int = 8, lookup_ngram: int = 3, **_ignored):
    """Stream text (str pieces). A stop string ends the text before it: no part of it
    is ever given out (text that may begin one is held back until it is known)."""
    if isinstance(prompt, str):
        ids = model.tokenize(prompt, add_special=add_special, parse_special=parse_special)
    else:
        ids = list(prompt)
    params = SamplingParams.from_metadata(model.metadata, temperature=temperature, top_k=top_k, top_p=top_p,
                                          min_p=min_p, repeat_penalty=repeat_penalty, seed=seed)
    dec = model.tokenizer.stream(start=False)
    stop = [s for s in (stop or ()) if s]
    held = ""   # decoded text not yet given out: it may be the start of a stop string
    toks = generate_tokens(model, ids, params, max_tokens, stats, lookup=lookup, draft_max=draft_max,
                           lookup_ngram=lookup_ngram)
    try:
        for tok in toks:
            held += dec.feed(tok)
            if not stop:
                if held:
                    yield held
                    held = ""
                continue
            cut = _find_stop(held, stop)
            if cut >= 0:
                if stats is not None:
                    stats.stop_reason = "stop"
                if cut:
                    yield held[:cut]
                return
            keep = _stop_prefix_len(held, stop)
            if len(held) > keep:
                yield held[:len(held) - keep]
                held = held[len(held) - keep:]
    finally:
        toks.close()
    held += dec.flush()
    cut = _find_stop(held, stop) if stop else -1
    if cut >= 0:
        held = held[:cut]
        if stats is not None:
            stats.stop_reason = "stop"
    if held:
        yield held


def _find_stop(text: str, stops) -> int:
    """Where the first stop string in text begins, or -1."""
    return min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)


def _stop_prefix_len(text: str, stops) -> int:
    """The length of the longest end of text that begins a stop string (held back until
    the next piece says whether the stop string completes)."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best
