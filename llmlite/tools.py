"""Tool calling: the tools a request declares, rendered through the model's own chat
template, and the calls read back out of the reply (the format per template family is
llmlite/tool_formats/'s).

The same path serves the OpenAI API (`tools`, `tool_choice`, `tool` messages), Ollama's
(`tools`, `tool_name`) and `llmlite run --tools FILE`:

    ts = ToolSet.from_openai(tools, tool_choice)       # ToolError names what is wrong
    text = ts.render(template, messages)               # the prompt
    grammar = ts.grammar(fmt, tokenizer)               # None: unconstrained
    for kind, x in ts.stream(fmt, pieces, stop): ...    # ("content", text) | ("calls", [Call]) | ("stop", None)

With tool_choice "auto" (the default) a call is constrained once it starts: free text
costs the grammar ~0.01 ms a token. "required" (or one named tool) makes the whole
reply calls; "none" leaves the reply free and reads no calls.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

from llmlite.errors import UserError
from llmlite.generate import find_stop, stop_prefix_len
from llmlite.tool_formats import Call, Tool, ToolFormat, format_for

__all__ = ["ToolError", "ToolSet", "Call", "Tool", "format_for", "load_tools_file"]

MAX_TOOLS = 128
# a think block the reply opens with (Qwen3's, DeepSeek-R1's): no call is read inside it
_THINK = ("<think>", "</think>")


class ToolError(UserError, ValueError):
    """A tools list, tool_choice or tool message that cannot be used (its field named)."""

    def __init__(self, msg: str, param: str = "tools"):
        super().__init__(msg)
        self.param = param


def _tool(i: int, t) -> Tool:
    where = f"tools[{i}]"
    if not isinstance(t, dict):
        raise ToolError(f"{where} must be an object")
    fn = t.get("function") if "function" in t else t          # {"type": "function", "function": {...}} or bare
    if t.get("type", "function") != "function" or not isinstance(fn, dict):
        raise ToolError(f"{where}: only {{\"type\": \"function\", \"function\": {{...}}}} tools are supported")
    name = fn.get("name")
    if not isinstance(name, str) or not name or len(name) > 64 or not all(c.isalnum() or c in "_-." for c in name):
        raise ToolError(f"{where}.function.name must be 1-64 letters, digits, _ - or . (got {json.dumps(name)[:80]})")
    desc = fn.get("description") or ""
    if not isinstance(desc, str):
        raise ToolError(f"{where}.function.description must be a string")
    params = fn.get("parameters")
    params = {"type": "object", "properties": {}} if params is None else params
    if not isinstance(params, dict) or params.get("type", "object") != "object":
        raise ToolError(f"{where}.function.parameters must be a JSON schema of an object")
    # arguments are an object, said or not ({} and {"properties": ...} say nothing)
    return Tool(name, desc, {**params, "type": "object"})


@dataclass
class ToolSet:
    """A request's tools and how the reply may use them."""

    tools: list = field(default_factory=list)
    choice: str = "auto"                 # "auto" | "required" | "none"
    only: Optional[str] = None           # tool_choice named this tool: every call is to it
    parallel: bool = True                # a reply may make several calls

    @classmethod
    def from_openai(cls, tools, tool_choice=None, parallel: bool = True) -> Optional["ToolSet"]:
        """None when no tools are given (tool_choice alone is refused)"""
        if tools is None or tools == []:
            if tool_choice not in (None, "none", "auto"):
                raise ToolError("tool_choice needs tools", param="tool_choice")
            return None
        if not isinstance(tools, list):
            raise ToolError("tools must be a list of tools")
        if len(tools) > MAX_TOOLS:
            raise ToolError(f"tools: at most {MAX_TOOLS} tools (got {len(tools)})")
        ts = [_tool(i, t) for i, t in enumerate(tools)]
        names = [t.name for t in ts]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ToolError(f"tools: {dup!r} is declared twice")
        from llmlite.constrain import check_constraint
        from llmlite.errors import ConstraintError

        for i, t in enumerate(ts):
            try:
                check_constraint(json_schema=t.parameters)
            except ConstraintError as e:
                raise ToolError(f"tools[{i}].function.parameters: {e}") from None
        choice = "auto" if tool_choice is None else tool_choice
        if isinstance(choice, dict):
            fn = choice.get("function") if isinstance(choice.get("function"), dict) else choice
            name = fn.get("name")
            if name not in names:
                raise ToolError(f"tool_choice names {json.dumps(name)[:80]}, which is not among the tools",
                                param="tool_choice")
            # every tool is still declared (the prompt does not change with tool_choice,
            # and the cache keeps it); only the grammar narrows to this one
            return cls(ts, "required", name, parallel)
        if choice not in ("auto", "required", "none"):
            raise ToolError(f"tool_choice must be \"auto\", \"required\", \"none\" or a function "
                            f"(got {json.dumps(choice)[:80]})", param="tool_choice")
        return cls(ts, choice, None, parallel)

    # ---- the prompt -------------------------------------------------------------------------

    def render(self, template, messages: list, fmt: Optional[ToolFormat] = None,
               add_generation_prompt: bool = True) -> str:
        """the prompt for a conversation with these tools, through the model's template"""
        fmt = fmt or format_for(template.source)
        msgs = prepare_messages(messages, fmt)
        if fmt.native:
            return template.render(msgs, add_generation_prompt=add_generation_prompt, tools=[t.openai() for t in self.tools])
        if self.choice == "none":           # no call to make: the instructions would only mislead
            return template.render(msgs, add_generation_prompt=add_generation_prompt)
        system = fmt.system_text(self.tools)
        if msgs and msgs[0]["role"] == "system":
            msgs[0] = {"role": "system", "content": msgs[0]["content"] + "\n\n" + system}
        elif fmt.system_in_user and msgs and msgs[0]["role"] == "user":
            # Gemma 2's template refuses a system message; Gemma 3's folds it into the
            # first user turn, as this does
            msgs[0] = {**msgs[0], "content": system + "\n\n" + msgs[0]["content"]}
        else:
            msgs.insert(0, {"role": "system", "content": system})
        return template.render(msgs, add_generation_prompt=add_generation_prompt)

    def grammar(self, fmt: ToolFormat, tokenizer=None) -> Optional[str]:
        """the Lark grammar for the reply (None: unconstrained); tokenizer: the model's
        (a format's markers that are special tokens in it are named by id)"""
        if self.choice == "none":
            return None
        tools = [t for t in self.tools if t.name == self.only] if self.only else self.tools
        return fmt.grammar(tools, forced=self.choice == "required", tokenizer=tokenizer)

    def options(self, fmt: ToolFormat, tokenizer) -> dict:
        """the GenerationConfig options of a reply with these tools (the stop strings
        are ToolSet.stream's: one must not cut a call)"""
        if self.choice == "none":
            return {}
        return {"grammar": self.grammar(fmt, tokenizer), "show_special": fmt.show_special(tokenizer), "stop": ()}

    def check(self, fmt: ToolFormat, tokenizer) -> None:
        """ToolError when the reply's grammar does not compile (a schema the engine
        reads apart from its tool's, e.g. one whose $ref points outside it)"""
        from llmlite.constrain import check_constraint
        from llmlite.errors import ConstraintError

        try:
            check_constraint(grammar=self.grammar(fmt, tokenizer))
        except ConstraintError as e:
            raise ToolError(f"tools: {e}") from None

    # ---- the reply -------------------------------------------------------------------------

    def stream(self, fmt: ToolFormat, pieces: Iterable[str], stop=()) -> Iterator[tuple]:
        """A reply's text pieces -> ("content", text) as it streams and, at the end,
        ("calls", [Call]) when it made any. Text from where a call may begin is held until
        the reply ends (a reply read as calls gives no content but what surrounds them).
        The stop strings end the reply in its content only (never inside a call): then
        ("stop", None) is the last item and the pieces' generator is closed."""
        src = iter(pieces)
        held = ""               # text not given out yet: from where a call may begin, or a stop string
        opened = False          # a call has begun: the rest is held to the end
        free = self.choice == "none"     # no call can come: content only
        think = None            # the reply opens with a think block: True inside it (no call there)
        sent = ""               # content streamed from inside the held call text (partial_content)
        for p in src:
            held += p
            if opened:
                part = fmt.partial_content(held)
                if part and "\ud800" <= part[-1] <= "\udbff":
                    part = part[:-1]                # half of a surrogate pair: wait for the other
                if part is not None and len(part) > len(sent) and part.startswith(sent):
                    yield "content", part[len(sent):]
                    sent = part
                continue
            if think is not False and not free:
                s = held.lstrip()
                if think is None:
                    if len(s) < len(_THINK[0]) and _THINK[0].startswith(s):
                        continue                    # it may still open one
                    think = s.startswith(_THINK[0])
                if think:
                    end = held.find(_THINK[1])
                    if end < 0:                     # reasoning: content (llmlite/reasoning.py splits it off)
                        keep = stop_prefix_len(held, _THINK[1:])
                        if len(held) > keep:
                            yield "content", held[:len(held) - keep]
                            held = held[len(held) - keep:]
                        continue
                    yield "content", held[:end + len(_THINK[1])]
                    held, think = held[end + len(_THINK[1]):], False
            at = -1 if free else fmt.find_call(held)
            cut = find_stop(held, stop) if stop else -1
            if cut >= 0 and (at < 0 or cut < at):
                if cut:
                    yield "content", held[:cut]
                yield "stop", None
                getattr(src, "close", lambda: None)()
                return
            if at >= 0:
                opened = True
                if at:
                    yield "content", held[:at]
                held = held[at:]
                continue
            if not free and fmt.at_start:
                s = held.lstrip()
                if not s or any(t.startswith(s[:len(t)]) for t in fmt.triggers):
                    continue     # the start of the reply: a call may still open
                free = True      # content from its first character: no call can follow
            keep = stop_prefix_len(held, stop) if stop else 0
            if not free:
                keep = max(keep, stop_prefix_len(held, fmt.triggers))
            if len(held) > keep:
                yield "content", held[:len(held) - keep]
                held = held[len(held) - keep:]
        content, calls = fmt.parse(held, self.tools) if opened else (held, [])
        part = fmt.partial_content(held) if opened and not calls and content == held else None
        if part is not None:        # a response the token limit cut short: its text
            content = part
        if sent:
            content = content[len(sent):] if content.startswith(sent) else ""
        if content:
            yield "content", content
        if calls:
            yield "calls", calls if self.parallel else calls[:1]

    def content(self, fmt: ToolFormat, pieces: Iterable[str], calls: list, stop=(), stats=None) -> Iterator[str]:
        """stream()'s content pieces; the calls are appended to `calls`, and a stop
        string's end sets stats.stop_reason to "stop"."""
        for kind, x in self.stream(fmt, pieces, stop):
            if kind == "calls":
                calls.extend(x)
            elif kind == "stop":
                if stats is not None:
                    stats.stop_reason = "stop"
            else:
                yield x


