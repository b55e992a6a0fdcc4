"""How each chat-template family writes a tool call, and how llmlite reads one back.

A format knows three things about its family (as llama.cpp's common/chat.cpp knows
them, each checked against the family's published template):

* ``matches(source)``: whether a chat template is this family's;
* ``call_text`` / ``parse``: the text of a call, and the calls and plain content of a
  reply (a reply that does not parse as calls is content, never an error);
* ``grammar(tools, forced)``: a Lark grammar for llguidance (llmlite/constrain.py) that
  lets free text through and makes every call that starts parse and name a declared
  tool with arguments valid for its schema (``forced``: the reply is calls only). The
  free text is a lazy lexeme that ends at the call's opening text, so the mask costs
  ~0.02 ms a token until a call begins.

Families whose template renders tools itself (``native``: Qwen's ``<tool_call>``
Hermes style, Llama 3.x, Mistral, gpt-oss harmony) get the tools and the tool
messages as they are. The others (``generic``, and Gemma's plain-text convention)
get a system message that lists the tools and says how to call one, earlier calls
written in the format's own text, and tool results as user messages.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Optional

# llmlite/constrain.py's JSON layout, for the %json parts of a tool grammar
_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict            # a JSON schema of the arguments object

    def openai(self) -> dict:
        """the OpenAI form templates read (tools[i].function.name ...)"""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


@dataclass
class Call:
    name: str
    arguments: dict

    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


def _schema(node: dict) -> dict:
    from llmlite.constrain import bounded_numbers

    return {**bounded_numbers(node), "x-guidance": _LAYOUT}


def _json(node: dict) -> str:
    return "%json " + json.dumps(_schema(node))


def _lit(s: str) -> str:
    return json.dumps(s)


def _call_object(tool: Tool, args_key: str = "arguments") -> dict:
    return {"type": "object", "properties": {"name": {"const": tool.name}, args_key: tool.parameters},
            "required": ["name", args_key], "additionalProperties": False}


def _lazy(triggers_and_bodies: list, forced: bool, sep: str = "\n") -> str:
    """A grammar of free text and calls: each (trigger, body) is a call that opens with
    the trigger text (the free text before it a lazy lexeme ending there). forced: the
    reply is one call or more, separated by sep, and nothing else."""
    rules = [f"call_{i}: {_lit(trig)} {body}" for i, (trig, body) in enumerate(triggers_and_bodies)]
    calls = " | ".join(f"call_{i}" for i in range(len(triggers_and_bodies)))
    if forced:
        head = f"start: call ({_lit(sep)} call)*\ncall: {calls}\n"
        return head + "\n".join(rules) + "\n"
    lazy = [f"call_{i}_text[lazy]: TEXT {_lit(trig)}" for i, (trig, _) in enumerate(triggers_and_bodies)]
    rules = [f"call_{i}: call_{i}_text {body}" for i, (_, body) in enumerate(triggers_and_bodies)]
    return ("%llguidance {}\nstart: (" + calls + ")* TEXT\nTEXT: /(.|\\n)*/\n"
            + "\n".join(lazy + rules) + "\n")


def _loads(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


def _as_call(obj, args_keys=("arguments", "parameters")) -> Optional[Call]:
    """{"name": ..., "arguments": {...}} (or "parameters"; arguments may be JSON text) -> a Call"""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    if isinstance(obj.get("function"), dict):             # {"type": "function", "function": {...}}
        return _as_call(obj["function"], args_keys)
    args = next((obj[k] for k in args_keys if k in obj), {})
    if isinstance(args, str):
        args = _loads(args)
    return Call(obj["name"], args) if isinstance(args, dict) else None


class ToolFormat:
    """The base: how a family's calls look. Subclasses set the class attributes."""

    name = "?"
    native = True                # the template renders tools and tool messages itself
    triggers: tuple = ()         # texts that open a call (streaming holds text from there on)
    at_start = False             # a call is recognised only at the start of the reply

    @classmethod
    def matches(cls, source: str) -> bool:
        raise NotImplementedError

    def grammar(self, tools: list[Tool], forced: bool) -> str:
        raise NotImplementedError

    def parse(self, text: str) -> tuple[str, list[Call]]:
        raise NotImplementedError

    def call_text(self, calls: list[Call]) -> str:
        """the text of earlier calls in the history (non-native formats)"""
        raise NotImplementedError

    def system_text(self, tools: list[Tool]) -> str:
        """the instructions a non-native template gets as its system message"""
        raise NotImplementedError

    def result_text(self, name: str, content: str) -> str:
        """a tool's result as a user message (non-native formats)"""
        return json.dumps({"tool_response": {"name": name, "content": content}}, ensure_ascii=False)

    def find_call(self, text: str) -> int:
        """where the first call begins in a reply's text, -1 for none yet"""
        if self.at_start:
            s = text.lstrip()
            return len(text) - len(s) if s.startswith(self.triggers) else -1
        return min((i for i in (text.find(t) for t in self.triggers) if i >= 0), default=-1)


