"""Qwen3-Coder's and Qwen 3.5's XML tool calls (llmlite/tool_formats/xml_calls.py):
the templates are told apart from Hermes's JSON calls, ToolSet.render through the
real templates writes tools, an earlier call and its result as the templates do, a
reply's calls are read back with values typed by the tool's schema, and the grammar
on SmolLM2's vocabulary takes a call as the templates write it token by token and
refuses an undeclared tool, an undeclared parameter, a bad value and a missing
required parameter. The templates are llama.cpp's models/templates copies
(tests/data/templates/README.md)."""
from pathlib import Path

import pytest
from test_tool_formats import TOOLS, check, walk

from llmlite.chat import ChatTemplate
from llmlite.tokenizer import Tokenizer
from llmlite.tool_formats import Call, Hermes, QwenXML, Tool, format_for
from llmlite.tools import ToolSet

TEMPLATES = Path(__file__).parent / "data" / "templates"
QWEN35 = (TEMPLATES / "qwen3.5-4b.jinja").read_text()
CODER = (TEMPLATES / "qwen3-coder.jinja").read_text()

SEARCH = Tool("search", "Search the docs", {
    "type": "object", "required": ["query", "limit"],
    "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}, "exact": {"type": "boolean"},
                   "filters": {"type": "object", "properties": {"lang": {"type": "string"}}},
                   "tags": {"type": "array", "items": {"type": "string"}}, "mode": {"enum": ["fast", "full"]},
                   "score": {"type": ["number", "string"]}}})
XML_TOOLS = TOOLS + [SEARCH]


def xml_call(name, **params) -> str:
    """a call as the templates write it (a string raw, anything else JSON)"""
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


PARIS = xml_call("get_weather", city="Paris", unit="c")
CET = xml_call("get_time", zone="CET")


@pytest.fixture(scope="module")
def smol(smollm2_path):
    return Tokenizer.from_file(smollm2_path)


# ---- which family ------------------------------------------------------------------------------

def test_format_for_qwen_xml():
    assert (format_for(QWEN35).name, format_for(QWEN35).think) == ("qwen-xml", True)
    assert (format_for(CODER).name, format_for(CODER).think) == ("qwen-xml", False)
    assert isinstance(format_for((TEMPLATES / "qwen3-0.6b.jinja").read_text()), Hermes)
    # markers with no newline between them: another family's, as llama.cpp tells them apart
    other = "{{ '<tool_call><function=' ~ tool_call.name ~ '>' }}<parameter="
    assert format_for(other).name == "generic"


# ---- the prompt ----------------------------------------------------------------------------------

