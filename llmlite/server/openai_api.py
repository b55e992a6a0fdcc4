"""The OpenAI-compatible endpoints: chat and text completions (streamed as server-sent
events ending in `data: [DONE]`, or one JSON answer), the model list, embeddings.
The shapes are OpenAI's, so its clients (the `openai` package, editors, agents) work
unchanged; `usage` adds llama.cpp-style `timings`."""
from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import AsyncIterator

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmlite import reasoning as rsn
from llmlite.embed import embed, text_ids
from llmlite.generate import GenStats
from llmlite.server.engine import model_names, not_found
from llmlite.server.errors import ApiError, bad_request
from llmlite.server.generation import Calls, Done, Piece, Started, generation
from llmlite.server.requests import GenRequest, parse_chat, parse_completion, read_json
from llmlite.server.streams import gather, until_gone


def usage(prompt_tokens: int, stats: GenStats) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": stats.generated,
            "total_tokens": prompt_tokens + stats.generated,
            "prompt_tokens_details": {"cached_tokens": stats.cached_tokens},
            "timings": {"prompt_n": prompt_tokens - stats.cached_tokens, "prompt_ms": 1000 * stats.prefill_s,
                        "prompt_per_second": stats.prefill_tps, "predicted_n": stats.generated,
                        "predicted_ms": 1000 * stats.decode_s, "predicted_per_second": stats.decode_tps,
                        "draft_n": stats.drafted, "draft_n_accepted": stats.accepted}}


class _Shape:
    """How one endpoint's answers look: chat (messages, deltas) or text completions."""

    def __init__(self, chat: bool, model: str):
        self.chat, self.model = chat, model
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.text_offset = 0

    def _base(self, stream: bool) -> dict:
        obj = ("chat.completion.chunk" if stream else "chat.completion") if self.chat else "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def logprobs(self, entries: list):
        """the choice's logprobs field: chat's {"content": [...]}, or the completions API's columns"""
        if self.chat:
            return {"content": entries}
        offsets = []
        for e in entries:
            offsets.append(self.text_offset)
            self.text_offset += len(e["token"])
        return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
                "top_logprobs": [{a["token"]: a["logprob"] for a in e["top_logprobs"]} for e in entries],
                "text_offset": offsets}

    def chunk(self, piece: Piece | None, finish: str | None, want_logprobs: bool, first: bool = False) -> dict:
        lp = self.logprobs(piece.logprobs) if want_logprobs and piece is not None else None
        if self.chat:
            delta: dict = {"role": "assistant", "content": ""} if first else {}
            if piece is not None:
                delta = {("reasoning_content" if piece.kind == rsn.REASONING else "content"): piece.text}
            choice = {"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": piece.text if piece else "", "logprobs": lp, "finish_reason": finish}
        return {**self._base(True), "choices": [choice]}

    def call_chunks(self, calls: list) -> list:
        """a reply's tool calls as OpenAI streams them: per call, a delta with its id and
        name, then one with its arguments"""
        out = []
        for i, c in enumerate(self.calls(calls)):
            head = {"index": i, "id": c["id"], "type": "function", "function": {"name": c["function"]["name"],
                                                                              "arguments": ""}}
            body = {"index": i, "function": {"arguments": c["function"]["arguments"]}}
            out += [{**self._base(True), "choices": [{"index": 0, "delta": {"tool_calls": [d]}, "logprobs": None,
                                                      "finish_reason": None}]} for d in (head, body)]
        return out

    @staticmethod
    def calls(calls: list) -> list:
        return [{"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments_json()}} for c in calls]

    def whole(self, pieces: list, done: Done, prompt_tokens: int, want_logprobs: bool, calls: list = ()) -> dict:
        answer = "".join(p.text for p in pieces if p.kind == rsn.ANSWER)
        entries = [e for p in pieces for e in p.logprobs]
        lp = self.logprobs(entries) if want_logprobs else None
        if self.chat:
            msg = {"role": "assistant", "content": answer}
            if calls:
                msg = {"role": "assistant", "content": answer or None, "tool_calls": self.calls(calls)}
            thought = "".join(p.text for p in pieces if p.kind == rsn.REASONING)
            if thought:
                msg["reasoning_content"] = thought
            choice = {"index": 0, "message": msg, "logprobs": lp, "finish_reason": done.finish_reason}
        else:
            choice = {"index": 0, "text": answer, "logprobs": lp, "finish_reason": done.finish_reason}
        return {**self._base(False), "choices": [choice], "usage": usage(prompt_tokens, done.stats)}


def _sse(obj) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


async def _complete(request: Request, req: GenRequest, chat: bool) -> Response:
    engine = request.app.state.engine
    events = engine.stream(req.model, generation(req))
    # the prompt checked (an error is still a status here); a client that leaves while
    # its request waits in the queue takes it out
    started = await until_gone(request, anext(events))
    if started is None:
        return Response(status_code=499)
    shape = _Shape(chat, started.model)
    want_lp = req.logprobs is not None
    if req.stream:
        return StreamingResponse(_stream(events, shape, started, req, want_lp), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def collect():
        pieces, done, calls = await gather(events)
        return shape.whole(pieces, done, started.prompt_tokens, want_lp, calls)

    out = await until_gone(request, collect())
    return JSONResponse(out) if out is not None else Response(status_code=499)


async def _stream(events: AsyncIterator, shape: _Shape, started: Started, req: GenRequest, want_lp: bool):
    try:
        if shape.chat:
            yield _sse(shape.chunk(None, None, False, first=True))
        async for ev in events:
            if isinstance(ev, Piece):
                yield _sse(shape.chunk(ev, None, want_lp))
            elif isinstance(ev, Calls):
                for c in shape.call_chunks(ev.calls):
                    yield _sse(c)
            elif isinstance(ev, Done):
                yield _sse(shape.chunk(None, ev.finish_reason, False))
                if req.include_usage:
                    yield _sse({**shape.chunk(None, None, False), "choices": [],
                                "usage": usage(started.prompt_tokens, ev.stats)})
        yield b"data: [DONE]\n\n"
    except ApiError as e:                   # the status is sent already: the error is the last event
        yield _sse(e.body())
    finally:
        await events.aclose()


async def chat_completions(request: Request) -> Response:
    return await _complete(request, parse_chat(await read_json(request)), chat=True)


async def completions(request: Request) -> Response:
    return await _complete(request, parse_completion(await read_json(request)), chat=False)


def _model_card(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "llmlite"}


async def _known() -> list[str]:
    names = await asyncio.get_running_loop().run_in_executor(None, model_names)
    return list(names)


async def list_models(request: Request) -> Response:
    resident = request.app.state.engine.resident.name
    names = [resident] + [n for n in await _known() if n != resident]
    return JSONResponse({"object": "list", "data": [_model_card(n) for n in names]})


async def get_model(request: Request) -> Response:
    name = request.path_params["name"]
    if not request.app.state.engine.resident.answers_to(name) and name not in await _known():
        raise not_found(name)
    return JSONResponse(_model_card(name))


# ---- embeddings ------------------------------------------------------------------------------

def _embed_inputs(body: dict) -> list:
    v = body.get("input")
    if isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool)
                                                                  for t in v)):
        v = [v]
    if not (isinstance(v, list) and v and all(
            isinstance(x, str) or (isinstance(x, list) and x and all(
                isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in x)) for x in v)):
        raise bad_request("input must be a string, a list of strings, or token ids", param="input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise bad_request("encoding_format must be \"float\" or \"base64\"", param="encoding_format")
    return v


