"""Tiny random-weight SmolLM3 (smollm3) GGUFs with the real tensor layout: llama's
attention (separate Q, K, V, adjacent-pair rope) and SwiGLU FFN, every 4th layer
attending without rope (its NoPE layers, llama.cpp's n_no_rope_layer_step), a tied head.
Written through llmlite's writer and quantizers (the same bytes on every run), with
moe_models' byte-level vocabulary, so the tests rebuild them and compare with
llama.cpp's references in tests/data/smollm3_refs.npz (benchmarks/make_smollm3_refs.py).
tests/mistral3_models.py builds its files with the same layers.

    MODELS[name] -> Spec; build(name, path) writes the file and returns its sha256
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from moe_models import draws, n_vocab, seeded_prompts, tokenizer_kv, write_model

from llmlite.gguf.constants import GGMLType as Q
from llmlite.gguf.constants import Keys
from llmlite.gguf.constants import ValueType as V


@dataclass(frozen=True)
class Spec:
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int            # key_length written only where it is not n_embd / n_head
    n_ff: int
    rope_base: float
    types: dict = field(default_factory=dict)   # tensor kind -> ggml type (default Q8_0; norms F32)
    seed: int = 0
    note: str = ""


MODELS = {
    # SmolLM3-3B's proportions in miniature (its 36 layers: NoPE at 3, 7, ..., 35): two
    # periods of three roped layers and a NoPE one, GQA 2:1, head size 32, its rope base
    "smollm3-8l-q8_0": Spec(8, 128, 4, 2, 32, 256, 5e6, seed=21, note="8 layers, NoPE at 3 and 7; Q8_0"),
}

PROMPT_LENGTHS = (6, 28, 52)
N_GREEDY = 48


def prompts(name: str, models: dict = MODELS) -> list[np.ndarray]:
    """the prompts' token ids (no control tokens)"""
    return seeded_prompts(models[name].seed)


def dense_tensors(s: Spec):
    """llama's layers, (name, float32 array in numpy order (outermost first), ggml type)
    in file order, and a tied head"""
    rng = np.random.RandomState(s.seed)
    d, hd, nv = s.n_embd, s.head_dim, n_vocab()
    mat, norm, kind = draws(rng, s.types)
    out = [("token_embd.weight", mat(nv, d, scale=0.15), Q.Q8_0)]
    for il in range(s.n_layer):
        b = f"blk.{il}."
        out += [(b + "attn_norm.weight", norm(d), Q.F32),
                # Q and K scaled so the scores spread (the softmax far from uniform)
                (b + "attn_q.weight", mat(s.n_head * hd, d, scale=2.0), kind("attn_q")),
                (b + "attn_k.weight", mat(s.n_head_kv * hd, d, scale=2.0), kind("attn_k")),
                (b + "attn_v.weight", mat(s.n_head_kv * hd, d), kind("attn_v")),
                (b + "attn_output.weight", mat(d, s.n_head * hd), kind("attn_output")),
                (b + "ffn_norm.weight", norm(d), Q.F32),
                (b + "ffn_gate.weight", mat(s.n_ff, d), kind("ffn_gate")),
                (b + "ffn_up.weight", mat(s.n_ff, d), kind("ffn_up")),
                (b + "ffn_down.weight", mat(d, s.n_ff), kind("ffn_down"))]
    # output_norm sized so that the logits have a std of a few units over the vocabulary
    # with token_embd's short rows
    out.append(("output_norm.weight", (norm(d) * 20.0).astype(np.float32), Q.F32))
    return out


def dense_metadata(s: Spec, arch: str, pre: str) -> list[tuple[str, bytes]]:
    """the hyper-parameters every llama-like file carries, and the vocabulary with its
    pre-tokenizer name"""
    from llmlite.gguf.writer import encode

    L, A, R, T = Keys.LLM, Keys.Attention, Keys.Rope, Keys.Tokenizer

    def k(key):
        return key.format(arch=arch)

    u32 = lambda v: encode(V.UINT32, v)   # noqa: E731
    kv = [(Keys.General.ARCHITECTURE, encode(V.STRING, arch)),
          (Keys.General.NAME, encode(V.STRING, f"tiny {arch}")),
          (k(L.CONTEXT_LENGTH), u32(512)),
          (k(L.EMBEDDING_LENGTH), u32(s.n_embd)),
          (k(L.BLOCK_COUNT), u32(s.n_layer)),
          (k(L.FEED_FORWARD_LENGTH), u32(s.n_ff)),
          (k(A.HEAD_COUNT), u32(s.n_head)),
          (k(A.HEAD_COUNT_KV), u32(s.n_head_kv)),
          (k(R.FREQ_BASE), encode(V.FLOAT32, s.rope_base)),
          (k(A.LAYERNORM_RMS_EPS), encode(V.FLOAT32, 1e-6))]
    if s.head_dim != s.n_embd // s.n_head:
        kv += [(k(A.KEY_LENGTH), u32(s.head_dim)), (k(A.VALUE_LENGTH), u32(s.head_dim)),
               (k(R.DIMENSION_COUNT), u32(s.head_dim))]
    vocab = [(key, encode(V.STRING, pre) if key == T.PRE else v) for key, v in tokenizer_kv()]
    return kv + vocab


def build(name: str, path, **changes) -> str:
    """Write model `name` to path (changes: Spec fields replaced); its sha256"""
    s = replace(MODELS[name], **changes)
    # a real SmolLM3 file's pre-tokenizer (its Llama 3 tokenizer's)
    return write_model(path, dense_metadata(s, "smollm3", "llama-bpe"), dense_tensors(s))
