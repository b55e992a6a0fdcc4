#!/usr/bin/env python3
"""Perplexity of the tiny mixture-of-experts models (tests/moe_models.py) against llama.cpp's,
over the first chunks of the wikitext corpus, by llama-perplexity's protocol (DESIGN.md,
Protocols: chunks of -c tokens without BOS, each from an empty cache in one batch, positions
c/2 .. c-2 scored).

    python3 benchmarks/moe_perplexity.py [-c 128] [--chunks 8] [--venv /work/main/.venv-llamacpp]
    python3 benchmarks/moe_perplexity.py --models qwen35_models    (the tiny Qwen 3.5 models)

Two steps, as make_moe_refs.py: this Python writes the GGUFs (llmlite's writer) and runs
llmlite.perplexity; the venv's Python (llama-cpp-python 0.3.36) tokenizes the same text,
evaluates each chunk in one batch (logits_all, flash attention off) and scores it in float64.
GGML_CPU_TILED_MM_FORCE=1, as make_moe_refs.py: llama.cpp's batch (tiled) kernel for every
K-quant expert, also one the batch routes fewer rows to than it takes that kernel for by
default (without it, which kernel an expert gets depends on the batch; --no-force shows that).
Prints both figures per model, their relative difference, and whether the tokens agreed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("LLMLITE_SHARED", ROOT.parent / "shared")) / "data" / "wikitext2_test.txt"


def nll(logits: np.ndarray, targets: np.ndarray) -> float:
    lg = logits.astype(np.float64)
    mx = lg.max(axis=1, keepdims=True)
    lse = np.log(np.exp(lg - mx).sum(axis=1)) + mx[:, 0]
    return float((lse - lg[np.arange(len(targets)), targets]).sum())


def oracle(work: Path, n_ctx: int, n_chunks: int, force: bool) -> None:
    """(in the venv) llama.cpp's perplexity of every work/*.gguf -> work/llamacpp.json"""
    if force:
        os.environ["GGML_CPU_TILED_MM_FORCE"] = "1"
    from llama_cpp import Llama

    text = CORPUS.read_text(encoding="utf-8")
    out = {}
    for path in sorted(work.glob("*.gguf")):
        llm = Llama(str(path), n_ctx=max(n_ctx, 512), n_batch=512, n_ubatch=512, n_threads=2,
                    logits_all=True, flash_attn=False, verbose=False)
        toks = np.array(llm.tokenize(text.encode(), add_bos=False, special=False), dtype=np.int64)
        bos = llm.token_bos() if llm._model.add_bos_token() else None
        first, total, count = n_ctx // 2, 0.0, 0
        for c in range(n_chunks):
            chunk = toks[c * n_ctx:(c + 1) * n_ctx].copy()
            if bos is not None:
                chunk[0] = bos
            llm.reset()
            llm.eval(chunk.tolist())
            logits = np.array(llm.scores[:n_ctx], dtype=np.float32)
            total += nll(logits[first:n_ctx - 1], chunk[first + 1:])
            count += n_ctx - 1 - first
        out[path.stem] = {"ppl": float(np.exp(total / count)), "tokens": toks[:n_ctx * n_chunks].tolist()}
    (work / "llamacpp.json").write_text(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-c", type=int, default=128, help="chunk length (tokens)")
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--venv", default="/work/main/.venv-llamacpp")
    ap.add_argument("--no-force", action="store_true", help="llama.cpp's default kernel choice per expert")
    ap.add_argument("--models", default="moe_models", help="the module of tests/ with the models (MODELS, build)")
    ap.add_argument("--oracle", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.oracle:
        oracle(Path(a.oracle), a.c, a.chunks, not a.no_force)
        return
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import importlib

    import llmlite
    from llmlite.perplexity import perplexity

    moe_models = importlib.import_module(a.models)
    text = CORPUS.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in moe_models.MODELS:
            moe_models.build(name, work / f"{name}.gguf")
        subprocess.run([f"{a.venv}/bin/python", __file__, "--oracle", str(work), "-c", str(a.c),
                        "--chunks", str(a.chunks)] + ["--no-force"] * a.no_force, check=True)
        ref = json.loads((work / "llamacpp.json").read_text())
        print(f"{'model':24} {'llmlite':>12} {'llama.cpp':>12} {'rel diff':>10}  tokens")
        for name in moe_models.MODELS:
            m = llmlite.load(str(work / f"{name}.gguf"), n_ctx=max(a.c, 512), threads=2)
            toks = m.tokenize(text, add_special=False, parse_special=False)[:a.c * a.chunks]
            r = perplexity(m, text, n_ctx=a.c, n_chunks=a.chunks)
            theirs = ref[name]["ppl"]
            same = "same" if list(toks) == ref[name]["tokens"] else "DIFFER"
            print(f"{name:24} {r.ppl:12.6f} {theirs:12.6f} {abs(r.ppl - theirs) / theirs:10.2e}  {same}")


if __name__ == "__main__":
    main()
