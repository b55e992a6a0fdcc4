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
Hermes style and Qwen3-Coder's and Qwen 3.5's XML, Llama 3.x, Mistral, gpt-oss
harmony) get the tools and the tool
messages as they are. The others (``generic``, and Gemma's plain-text convention)
get a system message that lists the tools and says how to call one, earlier calls
written in the format's own text, and tool results as user messages.

One module per kind of family: json_calls (Hermes, Llama 3, Mistral, generic),
harmony (gpt-oss), python_calls (Gemma), xml_calls (Qwen3-Coder, Qwen 3.5); base holds
the Tool, the Call and the ToolFormat base, grammar the pieces of a tool grammar.
"""
from __future__ import annotations

from typing import Optional

from llmlite.tool_formats.base import Call, Tool, ToolFormat
from llmlite.tool_formats.grammar import Marks
from llmlite.tool_formats.harmony import Harmony
from llmlite.tool_formats.json_calls import Generic, Hermes, Llama3, Mistral
from llmlite.tool_formats.python_calls import Gemma, _parse_py_call
from llmlite.tool_formats.xml_calls import QwenXML

__all__ = ["Call", "Tool", "ToolFormat", "Marks", "FORMATS", "format_for", "Generic", "Gemma", "Harmony", "Hermes",
           "Llama3", "Mistral", "QwenXML", "_parse_py_call"]

# most specific first: a Llama or Mistral template may mention <tool_call> nowhere, a
# Qwen template never has [TOOL_CALLS]; Qwen's XML calls are in <tool_call> too
FORMATS = (Harmony, Mistral, QwenXML, Hermes, Llama3, Gemma, Generic)


def format_for(source: Optional[str]) -> ToolFormat:
    """the tool-call format of a chat template (its Jinja source)"""
    src = source or ""
    for cls in FORMATS:
        if cls.matches(src):
            if cls is Mistral:
                return Mistral(args_form="[ARGS]" in src, call_id="[CALL_ID]" in src, think="[THINK]" in src)
            if cls is QwenXML:
                return QwenXML(think="<think>" in src)
            return cls()
    return Generic()
