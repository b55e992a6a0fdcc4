"""The llmlite command line: commands and options, nothing else.

Heavy imports (numpy, the C extension, Rich) happen inside the commands, so
that `llmlite --help` and argument errors stay fast.
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Optional

import typer

class _App(typer.Typer):
    """The Typer app, with a fast path for `run`: see _fast_run."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and kwargs.get("args") is None:
            _fast_run(sys.argv[1:])  # exits when it handled the command line
        return super().__call__(*args, **kwargs)


app = _App(
    name="llmlite",
    help="A small, fast local runner for GGUF language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _State:
    verbose = False


state = _State()


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""

    exit_code = 2


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v",
                                       help="More detail; tracebacks on errors.")) -> None:
    state.verbose = verbose


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg


def _classify(e: BaseException) -> tuple[int, str]:
    """Exit status and message for an exception escaping a command."""
    if isinstance(e, UserError):
        return e.exit_code, _one_line(e)
    from llmlite.registry import RegistryError

    bad_input: tuple[type, ...] = (RegistryError,)
    gg = sys.modules.get("llmlite.gguf.reader")
    if gg is not None:
        bad_input += (gg.GGUFError,)
    ch = sys.modules.get("llmlite.chat")
    if ch is not None:
        bad_input += (ch.ChatTemplateError, ch.ContextFullError)
    tk = sys.modules.get("llmlite.tokenizer")
    if tk is not None:
        bad_input += (tk.TokenizerError,)
    qz = sys.modules.get("llmlite.quantize")
    if qz is not None:
        bad_input += (qz.QuantizeError,)
    if isinstance(e, bad_input):
        return 2, _one_line(e)
    lb = sys.modules.get("llmlite._lib")
    if lb is not None and isinstance(e, lb.LlmliteError):
        return 1, _one_line(e)  # written for people (an unsupported model, a full context)
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return 2, f"{where}{e.strerror or _one_line(e)}"
    if isinstance(e, MemoryError):
        return 1, "out of memory"
    if isinstance(e, OSError):
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return 1, f"{where}{e.strerror or _one_line(e)}"
    return 1, f"internal error: {type(e).__name__}: {_one_line(e)}" + (
        "" if state.verbose else " (run with --verbose for the traceback)")