class Hermes(ToolFormat):
    """Qwen 2.5 / 3 (and Hermes 2 Pro, SmolLM3): <tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>"""

    name = "hermes"
    triggers = ("<tool_call>",)
    _CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)

    @classmethod
    def matches(cls, source: str) -> bool:
        return "<tool_call>" in source

    def grammar(self, tools, forced):
        return _lazy([("<tool_call>", f'"\\n" {_json(_call_object(t))} "\\n</tool_call>"') for t in tools], forced)

    def parse(self, text):
        calls, content, last = [], [], 0
        for m in self._CALL.finditer(text):
            call = _as_call(_loads(m.group(1)))
            if call is None:
                continue
            content.append(text[last:m.start()])
            calls.append(call)
            last = m.end()
        content.append(text[last:])
        return "".join(content).strip() if calls else text, calls


class Llama3(ToolFormat):
    """Llama 3.1-3.3: the reply is {"name": ..., "parameters": {...}} (maybe after <|python_tag|>)"""

    name = "llama3"
    triggers = ('{"', "<|python_tag|>")
    at_start = True

    @classmethod
    def matches(cls, source: str) -> bool:
        return "<|start_header_id|>" in source and "tools" in source

    def grammar(self, tools, forced):
        # free text in front of a call would be read as content: a call is the whole reply
        alts = [_json(_call_object(t, "parameters")) for t in tools]
        calls = " | ".join(f"c{i}" for i in range(len(alts)))
        rules = "".join(f"c{i}: {a}\n" for i, a in enumerate(alts))
        if forced:
            return f"start: {calls}\n{rules}"
        return f"%llguidance {{}}\nstart: {calls} | TEXT\nTEXT: /[^{{\\s](.|\\n)*/\n{rules}"

    def parse(self, text):
        s = text.strip()
        if s.startswith("<|python_tag|>"):
            s = s[len("<|python_tag|>"):].strip()
        calls = [_as_call(_loads(p)) for p in s.split(";")] if s.startswith("{") else []
        if calls and all(calls):
            return "", calls
        return text, []


class Mistral(ToolFormat):
    """Mistral: [TOOL_CALLS][{"name": ..., "arguments": {...}}] (v3), or
    [TOOL_CALLS]name[ARGS]{...} per call (the 2025 templates, whose source has [ARGS])"""

    name = "mistral"
    triggers = ("[TOOL_CALLS]",)

    def __init__(self, args_form: bool = False):
        self.args_form = args_form

    @classmethod
    def matches(cls, source: str) -> bool:
        return "[TOOL_CALLS]" in source

    def grammar(self, tools, forced):
        if self.args_form:
            return _lazy([("[TOOL_CALLS]", f"{_lit(t.name + '[ARGS]')} {_json(t.parameters)}") for t in tools],
                         forced, sep="")
        arr = {"type": "array", "minItems": 1, "items": {"anyOf": [_call_object(t) for t in tools]}}
        return _lazy([("[TOOL_CALLS]", _json(arr))], forced)

    _ARGS = re.compile(r"\[TOOL_CALLS\]\s*([^\[\s]+)\s*\[ARGS\]")

    def parse(self, text):
        i = text.find("[TOOL_CALLS]")
        if i < 0:
            return text, []
        head, body = text[:i].strip(), text[i:]
        calls = []
        if self._ARGS.match(body):
            dec = json.JSONDecoder()
            for m in self._ARGS.finditer(body):
                try:
                    args, _ = dec.raw_decode(body, m.end())
                except ValueError:
                    return text, []
                calls.append(Call(m.group(1), args) if isinstance(args, dict) else None)
        else:
            try:
                arr, _ = json.JSONDecoder().raw_decode(body, len("[TOOL_CALLS]"))
            except ValueError:
                return text, []
            calls = [_as_call(o) for o in (arr if isinstance(arr, list) else [arr])]
        return (head, calls) if calls and all(calls) else (text, [])


class Harmony(ToolFormat):
    """gpt-oss: a commentary message to a function,
    <|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>
    (its reasoning is llmlite/reasoning.py's; this reads the raw reply)"""

    name = "harmony"
    triggers = (" to=functions.", "to=functions.")
    _CALL = re.compile(r"to=functions\.([\w.-]+)[^<]*(?:<\|channel\|>[^<]*)?(?:<\|constrain\|>\s*\w+\s*)?"
                       r"<\|message\|>(.*?)(?=<\|call\|>|<\|end\|>|<\|start\|>|$)", re.S)

    @classmethod
    def matches(cls, source: str) -> bool:
        return "<|channel|>" in source and "to=functions" in source

    def grammar(self, tools, forced):
        return _lazy([(" to=functions.", f"{_lit(t.name + ' <|constrain|>json<|message|>')} {_json(t.parameters)}")
                      for t in tools], forced, sep="")

    def parse(self, text):
        calls = []
        for m in self._CALL.finditer(text):
            args = _loads(m.group(2).strip())
            if not isinstance(args, dict):
                return text, []
            calls.append(Call(m.group(1), args))
        if not calls:
            return text, []
        return text[:text.find("to=functions.")].rsplit("<|start|>", 1)[0].strip(), calls


