"""`llmlite serve`'s refusals: each an OpenAI-style JSON body with its status (400 for
bad JSON, field types and a prompt past the context; 401, 404, 413, 503 with
Retry-After, a 500 that tells no traceback); random request bodies that never take the
server down; the API key and CORS as configured."""
from __future__ import annotations

import json

import pytest

from serve_fixture import chat_body, json_values, serving

httpx = pytest.importorskip("httpx")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def tiny_server(tiny):
    with serving(tiny, "tiny") as (url, engine):
        yield url, engine


@pytest.fixture(scope="module")
def http(tiny_server):
    with httpx.Client(base_url=tiny_server[0], timeout=60) as c:
        yield c


def error_of(r, status: int) -> dict:
    """the error object of a refusal, its shape checked"""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and isinstance(err["message"], str) and err["message"]
    return err


def test_malformed_json_and_field_types(http):
    for body in (b"{", b"[1, 2]", b"\xff\xfe", b"null", b'{"messages": [{"role": "user", "content": "hi"}]'):
        error_of(http.post("/v1/chat/completions", content=body), 400)
    bad = [({"messages": "hi"}, "messages"), ({"messages": []}, "messages"),
           (chat_body("hi", temperature="hot"), "temperature"), (chat_body("hi", max_tokens=1.5), "max_tokens"),
           (chat_body("hi", max_tokens=0), "max_tokens"), (chat_body("hi", top_p=2), "top_p"),
           (chat_body("hi", stop=[1]), "stop"), (chat_body("hi", stream="yes"), "stream"),
           (chat_body("hi", n=2), "n"), (chat_body("hi", presence_penalty=3), "presence_penalty"),
           ({"messages": [{"role": "user", "content": {"a": 1}}]}, "messages[0].content"),
           ({"messages": [{"content": "hi"}]}, "messages[0].role")]
    for body, param in bad:
        assert error_of(http.post("/v1/chat/completions", json=body), 400)["param"] == param, body
    assert error_of(http.post("/v1/completions", json={"prompt": {"x": 1}}), 400)["param"] == "prompt"
    assert error_of(http.post("/v1/completions", json={"prompt": [10 ** 9]}), 400)["param"] == "prompt"


def test_prompt_past_the_context_names_both_counts(http, tiny):
    from llmlite.chat import prompt_ids

    prompt = "hello " * 60
    n = len(prompt_ids(tiny, prompt))
    err = error_of(http.post("/v1/completions", json={"prompt": prompt, "max_tokens": 250}), 400)
    assert err["code"] == "context_length_exceeded"
    assert f"({n} tokens)" in err["message"] and "(250)" in err["message"] and f"context of {tiny.n_ctx}" in err["message"]
    err = error_of(http.post("/v1/completions", json={"prompt": "hello " * 400}), 400)
    assert "context is 256" in err["message"]
    # what fits exactly is answered, to the last token
    r = http.post("/v1/completions", json={"prompt": prompt, "max_tokens": tiny.n_ctx - n, "temperature": 0})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= tiny.n_ctx - n


def test_oversized_body_413(http):
    big = b'{"prompt": "' + b"a" * (8 << 20) + b'"}'
    assert error_of(http.post("/v1/completions", content=big), 413)["code"] == "body_too_large"

    def chunks():                   # no content-length: counted as it arrives
        yield b'{"prompt": "'
        for _ in range(9):
            yield b"a" * (1 << 20)
        yield b'"}'

    assert error_of(http.post("/v1/completions", content=chunks()), 413)["code"] == "body_too_large"


def test_unknown_route_and_method(http):
    assert error_of(http.get("/v2/nothing"), 404)["code"] == "not_found"
    assert error_of(http.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"


def test_queue_full_503(tiny, monkeypatch):
    """with no room to wait, a request made while another generates is refused at once"""
    import threading

    from llmlite.server.generation import Tap

    gate, sample = threading.Event(), Tap.sample
    monkeypatch.setattr(Tap, "sample", lambda self, *a: gate.wait(30) and sample(self, *a))  # held at its first token
    with serving(tiny, "tiny", max_waiting=0) as (url, engine), httpx.Client(base_url=url, timeout=60) as c:
        with c.stream("POST", "/v1/chat/completions", json=chat_body("Hi", max_tokens=4, stream=True)) as s:
            next(s.iter_lines())                  # the role chunk: it is generating
            r = c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2})
            assert error_of(r, 503)["code"] == "server_busy"
            assert int(r.headers["retry-after"]) >= 1
            gate.set()
        assert engine.idle.wait(10)
        assert c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2}).status_code == 200


