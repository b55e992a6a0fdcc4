"""Request bodies read and checked: the body within its size limit, JSON, an object, and
each field the type and range the API gives it, else a 400 naming the field. What comes
out (GenRequest) is plain data the engine's worker can trust: a bad value is refused
here, on the event loop, before it waits in the queue or reaches the model."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from llmlite.server.errors import ApiError, bad_request
from llmlite.tools import ToolError, ToolSet, check_message

MAX_BODY = 8 << 20           # bytes: far more than any context's worth of text
MAX_STOPS = 16
MAX_TOP_LOGPROBS = 20


@dataclass
class GenRequest:
    """One generation asked for: chat (messages) or plain text (prompt)."""

    model: Optional[str]
    stream: bool = False
    include_usage: bool = False          # stream_options.include_usage: a last chunk with usage
    max_tokens: Optional[int] = None     # None: until the end of the reply or of the context
    options: dict = field(default_factory=dict)   # GenerationConfig options given (sampling, stop)
    logprobs: Optional[int] = None       # alternatives reported per token; None: no logprobs
    messages: Optional[list] = None      # chat: [{"role", "content"}], content as text
    prompt: Any = None                   # completions: text, or token ids
    tools: Any = None                    # chat: llmlite/tools.py's ToolSet, None: no tools


async def read_json(request, limit: int = MAX_BODY) -> dict:
    """The body as a JSON object: 413 past `limit` bytes (read no further), else 400."""
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > limit:
        raise ApiError(413, f"the request body is {int(size)} bytes; the limit is {limit}", code="body_too_large")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise ApiError(413, f"the request body is over the limit of {limit} bytes", code="body_too_large")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as e:     # UnicodeDecodeError is a ValueError
        raise bad_request(f"the body is not valid JSON: {' '.join(str(e).split())[:200]}",
                          code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", code="invalid_json")
    return body


# ---- one field each -----------------------------------------------------------------------

def _wrong(name: str, want: str, v: Any) -> ApiError:
    return bad_request(f"{name} must be {want} (got {json.dumps(v)[:80]})", param=name)


def number(body: dict, name: str, lo: float, hi: float) -> Optional[float]:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise _wrong(name, f"a number in [{lo}, {hi}]", v)
    return float(v)


def integer(body: dict, name: str, lo: int, hi: int) -> Optional[int]:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _wrong(name, f"a whole number in [{lo}, {hi}]", v)
    return v


def boolean(body: dict, name: str) -> bool:
    v = body.get(name)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _wrong(name, "true or false", v)
    return v


def text(body: dict, name: str) -> Optional[str]:
    v = body.get(name)
    if v is not None and not isinstance(v, str):
        raise _wrong(name, "a string", v)
    return v


def stops(body: dict) -> tuple:
    v = body.get("stop")
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and len(v) <= MAX_STOPS and all(isinstance(s, str) for s in v):
        return tuple(v)
    raise _wrong("stop", f"a string or a list of at most {MAX_STOPS} strings", v)


def response_format(body: dict) -> dict:
    """The GenerationConfig options for OpenAI's response_format: {"type": "text"} (none),
    "json_object" (any JSON object), or "json_schema" with {"name", "schema", "strict"}
    (the schema is enforced whether or not strict is true: constrained decoding costs
    little, and an unconstrained reply may not parse). A schema the engine refuses is a
    400 naming the offending part."""
    from llmlite.constrain import check_constraint
    from llmlite.errors import ConstraintError

    rf = body.get("response_format")
    if rf is None:
        return {}
    kind = rf.get("type") if isinstance(rf, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        schema = {"type": "object"}
    elif kind == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict):
            raise _wrong("response_format.json_schema", 'an object {"name", "schema", "strict"}', js)
        text(js, "name")
        boolean(js, "strict")
        schema = js.get("schema", {})
        if not isinstance(schema, (dict, bool)):
            raise _wrong("response_format.json_schema.schema", "a JSON schema (an object)", schema)
    else:
        raise _wrong("response_format", 'an object with "type": "text", "json_object" or "json_schema"', rf)
    try:
        check_constraint(json_schema=schema)
    except ConstraintError as e:
        raise bad_request(f"response_format: {e}", param="response_format", code="invalid_schema") from None
    return {"json_schema": schema}


# ---- whole requests -------------------------------------------------------------------------

def sampling(fields: dict) -> dict:
    """The sampling fields and stop strings, checked: OpenAI's at the top level of the
    body, Ollama's in its `options` (the same names). Only those given."""
    seed = integer(fields, "seed", -(1 << 63), (1 << 64) - 1)
    opts = {
        "temperature": number(fields, "temperature", 0, 2),
        "top_p": number(fields, "top_p", 0, 1),
        "top_k": integer(fields, "top_k", 0, 1 << 31),
        "min_p": number(fields, "min_p", 0, 1),
        "presence_penalty": number(fields, "presence_penalty", -2, 2),
        "frequency_penalty": number(fields, "frequency_penalty", -2, 2),
        "repeat_penalty": number(fields, "repeat_penalty", 1e-3, 10),
        "seed": None if seed is None or seed < 0 else seed,      # -1 (llama.cpp, Ollama): a random one
        "stop": stops(fields),
    }
    if opts["top_p"] == 0:
        raise bad_request("top_p must be more than 0 (got 0)", param="top_p")
    return {k: v for k, v in opts.items() if v is not None}


