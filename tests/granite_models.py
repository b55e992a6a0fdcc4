"""Tiny random-weight IBM Granite 3 (granite) GGUFs with the real tensor layout: llama's
layer (RMSNorm, GQA attention with adjacent-pair rope, SwiGLU FFN), a tied head, and
Granite's four multipliers set far from 1 and from each other's defaults, so that the
references see each: the embeddings times embedding_scale, the attention's scores
times attention.scale (in place of 1/sqrt(head_dim)), the attention's and the FFN's
outputs times residual_scale before each residual add, the logits divided by
logit_scale (1/6: a multiplier that rounds). The keys are those Granite 3's converter
writes (no key_length: head_dim is n_embd / n_head). Written through llmlite's writer and
quantizers (the same bytes on every run), with moe_models' byte-level vocabulary under
Granite 3's pre-tokenizer name ("refact"), so the tests rebuild them and compare with
llama.cpp's references in tests/data/granite_refs.npz (benchmarks/make_granite_refs.py).

    MODELS[name] -> Spec; build(name, path) writes the file and returns its sha256
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    n_ff: int
    embedding_scale: float
    residual_scale: float
    attention_scale: float
    logit_scale: float
    n_expert: int = 0        # granitemoe: experts of n_ff rows each (0: granite's dense FFN)
    n_expert_used: int = 0
    n_ff_shexp: int = 0      # granitemoe's shared expert (GraniteMoeShared), added ungated
    types: dict = field(default_factory=dict)   # tensor kind -> ggml type (default Q8_0; 1-D: F32)
    seed: int = 0
    note: str = ""


MODELS = {
    # granite-3.1-2b's multipliers (embedding 12, residual 0.22, logits 8) but for the
    # attention's and the logits' (0.07 against the default 0.25; 6 where 1/6 rounds)
    "granite-2l-q8_0": Spec(2, 64, 4, 2, 128, embedding_scale=12.0, residual_scale=0.22, attention_scale=0.07,
                            logit_scale=6.0, seed=21, note="2 layers, GQA 4/2, Granite's four multipliers; Q8_0"),
    # granite-3.1-3b-a800m's routing (40 experts, top 8, weights renormalised) and its
    # embedding and residual multipliers; an attention scale of 0.2 against the default
    # 0.25 (its 0.015625 with these 16-wide heads leaves the scores so flat that greedy
    # decoding repeats one token)
    "granitemoe-40x8-q8_0": Spec(2, 64, 4, 2, 32, embedding_scale=12.0, residual_scale=0.22, attention_scale=0.2,
                                 logit_scale=6.0, n_expert=40, n_expert_used=8, seed=22,
                                 note="40 experts, top-8, renormalised; Granite's multipliers; Q8_0"),
    # a GraniteMoeShared: a dense SwiGLU expert every token runs, its output added to the
    # routed experts' sum without a gate
    "granitemoe-shared-16x4-q8_0": Spec(2, 64, 4, 2, 32, embedding_scale=12.0, residual_scale=0.22,
                                        attention_scale=0.2, logit_scale=6.0, n_expert=16, n_expert_used=4,
                                        n_ff_shexp=64, seed=23, note="16 experts, top-4, an ungated shared expert"),
}

# the models whose references include llama.cpp's flash-attention logits (attention.scale there too)
FLASH = tuple(MODELS)
PROMPT_LENGTHS = (6, 28, 52)
N_GREEDY = 48
PRE = "refact"   # the pre-tokenizer Granite 3's GGUFs declare (convert_hf_to_gguf's hash of its tokenizer)


def arch(s: Spec) -> str:
    return "granitemoe" if s.n_expert else "granite"


def prompts(name: str) -> list[np.ndarray]:
    """the prompts' token ids (no control tokens)"""
    return seeded_prompts(MODELS[name].seed)


