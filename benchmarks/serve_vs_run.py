#!/usr/bin/env python3
"""`llmlite serve` against `llmlite run` on the same prompt, greedy, the same token count:

- decode tokens/s: run's (`llmlite run -p`'s code in this process: Chat.reply, the
  figure its stats line prints) and the server's, as a client sees it (the streamed
  chunks' arrival, first to last) and as the server reports it
  (usage.timings.predicted_per_second); the issue asks for >= 0.95x run's;
- time to first token: run's (from the call to the first piece) and the server's (from
  sending the request to the first content chunk), each from an empty cache; the issue
  asks for <= run's + 20 ms;
- the server's overhead per generated token: the client's decode time less the
  server's own, over the tokens.

The server is a separate `llmlite serve` process, as it is used; a request with an
unrelated prompt between two measured ones leaves nothing of the prompt in its cache.
Run and serve are measured in turns (a busy machine slows both alike); medians of -r
repetitions.

Usage: python benchmarks/serve_vs_run.py [MODEL] [-n 128] [-r 5] [-t THREADS] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
LLMLITE = [sys.executable, "-m", "llmlite"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")


def run_side(m, n: int) -> tuple[float, float]:
    """(time to first token, decode tokens/s) of `run -p`'s path in this process: the chat
    made as run makes it, one greedy reply of n tokens from an empty cache"""
    from llmlite.chat import Chat
    from llmlite.generate import GenStats

    m.reset()
    stats = GenStats()
    t0 = time.perf_counter()
    parts = Chat(m).reply(PROMPT, max_tokens=n, stats=stats, temperature=0, lookup=True)
    next(parts)
    ttft = time.perf_counter() - t0
    for _ in parts:
        pass
    return ttft, stats.decode_tps


def start_server(model: str, threads: list[str]):
    p = subprocess.Popen([*LLMLITE, "serve", model, "--port", "0", *threads], stderr=subprocess.PIPE, text=True,
                         env=ENV)
    for line in p.stderr:
        m = re.match(r"llmlite serve: .* on (http://\S+/v1)", line)
        if m:
            return p, m.group(1)
    raise SystemExit("the server did not start")


def served(client, url: str, n: int) -> dict:
    """one streamed chat request: client-side times and the server's timings"""
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": n, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    stamps, usage = [], None
    with client.stream("POST", f"{url}/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            ev = json.loads(line[6:])
            if ev["choices"] and ev["choices"][0]["delta"].get("content"):
                stamps.append(time.perf_counter())
            usage = ev.get("usage") or usage
    gen = usage["completion_tokens"]
    client_decode = stamps[-1] - stamps[0]
    return {"ttft_s": stamps[0] - t0, "tokens": gen, "server_prompt_ms": usage["timings"]["prompt_ms"], "client_tps": (len(stamps) - 1) / client_decode,
            "server_tps": usage["timings"]["predicted_per_second"],
            "overhead_ms_per_token": 1000 * (client_decode - usage["timings"]["predicted_ms"] / 1000
                                             * (len(stamps) - 1) / gen) / (len(stamps) - 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="smollm2-135m")
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=5)
    ap.add_argument("-t", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import httpx

    threads = ["-t", str(a.t)] if a.t else []
    import llmlite

    m = llmlite.load(a.model, threads=a.t)
    proc, url = start_server(a.model, threads)
    try:
        with httpx.Client(timeout=600) as c:
            flush = {"prompt": "Numbers: 1 2 3", "max_tokens": 1}
            rows, firsts = [], []
            for i in range(a.r + 1):       # run and serve taken in turns: a busy machine slows both alike
                firsts.append(run_side(m, a.n))
                c.post(f"{url}/completions", json=flush)         # the measured prompt is not cached
                rows.append(served(c, url, a.n))
            rows, firsts = rows[1:], firsts[1:]                  # the first of each warms up
    finally:
        proc.terminate()
        proc.wait(30)
        m.close()
    run_first = statistics.median(f for f, _ in firsts)
    run_tps = statistics.median(t for _, t in firsts)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    out = {"model": a.model, "tokens": a.n, "run_tps": run_tps, "serve_client_tps": med["client_tps"],
           "serve_server_tps": med["server_tps"], "tps_ratio": med["client_tps"] / run_tps,
           "run_ttft_ms": 1000 * run_first, "serve_ttft_ms": 1000 * med["ttft_s"],
           "ttft_extra_ms": 1000 * (med["ttft_s"] - run_first), "serve_prompt_ms": med["server_prompt_ms"],
           "overhead_ms_per_token": med["overhead_ms_per_token"]}
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{a.model}, {a.n} tokens greedy, medians of {a.r}")
    print(f"decode: run {run_tps:.1f} t/s; serve {med['client_tps']:.1f} t/s as the client sees it "
          f"({med['server_tps']:.1f} inside the server): x{out['tps_ratio']:.3f} (issue: >= 0.95)")
    print(f"time to first token: run {out['run_ttft_ms']:.1f} ms, serve {out['serve_ttft_ms']:.1f} ms: "
          f"{out['ttft_extra_ms']:+.1f} ms (issue: <= +20 ms); the server's prefill {out['serve_prompt_ms']:.1f} ms")
    print(f"server overhead: {out['overhead_ms_per_token']:.2f} ms per generated token")


if __name__ == "__main__":
    main()
