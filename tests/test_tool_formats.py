"""Tool-call formats per template family (llmlite/tool_formats/): which family a
template is, the calls read back out of replies as each family writes them, and each
family's grammar compiled on a real vocabulary: a call as the family writes it is
accepted token by token, a call to an undeclared tool or with arguments its schema
refuses is not, in auto mode (free text around calls) and forced (calls only).

The vocabulary is SmolLM2's with Mistral's and gpt-oss's markers added as the control
tokens their own vocabularies hold, so the grammars meet both kinds of marker: special
tokens ([TOOL_CALLS], [ARGS]: named by id) and plain text (<tool_call>; gpt-oss's
<|channel|>, <|message|>, <|constrain|>, which the vocabulary fix-ups make text)."""
from pathlib import Path

import numpy as np
import pytest

from llmlite.chat import BUILTIN_TEMPLATES
from llmlite.constrain import compile_constraint
from llmlite.tokenizer import ATTR_USER_DEFINED, Tokenizer
from llmlite.tool_formats import (
    Call,
    Gemma,
    Generic,
    Harmony,
    Hermes,
    Llama3,
    Mistral,
    Tool,
    _parse_py_call,
    format_for,
)

TEMPLATES = Path(__file__).parent / "data" / "templates"

WEATHER = Tool("get_weather", "The weather in a city now",
               {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                "required": ["city"]})
TIME = Tool("get_time", "The time in a zone", {"type": "object", "properties": {"zone": {"type": "string"}},
                                                "required": ["zone"]})
TOOLS = [WEATHER, TIME]
PARIS, CET = Call("get_weather", {"city": "Paris"}), Call("get_time", {"zone": "CET"})

# the markers as Mistral's and gpt-oss's vocabularies hold them: control tokens
ADDED = ["[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "[THINK]", "[/THINK]",
         "<|channel|>", "<|message|>", "<|constrain|>", "<|start|>", "<|end|>", "<|call|>", "<|return|>"]


@pytest.fixture(scope="module")
def smol(smollm2_path):
    return Tokenizer.from_file(smollm2_path)


@pytest.fixture(scope="module")
def vocab(smollm2_path):
    """SmolLM2's vocabulary with ADDED as control tokens"""
    from llmlite.gguf import open_gguf

    md = open_gguf(smollm2_path).metadata

    def get(k):
        return md["tokenizer.ggml." + k]

    return Tokenizer("gpt2", list(get("tokens")) + ADDED, token_types=list(get("token_type")) + [3] * len(ADDED),
                     merges=get("merges"), pre=get("pre"),
                     special_ids={"bos": int(get("bos_token_id")), "eos": int(get("eos_token_id"))})


def ids_of(tok, text):
    return tok.encode(text, add_special=False, parse_special=True)


def walk(tok, grammar, text):
    """Feed text's tokens to a fresh matcher one at a time, each checked against the
    mask first: how many were allowed, and whether the grammar was complete there."""
    c = compile_constraint(tok, grammar=grammar).start()
    ids = ids_of(tok, text)
    zeros = np.zeros(tok.n_vocab, np.float32)
    for n, t in enumerate(ids):
        if not np.isfinite(c.mask(zeros)[t]):
            return n, False
        c.commit(t)
    return len(ids), c.complete


def check(tok, fmt, forced, good, bad=(), tools=TOOLS):
    """every text of good is accepted whole and complete; each text of bad is refused
    after its first len(prefix) tokens (bad: (prefix, text) pairs)"""
    g = fmt.grammar(tools, forced, tokenizer=tok)
    for text in good:
        assert walk(tok, g, text) == (len(ids_of(tok, text)), True), text
    for prefix, text in bad:
        n, _ = walk(tok, g, prefix + text)
        assert len(ids_of(tok, prefix)) - 1 <= n < len(ids_of(tok, prefix + text)), (prefix, text)


# ---- which family a template is ------------------------------------------------------------------

LLAMA31 = ('<|start_header_id|>system<|end_header_id|>\n\nRespond in the format {"name": function name, '
           '"parameters": dictionary of argument name and its value}.{{ tools | tojson }}<|eot_id|>')


