"""How each chat-template family writes a tool call, and how llmlite reads one back.

A format knows three things about its family (as llama.cpp's common/chat.cpp knows
them, each checked against the family's published template):

* ``matches(source)``: whether a chat template is this family's;
* ``call_text`` / ``parse``: the text of a call, and the calls and plain content of a
  reply (a reply that does not parse as calls is content, never an error);
* ``grammar(tools, forced, tokenizer)``: a Lark grammar for llguidance
  (llmlite/constrain.py) that lets free text through and makes every call that starts
  parse and name a declared tool with arguments valid for its schema (``forced``: the
  reply is calls only). The free text is a lexeme that ends at the call's opening
  marker (lazily where the marker is text), so the mask costs ~0.01 ms a token until
  a call begins and ~0.04 ms inside one (SmolLM2's vocabulary;
  benchmarks/tool_grammar_mask.py). A marker that is a special token of the model's
  vocabulary (Mistral's [TOOL_CALLS]) is named by id (``Marks``), and the reply must
  then be decoded with special tokens shown (``show_special``).

Families whose template renders tools itself (``native``: Qwen's ``<tool_call>``
Hermes style, Llama 3.x, Mistral, gpt-oss harmony) get the tools and the tool
messages as they are. The others (``generic``, and Gemma's plain-text convention)
get a system message that lists the tools and says how to call one, earlier calls
written in the format's own text, and tool results as user messages.
"""
from __future__ import annotations

import ast
import hashlib
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


def _schema(node) -> dict:
    from llmlite.constrain import bounded_numbers

    return {**bounded_numbers(node if isinstance(node, dict) else {}), "x-guidance": _LAYOUT}


def _json(node) -> str:
    return "%json " + json.dumps(_schema(node))


def _lit(s: str) -> str:
    return json.dumps(s)


def _args(tool: Tool) -> dict:
    """A tool's arguments schema for its grammar: an object whose properties are listed
    takes no others unless it says so (as llama.cpp's schema grammars read it; else a
    small model invents arguments the tool does not take)."""
    p = tool.parameters
    if isinstance(p, dict) and "properties" in p and "additionalProperties" not in p:
        return {**p, "additionalProperties": False}
    return p


def _call_object(tool: Tool, args_key: str = "arguments", extra: Optional[dict] = None) -> dict:
    """{"name": tool.name, args_key: {...}} (extra: further optional properties)"""
    props = {"name": {"const": tool.name}, args_key: _args(tool), **(extra or {})}
    return {"type": "object", "properties": props, "required": ["name", args_key], "additionalProperties": False}


class Marks:
    """A vocabulary's view of a format's marker texts. A marker that is one special
    token of the vocabulary (control, as llmlite/constrain.py's bridge hands it to the
    engine: no text produces it) is named by id in a grammar, ``<[ID]>``, and shows in
    a reply's text only when the reply is decoded with special tokens on (Mistral's
    [TOOL_CALLS] and [ARGS]); any other marker is plain text (Qwen's <tool_call>, and
    gpt-oss's <|channel|>, <|constrain|>, <|message|>, which llmlite's vocabulary
    fix-ups make user-defined tokens, as llama.cpp's do). No tokenizer: all text."""

    def __init__(self, tokenizer=None):
        self.tok = tokenizer

    def special(self, text: str) -> Optional[int]:
        """the id of the special token that is exactly this text; None: the marker is text"""
        if self.tok is None:
            return None
        from llmlite.constrain import _special      # the engine bridge's own test

        tid = self.tok.token_to_id(text)
        return tid if tid is not None and _special(self.tok, tid) else None

    def __call__(self, text: str) -> str:
        """the marker as a Lark item"""
        tid = self.special(text)
        return _lit(text) if tid is None else f"<[{tid}]>"

    def until(self, name: str, close: str) -> str:
        """Rule `name`: free text, then the marker close. A text marker ends a lazy
        lexeme at its first occurrence; a special token ends the text by itself (no
        text matches it), so the text before it is a greedy lexeme, as cheap."""
        if self.special(close) is None:
            return f"{name}[lazy]: TEXT {_lit(close)}\n"
        return f"{name}: TEXT {self(close)}\n"

    def block(self, name: str, open_: str, close: str) -> str:
        """Rule `name`: open_, free text, close, then any whitespace (a think block)"""
        return f"{name}: {self(open_)} {name}_text WS\n" + self.until(f"{name}_text", close)


