#!/usr/bin/env python3
"""Writes tests/data/moe_refs.npz: llama.cpp's logits for the tiny mixture-of-experts
models of tests/moe_models.py (qwen3moe, qwen2moe, gpt-oss; random weights, the real tensor
layout), which tests/test_moe.py rebuilds byte for byte and compares with.

    python3 benchmarks/make_moe_refs.py [--venv /work/main/.venv-llamacpp]

Two steps: this Python (llmlite's writer and quantizers) writes the GGUFs; the venv's
Python (llama-cpp-python 0.3.36, no llmlite) runs them: Llama(n_ctx=512, n_batch=512,
n_threads=2, logits_all=True, flash_attn=False), each prompt in one batch (the batch
kernels), and each greedy step as the whole sequence again in one batch, so that every
logit kept comes from the same kernels. GGML_CPU_TILED_MM_FORCE=1: llama.cpp's tiled
K-quant matmul (its batch kernel) for every expert, also one given fewer than the 8
rows it takes that kernel for by default (where its choice of kernel would depend on
how many rows the batch routes to the expert). On these files it changes no bit: run
without it, llama.cpp gives the same logits.

Per model <m> and prompt k: <m>/sha256 (the GGUF's), <m>/tokens_k, <m>/top_ids_k and
<m>/top_logits_k ([n, 20], teacher-forced, descending), <m>/logsumexp_k ([n]),
<m>/greedy_k and <m>/greedy_margin_k (48 tokens, top-1 minus top-2 logit at each step);
for the models in the module's FLASH (gpt-oss), <m>/fa_top_logits_k and <m>/fa_logsumexp_k: llama.cpp's with
flash attention (top_ids' logits);
and stages of prompt 2 (benchmarks/llamacpp_trace_dump.py), where a difference in a
last bit may not reach the logits through their quantized matmuls: <m>/stage/<name>
for each of STAGES the model has (the router's logits, the experts' weighted sum, with
the shared expert), for the models in the module's STAGED (default: all).
"""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "moe_refs.npz"
TOP = 20
STAGES = ("ffn_moe_logits-0", "ffn_moe_logits-1", "ffn_moe_out-0", "ffn_out-0", "attn_out-1")


def oracle(work: Path, stage_names=STAGES) -> None:
    """(in the venv) every model of work/prompts.npz through llama.cpp -> work/<m>.npz"""
    os.environ["GGML_CPU_TILED_MM_FORCE"] = "1"
    from llama_cpp import Llama

    spec = np.load(work / "prompts.npz")
    names = sorted({k.split("/")[0] for k in spec.files})
    for name in names:
        llm = Llama(str(work / f"{name}.gguf"), n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
                    logits_all=True, flash_attn=False, verbose=False)

        def run(seq, llm=llm):
            """every position's logits, the sequence in one batch from an empty cache"""
            llm.reset()
            llm.eval(list(map(int, seq)))
            return np.array(llm.scores[:len(seq)], dtype=np.float32)

        out = {}
        for k in range(sum(1 for f in spec.files if f.startswith(name + "/") and f.split("/")[1].isdigit())):
            toks = spec[f"{name}/{k}"]
            logits = run(toks)
            ids = np.argsort(-logits, axis=1, kind="stable")[:, :TOP].astype(np.int32)
            out[f"top_ids_{k}"] = ids
            out[f"top_logits_{k}"] = np.take_along_axis(logits, ids, 1)
            mx = logits.max(1, keepdims=True)
            out[f"logsumexp_{k}"] = (np.log(np.exp(logits - mx).sum(1)) + mx[:, 0]).astype(np.float32)
            seq, greedy, margin = list(toks), [], []
            for _ in range(int(spec[f"{name}/n_greedy"])):
                last = run(seq)[-1]
                top2 = np.sort(last)[-2:]
                tok = int(np.argmax(last))
                greedy.append(tok)
                margin.append(float(top2[1] - top2[0]))
                seq.append(tok)
            out[f"greedy_{k}"] = np.array(greedy, dtype=np.int32)
            out[f"greedy_margin_{k}"] = np.array(margin, dtype=np.float32)
        if f"{name}/flash" in spec.files:    # llama.cpp's flash path too (gpt-oss: its attention sinks there)
            fa = Llama(str(work / f"{name}.gguf"), n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
                       logits_all=True, flash_attn=True, verbose=False)
            for k in range(3):
                fa.reset()
                fa.eval(list(map(int, spec[f"{name}/{k}"])))
                logits = np.array(fa.scores[:len(spec[f"{name}/{k}"])], dtype=np.float32)
                out[f"fa_top_logits_{k}"] = np.take_along_axis(logits, out[f"top_ids_{k}"], 1)
                mx = logits.max(1, keepdims=True)
                out[f"fa_logsumexp_{k}"] = (np.log(np.exp(logits - mx).sum(1)) + mx[:, 0]).astype(np.float32)
        if f"{name}/no_stages" not in spec.files:
            out.update(stages(work / f"{name}.gguf", spec[f"{name}/2"], work / f"{name}-trace.npz", stage_names))
        np.savez(work / f"{name}.npz", **out)


