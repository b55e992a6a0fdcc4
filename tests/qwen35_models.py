"""Tiny random-weight Qwen 3.5 (qwen35) GGUFs with the real tensor layout: gated
delta-net (linear attention) layers with a fused qkv projection, its short causal
convolution (F32 kernel), the z gate, alpha / beta with the dt bias and A, the gated
RMSNorm; a full-attention layer every `interval`-th (Q with its per-head output gate
interleaved, q/k norms, interleaved multi-section RoPE on part of the head); a dense
SwiGLU FFN after post_attention_norm, or (a Spec with experts: qwen35moe_models') a
softmax top-k mixture of experts with a sigmoid-gated shared expert. Written through llmlite's writer and quantizers
(the same bytes on every run), with moe_models' byte-level vocabulary, so the tests
rebuild them and compare with llama.cpp's references in tests/data/qwen35_refs.npz
(benchmarks/make_qwen35_refs.py).

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
    interval: int            # every interval-th layer (il % interval == interval - 1) full attention
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    sections: tuple          # rope.dimension_sections (pairs per section: t, h, w, e)
    d_state: int             # the delta-net's head width (keys and values)
    n_group: int             # its key heads
    n_v_head: int            # its value heads (time_step_rank), a multiple of n_group
    d_conv: int
    n_ff: int
    types: dict = field(default_factory=dict)   # tensor kind -> ggml type (default Q8_0; 1-D and conv: F32)
    n_mtp: int = 0           # multi-token-prediction blocks after the trunk (nextn_predict_layers)
    arch: str = "qwen35"     # qwen35moe: a mixture of experts in place of every dense FFN
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    n_ff_shexp: int = 0      # the sigmoid-gated shared expert's width
    fused_gate_up: bool = False   # the experts' gate and up rows in one ffn_gate_up_exps (gate first)
    seed: int = 0
    note: str = ""


MODELS = {
    # Qwen3.5-0.8B's proportions in miniature: 3 linear-attention layers then a full one
    # (its interval 4), twice as many value heads as key heads (the 9B's ratio), a head
    # width of 64 (ggml_vec_dot_f32's 64-float steps, as the published 128), a quarter of
    # the attention head rotated with sections in the published 11:11:10:0 proportion
    "qwen35-4l-q8_0": Spec(4, 4, 64, 4, 2, 32, 8, (2, 1, 1, 0), 64, 2, 4, 4, 128, seed=11,
                           note="3 delta-net layers + 1 gated full-attention layer; Q8_0"),
}

PROMPT_LENGTHS = (6, 28, 52)
N_GREEDY = 48


def prompts(name: str) -> list[np.ndarray]:
    """the prompts' token ids (no control tokens)"""
    return spec_prompts(MODELS[name])


def spec_prompts(s: Spec) -> list[np.ndarray]:
    """a spec's prompts (qwen35moe_models' too)"""
    return seeded_prompts(s.seed)


def is_recurrent(s: Spec, il: int) -> bool:
    return (il + 1) % s.interval != 0


