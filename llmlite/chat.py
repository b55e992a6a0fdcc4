"""Chat templates (rendered in Jinja's sandbox) and the chat session the REPL drives.

A GGUF may carry ``tokenizer.chat_template``, a Jinja template written for Hugging
Face's ``apply_chat_template``. It is untrusted input: it is rendered with
``jinja2.sandbox.ImmutableSandboxedEnvironment`` (no attribute access to
dunder/internal attributes, no mutation of the values passed in, bounded ranges
and string/list repetition), and every failure (syntax error, unsafe operation,
``raise_exception``, a bad value) becomes a one-line :class:`ChatTemplateError`.
A render is also bounded in time (1 s) and in the size of any text or list it builds,
its output included (4 Mi characters), so a hostile template can neither pin a CPU
nor exhaust memory.

The render context follows Hugging Face's conventions: ``messages`` (a list of
``{"role", "content"}``), ``add_generation_prompt``, ``bos_token``, ``eos_token``
(the token texts), ``raise_exception(msg)``, ``strftime_now(fmt)``; the
environment uses ``trim_blocks`` and ``lstrip_blocks``, the loop-controls
extension, a ``{% generation %}`` block tag, and a ``tojson`` filter that does not
HTML-escape.

A model without a template gets a built-in one only when it looks like a chat
model (a fine-tune named "instruct"/"it"/"chat"...) and its vocabulary holds the
format's special tokens: ChatML (``<|im_start|>``) or Gemma (``<start_of_turn>``).
A base model without a template (gemma3-270m) is used raw: its input is a plain
text continuation. See :func:`needs_template` and :class:`Chat`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Optional

from llmlite.errors import ChatTemplateError, ContextFullError
from llmlite.genconfig import DEFAULT_MAX_TOKENS, GenerationConfig
from llmlite.generate import generate_text
from llmlite import reasoning as rsn
from llmlite import template_sandbox as sandbox
from llmlite.template_sandbox import short

__all__ = ["ChatTemplateError", "ContextFullError", "ChatTemplate", "BUILTIN_TEMPLATES", "Chat",
           "template_for", "needs_template", "looks_instruct", "prompt_ids"]


# ---- built-in templates --------------------------------------------------------------

_CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Gemma has no system role: the system text opens the first user turn.
_GEMMA = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set first_user_prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '')"
    " + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

BUILTIN_TEMPLATES = {"chatml": _CHATML, "gemma": _GEMMA}

# SmolLM2's template (ChatML with a default system message), as its GGUFs carry it
_SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _chatml_renderer(default_system: Optional[str]):
    """Python twin of a ChatML template (with a default system message when the first
    message is not a system one): None for any input it does not render exactly as
    Jinja does (a message that is not a dict of str role and content)."""
    def render(messages: list, add_generation_prompt: bool) -> Optional[str]:
        out = []
        for i, m in enumerate(messages):
            if type(m) is not dict or type(m.get("role")) is not str or type(m.get("content")) is not str:
                return None
            if i == 0 and default_system is not None and m["role"] != "system":
                out.append("<|im_start|>system\n" + default_system + "<|im_end|>\n")
            out.append("<|im_start|>" + m["role"] + "\n" + m["content"] + "<|im_end|>\n")
        if add_generation_prompt:
            out.append("<|im_start|>assistant\n")
        return "".join(out)

    return render


# exact template sources -> Python twins: these render without importing or running
# Jinja (~40 ms of a small model's time to first token); tests compare them with Jinja
_NATIVE = {
    _CHATML: _chatml_renderer(None),
    _SMOLLM2: _chatml_renderer("You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
}
# the tokens whose presence in the vocabulary selects a built-in template
_BUILTIN_MARKERS = {"chatml": ("<|im_start|>", "<|im_end|>"), "gemma": ("<start_of_turn>", "<end_of_turn>")}

class ChatTemplate:
    """A compiled chat template. ``source`` is Jinja text (untrusted); ``bos_token`` and
    ``eos_token`` are the token texts the template may print; ``name`` is for messages."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = "", name: str = "chat template"):
        if not isinstance(source, str) or not source.strip():
            raise ChatTemplateError(f"{name} is empty")
        self.source = source
        self.bos_token = bos_token or ""
        self.eos_token = eos_token or ""
        self.name = name
        self._native = _NATIVE.get(source)
        self._tmpl = None if self._native is not None else self._compile()

    def _compile(self):
        from jinja2.exceptions import TemplateSyntaxError

        name = self.name
        try:
            return sandbox.environment().from_string(self.source)
        except TemplateSyntaxError as e:
            raise ChatTemplateError(f"{name} has a syntax error (line {e.lineno}): {short(e.message)}") from None
        except Exception as e:  # anything else the compiler may throw on odd input
            raise ChatTemplateError(f"{name} could not be compiled: {type(e).__name__}: {short(e)}") from None

    def render(self, messages: list[dict], add_generation_prompt: bool = True, **extra: Any) -> str:
        """The prompt text for a conversation (a list of {"role", "content"})."""
        if self._native is not None:
            out = self._native(messages, bool(add_generation_prompt))
            if out is not None:
                return out
        if self._tmpl is None:
            self._tmpl = self._compile()
        from jinja2.exceptions import SecurityError, TemplateError

        ctx = dict(extra)
        ctx.update(messages=[dict(m) for m in messages], add_generation_prompt=bool(add_generation_prompt),
                   bos_token=self.bos_token, eos_token=self.eos_token)
        try:
            out = sandbox.render(self._tmpl, ctx)
        except sandbox.OverBudget as e:
            raise ChatTemplateError(f"{self.name} was stopped: it {e}") from None
        except sandbox.TemplateRaised as e:
            raise ChatTemplateError(f"{self.name} refused the conversation: {short(e)}") from None
        except SecurityError as e:
            raise ChatTemplateError(f"{self.name} attempted an unsafe operation (blocked by the sandbox): "
                                    f"{short(e)}") from None
        except TemplateError as e:
            raise ChatTemplateError(f"{self.name} failed to render: {short(e.message or e)}") from None
        except RecursionError:
            raise ChatTemplateError(f"{self.name} failed to render: recursion too deep") from None
        except MemoryError:
            raise ChatTemplateError(f"{self.name} failed to render: out of memory") from None
        except Exception as e:
            raise ChatTemplateError(f"{self.name} failed to render: {type(e).__name__}: {short(e)}") from None
        if not isinstance(out, str):
            raise ChatTemplateError(f"{self.name} did not produce text")
        return out

    def __repr__(self) -> str:
        return f"ChatTemplate({self.name!r}, {len(self.source)} chars)"