def stages(path: Path, toks, dump: Path, names=STAGES) -> dict:
    """those stages of llama.cpp's forward pass over toks (one batch), the first of each name"""
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "llamacpp_trace_dump.py"), str(path), str(dump),
                    ",".join(map(str, toks))], check=True, capture_output=True)
    out = {}
    with np.load(dump) as z:
        for f in z.files:
            name = f[5:]          # after the dump's "NNNN_" order prefix
            if name in names and f"stage/{name}" not in out:
                out[f"stage/{name}"] = z[f].astype(np.float32)
    return out


def main(models: str = "moe_models", out: Path = OUT, stage_names=STAGES) -> None:
    """the refs of tests/<models>.py's MODELS into out (make_gemma4_refs.py's too)"""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default="/work/main/.venv-llamacpp")
    ap.add_argument("--oracle", help=argparse.SUPPRESS)   # the second step, in the venv
    ap.add_argument("--stages", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.oracle:
        oracle(Path(a.oracle), tuple(a.stages.split(",")))
        return
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    moe_models = importlib.import_module(models)

    refs = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prompts = {}
        for name in moe_models.MODELS:
            refs[f"{name}/sha256"] = np.array(moe_models.build(name, work / f"{name}.gguf"))
            for k, p in enumerate(moe_models.prompts(name)):
                prompts[f"{name}/{k}"] = p
                refs[f"{name}/tokens_{k}"] = p
            prompts[f"{name}/n_greedy"] = np.array(moe_models.N_GREEDY)
            if name in getattr(moe_models, "FLASH", ()):
                prompts[f"{name}/flash"] = np.array(1)
            if name not in getattr(moe_models, "STAGED", moe_models.MODELS):   # the stages' floats kept small
                prompts[f"{name}/no_stages"] = np.array(1)
        np.savez(work / "prompts.npz", **prompts)
        subprocess.run([f"{a.venv}/bin/python", __file__, "--oracle", str(work), "--stages", ",".join(stage_names)],
                       check=True)
        for name in moe_models.MODELS:
            with np.load(work / f"{name}.npz") as r:
                refs.update({f"{name}/{k}": r[k] for k in r.files})
    np.savez_compressed(out, **refs)
    print(f"{out}: {out.stat().st_size / 1e3:.0f} KB")
    for name in moe_models.MODELS:
        for k in range(len(moe_models.PROMPT_LENGTHS)):
            tl, gm = refs[f"{name}/top_logits_{k}"], refs[f"{name}/greedy_margin_{k}"]
            print(f"{name} prompt {k}: top-1 margin min {(tl[:, 0] - tl[:, 1]).min():.4f}, "
                  f"greedy margin min {gm.min():.4f}, distinct greedy {len(set(refs[f'{name}/greedy_{k}']))}")


if __name__ == "__main__":
    main()
