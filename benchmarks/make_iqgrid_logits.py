#!/usr/bin/env python3
"""Writes tests/data/iqgrid_logits.npz: llama.cpp's logits on the tiny grid i-quant
models of tests/test_iq_grid_model.py (the tiny llama at width 256, every matrix of
one type, random blocks from a seed: the test rebuilds the same bytes), for a fixed
prompt, through llama-cpp-python in its virtual environment: per type and position
the top-8 token ids, their logits and the logsumexp.

    LLMLITE_SHARED=... python3 benchmarks/make_iqgrid_logits.py [--venv .venv-llamacpp]
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

TOKENS = [1, 400, 3000, 77, 12000, 5, 911, 42]
TOP = 8

# run by the venv's python: the model's logits at every position, as JSON
LLAMACPP_JOB = r"""
import json, sys
import numpy as np
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=64, n_batch=64, n_threads=2, logits_all=True, verbose=False)
llm.eval(json.loads(sys.argv[2]))
print(json.dumps(np.asarray(llm.scores[:llm.n_tokens], dtype=np.float32).tolist()))
"""


def summary(logits: np.ndarray) -> dict:
    top = np.argsort(-logits, axis=1, kind="stable")[:, :TOP]
    m = logits.max(1, keepdims=True)
    lse = (np.log(np.exp((logits - m).astype(np.float64)).sum(1)) + m[:, 0]).astype(np.float32)
    return {"top_ids": top.astype(np.int32), "top_logits": np.take_along_axis(logits, top, 1), "logsumexp": lse}


def main() -> int:
    from test_iq_grid import GRID
    from test_iq_grid_model import write_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    shared = Path(os.environ.get("LLMLITE_SHARED", ROOT.parent / "shared"))
    ap.add_argument("--tiny", default=str(shared / "refs" / "synthetic" / "llama-mqa-tiny-f16.gguf"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "iqgrid_logits.npz"))
    a = ap.parse_args()
    out = {"tokens": np.array(TOKENS, np.int32)}
    with tempfile.TemporaryDirectory() as d:
        for name in GRID:
            path = write_model(Path(a.tiny), Path(d) / f"{name}.gguf", name, False)
            r = subprocess.run([str(Path(a.venv) / "bin" / "python"), "-c", LLAMACPP_JOB, str(path), json.dumps(TOKENS)],
                               capture_output=True, text=True, check=True)
            s = summary(np.array(json.loads(r.stdout.strip().splitlines()[-1]), dtype=np.float32))
            for k, v in s.items():
                out[f"{name}/{k}"] = v
            print(name, "top-1", s["top_ids"][:, 0].tolist())
    np.savez_compressed(a.out, **out)
    print(f"wrote {a.out} ({Path(a.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
