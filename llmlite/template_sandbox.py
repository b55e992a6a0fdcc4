"""The sandbox chat templates render in: Jinja's ImmutableSandboxedEnvironment with
Hugging Face's conventions (trim_blocks, lstrip_blocks, loop controls, a {% generation %}
tag, a tojson that does not HTML-escape), and bounds on every render: 1 s of wall time
and 4 Mi characters or items for any text or list it builds, its output included. The
hooks check them as the template runs (every loop step, call, filter and operator),
without a thread or a signal; chat.py's ChatTemplate turns what they raise into one line.
"""
from __future__ import annotations

import contextvars
import functools
import math
import re
import string
import time
from typing import Any

_MAX_REPEAT = 1 << 20        # longest string/list a template may build with * (items)
_MAX_POW = 1 << 64           # largest result of ** on integers
# A render's bounds: a real prompt renders in well under a millisecond and is far
# shorter than any context window, so these only stop hostile templates (nested
# loops that pin a CPU, strings that double until memory runs out).
_MAX_RENDER_SECONDS = 1.0    # wall time of one render
_MAX_TEXT = 4 << 20          # longest text (rendered output, or any string/list built) in chars/items


class OverBudget(Exception):
    """A render went past its time or size bound (raised from inside the sandbox)."""


# The deadline of the render in progress. The sandbox's hooks check it as the template
# runs (every loop step, call and filter), rather than a thread or a signal interrupting it.
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("llmlite_template_deadline", default=math.inf)


def _tick() -> None:
    if time.monotonic() > _DEADLINE.get():
        raise OverBudget(f"took longer than {_MAX_RENDER_SECONDS:g} s to render")


def _check_length(n: int) -> None:
    if n > _MAX_TEXT:
        raise OverBudget(f"built a text or list of over {_MAX_TEXT >> 20} Mi characters/items")


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
        raise OverBudget(f"asked for a size of over {_MAX_TEXT >> 20} Mi")


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


def environment():
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
            raise OverBudget(f"asked for a JSON indent wider than {_MAX_JSON_INDENT}")
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


class TemplateRaised(Exception):
    """raise_exception() called by a template (kept apart from the template's own bugs)."""


def _raise_exception(message: Any = "") -> None:
    raise TemplateRaised(str(message))


def _strftime_now(fmt: str) -> str:
    import datetime

    return datetime.datetime.now().strftime(str(fmt))


def short(s: Any, n: int = 200) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def render(tmpl, ctx: dict) -> str:
    """Render a compiled template within the bounds, chunk by chunk so that the output's
    size is checked as it grows; OverBudget past them."""
    token = _DEADLINE.set(time.monotonic() + _MAX_RENDER_SECONDS)
    try:
        parts, size = [], 0
        for chunk in tmpl.generate(**ctx):
            size += len(chunk)
            _check_length(size)
            parts.append(chunk)
        return "".join(parts)
    finally:
        _DEADLINE.reset(token)
