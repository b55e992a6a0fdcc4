#!/usr/bin/env python3
"""Writes tests/data/lfm2_refs.npz: llama.cpp's logits for the tiny Liquid LFM2 models of
tests/lfm2_models.py (short-convolution and attention layers; random weights, the real
tensor layout), which tests/test_lfm2.py rebuilds byte for byte and compares with.

    python3 benchmarks/make_lfm2_refs.py [--venv /work/main/.venv-llamacpp]

The steps and the keys are make_moe_refs.py's: each prompt in one batch and each greedy
step as the whole sequence again in one batch from an empty state. llama.cpp runs the
short convolution (ggml_ssm_conv) per token whatever the batch, so the batch's logits
are also a one-token decode's. Stages of prompt 2: a convolution layer's in_proj
(b|c|x), its convolution's output and its out_proj (layer 0), the same convolution in a
later layer (3), a layer's output (1), the attention layer's output before and after
its projection (2), and the last layer's output (5), for the Q8_0 model
(lfm2_models.STAGED); llama.cpp's flash-attention logits too (lfm2_models.FLASH). The
models: Q8_0, the published Q4_K_M's types, and a window on the attention layers.
"""
from __future__ import annotations

from pathlib import Path

from make_moe_refs import main

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "lfm2_refs.npz"
# llama.cpp's names (its lfm2 graph names its stages "model.layers.{}.<stage>")
STAGES = ("model.layers.{}.conv.in_proj-0", "model.layers.{}.conv.conv-0", "model.layers.{}.conv.out_proj-0",
          "l_out-1", "kqv_out-2", "model.layers.{}.self_attn.out_proj-2", "model.layers.{}.conv.conv-3", "l_out-5")

if __name__ == "__main__":
    main("lfm2_models", OUT, STAGES)
