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

import contextvars
import functools
import math
import re
import string
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Optional

from llmlite.errors import ChatTemplateError, ContextFullError
from llmlite.genconfig import DEFAULT_MAX_TOKENS, GenerationConfig
from llmlite.generate import generate_text

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

# ---- the sandbox -------------------------------------------------------------------------

_MAX_REPEAT = 1 << 20        # longest string/list a template may build with * (items)
_MAX_POW = 1 << 64           # largest result of ** on integers
# A render's bounds: a real prompt renders in well under a millisecond and is far
# shorter than any context window, so these only stop hostile templates (nested
# loops that pin a CPU, strings that double until memory runs out).
_MAX_RENDER_SECONDS = 1.0    # wall time of one render
_MAX_TEXT = 4 << 20          # longest text (rendered output, or any string/list built) in chars/items


class _OverBudget(Exception):
    """A render went past its time or size bound (raised from inside the sandbox)."""


# The deadline of the render in progress. The sandbox's hooks check it as the template
# runs (every loop step, call and filter), rather than a thread or a signal interrupting it.
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("llmlite_template_deadline", default=math.inf)


def _tick() -> None:
    if time.monotonic() > _DEADLINE.get():
        raise _OverBudget(f"took longer than {_MAX_RENDER_SECONDS:g} s to render")


def _check_length(n: int) -> None:
    if n > _MAX_TEXT:
        raise _OverBudget(f"built a text or list of over {_MAX_TEXT >> 20} Mi characters/items")


def _bounded(value: Any) -> Any:
    """``value``, unless it is a string or list longer than the template may build."""
    if isinstance(value, (str, list, tuple)):
        _check_length(len(value))
    return value


# the str methods and filters whose int arguments are a size they allocate at once
# ('x'.center(10**9), [1] | batch(10**9, 0))
_SIZED_METHODS = frozenset(["center", "ljust", "rjust", "zfill", "expandtabs"])
_SIZED_FILTERS = frozenset(["do_center", "do_batch"])
_MAX_JSON_INDENT = 64        # tojson's indent (real templates use 2 or 4)


def _check_sizes(args: Any) -> None:
    """Refuse a width/count far above the bound."""
    if any(isinstance(a, int) and not isinstance(a, bool) and a > _MAX_TEXT for a in args):
        raise _OverBudget(f"asked for a size of over {_MAX_TEXT >> 20} Mi")


# the widths and precisions of a printf-style format: '%0200000000d' % 1 allocates them at once
_PRINTF_SIZES = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d*))?")


def _check_printf(fmt: str, args: Any) -> None:
    sizes = [int(n) for m in _PRINTF_SIZES.finditer(fmt) for n in m.groups() if n]
    if "*" in fmt:  # widths taken from the arguments
        sizes += list(args) if isinstance(args, tuple) else [args]
    _check_sizes(sizes)


def _check_format(fmt: str, args: tuple) -> None:
    """The widths and precisions of str.format's fields ('{:>200000000}'), and the
    arguments when a field takes its width from one ('{:>{}}')."""
    specs = [spec for _, _, spec, _ in string.Formatter().parse(fmt) if spec]
    sizes = [int(n) for spec in specs for n in re.findall(r"\d+", spec)]
    if any("{" in spec for spec in specs):
        sizes += args
    _check_sizes(sizes)


def _check_join(items: Any, sep: Any) -> None:
    """A join's result length, counted before the join allocates it."""
    if isinstance(items, (list, tuple)):
        _check_length(sum(len(x) if isinstance(x, str) else 1 for x in items) + len(str(sep)) * len(items))


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        _check_length(len(text) + text.count(old) * max(len(new) - len(old), 0))


