#!/usr/bin/env python3
"""Writes tests/data/qwen35moe_refs.npz: llama.cpp's logits for the tiny Qwen 3.5 MoE
models of tests/qwen35moe_models.py (qwen35's hybrid layers, every FFN a mixture of
experts with a gated shared expert), which tests/test_qwen35moe.py rebuilds byte for
byte and compares with. Run it with the main python: it builds the files, then runs
llama.cpp in the venv.

    python3 benchmarks/make_qwen35moe_refs.py [--venv /work/main/.venv-llamacpp]

The steps and the keys are make_moe_refs.py's (make_qwen35_refs.py's notes on the
delta rule hold). Stages of prompt 2, layer 0 (a delta-net layer's FFN): the router's
logits, the renormalised top-k weights, the experts' weighted sum, the shared expert
before its gate, and the FFN's output (the sum plus the gated shared expert); the full
attention layer's FFN output (3).
"""
from __future__ import annotations

from pathlib import Path

from make_moe_refs import main

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "qwen35moe_refs.npz"
STAGES = ("ffn_moe_logits-0", "ffn_moe_weights_norm-0", "ffn_moe_out-0", "ffn_shexp-0", "ffn_out-0", "ffn_out-3")

if __name__ == "__main__":
    main("qwen35moe_models", OUT, STAGES)
