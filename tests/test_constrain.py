"""Constrained decoding (llmlite/constrain.py): every output of a set of JSON schemas
parses and validates, llama.cpp's GBNF files work as they are, a bad schema or grammar
is one line before any token, and prompt lookup gives the same output under a schema."""
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import llmlite
from llmlite.chat import prompt_ids, template_for
from llmlite.constrain import bounded_numbers, compile_constraint
from llmlite.errors import ConstraintError
from llmlite.generate import GenStats, generate_tokens
from llmlite.sampling import Sampler, SamplingParams

DATA = Path(__file__).parent / "data"
SCHEMAS = json.loads((DATA / "constrain_schemas.json").read_text())
GBNF = DATA / "gbnf"
# room for every reply of the set (the longest take ~60 tokens): a reply cut by the
# budget would not parse, so a budget too small shows as a failure, not a pass
MAX_TOKENS = 160


@pytest.fixture(scope="module", params=["smollm2", "gemma3"])
def model(request):
    path = request.getfixturevalue(f"{request.param}_path")
    m = llmlite.load(path, n_ctx=1024)
    yield m
    m.close()


def ask(model, text: str) -> list[int]:
    """The prompt ids for a request: through the chat template, or as a plain completion
    for a base model (Gemma 3 270M has none)."""
    tpl = template_for(model)
    return prompt_ids(model, tpl.render([{"role": "user", "content": text}]) if tpl else text + "\nJSON: ")


def test_schema_set_covers_the_features():
    text = json.dumps([s["schema"] for s in SCHEMAS])
    assert len(SCHEMAS) >= 50
    for feature in ('"minItems"', '"maxItems"', '"enum"', '"anyOf"', '"oneOf"', '"minimum"', '"maximum"',
                    '"pattern"', '"format"', '"required"', '"$ref"', '"$defs"'):
        assert feature in text, feature
    for s in SCHEMAS:     # the hints given in prompts are valid examples
        if "example" in s:
            jsonschema.validate(s["example"], s["schema"])


def test_every_schema_output_parses_and_validates(model):
    bad = []
    for s in SCHEMAS:
        hint = f" For example: {json.dumps(s['example'])}" if "example" in s else ""
        ids = ask(model, f"Reply with a short JSON value that matches this schema: {json.dumps(s['schema'])}{hint}")
        stats = GenStats()
        out = "".join(model.generate(ids, MAX_TOKENS, json_schema=s["schema"], temperature=0, stats=stats))
        try:
            jsonschema.validate(json.loads(out), s["schema"], format_checker=jsonschema.FormatChecker())
        except (ValueError, jsonschema.ValidationError) as e:
            bad.append(f"{s['name']}: {stats.stop_reason} {out[:60]!r}: {str(e).splitlines()[0]}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", ["json", "arithmetic", "list", "chess"])
def test_llamacpp_gbnf_files_as_they_are(smollm2_path, name):
    m = llmlite.load(smollm2_path, n_ctx=512)
    try:
        compiled = compile_constraint(m.tokenizer, grammar=(GBNF / f"{name}.gbnf").read_text())
        prompt = {"json": "A JSON object about a cat:", "arithmetic": "Some sums:\n", "list": "A shopping list:\n",
                  "chess": "The moves of a famous chess game:\n"}[name]
        stats = GenStats()
        sampler = Sampler(SamplingParams(temperature=0.7, seed=1), compiled.start())
        toks = list(generate_tokens(m, m.tokenize(prompt), sampler, 48, stats))
    finally:
        m.close()
    assert toks
    check = compiled.start()         # a fresh matcher: the output is a sentence (or a prefix) of the grammar
    assert check.accepts(toks) == len(toks)
    if stats.stop_reason == "eos":
        for t in toks:
            check.commit(t)
        assert check.complete
        if name == "json":
            json.loads(m.tokenizer.decode_str(toks))
    # and by a check of its own: each whole line has the grammar's shape
    line = {"json": None, "arithmetic": r"[^=]*=[ \t\n]*\S*[ \t\n]*", "list": r"- [^\r\n]+",
            "chess": r"[1-9][0-9]?\. \S+ \S+"}[name]
    if line:
        import re

        lines = m.tokenizer.decode_str(toks).split("\n")[:-1]
        assert lines and all(re.fullmatch(line, ln) for ln in lines if ln.strip()), lines


@pytest.mark.parametrize("which", ["smollm2", "gemma3"])
def test_the_bridge_gives_every_text_token_its_bytes(request, which):
    """The tokenizer's own tokens for a text are accepted by a constraint of exactly
    that text (Gemma's newline runs are user-defined tokens, and text), and the
    end-of-generation tokens only at its end."""
    import re

    from llmlite.tokenizer import Tokenizer

    tok = Tokenizer.from_file(request.getfixturevalue(f"{which}_path"))
    for text in ('{"a": [1, 2]}\n\n  - item\n', "Grüße, 東京! <b>x</b>\t€", "    def f(x):\n        return x"):
        compiled = compile_constraint(tok, regex=re.escape(text))
        c = compiled.start()
        ids = tok.encode(text, add_special=False)
        assert c.accepts(ids) == len(ids), (text, ids)
        eog = sorted(tok.eog_ids)
        zeros = np.zeros(tok.n_vocab, dtype=np.float32)
        assert np.isinf(c.mask(zeros)[eog]).all()
        for t in ids:
            c.commit(t)
        allowed = np.flatnonzero(np.isfinite(c.mask(zeros)))
        assert c.complete and list(allowed) == eog