# ---- choosing a template for a model ------------------------------------------------------

_INSTRUCT_WORDS = re.compile(r"(?:^|[^a-z0-9])(it|instruct|chat|sft|dpo|rlhf|assistant)(?:[^a-z0-9]|$)", re.I)


def looks_instruct(metadata: dict, path: Any = None) -> bool:
    """Whether the GGUF's names say it is a chat/instruction fine-tune (not a base model)."""
    texts = [metadata.get(k) for k in ("general.finetune", "general.name", "general.basename")]
    if path is not None:
        from pathlib import Path

        texts.append(Path(str(path)).stem)
    return any(isinstance(t, str) and _INSTRUCT_WORDS.search(t) for t in texts)


def _token_text(tok, tid: Optional[int]) -> str:
    if tid is None:
        return ""
    try:
        return tok.text(tid).decode("utf-8", "replace")
    except (ValueError, IndexError):
        return ""


def template_for(model, name: Optional[str] = None) -> Optional[ChatTemplate]:
    """The chat template to use for a loaded model: the GGUF's own, a built-in one
    (``name`` forces "chatml" or "gemma"), or None (use the model raw)."""
    tok = model.tokenizer
    md = getattr(model, "metadata", {}) or {}
    bos, eos = _token_text(tok, tok.bos_id), _token_text(tok, tok.eos_id)
    if name is not None:
        if name not in BUILTIN_TEMPLATES:
            raise ChatTemplateError(f"unknown built-in chat template {name!r} (known: {', '.join(BUILTIN_TEMPLATES)})")
        return ChatTemplate(BUILTIN_TEMPLATES[name], bos, eos, name=f"built-in {name} template")
    src = getattr(tok, "chat_template", None) or md.get("tokenizer.chat_template")
    if isinstance(src, str) and src.strip():
        return ChatTemplate(src, bos, eos, name="the model's chat template")
    if not looks_instruct(md, getattr(model, "path", None)):
        return None
    for key, markers in _BUILTIN_MARKERS.items():
        if all(tok.token_to_id(t) is not None for t in markers):
            return ChatTemplate(BUILTIN_TEMPLATES[key], bos, eos, name=f"built-in {key} template")
    return None


