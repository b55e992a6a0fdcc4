"""llmlite/tools.py: tools declared through the model's template (native and
polyfilled), the streamed split of content and calls, tool calls in a Chat (with
prompt lookup or without: the same reply), and `llmlite run --tools`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import llmlite

from llmlite.chat import ChatTemplate
from llmlite.tool_formats import Call, Generic, Hermes
from llmlite.tools import ToolError, ToolSet

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}}, "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather now",
                                           "parameters": WEATHER}}]
QWEN = Path(__file__).parent / "data" / "templates" / "qwen3-0.6b.jinja"
CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
HISTORY = [{"role": "user", "content": "Weather in Oslo?"},
           {"role": "assistant", "content": "", "tool_calls": [
               {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
           {"role": "tool", "tool_call_id": "call_1", "content": "-3 degrees, snow"}]


def test_tool_sets_are_checked():
    assert ToolSet.from_openai(None, None) is None and ToolSet.from_openai([], "none") is None
    bare = ToolSet.from_openai([TOOLS[0]["function"]])           # a bare function is a tool too
    assert [t.name for t in bare.tools] == ["get_weather"] and bare.choice == "auto"
    assert ToolSet.from_openai(TOOLS, {"type": "function", "function": {"name": "get_weather"}}).choice == "required"
    for tools, choice, param in ((TOOLS, "sometimes", "tool_choice"), (None, "required", "tool_choice"),
                                 ([{"type": "function", "function": {"name": ""}}], None, "tools"),
                                 ([{"function": {"name": "f", "parameters": {"type": "array"}}}], None, "tools")):
        with pytest.raises(ToolError) as e:
            ToolSet.from_openai(tools, choice)
        assert e.value.param == param and "\n" not in str(e.value)


def test_native_template_gets_the_tools_and_the_history():
    ts = ToolSet.from_openai(TOOLS)
    text = ts.render(ChatTemplate(QWEN.read_text()), HISTORY)
    assert '"name": "get_weather"' in text.split("</tools>")[1]            # the tools, as the template lists them
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
    assert "<tool_response>\n-3 degrees, snow\n</tool_response>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_polyfilled_template_gets_instructions_and_user_results():
    ts = ToolSet.from_openai(TOOLS)
    text = ts.render(ChatTemplate(CHATML), HISTORY)
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\n") and '"get_weather"' in system and "tool_call" in system
    assert '<|im_start|>assistant\n{"tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}}}' in text
    assert '<|im_start|>user\n{"tool_response": {"name": "get_weather", "content": "-3 degrees, snow"}}' in text
    # tool_choice none: no instructions (the reply is free text), the history as before
    none = ToolSet.from_openai(TOOLS, "none").render(ChatTemplate(CHATML), HISTORY)
    assert "<|im_start|>system" not in none and '"tool_response"' in none


def _split(ts, fmt, pieces):
    content, calls = "", []
    for kind, x in ts.stream(fmt, pieces):
        if kind == "content":
            content += x
        else:
            calls += x
    return content, calls


@pytest.mark.parametrize("reply", [
    'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>',
    'Just text, and a < sign, no call.',
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'])
def test_streamed_split_equals_the_whole(reply):
    ts, fmt = ToolSet.from_openai(TOOLS), Hermes()
    whole = _split(ts, fmt, [reply])
    assert _split(ts, fmt, list(reply)) == whole            # a character at a time: the same
    assert (whole[0].strip(), whole[1]) == fmt.parse(reply)   # streamed content keeps its spacing
    # content streams as it comes, but for an end that may begin a call ("<", "<tool")
    if reply.startswith("Let"):
        for cut in (13, 14, 18):
            assert next(ts.stream(fmt, iter([reply[:cut], reply[cut:]]))) == ("content", "Let me look.\n")


def test_generic_reply_is_held_and_read():
    ts, fmt = ToolSet.from_openai(TOOLS), Generic()
    call = '{"tool_call": {"name": "get_weather", "arguments": {"city": "Rome"}}}'
    content, calls = _split(ts, fmt, list(call))
    assert content == "" and [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Rome"})]
    assert _split(ts, fmt, list('{"response": "It is sunny."}')) == ("It is sunny.", [])


def test_chat_calls_join_the_history_and_lookup_changes_nothing(smollm2_path):
    import llmlite as api
    from llmlite.chat import Chat

    m = api.load(smollm2_path, n_ctx=1024)
    try:
        outs = {}
        for lookup in (False, True):
            chat = Chat(m, tools=ToolSet.from_openai(TOOLS, "required"))
            text = "".join(chat.reply("What is the weather in Rome?", max_tokens=60, temperature=0, lookup=lookup))
            calls = [(c.name, c.arguments) for c in chat.last_calls]
            assert calls and all(name == "get_weather" and set(a) == {"city"} for name, a in calls)
            assert chat.messages[-1]["tool_calls"][0]["function"]["name"] == "get_weather"
            outs[lookup] = text, calls
        assert outs[False] == outs[True]
    finally:
        m.close()


def test_run_tools(smollm2_path, tmp_path):
    f = tmp_path / "tools.json"
    f.write_text(json.dumps(TOOLS))
    r = llmlite("run", smollm2_path, "-p", "What is the weather in Rome?", "-n", "60", "--temp", "0",
                "--tools", str(f), "--tool-choice", "get_weather")
    assert r.returncode == 0, r.stderr
    call = json.loads(r.stdout.strip().splitlines()[-1])
    assert call["name"] == "get_weather" and isinstance(call["arguments"]["city"], str)
    # the REPL: the call printed, /tool gives its result, the model goes on (piped, so no pty)
    r = llmlite("run", smollm2_path, "--tools", str(f), "--tool-choice", "none", "--temp", "0", "-n", "24",
                input="What is the weather in Rome?\n/tool 18 degrees, sunny\n/tool more\n")
    assert r.returncode == 0, r.stderr
    assert "/tool: no tool call to answer" in r.stderr and r.stderr.count("generated") == 1
    r = llmlite("run", smollm2_path, "--tools", str(f), "--tool-choice", "required", "--temp", "0", "-n", "60",
                input="What is the weather in Rome?\n/tool 18 degrees, sunny\n")
    assert r.returncode == 0 and r.stderr.count("generated") == 2, r.stderr
    assert '"name": "get_weather"' in r.stdout and "cached)" in r.stderr      # the answer reuses the cache
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    for args, part in ((("--tools", str(bad)), "not valid JSON"), (("--tools", str(f), "--tool-choice", "nope"), "nope"),
                       (("--tool-choice", "auto"), "--tools"),
                       (("--tools", str(f), "--regex", "a+"), "cannot be used together")):
        r = llmlite("run", smollm2_path, "-p", "hi", "-n", "4", *args)
        assert r.returncode == 2 and part in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_gemma_history_alternates_and_mistral_ids_fit():
    """Gemma's template refuses two user turns in a row and (Gemma 2) any system turn:
    the instructions go into the first user turn, a turn's results into one message.
    Mistral's templates take only nine-character ids: one is made, the same for a call
    and its result."""
    from llmlite.chat import BUILTIN_TEMPLATES
    from llmlite.tool_formats import Gemma, Mistral
    from llmlite.tools import prepare_messages

    two = HISTORY[:1] + [{"role": "assistant", "content": "", "tool_calls": HISTORY[1]["tool_calls"] * 2},
                         HISTORY[2], {**HISTORY[2], "content": "wind 30 km/h"}]
    msgs = prepare_messages(two, Gemma())
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert "```tool_output\n-3 degrees, snow\n```\n```tool_output\nwind 30 km/h\n```" == msgs[2]["content"]
    text = ToolSet.from_openai(TOOLS).render(ChatTemplate(BUILTIN_TEMPLATES["gemma"]), two)
    assert text.count("<start_of_turn>user") == 2 and "get_weather" in text.split("<end_of_turn>")[0]
    m = prepare_messages(HISTORY, Mistral())
    ids = {m[1]["tool_calls"][0]["id"], m[2]["tool_call_id"]}
    assert len(ids) == 1 and len(ids.pop()) == 9


def test_stop_strings_end_content_never_a_call():
    ts, fmt = ToolSet.from_openai(TOOLS), Hermes()
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    out = list(ts.stream(fmt, list("Hi\nthere" + call), stop=["\n"]))
    assert "".join(x for k, x in out if k == "content") == "Hi" and out[-1] == ("stop", None)
    content, calls = _split(ts, fmt, list("Sure. " + call))
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Rome"})]
    kinds = [k for k, _ in ts.stream(fmt, list("Sure. " + call), stop=["\n"])]
    assert kinds == ["content"] * kinds.count("content") + ["calls"]      # "\n" inside the call stops nothing
    # parallel_tool_calls false: one call, the first
    one = ToolSet.from_openai(TOOLS, parallel=False)
    assert [c.arguments for c in _split(one, fmt, [call + "\n" + call.replace("Rome", "Oslo")])[1]] == [{"city": "Rome"}]


def test_named_choice_declares_every_tool_and_narrows_the_grammar():
    tools = TOOLS + [{"type": "function", "function": {"name": "get_time", "parameters": {
        "properties": {"city": {"type": "string"}}}}}]          # no "type": an object all the same
    ts = ToolSet.from_openai(tools, {"type": "function", "function": {"name": "get_time"}})
    assert ts.tools[1].parameters["type"] == "object"
    assert "get_weather" in ts.render(ChatTemplate(QWEN.read_text()), HISTORY[:1])
    g = ts.grammar(Hermes())
    assert "get_time" in g and "get_weather" not in g
    with pytest.raises(ToolError) as e:      # a named choice's schemas are checked too
        ToolSet.from_openai([{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"a": {"type": "strin"}}}}}], {"function": {"name": "f"}})
    assert e.value.param == "tools"


def test_chat_tool_results_and_the_answer(smollm2_path):
    """Chat.tool_result answers the last reply's calls; reply(None) has the model go on"""
    import llmlite as api
    from llmlite.chat import Chat

    m = api.load(smollm2_path, n_ctx=1024)
    try:
        chat = Chat(m, tools=ToolSet.from_openai(TOOLS, "required"))
        with pytest.raises(ValueError):
            chat.tool_result("too early")
        "".join(chat.reply("Weather in Rome?", max_tokens=40, temperature=0))
        first = chat.messages[-1]["tool_calls"][0]["id"]
        chat.tool_result("18 degrees, sunny")
        assert chat.messages[-1] == {"role": "tool", "tool_call_id": first, "content": "18 degrees, sunny"}
        chat.tools = ToolSet.from_openai(TOOLS, "none")
        answer = "".join(chat.reply(None, max_tokens=24, temperature=0))
        assert answer and chat.messages[-1]["role"] == "assistant" and not chat.last_calls
        with pytest.raises(ValueError):
            "".join(chat.reply(None))        # nothing to answer now
    finally:
        m.close()


def test_no_call_is_read_inside_a_leading_think_block():
    ts, fmt = ToolSet.from_openai(TOOLS), Hermes()
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    reply = "<think>\nI could write <tool_call> here, but I will not.\n</think>\n\n" + call
    for pieces in ([reply], list(reply)):
        out = list(ts.stream(fmt, pieces))
        content = "".join(x for k, x in out if k == "content")
        assert content.startswith("<think>\nI could write <tool_call> here") and content.rstrip().endswith("</think>")
        assert out[-1] == ("calls", [Call("get_weather", {"city": "Rome"})])


def test_generic_response_streams():
    """generic's {"response": "..."} is held as a call would be, but its text streams,
    escapes decoded, as it comes"""
    ts, fmt = ToolSet.from_openai(TOOLS), Generic()
    reply = '{"response": "Sunny, 18\\u00b0C.\\nA \\"nice\\" day \\ud83d\\ude00"}'
    out = list(ts.stream(fmt, list(reply)))
    assert all(k == "content" for k, _ in out) and len(out) > 10
    assert "".join(x for _, x in out) == json.loads(reply)["response"]
    # a reply the token limit cut: the text it has
    assert "".join(x for _, x in ts.stream(fmt, iter([reply[:24]]))) == "Sunny, 18"
