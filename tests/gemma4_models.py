"""Tiny random-weight Gemma 4 GGUFs with the real tensor layout (the dense E2B/E4B
shape in miniature), written through llmlite's own writer and quantizers (the same
bytes on every run), which tests/test_gemma4.py rebuilds and compares with llama.cpp's
logits in tests/data/gemma4_refs.npz (benchmarks/make_gemma4_refs.py).

What E2B has, each present here: sliding-window layers with their own head size,
rotary dims and base beside full-attention layers with a longer head, "proportional"
rope (rope_freqs: 1 for the rotated pairs, 1e30 for the others, full layers only);
the last layers sharing an earlier layer's K/V (no attn_k/attn_v/attn_k_norm of their
own) with a double-wide FFN; per-layer token embeddings (the table, its projection
and norm; each layer's gate, projection and post-norm); a per-layer output scale; the
final logit softcap. The vocabulary and prompts are tests/moe_models.py's.

    MODELS[name] -> Spec; build(name, path) writes the file and returns its sha256
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from moe_models import N_GREEDY, PROMPT_LENGTHS, n_vocab, seeded_prompts, tokenizer_kv, write_model

from llmlite.gguf.constants import GGMLType as Q
from llmlite.gguf.constants import Keys
from llmlite.gguf.constants import ValueType as V

__all__ = ["FLASH", "MODELS", "N_GREEDY", "PROMPT_LENGTHS", "build", "n_vocab", "prompts"]


@dataclass(frozen=True)
class Spec:
    swa: tuple                 # per layer: True where it uses the sliding window
    n_kv_shared: int           # the last this many layers read an earlier layer's K/V
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int              # full-attention layers'
    head_dim_swa: int          # sliding-window layers'
    n_ff: int                  # the layers with their own K/V; twice this for the others
    n_embd_per_layer: int      # per-layer token embedding width (0: none)
    sliding_window: int
    rot_frac_full: float = 0.25   # the full layers' rotated share (the rest: rope_freqs 1e30)
    softcap: float = 30.0
    n_expert: int = 0          # 26B-A4B's expert layers beside the dense FFN (0: dense only)
    n_expert_used: int = 0
    n_ff_exp: int = 0
    k_as_v: bool = False       # full layers without attn_v: V is K (attention_k_eq_v)
    n_head_kv_full: int = 0    # the full layers' KV heads where they differ (26B-A4B's: 2 to the sliding 8)
    types: dict = field(default_factory=dict)   # tensor kind -> ggml type (default Q8_0; 1-D: F32)
    seed: int = 0
    note: str = ""

    @property
    def n_layer(self) -> int:
        return len(self.swa)

    def n_head_kv_of(self, il: int) -> int:
        return self.n_head_kv_full if self.n_head_kv_full and not self.swa[il] else self.n_head_kv

    def n_ff_of(self, il: int) -> int:
        return self.n_ff * (2 if il >= self.n_layer - self.n_kv_shared else 1)


S, F = True, False
MODELS = {
    # E2B's pattern in miniature: two sliding layers, then a full one; the second half
    # shares K/V (the sliding ones read layer 1's, the full one layer 2's, as llama.cpp
    # maps them); a window of 8, which every prompt but the first outgrows
    "gemma4-e-q8_0": Spec((S, S, F, S, S, F), 3, 64, 2, 1, 64, 32, 128, 32, 8, seed=21,
                          note="6 layers (SWA 32-dim heads, full 64-dim), 3 sharing K/V, per-layer embeddings 32"),
    # 26B-A4B's layer in miniature: a dense GEGLU FFN beside 8 experts (top 2, weights
    # renormalised) with a fused gate/up, per-expert output scales and the router's own
    # input scale; full layers taking K for V; no per-layer embeddings or shared K/V
    "gemma4-moe-8x2-q8_0": Spec((S, S, F, S), 0, 64, 4, 2, 64, 32, 64, 0, 8, seed=22, n_expert=8,
                                n_expert_used=2, n_ff_exp=32, k_as_v=True, n_head_kv_full=1,
                                note="4 layers, dense FFN 64 + 8 experts top-2 of 32, K as V on full layers, "
                                     "KV heads 2 sliding / 1 full"),
}

# the models whose references include llama.cpp's flash-attention logits (benchmarks/make_moe_refs.py)
FLASH = ("gemma4-e-q8_0",)


def prompts(name: str) -> list[np.ndarray]:
    """the prompts' token ids (no control tokens)"""
    return seeded_prompts(MODELS[name].seed)


