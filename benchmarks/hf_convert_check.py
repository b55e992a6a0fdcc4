#!/usr/bin/env python3
"""The Hugging Face path of `llmlite quantize` end to end: makes checkpoints of both real
models (tests/hf_fixture.py; SmolLM2 with tokenizer.json, Gemma 3 with a SentencePiece
tokenizer.model), converts each to q8_0 and q4_k_m, then has llama.cpp
(llama-cpp-python in its own virtual environment) load each file and tokenize the
refs' tokenize.jsonl texts, compared with the refs' ids (llama.cpp on the original
GGUF); and scores data/wikitext2_test.txt (llama-perplexity's protocol, 24 chunks of
512) on the q8_0 files against the refs' perplexity of the originals. The refs and the
text are llama.cpp's outputs kept outside the repository, in $LLMLITE_SHARED (../shared
when unset).

    python benchmarks/hf_convert_check.py [--venv .venv-llamacpp]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = Path(os.environ.get("LLMLITE_SHARED", ROOT.parent / "shared"))

LLAMACPP_TOKENIZE = r"""
import json, sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=64, verbose=False, vocab_only=True)
rows = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
same = sum(llm.tokenize(r["text"].encode(), add_bos=r["add_special"], special=r["parse_special"]) == r["ids"] for r in rows)
print(same, len(rows))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    a = ap.parse_args()
    from compare_llamacpp import ensure_llamacpp

    lpy = ensure_llamacpp(Path(a.venv))
    for model, refdir in (("smollm2-135m", "smollm2-135m-instruct-q4_1"), ("gemma3-270m", "gemma3-270m-q4_k_m")):
        refs = SHARED / "refs" / refdir
        check(model, refs, lpy)
    return 0


def check(model: str, refs: Path, lpy) -> None:
    from hf_fixture import make_checkpoint

    import llmlite
    from llmlite.convert_hf import HFSource
    from llmlite.perplexity import perplexity
    from llmlite.quantize import write_quantized
    from llmlite.registry import ensure_model

    with tempfile.TemporaryDirectory(dir=str(ROOT)) as tmp:
        hf = make_checkpoint(ensure_model(model, quiet=True), Path(tmp) / model)
        for ty in ("q8_0", "q4_k_m"):
            out = Path(tmp) / f"hf-{ty}.gguf"
            src = HFSource(hf)
            r = write_quantized(src, out, ty)
            src.close()
            t = subprocess.run([str(lpy), "-c", LLAMACPP_TOKENIZE, str(out), str(refs / "tokenize.jsonl")],
                               capture_output=True, text=True)
            print(f"{model} {ty}: {r['bpw']:.2f} bpw, {r['types']}; llama.cpp loads it and tokenizes "
                  f"{t.stdout.split()[0] if t.returncode == 0 else 'FAILED'} of {t.stdout.split()[-1] if t.returncode == 0 else '?'} "
                  f"refs texts as the original" + ("" if t.returncode == 0 else ": " + t.stderr[-300:]), flush=True)
            if ty == "q8_0":
                ref = json.loads((refs / "perplexity.json").read_text())
                text = (SHARED / "data" / ref["corpus"]).read_text(encoding="utf-8")
                m = llmlite.load(out, n_ctx=ref["n_ctx"])
                p = perplexity(m, text, n_ctx=ref["n_ctx"], n_chunks=ref["n_chunks"]).ppl
                m.close()
                print(f"{model} q8_0 perplexity ({ref['n_chunks']} chunks of {ref['n_ctx']}): {p:.4f} vs the original's "
                      f"{ref['ppl']:.4f} (llama.cpp): {100 * (p / ref['ppl'] - 1):+.3f}%", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
