#!/usr/bin/env python3
"""Writes tests/data/embed_refs.npz: llama.cpp's embeddings of a few texts on the tiny
synthetic llama and SmolLM2-135M (Q4_1), which tests/test_embed.py holds llmlite.embed to.

    python3 benchmarks/make_embed_refs.py [--venv /work/main/.venv-llamacpp]

Two steps: this Python finds the models (the shared folder, the registry's cache); the
venv's Python (llama-cpp-python 0.3.36, no llmlite) runs them: Llama(embedding=True,
pooling_type=P, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2) for P in mean, cls,
last, and llm.embed(text, normalize=False), each text one sequence in one batch (the
batch kernels), so the vectors are the pooled result_norm rows before any
normalisation. Pooling none (every token's row) on the tiny model too.

Keys, per model <m> (tiny, smollm2) and text k: <m>/tokens_k (llama.cpp's tokenization,
BOS first; the test embeds these ids), <m>/mean_k, <m>/cls_k, <m>/last_k ([n_embd]);
tiny/none_k ([n_tokens, n_embd]).
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
OUT = ROOT / "tests" / "data" / "embed_refs.npz"
TEXTS = (
    "Hello world",
    "The quick brown fox jumps over the lazy dog while the cat sleeps on a warm windowsill.",
    # 47 tokens: the test splits it over batches of 16
    ("Embeddings map a piece of text to a vector, so that texts with similar meanings lie close "
     "together; a search engine compares the vector of a question with those of stored passages "
     "and returns the nearest ones, ranked by their cosine similarity."),
)
POOLINGS = {"mean": 1, "cls": 2, "last": 3}   # llama.cpp's llama_pooling_type
NONE = 0


def oracle(spec_path: Path, dest: Path) -> None:
    """(in the venv) spec: {name: path}; every text's embeddings under each pooling -> dest"""
    from llama_cpp import Llama

    spec = json.loads(spec_path.read_text())
    out = {}
    for name, path in spec.items():
        poolings = dict(POOLINGS, **({"none": NONE} if name == "tiny" else {}))
        for pname, ptype in poolings.items():
            llm = Llama(path, embedding=True, pooling_type=ptype, n_ctx=512, n_batch=512, n_ubatch=512,
                        n_threads=2, n_threads_batch=2, verbose=False)
            for k, text in enumerate(TEXTS):
                out[f"{name}/tokens_{k}"] = np.array(llm.tokenize(text.encode()), dtype=np.int32)
                out[f"{name}/{pname}_{k}"] = np.array(llm.embed(text, normalize=False), dtype=np.float32)
            llm.close()
    np.savez(dest, **out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default="/work/main/.venv-llamacpp")
    ap.add_argument("--oracle", nargs=2, help=argparse.SUPPRESS)   # the second step, in the venv
    a = ap.parse_args()
    if a.oracle:
        oracle(Path(a.oracle[0]), Path(a.oracle[1]))
        return
    sys.path.insert(0, str(ROOT))
    from llmlite.registry import ensure_model

    shared = Path(os.environ.get("LLMLITE_SHARED", ROOT.parent / "shared"))
    spec = {"tiny": str(shared / "refs" / "synthetic" / "llama-mqa-tiny-f16.gguf"),
            "smollm2": str(ensure_model("smollm2-135m", quiet=True))}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "spec.json").write_text(json.dumps(spec))
        subprocess.run([f"{a.venv}/bin/python", __file__, "--oracle", str(work / "spec.json"), str(work / "r.npz")],
                       check=True)
        with np.load(work / "r.npz") as r:
            refs = {k: r[k] for k in r.files}
    np.savez_compressed(OUT, **refs)
    print(f"{OUT}: {OUT.stat().st_size} bytes, {len(refs)} arrays")


if __name__ == "__main__":
    main()
