"""Qwen3-Coder's and Qwen 3.5's XML calls (also Nemotron Nano 3's, as llama.cpp's
common/chat.cpp groups them): <tool_call> around a function block whose parameters
are written one per block,

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    <parameter=days>
    2
    </parameter>
    </function>
    </tool_call>

The templates write a string value as it is and any other as JSON (``tojson`` for
objects and arrays, ``string`` for numbers), so the text does not say a value's type:
the tool's schema does. As llama.cpp reads them: a parameter whose schema allows only
strings is the raw text up to ``\\n</parameter>``; one that allows no string is JSON;
one that allows both is JSON where it parses as a type the schema allows, else the
raw text.
"""
from __future__ import annotations

import json
import re
from typing import Optional

from llmlite.tool_formats.base import Call, Tool, ToolFormat, _skip_ws
from llmlite.tool_formats.grammar import Marks, _grammar, _in_order, _json, _lit, _tool_defs

_VALUE_END = "\n</parameter>\n"
_JSON_TYPE = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
              type(None): "null"}
_FUNC = re.compile(r"<tool_call>\s*<function=([^>\n]+)>(.*?)</function>", re.S)
_PARAM = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>", re.S)


def _function(name: str) -> str:
    """what follows <tool_call> up to a call's first parameter"""
    return f"\n<function={name}>\n"


def _types(schema) -> set:
    """the JSON types a schema allows; empty: not said (any)"""
    if not isinstance(schema, dict):
        return set()
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return set(t)
    if isinstance(schema.get("enum"), list):
        return {_JSON_TYPE.get(type(v), "object") for v in schema["enum"]}
    if "const" in schema:
        return {_JSON_TYPE.get(type(schema["const"]), "object")}
    subs = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(subs, list) and subs:
        each = [_types(s) for s in subs]
        return set() if not all(each) else set().union(*each)
    return set()


def _allows(types: set, v) -> bool:
    t = _JSON_TYPE.get(type(v), "object")
    return t in types or (t == "integer" and "number" in types)


_NO_VALUE = object()


def _value(raw: str, schema):
    """a parameter's text -> its value, typed by its schema (_NO_VALUE: the text is no
    value of it: a number's parameter that holds words, say)"""
    types = _types(schema)
    if types == {"string"}:
        return raw
    try:
        v = json.loads(raw)
    except ValueError:
        v = _NO_VALUE
        if "boolean" in types and raw in ("True", "False"):      # Jinja's `string` of a bool
            v = raw == "True"
    if v is not _NO_VALUE and (not types or _allows(types, v)):
        return v
    return raw if not types or "string" in types else _NO_VALUE


