"""The Ollama-compatible endpoints, for the editors, agents and chat UIs that speak
Ollama's API: /api/chat and /api/generate (streamed as NDJSON, one JSON object a line,
unless "stream": false), /api/tags, /api/show, /api/ps, /api/version, /api/embed (and
the older /api/embeddings). Errors are Ollama's {"error": "..."}.

Over the same engine, request checks and generation as the OpenAI API, so a greedy
answer is the same text by either API: /api/chat is /v1/chat/completions, /api/generate
the chat template over [system, prompt] (what Ollama's templates do with them), or the
prompt as is with "raw": true or on a model without a chat template (Ollama's default
template, "{{ .Prompt }}"), which is /v1/completions.

What differs from Ollama, on purpose: a field not given takes the model's sampling
defaults (models.toml, the GGUF's, llama.cpp's), as in `run` and the OpenAI API, not
Ollama's (its repeat_penalty 1.1 would change every greedy answer); options.num_ctx is
ignored (the context is the server's -c, fixed at load); keep_alive is accepted and
ignored (the one model stays resident until another is asked for).
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable, Optional

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmlite import reasoning as rsn
from llmlite.server import ollama_models as om
from llmlite.server.engine import model_names, not_found
from llmlite.server.errors import ApiError, bad_request
from llmlite.server.generation import Calls, Done, Piece, Started, generation
from llmlite.server.openai_api import _embed_inputs, _embedding_work
from llmlite.server.requests import GenRequest, boolean, integer, messages, read_json, sampling, text, tool_set
from llmlite.server.streams import gather, until_gone

PREFIX = "/api/"
NDJSON = "application/x-ndjson"


def error_response(err: ApiError) -> JSONResponse:
    """Ollama's error body, {"error": "message"}, with the status and headers (Retry-After)"""
    return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)


# ---- requests ----------------------------------------------------------------------------------

def _model(body: dict) -> Optional[str]:
    """the model named ("model", or the older "name"); Ollama's default tag is no part of a name"""
    name = text(body, "model") or text(body, "name")
    return name.removesuffix(":latest") if name else None


def _options(body: dict) -> tuple[dict, Optional[int]]:
    """(the sampling options, the token budget) from Ollama's `options`; options llmlite has
    no use for (num_gpu, num_thread, ...) are ignored, as Ollama ignores unknown ones"""
    o = body.get("options")
    if o is None:
        return {}, None
    if not isinstance(o, dict):
        raise bad_request(f"options must be an object (got {json.dumps(o)[:80]})", param="options")
    try:
        opts = sampling(o)
        last_n = integer(o, "repeat_last_n", -1, 1 << 31)
        n = integer(o, "num_predict", -2, 1 << 31)
        integer(o, "num_ctx", 1, 1 << 31)     # checked, then ignored: the context is fixed at load
    except ApiError as e:
        raise bad_request(f"options.{e.message}", param=f"options.{e.param}") from None
    if last_n is not None:
        opts["repeat_last_n"] = last_n
    # num_predict -1 (Ollama's default) or -2 (fill the context): until the reply or the context ends
    return opts, n if n is not None and n > 0 else None


def _refuse_unsupported(body: dict) -> None:
    """fields whose answer llmlite cannot give: a 400 rather than an answer that ignores them"""
    if body.get("suffix") not in (None, ""):
        raise bad_request("suffix (fill in the middle) is not supported by llmlite serve", param="suffix")
    if body.get("template") not in (None, ""):
        raise bad_request("template: llmlite uses the model's own chat template (Jinja), not a Go template",
                          param="template")
    msgs = body.get("messages")
    if body.get("images") or (isinstance(msgs, list) and any(isinstance(m, dict) and m.get("images")
                                                             for m in msgs)):
        raise bad_request("images are not supported: llmlite runs text models", param="images")


def _format(body: dict) -> dict:
    """Ollama's `format`: "json" (any JSON object) or a JSON schema, as options"""
    from llmlite.constrain import check_constraint
    from llmlite.errors import ConstraintError

    f = body.get("format")
    if f in (None, ""):
        return {}
    if f == "json":
        f = {"type": "object"}
    if not isinstance(f, dict):
        raise bad_request(f'format must be "json" or a JSON schema (got {json.dumps(f)[:80]})', param="format")
    try:
        check_constraint(json_schema=f)
    except ConstraintError as e:
        raise bad_request(f"format: {e}", param="format", code="invalid_schema") from None
    return {"json_schema": f}


def _common(body: dict) -> GenRequest:
    _refuse_unsupported(body)
    opts, n = _options(body)
    opts.update(_format(body))
    stream = body.get("stream")
    stream = True if stream is None else stream    # Ollama streams unless told not to
    if not isinstance(stream, bool):
        raise bad_request(f"stream must be true or false (got {json.dumps(stream)[:80]})", param="stream")
    boolean(body, "raw")
    return GenRequest(model=_model(body), stream=stream, max_tokens=n, options=opts)