def command(fn: Callable) -> Callable:
    """Wrap a command so that errors print one line ("error: ...") to stderr
    and exit non-zero; the traceback only with --verbose."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # the reader went away (e.g. `| head`): not worth a message; keep the
            # interpreter from complaining when it flushes stdout at exit
            import os

            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            raise typer.Exit(1) from None
        except Exception as e:
            import click

            if isinstance(e, click.exceptions.ClickException):
                raise
            code, msg = _classify(e)
            if state.verbose:
                import traceback

                traceback.print_exc()
            print(f"error: {msg}", file=sys.stderr)
            raise typer.Exit(code) from None

    return wrapper


def resolve(model: Optional[str]):
    """A model argument (path or models.toml alias) -> an existing file path."""
    from llmlite.registry import resolve_model

    return resolve_model(model)


# ---- info -------------------------------------------------------------------

_TOKENIZER_KINDS = {"gpt2": "BPE", "llama": "SPM", "bert": "WPM", "t5": "UGM", "rwkv": "RWKV",
                    "plamo2": "PLaMo-2", "no_vocab": "none", "none": "none"}


def _fmt_bytes(n: int) -> str:
    for unit, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= f:
            return f"{n / f:.2f} {unit}"
    return f"{n} B"


def _fmt_params(n: int) -> str:
    for unit, f in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= f:
            return f"{n / f:.1f}{unit}"
    return str(n)


def _finite(x: Any) -> Any:
    import math

    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def model_facts(path, n_ctx: Optional[int] = None) -> dict:
    """The facts `llmlite info` shows, as one JSON-ready dict."""
    from llmlite.config import ModelConfig
    from llmlite.gguf import open_gguf, type_name, type_supported

    with open_gguf(path) as g:
        cfg = ModelConfig.from_gguf(g)
        types: dict[int, list[int]] = {}
        for t in g.tensors.values():
            row = types.setdefault(t.type, [0, 0, 0])
            row[0] += 1
            row[1] += t.n_elements
            row[2] += t.nbytes
        weights = sum(r[2] for r in types.values())
        n_el = sum(r[1] for r in types.values())
        if n_ctx is None:
            n_ctx = min(4096, cfg.n_ctx_train) if cfg.n_ctx_train > 0 else 4096
        if n_ctx <= 0:
            raise UserError(f"context size must be positive (got {n_ctx})")
        kv = cfg.kv_cache_bytes(n_ctx)
        n_swa = sum(cfg.swa_layers) if cfg.sliding_window else 0
        kv_win = cfg.kv_cache_bytes(n_ctx, windowed=True) if n_swa else None
        tm = cfg.tokenizer_model
        facts = {
            "path": str(g.path),
            "file_size": g.file_size,
            "gguf_version": g.version,
            "alignment": g.alignment,
            "n_metadata": len(g.metadata),
            "n_tensors": len(g.tensors),
            "architecture": cfg.arch,
            "name": cfg.name,
            "parameters": cfg.param_count,
            "n_layer": cfg.n_layer,
            "n_head": cfg.n_head,
            "n_head_kv": cfg.n_head_kv if len(set(cfg.n_head_kv_per_layer)) <= 1 else cfg.n_head_kv_per_layer,
            "head_dim": cfg.head_dim,
            "head_dim_v": cfg.head_dim_v,
            "n_embd": cfg.n_embd,
            "n_ff": cfg.n_ff if len(set(cfg.n_ff_per_layer)) <= 1 else cfg.n_ff_per_layer,
            "n_ctx_train": cfg.n_ctx_train,
            "n_rot": cfg.n_rot,
            "rope_freq_base": _finite(cfg.rope_freq_base),
            "rms_eps": _finite(cfg.rms_eps),
            "sliding_window": cfg.sliding_window,
            "n_swa_layers": n_swa,
            "vocab_size": cfg.n_vocab,
            "tokenizer": {
                "model": tm,
                "kind": _TOKENIZER_KINDS.get(tm or "", tm),
                "pre": cfg.tokenizer_pre,
                "bos_token_id": cfg.bos_token_id,
                "eos_token_id": cfg.eos_token_id,
                "add_bos_token": cfg.add_bos_token,
            },
            "chat_template": cfg.has_chat_template,
            "tensor_types": [
                {"type": type_name(t), "type_id": t, "count": r[0], "elements": r[1], "bytes": r[2],
                 "bits_per_weight": round(8 * r[2] / r[1], 4) if r[1] else 0.0,
                 "computable": type_supported(t)}
                for t, r in sorted(types.items(), key=lambda kv_: -kv_[1][2])
            ],
            "bits_per_weight": round(8 * weights / n_el, 4) if n_el else 0.0,
            "memory": {
                "n_ctx": n_ctx,
                "weights_bytes": weights,
                "kv_cache_bytes": kv,
                "total_bytes": weights + kv,
                "kv_cache_windowed_bytes": kv_win,
                "total_windowed_bytes": weights + kv_win if kv_win is not None else None,
            },
        }
        return facts


@app.command()
@command
def info(
    model: str = typer.Argument(..., help="A GGUF file, or a model alias from models.toml."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
    ctx_size: Optional[int] = typer.Option(None, "-c", "--ctx-size",
                                           help="Context for the memory estimate (default: min(4096, training context))."),
    plan: bool = typer.Option(False, "--plan", help="Print the CPU/GPU layer split for -ngl, without loading."),
    vram: Optional[float] = typer.Option(None, "--vram", metavar="GB",
                                         help="With --plan: free GPU memory to plan for (default: this GPU's)."),
    vram_margin: int = typer.Option(512, "--vram-margin", metavar="MiB", help="With --plan: memory left free."),
    gpu_gbs: Optional[float] = typer.Option(None, "--gpu-gbs", metavar="GB/s",
                                            help="With --plan: the GPU's memory bandwidth (default: an H100's)."),
    gpu_layers: str = typer.Option("auto", "-ngl", "--gpu-layers", "--n-gpu-layers", metavar="auto|N",
                                   help="With --plan: layers to put on the GPU (auto, all, or a number)."),
) -> None:
    """Describe a GGUF model: architecture, sizes, tokenizer, tensor types, memory.
    With --plan: which layers -ngl puts on the GPU, the bytes on each side and the
    decode speed to expect from each side's bandwidth, for any --vram.

    \f
    With --json, prints one object with these keys (stable):
    path, file_size, gguf_version, alignment, n_metadata, n_tensors, architecture, name,
    parameters (sum of tensor elements), n_layer, n_head, n_head_kv (int, or a per-layer
    list), head_dim, head_dim_v, n_embd, n_ff (int or per-layer list), n_ctx_train, n_rot,
    rope_freq_base, rms_eps, sliding_window (0: none), n_swa_layers, vocab_size,
    tokenizer {model, kind (BPE/SPM/...), pre, bos_token_id, eos_token_id, add_bos_token},
    chat_template (bool), tensor_types [{type, type_id, count, elements, bytes,
    bits_per_weight, computable}] (largest first), bits_per_weight,
    memory {n_ctx, weights_bytes, kv_cache_bytes (F16 K and V, every layer the full
    context), total_bytes, kv_cache_windowed_bytes and total_windowed_bytes (sliding-window
    layers keeping only the window; null without sliding window)}.
    """
    if ctx_size is not None and ctx_size <= 0:
        raise UserError(f"-c/--ctx-size must be positive (got {ctx_size})")
    path = resolve(model)
    if plan:
        _info_plan(path, ctx_size, vram, vram_margin, gpu_layers, json_out, gpu_gbs)
        return
    facts = model_facts(path, ctx_size)
    if json_out:
        import json

        sys.stdout.write(json.dumps(facts, indent=2) + "\n")
        return
    _print_info(facts)


def _info_plan(path, ctx_size, vram, margin_mib: int, ngl: str, json_out: bool, gpu_gbs=None) -> None:
    import dataclasses

    from llmlite import offload
    from llmlite.gguf import open_gguf

    if vram is not None and not vram >= 0:
        raise UserError(f"--vram must be >= 0 GB (got {vram})")
    if margin_mib < 0:
        raise UserError(f"--vram-margin must be >= 0 MiB (got {margin_mib})")
    n = _parse_ngl(ngl)
    from llmlite.config import ModelConfig

    with open_gguf(path) as g:
        costs = offload.model_costs(g, ctx_size or ModelConfig.of(g).default_ctx)
    free = int(vram * (1 << 30)) if vram is not None else offload.vram_free()
    if gpu_gbs is not None and not gpu_gbs > 0:
        raise UserError(f"--gpu-gbs must be > 0 (got {gpu_gbs})")
    p = offload.plan_split(costs, free, margin_mib << 20, n, cpu_gbs=offload.cpu_bandwidth_gbs(),
                           gpu_gbs=gpu_gbs or offload.H100_GBS)
    if json_out:
        import json

        d = dataclasses.asdict(p)
        for side in ("cpu", "gpu"):
            r = d[side]["layers"]
            d[side]["layers"] = [r.start, r.stop]
        sys.stdout.write(json.dumps(d, indent=2) + "\n")
        return
    print(f"{path.name}, context {costs.n_ctx}" + ("" if vram is not None or free is not None
                                                    else " (no GPU found: pass --vram GB to plan for one)"))
    print(offload.format_plan(p))


def _print_info(f: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    con = Console(highlight=False)
    kvt = Table.grid(padding=(0, 2))
    kvt.add_column(style="bold")
    kvt.add_column()

    def row(k, v):
        kvt.add_row(k, Text(str(v)))  # Text: names from the file are not markup

    tok = f["tokenizer"]
    row("architecture", f["architecture"])
    if f["name"]:
        row("name", f["name"])
    row("parameters", f"{_fmt_params(f['parameters'])} ({f['parameters']:,})")
    row("layers", f["n_layer"])
    hkv = f["n_head_kv"]
    row("heads", f"{f['n_head']} (KV heads {hkv if isinstance(hkv, int) else ', '.join(map(str, hkv))})")
    hd = f"{f['head_dim']}" + (f" (V {f['head_dim_v']})" if f["head_dim_v"] != f["head_dim"] else "")
    row("head dim", hd)
    row("embedding length", f["n_embd"])
    nff = f["n_ff"]
    row("feed-forward length", nff if isinstance(nff, int) else ", ".join(map(str, nff)))
    row("context length", f"{f['n_ctx_train']:,} (training)")
    row("rope", f"{f['n_rot']} dims, base {f['rope_freq_base']:g}" if isinstance(f["rope_freq_base"], float)
        else f"{f['n_rot']} dims, base {f['rope_freq_base']}")
    if f["sliding_window"]:
        row("sliding window", f"{f['sliding_window']:,} tokens on {f['n_swa_layers']} of {f['n_layer']} layers")
    kind = tok["kind"] or "none"
    desc = f"{f['vocab_size']:,} ({kind}"
    if tok["model"] and tok["model"] != kind:
        desc += f", {tok['model']}"
    if tok["pre"]:
        desc += f", pre {tok['pre']}"
    desc += ")"
    row("vocabulary", desc)
    row("chat template", "yes" if f["chat_template"] else "no")
    row("file", f["path"])
    row("file size", f"{_fmt_bytes(f['file_size'])} ({f['file_size']:,} bytes)")
    row("format", f"GGUF v{f['gguf_version']}, {f['n_tensors']} tensors, {f['n_metadata']} metadata keys")
    con.print(kvt)

    t = Table(box=box.SIMPLE_HEAD, title="tensor types", title_justify="left")
    for c, j in (("type", "left"), ("tensors", "right"), ("elements", "right"), ("bytes", "right"),
                 ("bits/weight", "right")):
        t.add_column(c, justify=j)  # type: ignore[arg-type]
    tot_n = tot_el = tot_b = 0
    for r in f["tensor_types"]:
        t.add_row(r["type"], str(r["count"]), f"{r['elements']:,}", _fmt_bytes(r["bytes"]),
                  f"{r['bits_per_weight']:.2f}")
        tot_n += r["count"]
        tot_el += r["elements"]
        tot_b += r["bytes"]
    t.add_row("all", str(tot_n), f"{tot_el:,}", _fmt_bytes(tot_b), f"{f['bits_per_weight']:.2f}", style="bold")
    con.print(t)

    m = f["memory"]
    mt = Table.grid(padding=(0, 2))
    mt.add_column(style="bold")
    mt.add_column(justify="right")
    mt.add_column()
    mt.add_row("weights", _fmt_bytes(m["weights_bytes"]), "")
    mt.add_row("KV cache", _fmt_bytes(m["kv_cache_bytes"]), "F16 K and V, every layer the full context")
    mt.add_row("total", _fmt_bytes(m["total_bytes"]), "")
    if m["kv_cache_windowed_bytes"] is not None:
        mt.add_row("KV windowed", _fmt_bytes(m["kv_cache_windowed_bytes"]),
                   f"if the {f['n_swa_layers']} sliding-window layers keep only {f['sliding_window']:,} tokens")
        mt.add_row("total windowed", _fmt_bytes(m["total_windowed_bytes"]), "")
    con.print()
    con.print(f"[bold]memory at context {m['n_ctx']:,}[/bold]")
    con.print(mt)


# ---- run / chat / tokenize ----------------------------------------------------

N_PREDICT_ONCE = 512       # -n default with -p/-f
MAX_CTX = (1 << 31) - 1024  # the C side counts positions (and a little more) in an int
N_PREDICT_RAW_REPL = 256   # -n default in the REPL for a model used raw (base models rarely stop)


def _opt_n_predict():
    return typer.Option(None, "-n", "--n-predict", "--predict",
                        help=f"Tokens to generate; -1: until the end of the turn or a full context "
                             f"(default: {N_PREDICT_ONCE} with -p/-f; in the REPL -1, or "
                             f"{N_PREDICT_RAW_REPL} without a chat template).")


def _opt_ctx():
    return typer.Option(None, "-c", "--ctx-size",
                        help="Context size in tokens (default: min(4096, training context); 0: the training context).")


def _opt_threads():
    return typer.Option(None, "-t", "--threads", help="CPU threads (default: the physical cores).")


def _opt_ngl():
    return typer.Option("auto", "-ngl", "--gpu-layers", "--n-gpu-layers", metavar="auto|N",
                        help="Layers to offload to the GPU (auto, all, or a number).")


def _opt_temp():
    return typer.Option(None, "--temp", help="Temperature; 0 is greedy (default 0.8, or the GGUF's general.sampling.temp).")


def _opt_top_k():
    return typer.Option(None, "--top-k", help="Top-k sampling, 0 disables (default 40).")


def _opt_top_p():
    return typer.Option(None, "--top-p", help="Top-p sampling, 1.0 disables (default 0.95).")


def _opt_min_p():
    return typer.Option(None, "--min-p", help="Min-p sampling, 0.0 disables (default 0.05).")


def _opt_repeat_penalty():
    return typer.Option(None, "--repeat-penalty", help="Penalty for repeated tokens, 1.0 disables (default 1.0).")


def _opt_seed():
    return typer.Option(None, "-s", "--seed", help="Random seed; -1 or none: a random one.")


def _opt_system():
    return typer.Option(None, "-sys", "--system-prompt", "--system", help="System message for the chat template.")


def _opt_lookup():
    return typer.Option(True, "--lookup/--no-lookup",
                        help="Prompt-lookup speculative decoding (lossless: the output does not change).")


def _opt_draft_max():
    return typer.Option(8, "--draft-max", "--draft", help="Most tokens drafted per step with --lookup.")


def _opt_plain():
    return typer.Option(False, "--plain", help="Replies as plain text (default: Markdown rendered on a terminal).")


def _opt_raw():
    return typer.Option(False, "--raw", help="No chat template: the input is plain text for the model to continue.")


class _Gen:
    """The generation options shared by run and chat, validated."""

    def __init__(self, n_predict, temp, top_k, top_p, min_p, repeat_penalty, seed, lookup, draft_max):
        if n_predict is not None and n_predict < -1:
            raise UserError(f"-n must be -1 (no limit) or a count >= 0 (got {n_predict})")
        from llmlite.sampling import check_sampling

        try:
            check_sampling(temp, top_k, top_p, min_p, repeat_penalty)
        except ValueError as e:
            raise UserError(str(e)) from None
        if draft_max < 1:
            raise UserError(f"--draft-max must be >= 1 (got {draft_max})")
        self.n_predict = n_predict
        self.lookup = lookup
        self.kwargs = dict(temperature=temp, top_k=top_k, top_p=top_p, min_p=min_p,
                           repeat_penalty=repeat_penalty, seed=None if seed is None or seed < 0 else seed,
                           lookup=lookup, draft_max=draft_max)


def _count(v: str, what: str) -> int:
    """a whole number >= 0 given for `what`, or a UserError saying so"""
    try:
        n = int(str(v).strip())
    except ValueError:
        n = -1
    if n < 0:
        raise UserError(f"{what} must be a whole number >= 0 (got {v!r})")
    return n


def _parse_ngl(v: str):
    s = str(v).strip().lower()
    return s if s in ("auto", "all") else _count(s, "-ngl (auto, all or a number of layers)")


def _load_model(model: Optional[str], ctx_size: Optional[int], threads: Optional[int], ngl: str):
    """Resolve and load a model for generation, with the CLI's checks and notes."""
    import time

    if ctx_size is not None and not 0 <= ctx_size <= MAX_CTX:
        raise UserError(f"-c/--ctx-size must be in [0, {MAX_CTX}] (got {ctx_size})")
    if threads is not None and threads < 1:
        raise UserError(f"-t/--threads must be >= 1 (got {threads})")
    gpu = _parse_ngl(ngl)
    path = resolve(model)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    n_ctx_train = 0
    from llmlite.gguf import open_gguf

    g = open_gguf(path)   # read once here, then handed to the model
    arch = g.metadata.get("general.architecture")
    v = g.metadata.get(f"{arch}.context_length")
    if isinstance(v, int):
        n_ctx_train = v
    n_ctx = ctx_size
    if ctx_size == 0:
        n_ctx = n_ctx_train or 4096
    if n_ctx is not None and n_ctx_train and n_ctx > n_ctx_train:
        print(f"warning: context {n_ctx} is larger than the model's training context {n_ctx_train}: "
              "quality may drop past it", file=sys.stderr)
    from llmlite.model import Model

    t0 = time.perf_counter()
    try:
        m = Model(path, n_ctx=n_ctx, threads=threads, gpu_layers=gpu, gguf=g,
                  notify=lambda line: print(_stderr_style(line), file=sys.stderr, flush=True))
    except BaseException:
        g.close()
        raise
    from llmlite.registry import note_used

    note_used(path)
    if state.verbose:
        print(f"loaded {path.name} in {time.perf_counter() - t0:.2f} s: context {m.n_ctx}, {m.threads} threads",
              file=sys.stderr)
    return m


