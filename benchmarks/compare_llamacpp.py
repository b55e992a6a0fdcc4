#!/usr/bin/env python3
"""llmlite vs llama.cpp (through llama-cpp-python) on the same machine, in one run.

Builds or finds llama-cpp-python in its own virtual environment (.venv-llamacpp by
default; it compiles llama.cpp from source, a few minutes), then runs both engines on
the same model and thread count, interleaved (llmlite, llama.cpp, llmlite, ...), each
run in a fresh process, and prints the ratios:

  pp512  prompt processing, tokens/s (random tokens, empty cache)
  tg128  generation, tokens/s (one token at a time from an empty cache)
  ttft   whole process, `run MODEL -p "Hi" -n 1` (import, load, template, prefill, one token);
         --cold drops the page cache before each (root only: /proc/sys/vm/drop_caches)
  load   the benchmark process's import and model load, page cache warm
  rss    peak resident memory of the benchmark process

A MODEL is a path, a models.toml alias, or a shape of benchmarks/shapes.py (a
random-weight file of a published size, built on first use in --shape-type).

Usage: python benchmarks/compare_llamacpp.py [MODEL ...] [-t 2] [-r 3] [-p 512] [-n 128] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LLAMA_CPP_VERSION = "0.3.36"

# the job each engine runs in a fresh process; prints one JSON line
LLMLITE_JOB = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np, llmlite
from llmlite import bench as B
path, threads, n_p, n_g = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
m = llmlite.load(path, n_ctx=max(n_p + n_g, 512), threads=threads, n_batch=512)
load_s = time.perf_counter() - t0
pp, tg = B.run_model_bench(m, n_p, n_g, reps=1)
print(json.dumps({"pp": pp.mean if pp else None, "tg": tg.mean if tg else None, "load_s": load_s,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

LLAMACPP_JOB = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
from llama_cpp import Llama
path, threads, n_p, n_g = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_ctx=max(n_p + n_g, 512), n_batch=512, n_ubatch=512, n_threads=threads,
            n_threads_batch=threads, verbose=False)
load_s = time.perf_counter() - t0
rng = np.random.default_rng(0)
vocab = llm.n_vocab()
def pp():
    toks = rng.integers(0, vocab, n_p).tolist()
    llm.reset(); llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
    t = time.perf_counter(); llm.eval(toks); return n_p / (time.perf_counter() - t)
def tg():
    toks = rng.integers(0, vocab, n_g).tolist()
    llm.reset(); llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
    t = time.perf_counter()
    for x in toks:
        llm.eval([x])
    return n_g / (time.perf_counter() - t)
res = {}
if n_p: pp(); res["pp"] = pp()
if n_g: tg(); res["tg"] = tg()
res["load_s"] = load_s
res["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(res))
"""