@pytest.mark.parametrize("source, name", [
    ((TEMPLATES / "qwen3-0.6b.jinja").read_text(), "hermes"),
    ((TEMPLATES / "gpt-oss-120b.jinja").read_text(), "harmony"),
    (BUILTIN_TEMPLATES["gemma"], "gemma"),                 # Gemma 3's (a GGUF without one gets it)
    (("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n"
      "{% endfor %}"), "gemma"),
    (LLAMA31, "llama3"),
    ("[AVAILABLE_TOOLS]{{ tools|tojson }}[/AVAILABLE_TOOLS]{{ '[TOOL_CALLS][' }}", "mistral"),
    (BUILTIN_TEMPLATES["chatml"], "generic"),
    # <tool_call> around XML (Qwen3-Coder, Qwen3.5) is not Hermes's JSON
    ("<|im_start|>{{ '<tool_call>\\n<function=' + tc.name + '>\\n' }}", "generic"),
    # a Llama 3 template that writes calls its own way (Functionary)
    ("<|start_header_id|>{{ '>>>' + tc.name }}{% if tools %}{% endif %}", "generic"),
    ("", "generic"),
])
def test_format_for(source, name):
    assert format_for(source).name == name


def test_format_for_mistral_generations():
    v3 = format_for("{{ '[TOOL_CALLS][' + calls|tojson + ']' }}")
    args = format_for("[SYSTEM_PROMPT]{{ '[TOOL_CALLS]' + name + '[ARGS]' + args }}[THINK]")
    ids = format_for("{{ '[TOOL_CALLS]' + name + '[CALL_ID]' + id + '[ARGS]' + args }}")
    assert (v3.args_form, v3.call_id, v3.think) == (False, False, False)
    assert (args.args_form, args.call_id, args.think) == (True, False, True)
    assert (ids.args_form, ids.call_id) == (True, True)


def test_format_for_smollm2_template(smol):
    assert format_for(smol.chat_template).name == "generic"


# ---- reading replies -----------------------------------------------------------------------------

def test_hermes_parse():
    h = Hermes()
    reply = ('Let me look that up.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
             '</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": "{\\"zone\\": \\"CET\\"}"}\n</tool_call>')
    assert h.parse(reply) == ("Let me look that up.", [PARIS, CET])
    # cut off inside the closing tag: the JSON is whole, so the call counts
    assert h.parse('<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool') == ("", [CET])
    # a malformed block stays content; a good one beside it is still read
    bad = '<tool_call>\n{"name": "get_weather", "arguments": {"city": }\n</tool_call>'
    assert h.parse(bad) == (bad, [])
    content, calls = h.parse(bad + "\nthen\n<tool_call>\n" + '{"name": "get_time", "arguments": {"zone": "CET"}}'
                             + "\n</tool_call>")
    assert calls == [CET] and content.startswith(bad)
    assert h.parse("It is sunny in Paris.") == ("It is sunny in Paris.", [])


def test_llama3_parse():
    ll = Llama3()
    assert ll.parse('{"name": "get_weather", "parameters": {"city": "Paris"}}') == ("", [PARIS])
    assert ll.parse('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}') == ("", [PARIS])
    # several calls separated by ";", a ";" inside an argument left alone
    two = '{"name": "get_time", "parameters": {"zone": "a;b"}}; {"name": "get_weather", "parameters": {"city": "Paris"}}'
    assert ll.parse(two) == ("", [Call("get_time", {"zone": "a;b"}), PARIS])
    for text in ("The weather is fine.", '{"name": "get_weather", "parameters": {"city": "Par',
                 '{"name": "get_weather", "parameters": {"city": "Paris"}} and more', '{"answer": 42}'):
        assert ll.parse(text) == (text, []), text


def test_mistral_parse():
    v3 = Mistral()
    assert v3.parse('Sure.[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "a1b2c3d4e"}, '
                    '{"name": "get_time", "arguments": {"zone": "CET"}, "id": "f5g6h7i8j"}]') == ("Sure.", [PARIS, CET])
    args = Mistral(args_form=True)
    assert args.parse('Checking both.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}'
                      '[TOOL_CALLS]get_time[ARGS]{"zone": "CET"}') == ("Checking both.", [PARIS, CET])
    assert args.parse('[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}') == ("", [PARIS])
    for text in ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Par',
                 '[TOOL_CALLS]get_weather{"city": "Paris"}', '[TOOL_CALLS]get_weather[ARGS]["Paris"]',
                 "[TOOL_CALLS][]", "No tools needed."):
        assert args.parse(text) == (text, []), text


