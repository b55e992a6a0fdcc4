#!/usr/bin/env python3
"""Writes tests/data/smollm3_refs.npz: llama.cpp's logits for the tiny SmolLM3 models of
tests/smollm3_models.py (NoPE layers every 4th; random weights, the real tensor layout),
which tests/test_smollm3.py rebuilds byte for byte and compares with.

    python3 benchmarks/make_smollm3_refs.py [--venv /work/main/.venv-llamacpp]

The steps and the keys are make_moe_refs.py's: each prompt in one batch and each greedy
step as the whole sequence again in one batch. Stages of prompt 2: the NoPE layer's Q and
K (3; llama.cpp names the projection before any rope "Qcur" first, so this is the
projection), the attention's projection of a roped layer (2) and of the NoPE layer (3),
and the NoPE layer's output.
"""
from __future__ import annotations

from pathlib import Path

from make_moe_refs import main

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "smollm3_refs.npz"
STAGES = ("Qcur-3", "Kcur-3", "attn_out-2", "attn_out-3", "l_out-3")

if __name__ == "__main__":
    main("smollm3_models", OUT, STAGES)
