"""A GenRequest run on the resident model, in the engine's worker: the prompt built as
`llmlite run` builds it (the chat template rendered over the whole conversation, or
the text continued raw), checked against the context, and generated with the same
decode loop, prompt-lookup speculation on (the output does not change: generate.py),
so a greedy request gives `llmlite run --temp 0`'s text.

What the worker yields, in order: Started (the prompt fits: the HTTP side may answer
200), then Piece after Piece, then Done. Any API (OpenAI's, Ollama's) shapes these.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from llmlite import reasoning as rsn
from llmlite.chat import prompt_ids
from llmlite.genconfig import GenerationConfig
from llmlite.generate import GenStats, generate_text
from llmlite.sampling import Sampler
from llmlite.server.engine import Cancelled, Resident
from llmlite.server.errors import ApiError
from llmlite.server.requests import GenRequest
from llmlite.tools import ToolError

# the stop reasons of generate.py -> OpenAI's finish_reason
FINISH = {"eos": "stop", "stop": "stop", "length": "length", "context": "length"}


@dataclass
class Started:
    prompt_tokens: int
    model: str                      # the name of the model that answers


@dataclass
class Piece:
    kind: str                       # rsn.ANSWER or rsn.REASONING
    text: str
    logprobs: list = field(default_factory=list)   # token_logprob() of the tokens in it (when asked)


@dataclass
class Calls:
    calls: list                     # llmlite/tools.py Calls the reply made, in order


@dataclass
class Done:
    stats: GenStats
    finish_reason: str


class Tap(Sampler):
    """The server's sampler: the same draws, and, before each, the check that the
    client is still there (a Cancelled ends the generation between two tokens); with
    `top` set, each sampled token's log-probability and the `top` most likely ones."""

    def __init__(self, params, cancel: threading.Event, top: Optional[int], model):
        super().__init__(params)
        self.cancel, self.top, self.model = cancel, top, model
        self.eog = set(model.tokenizer.eog_ids)
        self.records: list = []

    def sample(self, logits, history=()) -> int:
        if self.cancel.is_set():
            raise Cancelled
        tok = super().sample(logits, history)
        if self.top is not None and tok not in self.eog:
            self.records.append(token_logprob(self.model, logits, tok, self.top))
        return tok

    def take(self) -> list:
        out, self.records = self.records, []
        return out


def token_logprob(model, logits, tok: int, top: int) -> dict:
    """OpenAI's logprob entry for a sampled token: the model's log-softmax (before the
    sampling chain, as OpenAI reports it), with the `top` most likely tokens."""
    x = np.asarray(logits, dtype=np.float64).ravel()
    lse = x.max() + np.log(np.exp(x - x.max()).sum())
    alts = []
    if top > 0:
        best = np.argpartition(-x, top - 1)[:top]
        best = best[np.lexsort((best, -x[best]))]
        alts = [_entry(model, int(t), float(x[t] - lse)) for t in best]
    return {**_entry(model, tok, float(x[tok] - lse)), "top_logprobs": alts}


def _entry(model, tok: int, lp: float) -> dict:
    b = model.detokenize([tok])
    return {"token": b.decode("utf-8", "replace"), "logprob": lp, "bytes": list(b)}


def check_fits(n_prompt: int, max_tokens: Optional[int], n_ctx: int) -> None:
    """400 when the prompt, or the prompt and max_tokens, do not fit the context: never
    a silent cut of either"""
    if n_prompt >= n_ctx:
        raise ApiError(400, f"the prompt is {n_prompt} tokens and the context is {n_ctx}: "
                            "shorten the prompt, or start the server with a larger -c",
                       param="messages", code="context_length_exceeded")
    if max_tokens is not None and n_prompt + max_tokens > n_ctx:
        raise ApiError(400, f"the prompt ({n_prompt} tokens) plus max_tokens ({max_tokens}) is "
                            f"{n_prompt + max_tokens} tokens, more than the context of {n_ctx}: "
                            "ask for fewer tokens, or start the server with a larger -c",
                       param="max_tokens", code="context_length_exceeded")


def _prompt(res: Resident, req: GenRequest) -> tuple[list, str]:
    """(token ids, rendered text) for the request, as `llmlite run` makes them"""
    model = res.model
    if req.messages is not None:
        if res.template is None:
            raise ApiError(400, f"{res.name} has no chat template (a base model): use /v1/completions",
                           param="messages", code="no_chat_template")
        if req.tools is not None:
            text = req.tools.render(res.template, req.messages, res.tool_format)
        else:
            text = res.template.render(req.messages, add_generation_prompt=True)
        return prompt_ids(model, text), text
    if isinstance(req.prompt, str):
        return prompt_ids(model, req.prompt), req.prompt
    bad = [t for t in req.prompt if t >= model.n_vocab]
    if bad:
        raise ApiError(400, f"prompt: token id {bad[0]} is not in the vocabulary of {model.n_vocab}", param="prompt")
    return list(req.prompt), ""


def generation(req: GenRequest):
    """The engine's work for a request: (resident, cancel) -> Started, Piece..., Done."""

    def work(res: Resident, cancel: threading.Event) -> Iterator:
        model = res.model
        ids, text = _prompt(res, req)
        if not ids:
            raise ApiError(400, "the prompt is empty: nothing to continue", param="prompt")
        check_fits(len(ids), req.max_tokens, model.n_ctx)
        n = req.max_tokens if req.max_tokens is not None else model.n_ctx - len(ids) + 1
        # models.toml's sampling for the model, then the request's fields, as `run` does
        opts = {**res.defaults, **req.options}
        tools, calls, stop = req.tools, [], opts.get("stop", ())
        if tools is not None:
            try:
                tools.check(res.tool_format, model.tokenizer)     # a 400 now, not an error mid-stream
            except ToolError as e:
                raise ApiError(400, str(e), param=e.param, code="invalid_tools") from None
            opts.update(tools.options(res.tool_format, model.tokenizer))
        config = GenerationConfig.from_options(**opts, max_tokens=n, lookup=True)
        stats, taps = GenStats(), []

        def make_sampler(params):
            taps.append(Tap(params, cancel, req.logprobs, model))
            return taps[-1]

        yield Started(len(ids), res.name)
        splitter = rsn.splitter_for(res.reasoning, text) if req.messages is not None else None
        pieces = generate_text(model, ids, config, stats, make_sampler)
        if tools is not None:
            pieces = tools.content(res.tool_format, pieces, calls, stop, stats)
        for kind, piece in rsn.split(pieces, splitter):
            yield Piece(kind, piece, taps[0].take())
        if calls:
            yield Calls(calls)
        yield Done(stats, "tool_calls" if calls else FINISH.get(stats.stop_reason, "stop"))

    return work
