#!/usr/bin/env python3
"""Random-weight GGUFs of published model shapes, for speed comparisons at 1-8 B.

Each file has the tensor names, shapes and hyper-parameters of a real model (the
list in SHAPES) with seeded N(0, 0.02) weights (norm weights 1), quantized with
the type rules of `llmlite quantize` (llama-quantize's, Q4_K_M by default)
through our own writer and C quantizers. Speed depends on shapes and types, not
on the weights, so these stand in for the real files without a download.

The vocabulary is synthetic but complete for a BPE tokenizer: the 256 byte
tokens, filler pieces 'tok<N>' up to the model's vocabulary size, then the
family's special tokens and a minimal chat template of the family, so both
llmlite and llama.cpp load the file and `run -p hi` works (the text it writes is
gibberish).

Tensors are generated, quantized and written one at a time (row chunks inside a
tensor), so memory stays near one tensor whatever the model size. Q4_K_M on 2
shared cores: llama3.2-1b 0.74 GiB in 2 min, qwen2.5-1.5b 0.91 GiB in 3 min,
qwen3-4b 2.32 GiB in 5 min, llama3.1-8b 4.58 GiB in 9 min (peak RSS 0.9 GB);
qwen35-0.8b (0.48 GiB), gemma4-e2b (3.19 GiB: its per-layer embedding table is
2.3 B parameters, Q6_K as the tied head) and granite-3.1-2b not yet timed.
Not written: llama3's rope_freqs.weight (long-context rope scaling; llama.cpp
runs without it, and it does not change the speed).

Usage: python benchmarks/shapes.py SHAPE [--type q4_k_m] [--out DIR] [--seed 0]
       python benchmarks/shapes.py --list
Prints the file's path; an existing file of the same parameters (they are in
its name) is kept, not rewritten.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmlite.gguf.constants import GGMLType, ValueType, type_name  # noqa: E402
from llmlite.gguf.writer import TensorOut, encode, write_gguf  # noqa: E402
from llmlite.quantize import FTYPES, _kv_section, plan  # noqa: E402
from llmlite.settings import cache_root  # noqa: E402

# bump when the bytes written for the same parameters change: it is part of the
# file name, so files of an older generator are not taken for current ones
GENERATOR_VERSION = 1
DEFAULT_OUT = cache_root() / "shapes"      # $LLMLITE_CACHE/shapes
WEIGHT_STD = 0.02
# elements generated and quantized at once: bounds the float32 scratch (64 MiB)
CHUNK_ELEMS = 1 << 24

QWEN_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
                 " + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
                 "{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
                   " + message['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
GRANITE_TEMPLATE = ("{% for message in messages %}{{ '<|start_of_role|>' + message['role'] + '<|end_of_role|>'"
                    " + message['content'] + '<|end_of_text|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
                    "{{ '<|start_of_role|>assistant<|end_of_role|>' }}{% endif %}")
GEMMA_TEMPLATE = ("{% for message in messages %}{{ '<|turn>' + message['role'] + '\\n' + message['content']"
                  " + '<turn|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|turn>model\\n' }}{% endif %}")


@dataclass(frozen=True)
class Family:
    """What the models of one tokenizer family share: the pre-tokenizer, the special
    tokens (bos and eos among them), whether BOS is added, the chat template."""
    pre: str
    specials: tuple[str, ...]
    bos: str
    eos: str
    add_bos: bool
    template: str


QWEN = Family("qwen2", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), "<|endoftext|>", "<|im_end|>", False,
              QWEN_TEMPLATE)
# the real file's vocabulary is SentencePiece-like (tokenizer.ggml.model gemma4); a
# byte-level BPE of the same size stands in, with Gemma's turn markers
GEMMA4 = Family("qwen2", ("<pad>", "<eos>", "<bos>", "<|turn>", "<turn|>"), "<bos>", "<turn|>", True,
                GEMMA_TEMPLATE)
# Granite 3's: the pre-tokenizer its GGUFs declare, <|end_of_text|> its BOS and EOS, no BOS added
GRANITE = Family("refact", ("<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>"), "<|end_of_text|>",
                 "<|end_of_text|>", False, GRANITE_TEMPLATE)
LLAMA3 = Family("llama-bpe", ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                              "<|eot_id|>"), "<|begin_of_text|>", "<|eot_id|>", True, LLAMA3_TEMPLATE)


@dataclass(frozen=True)
class Shape:
    arch: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    tied: bool            # no output.weight: the head is token_embd
    family: Family
    rope_base: float
    rms_eps: float
    n_ctx_train: int
    qkv_bias: bool = False    # qwen2's attn_q/k/v.bias
    qk_norm: bool = False     # qwen3's attn_q_norm/attn_k_norm
    n_expert: int = 0         # a mixture of experts: ffn_*_exps of n_expert matrices each, and a router
    n_expert_used: int = 0
    n_ff_exp: int = 0         # one expert's FFN width
    n_rot: int = 0            # rotated dims of a head (0: all of head_dim)
    # qwen35: gated delta-net (linear attention) layers, a gated full-attention one every
    # full_attn_interval-th; the delta-net's head width, key heads, value heads, conv taps
    full_attn_interval: int = 0
    rope_sections: tuple = ()   # multi-section rope: pairs per section (t, h, w, e)
    ssm_d_state: int = 0
    ssm_n_group: int = 0
    ssm_n_v_head: int = 0
    ssm_d_conv: int = 0
    # gemma4: sliding-window layers (head_dim_swa wide) with a full one every
    # swa_period-th (head_dim wide, a rot_frac_full share rotated); the last n_kv_shared
    # layers read an earlier layer's K/V and have an FFN twice n_ff; per-layer
    # token embeddings n_embd_per_layer wide; the final logit softcap
    head_dim_swa: int = 0
    swa_period: int = 0
    sliding_window: int = 0
    rope_base_swa: float = 0.0
    rot_frac_full: float = 1.0
    n_kv_shared: int = 0
    n_embd_per_layer: int = 0
    softcap: float = 0.0
    # granite: its embedding, residual, attention and logit scales (granite_kvs)
    multipliers: tuple = ()

    def is_full_attention(self, il: int) -> bool:
        """qwen35: the layers with attention (not the delta-net); gemma4: the ones without the window"""
        period = self.full_attn_interval or self.swa_period
        return not period or (il + 1) % period == 0

    def has_own_kv(self, il: int) -> bool:
        return il < self.n_layer - self.n_kv_shared

    def n_ff_of(self, il: int) -> int:
        """gemma4's layers that share K/V have a double-wide FFN"""
        return self.n_ff * (1 if self.has_own_kv(il) else 2)