def test_mistral_history_ids():
    """Nemo's and Small 3.2's templates take only nine letters or digits as a call's id"""
    m = Mistral()
    ids = [m.history_id(i) for i in ("call_0_0", "call_0_1", "call_0_0")]
    assert all(len(i) == 9 and i.isalnum() for i in ids) and ids[0] == ids[2] != ids[1]
    assert m.history_id("a1b2c3d4e") == "a1b2c3d4e"
    assert Hermes().history_id("call_0_0") == "call_0_0"


def test_harmony_parse():
    h = Harmony()
    channel = ('<|channel|>analysis<|message|>The user wants the weather.<|end|><|start|>assistant'
               '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}')
    assert h.parse(channel) == ("<|channel|>analysis<|message|>The user wants the weather.<|end|>", [PARIS])
    assert h.parse(channel + "<|call|>")[1] == [PARIS]
    role = ' to=functions.get_time<|channel|>commentary json<|message|>{"zone": "CET"}'
    assert h.parse(role) == ("", [CET])
    for text in ('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": ',
                 "<|channel|>final<|message|>It is sunny."):
        assert h.parse(text) == (text, []), text


def test_gemma_parse_and_history():
    g = Gemma()
    reply = ('I will check.\n```tool_code\nget_weather(city="Paris")\nget_time(zone=\'CET\')\n```\n'
             'One moment.')
    assert g.parse(reply) == ("I will check.\n\nOne moment.", [PARIS, CET])
    assert g.parse('```tool_code\nget_weather(city="Paris", unit=null)\n```')[1] == [
        Call("get_weather", {"city": "Paris", "unit": None})]
    assert _parse_py_call("get_weather(**kw)") is None
    # a tool name with "-" (Python would read a subtraction) or "."
    assert _parse_py_call('weather-now(city="Paris")') == Call("weather-now", {"city": "Paris"})
    assert _parse_py_call('maps.route(to="Rome")') == Call("maps.route", {"to": "Rome"})
    for text in ('```tool_code\nimport os\n```', '```tool_code\nget_weather("Paris")\n```',
                 '```tool_code\nget_weather(city=open("x"))\n```', "Just text."):
        assert g.parse(text) == (text, []), text
    # the history's calls are written so that parse reads them back
    calls = [Call("get_weather", {"city": "Zürich", "unit": "c"}), Call("get_time", {"zone": "a\"b"})]
    assert g.parse(g.call_text(calls)) == ("", calls)
    assert g.result_text("get_time", "12:00") == "```tool_output\n12:00\n```"


def test_generic_parse_and_history():
    g = Generic()
    assert g.parse('{"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}') == ("", [PARIS])
    assert g.parse('{"response": "Hello!"}') == ("Hello!", [])
    for text in ('{"tool_call": {"name": "get_weather"', '{"tool_call": {"arguments": {}}}', "plain"):
        assert g.parse(text) == (text, []), text
    for calls in ([PARIS], [PARIS, CET]):
        assert g.parse(g.call_text(calls)) == ("", calls)


# ---- grammars ------------------------------------------------------------------------------------

HERMES_CALLS = ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
                '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>')


def test_hermes_grammar(vocab):
    h = Hermes()
    bad = [("<tool_call>\n", '{"name": "get_wether", "arguments": {"city": "Paris"}}'),
           ('<tool_call>\n{"name": "get_weather", "arguments": {"city": ', '7}}')]
    check(vocab, h, False, ["It is sunny.", "Let me see.\n" + HERMES_CALLS + "\nDone."],
          [("Let me see.\n" + p, t) for p, t in bad])
    check(vocab, h, True, [HERMES_CALLS, "<think>\nBoth are needed.\n</think>\n\n" + HERMES_CALLS],
          bad + [("", "It is sunny.")])


def test_llama3_grammar(vocab):
    call = '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "c"}}'
    bad = [("", '{"name": "get_wether", "parameters": {}}'),
           ('{"name": "get_weather", "parameters": {"city": "Paris", "unit": ', '"k"}}')]
    check(vocab, Llama3(), False, [call, "It is sunny in Paris.", ""], bad)
    check(vocab, Llama3(), True, [call], bad + [("", "It is")])


