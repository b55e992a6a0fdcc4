"""`llmlite serve`'s OpenAI-compatible API, spoken to by the official `openai` package:
chat and text completions, streamed and not, against what `llmlite run` and the Python
API give for the same prompt; the sampling fields, logprobs, usage, the model list,
embeddings, a model swap and the names that must not load anything."""
from __future__ import annotations

import logging

import pytest

from helpers import llmlite
from serve_fixture import chat_body, serving

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

# SmolLM2 answers this with top-2 margins above 1 logit at each greedy step (test_cli_run.py)
QUESTION = "What is the capital of France? Answer in one sentence."


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    import llmlite as api

    m = api.load(smollm2_path, n_ctx=512)
    yield m
    m.close()


@pytest.fixture(scope="module")
def smol_server(smollm2):
    with serving(smollm2, "smollm2-135m") as (url, engine):
        yield url, engine


@pytest.fixture(scope="module")
def client(smol_server):
    return openai.OpenAI(base_url=smol_server[0] + "/v1", api_key="unused", max_retries=0)


def _streamed(chunks) -> tuple[str, str | None]:
    text, finish = [], None
    for c in chunks:
        for ch in c.choices:
            piece = ch.delta.content if hasattr(ch, "delta") else ch.text
            text.append(piece or "")
            finish = ch.finish_reason or finish
    return "".join(text), finish


def test_chat_greedy_equals_run(client, smollm2_path):
    r = llmlite("run", smollm2_path, "-p", QUESTION, "-n", "24", "--temp", "0", "-c", "512", "--plain")
    assert r.returncode == 0, r.stderr
    want = r.stdout.removesuffix("\n")
    assert "Paris" in want
    got = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}],
                                         temperature=0, max_tokens=24)
    assert got.choices[0].message.content == want
    assert got.choices[0].message.role == "assistant"
    assert got.model == "smollm2-135m" and got.object == "chat.completion"
    u = got.usage
    assert u.completion_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert got.choices[0].finish_reason == ("length" if u.completion_tokens == 24 else "stop")
    text, finish = _streamed(client.chat.completions.create(
        messages=[{"role": "user", "content": QUESTION}], model="smollm2-135m", temperature=0,
        max_completion_tokens=24, stream=True))
    assert text == want and finish == got.choices[0].finish_reason


def test_completions_greedy_equal_the_python_api(client, smollm2):
    from llmlite.chat import Chat

    prompt = "The three primary colors are"
    want = "".join(Chat(smollm2, raw=True).reply(prompt, max_tokens=16, temperature=0, lookup=True))
    got = client.completions.create(model="smollm2-135m", prompt=prompt, max_tokens=16, temperature=0)
    assert got.choices[0].text == want and got.choices[0].finish_reason == "length"
    assert got.usage.completion_tokens == 16
    text, finish = _streamed(client.completions.create(model="smollm2-135m", prompt=prompt, max_tokens=16,
                                                       temperature=0, stream=True))
    assert (text, finish) == (want, "length")
    # the prompt as token ids: the same text
    from llmlite.chat import prompt_ids

    ids = client.completions.create(model="smollm2-135m", prompt=prompt_ids(smollm2, prompt), max_tokens=16,
                                    temperature=0)
    assert ids.choices[0].text == want


def test_stream_usage_and_prefix_reuse(client):
    """stream_options.include_usage: a last chunk with usage; the same prompt again finds
    all but its last token in the KV cache"""
    kw = dict(model="smollm2-135m", prompt="Once upon a time", max_tokens=4, temperature=0, stream=True,
              stream_options={"include_usage": True})
    list(client.completions.create(**kw))
    chunks = list(client.completions.create(**kw))
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == 4
    assert last.usage.prompt_tokens_details.cached_tokens == last.usage.prompt_tokens - 1


def test_stop_strings(client):
    base = client.completions.create(model="smollm2-135m", prompt="1, 2, 3, 4,", max_tokens=12, temperature=0)
    text = base.choices[0].text
    word = text.split()[2]                       # a stop string that occurs part-way through
    for stop in (word, [word, "\u2603"]):
        got = client.completions.create(model="smollm2-135m", prompt="1, 2, 3, 4,", max_tokens=12, temperature=0,
                                        stop=stop)
        assert got.choices[0].text == text[:text.find(word)]
        assert got.choices[0].finish_reason == "stop"


def test_seed_and_penalties(client):
    # top_k and min_p are no OpenAI fields: the package passes them as extra_body
    kw = dict(model="smollm2-135m", prompt="My favourite animal is", max_tokens=12, temperature=1.0,
              top_p=1.0, extra_body={"top_k": 0, "min_p": 0.0})
    a = client.completions.create(seed=7, **kw).choices[0].text
    assert client.completions.create(seed=7, **kw).choices[0].text == a
    assert any(client.completions.create(seed=s, **kw).choices[0].text != a for s in (8, 9, 10))
    greedy = dict(model="smollm2-135m", prompt="1 1 1 1 1 1 1 1", max_tokens=8, temperature=0)
    plain = client.completions.create(**greedy).choices[0].text
    assert plain.split()[:1] == ["1"]
    # a strong frequency penalty on the repeated "1" moves greedy decoding off it
    pen = client.completions.create(frequency_penalty=2.0, presence_penalty=2.0, **greedy).choices[0].text
    assert pen.split()[:1] != ["1"]