def _arguments(i: int, j: int, a) -> dict:
    if isinstance(a, dict):
        return a
    v = None
    if isinstance(a, str):
        try:
            v = json.loads(a) if a.strip() else {}
        except ValueError:
            pass
    if not isinstance(v, dict):
        raise ToolError(f"messages[{i}].tool_calls[{j}].function.arguments must be a JSON object "
                        f"(or its text)", param="messages")
    return v


def check_message(i: int, m: dict) -> dict:
    """The tool fields of one chat message, checked: an assistant's tool_calls (as
    [{"id", "type", "function": {"name", "arguments" as a dict}}]), a tool result's
    tool_call_id and name. Returns them (nothing for a plain message)."""
    out = {}
    calls = m.get("tool_calls")
    if calls not in (None, []):
        if m.get("role") != "assistant" or not isinstance(calls, list):
            raise ToolError(f"messages[{i}].tool_calls must be a list, on an assistant message", param="messages")
        norm = []
        for j, c in enumerate(calls):
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise ToolError(f"messages[{i}].tool_calls[{j}] must be {{\"function\": {{\"name\", \"arguments\"}}}}",
                                param="messages")
            norm.append({"id": str(c.get("id") or f"call_{i}_{j}"), "type": "function",
                         "function": {"name": fn["name"], "arguments": _arguments(i, j, fn.get("arguments"))}})
        out["tool_calls"] = norm
    for k in ("tool_call_id", "name", "tool_name"):
        v = m.get(k)
        if v is not None:
            if not isinstance(v, str):
                raise ToolError(f"messages[{i}].{k} must be a string", param="messages")
            out["name" if k == "tool_name" else k] = v
    return out


