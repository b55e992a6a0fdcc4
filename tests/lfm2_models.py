"""Tiny random-weight Liquid LFM2 (lfm2) GGUFs with the real tensor layout: short-
convolution layers (in_proj to b|c|x, an F32 kernel of l_cache taps a channel, out_proj;
head_count_kv 0 in the per-layer array marks them) between attention layers (separate
Q/K/V, q/k norms, NEOX rope), a dense SwiGLU FFN in every layer, the final norm named
token_embd_norm and the head tied to token_embd, as the published files have them.
Written through llmlite's writer and quantizers (the same bytes on every run), with
moe_models' byte-level vocabulary declaring the "lfm2" pre-tokenizer, so the tests
rebuild them and compare with llama.cpp's references in tests/data/lfm2_refs.npz
(benchmarks/make_lfm2_refs.py).

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
    kinds: str               # a letter a layer: c a short-convolution layer, a an attention one
    n_embd: int
    n_head: int
    n_head_kv: int           # the attention layers' (the conv layers' are 0)
    l_cache: int             # the convolution's taps
    n_ff: int
    types: dict = field(default_factory=dict)   # tensor kind -> ggml type (default Q8_0; 1-D and conv: F32)
    sliding_window: int = 0  # > 0: every attention layer sees this many positions (llama.cpp's lfm2 n_swa)
    seed: int = 0
    note: str = ""


MODELS = {
    # LFM2-350M's first six layers (conv, conv, attention, twice), its l_cache of 3,
    # head_dim 16 over 4 query and 2 KV heads (its 16 and 8), an FFN below 3 n_embd
    # (the in_proj's output is then the widest row of the batch's scratch)
    "lfm2-6l-q8_0": Spec("ccacca", 64, 4, 2, 3, 128, seed=21,
                         note="4 short-convolution layers + 2 attention layers; Q8_0"),
    # the published Q4_K_M's types (Q4_K, Q6_K for the FFN's down and the conv's out_proj)
    # on rows of one super-block; head_dim 64 as the published
    "lfm2-6l-q4_k": Spec("ccacca", 256, 4, 2, 3, 512, seed=22,
                         types={"shortconv.in_proj": Q.Q4_K, "shortconv.out_proj": Q.Q6_K, "attn_q": Q.Q4_K,
                                "attn_k": Q.Q4_K, "attn_v": Q.Q6_K, "attn_output": Q.Q4_K, "ffn_gate": Q.Q4_K,
                                "ffn_up": Q.Q4_K, "ffn_down": Q.Q6_K},
                         note="the same layers in Q4_K / Q6_K"),
    # attention.sliding_window: every attention layer sliding (a window of 8: the mask
    # cuts the two longer prompts)
    "lfm2-6l-swa8": Spec("ccacca", 64, 4, 2, 3, 128, sliding_window=8, seed=23,
                         note="the Q8_0 layers with a window of 8 on the attention layers"),
}

# the models whose references include llama.cpp's flash-attention logits (make_moe_refs.py)
FLASH = ("lfm2-6l-q8_0", "lfm2-6l-swa8")
# the models whose references include llama.cpp's stages (the Q4_K model's would triple the file)
STAGED = ("lfm2-6l-q8_0",)
PROMPT_LENGTHS = (6, 28, 52)
N_GREEDY = 48


def prompts(name: str) -> list[np.ndarray]:
    """the prompts' token ids (no control tokens)"""
    return seeded_prompts(MODELS[name].seed)


def _tensors(s: Spec):
    """(name, float32 array in numpy order (outermost first), ggml type) in file order"""
    rng = np.random.RandomState(s.seed)
    d, nv = s.n_embd, n_vocab()
    hd = d // s.n_head
    mat, norm, kind = draws(rng, s.types)
    out = [("token_embd.weight", mat(nv, d, scale=0.15), Q.Q8_0)]
    for il, k in enumerate(s.kinds):
        b = f"blk.{il}."
        out.append((b + "attn_norm.weight", norm(d), Q.F32))
        if k == "c":
            # b and x scaled up so that their product (the convolution's input) is about 1;
            # the kernel so that the taps mix
            out += [(b + "shortconv.in_proj.weight", mat(3 * d, d, scale=2.0), kind("shortconv.in_proj")),
                    (b + "shortconv.conv.weight", mat(d, s.l_cache, scale=1.5), Q.F32),
                    (b + "shortconv.out_proj.weight", mat(d, d), kind("shortconv.out_proj"))]
        else:
            out += [(b + "attn_q.weight", mat(s.n_head * hd, d, scale=2.0), kind("attn_q")),
                    (b + "attn_k.weight", mat(s.n_head_kv * hd, d, scale=2.0), kind("attn_k")),
                    (b + "attn_v.weight", mat(s.n_head_kv * hd, d), kind("attn_v")),
                    (b + "attn_output.weight", mat(d, s.n_head * hd), kind("attn_output")),
                    (b + "attn_q_norm.weight", norm(hd), Q.F32),
                    (b + "attn_k_norm.weight", norm(hd), Q.F32)]
        out += [(b + "ffn_norm.weight", norm(d), Q.F32),
                (b + "ffn_gate.weight", mat(s.n_ff, d), kind("ffn_gate")),
                (b + "ffn_up.weight", mat(s.n_ff, d), kind("ffn_up")),
                (b + "ffn_down.weight", mat(d, s.n_ff), kind("ffn_down"))]
    # the tied head's norm, sized so that the logits have a std of a few units over the
    # vocabulary with token_embd's short rows
    out.append(("token_embd_norm.weight", (norm(d) * 20.0).astype(np.float32), Q.F32))
    return out


def _metadata(s: Spec) -> list[tuple[str, bytes]]:
    from llmlite.gguf.writer import encode

    L, A, R = Keys.LLM, Keys.Attention, Keys.Rope
    arch = "lfm2"

    def k(key):
        return key.format(arch=arch)

    u32 = lambda v: encode(V.UINT32, v)   # noqa: E731
    kv = [(Keys.General.ARCHITECTURE, encode(V.STRING, arch)),
          (Keys.General.NAME, encode(V.STRING, "tiny lfm2")),
          (k(L.CONTEXT_LENGTH), u32(512)),
          (k(L.EMBEDDING_LENGTH), u32(s.n_embd)),
          (k(L.BLOCK_COUNT), u32(len(s.kinds))),
          (k(L.FEED_FORWARD_LENGTH), u32(s.n_ff)),
          (k(A.HEAD_COUNT), u32(s.n_head)),
          (k(A.HEAD_COUNT_KV), encode((V.ARRAY, V.INT32), [s.n_head_kv if c == "a" else 0 for c in s.kinds])),
          (k(R.FREQ_BASE), encode(V.FLOAT32, 1e6)),
          (k(A.LAYERNORM_RMS_EPS), encode(V.FLOAT32, 1e-5)),
          (k(Keys.ShortConv.L_CACHE), u32(s.l_cache))]
    if s.sliding_window:
        kv.append((k(A.SLIDING_WINDOW), u32(s.sliding_window)))
    tok = [(key, encode(V.STRING, "lfm2")) if key == Keys.Tokenizer.PRE else (key, v) for key, v in tokenizer_kv()]
    return kv + tok


def build(name: str, path, **changes) -> str:
    """Write model `name` to path (changes: Spec fields replaced); its sha256"""
    s = replace(MODELS[name], **changes)
    return write_model(path, _metadata(s), _tensors(s))
