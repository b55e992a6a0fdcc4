"""A fast parser for plain `llmlite run ...` command lines (see the comment below)."""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import typer

from llmlite.cli.app import state

# Typer builds a pydantic validator for each of run's 17 options on every call
# (pydantic's import included, ~70 ms: a sixth of `run -p` on a small model). A
# plain `llmlite [-v] run ...` command line (every option spelled as declared on
# run(), or --long=value; values that convert exactly) is parsed here from run()'s
# own signature instead; anything else (help, errors, bundled short options, odd
# values) goes to Typer, which then says what is wrong.

_FAST_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _fast_options(fn: Callable) -> Optional[tuple[dict, dict, list]]:
    """(name -> (param, type, value or None for a flag), defaults, positionals) from
    a command's signature; None if it has anything the fast path does not handle."""
    import inspect

    names: dict[str, tuple[str, type, Any]] = {}
    defaults: dict[str, Any] = {}
    positional: list[tuple[str, type]] = []
    for pname, p in inspect.signature(fn).parameters.items():
        info = p.default
        ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        if ann.startswith("Optional[") and ann.endswith("]"):
            ann = ann[9:-1]
        typ = _FAST_TYPES.get(ann)
        kind = type(info).__name__
        if typ is None or kind not in ("OptionInfo", "ArgumentInfo"):
            return None
        if (getattr(info, "envvar", None) or getattr(info, "callback", None) or getattr(info, "parser", None)
                or getattr(info, "is_eager", False) or getattr(info, "prompt", False)
                or getattr(info, "count", False) or getattr(info, "min", None) is not None
                or getattr(info, "max", None) is not None or getattr(info, "default_factory", None)
                or callable(info.default)):
            return None
        defaults[pname] = info.default
        if kind == "ArgumentInfo":
            positional.append((pname, typ))
            continue
        for decl in info.param_decls:
            if typ is bool:
                on, _, off = decl.partition("/")
                names[on] = (pname, typ, True)
                if off:
                    names[off] = (pname, typ, False)
            else:
                names[decl] = (pname, typ, None)
    return names, defaults, positional


def _fast_value(typ: type, v: str) -> Any:
    """v as typ, or raise ValueError where Typer's conversion might differ."""
    import re

    if typ is str:
        return v
    if typ is int and re.fullmatch(r"-?(?:0|[1-9][0-9]*)", v):
        return int(v)
    if typ is float and re.fullmatch(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", v):
        return float(v)
    raise ValueError(v)


def parse(argv: list[str]) -> Optional[tuple[Callable, dict, bool]]:
    """(command, its keyword arguments, --verbose) for a plain `[-v] run ...` command
    line, else None."""
    verbose = False
    i = 0
    while i < len(argv) and argv[i] in ("-v", "--verbose"):
        verbose = True
        i += 1
    if i >= len(argv) or argv[i] != "run":
        return None
    from llmlite.cli.run import run

    spec = _fast_options(run)
    if spec is None:
        return None
    names, kwargs, positional = spec
    rest = argv[i + 1:]
    j = 0
    try:
        while j < len(rest):
            tok = rest[j]
            j += 1
            if tok.startswith("-") and tok != "-":
                opt, eq, val = tok.partition("=") if tok.startswith("--") else (tok, "", "")
                hit = names.get(opt)
                if hit is None:
                    return None           # unknown, --help, --, bundled short options: Typer's call
                pname, typ, flag = hit
                if typ is bool:
                    if eq:
                        return None
                    kwargs[pname] = flag
                    continue
                if not eq:
                    if j >= len(rest):
                        return None
                    val = rest[j]
                    j += 1
                kwargs[pname] = _fast_value(typ, val)
            else:
                if not positional:
                    return None
                pname, typ = positional.pop(0)
                kwargs[pname] = _fast_value(typ, tok)
    except ValueError:
        return None
    return run, kwargs, verbose


def fast_run(argv: list[str]) -> None:
    """Run a plain `run` command line without Typer's parser and exit; return if
    the command line is not one the fast path takes."""
    parsed = parse(argv)
    if parsed is None:
        return
    fn, kwargs, verbose = parsed
    state.verbose = verbose
    try:
        fn(**kwargs)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:                       # as Typer's standalone mode ends them
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    except Exception as e:
        show = getattr(e, "show", None)       # a click exception
        if show is None or not hasattr(e, "exit_code"):
            raise
        show()
        sys.exit(e.exit_code)
    sys.exit(0)