def _load(res, cancel):
    """the work of a request with nothing to generate: the model loaded (swapped in), no more"""
    yield Started(0, res.name)


def parse_chat(body: dict) -> tuple[GenRequest, Callable]:
    """(the request, its engine work); no messages: a request to load the model, as Ollama"""
    req = _common(body)
    if body.get("messages") in (None, []):
        return req, _load
    req.messages = messages(body["messages"])
    req.tools = tool_set(body)
    if req.tools is not None and "json_schema" in req.options:
        raise bad_request("format and tools cannot be used together: a tool call's arguments follow its "
                          "tool's schema", param="format")
    return req, generation(req)


def parse_generate(body: dict) -> tuple[GenRequest, Callable]:
    req = _common(body)
    prompt, system, raw = text(body, "prompt"), text(body, "system"), boolean(body, "raw")
    if not prompt:
        return req, _load

    def work(res, cancel):
        # decided on the model that answers (a swap may bring one with or without a template)
        if raw or res.template is None:
            r = replace(req, prompt=prompt)
        else:
            r = replace(req, messages=[{"role": "system", "content": system}] * bool(system)
                        + [{"role": "user", "content": prompt}])
        return generation(r)(res, cancel)
    return req, work


# ---- answers -----------------------------------------------------------------------------------

@dataclass
class _Timing:
    """what the worker measured before the first event: the seconds a swap-in took"""
    load_s: float = 0.0


def _timed(work: Callable, timing: _Timing, before) -> Callable:
    def run(res, cancel):
        # this request waited for the swap that brought res in (written before Started is sent)
        timing.load_s = res.load_s if res is not before else 0.0
        return work(res, cancel)
    return run


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class _Reply:
    """One answer's JSON objects: chat's (message) or generate's (response)."""

    def __init__(self, chat: bool, model: str, t0_ns: int, load_s: float):
        self.chat, self.model, self.t0_ns, self.load_s = chat, model, t0_ns, load_s

    def _obj(self, answer: str, thought: str, done: bool, calls: list = ()) -> dict:
        out: dict[str, Any] = {"model": self.model, "created_at": om.timestamp()}
        if self.chat:
            out["message"] = {"role": "assistant", "content": answer}
            if thought:
                out["message"]["thinking"] = thought
            if calls:
                out["message"]["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}}
                                                for c in calls]
        else:
            out["response"] = answer
            if thought:
                out["thinking"] = thought
        out["done"] = done
        return out

    def part(self, piece: Piece) -> dict:
        thinking = piece.kind == rsn.REASONING
        return self._obj("" if thinking else piece.text, piece.text if thinking else "", False)

    def calls(self, calls: list) -> dict:
        return self._obj("", "", False, calls)

    def final(self, done: Done, started: Started, answer: str = "", thought: str = "", calls: list = ()) -> dict:
        s = done.stats
        # Ollama's done_reason for a reply that made calls is "stop"
        reason = "stop" if done.finish_reason == "tool_calls" else done.finish_reason
        return {**self._obj(answer, thought, True, calls), "done_reason": reason,
                "total_duration": time.perf_counter_ns() - self.t0_ns, "load_duration": _ns(self.load_s),
                "prompt_eval_count": started.prompt_tokens, "prompt_eval_duration": _ns(s.prefill_s),
                "eval_count": s.generated, "eval_duration": _ns(s.decode_s)}

    def loaded(self) -> dict:
        return {**self._obj("", "", True), "done_reason": "load"}


