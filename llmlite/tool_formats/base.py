"""What every tool-call format shares: a tool, a call, the ToolFormat base, and the
reading of JSON calls out of a reply's text."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional


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
        from llmlite.tool_formats.grammar import Marks      # grammar builds on this module

        marks = Marks(tokenizer)
        return any(marks.special(t) is not None for t in self.markers)

    def parse(self, text: str, tools: Optional[list] = None) -> tuple[str, list[Call]]:
        """a reply's content and calls; tools: the declared ones, for a format whose
        call text does not say a value's type (Qwen's XML parameters)"""
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

    def partial_content(self, held: str) -> Optional[str]:
        """the reply's content so far where it is inside the call text the reply is held
        as (generic's {"response": ...}), so that it streams; None: none"""
        return None

    def find_call(self, text: str) -> int:
        """where the first call begins in a reply's text, -1 for none yet"""
        if self.at_start:
            s = text.lstrip()
            return len(text) - len(s) if s.startswith(self.triggers) else -1
        return min((i for i in (text.find(t) for t in self.triggers) if i >= 0), default=-1)
