#!/usr/bin/env python3
"""tg128 under a JSON schema against unconstrained tg128 (issue 23's acceptance: >= 0.9x):
the decode loop of llmlite/generate.py (sample, then step), greedy, prompt lookup off,
128 tokens from the same prompt, the two alternating for --reps rounds in one process;
the median tokens/s of each, and their ratio. The unconstrained run ignores
end-of-generation tokens (as llama-bench's tg does); the schema is an array of at least
40 objects, so it cannot end before 128 tokens either.

Usage: python benchmarks/constrained_tg.py [MODEL ...] [-n 128] [--reps 7] [-t THREADS]
(default models: smollm2-135m gemma3-270m). The machine may be shared: the medians of
several alternating rounds are what to compare."""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMA = {"type": "array", "minItems": 40, "items": {
    "type": "object", "properties": {"name": {"type": "string", "maxLength": 16},
                                     "qty": {"type": "integer", "minimum": 0, "maximum": 999},
                                     "unit": {"enum": ["kg", "g", "l", "pcs"]}},
    "required": ["name", "qty", "unit"], "additionalProperties": False}}
PROMPT = "A shopping list as JSON:"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("-t", "--threads", type=int, default=None)
    a = ap.parse_args()

    import llmlite
    from llmlite.constrain import compile_constraint
    from llmlite.generate import GenStats, generate_tokens
    from llmlite.registry import ensure_model
    from llmlite.sampling import Sampler, SamplingParams

    for name in a.models:
        m = llmlite.load(ensure_model(name, quiet=True), n_ctx=512, threads=a.threads)
        compiled = compile_constraint(m.tokenizer, json_schema=SCHEMA)
        ids = m.tokenize(PROMPT)
        tps = {"plain": [], "schema": []}
        for r in range(a.reps + 1):                    # round 0: warm-up
            for kind in tps:
                st = GenStats()
                sampler = Sampler(SamplingParams(temperature=0), compiled.start() if kind == "schema" else None)
                m.reset()
                n = sum(1 for _ in generate_tokens(m, ids, sampler, a.n, st, stop_ids=()))
                assert n == a.n, (kind, n, st.stop_reason)
                if r:
                    tps[kind].append(st.decode_tps)
        p, s = statistics.median(tps["plain"]), statistics.median(tps["schema"])
        print(f"{name}: tg{a.n} unconstrained {p:.1f} t/s, under a JSON schema {s:.1f} t/s: {s / p:.3f}x "
              f"(medians of {a.reps}; runs {[round(x) for x in tps['plain']]} / {[round(x) for x in tps['schema']]})")
        m.close()


if __name__ == "__main__":
    main()