LLAMACPP_TTFT = r"""
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=int(sys.argv[2]), verbose=False)
out = llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
"""


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_llamacpp(venv: Path) -> Path:
    py = venv_python(venv)
    if py.exists() and subprocess.run([py, "-c", "import llama_cpp"], capture_output=True).returncode == 0:
        return py
    print(f"building llama-cpp-python=={LLAMA_CPP_VERSION} in {venv} (compiles llama.cpp, a few minutes)",
          file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([py, "-m", "pip", "install", "--quiet", f"llama-cpp-python=={LLAMA_CPP_VERSION}"], check=True)
    return py


def run_json(cmd, env=None) -> dict:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def wall(cmd, env=None) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {r.stderr.decode()[-500:]}")
    return time.perf_counter() - t


def drop_page_cache() -> None:
    """the model file read from the disk again, as after a reboot"""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as e:
        raise SystemExit(f"error: --cold needs to write /proc/sys/vm/drop_caches (root): {e.strerror}")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cold", action="store_true", help="ttft with the page cache dropped before each run")
    ap.add_argument("--shape-type", default="q4_k_m", help="the type mix of a shape's file (default q4_k_m)")
    a = ap.parse_args()

    import shapes
    from llmlite.registry import resolve_model

    if a.shape_type not in shapes.FTYPES:
        ap.error(f"unknown --shape-type {a.shape_type!r}: one of {', '.join(shapes.FTYPES)}")

    def model_path(name: str) -> str:
        if name in shapes.SHAPES:
            return str(shapes.ensure(name, a.shape_type, log=lambda s: print(s, end="", file=sys.stderr)))
        return str(resolve_model(name))

    lpy = ensure_llamacpp(Path(a.venv))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    report = []
    for name in a.models:
        path = model_path(name)
        ours, theirs, ttft_ours, ttft_theirs = [], [], [], []
        job = [str(a.threads), str(a.n_prompt), str(a.n_gen)]
        for _ in range(a.reps):
            ours.append(run_json([sys.executable, "-c", LLMLITE_JOB, path, *job], env))
            theirs.append(run_json([str(lpy), "-c", LLAMACPP_JOB, path, *job]))
            if a.cold:
                drop_page_cache()
            ttft_ours.append(wall([sys.executable, "-m", "llmlite", "run", path, "-p", "Hi", "-n", "1",
                                   "-t", str(a.threads)], env))
            if a.cold:
                drop_page_cache()
            ttft_theirs.append(wall([str(lpy), "-c", LLAMACPP_TTFT, path, str(a.threads)]))
        row = {"model": name, "threads": a.threads,
               "pp_llmlite": med([o.get("pp") for o in ours]), "pp_llamacpp": med([o.get("pp") for o in theirs]),
               "tg_llmlite": med([o.get("tg") for o in ours]), "tg_llamacpp": med([o.get("tg") for o in theirs]),
               "ttft_llmlite_s": med(ttft_ours), "ttft_llamacpp_s": med(ttft_theirs), "cold": a.cold,
               "load_llmlite_s": med([o["load_s"] for o in ours]), "load_llamacpp_s": med([o["load_s"] for o in theirs]),
               "rss_llmlite": med([o["rss"] for o in ours]), "rss_llamacpp": med([o["rss"] for o in theirs])}
        row["pp_ratio"] = row["pp_llmlite"] / row["pp_llamacpp"]
        row["tg_ratio"] = row["tg_llmlite"] / row["tg_llamacpp"]
        row["ttft_ratio"] = row["ttft_llmlite_s"] / row["ttft_llamacpp_s"]
        row["rss_ratio"] = row["rss_llmlite"] / row["rss_llamacpp"]
        report.append(row)
        if not a.json:
            print(f"{name}, {a.threads} threads, median of {a.reps} interleaved runs:")
            if a.n_prompt:
                print(f"  pp{a.n_prompt}: llmlite {row['pp_llmlite']:8.1f} t/s  llama.cpp {row['pp_llamacpp']:8.1f} t/s"
                      f"  ratio {row['pp_ratio']:.2f}x")
            if a.n_gen:
                print(f"  tg{a.n_gen}: llmlite {row['tg_llmlite']:8.1f} t/s  llama.cpp {row['tg_llamacpp']:8.1f} t/s"
                      f"  ratio {row['tg_ratio']:.2f}x")
            print(f"  ttft{' (cold)' if a.cold else ''}:  llmlite {row['ttft_llmlite_s']:8.2f} s    "
                  f"llama.cpp {row['ttft_llamacpp_s']:8.2f} s    ratio {row['ttft_ratio']:.2f}x (lower is better)")
            print(f"  load:  llmlite {row['load_llmlite_s']:8.2f} s    llama.cpp {row['load_llamacpp_s']:8.2f} s"
                  f"    ratio {row['load_llmlite_s'] / row['load_llamacpp_s']:.2f}x (lower is better)")
            print(f"  rss:   llmlite {row['rss_llmlite'] / 2**20:8.0f} MiB  llama.cpp {row['rss_llamacpp'] / 2**20:8.0f} MiB"
                  f"  ratio {row['rss_ratio']:.2f}x (lower is better)")
            sys.stdout.flush()
    if a.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