_TEXT = "TEXT: /(.|\\n)*/\nWS: /[ \\t\\n]*/\n"


def _grammar(marks: Marks, trigger: str, bodies: list, forced: bool, *, sep: str = "\n", repeat: bool = True,
             prelude: str = "", opening: str = "", rules: str = "") -> str:
    """A tool grammar: a call is the trigger marker, then one of bodies (a Lark
    expansion per tool; rules: the further rules they use).
    auto: free text with calls in it, the text before each a lexeme ending at the trigger;
    forced: calls only (repeat False: one), separated by sep, after an optional prelude
    (rule `prelude`: a think block, say); opening: what opens a forced call, when more
    than the trigger may (harmony's channel header)."""
    tools = "".join(f"tool_{i}: {b}\n" for i, b in enumerate(bodies))
    body = "body: " + " | ".join(f"tool_{i}" for i in range(len(bodies))) + "\n"
    if forced:
        more = f" ({_lit(sep) + ' ' if sep else ''}call)*" if repeat else ""
        top = f"start: {'prelude? ' if prelude else ''}call{more}\ncall: {opening or marks(trigger)} body\n" + prelude
    else:
        top = "start: (opener body)* TEXT\n" + marks.until("opener", trigger)
    return "%llguidance {}\n" + top + body + tools + rules + _TEXT


def _loads(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _as_call(obj, args_keys=("arguments", "parameters")) -> Optional[Call]:
    """{"name": ..., "arguments": {...}} (or "parameters"; arguments may be JSON text) -> a Call"""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):             # {"type": "function", "function": {...}}
        return _as_call(obj["function"], args_keys)
    if not isinstance(obj.get("name"), str):
        return None
    args = next((obj[k] for k in args_keys if k in obj), {})
    if isinstance(args, str):
        args = _loads(args) if args.strip() else {}
    return Call(obj["name"], args) if isinstance(args, dict) else None


