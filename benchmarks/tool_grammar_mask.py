#!/usr/bin/env python3
"""The mask's cost per token of each tool-call format's grammar (llmlite/tool_formats/),
auto mode (free text, calls constrained once they start): per token of a paragraph of
free text, and per token inside a call, the time of Constraint.mask (the engine's
bitmask plus its apply to a logits row), and the compile time. Tokens are fed as the
model would sample them: the mask first, then commit.

The vocabulary is SmolLM2's with Mistral's markers added as control tokens (as in
tests/test_tool_formats.py), so Mistral's grammar meets them as special tokens.

Usage: python benchmarks/tool_grammar_mask.py [--tools N] [--repeat R]
(--tools: how many tools are declared, the two below and N-2 more like them)"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmlite.constrain import compile_constraint
from llmlite.tool_formats import Gemma, Generic, Harmony, Hermes, Llama3, Mistral, QwenXML, Tool

FREE = ("Paris is sunny this afternoon, with a light breeze from the west and about twenty degrees. "
        "Tomorrow looks much the same, though clouds may come in by the evening. ") * 2
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
           "required": ["city"]}
# (format, the text before the call's arguments, the rest of the call)
CASES = {
    "hermes": (Hermes(), "<tool_call>\n",
               '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>'),
    "llama3": (Llama3(), "", '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "c"}}'),
    "mistral v3": (Mistral(), "[TOOL_CALLS]", '[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}]'),
    "mistral [ARGS]": (Mistral(args_form=True), "[TOOL_CALLS]", 'get_weather[ARGS]{"city": "Paris", "unit": "c"}'),
    "harmony": (Harmony(), "<|channel|>commentary to=functions.",
                'get_weather <|constrain|>json<|message|>{"city": "Paris", "unit": "c"}'),
    "qwen xml": (QwenXML(think=True), "<tool_call>",
                 "\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=unit>\nc\n"
                 "</parameter>\n</function>\n</tool_call>"),
    "gemma": (Gemma(), "```tool_code\n", 'get_weather(city="Paris", unit="c")\n```'),
    "generic": (Generic(), "", '{"tool_call": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}'),
}


def vocab():
    from llmlite.gguf import open_gguf
    from llmlite.registry import ensure_model
    from llmlite.tokenizer import Tokenizer

    md = open_gguf(ensure_model("smollm2-135m", quiet=True)).metadata
    added = ["[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"]
    return Tokenizer("gpt2", list(md["tokenizer.ggml.tokens"]) + added,
                     token_types=list(md["tokenizer.ggml.token_type"]) + [3] * len(added),
                     merges=md["tokenizer.ggml.merges"], pre=md["tokenizer.ggml.pre"],
                     special_ids={"bos": int(md["tokenizer.ggml.bos_token_id"]),
                                  "eos": int(md["tokenizer.ggml.eos_token_id"])})


def feed(c, ids, logits) -> list[float]:
    """ms of mask per token, each token checked allowed and committed"""
    out = []
    for t in ids:
        t0 = time.perf_counter()
        row = c.mask(logits)
        out.append((time.perf_counter() - t0) * 1e3)
        assert np.isfinite(row[t]), t
        c.commit(t)
    return out


def _ms(xs) -> str:
    return f"{statistics.median(xs):.3f} ({statistics.fmean(xs):.3f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tools", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    tok = vocab()
    compile_constraint(tok, regex="a")                   # the vocabulary bridge, made once, not timed below
    tools = [Tool("get_weather", "", WEATHER)] + [Tool(f"tool_{i}", "", WEATHER) for i in range(a.tools - 1)]
    logits = np.zeros(tok.n_vocab, np.float32)

    def enc(s):
        return tok.encode(s, add_special=False, parse_special=True)

    print(f"{a.tools} tools; ms per token, median (mean); SmolLM2 vocabulary ({tok.n_vocab})")
    print(f"{'format':16} {'compile ms':>10} {'free text':>16} {'inside a call':>16}")
    for name, (fmt, opening, call) in CASES.items():
        g = fmt.grammar(tools, False, tokenizer=tok)
        free_ms, call_ms, comp = [], [], []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            compiled = compile_constraint(tok, grammar=g)
            comp.append((time.perf_counter() - t0) * 1e3)
            c = compiled.start()
            # llama3 and generic: a call is the whole reply, so free text and a call are two replies
            if name in ("llama3", "generic"):
                free_ms += feed(c, enc(FREE if name == "llama3" else '{"response": "' + FREE + '"}'), logits)
                c = compiled.start()
                call_ms += feed(c, enc(call), logits)
            else:
                free_ms += feed(c, enc(FREE + opening), logits)
                call_ms += feed(c, enc(call), logits)
        print(f"{name:16} {statistics.median(comp):10.1f} {_ms(free_ms):>16} {_ms(call_ms):>16}")


if __name__ == "__main__":
    main()