def _embedding_work(inputs: list):
    """The engine's work for an embeddings request: one vector per input, then a Done.
    The pooling is llmlite/embed.py's (the GGUF's pooling type, mean by default); a text
    is tokenized as llama.cpp's server does for embeddings (text_ids: the EOS that an
    embedding model's file asks for, which its last-token pooling reads)."""

    def work(res, cancel):
        model = res.model
        yield Started(0, res.name)
        for x in inputs:
            ids = text_ids(model, x) if isinstance(x, str) else list(x)
            if not ids or len(ids) > model.n_ctx or max(ids) >= model.n_vocab:
                raise ApiError(400, f"an input is {len(ids)} tokens (the context is {model.n_ctx}) "
                                    "or holds a token id outside the vocabulary", param="input")
            yield len(ids), np.asarray(embed(model, ids), dtype=np.float32)
    return work


async def embeddings(request: Request) -> Response:
    body = await read_json(request)
    inputs = _embed_inputs(body)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad_request("model must be a string", param="model")
    work = _embedding_work(inputs)
    data, n_tokens, name = [], 0, None
    async for ev in request.app.state.engine.stream(model or None, work):
        if isinstance(ev, Started):
            name = ev.model
            continue
        n, vec = ev
        n_tokens += n
        value = base64.b64encode(vec.tobytes()).decode() if body.get("encoding_format") == "base64" else vec.tolist()
        data.append({"object": "embedding", "index": len(data), "embedding": value})
    return JSONResponse({"object": "list", "data": data, "model": name,
                         "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}})


ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{name:path}", get_model, methods=["GET"]),
]