SHAPES = {
    "qwen2.5-1.5b": Shape("qwen2", 28, 1536, 8960, 12, 2, 128, 151936, True, QWEN, 1e6, 1e-6, 32768,
                          qkv_bias=True),
    # Qwen3.5-0.8B: 24 layers 1024 wide (llama.cpp's qwen35 names 24 x 1024 "0.8B"), FFN
    # 3584, 8/2 gated heads of 256 (64 dims roped in sections 11:11:10:0), delta-net heads
    # of 128 (16 key, 16 value), conv of 4, a full-attention layer every 4th: the widths
    # benchmarks/moe_real_width.py --arch qwen35 uses. Not in the sources here, from the
    # published config: the vocabulary of 248320, rope base 1e7, context 262144, the
    # tied head. Its tokenizer (pre 'qwen35') stands in as qwen2's: speed does not see it
    "qwen35-0.8b": Shape("qwen35", 24, 1024, 3584, 8, 2, 256, 248320, True, QWEN, 1e7, 1e-6, 262144,
                         n_rot=64, rope_sections=(11, 11, 10, 0), full_attn_interval=4, ssm_d_state=128,
                         ssm_n_group=16, ssm_n_v_head=16, ssm_d_conv=4),
    # Gemma 4 E2B: 35 layers (llama.cpp's gemma4 names 35 layers "E2B"), vocabulary
    # 262144. Not in the sources here (tests/gemma4_models.py has the structure in
    # miniature, no helper has the real widths), from the published config: 1536 wide,
    # FFN 6144 (12288 on the 20 layers that share K/V), 8 heads and 1 KV head, of 256 on
    # sliding layers (window 512, rope base 1e4) and 512 on every 5th, full layer (a
    # quarter roped, base 1e6), per-layer embeddings 256 wide, softcap 30, the tied head
    "gemma4-e2b": Shape("gemma4", 35, 1536, 6144, 8, 1, 512, 262144, True, GEMMA4, 1e6, 1e-6, 131072,
                        head_dim_swa=256, swa_period=5, sliding_window=512, rope_base_swa=1e4, rot_frac_full=0.25,
                        n_kv_shared=20, n_embd_per_layer=256, softcap=30.0),
    "llama3.2-1b": Shape("llama", 16, 2048, 8192, 32, 8, 64, 128256, True, LLAMA3, 5e5, 1e-5, 131072),
    "qwen3-4b": Shape("qwen3", 36, 2560, 9728, 32, 8, 128, 151936, True, QWEN, 1e6, 1e-6, 40960, qk_norm=True),
    "llama3.1-8b": Shape("llama", 32, 4096, 14336, 32, 8, 128, 128256, False, LLAMA3, 5e5, 1e-5, 131072),
    # Qwen3-30B-A3B's layer in miniature (its heads of 128, its expert FFN of 768, top-8
    # routing) at half the width, 12 layers and 64 experts: 2.2 B parameters,
    # 0.45 B active per token (output head included); its n_ff is the dense FFN width
    # the real file declares but no tensor uses
    # Granite 3.1 2B: 40 layers 2048 wide (llama.cpp's granite names 40 x 2048 "2B"). Not
    # in the sources here, from the published config: FFN 8192, 32/8 heads of 64, the
    # vocabulary of 49155, rope base 1e7, context 131072, the tied head, its multipliers
    # (embedding 12, residual 0.22, attention 0.015625, logits 8)
    "granite-3.1-2b": Shape("granite", 40, 2048, 8192, 32, 8, 64, 49155, True, GRANITE, 1e7, 1e-5, 131072,
                            multipliers=(12.0, 0.22, 0.015625, 8.0)),
    "qwen3moe-2b-a0.4b": Shape("qwen3moe", 12, 1024, 3072, 16, 4, 128, 151936, False, QWEN, 1e6, 1e-6, 40960,
                               qk_norm=True, n_expert=64, n_expert_used=8, n_ff_exp=768),
}