def needs_template(model) -> bool:
    """True if the model is used through a chat template, False if it is used raw."""
    return template_for(model) is not None


MAX_MARKS = 4       # Chat.marks kept: the last two turns' prompts and replies


def _kept(pieces, out: list):
    """pieces, each also appended to out"""
    for p in pieces:
        out.append(p)
        yield p


def prompt_ids(model, text: str) -> list[int]:
    """Tokenize a prompt (special-token texts parsed), with one BOS where the model wants
    it: not added when the text already starts with it (a template that prints
    ``bos_token``), never an EOS."""
    tok = model.tokenizer
    ids = model.tokenize(text, add_special=False, parse_special=True)
    if getattr(tok, "add_bos", False) and tok.bos_id is not None and (not ids or ids[0] != tok.bos_id):
        ids.insert(0, tok.bos_id)
    return ids


# ---- a conversation -------------------------------------------------------------------------

def _answers(parts: Iterator[tuple]) -> Iterator[str]:
    """The answer's pieces of a reply's (kind, text) parts."""
    try:
        for kind, piece in parts:
            if kind == rsn.ANSWER:
                yield piece
    finally:
        parts.close()


@dataclass
class Chat:
    """A conversation with a model: history, rendering, generation with KV-cache reuse.

    With a template, each turn renders the whole conversation and the model's
    ``prefill`` evaluates only what the cache does not hold yet (the new turn).
    Raw (``raw=True``, or a model without a template), the conversation is one
    plain text: each input is appended to it and the model continues it.

    ``reasoning`` is the model's reasoning format (llmlite/reasoning.py: "think",
    "harmony", or None), found from its vocabulary and template unless given. A reply
    in such a format joins the history as its answer (``content``) and, apart, its
    reasoning (the field the format's templates read), so a template puts the
    reasoning in later prompts only where it wants it.
    """

    model: Any
    system: Optional[str] = None
    raw: bool = False
    template: Optional[ChatTemplate] = None
    messages: list = field(default_factory=list)
    transcript: str = ""           # raw mode: the text so far
    reasoning: Optional[str] = None
    tools: Any = None              # llmlite/tools.py's ToolSet: the tools each reply may call
    last_calls: list = field(default_factory=list)   # the tool calls the last reply made
    # (text, ids) of the latest prompts and prompt-plus-reply texts, the reply as the
    # model's own tokens: a later prompt that begins with one keeps its ids (_ids_for)
    marks: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        if not self.raw and self.template is None:
            self.template = template_for(self.model)
            if self.template is None:
                self.raw = True
        if self.raw:
            self.template = None
            self.reasoning = None  # plain text continued: no reply format to parse
        elif self.reasoning is None:
            self.reasoning = rsn.reasoning_format(self.model.tokenizer, self.template.source)

    # ---- history ----
    def clear(self) -> None:
        """Forget the conversation (the system message stays) and empty the KV cache."""
        self.messages = []
        self.transcript = ""
        self.marks = []
        self.model.reset()

    def set_system(self, text: Optional[str]) -> None:
        self.system = text or None

    def turns_to_drop(self, text: str, reserve: int = DEFAULT_MAX_TOKENS) -> int:
        """How many of the oldest exchanges (a user message and its reply) must go
        for the conversation with a new user message ``text`` and ``reserve`` tokens
        of reply to fit the context (the system message always stays); -1 if even
        dropping them all would not do."""
        if self.raw:
            return -1
        n_ctx, msgs = self.model.n_ctx, self.messages
        for k in range(0, len(msgs) // 2 + 1):
            keep = msgs[2 * k:]
            conv = ([{"role": "system", "content": self.system}] if self.system else []) + \
                [dict(m) for m in keep] + [{"role": "user", "content": text}]
            if len(prompt_ids(self.model, self.template.render(conv, add_generation_prompt=True))) + \
                    min(reserve, n_ctx // 4) < n_ctx:
                return k
        return -1

    def drop_oldest(self, k: int) -> None:
        """Forget the k oldest exchanges (the KV cache is re-evaluated from the start)."""
        del self.messages[:2 * k]
        self.marks = []
        self.model.reset()

    def conversation(self) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [dict(m) for m in self.messages]

    def render(self, add_generation_prompt: bool = True) -> str:
        if self.raw:
            return self.transcript
        if self.tools is not None:
            return self.tools.render(self.template, self.conversation(), self.tool_format, add_generation_prompt)
        return self.template.render(self.conversation(), add_generation_prompt=add_generation_prompt)

    @property
    def tool_format(self):
        from llmlite.tool_formats import format_for

        return format_for(self.template.source if self.template is not None else None)

    def prompt_ids(self) -> list[int]:
        return self._ids_for(self.render())

    def _ids_for(self, prompt: str) -> list[int]:
        """The prompt's token ids. Where it begins with an earlier prompt, or an earlier
        prompt and its reply, and goes on from a special token (a chat template's
        end-of-turn), those ids are kept and only the rest is tokenized: the reply stays
        the tokens the model made, as llama-cli keeps them, so the next turn reuses the
        whole cache (a text tokenized again can come out as other tokens, and a
        recurrent state cannot be rewound to where they part). Else the whole prompt."""
        tok = self.model.tokenizer
        for text, ids in sorted(self.marks, key=lambda m: -len(m[0])):
            rest = prompt[len(text):]
            if prompt.startswith(text) and (not rest or tok.opens_with_special(rest)):
                return ids + self.model.tokenize(rest, add_special=False, parse_special=True)
        return prompt_ids(self.model, prompt)

    def _mark(self, text: str, ids: list) -> None:
        self.marks = self.marks[-(MAX_MARKS - 1):] + [(text, list(ids))]

    # ---- generation ----
    def _undo_input(self, raw_before) -> None:
        if raw_before is None:          # a reply to tool results: no input was added
            return
        if self.raw:
            self.transcript = raw_before
        else:
            self.messages.pop()

    def tool_result(self, content: str, call_id: Optional[str] = None) -> None:
        """A tool's result joins the history, answering the last reply's call call_id
        (default: its next call not answered yet); ``reply(None)`` then has the model go on."""
        calls, answered = None, set()
        for m in reversed(self.messages):
            if m.get("role") != "tool":
                calls = m.get("tool_calls")
                break
            answered.add(m.get("tool_call_id"))
        if not calls:
            raise ValueError("no tool call to answer: the last reply made none")
        ids = [c["id"] for c in calls]
        if call_id is None:
            call_id = next((i for i in ids if i not in answered), None)
        if call_id not in ids:
            raise ValueError(f"no call {call_id!r} to answer (the last reply's: {', '.join(ids)})")
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": str(content)})

    def reply(self, text: Optional[str], max_tokens: int = -1, stats=None, **options) -> Iterator[str]:
        """Add a user turn (None: none, the model answers the tool results given with
        tool_result) and stream the model's answer (str pieces; a reasoning model's
        reasoning is not among them: see reply_parts). The reply, even a partial one
        (the generator closed early, an interrupt), joins the history.
        ``max_tokens`` < 0: until the end of the turn or a full context. ``options``:
        the other generation options of Model.generate, checked now (before the turn
        joins the history)."""
        return _answers(self.reply_parts(text, max_tokens, stats, **options))

    def reply_parts(self, text: Optional[str], max_tokens: int = -1, stats=None, **options) -> Iterator[tuple]:
        """As reply, streaming (kind, text) pairs: kind "reasoning" or "answer"."""
        return self._reply(text, max_tokens, stats, GenerationConfig.from_options(**options))

    def _remember(self, parts: list) -> None:
        """The reply joins the history: its answer as the content, its reasoning apart."""
        if self.raw:
            self.transcript += "".join(t for _, t in parts)
            return
        msg = {"role": "assistant", "content": "".join(t for k, t in parts if k == rsn.ANSWER)}
        if self.last_calls:
            msg["tool_calls"] = [{"id": f"call_{len(self.messages)}_{i}", "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}}
                                 for i, c in enumerate(self.last_calls)]
        thought = "".join(t for k, t in parts if k == rsn.REASONING).strip()
        if thought:
            msg[rsn.HISTORY_KEY[self.reasoning]] = thought
        self.messages.append(msg)

    def _reply(self, text: Optional[str], max_tokens: int, stats, config: GenerationConfig) -> Iterator[tuple]:
        before = self.transcript
        if text is None:            # the model goes on after the tool results
            if self.raw or not self.messages or self.messages[-1].get("role") != "tool":
                raise ValueError("reply(None) follows tool_result(): there is no tool result to answer")
            before = None
        elif self.raw:
            self.transcript += text
        else:
            self.messages.append({"role": "user", "content": text})
        try:
            prompt = self.render()
            ids = self._ids_for(prompt) if not self.raw else prompt_ids(self.model, prompt)
        except Exception:
            self._undo_input(before)
            raise
        if not ids:
            self._undo_input(before)
            raise ValueError("the prompt is empty: nothing to continue")
        n_ctx = self.model.n_ctx
        if len(ids) >= n_ctx:
            first = not (before if self.raw else self.messages[:-1]) and before is not None
            self._undo_input(before)
            fit = len(ids) + (max_tokens if max_tokens is not None and max_tokens > 0 else DEFAULT_MAX_TOKENS)
            if first:
                msg = (f"the prompt is {len(ids)} tokens and does not fit the context of {n_ctx}: "
                       f"use -c {fit} or more, or a shorter prompt")
            else:
                msg = (f"the conversation with this message is {len(ids)} tokens and does not fit the context "
                       f"of {n_ctx}: start over (/clear), or use -c {fit} or more")
            raise ContextFullError(msg, n_tokens=len(ids), n_ctx=n_ctx, fit=fit, first=first)
        n = n_ctx if max_tokens is None or max_tokens < 0 else max_tokens   # the loop stops at the room left
        splitter = rsn.splitter_for(self.reasoning, prompt)
        parts: list[tuple] = []
        self.last_calls = []
        made: Optional[list] = []       # the reply's token ids
        config = replace(config, max_tokens=n)
        if self.tools is not None and not self.raw:
            if config.json_schema is not None or config.grammar is not None or config.regex is not None:
                self._undo_input(before)
                raise ChatTemplateError("tools and an output constraint (--json-schema, --grammar, --regex) "
                                        "cannot be used together")
            fmt = self.tool_format
            stop = config.stop
            try:
                self.tools.check(fmt, self.model.tokenizer)
            except Exception:
                self._undo_input(before)
                raise
            config = replace(config, **self.tools.options(fmt, self.model.tokenizer))
            pieces = self.tools.content(fmt, generate_text(self.model, ids, config, stats), self.last_calls,
                                        stop, stats)
            made = None                 # a reply with calls is rendered anew next turn
        else:
            pieces = generate_text(self.model, ids, config, stats, ids_out=made)
        if not self.raw:
            self._mark(prompt, ids)
        texts: list = []
        try:
            for part in rsn.split(_kept(pieces, texts), splitter):
                parts.append(part)
                yield part
        finally:
            if splitter is not None:       # cut short: what the splitter held is the reply's too
                parts.extend(splitter.flush())
            self._remember(parts)
            reply = "".join(texts)
            # the reply's ids stand for its text only when they decode to it (not where a
            # stop string cut the text, or the reply was interrupted before its last piece)
            if made and not self.raw and self.model.tokenizer.decode(made).decode("utf-8", "replace") == reply:
                self._mark(prompt + reply, ids + made)
