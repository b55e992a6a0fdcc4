#!/usr/bin/env python3
"""tg128 under a JSON schema against unconstrained tg128 (issue 23's acceptance: >= 0.9x):
the decode loop of llmlite/generate.py (sample, then step), greedy, prompt lookup off,
128 tokens from the same prompt, the two alternating for --reps rounds in one process;
the median tokens/s of each, and their ratio. The unconstrained run ignores
end-of-generation tokens (as llama-bench's tg does); the schema is an array of at least
40 objects, so it cannot end before 128 tokens either. A third column, "tools", is the
grammar of tool_choice "auto" (llmlite/tool_formats/'s Hermes, one tool): free text,
a lazy lexeme, until a `<tool_call>` opens.

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
    from llmlite.tool_formats import Hermes, Tool

    for name in a.models:
        m = llmlite.load(ensure_model(name, quiet=True), n_ctx=512, threads=a.threads)
        compiled = compile_constraint(m.tokenizer, json_schema=SCHEMA)
        tool = Tool("get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}}})
        lazy = compile_constraint(m.tokenizer, grammar=Hermes().grammar([tool], forced=False))
        ids = m.tokenize(PROMPT)
        tps = {"plain": [], "schema": [], "tools": []}
        for r in range(a.reps + 1):                    # round 0: warm-up
            for kind in tps:
                st = GenStats()
                c = {"schema": compiled, "tools": lazy}.get(kind)
                sampler = Sampler(SamplingParams(temperature=0), c.start() if c is not None else None)
                m.reset()
                n = sum(1 for _ in generate_tokens(m, ids, sampler, a.n, st, stop_ids=()))
                assert n == a.n, (kind, n, st.stop_reason)
                if r:
                    tps[kind].append(st.decode_tps)
        p, s, t = (statistics.median(tps[k]) for k in ("plain", "schema", "tools"))
        print(f"{name}: tg{a.n} unconstrained {p:.1f} t/s, under a JSON schema {s:.1f} t/s: {s / p:.3f}x, "
              f"under the tools grammar (free text) {t:.1f} t/s: {t / p:.3f}x (medians of {a.reps}; runs "
              f"{[round(x) for x in tps['plain']]} / {[round(x) for x in tps['schema']]} / "
              f"{[round(x) for x in tps['tools']]})")
        m.close()


if __name__ == "__main__":
    main()