def _tensors(s: Spec):
    """(name, float32 array in numpy order (outermost first), ggml type) in file order"""
    rng = np.random.RandomState(s.seed)
    d, nv, ple, L = s.n_embd, n_vocab(), s.n_embd_per_layer, s.n_layer

    def mat(*shape, scale=1.0):   # rows of fan_in = shape[-1] elements
        return (rng.standard_normal(shape) * scale / np.sqrt(shape[-1])).astype(np.float32)

    def norm(n, scale=1.0):
        return ((1 + 0.1 * rng.standard_normal(n)) * scale).astype(np.float32)

    def kind(name):
        return s.types.get(name, Q.Q8_0)

    hd_rot = int(s.head_dim * s.rot_frac_full / 2)
    freqs = np.array([1.0] * hd_rot + [1e30] * (s.head_dim // 2 - hd_rot), np.float32)
    out = [("rope_freqs.weight", freqs, Q.F32),
           ("token_embd.weight", mat(nv, d, scale=0.15), Q.Q8_0)]
    if ple:
        out += [("per_layer_token_embd.weight", mat(nv, L * ple, scale=0.5), kind("per_layer_token_embd")),
                ("per_layer_model_proj.weight", mat(L * ple, d, scale=0.5), kind("per_layer_model_proj")),
                ("per_layer_proj_norm.weight", norm(ple), Q.F32)]
    for il in range(L):
        b, hd = f"blk.{il}.", s.head_dim_swa if s.swa[il] else s.head_dim
        own_kv = il < L - s.n_kv_shared
        ff = s.n_ff_of(il)
        out += [(b + "attn_norm.weight", norm(d), Q.F32),
                (b + "attn_q.weight", mat(s.n_head * hd, d, scale=2.0), kind("attn_q"))]
        if own_kv:
            out.append((b + "attn_k.weight", mat(s.n_head_kv_of(il) * hd, d, scale=2.0), kind("attn_k")))
        if own_kv and not (s.k_as_v and not s.swa[il]):
            out.append((b + "attn_v.weight", mat(s.n_head_kv_of(il) * hd, d), kind("attn_v")))
        out += [(b + "attn_output.weight", mat(d, s.n_head * hd), kind("attn_output")),
                # Q and K normed per head (scores unscaled after: Gemma 4's attention scale is 1)
                (b + "attn_q_norm.weight", norm(hd), Q.F32)]
        if own_kv:
            out.append((b + "attn_k_norm.weight", norm(hd), Q.F32))
        out += [(b + "post_attention_norm.weight", norm(d, 0.5), Q.F32),
                (b + "ffn_norm.weight", norm(d), Q.F32),
                (b + "ffn_gate.weight", mat(ff, d, scale=2.0), kind("ffn_gate")),
                (b + "ffn_up.weight", mat(ff, d), kind("ffn_up")),
                (b + "ffn_down.weight", mat(d, ff), kind("ffn_down")),
                (b + "post_ffw_norm.weight", norm(d, 0.5), Q.F32)]
        if s.n_expert:
            out += _expert_tensors(b, s, mat, norm, kind, rng)
        if ple:
            out += [(b + "inp_gate.weight", mat(ple, d, scale=2.0), kind("inp_gate")),
                    (b + "proj.weight", mat(d, ple), kind("proj")),
                    (b + "post_norm.weight", norm(d, 0.5), Q.F32)]
        out.append((b + "layer_output_scale.weight", (0.6 + 0.4 * rng.random_sample(1)).astype(np.float32), Q.F32))
    # output_norm sized so that logits have a std of a few units before the softcap (the
    # head is token_embd's short rows)
    out.append(("output_norm.weight", norm(d, 20.0), Q.F32))
    return out


def _expert_tensors(b: str, s: Spec, mat, norm, kind, rng) -> list:
    """an expert layer's tensors beside the dense FFN's, in llama.cpp's names"""
    d, E, ff = s.n_embd, s.n_expert, s.n_ff_exp
    return [(b + "post_ffw_norm_1.weight", norm(d, 0.5), Q.F32),
            (b + "pre_ffw_norm_2.weight", norm(d), Q.F32),
            # the router scaled up (its input is rms-normed then divided by sqrt(n_embd))
            # so that the softmax is decisive: clear top-k choices
            (b + "ffn_gate_inp.weight", mat(E, d, scale=3.0 * np.sqrt(d)), Q.F32),
            (b + "ffn_gate_inp.scale", norm(d), Q.F32),
            (b + "ffn_gate_up_exps.weight", mat(E, 2 * ff, d, scale=2.0), kind("ffn_gate_up_exps")),
            (b + "ffn_down_exps.weight", mat(E, d, ff), kind("ffn_down_exps")),
            (b + "ffn_down_exps.scale", (0.5 + rng.random_sample(E)).astype(np.float32), Q.F32),
            (b + "post_ffw_norm_2.weight", norm(d, 0.5), Q.F32)]


def _metadata(s: Spec) -> list[tuple[str, bytes]]:
    from llmlite.gguf.writer import encode

    L, A, R = Keys.LLM, Keys.Attention, Keys.Rope
    arch = "gemma4"

    def k(key):
        return key.format(arch=arch)

    u32 = lambda v: encode(V.UINT32, v)   # noqa: E731
    f32 = lambda v: encode(V.FLOAT32, v)  # noqa: E731
    kv = [(Keys.General.ARCHITECTURE, encode(V.STRING, arch)),
          (Keys.General.NAME, encode(V.STRING, "tiny gemma4")),
          (k(L.CONTEXT_LENGTH), u32(512)),
          (k(L.EMBEDDING_LENGTH), u32(s.n_embd)),
          (k(L.BLOCK_COUNT), u32(s.n_layer)),
          (k(L.FEED_FORWARD_LENGTH), encode((V.ARRAY, V.INT32), [s.n_ff_of(il) for il in range(s.n_layer)])),
          (k(A.HEAD_COUNT), u32(s.n_head)),
          (k(A.HEAD_COUNT_KV), u32(s.n_head_kv) if not s.n_head_kv_full else
           encode((V.ARRAY, V.INT32), [s.n_head_kv_of(il) for il in range(s.n_layer)])),
          (k(A.KEY_LENGTH), u32(s.head_dim)),
          (k(A.VALUE_LENGTH), u32(s.head_dim)),
          (k(A.KEY_LENGTH_SWA), u32(s.head_dim_swa)),
          (k(A.VALUE_LENGTH_SWA), u32(s.head_dim_swa)),
          (k(R.DIMENSION_COUNT), u32(s.head_dim)),
          (k(R.DIMENSION_COUNT_SWA), u32(s.head_dim_swa)),
          (k(R.FREQ_BASE), f32(1e6)),
          (k(R.FREQ_BASE_SWA), f32(1e4)),
          (k(A.LAYERNORM_RMS_EPS), f32(1e-6)),
          (k(A.SLIDING_WINDOW), u32(s.sliding_window)),
          (k(A.SLIDING_WINDOW_PATTERN), encode((V.ARRAY, V.BOOL), list(s.swa))),
          (k(A.SHARED_KV_LAYERS), u32(s.n_kv_shared)),
          (k(L.EMBD_LENGTH_PER_LAYER_INP), u32(s.n_embd_per_layer)),
          (k(L.FINAL_LOGIT_SOFTCAPPING), f32(s.softcap))]
    if s.n_expert:
        kv += [(k(L.EXPERT_COUNT), u32(s.n_expert)), (k(L.EXPERT_USED_COUNT), u32(s.n_expert_used)),
               (k(L.EXPERT_FEED_FORWARD_LENGTH), u32(s.n_ff_exp))]
    return kv + tokenizer_kv()


def build(name: str, path) -> str:
    """Write model `name` to path; its sha256"""
    s = MODELS[name]
    return write_model(path, _metadata(s), _tensors(s))


# ---- a small Gemma 4 vocabulary (tokenizer.ggml.model gemma4) for the tokenizer's tests ----
# Its published one's kinds of token: control tokens, the 256 <0xXX> byte tokens,
# newline runs, U+2581 for a space, single characters and merged pieces (with the
# merges that make them); characters outside it fall back to their bytes.
_SP = "\u2581"
TOK_MERGES = [(_SP, "t"), ("h", "e"), (_SP + "t", "he"), ("i", "n"), ("e", "r"), (_SP, "a"), ("o", "n"),
              (_SP, _SP), (_SP + _SP, _SP + _SP), ("l", "l"), ("he", "ll"), ("hell", "o"), (_SP, "hello"),
              ("日", "本"), ("\u00e9", "t"), (_SP, "w"), (_SP + "w", "or"), ("o", "r"), (_SP + "wor", "ld")]
TOK_TEXTS = ["hello world", " hello  world\n\nthe end", "the\n\n\n\n\nother", "日本 été", "naïve café ☃",
             "tabs\tand    spaces", "<|turn>user\nhi<turn|>", "", " ", "\n", "<bos>x<eos>", "Zz9!?",
             "hellohello hello", "🙂 emoji"]


def tokenizer_vocab() -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges) of the small Gemma 4 vocabulary"""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>"]
    types = [3, 3, 3, 2, 4, 3, 3]
    toks = specials + [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    chars = ["\n", "\n\n", "\n\n\n", _SP] + [chr(c) for c in range(33, 127)] + ["\u00e9", "日", "本"]
    merged = []
    for a, b in TOK_MERGES:
        if a + b not in merged and a + b not in chars:
            merged.append(a + b)
    toks += chars + merged
    types += [1] * (len(chars) + len(merged))
    return toks, types, [f"{a} {b}" for a, b in TOK_MERGES]


def build_vocab(path) -> str:
    """A vocabulary-only gemma4 GGUF (the dense model's hyper-parameters, no tensors); its sha256"""
    from llmlite.gguf.writer import encode

    T = Keys.Tokenizer
    toks, types, merges = tokenizer_vocab()
    kv = [(k, v) for k, v in _metadata(MODELS["gemma4-e-q8_0"]) if not k.startswith("tokenizer.")]
    kv += [(T.MODEL, encode(V.STRING, "gemma4")), (T.LIST, encode((V.ARRAY, V.STRING), toks)),
           (T.TOKEN_TYPE, encode((V.ARRAY, V.INT32), types)), (T.MERGES, encode((V.ARRAY, V.STRING), merges)),
           (T.BOS_ID, encode(V.UINT32, 2)), (T.EOS_ID, encode(V.UINT32, 1)), (T.UNK_ID, encode(V.UINT32, 3)),
           (T.PAD_ID, encode(V.UINT32, 0)), (T.ADD_BOS, encode(V.BOOL, True)),
           (T.ADD_PREFIX, encode(V.BOOL, False))]
    return write_model(path, kv, [])