def _common(body: dict) -> GenRequest:
    """the fields chat and completions share"""
    integer(body, "n", 1, 1)                # checked only: one choice per request, all a single user needs
    opts = sampling(body)
    stream = boolean(body, "stream")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise _wrong("stream_options", "an object", so)
    include_usage = boolean(so or {}, "include_usage")
    max_tokens = integer(body, "max_completion_tokens", 1, 1 << 31)
    if max_tokens is None:
        max_tokens = integer(body, "max_tokens", 1, 1 << 31)
    model = text(body, "model")
    return GenRequest(model=model or None, stream=stream, include_usage=include_usage, max_tokens=max_tokens,
                      options={**opts, **response_format(body)})


def _content(i: int, m: dict) -> str:
    """a message's content as text: a string, or a list of text parts (OpenAI's content
    parts; images and audio are not for a text model)"""
    c = m.get("content")
    if c is None:
        return ""
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        out = []
        for p in c:
            if not (isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)):
                raise bad_request(f"messages[{i}].content: only text parts ({{\"type\": \"text\", \"text\": ...}}) "
                                  "are supported", param=f"messages[{i}].content")
            out.append(p["text"])
        return "".join(out)
    raise _wrong(f"messages[{i}].content", "a string or a list of text parts", c)


def messages(msgs: Any) -> list:
    """a chat's messages, [{"role", "content"}] with the content as text (OpenAI's and Ollama's)"""
    if not isinstance(msgs, list) or not msgs:
        raise _wrong("messages", "a non-empty list of messages", msgs)
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise _wrong(f"messages[{i}]", "an object with role and content", m)
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise _wrong(f"messages[{i}].role", "a string", role)
        try:
            extra = check_message(i, m)
        except ToolError as e:
            raise bad_request(str(e), param=e.param) from None
        out.append({"role": role, "content": _content(i, m), **extra})
    return out


def tool_set(body: dict, tools_key: str = "tools"):
    """the request's tools and tool_choice (llmlite/tools.py's ToolSet), or None"""
    parallel = body.get("parallel_tool_calls") is None or boolean(body, "parallel_tool_calls")
    try:
        ts = ToolSet.from_openai(body.get(tools_key), body.get("tool_choice"), parallel)
    except ToolError as e:
        raise bad_request(str(e), param=e.param, code="invalid_tools") from None
    if ts is not None and ts.choice != "none" and body.get("response_format") not in (None, {"type": "text"}):
        raise bad_request("response_format and tools cannot be used together: a tool call's arguments "
                          "follow its tool's schema", param="response_format")
    return ts


def parse_chat(body: dict) -> GenRequest:
    req = _common(body)
    req.messages = messages(body.get("messages"))
    req.tools = tool_set(body)
    if boolean(body, "logprobs"):
        req.logprobs = integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS) or 0
    return req


def parse_completion(body: dict) -> GenRequest:
    req = _common(body)
    p = body.get("prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], (str, list)):
        p = p[0]                         # a batch of one
    ids = isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in p)
    if not (isinstance(p, str) or ids):
        raise _wrong("prompt", "a string or a list of token ids (one prompt per request)", p)
    req.prompt = p
    req.logprobs = integer(body, "logprobs", 0, MAX_TOP_LOGPROBS)
    return req