def scaled(shape: Shape, **overrides) -> Shape:
    """shape with some fields replaced (a small variant for tests: fewer layers, narrower)"""
    return dataclasses.replace(shape, **overrides)


# ------------------------------------------------------------------ the vocabulary

def byte_tokens() -> list[str]:
    """GPT-2's byte-level alphabet: every byte as the code point BPE vocabularies
    store it under (printable Latin-1 as itself, the rest shifted past 255)"""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out, shift = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + shift)
            shift += 1
    return [out[b] for b in range(256)]


def vocab_kvs(shape: Shape) -> list[tuple[str, object, object]]:
    """tokenizer.* key/values: bytes, filler, then the family's special tokens (control)"""
    fam = shape.family
    n_filler = shape.n_vocab - 256 - len(fam.specials)
    if n_filler < 0:
        raise ValueError(f"a vocabulary of {shape.n_vocab} has no room for 256 bytes and the special tokens")
    tokens = byte_tokens() + [f"tok{i}" for i in range(n_filler)] + list(fam.specials)
    types = [1] * (256 + n_filler) + [3] * len(fam.specials)   # 1 normal, 3 control
    ids = {t: i for i, t in enumerate(tokens)}
    S, A = ValueType.STRING, ValueType.ARRAY
    return [("tokenizer.ggml.model", S, "gpt2"), ("tokenizer.ggml.pre", S, fam.pre),
            ("tokenizer.ggml.tokens", (A, S), tokens), ("tokenizer.ggml.token_type", (A, ValueType.INT32), types),
            # no merges: text tokenizes to byte tokens, which is all a speed benchmark needs
            ("tokenizer.ggml.merges", (A, S), []),
            ("tokenizer.ggml.bos_token_id", ValueType.UINT32, ids[fam.bos]),
            ("tokenizer.ggml.eos_token_id", ValueType.UINT32, ids[fam.eos]),
            ("tokenizer.ggml.add_bos_token", ValueType.BOOL, fam.add_bos),
            ("tokenizer.chat_template", S, fam.template)]