def _line(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


async def _answer(request: Request, req: GenRequest, work: Callable, chat: bool, t0_ns: int) -> Response:
    engine = request.app.state.engine
    timing = _Timing()
    events = engine.stream(req.model, _timed(work, timing, engine.resident))
    # the prompt checked (an error is still a status here); a client that leaves while
    # its request waits in the queue takes it out
    started = await until_gone(request, anext(events))
    if started is None:
        return Response(status_code=499)
    reply = _Reply(chat, started.model, t0_ns, timing.load_s)
    if work is _load:
        await events.aclose()
        return JSONResponse(reply.loaded())
    if req.stream:
        return StreamingResponse(_stream(events, reply, started), media_type=NDJSON,
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def collect():
        pieces, done, calls = await gather(events)
        return reply.final(done, started, "".join(p.text for p in pieces if p.kind == rsn.ANSWER),
                           "".join(p.text for p in pieces if p.kind == rsn.REASONING), calls)

    out = await until_gone(request, collect())
    return JSONResponse(out) if out is not None else Response(status_code=499)


async def _stream(events: AsyncIterator, reply: _Reply, started: Started):
    try:
        async for ev in events:
            if isinstance(ev, Piece):
                yield _line(reply.part(ev))
            elif isinstance(ev, Calls):
                yield _line(reply.calls(ev.calls))
            elif isinstance(ev, Done):
                yield _line(reply.final(ev, started))
    except ApiError as e:                   # the status is sent already: the error is the last line
        yield _line({"error": e.message})
    finally:
        await events.aclose()


async def chat(request: Request) -> Response:
    t0 = time.perf_counter_ns()
    req, work = parse_chat(await read_json(request))
    return await _answer(request, req, work, True, t0)


async def generate(request: Request) -> Response:
    t0 = time.perf_counter_ns()
    req, work = parse_generate(await read_json(request))
    return await _answer(request, req, work, False, t0)


# ---- embeddings ----------------------------------------------------------------------------------

async def _embed(request: Request, inputs: list, model: Optional[str]) -> tuple[str, list, int, float]:
    """(the model's name, one vector per input, the tokens embedded, the seconds a swap-in
    took): llmlite.embed's vectors"""
    work = _embedding_work(inputs)
    engine, timing = request.app.state.engine, _Timing()
    name, vecs, n_tokens = model or "", [], 0
    async for ev in engine.stream(model, _timed(work, timing, engine.resident)):
        if isinstance(ev, Started):
            name = ev.model
        else:
            n_tokens += ev[0]
            vecs.append(ev[1].tolist())
    return name, vecs, n_tokens, timing.load_s


async def embed(request: Request) -> Response:
    t0 = time.perf_counter_ns()
    body = await read_json(request)
    inputs = _embed_inputs({"input": body.get("input")})
    name, vecs, n, load_s = await _embed(request, inputs, _model(body))
    return JSONResponse({"model": name, "embeddings": vecs, "total_duration": time.perf_counter_ns() - t0,
                         "load_duration": _ns(load_s), "prompt_eval_count": n})


async def embeddings(request: Request) -> Response:
    """the older endpoint: one prompt, one vector"""
    body = await read_json(request)
    prompt = text(body, "prompt")
    if not prompt:
        raise bad_request("prompt must be a non-empty string", param="prompt")
    vecs = (await _embed(request, [prompt], _model(body)))[1]
    return JSONResponse({"embedding": vecs[0]})


# ---- models --------------------------------------------------------------------------------------

def _registry_entries() -> dict:
    from llmlite.errors import RegistryError
    from llmlite.registry import load_registry

    try:
        return load_registry()[1]
    except RegistryError:
        return {}


def _tags(res) -> list:
    entries = _registry_entries()
    by_file = {e.file: e for e in entries.values() if e.file}

    def row(name: str, path) -> dict:
        # a cached file listed by its own name has its alias's sha256 all the same
        e = entries.get(name) or (by_file.get(path.name) if path is not None else None)
        return om.tag(name, path or (om.entry_file(e) if e else None), e)

    return [row(res.name, res.model.path)] + [row(n, p) for n, p in model_names().items() if n != res.name]


async def _off_loop(fn, *args):
    """fn(*args) in a thread: it reads files, and the loop keeps answering meanwhile"""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def tags(request: Request) -> Response:
    return JSONResponse({"models": await _off_loop(_tags, request.app.state.engine.resident)})


async def running(request: Request) -> Response:
    """/api/ps: the resident model (it stays until another is asked for: no expiry)"""
    res = request.app.state.engine.resident
    row = await _off_loop(om.tag, res.name, res.model.path, _registry_entries().get(res.name))
    del row["modified_at"]
    return JSONResponse({"models": [{**row, "expires_at": "9999-12-31T23:59:59Z", "size_vram": 0,
                                     "context_length": res.model.n_ctx}]})


def _show(res, name: Optional[str], verbose: bool) -> dict:
    if res.answers_to(name):
        src = res.template.source if res.template is not None else None
        return om.show(res.name, res.model.path, src, res.defaults, res.reasoning is not None, verbose)
    names = model_names()
    if name not in names:
        raise not_found(name)
    e = _registry_entries().get(name)
    path = names[name] or (om.entry_file(e) if e else None)
    if path is None:
        raise ApiError(404, f"model {name!r} is not fetched yet: `llmlite pull {name}`, or ask for it by name",
                       code="model_not_found")
    return om.show(name, path, None, dict(e.sampling) if e else {}, False, verbose)


async def show(request: Request) -> Response:
    body = await read_json(request)
    name, verbose = _model(body), boolean(body, "verbose")
    return JSONResponse(await _off_loop(_show, request.app.state.engine.resident, name, verbose))


async def version(request: Request) -> Response:
    from llmlite import __version__

    return JSONResponse({"version": __version__})


ROUTES = [
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
    Route("/api/embed", embed, methods=["POST"]),
    Route("/api/embeddings", embeddings, methods=["POST"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/ps", running, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/version", version, methods=["GET"]),
]
