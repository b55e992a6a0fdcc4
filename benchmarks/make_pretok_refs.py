#!/usr/bin/env python3
"""Writes tests/data/pretok_refs.npz: llama.cpp's token ids for every pre-tokenizer name
llmlite knows (llmlite/tokenizer/pretokenizer.py: gpt-oss's "gpt-4o", llama3's, qwen2's,
deepseek's, ...), each applied to SmolLM2's byte-level BPE vocabulary, on the texts of the
shared tokenizer references and a few wikitext lines. The vocabulary's merges are not the
ones those models ship, but the split each regex list makes decides which merges can
apply, so a wrong split shows as different ids (tests/test_pretok_llamacpp.py).

    python3 benchmarks/make_pretok_refs.py [--venv /work/main/.venv-llamacpp]

Two steps: this Python writes, per name, a vocabulary-only GGUF (SmolLM2's key/values with
tokenizer.ggml.pre replaced and no tensors); the venv's Python (llama-cpp-python 0.3.36)
loads each with vocab_only and tokenizes the texts with add_special (its BOS rule for the
name) and parse_special off. Names llama.cpp does not load are listed in `failed`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OUT = ROOT / "tests" / "data" / "pretok_refs.npz"
SMOLLM2_REFS = SHARED / "refs" / "smollm2-135m-instruct-q4_1" / "tokenize.jsonl"
CORPUS = SHARED / "data" / "wikitext2_test.txt"


def texts() -> list[str]:
    """the shared references' texts (once each) and 24 non-empty wikitext lines"""
    seen = []
    for line in SMOLLM2_REFS.read_text(encoding="utf-8").splitlines():
        t = json.loads(line)["text"]
        if t not in seen:
            seen.append(t)
    wiki = [ln for ln in CORPUS.read_text(encoding="utf-8").splitlines() if len(ln.strip()) > 40]
    return seen + wiki[:24] + ["12345678 1,234.5 3.14159 2024-01-01 ١٢٣ 一二三", "I'M YOU'LL we'Re IT'S"]


def oracle(work: Path) -> None:
    """(in the venv) ids of every text for every work/<name>.gguf -> work/ids.json"""
    from llama_cpp import Llama

    tx = json.loads((work / "texts.json").read_text())
    out, failed = {}, {}
    for path in sorted(work.glob("*.gguf")):
        name = path.stem.replace("__", "/")
        try:
            llm = Llama(str(path), vocab_only=True, verbose=False)
        except Exception as e:  # noqa: BLE001 (recorded, not hidden)
            failed[name] = str(e)
            continue
        out[name] = [llm.tokenize(t.encode(), add_bos=True, special=False) for t in tx]
        del llm
    (work / "ids.json").write_text(json.dumps({"ids": out, "failed": failed}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default="/work/main/.venv-llamacpp")
    ap.add_argument("--oracle", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.oracle:
        oracle(Path(a.oracle))
        return
    sys.path.insert(0, str(ROOT))
    from llmlite.gguf import open_gguf
    from llmlite.registry import ensure_model
    from llmlite.gguf.constants import ValueType as V
    from llmlite.gguf.writer import encode, write_gguf
    from llmlite.tokenizer.pretokenizer import PRE_TOKENIZERS

    tx = texts()
    with open_gguf(ensure_model("smollm2-135m", quiet=True)) as g:
        kvs = [(k, v) for k, v in g.stored_kvs() if k not in ("tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "texts.json").write_text(json.dumps(tx))
        for name in sorted(PRE_TOKENIZERS):
            write_gguf(work / f"{name.replace('/', '__')}.gguf",
                       kvs + [("tokenizer.ggml.pre", encode(V.STRING, name))], [], lambda i: b"")
        subprocess.run([f"{a.venv}/bin/python", __file__, "--oracle", str(work)], check=True)
        res = json.loads((work / "ids.json").read_text())
    # names whose ids are the same share one stored result: group g's ids and lengths,
    # and "names" maps every name to its group
    groups, names = [], {}
    for name, rows in sorted(res["ids"].items()):
        if rows not in groups:
            groups.append(rows)
        names[name] = groups.index(rows)
    refs = {"texts": np.array(json.dumps(tx)), "failed": np.array(json.dumps(res["failed"])),
            "names": np.array(json.dumps(names))}
    for g, rows in enumerate(groups):
        refs[f"ids/{g}"] = np.concatenate([np.asarray(r, dtype=np.int32) for r in rows])
        refs[f"lens/{g}"] = np.array([len(r) for r in rows], dtype=np.int32)
    np.savez_compressed(OUT, **refs)
    print(f"{OUT}: {OUT.stat().st_size / 1e3:.0f} KB, {len(names)} names in {len(groups)} groups, {len(tx)} texts; "
          f"llama.cpp refused: {sorted(res['failed']) or 'none'}")


if __name__ == "__main__":
    main()