# ------------------------------------------------------------------ tensors and metadata

def model_kvs(name: str, shape: Shape) -> list[tuple[str, object, object]]:
    a, U, F = shape.arch, ValueType.UINT32, ValueType.FLOAT32
    kvs = {k: (vt, v) for k, vt, v in [
        ("general.architecture", ValueType.STRING, a), ("general.name", ValueType.STRING, f"{name} (random)"),
        (f"{a}.block_count", U, shape.n_layer), (f"{a}.context_length", U, shape.n_ctx_train),
        (f"{a}.embedding_length", U, shape.n_embd), (f"{a}.feed_forward_length", U, shape.n_ff),
        (f"{a}.attention.head_count", U, shape.n_head), (f"{a}.attention.head_count_kv", U, shape.n_head_kv),
        (f"{a}.attention.key_length", U, shape.head_dim), (f"{a}.attention.value_length", U, shape.head_dim),
        (f"{a}.rope.dimension_count", U, shape.n_rot or shape.head_dim), (f"{a}.rope.freq_base", F, shape.rope_base),
        (f"{a}.attention.layer_norm_rms_epsilon", F, shape.rms_eps), (f"{a}.vocab_size", U, shape.n_vocab),
        *([(f"{a}.expert_count", U, shape.n_expert), (f"{a}.expert_used_count", U, shape.n_expert_used),
           (f"{a}.expert_feed_forward_length", U, shape.n_ff_exp)] if shape.n_expert else []),
        *(qwen35_kvs(shape) if shape.full_attn_interval else []),
        *(gemma4_kvs(shape) if shape.swa_period else []),
        *(granite_kvs(shape) if shape.multipliers else [])]}   # later entries replace earlier ones
    return [(k, vt, v) for k, (vt, v) in kvs.items()] + vocab_kvs(shape)


def qwen35_kvs(shape: Shape) -> list[tuple[str, object, object]]:
    """the delta-net's sizes, the full-attention interval, the rope sections"""
    a, U = shape.arch, ValueType.UINT32
    return [(f"{a}.rope.dimension_sections", (ValueType.ARRAY, ValueType.INT32), list(shape.rope_sections)),
            (f"{a}.ssm.conv_kernel", U, shape.ssm_d_conv), (f"{a}.ssm.state_size", U, shape.ssm_d_state),
            (f"{a}.ssm.group_count", U, shape.ssm_n_group), (f"{a}.ssm.time_step_rank", U, shape.ssm_n_v_head),
            (f"{a}.ssm.inner_size", U, shape.ssm_d_state * shape.ssm_n_v_head),
            (f"{a}.full_attention_interval", U, shape.full_attn_interval)]


def granite_kvs(shape: Shape) -> list[tuple[str, object, object]]:
    """the four multipliers"""
    a, F = shape.arch, ValueType.FLOAT32
    return [(f"{a}.{k}", F, v) for k, v in zip(("embedding_scale", "residual_scale", "attention.scale", "logit_scale"),
                                                shape.multipliers)]


def gemma4_kvs(shape: Shape) -> list[tuple[str, object, object]]:
    """per-layer FFN widths (an array: the K/V-sharing layers' are double), the sliding
    layers' head size, rope and window, the shared-K/V count, per-layer embeddings, softcap"""
    a, U, F = shape.arch, ValueType.UINT32, ValueType.FLOAT32
    layers = range(shape.n_layer)
    return [(f"{a}.feed_forward_length", (ValueType.ARRAY, ValueType.INT32), [shape.n_ff_of(i) for i in layers]),
            (f"{a}.attention.key_length_swa", U, shape.head_dim_swa),
            (f"{a}.attention.value_length_swa", U, shape.head_dim_swa),
            (f"{a}.rope.dimension_count_swa", U, shape.head_dim_swa), (f"{a}.rope.freq_base_swa", F, shape.rope_base_swa),
            (f"{a}.attention.sliding_window", U, shape.sliding_window),
            (f"{a}.attention.sliding_window_pattern", (ValueType.ARRAY, ValueType.BOOL),
             [not shape.is_full_attention(i) for i in layers]),
            (f"{a}.attention.shared_kv_layers", U, shape.n_kv_shared),
            (f"{a}.embedding_length_per_layer_input", U, shape.n_embd_per_layer),
            (f"{a}.final_logit_softcapping", F, shape.softcap)]