@pytest.mark.parametrize("special", [True, False], ids=["special-markers", "text-markers"])
def test_mistral_grammar(vocab, smol, special):
    tok = vocab if special else smol         # SmolLM2 alone has no such tokens: the markers are text
    v3 = ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, '
          '{"name": "get_time", "arguments": {"zone": "CET"}, "id": "a1b2c3d4e"}]')
    check(tok, Mistral(), False, ["Sure.", "Sure." + v3],
          [("Sure.[TOOL_CALLS][", '{"name": "get_wether", "arguments": {}}]'),
           ('[TOOL_CALLS][{"name": "get_time", "arguments": {"zone": "CET"}, "id": "', 'short"}]')])
    check(tok, Mistral(), True, [v3], [("", "Sure.")])
    args = '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{"zone": "CET"}'
    bad = [("[TOOL_CALLS]", "get_wether[ARGS]{}"), ("[TOOL_CALLS]get_time[ARGS]", '{"zone": 7}')]
    check(tok, Mistral(args_form=True), False, ["Checking." + args, "No call."], [("Hm." + p, t) for p, t in bad[:1]] + bad)
    check(tok, Mistral(args_form=True, think=True), True, [args, "[THINK]Two calls.[/THINK]" + args],
          bad + [("", "No call.")])
    ids = '[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}'
    check(tok, Mistral(args_form=True, call_id=True), True, [ids],
          [("[TOOL_CALLS]get_weather[CALL_ID]", '12[ARGS]{"city": "Paris"}')])
    # with special markers, their text spelt out is no call: the grammar leaves it free text
    if special:
        g = Mistral(args_form=True).grammar(TOOLS, False, tokenizer=vocab)
        text = "[TOOL_CALLS]get_wether[ARGS]{}"
        assert vocab.encode(text, add_special=False)[0] != vocab.token_to_id("[TOOL_CALLS]")
        c = compile_constraint(vocab, grammar=g).start()
        assert c.accepts(vocab.encode(text, add_special=False)) == len(vocab.encode(text, add_special=False))


def test_marker_kinds(vocab, smol):
    """Mistral's markers are control tokens here, so its replies must be decoded with
    special tokens on; gpt-oss's headers are user-defined tokens (text) after the
    vocabulary fix-ups, and its <|call|> ends the generation"""
    assert Mistral().show_special(vocab) and not Mistral().show_special(smol)
    assert not Harmony().show_special(vocab) and not Hermes().show_special(vocab)
    for t in ("<|channel|>", "<|message|>", "<|constrain|>", "<|start|>", "<|end|>"):
        assert vocab.attr(vocab.token_to_id(t)) == ATTR_USER_DEFINED, t
    assert vocab.token_to_id("<|call|>") in vocab.eog_ids


def test_harmony_grammar(vocab):
    h = Harmony()
    channel = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}'
    role = ' to=functions.get_time<|channel|>commentary json<|message|>{"zone": "CET"}'
    analysis = "<|channel|>analysis<|message|>The user wants the weather.<|end|><|start|>assistant"
    bad = [("<|channel|>commentary to=functions.", 'get_wether <|constrain|>json<|message|>{}'),
           (" to=functions.get_weather<|channel|>commentary json<|message|>{", '"town": 1}')]
    check(vocab, h, False, [analysis + channel, role, analysis + "<|channel|>final<|message|>It is sunny."],
          [(analysis + p, t) for p, t in bad])
    check(vocab, h, True, [channel, role, analysis + channel, analysis + role],
          bad + [(analysis, "<|channel|>final<|message|>It is sunny.")])


def test_gemma_grammar(vocab):
    calls = '```tool_code\nget_weather(city="Paris", unit="c")\n```\n```tool_code\nget_time(zone="CET")\n```'
    opt = '```tool_code\nget_weather(city="Paris")\n```'
    bad = [("```tool_code\n", 'get_wether(city="Paris")\n```'), ("```tool_code\nget_weather(", 'unit="c")\n```'),
           ('```tool_code\nget_weather(city=', '3)\n```')]
    check(vocab, Gemma(), False, ["Checking.\n" + calls + "\nDone.", opt, "It is sunny."],
          [("Checking.\n" + p, t) for p, t in bad])
    check(vocab, Gemma(), True, [calls, opt], bad + [("", "It is sunny.")])
    none = Tool("ping", "", {"type": "object", "properties": {}})
    check(vocab, Gemma(), True, ["```tool_code\nping()\n```"], [("```tool_code\nping(", 'x=1)\n```')], tools=[none])


