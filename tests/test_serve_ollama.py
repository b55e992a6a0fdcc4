"""`llmlite serve`'s Ollama-compatible API (/api/*), spoken to with httpx as Ollama's
clients speak it: chat and generate streamed (NDJSON) and not, against the OpenAI
endpoints and the Python API for the same prompt; the counts and durations; tags, show,
ps, version; embeddings; Ollama-shaped errors; a client gone mid-stream."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import pytest

from serve_fixture import assert_freed_within_a_token, json_values, serving, serving_file

httpx = pytest.importorskip("httpx")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

# SmolLM2 answers this with top-2 margins above 1 logit at each greedy step (test_cli_run.py)
QUESTION = "What is the capital of France? Answer in one sentence."
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def smol_server(smollm2_path):
    with serving_file(smollm2_path, "smollm2-135m", n_ctx=512) as served:
        yield served


@pytest.fixture(scope="module")
def smollm2(smol_server):
    """the served model: the tests use it only while the server is idle"""
    return smol_server[1].resident.model


@pytest.fixture(scope="module")
def http(smol_server):
    with httpx.Client(base_url=smol_server[0], timeout=120) as c:
        yield c


def _lines(r) -> list[dict]:
    """an NDJSON body: each line one JSON object, none empty"""
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = list(r.iter_lines())
    assert lines and all(line.strip() for line in lines)
    return [json.loads(line) for line in lines]


def _streamed(http, path: str, body: dict) -> tuple[str, list[dict]]:
    with http.stream("POST", path, json=body) as r:
        assert r.status_code == 200
        objs = _lines(r)
    key = "message" if path == "/api/chat" else "response"
    text = "".join(o[key]["content"] if key == "message" else o[key] for o in objs)
    return text, objs


def _openai_chat(http, messages: list, n: int) -> dict:
    r = http.post("/v1/chat/completions", json={"messages": messages, "max_tokens": n, **GREEDY})
    assert r.status_code == 200, r.text
    return r.json()


def test_chat_greedy_equals_openai_and_the_python_api(http, smollm2):
    from llmlite.chat import Chat

    want = "".join(Chat(smollm2).reply(QUESTION, max_tokens=24, temperature=0, lookup=True))
    assert "Paris" in want
    msgs = [{"role": "user", "content": QUESTION}]
    oa = _openai_chat(http, msgs, 24)
    assert oa["choices"][0]["message"]["content"] == want
    body = {"model": "smollm2-135m", "messages": msgs, "options": {**GREEDY, "num_predict": 24}}
    r = http.post("/api/chat", json={**body, "stream": False})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    got = r.json()
    assert got["message"] == {"role": "assistant", "content": want}
    assert got["model"] == "smollm2-135m" and got["done"] is True
    assert got["done_reason"] == oa["choices"][0]["finish_reason"]
    assert got["prompt_eval_count"] == oa["usage"]["prompt_tokens"]
    assert got["eval_count"] == oa["usage"]["completion_tokens"]
    text, objs = _streamed(http, "/api/chat", body)       # streamed: Ollama's default
    assert text == want
    assert all(o["message"]["role"] == "assistant" for o in objs)
    assert objs[-1]["done_reason"] == got["done_reason"] and objs[-1]["eval_count"] == got["eval_count"]


def test_generate_greedy_equals_completions_and_chat(http, smollm2):
    """raw: the prompt continued as /v1/completions does; otherwise the chat template over
    [system, prompt], as /v1/chat/completions renders it"""
    from llmlite.chat import Chat

    prompt = "The three primary colors are"
    want = "".join(Chat(smollm2, raw=True).reply(prompt, max_tokens=16, temperature=0, lookup=True))
    oa = http.post("/v1/completions", json={"prompt": prompt, "max_tokens": 16, **GREEDY}).json()
    assert oa["choices"][0]["text"] == want
    body = {"prompt": prompt, "raw": True, "options": {**GREEDY, "num_predict": 16}}
    got = http.post("/api/generate", json={**body, "stream": False}).json()
    assert (got["response"], got["done_reason"], got["eval_count"]) == (want, "length", 16)
    assert _streamed(http, "/api/generate", body)[0] == want

    system = "You answer in French."
    want = "".join(Chat(smollm2, system=system).reply(QUESTION, max_tokens=20, temperature=0, lookup=True))
    oa = _openai_chat(http, [{"role": "system", "content": system}, {"role": "user", "content": QUESTION}], 20)
    assert oa["choices"][0]["message"]["content"] == want
    body = {"prompt": QUESTION, "system": system, "options": {**GREEDY, "num_predict": 20}}
    assert http.post("/api/generate", json={**body, "stream": False}).json()["response"] == want
    assert _streamed(http, "/api/generate", body)[0] == want


def test_ndjson_framing_counts_and_durations(http):
    body = {"prompt": "Once upon a time", "raw": True, "options": {**GREEDY, "num_predict": 12}}
    t0 = time.perf_counter_ns()
    text, objs = _streamed(http, "/api/generate", body)
    wall = time.perf_counter_ns() - t0
    *parts, last = objs
    assert parts and all(o["done"] is False and "done_reason" not in o for o in parts)
    assert all(set(o) == {"model", "created_at", "response", "done"} for o in parts)
    assert last["done"] is True and last["response"] == "" and last["done_reason"] == "length"
    assert last["eval_count"] == 12
    oa = http.post("/v1/completions", json={"prompt": "Once upon a time", "max_tokens": 12, **GREEDY}).json()
    assert oa["choices"][0]["text"] == text and last["prompt_eval_count"] == oa["usage"]["prompt_tokens"]
    for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(last[k], int) and last[k] >= 0, k
    # nanoseconds: each part inside the request's own time, decoding 12 tokens taking some
    assert 0 < last["prompt_eval_duration"] + last["eval_duration"] <= last["total_duration"] <= wall
    assert last["eval_duration"] > 1000 * last["eval_count"]     # > 1 us a token: not seconds or ms
    assert last["load_duration"] == 0                            # the model was resident
    stamps = [datetime.fromisoformat(o["created_at"].replace("Z", "+00:00")) for o in objs]
    assert stamps == sorted(stamps) and abs((datetime.now(timezone.utc) - stamps[-1]).total_seconds()) < 60


def test_options_stop_seed_and_penalties(http):
    def gen(prompt, **options):
        r = http.post("/api/generate", json={"prompt": prompt, "raw": True, "stream": False, "options": options})
        assert r.status_code == 200, r.text
        return r.json()

    base = gen("1, 2, 3, 4,", num_predict=12, **GREEDY)["response"]
    word = base.split()[2]
    got = gen("1, 2, 3, 4,", num_predict=12, stop=[word], **GREEDY)
    assert got["response"] == base[:base.find(word)] and got["done_reason"] == "stop"
    kw = dict(num_predict=12, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0)
    a = gen("My favourite animal is", seed=7, **kw)["response"]
    assert gen("My favourite animal is", seed=7, **kw)["response"] == a
    assert any(gen("My favourite animal is", seed=s, **kw)["response"] != a for s in (8, 9, 10))
    plain = gen("1 1 1 1 1 1 1 1", num_predict=8, **GREEDY)["response"]
    assert plain.split()[:1] == ["1"]
    pen = gen("1 1 1 1 1 1 1 1", num_predict=8, frequency_penalty=2.0, presence_penalty=2.0, **GREEDY)["response"]
    assert pen.split()[:1] != ["1"]
    # what llmlite has no use for is accepted: the context is the server's, the model stays
    ok = gen("1 1 1 1 1 1 1 1", num_predict=8, num_ctx=4096, num_gpu=0, **GREEDY)
    assert ok["response"] == plain
    assert http.post("/api/generate", json={"prompt": "1 1 1 1 1 1 1 1", "raw": True, "stream": False,
                                            "keep_alive": "5m", "options": {"num_predict": 8, **GREEDY}}
                     ).json()["response"] == plain


def test_load_requests(http):
    """nothing to generate (Ollama clients preload this way): done at once, reason "load" """
    for path, body in (("/api/generate", {"model": "smollm2-135m"}), ("/api/chat", {"messages": []}),
                       ("/api/generate", {"prompt": "", "keep_alive": 0})):
        r = http.post(path, json=body)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["done"] is True and got["done_reason"] == "load" and got["model"] == "smollm2-135m"


def test_tags_show_ps_version(http, smollm2, smollm2_path):
    import llmlite

    models = http.get("/api/tags").json()["models"]
    first = models[0]
    assert first["name"] == first["model"] == "smollm2-135m" and len({m["name"] for m in models}) == len(models)
    assert first["size"] == smollm2_path.stat().st_size
    assert len(first["digest"]) == 64 and int(first["digest"], 16) >= 0
    assert first["details"]["format"] == "gguf" and first["details"]["family"] == "llama"
    assert first["details"]["parameter_size"] == "135M" and first["details"]["quantization_level"] == "Q4_1"
    assert all(m["name"] for m in models) and all("/" not in m["name"] or m["name"].startswith("hf://")
                                                   for m in models)

    show = http.post("/api/show", json={"model": "smollm2-135m"}).json()
    assert show["template"] == smollm2.metadata["tokenizer.chat_template"]
    info = show["model_info"]
    assert info["general.architecture"] == "llama" and info["llama.context_length"] == 8192
    assert info["general.parameter_count"] > 100e6 and info["tokenizer.ggml.tokens"] is None
    assert show["details"] == first["details"] and "completion" in show["capabilities"]
    verbose = http.post("/api/show", json={"model": "smollm2-135m:latest", "verbose": True}).json()
    assert len(verbose["model_info"]["tokenizer.ggml.tokens"]) == smollm2.n_vocab
    assert str(smollm2_path.parent) not in json.dumps(show)           # names, never the server's paths

    ps = http.get("/api/ps").json()["models"]
    assert [m["name"] for m in ps] == ["smollm2-135m"] and ps[0]["context_length"] == smollm2.n_ctx
    assert http.get("/api/version").json() == {"version": llmlite.__version__}


def test_an_unreadable_cached_file_is_listed_not_fatal(http, tmp_path, monkeypatch):
    import llmlite.server.ollama_api as oa

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 60)
    names = oa.model_names()
    monkeypatch.setattr(oa, "model_names", lambda: {**names, "broken.gguf": bad})
    rows = http.get("/api/tags").json()["models"]
    row = next(r for r in rows if r["name"] == "broken.gguf")
    assert row["size"] == 64 and row["details"]["family"] == "" and len(row["digest"]) == 64
    assert rows[0]["details"]["family"] == "llama"


def _error(r, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return body["error"]


def test_errors_are_ollamas(http):
    chat = {"messages": [{"role": "user", "content": "hi"}], "stream": False}
    assert "JSON" in _error(http.post("/api/chat", content=b"{not json"), 400)
    assert "options.temperature" in _error(http.post("/api/chat", json={**chat, "options": {"temperature": "hot"}}),
                                           400)
    assert "options" in _error(http.post("/api/chat", json={**chat, "options": [1]}), 400)
    assert "stream" in _error(http.post("/api/chat", json={**chat, "stream": "yes"}), 400)
    assert "messages" in _error(http.post("/api/chat", json={"messages": [{"content": "no role"}]}), 400)
    assert "messages" in _error(http.post("/api/chat", json={"messages": {}}), 400)
    assert "format" in _error(http.post("/api/chat", json={**chat, "format": "yaml"}), 400)
    assert "strin" in _error(http.post("/api/chat", json={**chat, "format": {"properties": {"a": {"type": "strin"}}}}),
                             400)
    assert "images" in _error(http.post("/api/generate", json={"prompt": "hi", "images": ["aGk="]}), 400)
    assert "images" in _error(http.post("/api/chat", json={"messages": [{"role": "user", "content": "x",
                                                                          "images": ["aGk="]}]}), 400)
    for name in ("no-such-model", "/etc/passwd"):
        assert "not found" in _error(http.post("/api/chat", json={**chat, "model": name}), 404)
        assert "not found" in _error(http.post("/api/show", json={"model": name}), 404)
    big = {"prompt": "hi", "raw": True, "stream": False, "options": {"num_predict": 100000}}
    assert "context" in _error(http.post("/api/generate", json=big), 400)
    _error(http.get("/api/nothing"), 404)
    _error(http.get("/api/chat"), 405)
    assert "error" in http.get("/v1/nothing").json() and isinstance(http.get("/v1/nothing").json()["error"], dict)


def test_busy_503_and_api_key(tiny, monkeypatch):
    from llmlite.server.generation import Tap

    gate, sample = threading.Event(), Tap.sample
    monkeypatch.setattr(Tap, "sample", lambda self, *a: gate.wait(30) and sample(self, *a))  # held at its first token
    with serving(tiny, "tiny", max_waiting=0, api_key="k") as (url, engine), \
            httpx.Client(base_url=url, timeout=60, headers={"Authorization": "Bearer k"}) as c:
        assert "API key" in _error(httpx.get(f"{url}/api/tags"), 401)
        with c.stream("POST", "/api/generate", json={"prompt": "Hi", "options": {"num_predict": 4}}) as s:
            assert s.status_code == 200                    # generating, held at its first token
            r = c.post("/api/generate", json={"prompt": "Hi", "stream": False})
            assert "busy" in _error(r, 503) and int(r.headers["retry-after"]) >= 1
            gate.set()
            assert _lines(s)[-1]["done"] is True
        assert engine.idle.wait(10)


def test_embed(http):
    """/api/embed and /api/embeddings hand each input's ids to llmlite.embed.embed"""
    r = http.post("/api/embed", json={"model": "smollm2-135m", "input": ["hello", "the blue sky"]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["model"] == "smollm2-135m" and len(got["embeddings"]) == 2
    assert got["prompt_eval_count"] > 2 and got["total_duration"] > 0 and got["load_duration"] == 0
    one = http.post("/api/embeddings", json={"prompt": "hello"}).json()["embedding"]
    assert one == pytest.approx(got["embeddings"][0], rel=1e-6)
    assert got["embeddings"][0] != pytest.approx(got["embeddings"][1])


def test_disconnect_frees_the_model(http, smol_server):
    """a client gone mid-stream stops its generation within about a token"""
    _, engine = smol_server
    body = {"messages": [{"role": "user", "content": "Write a long story about a dragon."}],
            "options": {**GREEDY, "num_predict": 400}}
    with http.stream("POST", "/api/chat", json=body) as r:
        stamps = []
        for line in r.iter_lines():
            if json.loads(line)["message"]["content"]:
                stamps.append(time.perf_counter())
            if len(stamps) == 8:
                break
    assert_freed_within_a_token(engine, stamps)
    r = http.post("/api/generate", json={"prompt": "Hello", "raw": True, "stream": False,
                                         "options": {"num_predict": 2}})
    assert r.status_code == 200 and r.json()["eval_count"] == 2


def test_the_ollama_package(smol_server):
    """Ollama's own Python client reads every answer (its pydantic models check the shapes)"""
    ollama = pytest.importorskip("ollama")
    c = ollama.Client(host=smol_server[0])
    msgs = [{"role": "user", "content": QUESTION}]
    opts = {**GREEDY, "num_predict": 24}
    whole = c.chat(model="smollm2-135m", messages=msgs, options=opts)
    assert "Paris" in whole.message.content and whole.done and whole.eval_count > 0
    parts = list(c.chat(model="smollm2-135m", messages=msgs, options=opts, stream=True))
    assert "".join(p.message.content for p in parts) == whole.message.content
    assert parts[-1].done_reason == whole.done_reason and not any(p.done for p in parts[:-1])
    g = c.generate(model="smollm2-135m", prompt="The sky is", raw=True, options={**GREEDY, "num_predict": 5})
    assert g.response and g.eval_count == 5
    listed = c.list().models
    assert listed[0].model == "smollm2-135m" and listed[0].details.family == "llama"
    # the alias's file, listed under its own name too, is the same file: the same digest
    same = [m for m in listed if m.model == smol_server[1].resident.model.path.name]
    assert [m.digest for m in same] == [listed[0].digest]
    assert c.show("smollm2-135m").modelinfo["general.architecture"] == "llama"
    assert [m.model for m in c.ps().models] == ["smollm2-135m"]
    with pytest.raises(ollama.ResponseError) as e:
        c.chat(model="no-such-model", messages=msgs)
    assert e.value.status_code == 404 and "not found" in e.value.error


def test_a_swap_is_the_load_duration(tiny_path, smollm2_path):
    """a request naming another model waits for it to load: that is its load_duration"""
    import llmlite as api

    def loader(path):
        return api.load(path, n_ctx=256)

    body = {"prompt": "Hello", "raw": True, "stream": False, "options": {**GREEDY, "num_predict": 2}}
    with serving(loader(tiny_path), "tiny", loader=loader) as (url, engine), \
            httpx.Client(base_url=url, timeout=120) as c:
        assert c.post("/api/generate", json={**body, "model": "tiny"}).json()["load_duration"] == 0
        t0 = time.perf_counter_ns()
        swapped = c.post("/api/generate", json={**body, "model": "smollm2-135m"}).json()
        wall = time.perf_counter_ns() - t0
        assert swapped["model"] == "smollm2-135m" and engine.resident.model.path == smollm2_path
        assert 0 < swapped["load_duration"] <= swapped["total_duration"] <= wall
        assert c.post("/api/generate", json={**body, "model": "smollm2-135m"}).json()["load_duration"] == 0
        engine.resident.model.close()


def test_thinking_comes_apart(tiny, monkeypatch):
    """a reasoning model's thinking is message.thinking (generate: thinking), as the OpenAI
    side's reasoning_content; the answer alone is the content (a scripted reply in the
    <think> format on the tiny model)"""
    import llmlite.server.generation as gen
    from llmlite.sampling import SamplingParams

    def scripted(model, ids, config, stats, make_sampler):
        make_sampler(SamplingParams())
        stats.generated, stats.stop_reason = 4, "eos"
        yield from ["<think>", "Paris is the", " capital.</think>", "Paris."]

    monkeypatch.setattr(gen, "generate_text", scripted)
    with serving(tiny, "tiny") as (url, engine), httpx.Client(base_url=url, timeout=60) as c:
        engine.resident.reasoning = "think"
        msgs = [{"role": "user", "content": "Capital of France?"}]
        oa = c.post("/v1/chat/completions", json={"messages": msgs}).json()["choices"][0]["message"]
        whole = c.post("/api/chat", json={"messages": msgs, "stream": False}).json()["message"]
        assert (whole["content"], whole["thinking"]) == (oa["content"], oa["reasoning_content"])
        assert whole["content"] == "Paris." and "capital" in whole["thinking"]
        _, objs = _streamed(c, "/api/chat", {"messages": msgs})
        assert "".join(o["message"].get("thinking", "") for o in objs) == whole["thinking"]
        assert "".join(o["message"]["content"] for o in objs) == whole["content"]
        got = c.post("/api/generate", json={"prompt": "Capital of France?", "stream": False}).json()
        assert (got["response"], got["thinking"]) == (whole["content"], whole["thinking"])


# ---- random bodies: a 400 or an answer, never a 500 -----------------------------------------------

_json = json_values()
_OPTIONS = ["temperature", "top_p", "top_k", "min_p", "num_predict", "stop", "seed", "repeat_penalty",
            "repeat_last_n", "presence_penalty", "frequency_penalty", "num_ctx", "num_gpu"]
_fair = {"messages": st.just([{"role": "user", "content": "hi"}]), "prompt": st.just("hi"),
         "stream": st.booleans(), "raw": st.booleans(), "input": st.just("hi"),
         "options": st.fixed_dictionaries({}, optional={o: st.one_of(_json, st.integers(1, 4)) if o == "num_predict"
                                                        else _json for o in _OPTIONS})}
_FIELDS = ["model", "messages", "prompt", "system", "raw", "stream", "options", "format", "images", "keep_alive",
           "think", "suffix", "template", "input", "verbose", "tools"]
_bodies = st.fixed_dictionaries({}, optional={f: st.one_of(_json, _fair[f]) if f in _fair else _json
                                              for f in _FIELDS})


@pytest.fixture(scope="module")
def tiny_http(tiny):
    with serving(tiny, "tiny") as (url, _), httpx.Client(base_url=url, timeout=60) as c:
        yield c


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/api/chat", "/api/generate", "/api/show", "/api/embed"]), body=_bodies)
def test_random_bodies_never_take_the_server_down(tiny_http, path, body):
    opts = body.get("options")
    if isinstance(opts, dict) and not isinstance(opts.get("num_predict"), int):
        opts["num_predict"] = 4                 # a valid body's reply stays short
    r = tiny_http.post(path, content=json.dumps(body, allow_nan=True))
    assert r.status_code in (200, 400, 404, 501), r.text
    if r.status_code != 200:
        _error(r, r.status_code)
    elif r.headers["content-type"].startswith("application/x-ndjson"):
        assert json.loads(r.text.splitlines()[-1])["done"] is True
    assert tiny_http.get("/api/version").status_code == 200
