#!/usr/bin/env python3
"""Writes tests/data/qwen35_refs.npz: llama.cpp's logits for the tiny Qwen 3.5 models of
tests/qwen35_models.py (gated delta-net layers and a gated full-attention layer; random
weights, the real tensor layout), which tests/test_qwen35.py rebuilds byte for byte and
compares with.

    python3 benchmarks/make_qwen35_refs.py [--venv /work/main/.venv-llamacpp]

The steps and the keys are make_moe_refs.py's: each prompt in one batch
and each greedy step as the whole sequence again in one batch from an empty state.
llama.cpp 0.3.36 runs the delta rule as its fused CPU op (ggml_gated_delta_net: the
recurrence token by token, whatever the batch), so the batch's logits are also the
ones of a one-token decode. Stages of prompt 2: the convolution's output (after SiLU),
the delta rule's output, the gated norm's output and the layer's projection (layer 0),
a layer's output (2), and the full-attention layer's roped Q (its interleaved
multi-section rope), its output gated by sigmoid(gate) and projected (3).
"""
from __future__ import annotations

from pathlib import Path

from make_moe_refs import main

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "qwen35_refs.npz"
STAGES = ("conv_output_silu-0", "attn_output-0", "final_output-0", "linear_attn_out-0", "l_out-2",
          "Qcur-3", "attn_gated-3", "attn_output-3")

if __name__ == "__main__":
    main("qwen35_models", OUT, STAGES)