def test_a_client_gone_while_queued_is_never_run(tiny, monkeypatch):
    import threading

    import llmlite.server.generation as gen

    gate, sample, prompts = threading.Event(), gen.Tap.sample, []
    monkeypatch.setattr(gen.Tap, "sample", lambda self, *a: gate.wait(30) and sample(self, *a))
    monkeypatch.setattr(gen, "prompt_ids", lambda m, text, f=gen.prompt_ids: prompts.append(text) or f(m, text))
    with serving(tiny, "tiny") as (url, engine), httpx.Client(base_url=url, timeout=60) as c:
        with c.stream("POST", "/v1/chat/completions", json=chat_body("first", max_tokens=2, stream=True)) as s:
            next(s.iter_lines())                  # generating, held at its first token
            with pytest.raises(httpx.ReadTimeout):
                c.post("/v1/completions", json={"prompt": "second", "max_tokens": 2}, timeout=0.5)
            assert engine.wait_pending(1, 10)     # its place in the queue is free as soon as it left
            gate.set()
        assert engine.idle.wait(10)
    assert len(prompts) == 1 and "first" in prompts[0]


def test_unexpected_error_500_without_traceback(http, monkeypatch):
    import llmlite.server.generation as gen

    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(gen, "prompt_ids", boom)
    r = http.post("/v1/chat/completions", json=chat_body("hi", max_tokens=2))
    err = error_of(r, 500)
    assert "secret" not in r.text and "Traceback" not in r.text and err["code"] == "internal_error"
    monkeypatch.undo()
    assert http.post("/v1/chat/completions", json=chat_body("hi", max_tokens=2)).status_code == 200


def test_api_key_and_cors(tiny):
    with serving(tiny, "tiny", api_key="s3cret") as (url, _), httpx.Client(base_url=url) as c:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret"}):
            err = error_of(c.get("/v1/models", headers=headers), 401)
            assert err["code"] == "invalid_api_key"
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/models", headers={"x-api-key": "s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200
        assert "access-control-allow-origin" not in c.get("/health", headers={"Origin": "http://x.test"}).headers
    with serving(tiny, "tiny", cors="http://ui.test") as (url, _), httpx.Client(base_url=url) as c:
        r = c.get("/v1/models", headers={"Origin": "http://ui.test"})
        assert r.headers["access-control-allow-origin"] == "http://ui.test"
        pre = c.options("/v1/chat/completions", headers={"Origin": "http://ui.test",
                                                         "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://ui.test"
        other = c.get("/v1/models", headers={"Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in other.headers


# ---- random bodies ---------------------------------------------------------------------------

_json = json_values()
_FIELDS = ["model", "messages", "prompt", "temperature", "top_p", "top_k", "min_p", "max_tokens",
           "max_completion_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "logprobs",
           "top_logprobs", "stream", "stream_options", "n"]
_fair = {"messages": st.just([{"role": "user", "content": "hi"}]), "prompt": st.just("hi"),
         "max_tokens": st.integers(1, 8), "stream": st.booleans()}


def _field(name):
    return st.one_of(_json, _fair[name]) if name in _fair else _json


_bodies = st.fixed_dictionaries({}, optional={f: _field(f) for f in _FIELDS})


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]), body=_bodies)
def test_random_bodies_never_take_the_server_down(http, path, body):
    raw = json.dumps(body, allow_nan=True)
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body.setdefault("max_tokens", 4)            # a valid body's reply stays short
        raw = json.dumps(body, allow_nan=True)
    r = http.post(path, content=raw)
    assert r.status_code in (200, 400, 404, 501), r.text
    if r.status_code != 200:
        error_of(r, r.status_code)
    elif body.get("stream") is True:
        assert r.text.rstrip().endswith("data: [DONE]")


def test_still_answering_after_random_bodies(http):
    r = http.post("/v1/chat/completions", json=chat_body("Hello", max_tokens=3, temperature=0))
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length")
