#!/usr/bin/env python3
"""Writes tests/data/tiny.imatrix.gguf and tests/data/tiny.imatrix.dat (llama-imatrix's
two output forms, on the shared tiny llama, refs/synthetic/llama-mqa-tiny-f16.gguf),
tests/data/moe.imatrix.gguf (on tests/moe_models.py's qwen3moe-8x2-q8_0: expert
tensors, one count per expert) and tests/data/imatrix_tiny_refs.json: the sha256 of
what llama-quantize writes from those models with each of them, for several file types. Run from anywhere; the
imatrix is passed to llama-quantize by its bare name from tests/data (the name is
recorded in the output's quantize.imatrix.file, so the test passes the same).

    python benchmarks/make_imatrix_tiny.py [--bin /work/ref/build/bin] [--shared DIR]

llama-imatrix and llama-quantize: built from the oracle's llama.cpp source
(cmake --build BUILD --target llama-imatrix llama-quantize).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q4_k_m", "q2_k", "iq4_nl", "iq4_xs")
MOE, MOE_TYPES = "qwen3moe-8x2-q8_0", ("q4_0", "q4_k_m", "iq4_nl")
# the tensors the imatrix is used for, chosen (key: "<imatrix> <type> <options>")
SELECTIONS = (("tiny.imatrix.gguf", "q4_0", ("--include-weights", "ffn_up")),
              ("tiny.imatrix.dat", "q4_k_m", ("--exclude-weights", "attn", "--exclude-weights", "ffn_down")),
              ("tiny.imatrix.dat", "q4_k_m", ("--include-weights", "nothing")))
TEXT = "wikitext2_test.txt"


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="/work/ref/build/bin")
    ap.add_argument("--shared", default=os.environ.get("LLMLITE_SHARED", "/work/shared"))
    a = ap.parse_args()
    model = Path(a.shared) / "refs" / "synthetic" / "llama-mqa-tiny-f16.gguf"
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import moe_models

    refs = {}
    with tempfile.TemporaryDirectory() as tmp:
        text, out, moe = Path(tmp) / "text.txt", Path(tmp) / "out.gguf", Path(tmp) / "moe.gguf"
        text.write_bytes((Path(a.shared) / "data" / TEXT).read_bytes()[:60000])
        moe_models.build(MOE, moe)
        for m, form, name in ((model, "gguf", "tiny.imatrix.gguf"), (model, "dat", "tiny.imatrix.dat"),
                              (moe, "gguf", "moe.imatrix.gguf")):
            # the text by its bare name: the file records it as its dataset
            subprocess.run([f"{a.bin}/llama-imatrix", "-m", str(m), "-f", text.name, "-c", "64", "--chunks", "4",
                            "-t", "2", "--no-ppl", "--output-format", form, "-o", str(DATA / name)],
                           cwd=tmp, check=True, capture_output=True)
        for m, name, types in ((model, "tiny.imatrix.gguf", TYPES), (model, "tiny.imatrix.dat", TYPES),
                               (moe, "moe.imatrix.gguf", MOE_TYPES)):
            for ty in types:
                subprocess.run([f"{a.bin}/llama-quantize", "--allow-requantize", "--imatrix", name,
                                str(m), str(out), ty.upper(), "2"], cwd=DATA, check=True, capture_output=True)
                refs[f"{name} {ty}"] = sha256(out)
        for name, ty, opts in SELECTIONS:
            subprocess.run([f"{a.bin}/llama-quantize", "--allow-requantize", "--imatrix", name, *opts,
                            str(model), str(out), ty.upper(), "2"], cwd=DATA, check=True, capture_output=True)
            refs[" ".join((name, ty, *opts))] = sha256(out)
    (DATA / "imatrix_tiny_refs.json").write_text(json.dumps(refs, indent=1, sort_keys=True) + "\n")
    print(f"{DATA}: tiny.imatrix.gguf, tiny.imatrix.dat, moe.imatrix.gguf, imatrix_tiny_refs.json "
          f"({len(refs)} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
