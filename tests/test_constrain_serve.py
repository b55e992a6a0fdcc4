"""The server's response_format through the `openai` package: json_object and
json_schema replies, streamed and not, parse and validate; a bad schema is a 400 that
names the offending part, before anything is generated."""
from __future__ import annotations

import json

import jsonschema
import pytest
from serve_fixture import serving

openai = pytest.importorskip("openai")

SCHEMA = {"type": "object", "properties": {
    "city": {"type": "string", "maxLength": 20},
    "population": {"type": "integer", "minimum": 0},
    "tags": {"type": "array", "items": {"enum": ["big", "old", "coastal"]}, "minItems": 1, "maxItems": 3}},
    "required": ["city", "population", "tags"], "additionalProperties": False}
ASK = [{"role": "user", "content": "Describe Paris as JSON."}]


@pytest.fixture(scope="module")
def client(smollm2_path):
    import llmlite as api

    m = api.load(smollm2_path, n_ctx=512)
    with serving(m, "smollm2-135m") as (url, _):
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    m.close()


def _fmt(schema=SCHEMA, strict=True) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": strict}}


def test_json_schema_reply_validates_streamed_and_not(client):
    r = client.chat.completions.create(model="smollm2-135m", messages=ASK, max_tokens=96, temperature=0,
                                       response_format=_fmt())
    whole = r.choices[0].message.content
    jsonschema.validate(json.loads(whole), SCHEMA)
    assert r.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(model="smollm2-135m", messages=ASK, max_tokens=96, temperature=0,
                                            response_format=_fmt(), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole


def test_json_object_and_completions(client):
    r = client.chat.completions.create(model="smollm2-135m", messages=ASK, max_tokens=96, temperature=0.7, seed=2,
                                       response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    r = client.completions.create(model="smollm2-135m", prompt="Paris as JSON:", max_tokens=96, temperature=0,
                                  extra_body={"response_format": _fmt()})
    jsonschema.validate(json.loads(r.choices[0].text), SCHEMA)


@pytest.mark.parametrize("fmt, part", [
    (_fmt({"type": "object", "properties": {"a": {"type": "strin"}}}), "strin"),
    (_fmt({"$ref": "#/$defs/missing"}), "missing"),
    (_fmt("not a schema"), "response_format.json_schema.schema"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "yaml"}, "response_format")])
def test_bad_schema_is_a_400_naming_the_part(client, fmt, part):
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="smollm2-135m", messages=ASK, max_tokens=8,
                                           response_format=fmt, stream=stream)
        err = e.value.body
        assert part in err["message"] and "\n" not in err["message"] and err["param"].startswith("response_format")