def test_logprobs(client):
    got = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}],
                                         temperature=0, max_tokens=6, logprobs=True, top_logprobs=3)
    entries = got.choices[0].logprobs.content
    assert len(entries) == got.usage.completion_tokens == 6
    assert "".join(e.token for e in entries) == got.choices[0].message.content
    for e in entries:
        assert len(e.top_logprobs) == 3
        assert e.top_logprobs[0].token == e.token and e.top_logprobs[0].logprob == e.logprob  # greedy: the best
        lps = [a.logprob for a in e.top_logprobs]
        assert lps == sorted(lps, reverse=True) and all(lp <= 0 for lp in lps)
        assert bytes(e.bytes).decode() == e.token
    c = client.completions.create(model="smollm2-135m", prompt="The sky is", max_tokens=5, temperature=0, logprobs=2)
    lp = c.choices[0].logprobs
    assert "".join(lp.tokens) == c.choices[0].text and len(lp.token_logprobs) == 5
    assert all(len(t) == 2 and max(t.values()) == v for t, v in zip(lp.top_logprobs, lp.token_logprobs))
    assert lp.text_offset[0] == 0 and lp.text_offset[1] == len(lp.tokens[0])
    streamed = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}],
                                              temperature=0, max_tokens=6, logprobs=True, stream=True)
    toks = [e.token for c in streamed for ch in c.choices if ch.logprobs for e in ch.logprobs.content]
    assert toks == [e.token for e in entries]


def test_models_and_names(client, smol_server):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "smollm2-135m" and len(ids) == len(set(ids))
    assert client.models.retrieve("smollm2-135m").id == "smollm2-135m"
    url = smol_server[0]
    # names resolve through the registry only: a path, even to a real model, is no name
    import llmlite.registry as reg

    real = str(reg.ensure_model("smollm2-135m", quiet=True))
    for name in ("no-such-model", "../../../etc/passwd", real, "/etc/passwd"):
        r = httpx.post(f"{url}/v1/chat/completions", json=chat_body("hi", model=name, max_tokens=1))
        assert r.status_code == 404, (name, r.text)
        assert r.json()["error"]["code"] == "model_not_found"
    assert httpx.get(f"{url}/v1/models/no-such-model").status_code == 404


def test_embeddings_are_the_python_apis(smol_server, smollm2):
    """/v1/embeddings answers llmlite.embed's vector for the text as its own tokenizing
    (text_ids) gives it: unit length"""
    import numpy as np

    from llmlite.embed import embed, text_ids

    r = httpx.post(f"{smol_server[0]}/v1/embeddings", json={"input": "hello", "model": "smollm2-135m"})
    assert r.status_code == 200, r.text
    v = np.array(r.json()["data"][0]["embedding"], dtype=np.float32)
    assert np.array_equal(v, embed(smollm2, text_ids(smollm2, "hello")))
    assert abs(np.linalg.norm(v) - 1) < 1e-5


def test_embeddings_route(smol_server, smollm2, monkeypatch):
    """the route's side of embeddings, over a stand-in for llmlite.embed.embed (the
    pooling is its own)"""
    import base64

    import numpy as np

    from llmlite.embed import text_ids
    from llmlite.server import openai_api

    def embed(model, ids):
        v = np.arange(1, 9, dtype=np.float32) * len(ids)
        return v / np.linalg.norm(v)

    monkeypatch.setattr(openai_api, "embed", embed)
    c = openai.OpenAI(base_url=smol_server[0] + "/v1", api_key="x", max_retries=0)
    texts = ["hello", "a longer sentence to embed"]
    got = c.embeddings.create(model="smollm2-135m", input=texts, encoding_format="float")
    assert [d.index for d in got.data] == [0, 1] and got.model == "smollm2-135m"
    for d, t in zip(got.data, texts):
        assert np.allclose(d.embedding, embed(smollm2, text_ids(smollm2, t)))
    assert got.usage.prompt_tokens == sum(len(text_ids(smollm2, t)) for t in texts)
    r = httpx.post(f"{smol_server[0]}/v1/embeddings", json={"input": "hello", "encoding_format": "base64"})
    v = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype=np.float32)
    assert np.allclose(v, embed(smollm2, text_ids(smollm2, "hello")))
    bad = httpx.post(f"{smol_server[0]}/v1/embeddings", json={"input": [1.5]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"


def test_model_swap(tiny_path, smollm2_path, caplog):
    """a request naming another alias loads it in place of the resident model (logged)"""
    import llmlite as api

    def loader(path):
        return api.load(path, n_ctx=256)

    with serving(loader(tiny_path), "tiny", loader=loader) as (url, engine):
        c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        with caplog.at_level(logging.WARNING, logger="llmlite.serve"):
            a = c.completions.create(model="tiny", prompt="Hello", max_tokens=3, temperature=0)
            b = c.completions.create(model="smollm2-135m", prompt="Hello", max_tokens=3, temperature=0)
        assert a.model == "tiny" and b.model == "smollm2-135m"
        assert engine.resident.model.path == smollm2_path
        assert "swapping models: tiny -> smollm2-135m" in caplog.text
        engine.resident.model.close()