def _check_str_method(method: Any, args: tuple) -> None:
    """The bound checks of a call to a str method, before it runs (join and replace can
    multiply their input; the padding methods take a width)."""
    # the sandbox hands str.format over wrapped (update_wrapper keeps the method in __wrapped__)
    owner = getattr(getattr(method, "__wrapped__", method), "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(method, "__name__", "")
    if name == "join" and args:
        _check_join(args[0], owner)
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name in ("format", "format_map"):
        _check_format(owner, args)
    elif name in _SIZED_METHODS:
        _check_sizes(args)


def _check_filter(fn: Any, value: Any, params: tuple) -> None:
    """The same checks for Jinja's filters of the same kind, before they run."""
    name = getattr(fn, "__name__", "")
    if name == "do_join":
        _check_join(value, params[0] if params else "")
    elif name == "do_replace" and len(params) >= 2:
        _check_replace(value, params[0], params[1])
    elif name == "do_indent" and params and isinstance(value, str):  # the width is a count or a prefix
        width = len(params[0]) if isinstance(params[0], str) else params[0] if isinstance(params[0], int) else 0
        _check_length(len(value) + (value.count("\n") + 1) * width)
    elif name == "do_format" and isinstance(value, str):
        _check_printf(value, params)
    elif name == "do_wordwrap" and isinstance(value, str):  # at worst a wrap string after every character
        _check_length(len(value) * (1 + max((len(p) for p in params if isinstance(p, str)), default=1)))
    elif name in _SIZED_FILTERS:
        _check_sizes(params)


def _bounded_filter(fn):
    """A Jinja filter under the render's bounds (its pass-context marks are kept by wraps)."""
    value_at = 1 if hasattr(fn, "jinja_pass_arg") else 0  # after the context/environment Jinja passes

    @functools.wraps(fn)
    def bounded(*args, **kwargs):
        _tick()
        if len(args) > value_at:
            _check_filter(fn, args[value_at], args[value_at + 1:] + tuple(kwargs.values()))
        return _bounded(fn(*args, **kwargs))
    return bounded


def _environment():
    """The shared sandboxed Jinja environment (built on first use: jinja2 is imported lazily)."""
    global _ENV
    if _ENV is not None:
        return _ENV
    import json

    from jinja2 import nodes
    from jinja2.exceptions import SecurityError
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.visitor import NodeTransformer

    def env_call(attribute, arg):
        # environment.<attribute>(arg): a template cannot shadow it as it could a global
        return nodes.Call(nodes.EnvironmentAttribute(attribute, lineno=arg.lineno), [arg], [], None, None,
                          lineno=arg.lineno)

    class BoundLoopsAndConcat(NodeTransformer):
        """Routes every for-loop's iterable and every ``~`` through the render's bounds:
        neither calls anything the sandbox sees, so a loop that outputs nothing, or a
        string doubled by ``~``, would otherwise run unchecked."""

        def visit_For(self, node):
            node = self.generic_visit(node)
            node.iter = env_call("bounded_iter", node.iter)
            return node

        def visit_Concat(self, node):
            node = self.generic_visit(node)
            return env_call("bounded_concat", nodes.List(node.nodes, lineno=node.lineno))

    class GenerationTag(Extension):
        """HF's ``{% generation %}...{% endgeneration %}`` (marks assistant text): renders its body."""
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "+", "%"])

        def _parse(self, source, name, filename):
            return BoundLoopsAndConcat().visit(super()._parse(source, name, filename))

        @staticmethod
        def bounded_iter(iterable):
            for item in iterable:
                _tick()
                yield item

        @staticmethod
        def bounded_concat(parts):
            texts = [str(p) for p in parts]
            _check_length(sum(map(len, texts)))
            return "".join(texts)

        def call(self, context, obj, /, *args, **kwargs):
            _tick()
            _check_str_method(obj, args + tuple(kwargs.values()))
            return _bounded(super().call(context, obj, *args, **kwargs))

        def unsafe_undefined(self, obj, attribute):
            # Jinja's default returns an Undefined that renders as "": make it loud instead
            raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} value is not allowed")

        def call_binop(self, context, operator, left, right):
            if operator == "+":
                # the commonest operator, first; checked after the fact: both sides are within
                # the bound (anything larger has been refused), so the sum is at most twice it
                return _bounded(left + right)
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and not isinstance(n, bool):
                        if len(seq) * max(n, 0) > _MAX_REPEAT:
                            raise SecurityError("the template builds a too large string or list with *")
                return left * right
            if operator == "**":
                if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                    if right * max(abs(left).bit_length() - 1, 1) > 64:
                        raise SecurityError("the template computes a too large power with **")
                return left ** right
            if operator == "%" and isinstance(left, str):
                _check_printf(left, right)
            return _bounded(super().call_binop(context, operator, left, right))

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # the indent repeats on every line, once per level: a wide one multiplies the text
        if len(str(indent)) > _MAX_JSON_INDENT if isinstance(indent, str) else (indent or 0) > _MAX_JSON_INDENT:
            raise _OverBudget(f"asked for a JSON indent wider than {_MAX_JSON_INDENT}")
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols],
                  keep_trailing_newline=False)
    env.filters["tojson"] = tojson
    env.filters = {k: _bounded_filter(f) for k, f in env.filters.items()}
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    _ENV = env
    return env


_ENV = None


class _TemplateRaised(Exception):
    """raise_exception() called by a template (kept apart from the template's own bugs)."""


def _raise_exception(message: Any = "") -> None:
    raise _TemplateRaised(str(message))


def _strftime_now(fmt: str) -> str:
    import datetime

    return datetime.datetime.now().strftime(str(fmt))