def _model_defaults(gen: "_Gen", model: Optional[str]) -> None:
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


def _make_chat(m, system: Optional[str], raw: bool):
    """A Chat for the model, its template checked with a trial render."""
    from llmlite.chat import Chat

    chat = Chat(m, system=system, raw=raw)
    if chat.raw:
        if system:
            why = "--raw" if raw else "the model has no chat template"
            print(f"note: -sys ignored: {why}", file=sys.stderr)
    else:
        chat.template.render(chat.conversation() + [{"role": "user", "content": "Hello"}])
        if state.verbose:
            print(f"chat template: {chat.template.name}", file=sys.stderr)
    return chat


def _stderr_style(text: str, code: str = "2") -> str:
    import os

    if sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
        return f"\x1b[{code}m{text}\x1b[0m"
    return text


def _stats_line(st, lookup: bool) -> str:
    s = f"prompt {st.prompt_tokens} tokens"
    if st.cached_tokens:
        s += f" ({st.cached_tokens} cached)"
    s += f", {st.prefill_tps:.1f} t/s | generated {st.generated} tokens, {st.decode_tps:.1f} t/s"
    s += f" | stop: {st.stop_reason or 'interrupted'}"
    if lookup:
        rate = f" ({100.0 * st.accepted / st.drafted:.0f}%)" if st.drafted else ""
        s += f" | lookup: {st.drafted} drafted, {st.accepted} accepted{rate}"
    return s


def _print_stats(st, lookup: bool) -> None:
    print(_stderr_style(_stats_line(st, lookup)), file=sys.stderr, flush=True)


def _utf8_stdout() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


def _stream(pieces, plain: bool = True) -> None:
    """Write the reply's pieces to stdout as they come, rendered as Markdown on a
    terminal that takes it unless `plain`; end the output with a newline."""
    from llmlite.render import markdown_ok, stream_pieces

    stream_pieces(pieces, markdown=not plain and markdown_ok())


