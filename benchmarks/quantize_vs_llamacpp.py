#!/usr/bin/env python3
"""`llmlite quantize` against llama.cpp's llama_model_quantize (llama-cpp-python in its
own virtual environment, see compare_llamacpp.py), on an F16 GGUF made from each
real model (every tensor dequantized): the same tensors in the same order, the same
types, byte-identical data, the same metadata values; and the time each takes, with
the same thread count.

    python benchmarks/quantize_vs_llamacpp.py [MODEL ...] [--types q4_k_m q8_0 ...] [-t 2]

With an importance matrix (--imatrix FILE, llama-imatrix's output) the reference is
the llama-quantize binary (--llama-quantize PATH, built from the oracle's source),
which records the file's name as given: both tools get the same string. --f16 GGUF
takes that file as the input in place of the F16 made from MODEL.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

LLAMACPP_JOB = r"""
import sys, time, llama_cpp
src, dst, ftype, nthread = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = ftype
p.nthread = nthread
t = time.perf_counter()
rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p)
print(rc, time.perf_counter() - t)
"""


def compare(a_path, b_path) -> tuple[bool, str, dict]:
    """(identical, first difference, type counts) of two GGUFs"""
    from gguf import GGUFReader

    a, b = GGUFReader(str(a_path)), GGUFReader(str(b_path))
    ka = [(k, f.contents()) for k, f in a.fields.items() if not k.startswith("GGUF.")]
    kb = [(k, f.contents()) for k, f in b.fields.items() if not k.startswith("GGUF.")]
    if [k for k, _ in ka] != [k for k, _ in kb]:
        return False, f"metadata keys differ: {[k for k, _ in ka][-4:]} vs {[k for k, _ in kb][-4:]}", {}
    for (k, va), (_, vb) in zip(ka, kb):
        if va != vb:
            return False, f"metadata {k} differs", {}
    if [t.name for t in a.tensors] != [t.name for t in b.tensors]:
        return False, "tensor order differs", {}
    counts: dict[str, int] = {}
    for ta, tb in zip(a.tensors, b.tensors):
        if ta.tensor_type != tb.tensor_type:
            return False, f"{ta.name}: {ta.tensor_type.name} vs {tb.tensor_type.name}", {}
        if list(ta.shape) != list(tb.shape):
            return False, f"{ta.name}: shape differs", {}
        if bytes(ta.data.tobytes()) != bytes(tb.data.tobytes()):
            return False, f"{ta.name} ({ta.tensor_type.name}): data differs", {}
        counts[ta.tensor_type.name] = counts.get(ta.tensor_type.name, 0) + 1
    return True, "", counts


def run_llama_quantize(binary: str, src: Path, dst: Path, ty: str, imatrix: str, threads: int) -> tuple[bool, str, float]:
    """(ok, error tail, seconds) of `llama-quantize --imatrix IMATRIX SRC DST TYPE THREADS`"""
    t = time.perf_counter()
    r = subprocess.run([binary, "--imatrix", imatrix, str(src), str(dst), ty.upper(), str(threads)],
                       capture_output=True, text=True)
    return r.returncode == 0, (r.stderr + r.stdout)[-400:], time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--types", nargs="+", default=["q4_k_m", "q8_0", "q6_k", "q5_k_m", "q4_0"])
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--venv", default=str(ROOT / ".venv-llamacpp"))
    ap.add_argument("--imatrix", help="an importance matrix for both tools (llama-quantize binary as reference)")
    ap.add_argument("--llama-quantize", default="/work/ref/build/bin/llama-quantize")
    ap.add_argument("--f16", help="an F16 GGUF to quantize (in place of the one made from MODEL)")
    a = ap.parse_args()

    from compare_llamacpp import ensure_llamacpp
    from hf_fixture import quantize_gguf

    from llmlite import _lib
    from llmlite.quantize import FTYPES
    from llmlite.registry import ensure_model

    lpy = None if a.imatrix else ensure_llamacpp(Path(a.venv))
    im = None
    if a.imatrix:
        from llmlite.imatrix import load_imatrix

        im = load_imatrix(a.imatrix)
    _lib.set_threads(a.threads)
    ok_all = True
    with tempfile.TemporaryDirectory(dir=str(ROOT)) as tmp:
        for model in a.models[:1] if a.f16 else a.models:
            if a.f16:
                f16 = Path(a.f16)
            else:
                f16 = Path(tmp) / f"{model}-f16.gguf"
                quantize_gguf(ensure_model(model, quiet=True), f16, "f16", allow_requantize=True)
            for ty in a.types:
                ours, theirs = Path(tmp) / f"ours-{ty}.gguf", Path(tmp) / f"theirs-{ty}.gguf"
                if im is not None:
                    ok, err, t_theirs = run_llama_quantize(a.llama_quantize, f16, theirs, ty, a.imatrix, a.threads)
                    rc = "0" if ok else "-1"
                else:
                    r = subprocess.run([str(lpy), "-c", LLAMACPP_JOB, str(f16), str(theirs), str(FTYPES[ty][0]),
                                        str(a.threads)], capture_output=True, text=True)
                    rc, t_theirs = r.stdout.split()[-2:] if r.returncode == 0 else ("-1", "0")
                    err = r.stderr[-400:]
                if rc != "0":
                    print(f"{model} {ty}: llama.cpp failed: {err}")
                    ok_all = False
                    continue
                t = time.perf_counter()
                quantize_with(f16, ours, ty, im)
                t_ours = time.perf_counter() - t
                same, why, counts = compare(ours, theirs)
                same = same and ours.read_bytes() == theirs.read_bytes()   # and byte for byte (cmp)
                ok_all &= same
                print(f"{model} {ty:7s} {'IDENTICAL' if same else 'DIFFERENT: ' + why}  "
                      f"{' '.join(f'{k} {v}' for k, v in sorted(counts.items()))}  "
                      f"time llmlite {t_ours:.2f} s, llama.cpp {float(t_theirs):.2f} s: x{float(t_theirs) / t_ours:.2f}",
                      flush=True)
                ours.unlink(missing_ok=True)
                theirs.unlink(missing_ok=True)
    return 0 if ok_all else 1


def quantize_with(src: Path, dst: Path, ty: str, im) -> None:
    """`llmlite quantize` in this process, with the importance matrix when one is given"""
    from llmlite.quantize import GGUFSource, write_quantized

    source = GGUFSource(src)
    try:
        write_quantized(source, dst, ty, imatrix=im)
    finally:
        source.close()


if __name__ == "__main__":
    raise SystemExit(main())