class Gemma(ToolFormat):
    """Gemma 2/3 (no tool support in the template): Google's plain-text convention, a
    Python call in a ```tool_code block; results go back in a ```tool_output block"""

    name = "gemma"
    native = False
    triggers = ("```tool_code",)
    _BLOCK = re.compile(r"```tool_code\s*\n(.*?)\n?```", re.S)

    @classmethod
    def matches(cls, source: str) -> bool:
        return "<start_of_turn>" in source and "tool" not in source

    def system_text(self, tools):
        sigs = "\n".join(json.dumps(t.openai()["function"], ensure_ascii=False) for t in tools)
        return ("You have access to the functions below. To call one, reply with a Python call in a "
                "tool_code block, with keyword arguments whose values are JSON, for example:\n"
                "```tool_code\nget_weather(city=\"Paris\")\n```\n"
                "The result comes back in a tool_output block. The functions:\n" + sigs)

    def call_text(self, calls):
        return "\n".join(f"```tool_code\n{_py_call(c)}\n```" for c in calls)

    def result_text(self, name, content):
        return f"```tool_output\n{content}\n```"

    def grammar(self, tools, forced):
        bodies = []
        for t in tools:
            props = (t.parameters or {}).get("properties") or {}
            req = [k for k in (t.parameters or {}).get("required", []) if k in props]
            # the required arguments, in the schema's order (a call always has them all)
            args = ' ", " '.join(f"{_lit(k + '=')} {_json(props[k])}" for k in req)
            bodies.append(f'"\\n" {_lit(t.name + "(")} {args} ")\\n```"')
        return _lazy([("```tool_code", b) for b in bodies], forced)

    def parse(self, text):
        calls, content, last = [], [], 0
        for m in self._BLOCK.finditer(text):
            for line in m.group(1).strip().splitlines():
                call = _parse_py_call(line.strip())
                if call is None:
                    return text, []
                calls.append(call)
            content.append(text[last:m.start()])
            last = m.end()
        content.append(text[last:])
        return ("".join(content).strip(), calls) if calls else (text, [])


class Generic(ToolFormat):
    """Any other template (SmolLM2's ChatML, say): llama.cpp's generic convention. The
    reply is JSON, {"tool_call": {"name": ..., "arguments": {...}}} or
    {"response": "..."}; with tools given it is always constrained to that."""

    name = "generic"
    native = False
    triggers = ("{",)
    at_start = True

    @classmethod
    def matches(cls, source: str) -> bool:
        return True

    def system_text(self, tools):
        sigs = "\n".join(json.dumps(t.openai()["function"], ensure_ascii=False) for t in tools)
        return ("You can call these tools:\n" + sigs + "\n\nReply in JSON: {\"tool_call\": {\"name\": <tool name>, "
                "\"arguments\": {<arguments>}}} to call a tool, or {\"response\": <your reply>} to answer.")

    def call_text(self, calls):
        c = calls[0]
        return json.dumps({"tool_call": {"name": c.name, "arguments": c.arguments}}, ensure_ascii=False)

    def grammar(self, tools, forced):
        call = {"type": "object", "properties": {"tool_call": {"anyOf": [_call_object(t) for t in tools]}},
                "required": ["tool_call"], "additionalProperties": False}
        if not forced:
            answer = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"],
                      "additionalProperties": False}
            call = {"anyOf": [call, answer]}
        return f"start: {_json(call)}\n"

    def parse(self, text):
        obj = _loads(text.strip())
        if isinstance(obj, dict):
            call = _as_call(obj.get("tool_call"))
            if call is not None:
                return "", [call]
            if isinstance(obj.get("response"), str):
                return obj["response"], []
        return text, []


# most specific first: a Llama or Mistral template may mention <tool_call> nowhere, a
# Qwen template never has [TOOL_CALLS]
FORMATS = (Harmony, Mistral, Hermes, Llama3, Gemma, Generic)


def format_for(source: Optional[str]) -> ToolFormat:
    """the tool-call format of a chat template (its Jinja source)"""
    src = source or ""
    for cls in FORMATS:
        if cls.matches(src):
            return Mistral(args_form="[ARGS]" in src) if cls is Mistral else cls()
    return Generic()


# ---- Gemma's Python calls -----------------------------------------------------------------------

_PY_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _py_value(node):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _PY_NAMES:
        return _PY_NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_py_value(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_py_value(k): _py_value(v) for k, v in zip(node.keys, node.values)}
    raise ValueError("not a literal")


def _parse_py_call(line: str) -> Optional[Call]:
    """name(k=v, ...) with literal values (JSON's true/false/null too) -> a Call"""
    try:
        node = ast.parse(line, mode="eval").body
        if not (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) and not node.args):
            return None
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        return Call(name, {k.arg: _py_value(k.value) for k in node.keywords if k.arg})
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return None


def _py_call(c: Call) -> str:
    return f"{c.name}(" + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in c.arguments.items()) + ")"
