#!/usr/bin/env python3
"""Writes tests/data/gemma4_refs.npz: llama.cpp's logits for the tiny Gemma 4 models of
tests/gemma4_models.py (random weights, the real tensor layout), which
tests/test_gemma4.py rebuilds byte for byte and compares with.

    python3 benchmarks/make_gemma4_refs.py [--venv /work/main/.venv-llamacpp]

The steps and the file's keys are make_moe_refs.py's (its main, on these models):
teacher-forced top-20 logits and logsumexp of each prompt in one batch, 48 greedy
tokens (each step the whole sequence again in one batch), and STAGES of prompt 2:
the per-layer inputs (the embedding table's rows plus the projection, [n, n_layer,
width]), the attention output of a layer reading another's K/V (sliding, full), a
layer's per-layer embedding term, the last layer's output; for the expert model, the
router's logits and the experts' weighted sum.
"""
from __future__ import annotations

from pathlib import Path

from make_moe_refs import main

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "gemma4_refs.npz"
# (few: the file stays under 300 KB)
STAGES = ("inp_per_layer", "kqv_out-2", "kqv_out-3", "kqv_out-5", "per_layer_embd_out-0", "l_out-5",
          "ffn_moe_logits-0", "ffn_moe_out-0")

if __name__ == "__main__":
    main("gemma4_models", OUT, STAGES)
