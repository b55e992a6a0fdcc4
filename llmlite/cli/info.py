"""`llmlite info`: what a GGUF holds and what it needs, and with --plan the CPU/GPU split."""
from __future__ import annotations

import sys
from typing import Any, Optional

import typer

from llmlite import settings
from llmlite.cli.app import app, command, resolve
from llmlite.cli.options import opt_ctx, opt_ngl, parse_ngl
from llmlite.cli.output import fmt_bytes, fmt_params
from llmlite.errors import UserError

# a hybrid model's layer kinds (ModelConfig.layer_kinds) as `info` names them, in this order
KIND_LABELS = {"linear": "linear attention (gated delta-net)", "shortconv": "short convolution",
               "attention": "full attention"}
_TOKENIZER_KINDS = {"gpt2": "BPE", "llama": "SPM", "bert": "WPM", "t5": "UGM", "rwkv": "RWKV",
                    "plamo2": "PLaMo-2", "no_vocab": "none", "none": "none"}


def _finite(x: Any) -> Any:
    import math

    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def model_facts(path, n_ctx: Optional[int] = None) -> dict:
    """The facts `llmlite info` shows, as one JSON-ready dict."""
    from llmlite.config import ModelConfig
    from llmlite.gguf import open_gguf, type_name, type_supported

    from llmlite.model import repack_bytes

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
            n_ctx = settings.default_ctx(cfg.n_ctx_train)
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
            "active_parameters": cfg.active_param_count,
            "experts": ({"count": cfg.n_expert, "used": cfg.n_expert_used, "n_ff_exp": cfg.n_ff_exp,
                         "n_ff_shexp": cfg.n_ff_shexp} if cfg.is_moe else None),
            "n_layer": cfg.n_layer,
            # hybrid models: each layer's kind, "linear" (qwen35's gated delta-net), "shortconv" (lfm2's) or "attention"
            "layer_kinds": cfg.layer_kinds if any(cfg.recurrent_layers) else None,
            "n_head": cfg.n_head,
            "n_head_kv": cfg.n_head_kv if len(set(cfg.n_head_kv_per_layer)) <= 1 else cfg.n_head_kv_per_layer,
            "head_dim": cfg.head_dim,
            "head_dim_v": cfg.head_dim_v,
            "head_dim_swa": cfg.head_dim_swa if cfg.head_dim_swa and cfg.head_dim_swa != cfg.head_dim else None,
            "shared_kv_layers": cfg.n_kv_shared,
            "per_layer_embedding": cfg.n_embd_per_layer,
            "n_embd": cfg.n_embd,
            "n_ff": cfg.n_ff if len(set(cfg.n_ff_per_layer)) <= 1 else cfg.n_ff_per_layer,
            "n_ctx_train": cfg.n_ctx_train,
            "n_rot": cfg.n_rot,
            "rope_freq_base": _finite(cfg.rope_freq_base),
            "rope_scaling": ({"type": cfg.rope_scaling_type, "factor": _finite(cfg.rope_scaling_factor),
                              "orig_ctx": cfg.rope_orig_ctx}
                             if cfg.rope_scaling_type in ("linear", "yarn") and cfg.rope_scaling_factor != 1.0
                             else None),
            "nope_layers": [il for il, nope in enumerate(cfg.nope_layers) if nope] or None,
            "attn_temp": {"scale": cfg.attn_temp_scale, "floor": cfg.attn_temp_floor} if cfg.attn_temp_scale else None,
            "rms_eps": _finite(cfg.rms_eps),
            # granite: the file's multipliers (0: none)
            "multipliers": ({"embedding": cfg.embedding_scale, "residual": cfg.residual_scale,
                             "attention": cfg.attention_scale, "logit": cfg.logit_scale}
                            if cfg.logit_scale else None),
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
                "repacked_bytes": repack_bytes(g),
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
    ctx_size: Optional[int] = opt_ctx(help=f"Context for the memory estimate (default: min({settings.DEFAULT_CTX}, training context))."),
    plan: bool = typer.Option(False, "--plan", help="Print the CPU/GPU layer split for -ngl, without loading."),
    vram: Optional[float] = typer.Option(None, "--vram", metavar="GB",
                                         help="With --plan: free GPU memory to plan for (default: this GPU's)."),
    vram_margin: int = typer.Option(512, "--vram-margin", metavar="MiB", help="With --plan: memory left free."),
    gpu_gbs: Optional[float] = typer.Option(None, "--gpu-gbs", metavar="GB/s",
                                            help="With --plan: the GPU's memory bandwidth (default: measured once per GPU, else issue 24's H200 figures)."),
    gpu_layers: str = opt_ngl(help="With --plan: layers to put on the GPU (auto, all, or a number)."),
) -> None:
    """Describe a GGUF model: architecture, sizes, tokenizer, tensor types, memory.
    With --plan: which layers -ngl puts on the GPU, the bytes on each side and the
    decode speed to expect from each side's bandwidth, for any --vram.

    \f
    With --json, prints one object with these keys (stable):
    path, file_size, gguf_version, alignment, n_metadata, n_tensors, architecture, name,
    parameters (sum of tensor elements), active_parameters (those one token computes with:
    a mixture of experts runs `used` of its `count` experts; else all), experts (null, or
    {count, used, n_ff_exp, n_ff_shexp (0: no shared expert)}), n_layer, layer_kinds (null, or
    per layer "linear" (a gated delta-net layer: qwen35), "shortconv" (a short-convolution layer: lfm2) or "attention"), n_head, n_head_kv (int, or a per-layer
    list), head_dim, head_dim_v, head_dim_swa (null, or the sliding layers' own: Gemma 4),
    shared_kv_layers (the last layers reading an earlier layer's K/V: Gemma 4; else 0),
    per_layer_embedding (per-layer token embedding width: Gemma 4; else 0), n_embd, n_ff (int or per-layer list), n_ctx_train, n_rot,
    rope_freq_base, rope_scaling (null, or {type (linear/yarn), factor, orig_ctx}), nope_layers (null, or
    the layers without rope: smollm3), attn_temp (null, or the query temperature's {scale, floor}: mistral3), rms_eps,
    multipliers (null, or Granite's {embedding, residual, attention, logit}: 0 where none),
    sliding_window (0: none), n_swa_layers, vocab_size,
    tokenizer {model, kind (BPE/SPM/...), pre, bos_token_id, eos_token_id, add_bos_token},
    chat_template (bool), tensor_types [{type, type_id, count, elements, bytes,
    bits_per_weight, computable}] (largest first), bits_per_weight,
    memory {n_ctx, weights_bytes, kv_cache_bytes (F16 K and V, every layer the full
    context; a linear-attention layer its recurrent state), total_bytes, kv_cache_windowed_bytes and total_windowed_bytes (sliding-window
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


def _info_plan(path, ctx_size, vram, margin_mib: int, gpu_layers: str, json_out: bool, gpu_gbs=None) -> None:
    import dataclasses

    from llmlite import offload
    from llmlite.gguf import open_gguf

    if vram is not None and not vram >= 0:
        raise UserError(f"--vram must be >= 0 GB (got {vram})")
    if margin_mib < 0:
        raise UserError(f"--vram-margin must be >= 0 MiB (got {margin_mib})")
    n = parse_ngl(gpu_layers)
    from llmlite.config import ModelConfig

    with open_gguf(path) as g:
        costs = offload.model_costs(g, ctx_size or ModelConfig.of(g).default_ctx)
        missing = ModelConfig.of(g).gpu_missing
    free = int(vram * (1 << 30)) if vram is not None else offload.vram_free()
    if gpu_gbs is not None and not gpu_gbs > 0:
        raise UserError(f"--gpu-gbs must be > 0 (got {gpu_gbs})")
    from dataclasses import replace

    from llmlite.device_costs import device_speed

    speed = device_speed("cuda")
    if gpu_gbs:
        speed = replace(speed, gpu_gbs=gpu_gbs, source=speed.source + f"; --gpu-gbs {gpu_gbs:g}")
    p = offload.plan_split(costs, free, margin_mib << 20, n, speed=speed)
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
    if missing:
        print(f"  note: the GPU backend has no {missing} yet: `run -ngl` keeps this model on the "
              "CPU (the plan is what its layers, experts included, would take)")


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
    row("parameters", f"{fmt_params(f['parameters'])} ({f['parameters']:,})")
    ex = f["experts"]
    if ex:
        shared = f", a shared expert {ex['n_ff_shexp']:,} wide" if ex["n_ff_shexp"] else ""
        row("experts", f"{ex['count']} per layer, {ex['used']} active per token, {ex['n_ff_exp']:,} wide{shared}")
        row("active parameters", f"{fmt_params(f['active_parameters'])} ({f['active_parameters']:,}) per token")
    row("layers", f["n_layer"])
    hkv = f["n_head_kv"]
    row("heads", f"{f['n_head']} (KV heads {hkv if isinstance(hkv, int) else ', '.join(map(str, hkv))})")
    hd = f"{f['head_dim']}" + (f" (V {f['head_dim_v']})" if f["head_dim_v"] != f["head_dim"] else "")
    if f["head_dim_swa"]:
        hd += f", sliding layers {f['head_dim_swa']}"
    row("head dim", hd)
    if f["shared_kv_layers"]:
        row("shared K/V", f"the last {f['shared_kv_layers']} layers read an earlier layer's cache (none of their own)")
    if f["per_layer_embedding"]:
        row("per-layer embeddings", f"{f['per_layer_embedding']:,} per layer per token")
    row("embedding length", f["n_embd"])
    nff = f["n_ff"]
    row("feed-forward length", nff if isinstance(nff, int) else ", ".join(map(str, nff)))
    row("context length", f"{f['n_ctx_train']:,} (training)")
    rs = f["rope_scaling"]
    scaled = (f", {'YaRN' if rs['type'] == 'yarn' else 'linear'} x{rs['factor']:g}"
              + (f" over {rs['orig_ctx']:,}" if rs["orig_ctx"] else "")) if rs else ""
    row("rope", (f"{f['n_rot']} dims, base {f['rope_freq_base']:g}" if isinstance(f["rope_freq_base"], float)
                 else f"{f['n_rot']} dims, base {f['rope_freq_base']}") + scaled)
    if f["nope_layers"]:
        row("no rope (NoPE)", "layers " + ", ".join(map(str, f["nope_layers"])))
    if f["attn_temp"]:
        t = f["attn_temp"]
        row("query temperature", f"1 + {t['scale']:g} ln(1 + floor(pos / {t['floor']:,}))")
    mul = f["multipliers"]
    if mul:
        row("multipliers", ", ".join(f"{what}{mul[k]:.7g}" for k, what in (
            ("embedding", "embeddings x"), ("residual", "residual branches x"), ("attention", "attention scores x"),
            ("logit", "logits /")) if mul[k]))
    if f["layer_kinds"]:
        kinds = f["layer_kinds"]
        row("layer kinds", ", ".join(f"{kinds.count(k)} {label}" for k, label in KIND_LABELS.items() if k in kinds))
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
    row("file size", f"{fmt_bytes(f['file_size'])} ({f['file_size']:,} bytes)")
    row("format", f"GGUF v{f['gguf_version']}, {f['n_tensors']} tensors, {f['n_metadata']} metadata keys")
    con.print(kvt)

    t = Table(box=box.SIMPLE_HEAD, title="tensor types", title_justify="left")
    for c, j in (("type", "left"), ("tensors", "right"), ("elements", "right"), ("bytes", "right"),
                 ("bits/weight", "right")):
        t.add_column(c, justify=j)  # type: ignore[arg-type]
    tot_n = tot_el = tot_b = 0
    for r in f["tensor_types"]:
        t.add_row(r["type"], str(r["count"]), f"{r['elements']:,}", fmt_bytes(r["bytes"]),
                  f"{r['bits_per_weight']:.2f}")
        tot_n += r["count"]
        tot_el += r["elements"]
        tot_b += r["bytes"]
    t.add_row("all", str(tot_n), f"{tot_el:,}", fmt_bytes(tot_b), f"{f['bits_per_weight']:.2f}", style="bold")
    con.print(t)

    m = f["memory"]
    mt = Table.grid(padding=(0, 2))
    mt.add_column(style="bold")
    mt.add_column(justify="right")
    mt.add_column()
    mt.add_row("weights", fmt_bytes(m["weights_bytes"]), "")
    if m["repacked_bytes"]:
        mt.add_row("of which copied", fmt_bytes(m["repacked_bytes"]),
                   "rows interleaved for this CPU's kernels; the file's pages of them are let go")
    mt.add_row("KV cache", fmt_bytes(m["kv_cache_bytes"]),
               "F16 K and V of the full-attention layers, the others' recurrent state (F32)" if f["layer_kinds"]
               else "F16 K and V, every layer the full context")
    mt.add_row("total", fmt_bytes(m["total_bytes"]), "")
    if m["kv_cache_windowed_bytes"] is not None:
        mt.add_row("KV windowed", fmt_bytes(m["kv_cache_windowed_bytes"]),
                   f"if the {f['n_swa_layers']} sliding-window layers keep only {f['sliding_window']:,} tokens")
        mt.add_row("total windowed", fmt_bytes(m["total_windowed_bytes"]), "")
    con.print()
    con.print(f"[bold]memory at context {m['n_ctx']:,}[/bold]")
    con.print(mt)