def tensor_shapes(shape: Shape) -> dict[str, tuple[int, ...]]:
    """name -> GGUF shape (ne[0], the row length, first)"""
    E, V = shape.n_embd, shape.n_vocab
    out = {"token_embd.weight": (E, V)}
    if shape.swa_period:
        out.update(gemma4_globals(shape))
    out["output_norm.weight"] = (E,)
    if not shape.tied:
        out["output.weight"] = (E, V)
    layer = qwen35_layer if shape.full_attn_interval else gemma4_layer if shape.swa_period else dense_layer
    for i in range(shape.n_layer):
        out.update({f"blk.{i}.{n}": s for n, s in layer(shape, i).items()})
    return out


def dense_layer(shape: Shape, i: int) -> dict[str, tuple[int, ...]]:
    """llama / qwen2 / qwen3 / qwen3moe: attention, then a SwiGLU FFN or experts"""
    E, F = shape.n_embd, shape.n_ff
    q, kv = shape.n_head * shape.head_dim, shape.n_head_kv * shape.head_dim
    out = {"attn_norm.weight": (E,), "attn_q.weight": (E, q), "attn_k.weight": (E, kv), "attn_v.weight": (E, kv),
           "attn_output.weight": (q, E), "ffn_norm.weight": (E,)}
    if shape.n_expert:
        X, FX = shape.n_expert, shape.n_ff_exp
        out.update({"ffn_gate_inp.weight": (E, X), "ffn_gate_exps.weight": (E, FX, X),
                    "ffn_up_exps.weight": (E, FX, X), "ffn_down_exps.weight": (FX, E, X)})
    else:
        out.update({"ffn_gate.weight": (E, F), "ffn_up.weight": (E, F), "ffn_down.weight": (F, E)})
    if shape.qkv_bias:
        out.update({"attn_q.bias": (q,), "attn_k.bias": (kv,), "attn_v.bias": (kv,)})
    if shape.qk_norm:
        out.update({"attn_q_norm.weight": (shape.head_dim,), "attn_k_norm.weight": (shape.head_dim,)})
    return out


def qwen35_layer(shape: Shape, i: int) -> dict[str, tuple[int, ...]]:
    """a gated delta-net (fused qkv, its conv kernel, z gate, alpha / beta, dt bias and A,
    gated norm) or, every full_attn_interval-th, attention with Q's per-head gate
    (attn_q twice as tall) and q/k norms; then a SwiGLU FFN after post_attention_norm"""
    E, F, hd = shape.n_embd, shape.n_ff, shape.head_dim
    if shape.is_full_attention(i):
        q, kv = shape.n_head * hd, shape.n_head_kv * hd
        mix = {"attn_q.weight": (E, 2 * q), "attn_k.weight": (E, kv), "attn_v.weight": (E, kv),
               "attn_output.weight": (q, E), "attn_q_norm.weight": (hd,), "attn_k_norm.weight": (hd,)}
    else:
        nv = shape.ssm_n_v_head
        key, value = shape.ssm_d_state * shape.ssm_n_group, shape.ssm_d_state * nv
        mix = {"attn_qkv.weight": (E, 2 * key + value), "attn_gate.weight": (E, value),
               "ssm_conv1d.weight": (shape.ssm_d_conv, 2 * key + value), "ssm_dt.bias": (nv,), "ssm_a": (nv,),
               "ssm_beta.weight": (E, nv), "ssm_alpha.weight": (E, nv), "ssm_norm.weight": (shape.ssm_d_state,),
               "ssm_out.weight": (value, E)}
    return {"attn_norm.weight": (E,), **mix, "post_attention_norm.weight": (E,), "ffn_gate.weight": (E, F),
            "ffn_up.weight": (E, F), "ffn_down.weight": (F, E)}


