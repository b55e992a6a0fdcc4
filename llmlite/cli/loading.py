"""Loading a model for a command: options checked, the context chosen, notes printed."""
from __future__ import annotations

import sys
from typing import Optional

from llmlite import settings
from llmlite.cli.app import resolve, state
from llmlite.cli.options import GenOptions, parse_ngl
from llmlite.cli.output import note, stderr_style
from llmlite.errors import UserError


def _checked_cpu(threads: Optional[int]) -> Optional[int]:
    """More threads than CPUs only slow the thread pool down (each waits for the others):
    capped, with a note; LLMLITE_ISA naming no kernel set this CPU has: a note, not silence."""
    import os

    from llmlite import _lib

    cpus = os.cpu_count() or 1
    if threads is not None and threads > cpus:
        note(f"(-t {threads}: this machine has {cpus} CPUs; using {cpus})")
        threads = cpus
    want = settings.env("LLMLITE_ISA")
    if want is not None and want != _lib.isa():
        note(f"(LLMLITE_ISA={want}: not scalar, avx2 or avx512 as this CPU runs them; using {_lib.isa()})")
    return threads


def load_model(model: Optional[str], ctx_size: Optional[int], threads: Optional[int], gpu_layers: str):
    """Resolve and load a model for generation, with the CLI's checks and notes."""
    import time

    if ctx_size is not None and not 0 <= ctx_size <= settings.MAX_CTX:
        raise UserError(f"-c/--ctx-size must be in [0, {settings.MAX_CTX}] (got {ctx_size})")
    if threads is not None and threads < 1:
        raise UserError(f"-t/--threads must be >= 1 (got {threads})")
    threads = _checked_cpu(threads)
    n_gpu = parse_ngl(gpu_layers)     # auto, all or a count
    path = resolve(model)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    from llmlite.config import ModelConfig
    from llmlite.gguf import open_gguf

    g = open_gguf(path)   # read once here, then handed to the model
    try:
        n_ctx_train = ModelConfig.of(g).n_ctx_train
    except BaseException:
        g.close()
        raise
    n_ctx = ctx_size
    if ctx_size == 0:
        n_ctx = n_ctx_train or settings.DEFAULT_CTX
    if n_ctx is not None and n_ctx_train and n_ctx > n_ctx_train:
        print(f"warning: context {n_ctx} is larger than the model's training context {n_ctx_train}: "
              "quality may drop past it", file=sys.stderr)
    from llmlite.model import Model

    t0 = time.perf_counter()
    try:
        m = Model(path, n_ctx=n_ctx, threads=threads, gpu_layers=n_gpu, gguf=g,
                  notify=lambda line: print(stderr_style(line), file=sys.stderr, flush=True))
    except BaseException:
        g.close()
        raise
    from llmlite.usage import note_used

    note_used(path)
    if state.verbose:
        print(f"loaded {path.name} in {time.perf_counter() - t0:.2f} s: context {m.n_ctx}, {m.threads} threads",
              file=sys.stderr)
    return m


def apply_model_defaults(gen: "GenOptions", model: Optional[str]) -> None:
    """models.toml's sampling values for the alias (or the default model) fill the
    options not given on the command line (which win; the GGUF's own values and
    llama.cpp's defaults come after both)"""
    from pathlib import Path

    from llmlite.registry import entry_for

    if model is not None and Path(model).expanduser().exists():
        return
    e = entry_for(model)
    for k, v in (e.sampling if e else {}).items():
        if gen.kwargs.get(k) is None:
            gen.kwargs[k] = v


def make_chat(m, system: Optional[str], raw: bool, tools=None):
    """A Chat for the model, its template checked with a trial render. tools: --tools's
    ToolSet (a raw model has no template to declare them in: an error)."""
    from llmlite.chat import Chat

    chat = Chat(m, system=system, raw=raw, tools=tools)
    if tools is not None and chat.raw:
        raise UserError("--tools needs a chat template to declare the tools in (not --raw, not a base model)")
    if chat.raw:
        if system:
            why = "--raw" if raw else "the model has no chat template"
            print(f"note: -sys ignored: {why}", file=sys.stderr)
    else:
        chat.template.render(chat.conversation() + [{"role": "user", "content": "Hello"}])
        if state.verbose:
            print(f"chat template: {chat.template.name}", file=sys.stderr)
    return chat