class ToolFormat:
    """The base: how a family's calls look. Subclasses set the class attributes."""

    name = "?"
    native = True                # the template renders tools and tool messages itself
    triggers: tuple = ()         # texts that open a call (streaming holds text from there on)
    at_start = False             # a call is recognised only at the start of the reply
    markers: tuple = ()          # marker texts a vocabulary may hold as special tokens
    system_in_user = False       # the instructions go into the first user message

    @classmethod
    def matches(cls, source: str) -> bool:
        raise NotImplementedError

    def grammar(self, tools: list[Tool], forced: bool, tokenizer=None) -> str:
        """the Lark grammar of a reply; tokenizer: the model's, whose special tokens
        the grammar names by id where a marker is one (None: markers are text)"""
        raise NotImplementedError

    def show_special(self, tokenizer) -> bool:
        """whether the reply must be decoded with special tokens shown for parse to
        see its calls (a marker is a special token of this vocabulary)"""
        marks = Marks(tokenizer)
        return any(marks.special(t) is not None for t in self.markers)

    def parse(self, text: str) -> tuple[str, list[Call]]:
        raise NotImplementedError

    def call_text(self, calls: list[Call]) -> str:
        """the text of earlier calls in the history (non-native formats)"""
        raise NotImplementedError

    def system_text(self, tools: list[Tool]) -> str:
        """the instructions a non-native template gets as its system message"""
        raise NotImplementedError

    def history_id(self, call_id: str) -> str:
        """a call's id as the template takes it in the history (an assistant's
        tool_calls[i].id and the tool message's tool_call_id alike)"""
        return call_id

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
    """Qwen 2.5 / 3 (and Hermes 2 Pro, Granite 4): <tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>"""

    name = "hermes"
    triggers = ("<tool_call>",)
    markers = ("<tool_call>", "</tool_call>")
    # JSON in the call (Qwen3-Coder, Qwen3.5 and GLM write <tool_call> around XML instead)
    _JSON_CALL = re.compile(r'<tool_call>[\s\S]{0,120}?"name"')

    @classmethod
    def matches(cls, source: str) -> bool:
        return bool(cls._JSON_CALL.search(source))

    def grammar(self, tools, forced, tokenizer=None):
        m = Marks(tokenizer)
        bodies = [f'"\\n" {_json(_call_object(t))} "\\n" {m("</tool_call>")}' for t in tools]
        # a thinking model (Qwen3) thinks first, even when the reply must be calls
        return _grammar(m, "<tool_call>", bodies, forced, prelude=m.block("prelude", "<think>", "</think>"))

    def parse(self, text):
        calls, content, last, at = [], [], 0, text.find("<tool_call>")
        dec = json.JSONDecoder()
        while at >= 0:
            try:
                obj, end = dec.raw_decode(text, _skip_ws(text, at + len("<tool_call>")))
            except ValueError:
                obj, end = None, at + 1
            call = _as_call(obj)
            if call is not None:        # a malformed block stays in the content
                end = _skip_ws(text, end)
                tail = text[end:end + len("</tool_call>")]
                if "</tool_call>".startswith(tail):         # the closing tag, or what a cut reply has of it
                    end += len(tail)
                content.append(text[last:at])
                calls.append(call)
                last = end
            at = text.find("<tool_call>", end)
        content.append(text[last:])
        return ("".join(content).strip(), calls) if calls else (text, [])


class Llama3(ToolFormat):
    """Llama 3.1-3.3: the reply is {"name": ..., "parameters": {...}} (maybe after
    <|python_tag|>; several calls separated by ";")"""

    name = "llama3"
    triggers = ('{"', "<|python_tag|>")
    at_start = True
    markers = ("<|python_tag|>",)

    @classmethod
    def matches(cls, source: str) -> bool:
        # the JSON-call instructions of Meta's templates (Functionary's and FireFunction's
        # Llama 3 templates write calls otherwise)
        return "<|start_header_id|>" in source and '"parameters"' in source

    def grammar(self, tools, forced, tokenizer=None):
        # free text in front of a call would be read as content: a call is the whole reply
        alts = [_json(_call_object(t, "parameters")) for t in tools]
        calls = " | ".join(f"c{i}" for i in range(len(alts)))
        rules = "".join(f"c{i}: {a}\n" for i, a in enumerate(alts))
        if forced:
            return f"start: {calls}\n{rules}"
        return f"%llguidance {{}}\nstart: {calls} | TEXT\nTEXT: /([^{{\\s](.|\\n)*)?/\n{rules}"

    def parse(self, text):
        s = text.strip()
        if s.startswith("<|python_tag|>"):
            s = s[len("<|python_tag|>"):].strip()
        dec, calls, i = json.JSONDecoder(), [], 0
        while s.startswith("{", i):
            try:
                obj, i = dec.raw_decode(s, i)
            except ValueError:
                return text, []
            calls.append(_as_call(obj, ("parameters", "arguments")))
            i = _skip_ws(s, i)
            if s.startswith(";", i):
                i = _skip_ws(s, i + 1)
        if calls and all(calls) and i == len(s):
            return "", calls
        return text, []


# Mistral Nemo's call ids: nine letters or digits (its template refuses any other)
_MISTRAL_ID = {"type": "string", "pattern": "^[a-zA-Z0-9]{9}$"}


