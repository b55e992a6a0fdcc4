"""gpt-oss's harmony messages: a call is a message to functions.NAME."""
from __future__ import annotations

import re

from llmlite.tool_formats.base import Call, ToolFormat, _loads
from llmlite.tool_formats.grammar import Marks, _args, _grammar, _json, _lit


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

    def parse(self, text, tools=None):
        calls = []
        for m in self._CALL.finditer(text):
            args = _loads(m.group(2).strip())
            if not isinstance(args, dict):
                return text, []
            calls.append(Call(m.group(1), args))
        if not calls:
            return text, []
        return text[:text.find("to=functions.")].rsplit("<|start|>", 1)[0].strip(), calls