def test_bad_schema_grammar_regex_are_one_line(smollm2_path):
    from llmlite.tokenizer import Tokenizer

    tok = Tokenizer.from_file(smollm2_path)
    cases = [(dict(json_schema={"type": "object", "properties": {"a": {"type": "strin"}}}), "strin"),
             (dict(json_schema={"properties": {"p": {"$ref": "#/$defs/nowhere"}}}), "nowhere"),
             (dict(json_schema='{"type": "object",'), "not valid JSON"),
             (dict(grammar='root ::= "a" item\n'), "item"),
             (dict(grammar='root ::= "a" (\n'), "Expected ')'"),
             (dict(regex="a(b"), "unclosed group"),
             (dict(json_schema={"type": "integer"}, regex="[0-9]+"), "one constraint")]
    for kw, part in cases:
        with pytest.raises(ConstraintError) as e:
            compile_constraint(tok, **kw)
        msg = str(e.value)
        assert "\n" not in msg and part in msg, (kw, msg)


def test_a_compile_past_the_engine_limits_is_refused_with_the_limit(smollm2_path, monkeypatch):
    import time

    import llmlite.constrain as constrain
    from llmlite.tokenizer import Tokenizer

    tok = Tokenizer.from_file(smollm2_path)
    big = {"enum": [f"value{i}" for i in range(3000)]}
    compile_constraint(tok, json_schema=big)          # within the real limits
    monkeypatch.setitem(constrain._LIMITS, "initial_lexer_fuel", 1000)    # a limit this schema passes
    t = time.perf_counter()
    for check in (lambda: compile_constraint(tok, json_schema=big), lambda: constrain.check_constraint(json_schema=big)):
        with pytest.raises(ConstraintError, match="too big.*limit"):
            check()
    assert time.perf_counter() - t < 5          # refused, not worked through


def test_bad_schema_is_refused_before_any_token(smollm2_path):
    m = llmlite.load(smollm2_path, n_ctx=256)
    try:
        gen = m.generate("Hi", 8, json_schema={"type": "strin"})
        with pytest.raises(ConstraintError, match="strin"):
            next(gen)
        assert m.n_past == 0          # nothing was evaluated
    finally:
        m.close()


def test_regex_output_matches(smollm2_path):
    import re

    m = llmlite.load(smollm2_path, n_ctx=256)
    try:
        out = "".join(m.generate("A product code:", 32, regex=r"[A-Z]{3}-[0-9]{4}", temperature=0.8, seed=3))
    finally:
        m.close()
    assert re.fullmatch(r"[A-Z]{3}-[0-9]{4}", out), out


def test_open_numbers_get_bounds_given_ones_are_kept():
    s = bounded_numbers({"type": "object", "properties": {
        "n": {"type": "number"}, "i": {"type": "integer", "maximum": 10 ** 20},
        "k": {"enum": [{"type": "number"}]}}})
    n, i, k = (s["properties"][x] for x in "nik")
    assert n["maximum"] == 10 ** 15 - 1 and n["minimum"] == -(10 ** 15 - 1) and n["multipleOf"] == 1e-9
    assert i["maximum"] == 10 ** 20 and "multipleOf" not in i
    assert k == {"enum": [{"type": "number"}]}     # a value, not a subschema
    named_type = {"type": "object", "properties": {"type": {"type": "integer"}}}    # a property called "type"
    assert bounded_numbers(named_type)["properties"]["type"]["maximum"] == 10 ** 15 - 1


def test_lookup_gives_the_same_output_under_a_schema(smollm2_path):
    schema = {"type": "object", "properties": {"items": {"type": "array", "maxItems": 6, "items": {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "qty": {"type": "integer"}},
        "required": ["name", "qty"], "additionalProperties": False}}}, "required": ["items"],
        "additionalProperties": False}
    doc = ('{"items": [{"name": "apple", "qty": 3}, {"name": "pear", "qty": 2}, {"name": "plum", "qty": 7}]}')
    m = llmlite.load(smollm2_path, n_ctx=1024)
    try:
        ids = ask(m, f"Copy this JSON exactly: {doc}")
        outs = {}
        for lookup, temp in ((False, 0), (True, 0), (False, 0.8), (True, 0.8)):
            st = GenStats()
            outs[lookup, temp] = "".join(m.generate(ids, 96, json_schema=schema, lookup=lookup, temperature=temp,
                                                    seed=5, stats=st))
            if lookup:
                assert st.drafted > 0 and st.accepted > 0
    finally:
        m.close()
    assert outs[True, 0] == outs[False, 0]
    assert outs[True, 0.8] == outs[False, 0.8]
    jsonschema.validate(json.loads(outs[True, 0]), schema)


@pytest.mark.parametrize("n", [1, 31, 32, 33, 1000, 49152 + 7])
def test_mask_logits_matches_the_bitmask(n):
    """csrc/mask.c: -inf exactly where the bit is clear (lowest bit first), ids past the
    mask's words forbidden, the rest untouched"""
    from llmlite._lib import ffi, lib

    rng = np.random.default_rng(n)
    logits = rng.standard_normal(n).astype(np.float32)
    words = rng.integers(0, 1 << 32, (n + 31) // 32, dtype=np.uint64).astype(np.uint32)
    words[::3] = 0xFFFFFFFF                       # all allowed: skipped
    words[1::5] = 0
    short = max(1, words.size - 1)                # a mask one word short of the row
    for nw in (words.size, short):
        row = logits.copy()
        lib.llm_mask_logits(ffi.cast("float *", row.ctypes.data), n, ffi.cast("unsigned int *", words.ctypes.data), nw)
        bits = np.unpackbits(words[:nw].view(np.uint8), bitorder="little").astype(bool)
        keep = np.zeros(n, dtype=bool)
        keep[:min(n, bits.size)] = bits[:n]
        assert np.array_equal(row, np.where(keep, logits, np.float32(-np.inf)))