def test_generic_grammar(vocab):
    call = '{"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}'
    bad = [('{"tool_call": {"name": "', 'get_wether", "arguments": {}}}'),
           ('{"tool_call": {"name": "get_time", "arguments": {"zone": ', '1}}}')]
    check(vocab, Generic(), False, [call, '{"response": "It is sunny."}'], bad + [("", "It is sunny.")])
    check(vocab, Generic(), True, [call], bad + [("{", '"response": "It is sunny."}')])


@pytest.mark.parametrize("fmt, prefix, extra", [
    (Hermes(), '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", ', '"mode": "x"}}\n</tool_call>'),
    (Llama3(), '{"name": "get_weather", "parameters": {"city": "Paris", ', '"mode": "x"}}'),
    (Mistral(), '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", ', '"mode": "x"}}]'),
    (Mistral(args_form=True), '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", ', '"mode": "x"}'),
    (Harmony(), ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris", ', '"mode": "x"}'),
    (Gemma(), '```tool_code\nget_weather(city="Paris", ', 'mode="x")\n```'),
    (Generic(), '{"tool_call": {"name": "get_weather", "arguments": {"city": "Paris", ', '"mode": "x"}}}'),
], ids=["hermes", "llama3", "mistral-v3", "mistral-args", "harmony", "gemma", "generic"])
def test_undeclared_arguments(vocab, fmt, prefix, extra):
    """a schema that lists its properties takes no others (as llama.cpp's grammars read
    it), unless it allows them"""
    check(vocab, fmt, True, [], [(prefix, extra)])
    if isinstance(fmt, (Hermes, Generic)):
        open_ = Tool("get_weather", "", {**WEATHER.parameters, "additionalProperties": True})
        check(vocab, fmt, True, [prefix + extra], tools=[open_])


# a schema with named types (pydantic's): references that point at the tool's own root
REFS = Tool("get_weather", "", {
    "type": "object", "properties": {"loc": {"$ref": "#/$defs/Loc"}, "day": {"$ref": "#/definitions/Day"}},
    "required": ["loc"], "$defs": {"Loc": {"type": "object", "properties": {"city": {"type": "string"}},
                                           "required": ["city"]}},
    "definitions": {"Day": {"enum": ["mon", "tue"]}}})


@pytest.mark.parametrize("fmt, text", [
    (Hermes(), '<tool_call>\n{"name": "get_weather", "arguments": {"loc": {"city": "Oslo"}, "day": "mon"}}\n</tool_call>'),
    (Llama3(), '{"name": "get_weather", "parameters": {"loc": {"city": "Oslo"}, "day": "mon"}}'),
    (Mistral(), '[TOOL_CALLS][{"name": "get_weather", "arguments": {"loc": {"city": "Oslo"}, "day": "mon"}}]'),
    (Harmony(), ' to=functions.get_weather<|channel|>commentary json<|message|>{"loc": {"city": "Oslo"}, "day": "mon"}'),
    (Gemma(), '```tool_code\nget_weather(loc={"city": "Oslo"}, day="mon")\n```'),
    (Generic(), '{"tool_call": {"name": "get_weather", "arguments": {"loc": {"city": "Oslo"}, "day": "mon"}}}'),
], ids=["hermes", "llama3", "mistral", "harmony", "gemma", "generic"])
def test_references_resolve_where_the_schema_is_embedded(vocab, fmt, text):
    """a tool's schema is embedded in a call's object (or a property's alone): its
    $defs and definitions go to the root of each JSON part, so its references resolve"""
    check(vocab, fmt, True, [text], [(text.split('"Oslo"')[0], '3}')], tools=[REFS])
    assert fmt.parse(text, [REFS])[1] == [Call("get_weather", {"loc": {"city": "Oslo"}, "day": "mon"})]


def test_gemma_keywords_and_a_cut_hermes_call():
    """Gemma: a keyword Python would not take ("from"), a name that starts with a
    digit; Hermes: a call the reply's end cut is neither a call nor content"""
    assert Gemma().parse('```tool_code\n3d_print(from="Paris", first-name="A")\n```')[1] == [
        Call("3d_print", {"from": "Paris", "first-name": "A"})]
    call = '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>'
    assert Hermes().parse("ok " + call + '\n<tool_call>\n{"name": "get_we') == ("ok", [CET])
    assert Hermes().parse("a <tool_call> b") == ("a <tool_call> b", [])