class Mistral(ToolFormat):
    """Mistral: [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}] (v3, Nemo), or
    [TOOL_CALLS]name[ARGS]{...} per call (the 2025 templates, whose source has [ARGS]:
    Devstral, Magistral, Ministral 3), with [CALL_ID]id before [ARGS] where the
    template has it (Mistral Small 3.2). [TOOL_CALLS] and [ARGS] are control tokens
    in Mistral's vocabularies: the reply shows them only decoded with special tokens."""

    name = "mistral"
    triggers = ("[TOOL_CALLS]",)
    markers = ("[TOOL_CALLS]", "[ARGS]", "[CALL_ID]")
    _HEAD = re.compile(r"\[TOOL_CALLS\]\s*(?:([^\s\[\]{]+)\s*(?:\[CALL_ID\]\s*[A-Za-z0-9]+\s*)?\[ARGS\])?")

    def __init__(self, args_form: bool = False, call_id: bool = False, think: bool = False):
        self.args_form, self.call_id, self.think = args_form, call_id, think

    @classmethod
    def matches(cls, source: str) -> bool:
        return "[TOOL_CALLS]" in source

    def history_id(self, call_id):
        # Nemo's and Small 3.2's templates refuse any id but nine letters or digits: one
        # made from the id, the same for the call and its result
        if re.fullmatch(r"[A-Za-z0-9]{9}", call_id):
            return call_id
        return hashlib.sha256(call_id.encode()).hexdigest()[:9]

    def grammar(self, tools, forced, tokenizer=None):
        m = Marks(tokenizer)
        prelude = m.block("prelude", "[THINK]", "[/THINK]") if self.think else ""
        if self.args_form:
            cid = f' {m("[CALL_ID]")} CALL_ID' if self.call_id else ""
            bodies = [f'{_lit(t.name)}{cid} {m("[ARGS]")} {_json(_args(t))}' for t in tools]
            return _grammar(m, "[TOOL_CALLS]", bodies, forced, sep="", prelude=prelude,
                            rules="CALL_ID: /[A-Za-z0-9]{9}/\n" if self.call_id else "")
        arr = {"type": "array", "minItems": 1,
               "items": {"anyOf": [_call_object(t, extra={"id": _MISTRAL_ID}) for t in tools]}}
        return _grammar(m, "[TOOL_CALLS]", [_json(arr)], forced, repeat=False, prelude=prelude)

    def parse(self, text):
        start = text.find("[TOOL_CALLS]")
        if start < 0:
            return text, []
        dec, calls, at = json.JSONDecoder(), [], start
        while (h := self._HEAD.match(text, at)) is not None:
            try:
                obj, at = dec.raw_decode(text, _skip_ws(text, h.end()))
            except ValueError:
                return text, []
            if h.group(1):                              # name[ARGS]{...}
                calls.append(Call(h.group(1), obj) if isinstance(obj, dict) else None)
            else:                                       # [{...}, ...]
                calls += [_as_call(o) for o in (obj if isinstance(obj, list) else [obj])] or [None]
            if not all(calls):
                return text, []
            at = _skip_ws(text, at)
        return (text[:start] + text[at:]).strip(), calls


class Harmony(ToolFormat):
    """gpt-oss: a message to a function, its recipient in the channel header,
    <|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>,
    or in the role header (as the template writes earlier calls),
    <|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>{...}<|call|>.
    <|call|> ends the generation: one call a reply. Its reasoning is
    llmlite/reasoning.py's; this reads the raw reply."""

    name = "harmony"
    triggers = (" to=functions.", "to=functions.")
    markers = ("<|channel|>", "<|constrain|>", "<|message|>", "<|start|>", "<|end|>")
    _CALL = re.compile(r"to=functions\.([\w.-]+)[^<]*(?:<\|channel\|>[^<]*)?(?:<\|constrain\|>\s*\w+\s*)?"
                       r"<\|message\|>(.*?)(?=<\|call\|>|<\|end\|>|<\|start\|>|$)", re.S)

    @classmethod
    def matches(cls, source: str) -> bool:
        # gpt-oss's template writes the recipient in pieces ("to=" then "functions." + name)
        return "<|channel|>" in source and "<|message|>" in source and "functions." in source

    def grammar(self, tools, forced, tokenizer=None):
        m = Marks(tokenizer)
        rules = (f'channel: {m("<|channel|>")} ("commentary" | "analysis")\n'
                 f'header: channel? (" " {m("<|constrain|>")}? "json")? {m("<|message|>")}\n')
        bodies = [f"{_lit(t.name)} header {_json(_args(t))}" for t in tools]
        # forced: analysis (or commentary) messages first, as the model reasons, then the call
        prelude = (f'prelude: message+\nmessage: {m("<|channel|>")} ("analysis" | "commentary") '
                   f'{m("<|message|>")} message_text {m("<|start|>")} "assistant"\n'
                   + m.until("message_text", "<|end|>"))
        return _grammar(m, " to=functions.", bodies, forced, repeat=False, prelude=prelude,
                        opening='channel? " to=functions."', rules=rules)

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


