#!/usr/bin/env python3
"""Prompt-lookup speculation on shared/bench/lookup-workloads.jsonl: for each workload,
greedy decoding with and without lookup (same model, same process), checks that the
tokens are identical and prints the decode speed-up and acceptance.

Usage: python benchmarks/lookup_bench.py [MODEL ...] [-n 256] [-t 2] [--draft-max 8] [--json]
SmolLM2 gets its chat template; a model without one (gemma3-270m) is prompted raw."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("-n", "--n-gen", type=int, default=256)
    ap.add_argument("-t", "--threads", type=int, default=None)
    ap.add_argument("--draft-max", type=int, default=8)
    ap.add_argument("--workloads", default=str(ROOT.parent / "shared" / "bench" / "lookup-workloads.jsonl"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import llmlite
    from llmlite.chat import prompt_ids, template_for
    from llmlite.generate import GenStats, generate_tokens
    from llmlite.sampling import SamplingParams

    wl = [json.loads(line) for line in open(a.workloads)]
    out = []
    for name in a.models:
        m = llmlite.load(name, n_ctx=4096, threads=a.threads)
        tpl = template_for(m)
        totals = {False: 0.0, True: 0.0}
        for i, w in enumerate(wl):
            if tpl is not None:
                ids = prompt_ids(m, tpl.render([{"role": "user", "content": w["prompt"]}]))
            else:
                ids = m.tokenize(w["prompt"], add_special=True, parse_special=False)
            res = {}
            for lk in (False, True):
                m.reset()
                st = GenStats()
                t = time.perf_counter()
                toks = list(generate_tokens(m, ids, SamplingParams(temperature=0.0), a.n_gen, st,
                                            lookup=lk, draft_max=a.draft_max))
                res[lk] = (toks, st)
                totals[lk] += st.decode_s
            (p, sp), (q, sq) = res[False], res[True]
            row = {"model": name, "workload": i, "kind": w["kind"], "prompt_tokens": len(ids),
                   "generated": len(p), "identical": p == q, "plain_tps": sp.decode_tps,
                   "lookup_tps": sq.decode_tps, "speedup": sq.decode_tps / sp.decode_tps if sp.decode_tps else 0,
                   "drafted": sq.drafted, "accepted": sq.accepted}
            out.append(row)
            if not a.json:
                print(f"{name} #{i} {w['kind']:<9} {len(ids):5d} prompt, {len(p):3d} gen  "
                      f"{'identical' if row['identical'] else 'DIFFERENT'}  plain {sp.decode_tps:6.1f} t/s  "
                      f"lookup {sq.decode_tps:6.1f} t/s  x{row['speedup']:.2f}  "
                      f"accepted {sq.accepted}/{sq.drafted}", flush=True)
        if not a.json:
            n_id = sum(r["identical"] for r in out if r["model"] == name)
            print(f"{name}: {n_id}/{len(wl)} identical; decode time plain {totals[False]:.1f} s, "
                  f"lookup {totals[True]:.1f} s: x{totals[False] / totals[True]:.2f} overall\n", flush=True)
        m.close()
    if a.json:
        print(json.dumps(out, indent=1))
    return 0 if all(r["identical"] for r in out) else 1


if __name__ == "__main__":
    sys.exit(main())
