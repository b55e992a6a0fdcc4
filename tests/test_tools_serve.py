"""Tool calling through the server: a round trip with the `openai` client (the model
calls a tool, the result goes back, the model answers), streamed and not, on
SmolLM2's own template (no tool support: llama.cpp's generic JSON convention), on
Qwen3's (`<tool_call>` around JSON) and on Qwen 3.5's (`<tool_call>` around XML, and
a think block its generation prompt opens); Ollama's tools and `format`; bad tools are a
400 naming the field, before anything is generated."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import pytest
from serve_fixture import serving

openai = pytest.importorskip("openai")

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                            "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city now",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "get_time", "description": "The time in a city now",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
TEMPLATES = Path(__file__).parent / "data" / "templates"
QWEN = {"qwen": TEMPLATES / "qwen3-0.6b.jinja", "qwen35": TEMPLATES / "qwen3.5-4b.jinja"}
NAME = "smollm2-135m"


@pytest.fixture(scope="module")
def served(smollm2_path):
    import llmlite as api

    m = api.load(smollm2_path, n_ctx=1024)
    with serving(m, NAME) as (url, engine):
        yield url, engine
    m.close()


@pytest.fixture(params=["generic", "qwen", "qwen35"])
def client(request, served):
    """the openai client, the resident model on SmolLM2's template, Qwen3's or Qwen 3.5's"""
    from llmlite.chat import ChatTemplate

    url, engine = served
    res = engine.resident
    own = res.template
    if request.param in QWEN:
        res.template = ChatTemplate(QWEN[request.param].read_text(), "", "<|im_end|>", name=request.param)
    try:
        yield request.param, openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    finally:
        res.template = own


def _check_call(call, tools=TOOLS):
    schema = next(t["function"]["parameters"] for t in tools if t["function"]["name"] == call.function.name)
    jsonschema.validate(json.loads(call.function.arguments), schema)
    assert call.type == "function" and call.id.startswith("call_")


def _streamed_calls(chunks) -> tuple[str, list, str]:
    """(content, [(name, arguments)], finish_reason) put together from stream chunks as
    OpenAI's clients do: deltas of one call share its index"""
    content, calls, finish = "", {}, None
    for ch in chunks:
        if not ch.choices:
            continue
        c = ch.choices[0]
        content += c.delta.content or ""
        for d in c.delta.tool_calls or ():
            slot = calls.setdefault(d.index, {"name": "", "arguments": ""})
            if d.function.name:
                slot["name"] += d.function.name
            slot["arguments"] += d.function.arguments or ""
        finish = c.finish_reason or finish
    return content, [(v["name"], v["arguments"]) for _, v in sorted(calls.items())], finish


def test_round_trip(client):
    kind, c = client
    # 1. the model must call a tool: one declared, with arguments valid for its schema
    r = c.chat.completions.create(model=NAME, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0,
                                  max_tokens=80)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls" and msg.tool_calls and not msg.content
    for call in msg.tool_calls:
        _check_call(call)
    # streamed: the same calls, as OpenAI's deltas
    content, calls, finish = _streamed_calls(c.chat.completions.create(
        model=NAME, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=80, stream=True))
    assert finish == "tool_calls" and not content
    assert calls == [(t.function.name, t.function.arguments) for t in msg.tool_calls]
    # 2. the result goes back; the model answers in text
    history = ASK + [msg.model_dump(exclude_none=True)] + [
        {"role": "tool", "tool_call_id": t.id, "content": "18 degrees, sunny"} for t in msg.tool_calls]
    choice = "none" if kind == "generic" else "auto"     # generic: auto makes the reply JSON (a call or not)
    r2 = c.chat.completions.create(model=NAME, messages=history, tools=TOOLS, tool_choice=choice, temperature=0,
                                   max_tokens=40)
    assert r2.choices[0].message.content and not r2.choices[0].message.tool_calls
    assert r2.choices[0].finish_reason in ("stop", "length")
    content, calls, finish = _streamed_calls(c.chat.completions.create(
        model=NAME, messages=history, tools=TOOLS, tool_choice=choice, temperature=0, max_tokens=40, stream=True))
    assert (content, calls, finish) == (r2.choices[0].message.content, [], r2.choices[0].finish_reason)