def _py_args(schema) -> str:
    """Lark for Python keyword arguments per a JSON schema: its properties in the
    schema's order, each value JSON, the required ones always, the others optional"""
    schema = schema if isinstance(schema, dict) else {}
    req = set(schema.get("required") or ())
    items = [(k in req, f"{_lit(k + '=')} {_json(s)}") for k, s in (schema.get("properties") or {}).items()]

    def rest(j):
        return " ".join(f'", " {it}' if r else f'(", " {it})?' for r, it in items[j:])

    alts = []               # by the first argument written: up to the first required one
    for f, (r, it) in enumerate(items):
        alts.append(f"{it} {rest(f + 1)}".rstrip())
        if r:
            break
    if not alts:
        return ""
    return f"({' | '.join(alts)})" + ("" if any(r for r, _ in items) else "?")


class Gemma(ToolFormat):
    """Gemma 2/3 (no tool support in the template): Google's plain-text convention, a
    Python call in a ```tool_code block; results go back in a ```tool_output block"""

    name = "gemma"
    native = False
    system_in_user = True
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

    def grammar(self, tools, forced, tokenizer=None):
        bodies = [f'"\\n" {_lit(t.name + "(")} {_py_args(t.parameters)} ")\\n```"' for t in tools]
        return _grammar(Marks(), "```tool_code", bodies, forced)

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
    {"response": "..."}; with tools given it is always constrained to that. Earlier
    turns' parallel calls are written {"tool_calls": [...]}, which parse reads too."""

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
        objs = [{"name": c.name, "arguments": c.arguments} for c in calls]
        obj = {"tool_call": objs[0]} if len(objs) == 1 else {"tool_calls": objs}
        return json.dumps(obj, ensure_ascii=False)

    def grammar(self, tools, forced, tokenizer=None):
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
            many = obj.get("tool_calls")
            calls = [_as_call(c) for c in many] if isinstance(many, list) else [_as_call(obj.get("tool_call"))]
            if calls and all(calls):
                return "", calls
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
            if cls is Mistral:
                return Mistral(args_form="[ARGS]" in src, call_id="[CALL_ID]" in src, think="[THINK]" in src)
            return cls()
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


_PY_CALL = re.compile(r"([A-Za-z_][\w.-]*)\((.*)\)", re.S)


def _parse_py_call(line: str) -> Optional[Call]:
    """name(k=v, ...) with literal values (JSON's true/false/null too) -> a Call. The
    name is read apart: a tool's may hold "-", which Python would read as a minus."""
    m = _PY_CALL.fullmatch(line)
    if m is None:
        return None
    try:
        node = ast.parse(f"f({m.group(2)})", mode="eval").body
        if not isinstance(node, ast.Call) or node.args or any(k.arg is None for k in node.keywords):   # f(x), f(**kw)
            return None
        return Call(m.group(1), {k.arg: _py_value(k.value) for k in node.keywords})
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return None


def _py_call(c: Call) -> str:
    return f"{c.name}(" + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in c.arguments.items()) + ")"
