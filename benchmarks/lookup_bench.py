#!/usr/bin/env python3
"""Prompt-lookup speculation on $LLMLITE_SHARED/bench/lookup-workloads.jsonl (prompts whose
answers repeat their input: code edits and copies, text fixes, questions on a document;
kept outside the repository, ../shared when the variable is unset): for each workload,
greedy decoding with and without lookup (same model, same process), checks that the
tokens are identical and prints the decode speed-up and acceptance.

Usage: python benchmarks/lookup_bench.py [MODEL ...] [-n 256] [-t 2] [--draft-max 8] [-ngl all] [--llamacpp] [--json]
SmolLM2 gets its chat template; a model without one (gemma3-270m) is prompted raw.
--llamacpp also runs llama-cpp-python (its venv, see compare_llamacpp.py) on each workload,
plain and with LlamaPromptLookupDecoding(num_pred_tokens=10), and prints the ratios.
--open-ended runs the open-ended prompts below instead of the workloads (lookup must not
slow them down)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPEN_ENDED = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are the main causes of the seasons on Earth?",
    "Give me some advice for learning to play the guitar as an adult.",
    "Describe a day in the life of a medieval blacksmith.",
    "Why do cats purr? Explain what scientists know.",
    "Write a poem about the first snow of winter.",
]

# llama-cpp-python on one workload: decode tokens/s after the first token, plain or lookup
LLAMACPP_JOB = r"""
import json, sys, time
from llama_cpp import Llama
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding
path, threads, n_gen, mode, chat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
prompts = json.loads(sys.stdin.read())
kw = {"draft_model": LlamaPromptLookupDecoding(num_pred_tokens=10)} if mode == "lookup" else {}
llm = Llama(model_path=path, n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False,
            logits_all=(mode == "lookup"), **kw)
res = []
for p in prompts:
    llm.reset()
    t0 = time.perf_counter(); first = None; n = 0; text = []
    if chat:
        it = llm.create_chat_completion(messages=[{"role": "user", "content": p}], max_tokens=n_gen,
                                        temperature=0.0, stream=True)
    else:
        it = llm.create_completion(p, max_tokens=n_gen, temperature=0.0, stream=True)
    for ch in it:
        piece = ch["choices"][0].get("delta", {}).get("content") if chat else ch["choices"][0].get("text")
        if piece is None:
            continue
        n += 1
        if first is None:
            first = time.perf_counter()
        text.append(piece)
    end = time.perf_counter()
    res.append({"tps": (n - 1) / (end - first) if n > 1 and end > first else 0.0, "pieces": n,
                "text": "".join(text)})
print(json.dumps(res))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("-n", "--n-gen", type=int, default=256)
    ap.add_argument("-t", "--threads", type=int, default=None)
    ap.add_argument("--draft-max", type=int, default=8)
    ap.add_argument("-ngl", "--gpu-layers", default="0", help="layers on the GPU (the device kit: all)")
    shared = Path(os.environ.get("LLMLITE_SHARED", ROOT.parent / "shared"))
    ap.add_argument("--workloads", default=str(shared / "bench" / "lookup-workloads.jsonl"))
    ap.add_argument("--llamacpp", action="store_true")
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--open-ended", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import llmlite
    from llmlite.chat import prompt_ids, template_for
    from llmlite.genconfig import GenerationConfig
    from llmlite.generate import GenStats, drafter_for, generate_tokens
    from llmlite.sampling import Sampler, SamplingParams

    if a.open_ended:
        wl = [{"kind": "open", "prompt": p} for p in OPEN_ENDED]
    else:
        wl = [json.loads(line) for line in open(a.workloads)]
    out = []
    for name in a.models:
        ngl = a.gpu_layers if a.gpu_layers in ("auto", "all") else int(a.gpu_layers)
        m = llmlite.load(name, n_ctx=4096, threads=a.threads, gpu_layers=ngl)
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
                drafter = drafter_for(GenerationConfig(lookup=lk, draft_max=a.draft_max))
                toks = list(generate_tokens(m, ids, Sampler(SamplingParams(temperature=0.0)), a.n_gen, st,
                                            drafter=drafter))
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
        mine = [r for r in out if r["model"] == name]
        if not a.json:
            n_id = sum(r["identical"] for r in mine)
            print(f"{name}: {n_id}/{len(wl)} identical; decode time plain {totals[False]:.1f} s, "
                  f"lookup {totals[True]:.1f} s: x{totals[False] / totals[True]:.2f} overall", flush=True)
        path = str(m.path)
        m.close()
        if a.llamacpp:
            import subprocess

            from compare_llamacpp import ensure_llamacpp

            lpy = ensure_llamacpp(Path(a.venv))
            theirs = {}
            for mode in ("plain", "lookup"):
                r = subprocess.run([str(lpy), "-c", LLAMACPP_JOB, path, str(a.threads or 2), str(a.n_gen), mode,
                                    "1" if tpl is not None else "0"], input=json.dumps([w["prompt"] for w in wl]),
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError(r.stderr[-800:])
                theirs[mode] = json.loads(r.stdout.strip().splitlines()[-1])
            for row, tp, tl in zip(mine, theirs["plain"], theirs["lookup"]):
                row["llamacpp_plain_tps"], row["llamacpp_lookup_tps"] = tp["tps"], tl["tps"]
                row["llamacpp_lookup_same_text"] = tp["text"] == tl["text"]
            # ratios of total generation time over all workloads (same token counts assumed)
            def hm(key):   # tokens/s over the whole set: total tokens / total time
                tot_t = sum(r["generated"] / r[key] for r in mine if r[key] > 0)
                return sum(r["generated"] for r in mine if r[key] > 0) / tot_t if tot_t else 0.0
            ours_l, ours_p = hm("lookup_tps"), hm("plain_tps")
            lc_p, lc_l = hm("llamacpp_plain_tps"), hm("llamacpp_lookup_tps")
            same = sum(r["llamacpp_lookup_same_text"] for r in mine)
            if not a.json:
                print(f"{name} over all workloads (tokens/s, prefill excluded): llmlite plain {ours_p:.1f}, "
                      f"llmlite lookup {ours_l:.1f}, llama.cpp plain {lc_p:.1f}, llama.cpp lookup {lc_l:.1f}")
                print(f"  llmlite lookup vs: own plain x{ours_l / ours_p:.2f}, llama.cpp plain x{ours_l / lc_p:.2f}, "
                      f"llama.cpp lookup x{ours_l / lc_l:.2f}; llama.cpp's lookup output equals its plain "
                      f"output on {same}/{len(mine)}", flush=True)
        if not a.json:
            print()
    if a.json:
        print(json.dumps(out, indent=1))
    return 0 if all(r["identical"] for r in out) else 1


if __name__ == "__main__":
    sys.exit(main())