def gemma4_globals(shape: Shape) -> dict[str, tuple[int, ...]]:
    """the full layers' rope factors and the per-layer token embeddings (table, projection, norm)"""
    E, V, P = shape.n_embd, shape.n_vocab, shape.n_embd_per_layer
    return {"rope_freqs.weight": (shape.head_dim // 2,), "per_layer_token_embd.weight": (shape.n_layer * P, V),
            "per_layer_model_proj.weight": (E, shape.n_layer * P), "per_layer_proj_norm.weight": (P,)}


def gemma4_layer(shape: Shape, i: int) -> dict[str, tuple[int, ...]]:
    """attention (no K/V of its own in the last n_kv_shared layers), a GeGLU FFN, the
    per-layer embedding's gate and projection, the layer's output scale"""
    E, F, P = shape.n_embd, shape.n_ff_of(i), shape.n_embd_per_layer
    hd = shape.head_dim if shape.is_full_attention(i) else shape.head_dim_swa
    q, kv = shape.n_head * hd, shape.n_head_kv * hd
    own = shape.has_own_kv(i)
    return {"attn_norm.weight": (E,), "attn_q.weight": (E, q),
            **({"attn_k.weight": (E, kv), "attn_v.weight": (E, kv)} if own else {}),
            "attn_output.weight": (q, E), "attn_q_norm.weight": (hd,),
            **({"attn_k_norm.weight": (hd,)} if own else {}),
            "post_attention_norm.weight": (E,), "ffn_norm.weight": (E,), "ffn_gate.weight": (E, F),
            "ffn_up.weight": (E, F), "ffn_down.weight": (F, E), "post_ffw_norm.weight": (E,),
            "inp_gate.weight": (E, P), "proj.weight": (P, E), "post_norm.weight": (E,),
            "layer_output_scale.weight": (1,)}


@dataclass(frozen=True)
class _F32Tensor:
    """a tensor as quantize.plan reads it: all start as F32"""
    shape: tuple
    type: int = GGMLType.F32

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return 4 * self.n_elements


class _Source:
    """the model to be, as quantize.plan's input (.tensors and .get)"""

    def __init__(self, kvs, shapes):
        self.meta = {k: v for k, _, v in kvs}
        self.tensors = {n: _F32Tensor(s) for n, s in shapes.items()}

    def get(self, key, default=None):
        return self.meta.get(key, default)


def tensor_values(name: str, shape: tuple, seed: int, start: int, count: int) -> np.ndarray:
    """rows start .. start+count of a tensor: norm weights 1, the rest N(0, WEIGHT_STD)
    (but the few of fixed_values). Each chunk has its own stream (seed, name, first
    row): a chunk is generated without the ones before it (CHUNK_ELEMS is part of the
    stream: changing it changes the bytes, so it goes with a new GENERATOR_VERSION)."""
    n0 = shape[0]
    if name.endswith("norm.weight"):
        return np.ones((count, n0), np.float32)
    fixed = fixed_values(name, n0)
    if fixed is not None:
        return np.broadcast_to(fixed, (count, n0)).astype(np.float32)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), start])
    x = rng.standard_normal((count, n0), dtype=np.float32)
    x *= WEIGHT_STD
    return x


def fixed_values(name: str, n0: int) -> np.ndarray | None:
    """the tensors random values would make meaningless: qwen35's A (negative, or the
    delta-net's state grows without bound), gemma4's output scale (1) and rope factors
    (1 for the rotated quarter of the pairs, 1e30 for the rest, as the real file has them;
    near 0 they would divide the rope's angles)"""
    if name.endswith("ssm_a"):
        return np.full(n0, -1.0, np.float32)
    if name.endswith("layer_output_scale.weight"):
        return np.ones(n0, np.float32)
    if name == "rope_freqs.weight":
        n_rot = n0 // 4       # gemma4-e2b's rot_frac_full; the tests' tiny variants keep it
        return np.array([1.0] * n_rot + [1e30] * (n0 - n_rot), np.float32)
    return None


