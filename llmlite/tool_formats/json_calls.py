"""The families whose calls are JSON: Hermes (Qwen 2.5 / 3), Llama 3.x, Mistral, and
llama.cpp's generic convention for templates without tool support."""
from __future__ import annotations

import hashlib
import json
import re

from llmlite.tool_formats.base import Call, ToolFormat, _as_call, _loads, _skip_ws
from llmlite.tool_formats.grammar import Marks, _args, _call_object, _grammar, _json, _lit


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

    def parse(self, text, tools=None):
        calls, content, last, at = [], [], 0, text.find("<tool_call>")
        dec = json.JSONDecoder()
        cut = None              # where a call the reply's end cut short begins (dropped: no call, no content)
        while at >= 0:
            try:
                obj, end = dec.raw_decode(text, _skip_ws(text, at + len("<tool_call>")))
            except ValueError:
                obj, end = None, at + 1
                rest = text[_skip_ws(text, at + len("<tool_call>")):]
                if "</tool_call>" not in rest and "<tool_call>" not in rest and rest[:1] in ("", "{"):
                    cut = at
                    break
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
        content.append(text[last:cut])
        return ("".join(content).strip(), calls) if calls or cut is not None else (text, [])


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

    def parse(self, text, tools=None):
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

    def parse(self, text, tools=None):
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

    _RESPONSE = re.compile(r'\s*\{\s*"response"\s*:\s*"')
    _STRING = re.compile(r'(?:[^"\\]|\\.)*')

    def partial_content(self, held):
        m = self._RESPONSE.match(held)
        if m is None:
            return None
        body = held[m.end():]
        body = body[:self._STRING.match(body).end()]        # to the closing quote, if it came
        for cut in range(len(body), max(len(body) - 12, 0) - 1, -1):   # an escape may be cut short
            try:
                return json.loads('"' + body[:cut] + '"')
            except ValueError:
                continue
        return ""

    def parse(self, text, tools=None):
        obj = _loads(text.strip())
        if isinstance(obj, dict):
            many = obj.get("tool_calls")
            calls = [_as_call(c) for c in many] if isinstance(many, list) else [_as_call(obj.get("tool_call"))]
            if calls and all(calls):
                return "", calls
            if isinstance(obj.get("response"), str):
                return obj["response"], []
        return text, []