def prepare_messages(messages: list, fmt: ToolFormat) -> list:
    """The messages as the template reads them. Native formats: as they are (a tool
    message's name filled in from the call it answers). Others: earlier calls written
    as the format's text, tool results as user messages."""
    names = {}
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            m["tool_calls"] = check_message(len(out), m)["tool_calls"]      # ids and arguments as objects
            m["tool_calls"] = [{**c, "id": fmt.history_id(c["id"])} for c in m["tool_calls"]]
        for c in m.get("tool_calls") or ():
            names[c["id"]] = c["function"]["name"]
        if m["role"] == "tool":
            if "tool_call_id" in m:
                m["tool_call_id"] = fmt.history_id(m["tool_call_id"])
            if "name" not in m:
                m["name"] = names.get(m.get("tool_call_id", ""), "")
        if not fmt.native:
            if m.get("tool_calls"):
                calls = [Call(c["function"]["name"], c["function"]["arguments"]) for c in m["tool_calls"]]
                text = fmt.call_text(calls)
                m = {"role": "assistant", "content": (m.get("content") or "") + ("\n" if m.get("content") else "")
                     + text}
            elif m["role"] == "tool":
                text = fmt.result_text(m["name"], m.get("content") or "")
                if out and out[-1].get("tool_result"):      # results of one turn: one user message
                    out[-1]["content"] += "\n" + text      # (Gemma's template wants roles to alternate)
                    continue
                m = {"role": "user", "content": text, "tool_result": True}
        out.append(m)
    for m in out:
        m.pop("tool_result", None)
    return out


def load_tools_file(path: str) -> list:
    """`run --tools FILE`: a JSON list of tools (OpenAI's form, or bare functions)"""
    from llmlite.cli.options import read_user_text

    try:
        tools = json.loads(read_user_text(path))
    except ValueError as e:
        raise ToolError(f"--tools {path}: not valid JSON ({e})") from None
    if isinstance(tools, dict):
        tools = tools.get("tools", [tools])
    return tools
