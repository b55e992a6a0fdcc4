#!/usr/bin/env python3
"""Constrained decoding's cost per token (llmlite/constrain.py on llguidance): for each
model's vocabulary and each constraint below, one sampled generation of up to -n tokens
under it; per token, the time of Constraint.mask (the engine's allowed-token bitmask,
plus the copy and csrc/mask.c's apply to the logits row) and of Constraint.commit, and
the compile time of the constraint (after the vocabulary bridge, which is made once
per tokenizer and timed apart).

With --outlines, the same for outlines-core (pip install outlines-core; not a
dependency) where it can take the constraint (a JSON schema without recursion, as the
regex it compiles schemas to; a regex): its index build, and its mask per token
replaying the tokens llguidance's run produced (as far as its regex accepts them).

Usage: python benchmarks/constrained_mask.py [MODEL ...] [-n 128] [--outlines] [--json]
(default models: smollm2-135m gemma3-270m)"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMAS = {s["name"]: s["schema"] for s in json.loads((ROOT / "tests/data/constrain_schemas.json").read_text())}
CASES = {   # name -> (constraint options, prompt)
    "flat object (person_record)": (dict(json_schema=SCHEMAS["person_record"]), "A person as JSON:"),
    "nested + array of objects (event)": (dict(json_schema=SCHEMAS["event"]), "An event as JSON:"),
    "oneOf + numbers (oneof_objects)": (dict(json_schema=SCHEMAS["oneof_objects"]), "A shape as JSON:"),
    "recursion via $ref (recursive_tree)": (dict(json_schema=SCHEMAS["recursive_tree"]), "A tree as JSON:"),
    "free JSON (json.gbnf, GBNF)": (dict(grammar=(ROOT / "tests/data/gbnf/json.gbnf").read_text()), "JSON:"),
    "regex [a-z ]{1,200}\\.": (dict(regex=r"[a-z ]{1,200}\."), "A sentence:"),
}


class Timed:
    """A Constraint whose mask and commit calls are timed"""

    def __init__(self, c):
        self.c, self.mask_s, self.commit_s = c, [], []

    def mask(self, logits):
        t = time.perf_counter()
        out = self.c.mask(logits)
        self.mask_s.append(time.perf_counter() - t)
        return out

    def commit(self, tok):
        t = time.perf_counter()
        self.c.commit(tok)
        self.commit_s.append(time.perf_counter() - t)

    def accepts(self, draft):
        return self.c.accepts(draft)


def outlines_row(tok, opts, toks) -> dict | None:
    """outlines-core's index build and mask per token over the same tokens; None where
    it cannot take the constraint"""
    import numpy as np
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.json_schema import build_regex_from_schema

    from llmlite.constrain import _Vocab

    if "grammar" in opts:
        return None
    try:
        rx = opts.get("regex") or build_regex_from_schema(json.dumps(opts["json_schema"]))
    except Exception:               # recursion ($ref cycles): not a regex
        return None
    v = _Vocab(tok)
    words: dict = {}
    for i, b in enumerate(v.tokens):
        if b and b[:1] != b"\xff" and i not in tok.eog_ids:
            words.setdefault(b, []).append(i)
    t = time.perf_counter()
    index = Index(rx, Vocabulary(v.eos_token_id, words))
    build = time.perf_counter() - t
    guide, bits, times = Guide(index), np.zeros((tok.n_vocab + 31) // 32, dtype=np.int32), []
    for x in toks:
        t = time.perf_counter()
        guide.write_mask_into(bits.ctypes.data, bits.size, 4)
        times.append(time.perf_counter() - t)
        try:
            guide.advance(x)
        except Exception:           # its regex's layout differs from llguidance's here
            break
    times.sort()
    return dict(index_build_ms=build * 1e3, mask_us_median=statistics.median(times) * 1e6, tokens=len(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--outlines", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import llmlite
    from llmlite.constrain import compile_constraint, engine_tokenizer
    from llmlite.generate import generate_tokens
    from llmlite.registry import ensure_model
    from llmlite.sampling import Sampler, SamplingParams

    rows = []
    for name in a.models:
        m = llmlite.load(ensure_model(name, quiet=True), n_ctx=1024)
        t = time.perf_counter()
        engine_tokenizer(m.tokenizer)
        bridge = time.perf_counter() - t
        print(f"{name}: vocabulary {m.n_vocab}, bridge {bridge * 1e3:.0f} ms (once per tokenizer)")
        for case, (opts, prompt) in CASES.items():
            t = time.perf_counter()
            compiled = compile_constraint(m.tokenizer, **opts)
            comp = time.perf_counter() - t
            timed = Timed(compiled.start())
            toks = list(generate_tokens(m, m.tokenize(prompt), Sampler(SamplingParams(seed=0), timed), a.n))
            mk = sorted(timed.mask_s)
            r = dict(model=name, case=case, tokens=len(toks), compile_ms=comp * 1e3,
                     mask_us_median=statistics.median(mk) * 1e6, mask_us_p95=mk[int(0.95 * (len(mk) - 1))] * 1e6,
                     mask_us_max=mk[-1] * 1e6, commit_us_median=statistics.median(timed.commit_s) * 1e6)
            rows.append(r)
            print(f"  {case:38s} {r['tokens']:4d} tok  compile {r['compile_ms']:6.1f} ms  mask median "
                  f"{r['mask_us_median']:6.0f} us  p95 {r['mask_us_p95']:6.0f} us  max {r['mask_us_max']:6.0f} us  "
                  f"commit {r['commit_us_median']:4.0f} us")
            o = outlines_row(m.tokenizer, opts, toks) if a.outlines else None
            if o is not None:
                r["outlines"] = o
                print(f"  {'  outlines-core':38s} {o['tokens']:4d} tok  index {o['index_build_ms']:8.1f} ms  "
                      f"mask median {o['mask_us_median']:6.0f} us")
        m.close()
    if a.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