HISTORY = [{"role": "user", "content": "Weather in Paris, and find the docs?"},
           {"role": "assistant", "content": "Checking.", "tool_calls": [
               {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
               {"id": "call_2", "type": "function",
                "function": {"name": "search", "arguments": {"query": "a b", "limit": 3, "tags": ["x"]}}}]},
           {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees"},
           {"role": "tool", "tool_call_id": "call_2", "content": "no hits"}]
CALLS_TEXT = ("<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>\n"
              "<tool_call>\n<function=search>\n<parameter=query>\na b\n</parameter>\n<parameter=limit>\n3\n"
              "</parameter>\n<parameter=tags>\n[\"x\"]\n</parameter>\n</function>\n</tool_call>")


@pytest.mark.parametrize("source, turn, results", [
    (QWEN35, "<|im_start|>assistant\n<think>\n\n</think>\n\nChecking.\n\n",
     "<|im_start|>user\n<tool_response>\n18 degrees\n</tool_response>\n<tool_response>\nno hits\n</tool_response>"
     "<|im_end|>\n<|im_start|>assistant\n<think>\n"),
    (CODER, "<|im_start|>assistant\nChecking.\n\n",
     "<|im_start|>user\n<tool_response>\n18 degrees\n</tool_response>\n<tool_response>\nno hits\n</tool_response>\n"
     "<|im_end|>\n<|im_start|>assistant\n"),
], ids=["qwen3.5", "qwen3-coder"])
def test_render(source, turn, results):
    """the tools in the system turn, the earlier calls in XML, the results in one user turn"""
    ts = ToolSet.from_openai([t.openai() for t in XML_TOOLS])
    prompt = ts.render(ChatTemplate(source, "", "<|im_end|>"), HISTORY)
    assert prompt.count("<function=example_function_name>") == 1 and "search" in prompt.split("<|im_end|>")[0]
    assert turn + CALLS_TEXT + "<|im_end|>\n" + results in prompt
    assert prompt.endswith(results)
    # the calls as written read back as they were made
    content, calls = format_for(source).parse(turn.split("\n", 1)[1] + CALLS_TEXT, XML_TOOLS)
    assert calls == [Call("get_weather", {"city": "Paris"}),
                     Call("search", {"query": "a b", "limit": 3, "tags": ["x"]})]
    assert content.endswith("Checking.")


# ---- reading replies ---------------------------------------------------------------------------

def test_parse_typed_values():
    q = QwenXML()
    reply = ("I will look both up.\n\n" + xml_call("search", query="1234", limit="5", exact="true",
                                                     filters='{"lang": "en"}', tags='["a", "b"]', mode="full",
                                                     score="0.5")
             + "\n" + xml_call("search", query="two\nlines", limit="2", score="high"))
    content, calls = q.parse(reply, XML_TOOLS)
    assert content == "I will look both up."
    assert calls == [Call("search", {"query": "1234", "limit": 5, "exact": True, "filters": {"lang": "en"},
                                     "tags": ["a", "b"], "mode": "full", "score": 0.5}),
                     Call("search", {"query": "two\nlines", "limit": 2, "score": "high"})]
    # no tools: a value is JSON where it parses, else its text
    assert q.parse(xml_call("search", query="1234", note="a b"))[1] == [Call("search", {"query": 1234, "note": "a b"})]
    # Jinja's `string` of a bool (an earlier call as the template writes it)
    assert q.parse(xml_call("search", query="x", limit="1", exact="False"), XML_TOOLS)[1][0].arguments["exact"] is False


def test_parse_content_and_malformed():
    q = QwenXML()
    assert q.parse("It is sunny.", XML_TOOLS) == ("It is sunny.", [])
    assert q.parse(PARIS + "\n" + CET, XML_TOOLS) == ("", [Call("get_weather", {"city": "Paris", "unit": "c"}),
                                                           Call("get_time", {"zone": "CET"})])
    # cut off inside the closing tag: the function block is whole, so the call counts
    assert q.parse(CET[:-5], XML_TOOLS) == ("", [Call("get_time", {"zone": "CET"})])
    for bad in (xml_call("search", query="x", limit="five"),             # no integer
                xml_call("search", query="x", limit="[1"),
                "<tool_call>\n<function=get_time>\nzone=CET\n</function>\n</tool_call>",     # no parameter block
                '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>'):
        assert q.parse(bad, XML_TOOLS) == (bad, []), bad
    # a call cut off at the end (the token limit) is neither a call nor content
    assert q.parse("Let me check.\n" + CET[:40], XML_TOOLS) == ("Let me check.", [])
    assert q.parse(CET + "\n" + PARIS[:50], XML_TOOLS) == ("", [Call("get_time", {"zone": "CET"})])
    # a malformed block stays content; a good one beside it is still read
    bad = xml_call("search", query="x", limit="five")
    content, calls = q.parse(bad + "\n" + CET, XML_TOOLS)
    assert calls == [Call("get_time", {"zone": "CET"})] and content == bad


# ---- the grammar ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def thinker(smollm2_path):
    """SmolLM2's vocabulary with <think> and </think> as Qwen's hold them (user-defined)"""
    from llmlite.gguf import open_gguf

    md = open_gguf(smollm2_path).metadata

    def get(k):
        return md["tokenizer.ggml." + k]

    added = ["<think>", "</think>"]
    return Tokenizer("gpt2", list(get("tokens")) + added, token_types=list(get("token_type")) + [4] * len(added),
                     merges=get("merges"), pre=get("pre"),
                     special_ids={"bos": int(get("bos_token_id")), "eos": int(get("eos_token_id"))})


BAD = [("<tool_call>\n<function=get_", "wether>\n"),                                   # undeclared tool
       ("<tool_call>\n<function=get_weather>\n<parameter=", "town>\nParis\n</parameter>\n"),   # undeclared parameter
       ("<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=unit>\n", "k\n"),
       ("<tool_call>\n<function=search>\n<parameter=query>\nx\n</parameter>\n<parameter=limit>\n", "five\n"),
       ("<tool_call>\n<function=get_weather>\n", "</function>\n"),                     # city is required
       ("<tool_call>\n<function=search>\n<parameter=query>\nx\n</parameter>\n", "</function>\n")]


def test_grammar(smol):
    q = QwenXML(think=True)
    full = xml_call("search", query="a </parameter> b\nc", limit="3", exact="true", filters='{"lang": "en"}',
                    tags='["a"]', mode="fast", score="any text")
    check(smol, q, False, ["It is sunny.", "Let me see.\n\n" + PARIS + "\n" + CET + "\nDone.", full],
          [("Let me see.\n\n" + p, t) for p, t in BAD[:2]] + BAD, tools=XML_TOOLS)
    # forced: calls only; SmolLM2 has no think markers, so no think block either
    check(smol, q, True, [PARIS, PARIS + "\n" + full],
          BAD + [("", "It is sunny."), ("", "<think>\nHm.\n</think>")], tools=XML_TOOLS)


def test_grammar_think_prelude(thinker):
    """forced, a thinking vocabulary: the first call may follow free text (the thinking
    in the block the prompt opened), the calls end the reply"""
    g = QwenXML(think=True).grammar(TOOLS, True, thinker)
    check(thinker, QwenXML(think=True), True,
          ["The user wants Paris.\n</think>\n\n" + PARIS, "<think>\nParis.\n</think>\n\n" + PARIS, PARIS,
           "Two.\n</think>\n\n" + PARIS + "\n" + CET],
          [(PARIS, "\nIt is sunny.")] + BAD[:1] + BAD[4:5])
    assert walk(thinker, g, "Paris.\n</think>\n\nIt is sunny.")[1] is False       # no call: not a whole reply
    check(thinker, QwenXML(think=False), True, [PARIS], [("", "Paris.\n</think>")])


def test_open_schema_takes_further_parameters(smol):
    loose = Tool("note", "", {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
                              "additionalProperties": True})
    call = xml_call("note", text="hi", color="red")
    check(smol, QwenXML(), True, [call], tools=[loose])
    n, _ = walk(smol, QwenXML().grammar([Tool("note", "", {**loose.parameters, "additionalProperties": False})],
                                        True, smol), call)
    assert n < len(smol.encode(call, add_special=False))


def test_string_length_bounds(smol):
    """a raw string is held to its schema's length (else nothing but the closing tag ends it)"""
    short = Tool("get_weather", "", {"type": "object", "properties": {"city": {"type": "string", "minLength": 2,
                                                                              "maxLength": 12}}})
    head = "<tool_call>\n<function=get_weather>\n<parameter=city>\n"
    check(smol, QwenXML(), True, [xml_call("get_weather", city="Paris\nFrance")],
          [(head + "Paris, France", " is a city\n</parameter>\n"), (head + "P", "\n</parameter>\n")], tools=[short])
