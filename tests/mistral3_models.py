"""Tiny random-weight Ministral 3 (mistral3) GGUFs with the real tensor layout (llama's
layers, as tests/smollm3_models.py builds them, every layer roped) and its keys: YaRN
rope with its betas and log multiplier (mscale_all_dim), and llama 4's query temperature
(attention.temperature_scale), whose floor scale is the original context: set small here
so that the prompts cross it several times. The tekken pre-tokenizer, a tied head.
The references: tests/data/mistral3_refs.npz (benchmarks/make_mistral3_refs.py).

    MODELS[name] -> Spec; build(name, path) writes the file and returns its sha256
"""
from __future__ import annotations

from dataclasses import replace

import smollm3_models
from moe_models import write_model
from smollm3_models import N_GREEDY, PROMPT_LENGTHS, Spec, dense_metadata, dense_tensors  # noqa: F401

from llmlite.gguf.constants import Keys
from llmlite.gguf.constants import ValueType as V

MODELS = {
    # Ministral-3-3B's shape in miniature: grouped KV heads, a head size set by key_length
    # (not n_embd / n_head, as its 128 is not 3072 / 32), its rope base
    "mistral3-4l-q8_0": Spec(4, 64, 4, 2, 32, 192, 1e6, seed=31, note="4 layers, YaRN x16, temperature 0.1; Q8_0"),
}
# Ministral 3's YaRN (factor 16, betas 32 and 1, mscale_all_dim 1) and temperature beta
# 0.1; its original context 16384 here 16 (the temperature's floor: positions 0-15 get 1,
# 16-31 1 + 0.1 ln 2, ...)
YARN_FACTOR, ORIG_CTX, TEMP_SCALE = 16.0, 16, 0.1


def prompts(name: str) -> list:
    return smollm3_models.prompts(name, MODELS)


def metadata(s: Spec, temp_scale: float = TEMP_SCALE) -> list[tuple[str, bytes]]:
    from llmlite.gguf.writer import encode

    A, R = Keys.Attention, Keys.Rope

    def k(key):
        return key.format(arch="mistral3")

    f32 = lambda v: encode(V.FLOAT32, v)   # noqa: E731
    kv = [(k(R.SCALING_TYPE), encode(V.STRING, "yarn")), (k(R.SCALING_FACTOR), f32(YARN_FACTOR)),
          (k(R.SCALING_ORIG_CTX_LEN), encode(V.UINT32, ORIG_CTX)),
          (k(R.SCALING_YARN_BETA_FAST), f32(32.0)), (k(R.SCALING_YARN_BETA_SLOW), f32(1.0)),
          (k(R.SCALING_YARN_LOG_MUL), f32(1.0))]
    if temp_scale:
        kv.append((k(A.TEMPERATURE_SCALE), f32(temp_scale)))
    return dense_metadata(s, "mistral3", "tekken") + kv


def build(name: str, path, temp_scale: float = TEMP_SCALE, **changes) -> str:
    """Write model `name` to path (temp_scale 0: no temperature key; changes: Spec fields
    replaced); its sha256"""
    s = replace(MODELS[name], **changes)
    return write_model(path, metadata(s, temp_scale), dense_tensors(s))
