#!/usr/bin/env python3
"""Writes tests/data/gemma4_tok_refs.json: llama.cpp's tokenization of TOK_TEXTS with the
small Gemma 4 vocabulary of tests/gemma4_models.py (tokenizer.ggml.model gemma4), which
tests/test_gemma4_tokenizer.py rebuilds byte for byte and compares with.

    python3 benchmarks/make_gemma4_tok_refs.py [--venv /work/main/.venv-llamacpp]

Per text: its ids with BOS and no special parsing, its ids without BOS and with special
parsing, each of those tokens' piece and the whole detokenized text (hex), from
llama-cpp-python 0.3.36 (vocab_only) in the venv.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "gemma4_tok_refs.json"


def oracle(vocab: str, texts_path: str, out: str) -> None:
    """(in the venv) llama.cpp's ids, pieces and detokenized text for each text"""
    from llama_cpp import Llama

    llm = Llama(vocab, vocab_only=True, verbose=False)
    rows = []
    for t in json.loads(Path(texts_path).read_text()):
        b = t.encode()
        plain = llm.tokenize(b, add_bos=True, special=False)
        special = llm.tokenize(b, add_bos=False, special=True)
        rows.append({"text": t, "ids": plain, "ids_special": special,
                     "pieces": [llm.detokenize([i]).hex() for i in special],
                     "detokenized": llm.detokenize(special).hex()})
    Path(out).write_text(json.dumps(rows, ensure_ascii=False, indent=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default="/work/main/.venv-llamacpp")
    ap.add_argument("--oracle", nargs=3, help=argparse.SUPPRESS)   # the second step, in the venv
    a = ap.parse_args()
    if a.oracle:
        oracle(*a.oracle)
        return
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import gemma4_models

    with tempfile.TemporaryDirectory() as tmp:
        vocab, texts, rows = Path(tmp) / "vocab.gguf", Path(tmp) / "texts.json", Path(tmp) / "rows.json"
        sha = gemma4_models.build_vocab(vocab)
        texts.write_text(json.dumps(gemma4_models.TOK_TEXTS))
        subprocess.run([f"{a.venv}/bin/python", __file__, "--oracle", str(vocab), str(texts), str(rows)], check=True)
        OUT.write_text(json.dumps({"sha256": sha, "rows": json.loads(rows.read_text())}, ensure_ascii=False,
                                  indent=1) + "\n")
    print(f"{OUT}: {OUT.stat().st_size / 1e3:.1f} KB")


if __name__ == "__main__":
    main()
