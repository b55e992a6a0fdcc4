#!/usr/bin/env python3
"""A whole forward pass with a new weight type against llama.cpp: the layer matrices of a
synthetic tiny model (shared/refs/synthetic) requantized to TYPE (MXFP4 by default; any
type whose blocks divide the model's rows), then the logits of one prompt from
llama-cpp-python's batch path (all positions in one batch, flash attention off, as the
synthetic refs were made) and from llmlite: how many positions are bit-identical and the
largest difference, within test_forward_synthetic's 1e-4 (the forward pass is not bit
for bit llama.cpp's on these files whatever the type: run with --type Q8_0, the
requantization a no-op on qwen2-tiny-q8_0, for the baseline).

    python benchmarks/newtype_forward_check.py [--model qwen2-tiny-q8_0] [--type MXFP4]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LLAMACPP_JOB = r"""
import sys, numpy as np, llama_cpp
path, out, toks = sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3].split(",")]
m = llama_cpp.Llama(path, n_ctx=512, n_batch=512, n_threads=2, logits_all=True, verbose=False)
m.eval(toks)
np.save(out, np.array(m.scores[:len(toks)], np.float32))
"""


def requantize(src: Path, dst: Path, t: int) -> list[str]:
    """dst: src with every layer matrix (blk.*, 2-D) requantized to t; their names"""
    import llmlite.quantize as Q
    from llmlite import _lib

    plan = Q.plan
    changed = []

    def plan_to_t(g, ftype):
        p = plan(g, ftype)
        for e in p:
            if e.name.startswith("blk.") and len(e.shape) == 2:
                e.dst_type = t
                e.dst_bytes = int(np.prod(e.shape[1:])) * _lib.row_bytes(t, e.shape[0])
                changed.append(e.name)
            else:
                e.dst_type, e.dst_bytes = e.src_type, e.src_bytes
        return p

    Q.plan = plan_to_t
    try:
        s = Q.GGUFSource(src)
        Q.write_quantized(s, dst, "q8_0", allow_requantize=True)
        s.close()
    finally:
        Q.plan = plan
    return changed


def main() -> int:
    from llmlite.gguf import open_gguf
    from llmlite.gguf.constants import GGMLType
    from llmlite.model import Weights

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2-tiny-q8_0")
    ap.add_argument("--type", default="MXFP4")
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    a = ap.parse_args()
    src = Path(a.shared) / "refs" / "synthetic" / f"{a.model}.gguf"
    toks = list(np.random.default_rng(0).integers(100, 40000, 13))
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / f"{a.model}-{a.type}.gguf"
        names = requantize(src, dst, int(GGMLType[a.type]))
        out = Path(tmp) / "llamacpp.npy"
        subprocess.run([str(Path(a.venv) / "bin" / "python"), "-c", LLAMACPP_JOB, str(dst), str(out),
                        ",".join(map(str, toks))], check=True)
        ref = np.load(out)
        with open_gguf(dst) as g:
            ours = Weights(g, 512, n_batch=64, flash_attn=False).forward(np.array(toks), 0, 2)
    same = (ours.view(np.uint32) == ref.view(np.uint32)).all(axis=1)
    print(f"{a.model} with {len(names)} layer matrices in {a.type}: {int(same.sum())} of {len(toks)} positions "
          f"bit-identical with llama.cpp; max |diff| {np.abs(ours - ref).max():.3g}")
    return 0 if np.abs(ours - ref).max() < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
