#!/usr/bin/env python3
"""Writes tests/data/granite_refs.npz: llama.cpp's logits for the tiny IBM Granite 3
models of tests/granite_models.py (granite and granitemoe; random weights, the real tensor
layout, Granite's four multipliers), which tests/test_granite.py rebuilds byte for byte and compares with.

    python3 benchmarks/make_granite_refs.py [--venv /work/main/.venv-llamacpp]

The steps and the keys are make_moe_refs.py's: each prompt in one batch and each greedy
step as the whole sequence again in one batch. Stages of prompt 2, one per multiplier:
the embeddings (times embedding_scale), the attention's output before its projection
(its scores times attention.scale), the first residual sum (the projection times
residual_scale, then the add) and the last layer's output (the FFN's, likewise).
The logits carry the fourth (divided by logit_scale). granitemoe's also: the
experts' weighted sum of layer 0, and with a shared expert, that expert's output.
"""
from __future__ import annotations

from pathlib import Path

from make_moe_refs import main

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "granite_refs.npz"
STAGES = ("embd", "kqv_out-0", "ffn_inp-0", "l_out-1", "ffn_moe_out-0", "ffn_shexp-0")

if __name__ == "__main__":
    main("granite_models", OUT, STAGES)