def _read_prompt_file(file: str) -> str:
    if file == "-":
        data = sys.stdin.buffer.read()
        name = "stdin"
    else:
        from pathlib import Path

        data = Path(file).read_bytes()
        name = file
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{name}: not UTF-8 text (byte {e.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text[:-1] if text.endswith("\n") else text  # like llama.cpp: one trailing newline dropped


@app.command()
@command
def run(
    model: Optional[str] = typer.Argument(None, help="A GGUF file or a model alias (default: the default alias)."),
    prompt: Optional[str] = typer.Option(None, "-p", "--prompt", help="Generate once for this prompt, then exit."),
    file: Optional[str] = typer.Option(None, "-f", "--file", help="Read the prompt from a file (-: stdin)."),
    n_predict: Optional[int] = _opt_n_predict(),
    ctx_size: Optional[int] = _opt_ctx(),
    threads: Optional[int] = _opt_threads(),
    gpu_layers: str = _opt_ngl(),
    temp: Optional[float] = _opt_temp(),
    top_k: Optional[int] = _opt_top_k(),
    top_p: Optional[float] = _opt_top_p(),
    min_p: Optional[float] = _opt_min_p(),
    repeat_penalty: Optional[float] = _opt_repeat_penalty(),
    seed: Optional[int] = _opt_seed(),
    system: Optional[str] = _opt_system(),
    lookup: bool = _opt_lookup(),
    draft_max: int = _opt_draft_max(),
    raw: bool = _opt_raw(),
    plain: bool = _opt_plain(),
) -> None:
    """Generate text. With -p or -f: once, to stdout (stats to stderr); without: the chat REPL.

    The chat template is applied (-sys is the system message) unless --raw or the
    model has none (a base model): then the prompt is continued as plain text.
    """
    if prompt is not None and file is not None:
        raise UserError("give the prompt with -p or with -f, not both")
    gen = _Gen(n_predict, temp, top_k, top_p, min_p, repeat_penalty, seed, lookup, draft_max)
    if prompt is None and file is None:
        _repl(model, gen, ctx_size, threads, gpu_layers, system, raw, plain)
        return
    text = prompt if prompt is not None else _read_prompt_file(file)  # type: ignore[arg-type]
    _utf8_stdout()
    m = _load_model(model, ctx_size, threads, gpu_layers)
    _model_defaults(gen, model)
    chat = _make_chat(m, system, raw)
    if chat.raw and not text:
        raise UserError("the prompt is empty: nothing to continue")
    from llmlite.generate import GenStats

    stats = GenStats()
    n = N_PREDICT_ONCE if gen.n_predict is None else gen.n_predict
    _stream(chat.reply(text, max_tokens=n, stats=stats, **gen.kwargs), plain)
    _print_stats(stats, gen.lookup)


@app.command()
@command
def chat(
    model: Optional[str] = typer.Argument(None, help="A GGUF file or a model alias (default: the default alias)."),
    n_predict: Optional[int] = _opt_n_predict(),
    ctx_size: Optional[int] = _opt_ctx(),
    threads: Optional[int] = _opt_threads(),
    gpu_layers: str = _opt_ngl(),
    temp: Optional[float] = _opt_temp(),
    top_k: Optional[int] = _opt_top_k(),
    top_p: Optional[float] = _opt_top_p(),
    min_p: Optional[float] = _opt_min_p(),
    repeat_penalty: Optional[float] = _opt_repeat_penalty(),
    seed: Optional[int] = _opt_seed(),
    system: Optional[str] = _opt_system(),
    lookup: bool = _opt_lookup(),
    draft_max: int = _opt_draft_max(),
    raw: bool = _opt_raw(),
    plain: bool = _opt_plain(),
) -> None:
    """Chat with a model in the terminal (reads lines from stdin when it is not a terminal).

    \b
    /help           the commands
    /clear          forget the conversation (and the KV cache)
    /system [TEXT]  set the system message (without TEXT: remove it)
    /bye            quit (also /exit, /quit, Ctrl-D; Ctrl-C at the prompt)
    A line ending in \\ continues on the next line. Ctrl-C stops a reply.
    """
    gen = _Gen(n_predict, temp, top_k, top_p, min_p, repeat_penalty, seed, lookup, draft_max)
    _repl(model, gen, ctx_size, threads, gpu_layers, system, raw, plain)


_REPL_HELP = """\
/help               this help
/clear              forget the conversation and empty the KV cache
/system [TEXT]      set the system message (without TEXT: remove it)
/set KEY VALUE      temp, top_k, top_p, min_p, repeat_penalty, seed, ctx, system or lookup (on/off)
/show               the model, template, parameters, the rendered prompt and its token ids
/save FILE          write the conversation as JSON; /load FILE reads one back
/regen              drop the last reply and generate it again
/stats              the last reply's statistics
/bye                quit (also /exit, /quit, Ctrl-D, or Ctrl-C at the prompt)
End a line with \\ to continue on the next line, or put the text between \"\"\" lines.
Ctrl-C stops a reply; it stays in the history."""


def _gauge(chat) -> str:
    """the context gauge shown before the prompt: tokens in use / context"""
    return f"[{chat.model.n_past}/{chat.model.n_ctx}] "


def _ask(question: str, interactive: bool) -> bool:
    """a yes/no question on stderr, the answer read as a line of input"""
    print(_stderr_style(question), end="", file=sys.stderr, flush=True)
    try:
        ans = input() if interactive else sys.stdin.readline()
    except EOFError:
        return False
    if not interactive:
        print(file=sys.stderr)
    return ans.strip().lower() in ("y", "yes")


def _read_turn(interactive: bool, gauge: str = "") -> str:
    """One input: lines joined across those that end with a backslash, or the lines
    between two \"\"\" marks. EOFError at the end."""

    def one(prompt: str) -> str:
        if interactive:
            return input(prompt)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    line = one(gauge + "> ")
    if line.lstrip().startswith('"""'):       # """ ... """: the lines between, as they are
        first = line.lstrip()[3:]
        parts = [first] if first else []
        while True:
            if parts and parts[-1].rstrip().endswith('"""'):
                parts[-1] = parts[-1].rstrip()[:-3]
                break
            try:
                parts.append(one("... "))
            except EOFError:
                break
        return "\n".join(p for p in parts).strip("\n")
    parts = []
    while line.endswith("\\"):
        parts.append(line[:-1])
        try:
            line = one("... ")
        except EOFError:
            line = ""
            break
    parts.append(line)
    return "\n".join(parts)


def _note(msg: str) -> None:
    print(_stderr_style(msg), file=sys.stderr, flush=True)


_SET_KEYS = {"temp": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
             "repeat_penalty": "repeat_penalty", "seed": "seed"}


def _set(chat, gen: "_Gen", key: str, value: str) -> None:
    """/set KEY VALUE, validated as the command-line options are"""
    key = key.lower().replace("-", "_")
    if key == "system":
        _slash_system(chat, value)
        return
    if key == "lookup":
        on = value.lower() in ("on", "true", "1", "yes")
        if not on and value.lower() not in ("off", "false", "0", "no"):
            raise UserError(f"/set lookup {value}: on or off")
        gen.lookup = gen.kwargs["lookup"] = on
        _note(f"(lookup {'on' if on else 'off'})")
        return
    if key == "ctx":
        _set_ctx(chat, value)
        return
    if key not in _SET_KEYS:
        raise UserError(f"/set {key}: one of {', '.join(list(_SET_KEYS) + ['ctx', 'system', 'lookup'])}")
    try:
        v = int(value) if key in ("top_k", "seed") else float(value)
    except ValueError:
        raise UserError(f"/set {key} {value}: not a number") from None
    cur = dict(gen.kwargs)
    args = dict(n_predict=gen.n_predict, temp=cur["temperature"], top_k=cur["top_k"], top_p=cur["top_p"],
                min_p=cur["min_p"], repeat_penalty=cur["repeat_penalty"], seed=cur["seed"], lookup=gen.lookup,
                draft_max=cur["draft_max"])
    args[{"temperature": "temp"}.get(_SET_KEYS[key], _SET_KEYS[key])] = v
    checked = _Gen(**args)                 # raises UserError, as on the command line
    gen.kwargs.update(checked.kwargs)
    _note(f"({key} = {v})")


def _set_ctx(chat, value: str) -> None:
    """/set ctx N: the KV cache made again at N tokens; the conversation, if it fits,
    is evaluated again on the next turn"""
    n = _count(value, "/set ctx")
    m = chat.model
    need = len(chat.prompt_ids()) if (chat.messages or chat.transcript) else 0
    train = m.metadata.get(f"{m.arch}.context_length")
    target = n or int(train or 4096)
    if target > MAX_CTX:
        raise UserError(f"/set ctx {n}: at most {MAX_CTX}")
    if need >= target:
        raise UserError(f"/set ctx {n}: the conversation is {need} tokens; /clear first, or a context above {need}")
    from llmlite._lib import LlmliteError

    try:
        m.set_context(target)
    except (LlmliteError, MemoryError) as e:
        raise UserError(f"/set ctx {n}: {_one_line(e)}; the context stays {m.n_ctx}") from None
    note = f" (more than the model's training context {train}: quality may drop past it)" \
        if isinstance(train, int) and target > train else ""
    _note(f"(ctx = {m.n_ctx}{note})")


def _slash_system(chat, arg: str) -> None:
    if chat.raw:
        _note("(no chat template: /system has no effect)")
    else:
        chat.set_system(arg or None)
        _note("(system message set)" if arg else "(system message removed)")


def _show(chat, gen: "_Gen") -> None:
    m = chat.model
    how = "raw: no chat template" if chat.raw else chat.template.name
    ids = chat.prompt_ids() if (chat.messages or chat.transcript) else []
    params = ", ".join(f"{k} {v}" for k, v in gen.kwargs.items() if v is not None)
    print(f"model: {m.path}\ntemplate: {how}\ncontext: {m.n_past} of {m.n_ctx} tokens in use\n"
          f"parameters: {params or 'the model defaults'}\nrendered prompt ({len(ids)} tokens):\n{chat.render(False) if ids else ''}\n"
          f"token ids: {ids}", file=sys.stderr, flush=True)


def _save(chat, path: str) -> None:
    import json

    data = {"format": "llmlite-chat-1", "system": chat.system, "raw": chat.raw, "messages": chat.messages,
            "transcript": chat.transcript}
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
    except OSError as e:
        raise UserError(f"/save {path}: {e.strerror or e}") from None
    _note(f"(conversation saved to {path}: {len(chat.messages)} messages)")


def _load(chat, path: str) -> None:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        msgs = data["messages"]
        if not all(isinstance(x, dict) and x.get("role") in ("user", "assistant") and isinstance(x.get("content"), str)
                   for x in msgs):
            raise ValueError("messages must be {role: user|assistant, content: text}")
    except OSError as e:
        raise UserError(f"/load {path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"/load {path}: not a saved conversation ({_one_line(e)})") from None
    chat.messages = [dict(x) for x in msgs]
    chat.transcript = data.get("transcript", "") or ""
    if "system" in data:
        chat.set_system(data["system"])
    _note(f"(conversation loaded from {path}: {len(chat.messages)} messages)")


def _slash(chat, line: str, gen: "_Gen" = None, state: dict = None):
    """Run a slash command: False to quit, a text to send as a user turn (/regen),
    else None."""
    cmd, _, arg = line.partition(" ")
    cmd = cmd.lower()
    arg = arg.strip()
    state = state if state is not None else {}
    try:
        if cmd in ("/exit", "/quit", "/bye"):
            return False
        if cmd in ("/help", "/?"):
            print(_REPL_HELP, file=sys.stderr, flush=True)
        elif cmd == "/clear":
            chat.clear()
            _note("(conversation cleared)")
        elif cmd == "/system":
            _slash_system(chat, arg)
        elif cmd == "/set" and gen is not None:
            key, _, value = arg.partition(" ")
            if not key or not value.strip():
                raise UserError("/set KEY VALUE (/help lists the keys)")
            _set(chat, gen, key, value.strip())
        elif cmd == "/show" and gen is not None:
            _show(chat, gen)
        elif cmd in ("/save", "/load"):
            if not arg:
                raise UserError(f"{cmd} FILE")
            (_save if cmd == "/save" else _load)(chat, arg)
        elif cmd == "/stats":
            st = state.get("stats")
            if st is None:
                _note("(no reply yet)")
            else:
                _print_stats(st, gen.lookup if gen is not None else False)
        elif cmd == "/regen":
            if chat.raw or len(chat.messages) < 2 or chat.messages[-1]["role"] != "assistant":
                raise UserError("/regen: there is no reply to generate again")
            chat.messages.pop()
            return chat.messages.pop()["content"]
        else:
            print(f"error: unknown command {cmd} (/help lists them)", file=sys.stderr, flush=True)
    except UserError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr, flush=True)
    return None


def _history() -> None:
    """line editing (readline) and the input history, kept across sessions in the
    cache folder (LLMLITE_CACHE, else ~/.cache/llmlite)"""
    try:
        import readline
    except ImportError:
        return
    import atexit
    import os
    from pathlib import Path

    path = Path(os.environ.get("LLMLITE_CACHE", Path.home() / ".cache" / "llmlite")) / "chat_history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            readline.read_history_file(str(path))
    except OSError:
        pass
    readline.set_history_length(1000)

    def save():
        try:
            readline.write_history_file(str(path))
        except OSError:
            pass

    atexit.register(save)


def _repl(model, gen: "_Gen", ctx_size, threads, ngl, system, raw, plain: bool = True) -> None:
    _utf8_stdout()
    m = _load_model(model, ctx_size, threads, ngl)
    _model_defaults(gen, model)
    chat = _make_chat(m, system, raw)
    n = gen.n_predict if gen.n_predict is not None else (N_PREDICT_RAW_REPL if chat.raw else -1)
    interactive = sys.stdin.isatty()
    if interactive:
        _history()
        how = "raw: no chat template" if chat.raw else chat.template.name
        _note(f"llmlite chat: {m.path.name} ({how}), context {m.n_ctx} tokens. "
              "/help for commands, Ctrl-D to quit, Ctrl-C stops a reply.")
    try:
        _repl_loop(chat, gen, n, interactive, plain)
    except KeyboardInterrupt:  # Ctrl-C anywhere but in a reply: leave quietly
        print(file=sys.stderr)


def _repl_loop(chat, gen: "_Gen", n: int, interactive: bool, plain: bool = True) -> None:
    from llmlite.chat import ChatTemplateError, ContextFullError
    from llmlite.generate import GenStats

    state: dict = {}
    pending = None                # a turn to send again (after dropping old exchanges)
    while True:
        try:
            text = pending if pending is not None else _read_turn(interactive, _gauge(chat) if interactive else "")
        except EOFError:
            if interactive:
                print(file=sys.stderr)
            return
        pending = None
        if not text.strip():
            continue
        if text.lstrip().startswith("/"):
            r = _slash(chat, text.strip(), gen, state)
            if r is False:
                return
            if r is None:
                continue
            text = r                  # /regen: the last user turn again
        if chat.raw:
            if chat.transcript and not chat.transcript.endswith(("\n", " ")):
                text = "\n" + text
        else:
            text = text.strip()
        stats = GenStats()
        pieces = chat.reply(text, max_tokens=n, stats=stats, **gen.kwargs)
        try:
            _stream(pieces, plain)
        except KeyboardInterrupt:
            pieces.close()
            _note("(reply interrupted)")
        except ContextFullError as e:
            # the turn is dropped; the conversation stays as it was, unless the user
            # agrees to forget its oldest exchanges (never silently)
            k = -1 if e.first else chat.turns_to_drop(text, n if n > 0 else 256)
            if k > 0 and _ask(f"(the conversation with this message is {e.n_tokens} tokens and the context "
                              f"{e.n_ctx}: drop the oldest {k} exchange{'s' if k > 1 else ''} to fit? [y/N]) ",
                              interactive):
                chat.drop_oldest(k)
                _note(f"(dropped the oldest {k} exchange{'s' if k > 1 else ''})")
                pending = text
                continue
            how = f"restart with -c {e.fit} or more"
            if not e.first:
                how = "/clear to start over, or " + how
            print(f"error: the conversation with this message is {e.n_tokens} tokens and does not fit the context "
                  f"of {e.n_ctx}: message dropped; {how}", file=sys.stderr, flush=True)
            continue
        except ChatTemplateError as e:
            print(f"error: {_one_line(e)}", file=sys.stderr, flush=True)
            continue
        finally:
            pieces.close()
        _print_stats(stats, gen.lookup)
        state["stats"] = stats
        if stats.stop_reason == "context":
            _note("(the context is full: /clear to start over, or use a larger -c)")


@app.command()
@command
def tokenize(
    model: str = typer.Argument(..., help="A GGUF file or a model alias."),
    text: str = typer.Argument(..., help="The text to tokenize (-: read stdin)."),
    no_bos: bool = typer.Option(False, "--no-bos", help="Do not add the BOS (or EOS) token the model asks for."),
    parse_special: bool = typer.Option(False, "--parse-special", help="Read special-token texts (<|im_start|>) as tokens."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list of {id, piece, bytes_hex}."),
) -> None:
    """Show how a model's tokenizer splits a text: token ids and their pieces.

    \f
    Pieces are the bytes each token renders to with special tokens shown
    (llama.cpp's token_to_piece with special=true), as text with invalid UTF-8
    replaced; bytes_hex has the exact bytes.
    """
    if text == "-":
        text = sys.stdin.buffer.read().decode("utf-8", "replace")
    path = resolve(model)
    from llmlite.gguf import open_gguf
    from llmlite.tokenizer import Tokenizer

    g = open_gguf(path)
    tok = Tokenizer.from_gguf(g)
    ids = tok.encode(text, add_special=not no_bos, parse_special=parse_special)
    rows = []
    for i in ids:
        b = tok.piece(i, special=True)
        rows.append({"id": int(i), "piece": b.decode("utf-8", "replace"), "bytes_hex": b.hex()})
    _utf8_stdout()
    import json

    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    w = max((len(str(r["id"])) for r in rows), default=1)
    out = [f"{r['id']:>{w}}  {json.dumps(r['piece'], ensure_ascii=False)}" for r in rows]
    sys.stdout.write("".join(line + "\n" for line in out))
    sys.stdout.flush()
    print(f"{len(rows)} tokens", file=sys.stderr)


# ---- bench ------------------------------------------------------------------------

def _bench_ngl_list(spec: str, n_layer: int) -> list:
    """llama-bench's -ngl list: "0,8,all", "0,25%,50%,100%", "auto"; a percentage is
    that share of the layers, rounded down (as the plan's cliff table counts them)"""
    out = []
    for part in str(spec).split(","):
        p = part.strip().lower()
        if p.endswith("%"):
            try:
                pct = float(p[:-1])
            except ValueError:
                pct = -1.0
            if not 0 <= pct <= 100:
                raise UserError(f"-ngl: {part.strip()!r} is not a percentage in [0, 100]")
            out.append(int(n_layer * pct // 100))
        else:
            v = _parse_ngl(p)
            out.append(n_layer if v == "all" else v)
    return out


@app.command()
@command
def bench(
    model: Optional[str] = typer.Argument(None, help="A GGUF file or a model alias (default: the default alias)."),
    n_prompt: int = typer.Option(512, "-p", "--n-prompt", help="Prompt tokens for the pp test (0: skip)."),
    n_gen: int = typer.Option(128, "-n", "--n-gen", help="Generated tokens for the tg test (0: skip)."),
    reps: int = typer.Option(3, "-r", "--repetitions", help="Runs of each test (after one warm-up)."),
    threads: Optional[int] = typer.Option(None, "-t", "--threads", help="CPU threads (default: physical cores)."),
    gpu_layers: str = typer.Option("auto", "-ngl", "--gpu-layers", "--n-gpu-layers", metavar="N,...",
                                   help="Layers on the GPU, as llama-bench: a comma list of counts, P% of the "
                                        "layers, all or auto (as many as fit); one set of tests each."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Prompt processing (pp) and generation (tg) speed, as llama-bench measures them,
    plus peak memory, bytes moved per token and what limits decode. With several -ngl
    values (e.g. -ngl 0,25%,50%,75%,100%): the bandwidth cliff of partial offload, and
    the device memory each split took against its plan.

    \f
    """
    import json
    import resource

    if reps < 1 or n_prompt < 0 or n_gen < 0:
        raise UserError("-r must be >= 1 and -p/-n >= 0")
    from llmlite import bench as B
    from llmlite import offload
    from llmlite._lib import LlmliteError, isa, lib
    from llmlite.gguf import open_gguf
    from llmlite.gguf.constants import FILE_TYPE_NAMES

    path = resolve(model)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    with open_gguf(path) as g:
        n_layer = int(g.metadata.get(f"{g.metadata.get('general.architecture')}.block_count") or 0)
    ngls = _bench_ngl_list(gpu_layers, n_layer)
    ctx = max(n_prompt, n_gen, 16)
    rows = []                     # (BenchResult or None, split dict) per test; None: the split failed
    info = None                   # what names the table, from the first model loaded
    verdict_of = None             # (tg t/s, bytes/token) of the first CPU-only tg
    for k, ngl in enumerate(ngls):
        try:
            m = _load_model(model, ctx, threads, str(ngl))
        except LlmliteError as e:                 # one split that cannot load: a row saying why
            rows.append((None, {"split": k, "ngl": ngl, "n_layer": n_layer, "backend": "-", "error": str(e)}))
            continue
        try:
            if info is None:
                md = m.gguf.metadata
                info = {"path": str(m.path), "arch": m.arch, "size": sum(t.nbytes for t in m.gguf.tensors.values()),
                        "params": m.gguf.param_count(), "ftype": md.get("general.file_type"),
                        "size_label": md.get("general.size_label"), "threads": m.threads}
            split = _bench_split(m, k, n_layer)
            try:
                pp, tg = B.run_model_bench(m, n_prompt, n_gen, reps)
            except LlmliteError as e:             # the other splits go on
                rows.append((None, {**split, "error": str(e)}))
                continue
            if m.weights.n_offload != split["ngl"]:   # the device failed mid-run and the CPU took over:
                rows.append((None, {**split, "error": m.offload_notes[-1]}))   # not this split's timings
                continue
            if split["backend"].startswith("CUDA"):   # the least free memory seen after the runs too
                free1 = offload.vram_free("cuda")
                if split["device_free_drop"] is not None and free1 is not None:
                    split["device_free_drop"] = max(split["device_free_drop"], m.offload_plan.vram_free - free1)
            rows += [(r, split) for r in (pp, tg) if r]
            if tg and split["ngl"] == 0 and verdict_of is None:
                verdict_of = (tg.mean, B.decode_bytes_per_token(m, n_gen // 2))
        finally:
            m.close()                             # before the next split plans against the free memory
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if info is None:
        raise UserError("; ".join(s["error"] for _, s in rows))
    cores = lib.llm_physical_cores()
    size, params, ftype = info["size"], info["params"], info["ftype"]
    # llama-bench's model column: architecture, size label, file type
    name = " ".join(str(x) for x in (info["arch"], info["size_label"] or _fmt_params(params),
                                       FILE_TYPE_NAMES.get(ftype, "")) if x)
    verdict, bpt, probe = "", 0, None
    if verdict_of:                                # after the peak RSS: the probe's buffer is large
        tg_mean, bpt = verdict_of
        probe = B.probe_bandwidth(info["threads"], huge_pages=False)
        pp0 = next((r.mean for r, s in rows if r and s["ngl"] == 0 and r.test.startswith("pp")), None)
        verdict = B.bottleneck_verdict(tg_mean, bpt, probe, pp0, info["threads"], cores)
    if json_out:
        print(json.dumps({
            "model": info["path"], "name": name, "size": size, "params": params, "cpu_kernels": isa(),
            "threads": info["threads"], "n_layer": n_layer,
            "tests": [{"test": r.test, "tps_mean": r.mean, "tps_sd": r.sd, "runs": r.runs, **s} if r else s
                      for r, s in rows],
            "peak_rss": peak_rss, "bytes_per_token": bpt, "achieved_gbs": verdict_of[0] * bpt / 1e9 if verdict_of
            else None, "probe_gbs": probe, "verdict": verdict, "file_type": ftype}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(box=None, header_style="bold")
    cols = ("model", "size", "params", "backend", "ngl", "threads", "test", "t/s")
    for col in cols:
        t.add_column(col, justify="right" if col in ("size", "params", "ngl", "threads", "t/s") else "left",
                     no_wrap=True)
    for r, s in rows:
        t.add_row(str(name), _fmt_bytes(size), _fmt_params(params), s["backend"], str(s["ngl"]),
                  str(info["threads"]), r.test if r else "-", f"{r.mean:.2f} ± {r.sd:.2f}" if r else "failed")
    con = Console(width=None if sys.stdout.isatty() else 160)   # a pipe gets whole rows
    con.print(t)
    con.print(f"CPU kernels: {isa()}; peak RSS {_fmt_bytes(peak_rss)}", highlight=False)
    seen = set()
    for _, s in rows:
        if s["split"] not in seen:
            seen.add(s["split"])
            if "error" in s:
                con.print(f"-ngl {s['ngl']}: {s['error']}", highlight=False)
            elif s["ngl"]:
                con.print(_device_memory_line(s), highlight=False)
    if verdict_of:
        con.print(f"decode moves {bpt / 1e6:.1f} MB per token: {verdict_of[0] * bpt / 1e9:.1f} GB/s "
                  f"of a probed {probe:.1f} GB/s read bandwidth (4 KiB pages, {info['threads']} threads)",
                  highlight=False)
        con.print(f"verdict: {verdict}", highlight=False)
    elif n_gen:
        con.print("verdict: for the CPU's (bandwidth or compute), add -ngl 0 to the list", highlight=False)


def _bench_split(m, k: int, n_layer: int) -> dict:
    """what bench reports of split k besides speed: layers on the device, its backend,
    and the device memory the plan promised, the span allocated and (CUDA) the fall of
    the device's free memory since the plan read it (which also takes in what the CUDA
    runtime allocates on its own: module loading, graphs, allocation rounding)"""
    from llmlite import offload

    n_off = m.weights.n_offload
    cuda = n_off > 0 and m.weights.backend == "cuda"
    plan = m.offload_plan if m.offload_plan is not None and m.offload_plan.n_gpu == n_off else None
    free0 = offload.vram_free("cuda") if cuda else None
    return {
        "split": k, "ngl": n_off, "n_layer": n_layer,
        "backend": "CPU" if n_off == 0 else f"{'CUDA' if cuda else offload.device_name(m.weights.backend)}+CPU",
        "plan_device_bytes": plan.gpu.total if plan and n_off else (0 if not n_off else None),
        "span_bytes": m.weights.span_bytes if n_off else 0,
        "device_free_drop": (m.offload_plan.vram_free - free0 if cuda and free0 is not None
                             and m.offload_plan is not None and m.offload_plan.vram_free else None),
        "notes": list(m.offload_notes),
    }


def _device_memory_line(s: dict) -> str:
    """-ngl N: what the plan said the device would hold, what the span allocated, and
    (CUDA) how much the device's free memory fell while the model was loaded and ran"""
    MiB = 1 << 20
    parts = [f"-ngl {s['ngl']}/{s['n_layer']}: device memory"]
    plan = s["plan_device_bytes"]
    if plan:
        parts.append(f"planned {plan / MiB:.1f} MiB")
    parts.append(f"allocated {s['span_bytes'] / MiB:.1f} MiB")
    drop = s["device_free_drop"]
    if drop is not None:
        vs = f" ({drop / plan - 1:+.1%} against the plan)" if plan else ""
        parts.append(f"free memory fell {drop / MiB:.1f} MiB{vs}")
    return parts[0] + " " + ", ".join(parts[1:])


# ---- perplexity -----------------------------------------------------------------

@app.command()
@command
def pull(name: str = typer.Argument(..., help="A models.toml alias, hf://org/repo/file.gguf, or org/repo[:QUANT] "
                                             "(the repo's file of that quantization, Q4_K_M by default).")) -> None:
    """Download a model into the cache (Hugging Face files into the Hugging Face cache,
    shared with other tools), resumed after an interruption, sha256 verified."""
    from llmlite.registry import pull as do_pull

    p = do_pull(name)
    print(f"{name}: {p} ({_fmt_bytes(p.stat().st_size)}, sha256 verified)", file=sys.stderr)


@app.command(name="list")
@command
def list_models(json_out: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
    """The models: those in the caches (llmlite's, for the PyPI-provided ones, and the
    Hugging Face cache) with size, quantization, architecture, context and when last
    run, and the models.toml aliases not fetched yet."""
    import datetime
    import json

    from llmlite.gguf import open_gguf
    from llmlite.gguf.constants import FILE_TYPE_NAMES
    from llmlite.registry import HF_PREFIX, RegistryError, last_used, load_registry, local_models

    try:
        default, entries = load_registry()
    except RegistryError as e:                    # a broken models.toml must not hide the cache
        print(f"warning: {e}", file=sys.stderr)
        default, entries = None, {}
    alias_of = {}
    for e in entries.values():
        alias_of[e.file] = alias_of[f"{HF_PREFIX}{e.hf_repo}/{e.hf_file}"] = e.alias
    rows, seen = [], set()
    for m in local_models():
        p = m["path"]
        alias = alias_of.get(m["name"])
        seen.add(alias)
        when = last_used(p)
        row = {"name": alias or m["name"], "file": m["name"], "source": m["source"], "path": str(p),
               "size": p.stat().st_size, "default": alias == default and alias is not None,
               "last_used": datetime.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M") if when else "never"}
        try:
            with open_gguf(p) as g:
                arch = g.get("general.architecture", "?")
                row.update(arch=arch, quant=FILE_TYPE_NAMES.get(g.get("general.file_type"), "?"),
                           context=g.get(f"{arch}.context_length"))
        except Exception:
            row.update(arch="?", quant="?", context=None)
        rows.append(row)
    for e in entries.values():
        if e.alias not in seen:
            rows.append({"name": e.alias, "file": e.file, "source": "not pulled", "path": None, "size": e.size,
                         "default": e.alias == default, "last_used": "-", "arch": "-", "quant": "-",
                         "context": None})
    if json_out:
        print(json.dumps(rows))
        return
    w = max(len(r["name"]) + 2 for r in rows)
    print(f"{'name':{w}}  {'size':>10}  {'quant':7}  {'arch':8}  {'context':>7}  {'last used':16}  source")
    for r in rows:
        name = r["name"] + (" *" if r["default"] else "")
        size = _fmt_bytes(r["size"]) if r["size"] else "?"
        print(f"{name:{w}}  {size:>10}  {r['quant']:7}  {r['arch']:8}  {r['context'] or '-':>7}  "
              f"{r['last_used']:16}  {r['source']}")
    print("* the default model; `llmlite pull NAME` fetches one", file=sys.stderr)


@app.command()
@command
def rm(name: str = typer.Argument(..., help="A models.toml alias, hf://org/repo/file.gguf or org/repo:QUANT.")) -> None:
    """Remove a model's files from the caches."""
    from llmlite.registry import remove

    for p in remove(name):
        print(f"removed {p}", file=sys.stderr)


@app.command()
@command
def quantize(
    input: str = typer.Argument(..., help="A GGUF, or a Hugging Face checkpoint: its folder or its .safetensors file "
                                "(config.json and tokenizer.json beside it)."),
    output: Optional[str] = typer.Argument(None, help="Where to write (default: <name>-<TYPE>.gguf beside the input)."),
    type_: str = typer.Option("q4_k_m", "--type", help="q4_k_m, q4_k_s, q5_k_m, q5_k_s, q6_k, q8_0, q4_0, q4_1, "
                              "q5_0, q5_1, q3_k_m, q2_k, f16, bf16 or f32 (as llama-quantize names them)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (each tensor's type, sizes) and write nothing."),
    allow_requantize: bool = typer.Option(False, "--allow-requantize",
                                          help="Quantize tensors that are already quantized (loses quality)."),
    threads: Optional[int] = typer.Option(None, "-t", "--threads", help="CPU threads (default: physical cores)."),
) -> None:
    """Write a GGUF with llama-quantize's tensor types and bytes.

    \f
    The same mixture rules (use_more_bits, tied embeddings, fallbacks for rows
    that are not whole blocks) and reference quantizers as llama.cpp, so the file
    is byte for byte what llama-quantize writes from the same input.
    """
    from pathlib import Path

    from llmlite import _lib
    from llmlite.quantize import FTYPES

    ty = type_.lower()
    if ty not in FTYPES:
        raise UserError(f"--type {type_!r}: one of {', '.join(FTYPES)}")
    src = Path(input)
    if not src.exists():
        raise UserError(f"{input}: no such file or folder")
    hf = src.is_dir() or src.suffix.lower() == ".safetensors"
    if not hf and src.suffix.lower() != ".gguf":
        raise UserError(f"{input}: not a .gguf, a .safetensors or a Hugging Face model folder")
    name = (src if src.is_dir() else src.parent).name if hf else src.stem
    dst = Path(output) if output else (src if src.is_dir() else src.parent).parent / f"{name}-{ty.upper()}.gguf" \
        if hf else src.with_name(f"{name}-{ty.upper()}.gguf")
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"{dst}: the output would overwrite the input")
    _lib.set_threads(threads)
    from rich.console import Console
    from rich.table import Table

    con = Console(stderr=not dry_run)
    if hf:
        from llmlite.convert_hf import HFSource

        source = HFSource(src)
    else:
        from llmlite.quantize import GGUFSource

        source = GGUFSource(src)
    try:
        _quantize(source, src, dst, ty, dry_run, allow_requantize, con)
    finally:
        source.close()


def _quantize(source, src, dst, ty: str, dry_run: bool, allow_requantize: bool, con) -> None:
    import numpy as np

    from llmlite import _lib
    from llmlite.gguf.constants import TYPE_NAMES, type_name
    from llmlite.quantize import QuantizeError, plan, write_quantized
    from rich.table import Table

    p = plan(source, ty)
    unreadable = [e for e in p if e.dst_type != e.src_type and not _lib.lib.llm_type_supported(e.src_type)]
    if unreadable:
        e = unreadable[0]
        raise QuantizeError(f"{e.name} is {type_name(e.src_type)}, which llmlite cannot read")
    n_params = sum(int(np.prod(e.shape)) for e in p)
    size_out = sum(e.dst_bytes for e in p)
    if dry_run:
        t = Table(title=f"{src.name} -> {ty.upper()}", show_edge=False)
        for col in ("tensor", "shape", "from", "to", "size"):
            t.add_column(col, justify="right" if col == "size" else "left")
        for e in p:
            t.add_row(e.name, " x ".join(map(str, e.shape)), TYPE_NAMES.get(e.src_type, "?"),
                      TYPE_NAMES.get(e.dst_type, "?"), _fmt_bytes(e.dst_bytes))
        con.print(t)
        con.print(f"{len(p)} tensors, {_fmt_bytes(sum(e.src_bytes for e in p))} -> {_fmt_bytes(size_out)}, "
                  f"{8 * size_out / max(1, n_params):.2f} bits per weight")
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=con, transient=True) as bar:
        task = bar.add_task("quantizing", total=len(p))

        def progress(done, total, e):
            bar.update(task, completed=done, description=f"{e.name[:32]:32s}")

        r = write_quantized(source, dst, ty, allow_requantize=allow_requantize, progress=progress)
    t = Table(show_edge=False)
    t.add_column("type")
    t.add_column("tensors", justify="right")
    for name, n in sorted(r["types"].items(), key=lambda kv: -kv[1]):
        t.add_row(name, str(n))
    con.print(t)
    con.print(f"{dst}: {_fmt_bytes(r['bytes_in'])} -> {_fmt_bytes(r['bytes_out'])}, {r['bpw']:.2f} bits per weight, "
              f"{r['seconds']:.1f} s")


@app.command()
@command
def perplexity(
    model: str = typer.Argument(..., help="A GGUF file or a model alias."),
    file: str = typer.Option(..., "-f", "--file", help="The text file to score."),
    ctx_size: int = typer.Option(512, "-c", "--ctx-size", help="Tokens per chunk."),
    chunks: int = typer.Option(0, "--chunks", help="Score at most this many chunks (0: all)."),
    threads: Optional[int] = typer.Option(None, "-t", "--threads", help="CPU threads (default: physical cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Perplexity of a text as llama.cpp's llama-perplexity computes it.

    \f
    Chunks of -c tokens (BOS first when the model adds one), each from an empty
    cache, scoring the second half of each chunk.
    """
    if ctx_size < 8:
        raise UserError(f"-c/--ctx-size must be at least 8 (got {ctx_size})")
    if chunks < 0:
        raise UserError(f"--chunks must be >= 0 (got {chunks})")
    try:
        with open(file, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        raise UserError(f"{file}: {e.strerror or e}") from None
    import json

    from llmlite.perplexity import perplexity as run_ppl

    m = _load_model(model, ctx_size, threads, "0")

    def progress(done, total, ppl):
        print(f"[{done}/{total}] chunk ppl so far {ppl:.4f}", file=sys.stderr, flush=True)

    try:
        r = run_ppl(m, text, n_ctx=ctx_size, n_chunks=chunks or None, progress=progress)
    except ValueError as e:
        raise UserError(str(e)) from None
    if json_out:
        print(json.dumps(r.to_dict()))
    else:
        print(f"perplexity: {r.ppl:.4f} over {r.n_chunks} chunks of {r.n_ctx} "
              f"({r.n_chunks * r.scored_per_chunk} tokens scored, {r.seconds:.1f} s)")


# ---- fast path ------------------------------------------------------------------
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


def _fast_parse(argv: list[str]) -> Optional[tuple[Callable, dict, bool]]:
    """(command, its keyword arguments, --verbose) for a plain `[-v] run ...` command
    line, else None."""
    verbose = False
    i = 0
    while i < len(argv) and argv[i] in ("-v", "--verbose"):
        verbose = True
        i += 1
    if i >= len(argv) or argv[i] != "run":
        return None
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


def _fast_run(argv: list[str]) -> None:
    """Run a plain `run` command line without Typer's parser and exit; return if
    the command line is not one the fast path takes."""
    parsed = _fast_parse(argv)
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


def main() -> None:  # pragma: no cover - console entry point alternative
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
