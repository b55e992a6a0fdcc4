"""The pieces of a tool grammar (Lark for llguidance, llmlite/constrain.py): a JSON
schema's part, literals, a vocabulary's markers, and the frame of free text and calls
every format puts its call bodies in."""
from __future__ import annotations

import json
from typing import Callable, Optional

from llmlite.tool_formats.base import Tool

# llmlite/constrain.py's JSON layout, for the %json parts of a tool grammar
_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}



def _hoist(node, defs: dict):
    """node without the $defs (or definitions) of the tool schemas nested in it, those
    gathered into defs; every reference to "#/definitions/X" made one to "#/$defs/X"."""
    if isinstance(node, list):
        return [_hoist(v, defs) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("$defs", "definitions") and isinstance(v, dict):
            for name, d in v.items():
                defs.setdefault(name, _hoist(d, defs))
        elif k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/"):
            out[k] = "#/$defs/" + v[len("#/definitions/"):]
        elif k in ("enum", "const", "default", "examples"):
            out[k] = v
        else:
            out[k] = _hoist(v, defs)
    return out


def _schema(node, defs: Optional[dict] = None) -> dict:
    """a %json part's schema: the JSON layout, numbers bounded, and the definitions its
    references point to at its root (a tool's schema is embedded in a call's object,
    or a property's alone, where "#/$defs/X" would no longer resolve); defs: the
    definitions of the tool a property's schema comes from"""
    from llmlite.constrain import bounded_numbers

    found: dict = {}
    node = _hoist(node if isinstance(node, dict) else {}, found)
    if defs:
        _hoist({"$defs": defs}, found)
    out = {**bounded_numbers(node), "x-guidance": _LAYOUT}
    if found:
        out["$defs"] = bounded_numbers(found)
    return out


def _json(node, defs: Optional[dict] = None) -> str:
    return "%json " + json.dumps(_schema(node, defs))


def _tool_defs(schema) -> Optional[dict]:
    """a tool's parameters' definitions ($defs, and the older definitions)"""
    if not isinstance(schema, dict):
        return None
    d = {k: v for key in ("definitions", "$defs") if isinstance(schema.get(key), dict)
         for k, v in schema[key].items()}
    return d or None


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
             prelude: str = "", opening: str = "", rules: str = "", text_first: bool = False) -> str:
    """A tool grammar: a call is the trigger marker, then one of bodies (a Lark
    expansion per tool; rules: the further rules they use).
    auto: free text with calls in it, the text before each a lexeme ending at the trigger;
    forced: calls only (repeat False: one), separated by sep, after an optional prelude
    (rule `prelude`: a think block, say); opening: what opens a forced call, when more
    than the trigger may (harmony's channel header); text_first: free text may come
    before the first call (the thinking in a block the prompt opened, which no
    marker opens)."""
    tools = "".join(f"tool_{i}: {b}\n" for i, b in enumerate(bodies))
    body = "body: " + " | ".join(f"tool_{i}" for i in range(len(bodies))) + "\n"
    if forced:
        more = f" ({_lit(sep) + ' ' if sep else ''}call)*" if repeat else ""
        first = "opener body" if text_first else "call"
        top = (f"start: {'prelude? ' if prelude else ''}{first}{more}\ncall: {opening or marks(trigger)} body\n"
               + prelude + (marks.until("opener", trigger) if text_first else ""))
    else:
        top = "start: (opener body)* TEXT\n" + marks.until("opener", trigger)
    return "%llguidance {}\n" + top + body + tools + rules + _TEXT


def _in_order(schema, item: Callable[[str, dict], str], sep: str = "") -> str:
    """Lark for an object's arguments written one after another (Gemma's keyword
    arguments, Qwen's <parameter=...> blocks): the schema's properties in its order,
    item(key, property schema) each, the required ones always, the others optional,
    sep (a Lark item, or nothing) between two"""
    schema = schema if isinstance(schema, dict) else {}
    req = set(schema.get("required") or ())
    items = [(k in req, item(k, s)) for k, s in (schema.get("properties") or {}).items()]
    sep = sep + " " if sep else ""

    def rest(j):
        return " ".join(f"{sep}{it}" if r else f"({sep}{it})?" for r, it in items[j:])

    alts = []               # by the first argument written: up to the first required one
    for f, (r, it) in enumerate(items):
        alts.append(f"{it} {rest(f + 1)}".rstrip())
        if r:
            break
    if not alts:
        return ""
    return f"({' | '.join(alts)})" + ("" if any(r for r, _ in items) else "?")
