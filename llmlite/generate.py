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
                    stop_ids=None):
    """Yield generated token ids. The end-of-generation token itself is not yielded."""
    stats = stats if stats is not None else GenStats()
    sampler = Sampler(params)
    eog = set(stop_ids) if stop_ids is not None else set(model.tokenizer.eog_ids)
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
            if model.n_past >= model.n_ctx:
                stats.stop_reason = "context"
                return
            logits = model.eval_last([tok])
        stats.stop_reason = "length"
    finally:
        stats.decode_s = time.perf_counter() - t1


def generate_text(model, prompt, max_tokens: int = 256, temperature: float | None = None,
                  top_k: int | None = None, top_p: float | None = None, min_p: float | None = None,
                  repeat_penalty: float | None = None, seed: int | None = None, stop=(),
                  add_special: bool = True, parse_special: bool = True, stats: GenStats | None = None,
                  lookup: bool = False, **_ignored):
    """Stream text (str pieces). Stop strings end the text before them."""
    if isinstance(prompt, str):
        ids = model.tokenize(prompt, add_special=add_special, parse_special=parse_special)
    else:
        ids = list(prompt)
    params = SamplingParams.from_metadata(model.metadata, temperature=temperature, top_k=top_k, top_p=top_p,
                                          min_p=min_p, repeat_penalty=repeat_penalty, seed=seed)
    dec = model.tokenizer.stream(start=False)
    stop = [s for s in (stop or ()) if s]
    held = ""
    hold = max((len(s) for s in stop), default=0)
    for tok in generate_tokens(model, ids, params, max_tokens, stats):
        held += dec.feed(tok)
        if stop:
            cut = min((held.find(s) for s in stop if s in held), default=-1)
            if cut >= 0:
                if cut:
                    yield held[:cut]
                if stats is not None:
                    stats.stop_reason = "stop"
                return
            if len(held) > hold:
                yield held[:-hold] if hold else held
                held = held[-hold:] if hold else ""
        elif held:
            yield held
            held = ""
    held += dec.flush()
    if held:
        yield held