def _tensor_bytes(name: str, shape: tuple, dst_type: int, seed: int) -> np.ndarray:
    from llmlite import _lib

    n0 = shape[0]
    rows = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    step = max(1, CHUNK_ELEMS // n0)
    parts = [_lib.quantize_rows(dst_type, tensor_values(name, shape, seed, r, min(step, rows - r)))
             for r in range(0, rows, step)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def build(path, name: str, shape: Shape, ftype: str = "q4_k_m", seed: int = 0, progress=None) -> dict:
    """Write the model to path (atomically); returns {tensors, bytes, seconds, types}."""
    t0 = time.perf_counter()
    kvs = model_kvs(name, shape)
    p = plan(_Source(kvs, tensor_shapes(shape)), ftype)
    encoded = _kv_section([(k, encode(vt, v)) for k, vt, v in kvs], FTYPES[ftype][0], None)
    write_gguf(path, encoded, [TensorOut(e.name, e.shape, e.dst_type, e.dst_bytes) for e in p],
               lambda i: _tensor_bytes(p[i].name, p[i].shape, p[i].dst_type, seed), progress)
    types: dict[str, int] = {}
    for e in p:
        types[type_name(e.dst_type)] = types.get(type_name(e.dst_type), 0) + 1
    return {"tensors": len(p), "bytes": sum(e.dst_bytes for e in p), "seconds": time.perf_counter() - t0,
            "types": types}


def file_name(name: str, ftype: str, seed: int) -> str:
    """every parameter that changes the bytes is in the name, so an existing file is current"""
    return f"{name}-random-{ftype}-seed{seed}-g{GENERATOR_VERSION}.gguf"


def ensure(name: str, ftype: str = "q4_k_m", out=DEFAULT_OUT, seed: int = 0, log=None) -> Path:
    """The file of this shape, type and seed under out, built unless already there."""
    if name not in SHAPES:
        raise KeyError(name)
    path = Path(out).expanduser() / file_name(name, ftype, seed)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)

    def progress(done, total):
        if log:
            log(f"\r{name}: {done}/{total} tensors")
    info = build(path, name, SHAPES[name], ftype, seed, progress)
    if log:
        log(f"\r{name} {ftype}: {info['bytes'] / 2**30:.2f} GiB, {info['tensors']} tensors in "
            f"{info['seconds']:.0f} s ({', '.join(f'{k} {v}' for k, v in sorted(info['types'].items()))})\n")
    return path


def list_extra(s: Shape) -> str:
    """what --list says of a qwen35's delta-net or a gemma4's sliding layers"""
    if s.full_attn_interval:
        return (f" every {s.full_attn_interval}th layer, delta-net {s.ssm_n_group}/{s.ssm_n_v_head} heads of "
                f"{s.ssm_d_state} elsewhere")
    if s.swa_period:
        return (f" every {s.swa_period}th layer, of {s.head_dim_swa} (window {s.sliding_window}) elsewhere, "
                f"{s.n_kv_shared} sharing K/V, per-layer embeddings {s.n_embd_per_layer}")
    return ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shape", nargs="?", help="one of --list")
    ap.add_argument("--type", default="q4_k_m", help=f"one of {', '.join(FTYPES)} (default q4_k_m)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"folder (default {DEFAULT_OUT})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="list the shapes")
    a = ap.parse_args(argv)
    if a.list:
        for n, s in SHAPES.items():
            ffn = (f"{s.n_expert} experts (top {s.n_expert_used}) of FFN {s.n_ff_exp}" if s.n_expert
                   else f"FFN {s.n_ff}")
            print(f"{n:17s} {s.arch:8s} {s.n_layer} layers, {s.n_embd} wide, {ffn}, "
                  f"{s.n_head}/{s.n_head_kv} heads of {s.head_dim}{list_extra(s)}, vocab {s.n_vocab}, "
                  f"{'tied' if s.tied else 'separate output'}")
        return 0
    if a.shape not in SHAPES:
        print(f"error: unknown shape {a.shape!r}: one of {', '.join(SHAPES)}", file=sys.stderr)
        return 2
    if a.type not in FTYPES:
        print(f"error: unknown type {a.type!r}: one of {', '.join(FTYPES)}", file=sys.stderr)
        return 2
    try:
        path = ensure(a.shape, a.type, a.out, a.seed, log=lambda s: print(s, end="", file=sys.stderr, flush=True))
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
