#!/usr/bin/env python3
"""llmlite against llama.cpp on a mixture of experts at Qwen3-30B-A3B's widths (n_embd
2048, 32/4 heads of 128, experts 768 wide, top-8; 16 experts and 2 layers, so the
file is 120 MB): Q4_K attention and gate/up experts, Q6_K V and down experts, as a
Q4_K_M file has them; --arch qwen2moe: Qwen1.5-MoE-A2.7B's (8 of its 60 experts, 1408
wide, top-4, the shared expert 5632 wide); --arch gpt-oss: gpt-oss-20b's (n_embd 2880, 64/8
heads of 64, 6 of its 32 experts 2880 wide in MXFP4, top-4, Q8_0 attention, the window of
128 on layer 0: give --tokens above 128 for it to cut); --arch qwen35: Qwen3.5-0.8B's (n_embd
1024, 8/2 heads of 256 with their gates, 64 dims roped in sections 11:11:10:0; delta-net
heads of 128, 16 key and 16 value heads; FFN 3584; 3 linear-attention layers and a full
one), Q4_K qkv and FFN, Q6_K ssm_out and down, Q8_0 elsewhere. Prints max |d logit| over a prompt in one batch, the top-1
agreement, and the prefill time of both (2 threads).

    python3 benchmarks/moe_real_width.py [--arch qwen2moe|gpt-oss] [--venv /work/main/.venv-llamacpp] [--tokens 64]

The tiny models of tests/test_moe.py have the same structure; widths like these are
where last-bit differences (the router's F32 order, the Q4_K experts' gemv order)
grow into the logits. Keep --tokens a multiple of 4: llama.cpp's dense Q4_K matmul
takes its gemv order (not its gemm's, llmlite's) for the last n % 4 tokens of a batch.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def oracle(path: str, toks_file: str, out: str) -> None:
    """(in the venv) llama.cpp's logits of the prompt in one batch, and its time"""
    from llama_cpp import Llama

    toks = np.load(toks_file).tolist()
    llm = Llama(path, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2, logits_all=True, flash_attn=False,
                verbose=False)
    t = time.perf_counter()
    llm.eval(toks)
    dt = time.perf_counter() - t
    np.savez(out, logits=np.array(llm.scores[:len(toks)], dtype=np.float32), seconds=dt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default="/work/main/.venv-llamacpp")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--arch", choices=("qwen3moe", "qwen2moe", "gpt-oss", "qwen35"), default="qwen3moe")
    ap.add_argument("--oracle", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.oracle:
        oracle(*a.oracle)
        return
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import moe_models
    import qwen35_models

    from llmlite import _lib
    from llmlite.gguf import open_gguf
    from llmlite.gguf.constants import GGMLType as Q
    from llmlite.model import Weights

    attn = {"attn_q": Q.Q4_K, "attn_k": Q.Q4_K, "attn_v": Q.Q6_K, "attn_output": Q.Q4_K}
    mxfp4 = {"ffn_gate_exps": Q.MXFP4, "ffn_up_exps": Q.MXFP4, "ffn_down_exps": Q.MXFP4}
    moe_models.MODELS["real-width"] = moe_models.Spec(
        "gpt-oss", 2, 2880, 64, 8, 64, 6, 4, 2880, sliding_window=128, seed=9, types=mxfp4) \
        if a.arch == "gpt-oss" else moe_models.Spec(
        "qwen3moe", 2, 2048, 32, 4, 128, 16, 8, 768, seed=7,
        types={"ffn_gate_exps": Q.Q4_K, "ffn_up_exps": Q.Q4_K, "ffn_down_exps": Q.Q6_K, **attn}) \
        if a.arch == "qwen3moe" else moe_models.Spec(     # Qwen1.5-MoE-A2.7B's, 8 of its 60 experts
        "qwen2moe", 2, 2048, 16, 16, 128, 8, 4, 1408, n_ff_shexp=5632, seed=8,
        types={"ffn_gate_exps": Q.Q4_K, "ffn_up_exps": Q.Q4_K, "ffn_down_exps": Q.Q8_0, "ffn_gate_shexp": Q.Q4_K,
               "ffn_up_shexp": Q.Q4_K, "ffn_down_shexp": Q.Q6_K, **attn})
    with tempfile.TemporaryDirectory() as tmp:
        path, toks_file, out = f"{tmp}/m.gguf", f"{tmp}/toks.npy", f"{tmp}/ref.npz"
        if a.arch == "qwen35":
            qwen35_models.MODELS["real-width"] = qwen35_models.Spec(
                4, 4, 1024, 8, 2, 256, 64, (11, 11, 10, 0), 128, 16, 16, 4, 3584, seed=5,
                types={"ffn_gate": Q.Q4_K, "ffn_up": Q.Q4_K, "ffn_down": Q.Q6_K, "attn_qkv": Q.Q4_K,
                       "ssm_out": Q.Q6_K})
            qwen35_models.build("real-width", path)
        else:
            moe_models.build("real-width", path)
        toks = np.random.RandomState(5).randint(0, moe_models.n_vocab() - 3, size=a.tokens)
        np.save(toks_file, toks)
        subprocess.run([f"{a.venv}/bin/python", __file__, "--oracle", path, toks_file, out], check=True)
        ref = np.load(out)
        _lib.set_threads(2)
        with open_gguf(path) as g:
            w = Weights(g, 512, n_batch=512)
            t = time.perf_counter()
            logits = w.forward(list(toks), 0, 2)
            dt = time.perf_counter() - t
            del w
    d = np.abs(logits - ref["logits"])
    top1 = (logits.argmax(1) == ref["logits"].argmax(1)).mean()
    print(f"{a.tokens} tokens: max |d logit| {d.max():.3g}, top-1 agreement {top1:.3f}; "
          f"prefill llmlite {dt:.3f} s, llama.cpp {float(ref['seconds']):.3f} s")


if __name__ == "__main__":
    main()
