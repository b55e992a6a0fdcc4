#!/usr/bin/env python3
"""Writes tests/data/mistral3_refs.npz: llama.cpp's logits for the tiny Ministral 3 models
of tests/mistral3_models.py (YaRN rope, llama 4's query temperature; random weights, the
real tensor layout), which tests/test_mistral3.py rebuilds byte for byte and compares with.

    python3 benchmarks/make_mistral3_refs.py [--venv /work/main/.venv-llamacpp]

The steps and the keys are make_moe_refs.py's: each prompt in one batch and each greedy
step as the whole sequence again in one batch. Stages of prompt 2 (52 tokens: four
temperatures): Q roped and scaled by its position's temperature, K roped (layer 0),
the attention's projection (0) and a layer's output (1).
"""
from __future__ import annotations

from pathlib import Path

from make_moe_refs import main

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "mistral3_refs.npz"
STAGES = ("Qcur_attn_temp_scaled-0", "attn_out-0", "l_out-1")

if __name__ == "__main__":
    main("mistral3_models", OUT, STAGES)