def _short(s: Any, n: int = 200) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."


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
            return _environment().from_string(self.source)
        except TemplateSyntaxError as e:
            raise ChatTemplateError(f"{name} has a syntax error (line {e.lineno}): {_short(e.message)}") from None
        except Exception as e:  # anything else the compiler may throw on odd input
            raise ChatTemplateError(f"{name} could not be compiled: {type(e).__name__}: {_short(e)}") from None

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
        token = _DEADLINE.set(time.monotonic() + _MAX_RENDER_SECONDS)
        try:
            out = self._render_bounded(ctx)
        except _OverBudget as e:
            raise ChatTemplateError(f"{self.name} was stopped: it {e}") from None
        except _TemplateRaised as e:
            raise ChatTemplateError(f"{self.name} refused the conversation: {_short(e)}") from None
        except SecurityError as e:
            raise ChatTemplateError(f"{self.name} attempted an unsafe operation (blocked by the sandbox): "
                                    f"{_short(e)}") from None
        except TemplateError as e:
            raise ChatTemplateError(f"{self.name} failed to render: {_short(e.message or e)}") from None
        except RecursionError:
            raise ChatTemplateError(f"{self.name} failed to render: recursion too deep") from None
        except MemoryError:
            raise ChatTemplateError(f"{self.name} failed to render: out of memory") from None
        except Exception as e:
            raise ChatTemplateError(f"{self.name} failed to render: {type(e).__name__}: {_short(e)}") from None
        finally:
            _DEADLINE.reset(token)
        if not isinstance(out, str):
            raise ChatTemplateError(f"{self.name} did not produce text")
        return out

    def _render_bounded(self, ctx: dict) -> str:
        """Render chunk by chunk, so the output's size is checked as it grows."""
        parts, size = [], 0
        for chunk in self._tmpl.generate(**ctx):
            size += len(chunk)
            _check_length(size)
            parts.append(chunk)
        return "".join(parts)

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

@dataclass
class Chat:
    """A conversation with a model: history, rendering, generation with KV-cache reuse.

    With a template, each turn renders the whole conversation and the model's
    ``prefill`` evaluates only what the cache does not hold yet (the new turn).
    Raw (``raw=True``, or a model without a template), the conversation is one
    plain text: each input is appended to it and the model continues it.
    """

    model: Any
    system: Optional[str] = None
    raw: bool = False
    template: Optional[ChatTemplate] = None
    messages: list = field(default_factory=list)
    transcript: str = ""           # raw mode: the text so far

    def __post_init__(self):
        if not self.raw and self.template is None:
            self.template = template_for(self.model)
            if self.template is None:
                self.raw = True
        if self.raw:
            self.template = None

    # ---- history ----
    def clear(self) -> None:
        """Forget the conversation (the system message stays) and empty the KV cache."""
        self.messages = []
        self.transcript = ""
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
        self.model.reset()

    def conversation(self) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [dict(m) for m in self.messages]

    def render(self, add_generation_prompt: bool = True) -> str:
        if self.raw:
            return self.transcript
        return self.template.render(self.conversation(), add_generation_prompt=add_generation_prompt)

    def prompt_ids(self) -> list[int]:
        return prompt_ids(self.model, self.render())

    # ---- generation ----
    def _undo_input(self, raw_before: str) -> None:
        if self.raw:
            self.transcript = raw_before
        else:
            self.messages.pop()

    def reply(self, text: str, max_tokens: int = -1, stats=None, **options) -> Iterator[str]:
        """Add a user turn and stream the model's reply (str pieces). The reply, even a
        partial one (the generator closed early, an interrupt), joins the history.
        ``max_tokens`` < 0: until the end of the turn or a full context. ``options``:
        the other generation options of Model.generate, checked now (before the turn
        joins the history)."""
        return self._reply(text, max_tokens, stats, GenerationConfig.from_options(**options))

    def _reply(self, text: str, max_tokens: int, stats, config: GenerationConfig) -> Iterator[str]:
        before = self.transcript
        if self.raw:
            self.transcript += text
        else:
            self.messages.append({"role": "user", "content": text})
        try:
            ids = self.prompt_ids()
        except Exception:
            self._undo_input(before)
            raise
        if not ids:
            self._undo_input(before)
            raise ValueError("the prompt is empty: nothing to continue")
        n_ctx = self.model.n_ctx
        if len(ids) >= n_ctx:
            first = not (before if self.raw else self.messages[:-1])
            self._undo_input(before)
            fit = len(ids) + (max_tokens if max_tokens is not None and max_tokens > 0 else DEFAULT_MAX_TOKENS)
            if first:
                msg = (f"the prompt is {len(ids)} tokens and does not fit the context of {n_ctx}: "
                       f"use -c {fit} or more, or a shorter prompt")
            else:
                msg = (f"the conversation with this message is {len(ids)} tokens and does not fit the context "
                       f"of {n_ctx}: start over (/clear), or use -c {fit} or more")
            raise ContextFullError(msg, n_tokens=len(ids), n_ctx=n_ctx, fit=fit, first=first)
        room = n_ctx - len(ids)
        n = room if max_tokens is None or max_tokens < 0 else min(max_tokens, room)
        parts: list[str] = []
        try:
            for piece in generate_text(self.model, ids, replace(config, max_tokens=n), stats):
                parts.append(piece)
                yield piece
            if n == room and stats is not None and stats.stop_reason == "length":
                stats.stop_reason = "context"    # the budget was the room left, and it is used up
        finally:
            out = "".join(parts)
            if self.raw:
                self.transcript += out
            else:
                self.messages.append({"role": "assistant", "content": out})
