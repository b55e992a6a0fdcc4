"""The decode loop: prefill, then tokens one at a time, or several at once when a
drafter proposes what comes next; the stop rules (end-of-generation tokens, max
tokens, a full context, stop strings) and the statistics, once for both.

A drafter guesses the tokens the model will produce next. The loop evaluates
[latest token] + guess in one forward pass, samples each position in order as plain
decoding would, and keeps the guessed tokens while the sampled ones equal them; the
first that differs (or the position after a fully agreeing guess) is the model's own
next token, and the cache forgets the rest of the guess. The forward pass is batch
invariant (csrc/forward.c: a position's logits are the same bits alone or in a batch),
so every row is the logits plain decoding would compute, the sampler's draws are the
same draws in the same order, and the output is identical, token for token. A drafter
is made for one generation and has four methods:

    begin(prompt_ids)        the prompt, once, before the first token
    append(tok)              each token the sequence grows by, in order
    propose(room) -> list    up to `room` tokens to verify after the latest one
                             ([]: none, the loop decodes one token)
    observe(drafted, accepted, seconds)
                             after each forward pass from the first token on: how
                             many tokens it verified (0 for a plain step), how many
                             of them the model agreed with, what the pass cost

llmlite/speculate.py's PromptLookup (n-grams of the text so far) is one; a small
draft model would be another. The loop uses the model's public methods only
(prefill, step, eval, truncate, n_past, n_ctx, last_reused, tokenizer).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields

from llmlite.constrain import compile_constraint
from llmlite.genconfig import GenerationConfig
from llmlite.sampling import Sampler, SamplingParams
from llmlite.speculate import PromptLookup


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


def generate_tokens(model, prompt_ids, sampler: Sampler, max_tokens: int, stats: GenStats | None = None,
                    stop_ids=None, drafter=None):
    """Yield generated token ids; the end-of-generation token itself is not yielded.
    stop_ids: the end-of-generation ids (default: the tokenizer's). drafter: None
    decodes one token per pass; else see the module docstring."""
    stats = stats if stats is not None else GenStats()
    eog = set(stop_ids) if stop_ids is not None else set(model.tokenizer.eog_ids)
    history = list(prompt_ids)
    t0 = time.perf_counter()
    logits = model.prefill(history)
    stats.prompt_tokens = len(history)
    stats.cached_tokens = model.last_reused
    t1 = time.perf_counter()
    stats.prefill_s = t1 - t0
    if drafter is not None:
        drafter.begin(history)
    # the guess being verified: its tokens, the rows of logits of [token before it] +
    # guess, the cache length before that pass, the pass's seconds, and how many guessed
    # tokens the model has agreed with so far (rows[agreed] predicts the next token)
    draft, rows, base, took, agreed = (), None, 0, 0.0, 0
    produced = 0
    # the context bounds the reply too: it holds the prompt and all but the last token (sampled
    # from the logits of a full cache); which of the two ends it is the stop reason
    budget = min(max_tokens, model.n_ctx - len(history) + 1)
    try:
        while produced < budget:
            tok = sampler.sample(logits, history)
            if draft and (agreed == len(draft) or tok != draft[agreed] or tok in eog):
                # the model's own token ends the guess: the cache keeps the agreeing prefix
                model.truncate(base + 1 + agreed)
                drafter.observe(len(draft), agreed, took)
                draft = ()
            if tok in eog:
                stats.stop_reason = "eos"
                return
            history.append(tok)
            produced += 1
            stats.generated += 1
            if draft:                   # a guessed token: the cache holds it and its row is computed
                agreed += 1
                stats.accepted += 1
            if drafter is not None:
                drafter.append(tok)
            yield tok
            if produced >= budget:
                break
            if draft:
                logits = rows[agreed]
                continue
            if drafter is None:
                logits = model.step(tok)
                continue
            draft = drafter.propose(min(budget - produced, model.n_ctx - model.n_past - 1))
            if draft and sampler.constraint is not None:
                # only what the grammar accepts here can agree with the model's (masked)
                # draws: verifying the rest would cost a longer pass for nothing
                draft = draft[:sampler.constraint.accepts(draft)]
            ts = time.perf_counter()
            if not draft:
                logits = model.step(tok)
                drafter.observe(0, 0, time.perf_counter() - ts)
                continue
            base, agreed = model.n_past, 0
            rows = model.eval([tok, *draft])   # row i predicts the token after input i
            took = time.perf_counter() - ts
            stats.drafted += len(draft)
            logits = rows[0]
        if draft:                       # the budget reached inside a guess: as above
            model.truncate(base + 1 + agreed)
            drafter.observe(len(draft), agreed, took)
        stats.stop_reason = "length" if budget == max_tokens else "context"
    finally:
        stats.decode_s = time.perf_counter() - t1


def drafter_for(config: GenerationConfig):
    """The drafter a config asks for; None: plain decoding."""
    return PromptLookup(config.draft_max, config.lookup_ngram) if config.lookup else None


def generate_text(model, prompt, config: GenerationConfig, stats: GenStats | None = None,
                  make_sampler=Sampler, ids_out: list | None = None):
    """Stream text (str pieces) for a prompt (text, or token ids). A stop string ends the
    text before it: no part of it is ever given out (text that may begin one is held
    back until it is known). make_sampler(params): the Sampler, or a subclass that
    watches each draw (the server's records log-probabilities and stops a generation
    whose client went away, between two tokens). ids_out: a list the generated ids are
    appended to."""
    if isinstance(prompt, str):
        ids = model.tokenize(prompt, add_special=config.add_special, parse_special=config.parse_special)
    else:
        ids = list(prompt)
    stats = stats if stats is not None else GenStats()
    # the config's sampling fields are SamplingParams' own, None where not given
    params = SamplingParams.from_metadata(model.metadata,
                                          **{f.name: getattr(config, f.name) for f in fields(SamplingParams)})
    # compiled before the first token: a bad schema or grammar is an error, not a reply
    compiled = compile_constraint(model.tokenizer, json_schema=config.json_schema, grammar=config.grammar,
                                  regex=config.regex)
    sampler = make_sampler(params)
    sampler.constraint = compiled.start() if compiled is not None else None
    dec = model.tokenizer.stream(special=config.show_special, start=False)
    stop = config.stop
    held = ""   # decoded text not yet given out: it may be the start of a stop string
    toks = generate_tokens(model, ids, sampler, config.max_tokens, stats, drafter=drafter_for(config))
    try:
        for tok in toks:
            if ids_out is not None:
                ids_out.append(tok)
            held += dec.feed(tok)
            if not stop:
                if held:
                    yield held
                    held = ""
                continue
            cut = find_stop(held, stop)
            if cut >= 0:
                stats.stop_reason = "stop"
                if cut:
                    yield held[:cut]
                return
            keep = stop_prefix_len(held, stop)
            if len(held) > keep:
                yield held[:len(held) - keep]
                held = held[len(held) - keep:]
    finally:
        toks.close()
    held += dec.flush()
    cut = find_stop(held, stop) if stop else -1
    if cut >= 0:
        held = held[:cut]
        stats.stop_reason = "stop"
    if held:
        yield held


def find_stop(text: str, stops) -> int:
    """Where the first stop string in text begins, or -1."""
    return min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)


def stop_prefix_len(text: str, stops) -> int:
    """The length of the longest end of text that begins a stop string (held back until
    the next piece says whether the stop string completes)."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best