# not on Qwen 3.5's: its call writes a string raw, to "\n</parameter>", and SmolLM2 writes
# get_time's city (no maxLength) on to the token limit
@pytest.mark.parametrize("client", ["generic", "qwen"], indirect=True)
def test_named_tool_choice_and_auto(client):
    kind, c = client
    r = c.chat.completions.create(model=NAME, messages=ASK, tools=TOOLS, temperature=0, max_tokens=60,
                                  tool_choice={"type": "function", "function": {"name": "get_time"}})
    calls = r.choices[0].message.tool_calls
    assert calls and all(t.function.name == "get_time" for t in calls)
    for t in calls:
        _check_call(t)
    # auto, sampled: whatever the model picks parses, and a call is always a valid one
    for seed in range(3):
        r = c.chat.completions.create(model=NAME, messages=ASK, tools=TOOLS, temperature=0.9, seed=seed,
                                      max_tokens=60)
        m = r.choices[0].message
        if r.choices[0].finish_reason == "tool_calls":
            for t in m.tool_calls:
                _check_call(t)
        else:
            assert m.content is not None and not m.tool_calls


@pytest.mark.parametrize("body, param", [
    ({"tools": [{"type": "retrieval"}]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools"),
    ({"tools": "get_weather"}, "tools"),
    ({"tools": TOOLS + TOOLS[:1]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "a": {"type": "strin"}}}}}]}, "tools"),
    ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),
    ({"tools": TOOLS, "messages": ASK + [{"role": "assistant", "tool_calls": [{"function": {"name": "f",
                                                                                           "arguments": "{"}}]}]},
     "messages")])
def test_bad_tools_are_a_400(served, body, param):
    r = httpx.post(served[0] + "/v1/chat/completions", json={"messages": ASK, "max_tokens": 4, **body}, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and "\n" not in err["message"]


def test_ollama_tools_and_format(served):
    url = served[0]
    body = {"model": NAME, "messages": ASK, "tools": TOOLS, "stream": False, "options": {"temperature": 0}}
    r = httpx.post(url + "/api/chat", json={**body, "tool_choice": "required"}, timeout=120).json()
    calls = r["message"]["tool_calls"]
    assert calls and r["done_reason"] == "stop"
    for t in calls:       # Ollama's form: arguments an object
        assert t["function"]["name"] == "get_weather"
        jsonschema.validate(t["function"]["arguments"], WEATHER)
    # streamed: a line with the calls, then the last one
    with httpx.stream("POST", url + "/api/chat", json={**body, "stream": True, "tool_choice": "required"},
                      timeout=120) as s:
        lines = [json.loads(x) for x in s.iter_lines() if x.strip()]
    assert [t for o in lines for t in o["message"].get("tool_calls", [])] == calls and lines[-1]["done"]
    # the result as Ollama sends it back (role tool, tool_name)
    back = ASK + [r["message"], {"role": "tool", "tool_name": "get_weather", "content": "18 degrees"}]
    r2 = httpx.post(url + "/api/chat", json={**body, "messages": back, "tool_choice": "none"}, timeout=120).json()
    assert r2["message"]["content"] and "tool_calls" not in r2["message"]
    # format: "json" and a schema
    plain = {"model": NAME, "messages": ASK, "stream": False, "options": {"temperature": 0, "num_predict": 80}}
    r = httpx.post(url + "/api/chat", json={**plain, "format": "json"}, timeout=120).json()
    assert isinstance(json.loads(r["message"]["content"]), dict)
    gen = {k: v for k, v in plain.items() if k != "messages"}
    r = httpx.post(url + "/api/generate", json={**gen, "prompt": "Paris:", "format": WEATHER}, timeout=120).json()
    jsonschema.validate(json.loads(r["response"]), WEATHER)
