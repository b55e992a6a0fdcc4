"""`llmlite serve` under a chat UI's and several clients' use, on SmolLM2: ten turns each
resending the whole history (the KV cache's prefix reuse keeps the time to first token
flat), a client that goes away mid-reply (the model is free again within about a
token), and a burst of concurrent requests (each answered with what it alone gives, or
refused with 503)."""
from __future__ import annotations

import json
import threading
import time

import pytest

from serve_fixture import assert_freed_within_a_token, chat_body, serving

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def smol_server(smollm2_path):
    import llmlite as api

    m = api.load(smollm2_path, n_ctx=1024)
    with serving(m, "smollm2-135m") as (url, engine):
        yield url, engine
    m.close()


def _events(lines):
    """the JSON objects of a server-sent event stream, to data: [DONE]"""
    for line in lines:
        if line.startswith("data: "):
            if line == "data: [DONE]":
                return
            yield json.loads(line[6:])


def _timed_chat(c: httpx.Client, messages: list, max_tokens: int) -> tuple[float, str, dict]:
    """(time to the first token of the answer, the answer, usage) of a streamed chat turn"""
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft, text, use = None, [], None
    with c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        for ev in _events(r.iter_lines()):
            for ch in ev["choices"]:
                piece = ch["delta"].get("content")
                if piece and ttft is None:
                    ttft = time.perf_counter() - t0
                text.append(piece or "")
            use = ev.get("usage") or use
    return ttft, "".join(text), use


@pytest.mark.slow
def test_ten_turns_resending_the_history(smol_server):
    """turn 10's time to first token is at most 1.5x turn 1's: only the new turn is evaluated"""
    url, _ = smol_server
    questions = ["What is the capital of France? Answer in one sentence.", "And of Italy?", "Name a river there.",
                 "How long is it?", "Thank you. What is two plus two?", "And three times three?",
                 "Name a colour.", "Name a fruit of that colour.", "Is it sweet?", "Thanks. Name a city in Spain."]
    with httpx.Client(base_url=url, timeout=120) as c:
        # something else in the cache first, as a server has; it shares no prefix with the chat
        assert c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 4}).status_code == 200
        history, ttft, used = [], {}, {}
        for turn, q in enumerate(questions, 1):
            history.append({"role": "user", "content": q})
            ttft[turn], answer, used[turn] = _timed_chat(c, history, max_tokens=24)
            history.append({"role": "assistant", "content": answer})
    print(f"time to first token: turn 1 {1000 * ttft[1]:.1f} ms ({used[1]['prompt_tokens']} prompt tokens), "
          f"turn 10 {1000 * ttft[10]:.1f} ms ({used[10]['prompt_tokens']} prompt tokens, "
          f"{used[10]['prompt_tokens_details']['cached_tokens']} cached): x{ttft[10] / ttft[1]:.2f}")
    assert used[1]["prompt_tokens_details"]["cached_tokens"] == 0
    assert used[10]["prompt_tokens"] > 4 * used[1]["prompt_tokens"]
    assert used[10]["prompt_tokens"] - used[10]["prompt_tokens_details"]["cached_tokens"] < used[1]["prompt_tokens"]
    assert ttft[10] <= 1.5 * ttft[1], ttft


def test_disconnect_frees_the_model(smol_server):
    """a client gone mid-stream (or while waiting for a whole answer) stops its generation
    within about a token; the next request is answered at once"""
    url, engine = smol_server
    with httpx.Client(base_url=url, timeout=60) as c:
        with c.stream("POST", "/v1/chat/completions",
                      json=chat_body("Write a long story about a dragon.", max_tokens=900, temperature=0,
                                     stream=True)) as r:
            stamps = []
            for ev in _events(r.iter_lines()):
                if ev["choices"][0]["delta"].get("content"):
                    stamps.append(time.perf_counter())
                if len(stamps) == 8:
                    break
        # the generation had ~890 tokens to go; it stops at the next token
        token = assert_freed_within_a_token(engine, stamps)
        # a whole (unstreamed) answer that nobody waits for any more stops too (greedy, the
        # long story above: a sampled completion could end on its own within the 0.5 s)
        with pytest.raises(httpx.ReadTimeout):
            c.post("/v1/chat/completions", json=chat_body("Write a long story about a dragon.", max_tokens=900,
                                                          temperature=0), timeout=0.5)
        gone = time.perf_counter()
        assert engine.idle.wait(10)
        assert time.perf_counter() - gone <= 3 * token + 0.1
        r = c.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 2})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2


@pytest.mark.slow
def test_burst_of_concurrent_requests(smol_server):
    """20 requests at once, streamed and not: each is answered with exactly what it gives
    alone, or refused with 503 (the queue holds 8); the server stays up"""
    url, engine = smol_server
    prompts = [f"Tell me one fact about the number {i}." for i in range(10)]
    with httpx.Client(base_url=url, timeout=120) as c:
        alone = [c.post("/v1/chat/completions", json=chat_body(p, max_tokens=12, temperature=0))
                 .json()["choices"][0]["message"]["content"] for p in prompts]
    assert len(set(alone)) > 5                      # different answers: a mix-up would show
    results: list = [None] * 20
    start = threading.Barrier(20)

    def one(i):
        body = chat_body(prompts[i % 10], max_tokens=12, temperature=0, stream=i % 2 == 1)
        with httpx.Client(base_url=url, timeout=120) as c:
            start.wait()
            if body["stream"]:
                with c.stream("POST", "/v1/chat/completions", json=body) as r:
                    if r.status_code != 200:
                        r.read()
                        results[i] = (r.status_code, r.json())
                        return
                    text = "".join(ev["choices"][0]["delta"].get("content") or "" for ev in _events(r.iter_lines())
                                   if ev["choices"])
                    results[i] = (200, text)
            else:
                r = c.post("/v1/chat/completions", json=body)
                results[i] = (r.status_code, r.json()["choices"][0]["message"]["content"] if r.status_code == 200
                              else r.json())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    answered = [i for i, (status, _) in enumerate(results) if status == 200]
    print(f"{len(answered)} of 20 answered, the others refused with 503")
    assert len(answered) >= engine.max_waiting + 1      # the first nine to arrive: one running, eight waiting
    for i, (status, got) in enumerate(results):
        if status == 200:
            assert got == alone[i % 10], i
        else:
            assert status == 503 and got["error"]["code"] == "server_busy"
    assert engine.idle.wait(10)