class QwenXML(ToolFormat):
    """Qwen3-Coder, Qwen 3.5: <tool_call>\\n<function=NAME>\\n<parameter=KEY>\\nVALUE\\n</parameter>\\n...
    </function>\\n</tool_call>. think: the template has Qwen 3.5's think block (its
    generation prompt opens one)."""

    name = "qwen-xml"
    triggers = ("<tool_call>",)
    markers = ("<tool_call>", "</tool_call>")

    def __init__(self, think: bool = False):
        self.think = think

    @classmethod
    def matches(cls, source: str) -> bool:
        # llama.cpp's test; the last clause leaves out templates that write the markers
        # with no newline between them (another family's)
        return ("<tool_call>" in source and "<function=" in source and "<parameter=" in source
                and "'<tool_call><function=' ~ tool_call.name ~ '>'" not in source)

    def _param(self, key: str, schema, bounds: set, defs=None) -> str:
        """one parameter's block (bounds: gets the length bounds of raw strings, whose rules
        the grammar adds; defs: the tool's definitions, which a $ref in schema names)"""
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and defs:
            target = defs.get(schema["$ref"].rsplit("/", 1)[-1])      # a named type: what it is
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}} \
                if isinstance(target, dict) and "$ref" not in target else schema
        head = _lit(f"<parameter={key}>\n")
        types = _types(schema)
        vals = schema.get("enum") if isinstance(schema, dict) else None
        vals = [schema["const"]] if isinstance(schema, dict) and "const" in schema else vals
        if types == {"string"} and isinstance(vals, list) and vals and all(isinstance(v, str) for v in vals):
            return f"{head} ({' | '.join(_lit(v) for v in vals)}) {_lit(_VALUE_END)}"
        if types and "string" not in types:
            return f"{head} {_json(schema, defs)} {_lit(_VALUE_END)}"
        # a string, or a value that may be one: the raw text (llama.cpp keeps only
        # this alternative in its grammar too: the text takes any JSON value as well),
        # as long as a string's schema lets it be (else a small model writes on until
        # the reply's token limit: the value has no end but "\n</parameter>\n")
        lo, hi = (schema.get(k) if types == {"string"} else None for k in ("minLength", "maxLength"))
        if isinstance(lo, int) or isinstance(hi, int):
            bound = (lo if isinstance(lo, int) else 0, hi if isinstance(hi, int) else "")
            bounds.add(bound)
            return f"{head} raw_value_{bound[0]}_{bound[1]}"
        return f"{head} raw_value"

    def _params(self, tool: Tool, bounds: set) -> str:
        p = tool.parameters if isinstance(tool.parameters, dict) else {}
        listed = _in_order(p, lambda k, s: self._param(k, s, bounds, _tool_defs(p)))
        if "properties" in p and not p.get("additionalProperties"):
            return listed
        # an open object: further parameters of any name, values raw
        return f"{listed} extra_param*"

    def grammar(self, tools, forced, tokenizer=None):
        from llmlite.reasoning import reasoning_format

        m = Marks(tokenizer)
        close = f'"</function>\\n" {m("</tool_call>")}'
        bounds = set()
        bodies = [f"{_lit(_function(t.name))} {self._params(t, bounds)} {close}" for t in tools]
        rules = (m.until("raw_value", _VALUE_END)
                 + "".join(f"raw_value_{lo}_{hi}[lazy]: /(.|\\n){{{lo},{hi}}}/ {_lit(_VALUE_END)}\n"
                           for lo, hi in sorted(bounds, key=str))
                 + 'extra_param: "<parameter=" PARAM_NAME ">\\n" raw_value\nPARAM_NAME: /[^>\\n]+/\n')
        # forced: Qwen 3.5 thinks first, in the block its generation prompt opened, so
        # free text may come before the first call (as llama.cpp lets it). Only a
        # vocabulary that holds the think markers thinks (reasoning.py's test): another
        # model would only be let ramble before its calls.
        thinks = self.think and (tokenizer is None or reasoning_format(tokenizer, None) == "think")
        return _grammar(m, "<tool_call>", bodies, forced, rules=rules, text_first=thinks)

    def parse(self, text, tools=None):
        schemas = {t.name: (t.parameters or {}).get("properties") or {} for t in tools or ()}
        calls, content, last = [], [], 0
        for f in _FUNC.finditer(text):
            call = self._call(f.group(1).strip(), f.group(2), schemas.get(f.group(1).strip(), {}))
            if call is None:            # a malformed block stays in the content
                continue
            end = _skip_ws(text, f.end())
            tail = text[end:end + len("</tool_call>")]
            if "</tool_call>".startswith(tail):         # the closing tag, or what a cut reply has of it
                end += len(tail)
            content.append(text[last:f.start()])
            calls.append(call)
            last = end
        rest = text[last:]
        cut = rest.rfind("<tool_call>")
        if cut >= 0 and not any(end in rest[cut:] for end in ("</function>", "</tool_call>")):
            # a call the token limit cut off (a small model may write call after call):
            # its text is no answer either
            content.append(rest[:cut])
            return "".join(content).strip(), calls
        content.append(rest)
        return ("".join(content).strip(), calls) if calls else (text, [])

    @staticmethod
    def _call(name: str, body: str, props: dict) -> Optional[Call]:
        """the function block's body -> a Call; None where it is anything but
        parameter blocks, or a value is no value of its parameter's schema"""
        args, at = {}, _skip_ws(body, 0)
        while at < len(body):
            p = _PARAM.match(body, at)
            if p is None:
                return None
            key = p.group(1).strip()
            v = _value(p.group(2), props.get(key))
            if v is _NO_VALUE:
                return None
            args[key] = v
            at = _skip_ws(body, p.end())
        return Call(name, args)
