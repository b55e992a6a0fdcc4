"""`llmlite bench`: pp/tg speed as llama-bench measures it, per -ngl split, with the verdict."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from llmlite.cli.app import app, command, resolve
from llmlite.cli.loading import load_model
from llmlite.cli.options import opt_ngl, opt_threads, parse_ngl
from llmlite.cli.output import fmt_bytes, fmt_params
from llmlite.errors import UserError


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
            v = parse_ngl(p)
            out.append(n_layer if v == "all" else v)
    return out


@app.command()
@command
def bench(
    model: Optional[str] = typer.Argument(None, help="A GGUF file or a model alias (default: the default alias)."),
    n_prompt: int = typer.Option(512, "-p", "--n-prompt", help="Prompt tokens for the pp test (0: skip)."),
    n_gen: int = typer.Option(128, "-n", "--n-gen", help="Generated tokens for the tg test (0: skip)."),
    reps: int = typer.Option(3, "-r", "--repetitions", help="Runs of each test (after one warm-up)."),
    threads: Optional[int] = opt_threads(),
    gpu_layers: str = opt_ngl(metavar="N,...", help="Layers on the GPU, as llama-bench: a comma list of counts, P% of the "
                                        "layers, all or auto (as many as fit); one set of tests each."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Prompt processing (pp) and generation (tg) speed, as llama-bench measures them,
    plus peak memory (the process's peak RSS, the bandwidth probe's buffer included, and
    the peak until the tests ended), bytes moved per token and what limits decode. With several -ngl
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
    from llmlite._lib import isa, lib
    from llmlite.config import ModelConfig
    from llmlite.errors import LlmliteError
    from llmlite.gguf import open_gguf
    from llmlite.gguf.constants import FILE_TYPE_NAMES

    path = resolve(model)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    with open_gguf(path) as g:
        n_layer = ModelConfig.of(g).n_layer
    ngls = _bench_ngl_list(gpu_layers, n_layer)
    ctx = max(n_prompt, n_gen, 16)
    rows = []                     # (BenchResult or None, split dict) per test; None: the split failed
    info = None                   # what names the table, from the first model loaded
    verdict_of = None             # (tg t/s, bytes/token) of the first CPU-only tg
    for k, ngl in enumerate(ngls):
        try:
            m = load_model(model, ctx, threads, str(ngl))
        except LlmliteError as e:                 # one split that cannot load: a row saying why
            rows.append((None, {"split": k, "ngl": ngl, "n_layer": n_layer, "backend": "-", "error": str(e)}))
            continue
        try:
            if info is None:
                md = m.gguf.metadata
                info = {"path": str(m.path), "arch": m.arch, "size": sum(t.nbytes for t in m.gguf.tensors.values()),
                        "params": m.gguf.param_count(), "ftype": md.get("general.file_type"),
                        "size_label": md.get("general.size_label"), "threads": m.threads,
                        "repacked": m.weights.repacked_bytes}   # the first split's copies (repack.c)
            split = _bench_split(m, k, n_layer)
            split.update(_bench_estimate(m, n_gen))
            try:
                pp, tg = B.run_model_bench(m, n_prompt, n_gen, reps)
            except LlmliteError as e:             # the other splits go on
                rows.append((None, {**split, "error": str(e)}))
                continue
            if m.weights.n_gpu != split["ngl"]:   # the device failed mid-run and the CPU took over:
                rows.append((None, {**split, "error": m.offload_notes[-1]}))   # not this split's timings
                continue
            if split["backend"].startswith("CUDA"):   # the least free memory seen after the runs too
                free1 = offload.vram_free("cuda")
                if split["device_free_drop"] is not None and free1 is not None:
                    split["device_free_drop"] = max(split["device_free_drop"], m.offload_plan.vram_free - free1)
            rows += [(r, split) for r in (pp, tg) if r]
            if tg and split["ngl"] == 0 and verdict_of is None:
                # the probe reads pages of the size most of the copies decode read had
                # (csrc/huge_pages.c moves them into 2 MiB pages after the load)
                verdict_of = (tg.mean, B.decode_bytes_per_token(m, n_gen // 2),
                              2 * m.weights.huge_page_bytes >= m.weights.repacked_bytes > 0, tg.settle_s)
        finally:
            m.close()                             # before the next split plans against the free memory
    def peak_rss() -> int:          # the process's high-water mark so far (ru_maxrss: KiB on Linux)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    tests_rss = peak_rss()        # before the probe, whose buffer (PROBE_BYTES) is larger than a small model
    if info is None:
        raise UserError("; ".join(s["error"] for _, s in rows))
    cores = lib.llm_physical_cores()
    size, params, ftype = info["size"], info["params"], info["ftype"]
    # llama-bench's model column: architecture, size label, file type
    name = " ".join(str(x) for x in (info["arch"], info["size_label"] or fmt_params(params),
                                       FILE_TYPE_NAMES.get(ftype, "")) if x)
    verdict, bpt, probe = "", 0, None
    if verdict_of:
        tg_mean, bpt, huge, _ = verdict_of
        probe = B.probe_bandwidth(info["threads"], huge_pages=huge)
        pp0 = next((r.mean for r, s in rows if r and s["ngl"] == 0 and r.test.startswith("pp")), None)
        verdict = B.bottleneck_verdict(tg_mean, bpt, probe, pp0, info["threads"], cores)
    if json_out:
        print(json.dumps({
            "model": info["path"], "name": name, "size": size, "params": params, "cpu_kernels": isa(),
            "threads": info["threads"], "n_layer": n_layer,
            "tests": [{"test": r.test, "tps_mean": r.mean, "tps_sd": r.sd, "runs": r.runs, **s} if r else s
                      for r, s in rows],
            "peak_rss": peak_rss(), "peak_rss_tests": tests_rss, "repacked_bytes": info["repacked"],
            "bytes_per_token": bpt, "achieved_gbs": verdict_of[0] * bpt / 1e9 if verdict_of
            else None, "probe_gbs": probe, "probe_huge_pages": bool(verdict_of and verdict_of[2]),
            "tg_settle_s": verdict_of[3] if verdict_of else None,
            "verdict": verdict, "file_type": ftype}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(box=None, header_style="bold")
    cols = ("model", "size", "params", "backend", "ngl", "threads", "test", "t/s")
    for col in cols:
        t.add_column(col, justify="right" if col in ("size", "params", "ngl", "threads", "t/s") else "left",
                     no_wrap=True)
    for r, s in rows:
        t.add_row(str(name), fmt_bytes(size), fmt_params(params), s["backend"], str(s["ngl"]),
                  str(info["threads"]), r.test if r else "-", f"{r.mean:.2f} ± {r.sd:.2f}" if r else "failed")
    con = Console(width=None if sys.stdout.isatty() else 160)   # a pipe gets whole rows
    con.print(t)
    copied = (f"; {fmt_bytes(info['repacked'])} of the weights copied with rows interleaved (their file pages let go)"
              if info["repacked"] else "")
    con.print(f"CPU kernels: {isa()}; peak RSS {fmt_bytes(peak_rss())} ({fmt_bytes(tests_rss)} until the tests "
              f"ended, before the bandwidth probe){copied}", highlight=False)
    seen = set()
    for _, s in rows:
        if s["split"] not in seen:
            seen.add(s["split"])
            if "error" in s:
                con.print(f"-ngl {s['ngl']}: {s['error']}", highlight=False)
            else:
                if s["ngl"]:
                    con.print(_device_memory_line(s), highlight=False)
                tg = next((r.mean for r, s2 in rows if r and s2["split"] == s["split"] and r.test.startswith("tg")), None)
                con.print(_estimate_line(s, tg), highlight=False)
    if verdict_of:
        con.print(f"decode moves {bpt / 1e6:.1f} MB per token: {verdict_of[0] * bpt / 1e9:.1f} GB/s "
                  f"of a probed {probe:.1f} GB/s read bandwidth ({info['threads']} threads, "
                  + (f"2 MiB pages as the copies had: decode timed once they were moved there, a "
                     f"{verdict_of[3]:.1f} s wait)" if verdict_of[2] else "4 KiB pages)"),
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

    n_gpu = m.weights.n_gpu
    cuda = n_gpu > 0 and m.weights.backend == "cuda"
    plan = m.offload_plan if m.offload_plan is not None and m.offload_plan.n_gpu == n_gpu else None
    free0 = offload.vram_free("cuda") if cuda else None
    return {
        "split": k, "ngl": n_gpu, "n_layer": n_layer,
        "backend": "CPU" if n_gpu == 0 else f"{'CUDA' if cuda else offload.device_name(m.weights.backend)}+CPU",
        "plan_device_bytes": plan.gpu.total if plan and n_gpu else (0 if not n_gpu else None),
        "span_bytes": m.weights.span_bytes if n_gpu else 0,
        "device_free_drop": (m.offload_plan.vram_free - free0 if cuda and free0 is not None
                             and m.offload_plan is not None and m.offload_plan.vram_free else None),
        "notes": list(m.offload_notes),
    }


def _bench_estimate(m, n_gen: int) -> dict:
    """the plan's decode estimate for this split (at the middle of the tg test's
    context) and the constants it used: the split's plan's, else this machine's
    (device_costs.device_speed: measured once per device, else the defaults)"""
    from dataclasses import asdict

    from llmlite import offload
    from llmlite.device_costs import device_speed

    n_gpu = m.weights.n_gpu
    plan = m.offload_plan if m.offload_plan is not None and m.offload_plan.n_gpu == n_gpu else None
    backend = m.weights.backend if n_gpu else "cuda"
    speed = plan.speed if plan else device_speed(backend)
    costs = offload.model_costs(m.gguf, m.weights.n_ctx, m.weights.n_batch, backend)
    return {"plan_tps": offload.expected_tps(costs, n_gpu, speed, n_gen // 2), "plan_speed": asdict(speed)}


def _estimate_line(s: dict, tg: float | None) -> str:
    """-ngl N: the plan's decode estimate against the measured tg, and its constants"""
    est, sp = s.get("plan_tps"), s.get("plan_speed") or {}
    vs = f" (measured {tg:.0f}: {est / tg - 1:+.0%})" if tg and est else ""
    return (f"-ngl {s['ngl']}/{s['n_layer']}: the plan expected ~{est:.0f} t/s decode{vs}; constants "
            f"{'measured' if sp.get('measured') else 'not measured'}: {sp.get('source', '?')}")


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