def _tensors(s: Spec):
    """(name, float32 array in numpy order (outermost first), ggml type) in file order"""
    rng = np.random.RandomState(s.seed)
    d, hd, nv = s.n_embd, s.n_embd // s.n_head, n_vocab()
    mat, norm, kind = draws(rng, s.types)
    out = [("token_embd.weight", mat(nv, d, scale=0.15), Q.Q8_0)]
    for il in range(s.n_layer):
        b = f"blk.{il}."
        # attention and FFN outputs scaled up against the residual scale's 0.22, so that
        # each layer still moves the residual stream
        out += [(b + "attn_norm.weight", norm(d), Q.F32),
                (b + "attn_q.weight", mat(s.n_head * hd, d, scale=3.0), kind("attn_q")),
                (b + "attn_k.weight", mat(s.n_head_kv * hd, d, scale=3.0), kind("attn_k")),
                (b + "attn_v.weight", mat(s.n_head_kv * hd, d), kind("attn_v")),
                (b + "attn_output.weight", mat(d, s.n_head * hd, scale=4.0), kind("attn_output")),
                (b + "ffn_norm.weight", norm(d), Q.F32)]
        E, ff = s.n_expert, s.n_ff
        if E:   # a router scaled up so that the softmax is decisive: clear top-k choices
            out += [(b + "ffn_gate_inp.weight", mat(E, d, scale=3.0), Q.F32),
                    (b + "ffn_gate_exps.weight", mat(E, ff, d), kind("ffn_gate_exps")),
                    (b + "ffn_up_exps.weight", mat(E, ff, d), kind("ffn_up_exps")),
                    (b + "ffn_down_exps.weight", mat(E, d, ff, scale=4.0), kind("ffn_down_exps"))]
            if s.n_ff_shexp:
                sh = s.n_ff_shexp
                out += [(b + "ffn_gate_shexp.weight", mat(sh, d), kind("ffn_gate_shexp")),
                        (b + "ffn_up_shexp.weight", mat(sh, d), kind("ffn_up_shexp")),
                        (b + "ffn_down_shexp.weight", mat(d, sh, scale=4.0), kind("ffn_down_shexp"))]
        else:
            out += [(b + "ffn_gate.weight", mat(ff, d), kind("ffn_gate")),
                    (b + "ffn_up.weight", mat(ff, d), kind("ffn_up")),
                    (b + "ffn_down.weight", mat(d, ff, scale=4.0), kind("ffn_down"))]
    # a tied head (Granite 3's): output_norm sized so that the logits, divided by
    # logit_scale, have a std of a few units with token_embd's short rows
    out.append(("output_norm.weight", (norm(d) * 20.0 * s.logit_scale).astype(np.float32), Q.F32))
    return out


def _metadata(s: Spec) -> list[tuple[str, bytes]]:
    from llmlite.gguf.writer import encode

    L, A, R, T = Keys.LLM, Keys.Attention, Keys.Rope, Keys.Tokenizer

    def k(key):
        return key.format(arch=arch(s))

    u32 = lambda v: encode(V.UINT32, v)   # noqa: E731
    f32 = lambda v: encode(V.FLOAT32, v)  # noqa: E731
    kv = [(Keys.General.ARCHITECTURE, encode(V.STRING, arch(s))),
          (Keys.General.NAME, encode(V.STRING, f"tiny {arch(s)}")),
          (k(L.CONTEXT_LENGTH), u32(512)),
          (k(L.EMBEDDING_LENGTH), u32(s.n_embd)),
          (k(L.BLOCK_COUNT), u32(s.n_layer)),
          (k(L.FEED_FORWARD_LENGTH), u32(s.n_ff)),
          (k(A.HEAD_COUNT), u32(s.n_head)),
          (k(A.HEAD_COUNT_KV), u32(s.n_head_kv)),
          (k(R.FREQ_BASE), f32(1e7)),
          (k(R.DIMENSION_COUNT), u32(s.n_embd // s.n_head)),
          (k(A.LAYERNORM_RMS_EPS), f32(1e-5)),
          (k(A.SCALE), f32(s.attention_scale)),
          (k(L.EMBEDDING_SCALE), f32(s.embedding_scale)),
          (k(L.RESIDUAL_SCALE), f32(s.residual_scale)),
          (k(L.LOGIT_SCALE), f32(s.logit_scale))]
    if s.n_expert:   # the experts' width is feed_forward_length's (Granite's converter writes no other)
        kv += [(k(L.EXPERT_COUNT), u32(s.n_expert)), (k(L.EXPERT_USED_COUNT), u32(s.n_expert_used))]
    if s.n_ff_shexp:
        kv.append((k(L.EXPERT_SHARED_FEED_FORWARD_LENGTH), u32(s.n_ff_shexp)))
    tok = [(key, encode(V.STRING, PRE)) if key == T.PRE else (key, v) for key, v in tokenizer_kv()]
    return kv + tok


def build(name: str, path) -> str:
    """Write model `name` to path; its sha256"""
    s = MODELS[name]
    return write_model(path, _metadata(s), _tensors(s))