def _tensors(s: Spec):
    """(name, float32 array in numpy order (outermost first), ggml type) in file order"""
    rng = np.random.RandomState(s.seed)
    d, hd, nv = s.n_embd, s.head_dim, n_vocab()
    key_dim, value_dim = s.d_state * s.n_group, s.d_state * s.n_v_head
    mat, norm, kind = draws(rng, s.types)

    def attention(b):   # Q with each head's gate, K, V, the output, q/k norms
        return [(b + "attn_q.weight", mat(2 * s.n_head * hd, d, scale=2.0), kind("attn_q")),
                (b + "attn_k.weight", mat(s.n_head_kv * hd, d, scale=2.0), kind("attn_k")),
                (b + "attn_v.weight", mat(s.n_head_kv * hd, d), kind("attn_v")),
                (b + "attn_output.weight", mat(d, s.n_head * hd), kind("attn_output")),
                (b + "attn_q_norm.weight", norm(hd), Q.F32),
                (b + "attn_k_norm.weight", norm(hd), Q.F32)]

    def ffn(b):
        if s.n_expert:
            return [(b + "post_attention_norm.weight", norm(d), Q.F32)] + experts(b)
        return [(b + "post_attention_norm.weight", norm(d), Q.F32),
                (b + "ffn_gate.weight", mat(s.n_ff, d), kind("ffn_gate")),
                (b + "ffn_up.weight", mat(s.n_ff, d), kind("ffn_up")),
                (b + "ffn_down.weight", mat(d, s.n_ff), kind("ffn_down"))]

    def experts(b):   # the router (F32, as published), the routed experts, the gated shared one
        E, ff, sh = s.n_expert, s.n_ff_exp, s.n_ff_shexp
        router, gate, up = mat(E, d, scale=3.0), mat(E, ff, d, scale=2.0), mat(E, ff, d, scale=2.0)
        if s.fused_gate_up:   # the same rows, so the same quantized blocks as the separate pair
            gate_up = [(b + "ffn_gate_up_exps.weight", np.concatenate([gate, up], 1), kind("ffn_gate_exps"))]
        else:
            gate_up = [(b + "ffn_gate_exps.weight", gate, kind("ffn_gate_exps")),
                       (b + "ffn_up_exps.weight", up, kind("ffn_up_exps"))]
        return [(b + "ffn_gate_inp.weight", router, Q.F32)] + gate_up + [
                (b + "ffn_down_exps.weight", mat(E, d, ff), kind("ffn_down_exps")),
                (b + "ffn_gate_inp_shexp.weight", mat(d, scale=2.0), Q.F32),
                (b + "ffn_gate_shexp.weight", mat(sh, d), kind("ffn_gate_shexp")),
                (b + "ffn_up_shexp.weight", mat(sh, d), kind("ffn_up_shexp")),
                (b + "ffn_down_shexp.weight", mat(d, sh), kind("ffn_down_shexp"))]

    out = [("token_embd.weight", mat(nv, d, scale=0.15), Q.Q8_0)]
    for il in range(s.n_layer):
        b = f"blk.{il}."
        out.append((b + "attn_norm.weight", norm(d), Q.F32))
        if is_recurrent(s, il):
            n_v = s.n_v_head
            out += [(b + "attn_qkv.weight", mat(2 * key_dim + value_dim, d, scale=2.0), kind("attn_qkv")),
                    (b + "attn_gate.weight", mat(value_dim, d), kind("attn_gate")),
                    # the kernel over d_conv taps, scaled so the convolution mixes them
                    (b + "ssm_conv1d.weight", mat(2 * key_dim + value_dim, s.d_conv, scale=1.5), Q.F32),
                    (b + "ssm_dt.bias", (0.5 * rng.standard_normal(n_v)).astype(np.float32), Q.F32),
                    # A = -exp(A_log): decays between exp(-2.5 x softplus) and about 1
                    (b + "ssm_a", (-np.exp(rng.uniform(-3, 1, n_v))).astype(np.float32), Q.F32),
                    (b + "ssm_beta.weight", mat(n_v, d, scale=2.0), kind("ssm_beta")),
                    (b + "ssm_alpha.weight", mat(n_v, d, scale=2.0), kind("ssm_alpha")),
                    (b + "ssm_norm.weight", norm(s.d_state), Q.F32),
                    (b + "ssm_out.weight", mat(d, value_dim), kind("ssm_out"))]
        else:
            out += attention(b)
        out += ffn(b)
    # a tied head (Qwen3.5-0.8B's): output_norm sized so that the logits have a std of a
    # few units over the vocabulary with token_embd's short rows
    out.append(("output_norm.weight", (norm(d) * 20.0).astype(np.float32), Q.F32))
    for il in range(s.n_layer, s.n_layer + s.n_mtp):   # after the trunk's: its weights unchanged
        b = f"blk.{il}."
        out += [(b + "attn_norm.weight", norm(d), Q.F32)] + attention(b) + ffn(b)
        out += [(b + "nextn.eh_proj.weight", mat(d, 2 * d), kind("eh_proj")),
                (b + "nextn.enorm.weight", norm(d), Q.F32), (b + "nextn.hnorm.weight", norm(d), Q.F32)]
    return out


def _metadata(s: Spec) -> list[tuple[str, bytes]]:
    from llmlite.gguf.writer import encode

    L, A, R, S = Keys.LLM, Keys.Attention, Keys.Rope, Keys.SSM
    arch = s.arch

    def k(key):
        return key.format(arch=arch)

    u32 = lambda v: encode(V.UINT32, v)   # noqa: E731
    kv = [(Keys.General.ARCHITECTURE, encode(V.STRING, arch)),
          (Keys.General.NAME, encode(V.STRING, f"tiny {arch}")),
          (k(L.CONTEXT_LENGTH), u32(512)),
          (k(L.EMBEDDING_LENGTH), u32(s.n_embd)),
          (k(L.BLOCK_COUNT), u32(s.n_layer + s.n_mtp)),
          (k(L.FEED_FORWARD_LENGTH), u32(s.n_ff)),
          (k(A.HEAD_COUNT), u32(s.n_head)),
          (k(A.HEAD_COUNT_KV), u32(s.n_head_kv)),
          (k(A.KEY_LENGTH), u32(s.head_dim)),
          (k(A.VALUE_LENGTH), u32(s.head_dim)),
          (k(R.FREQ_BASE), encode(V.FLOAT32, 1e7)),
          (k(R.DIMENSION_COUNT), u32(s.n_rot)),
          (k(R.DIMENSION_SECTIONS), encode((V.ARRAY, V.INT32), list(s.sections))),
          (k(A.LAYERNORM_RMS_EPS), encode(V.FLOAT32, 1e-6)),
          (k(S.CONV_KERNEL), u32(s.d_conv)),
          (k(S.STATE_SIZE), u32(s.d_state)),
          (k(S.GROUP_COUNT), u32(s.n_group)),
          (k(S.TIME_STEP_RANK), u32(s.n_v_head)),
          (k(S.INNER_SIZE), u32(s.d_state * s.n_v_head)),
          (k(L.FULL_ATTENTION_INTERVAL), u32(s.interval))]
    if s.n_expert:
        kv += [(k(L.EXPERT_COUNT), u32(s.n_expert)), (k(L.EXPERT_USED_COUNT), u32(s.n_expert_used)),
               (k(L.EXPERT_FEED_FORWARD_LENGTH), u32(s.n_ff_exp)),
               (k(L.EXPERT_SHARED_FEED_FORWARD_LENGTH), u32(s.n_ff_shexp))]
    if s.n_mtp:
        kv.append((k(L.NEXTN_PREDICT_LAYERS), u32(s.n_mtp)))
    return kv + tokenizer_kv()


def build(name: str, path, **changes) -> str:
    """Write model `name` to path (changes: Spec fields replaced, e.g. n_mtp=1); its sha256"""
    return build_spec(replace(MODELS[name], **changes), path)


def build_spec(s: Spec, path) -> str:
    """Write the model of spec s to path (qwen35moe_models' too); its sha256"""
    return write_model(path, _metadata(s), _tensors(s))
