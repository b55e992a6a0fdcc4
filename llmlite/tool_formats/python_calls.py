"""Gemma's plain-text convention: a Python call in a ```tool_code block."""
from __future__ import annotations

import ast
import json
import re
from typing import Optional

from llmlite.tool_formats.base import Call, ToolFormat
from llmlite.tool_formats.grammar import Marks, _grammar, _in_order, _json, _lit, _tool_defs


def _py_args(schema) -> str:
    """Lark for Python keyword arguments per a JSON schema, each value JSON"""
    defs = _tool_defs(schema)
    return _in_order(schema, lambda k, s: f"{_lit(k + '=')} {_json(s, defs)}", '", " ')


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

    def parse(self, text, tools=None):
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


_PY_CALL = re.compile(r"([\w.-]+)\((.*)\)", re.S)
_PY_KEY = re.compile(r"\s*([^\s=,()]+)\s*=\s*")
_PY_SEP = re.compile(r"\s*,")


def _json_kwargs(args: str) -> Optional[dict]:
    """k=v, ... with JSON values, as the grammar writes them (a key may be what Python
    would not take: "from", "first-name"); None where it is not that"""
    out, i, dec = {}, 0, json.JSONDecoder()
    while i < len(args) and args[i:].strip():
        m = _PY_KEY.match(args, i)
        if m is None:
            return None
        try:
            out[m.group(1)], i = dec.raw_decode(args, m.end())
        except ValueError:
            return None
        sep = _PY_SEP.match(args, i)
        i = sep.end() if sep else i
        if sep is None and args[i:].strip():
            return None
    return out


def _parse_py_call(line: str) -> Optional[Call]:
    """name(k=v, ...) with literal values (JSON's true/false/null too) -> a Call. The
    name is read apart: a tool's may hold "-", which Python would read as a minus."""
    m = _PY_CALL.fullmatch(line)
    if m is None:
        return None
    kw = _json_kwargs(m.group(2))
    if kw is not None:
        return Call(m.group(1), kw)
    try:                        # Python's literals: True, 'single quotes'

        node = ast.parse(f"f({m.group(2)})", mode="eval").body
        if not isinstance(node, ast.Call) or node.args or any(k.arg is None for k in node.keywords):   # f(x), f(**kw)
            return None
        return Call(m.group(1), {k.arg: _py_value(k.value) for k in node.keywords})
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return None


def _py_call(c: Call) -> str:
    return f"{c.name}(" + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in c.arguments.items()) + ")"
