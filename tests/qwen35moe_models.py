"""Tiny random-weight Qwen 3.5 MoE (qwen35moe) GGUFs: qwen35_models' layers (gated
delta-net, gated full attention) with a mixture of experts in place of every dense FFN,
softmax over the router's logits, the top k renormalised, and a shared expert gated by
sigmoid(w . x). Written by qwen35_models' writer, so the tests rebuild them and compare
with llama.cpp's references in tests/data/qwen35moe_refs.npz
(benchmarks/make_qwen35moe_refs.py).

    MODELS[name] -> Spec; build(name, path) writes the file and returns its sha256
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from qwen35_models import N_GREEDY, PROMPT_LENGTHS, Spec, build_spec, spec_prompts

from llmlite.gguf.constants import GGMLType as Q

__all__ = ["MODELS", "N_GREEDY", "PROMPT_LENGTHS", "STAGED", "build", "prompts"]

MODELS = {
    # Qwen3.5-35B-A3B's FFN in miniature (its 256 experts top-8 with a shared expert of an
    # expert's width): 8 experts top-2, a shared expert twice an expert's width, on the
    # tiny qwen35's layers
    "qwen35moe-4l-8x2-q8_0": Spec(4, 4, 64, 4, 2, 32, 8, (2, 1, 1, 0), 64, 2, 4, 4, 128, seed=12,
                                  arch="qwen35moe", n_expert=8, n_expert_used=2, n_ff_exp=32, n_ff_shexp=64,
                                  note="qwen35's layers with 8 experts top-2 and a gated shared expert; Q8_0"),
    # a Q4_K_M file's expert types (gate/up Q4_K, down Q6_K: 256-float super-blocks, so
    # 256 wide), the shared expert Q8_0, 16 experts top-4
    "qwen35moe-4l-16x4-q4_k": Spec(4, 4, 256, 4, 2, 32, 8, (2, 1, 1, 0), 64, 2, 4, 4, 256, seed=13,
                                   arch="qwen35moe", n_expert=16, n_expert_used=4, n_ff_exp=256, n_ff_shexp=256,
                                   types={"ffn_gate_exps": Q.Q4_K, "ffn_up_exps": Q.Q4_K, "ffn_down_exps": Q.Q6_K},
                                   note="K-quant experts (Q4_K gate/up, Q6_K down), 16 experts top-4"),
}
STAGED = ("qwen35moe-4l-8x2-q8_0",)   # the stages' floats kept small


def prompts(name: str) -> list[np.ndarray]:
    """the prompts' token ids (no control tokens)"""
    return spec_prompts(MODELS[name])


def build(name: str, path, **changes) -> str:
    """Write model `name` to path (changes: Spec fields replaced, e.g. fused_gate_up=True); its sha256"""
    return build_spec(replace(MODELS[name], **changes), path)
