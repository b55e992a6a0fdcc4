"""Tiny random-weight mixture-of-experts GGUFs (qwen3moe, qwen2moe, gpt-oss) with the real
tensor layout, written through llmlite's own writer and quantizers: the same bytes
on every run (numpy's seeded RandomState, llama.cpp's reference quantizers), so the
tests rebuild them and compare with llama.cpp's logits kept in tests/data/moe_refs.npz
(benchmarks/make_moe_refs.py). A small byte-level BPE vocabulary (the 256 bytes, a few
merges, three control tokens) keeps each file under 1 MB while llama.cpp loads it.

    MODELS[name] -> Spec; build(name, path) writes the file and returns its sha256
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmlite.gguf.constants import GGMLType as Q
from llmlite.gguf.constants import Keys
from llmlite.gguf.constants import ValueType as V

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from shapes import byte_tokens


@dataclass(frozen=True)
class Spec:
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_expert: int
    n_expert_used: int
    n_ff_exp: int
    n_ff_shexp: int = 0                 # qwen2moe's shared expert
    sliding_window: int = 0             # gpt-oss: its even layers see this many positions
    types: dict = field(default_factory=dict)   # tensor kind -> ggml type (default Q8_0; 1-D: F32)
    seed: int = 0
    note: str = ""


MODELS = {
    # experts in Q8_0: llama.cpp's mul_mat_id takes vec_dot for them at any batch
    "qwen3moe-8x2-q8_0": Spec("qwen3moe", 2, 64, 4, 2, 16, 8, 2, 32, seed=1,
                              note="8 experts, top-2, weights renormalised; q/k norms"),
    # Qwen3-30B-A3B's proportions in miniature
    "qwen3moe-128x8-q5_0": Spec("qwen3moe", 1, 32, 2, 1, 16, 128, 8, 32, seed=2,
                                types={"ffn_gate_exps": Q.Q5_0, "ffn_up_exps": Q.Q5_0},
                                note="128 experts, top-8 (Qwen3-30B-A3B's routing); Q5_0 gate/up, Q8_0 down"),
    # Qwen1.5-MoE-A2.7B's: 60 experts, top-4, a shared expert
    "qwen2moe-60x4-q8_0": Spec("qwen2moe", 2, 32, 2, 2, 16, 60, 4, 32, n_ff_shexp=64, seed=3,
                               note="60 experts, top-4 (not renormalised), shared expert with sigmoid gate"),
    # the experts of a published Q4_K_M file: Q4_K gate/up, Q6_K down; rows of 2
    # super-blocks and 2 layers, where the order of llama.cpp's Q4_K expert matmul (its
    # repacked gemv: a step per super-block) shows in the logits against its dense
    # gemm's. Attention in Q8_0: llama.cpp's dense Q4_K takes the gemv for the last
    # n % 4 tokens of a batch and the gemm for the others (not batch invariant)
    "qwen3moe-4x2-q4_k": Spec("qwen3moe", 2, 512, 4, 2, 128, 4, 2, 512, seed=4,
                              types={"ffn_gate_exps": Q.Q4_K, "ffn_up_exps": Q.Q4_K, "ffn_down_exps": Q.Q6_K},
                              note="Q4_K gate/up, Q6_K down experts"),
    # gpt-oss-20b's layout and types (MXFP4 experts with F32 biases, an F32 router with
    # its bias, Q8_0 attention with biases and per-head sinks, q_dim != n_embd) and its
    # rope (YaRN x32 over 4096, base 150000); a window of 8 on the even layer, so that
    # the sliding mask cuts every prompt but the first
    "gpt-oss-8x4-mxfp4": Spec("gpt-oss", 2, 64, 4, 2, 32, 8, 4, 64, sliding_window=8, seed=5,
                              types={"ffn_gate_exps": Q.MXFP4, "ffn_up_exps": Q.MXFP4, "ffn_down_exps": Q.MXFP4},
                              note="8 experts, top-4 by logit, softmax over the 4; sinks; YaRN; SWA 8"),
}

# the models whose references include llama.cpp's flash-attention logits (benchmarks/make_moe_refs.py)
FLASH = ("gpt-oss-8x4-mxfp4",)
# prompts of token ids (the tests need no tokenizer): lengths as the synthetic refs'
PROMPT_LENGTHS = (6, 28, 52)
N_GREEDY = 48


MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("o", "n"), ("Ġ", "a"), ("r", "e"),
          ("a", "t"), ("e", "n"), ("Ġ", "s"), ("o", "r"), ("Ġ", "w"), ("i", "s"), ("Ġ", "c"), ("e", "s")]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def vocab() -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges): bytes, merged pairs, then the control tokens"""
    toks = byte_tokens() + [a + b for a, b in MERGES] + SPECIALS
    types = [1] * (len(toks) - len(SPECIALS)) + [3] * len(SPECIALS)
    return toks, types, [f"{a} {b}" for a, b in MERGES]


def n_vocab() -> int:
    return len(vocab()[0])


def seeded_prompts(seed: int) -> list[np.ndarray]:
    """the prompts of a tiny model whose spec has this seed: token ids below the control
    tokens, one prompt of each of PROMPT_LENGTHS (every family's tiny-models module)"""
    rng = np.random.RandomState(1000 + seed)
    n = n_vocab() - len(SPECIALS)
    return [rng.randint(0, n, size=k).astype(np.int32) for k in PROMPT_LENGTHS]


def prompts(name: str) -> list[np.ndarray]:
    """the prompts' token ids (no control tokens)"""
    return seeded_prompts(MODELS[name].seed)


def _gptoss_layer(b: str, s: Spec, mat, norm, vec, kind) -> list:
    """gpt-oss's layer in its file order: attention with biases and sinks, the norm
    before the FFN (post_attention_norm), the router and experts with their biases"""
    d, hd, E, ff = s.n_embd, s.head_dim, s.n_expert, s.n_ff_exp
    return [(b + "attn_norm.weight", norm(d), Q.F32),
            (b + "attn_q.weight", mat(s.n_head * hd, d, scale=2.0), kind("attn_q")),
            (b + "attn_q.bias", vec(s.n_head * hd), Q.F32),
            (b + "attn_k.weight", mat(s.n_head_kv * hd, d, scale=2.0), kind("attn_k")),
            (b + "attn_k.bias", vec(s.n_head_kv * hd), Q.F32),
            (b + "attn_v.weight", mat(s.n_head_kv * hd, d), kind("attn_v")),
            (b + "attn_v.bias", vec(s.n_head_kv * hd), Q.F32),
            (b + "attn_output.weight", mat(d, s.n_head * hd), kind("attn_output")),
            (b + "attn_output.bias", vec(d, scale=0.2), Q.F32),
            # sinks about the scores' size: each takes a real share of its head's softmax
            (b + "attn_sinks.weight", vec(s.n_head, scale=1.5), Q.F32),
            (b + "post_attention_norm.weight", norm(d), Q.F32),
            (b + "ffn_gate_inp.weight", mat(E, d, scale=3.0), Q.F32),
            (b + "ffn_gate_inp.bias", vec(E), Q.F32),
            # gate and up scaled so that the SwiGLU's clamps at +-7 bite on some values
            (b + "ffn_gate_exps.weight", mat(E, ff, d, scale=4.0), kind("ffn_gate_exps")),
            (b + "ffn_gate_exps.bias", vec(E, ff), Q.F32),
            (b + "ffn_up_exps.weight", mat(E, ff, d, scale=4.0), kind("ffn_up_exps")),
            (b + "ffn_up_exps.bias", vec(E, ff), Q.F32),
            (b + "ffn_down_exps.weight", mat(E, d, ff, scale=0.5), kind("ffn_down_exps")),
            (b + "ffn_down_exps.bias", vec(E, d, scale=0.2), Q.F32)]


def draws(rng, types: dict):
    """the random tensors' makers over rng: mat(*shape, scale) (rows of fan_in = shape[-1]
    elements), norm(n) (about 1), kind(name) (its type: types', default Q8_0)"""
    def mat(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale / np.sqrt(shape[-1])).astype(np.float32)

    def norm(n):
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def kind(name):
        return types.get(name, Q.Q8_0)

    return mat, norm, kind


def _tensors(s: Spec):
    """(name, float32 array in numpy order (outermost first), ggml type) in file order"""
    rng = np.random.RandomState(s.seed)
    d, hd, nv = s.n_embd, s.head_dim, n_vocab()
    mat, norm, kind = draws(rng, s.types)

    def vec(*shape, scale=0.5):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    out = [("token_embd.weight", mat(nv, d, scale=0.15), Q.Q8_0)]
    for il in range(s.n_layer):
        b = f"blk.{il}."
        if s.arch == "gpt-oss":
            out += _gptoss_layer(b, s, mat, norm, vec, kind)
            continue
        out += [(b + "attn_norm.weight", norm(d), Q.F32),
                (b + "attn_q.weight", mat(s.n_head * hd, d, scale=2.0), kind("attn_q")),
                (b + "attn_k.weight", mat(s.n_head_kv * hd, d, scale=2.0), kind("attn_k")),
                (b + "attn_v.weight", mat(s.n_head_kv * hd, d), kind("attn_v")),
                (b + "attn_output.weight", mat(d, s.n_head * hd), kind("attn_output"))]
        if s.arch == "qwen3moe":
            out += [(b + "attn_q_norm.weight", norm(hd), Q.F32), (b + "attn_k_norm.weight", norm(hd), Q.F32)]
        else:   # qwen2's biases
            out += [(b + "attn_q.bias", (0.5 * rng.standard_normal(s.n_head * hd)).astype(np.float32), Q.F32),
                    (b + "attn_k.bias", (0.5 * rng.standard_normal(s.n_head_kv * hd)).astype(np.float32), Q.F32),
                    (b + "attn_v.bias", (0.5 * rng.standard_normal(s.n_head_kv * hd)).astype(np.float32), Q.F32)]
        E, ff = s.n_expert, s.n_ff_exp
        out += [(b + "ffn_norm.weight", norm(d), Q.F32),
                # a router scaled up so that the softmax is decisive: clear top-k choices
                (b + "ffn_gate_inp.weight", mat(E, d, scale=3.0), Q.F32),
                (b + "ffn_gate_exps.weight", mat(E, ff, d), kind("ffn_gate_exps")),
                (b + "ffn_up_exps.weight", mat(E, ff, d), kind("ffn_up_exps")),
                (b + "ffn_down_exps.weight", mat(E, d, ff), kind("ffn_down_exps"))]
        if s.n_ff_shexp:
            sh = s.n_ff_shexp
            out += [(b + "ffn_gate_inp_shexp.weight", mat(d, scale=2.0), Q.F32),
                    (b + "ffn_gate_shexp.weight", mat(sh, d), kind("ffn_gate_shexp")),
                    (b + "ffn_up_shexp.weight", mat(sh, d), kind("ffn_up_shexp")),
                    (b + "ffn_down_shexp.weight", mat(d, sh), kind("ffn_down_shexp"))]
    # output_norm sized so that logits have a std of a few units over the vocabulary (a
    # tied head's rows are token_embd's short ones)
    out.append(("output_norm.weight", (norm(d) * (4.0 if s.arch in ("qwen2moe", "gpt-oss") else 20.0)).astype(np.float32), Q.F32))
    if s.arch in ("qwen2moe", "gpt-oss"):   # llama.cpp requires an untied head for these
        out.append(("output.weight", mat(nv, d), Q.Q8_0))
    return out


def _metadata(s: Spec) -> list[tuple[str, bytes]]:
    from llmlite.gguf.writer import encode

    L, A, R = Keys.LLM, Keys.Attention, Keys.Rope

    def k(key):
        return key.format(arch=s.arch)

    kv = [(Keys.General.ARCHITECTURE, encode(V.STRING, s.arch)),
          (Keys.General.NAME, encode(V.STRING, f"tiny {s.arch}")),
          (k(L.CONTEXT_LENGTH), encode(V.UINT32, 512)),
          (k(L.EMBEDDING_LENGTH), encode(V.UINT32, s.n_embd)),
          (k(L.BLOCK_COUNT), encode(V.UINT32, s.n_layer)),
          (k(L.FEED_FORWARD_LENGTH), encode(V.UINT32, s.n_ff_exp * s.n_expert_used)),
          (k(A.HEAD_COUNT), encode(V.UINT32, s.n_head)),
          (k(A.HEAD_COUNT_KV), encode(V.UINT32, s.n_head_kv)),
          (k(A.KEY_LENGTH), encode(V.UINT32, s.head_dim)),
          (k(A.VALUE_LENGTH), encode(V.UINT32, s.head_dim)),
          (k(R.FREQ_BASE), encode(V.FLOAT32, 1e6)),
          (k(A.LAYERNORM_RMS_EPS), encode(V.FLOAT32, 1e-6)),
          (k(L.EXPERT_COUNT), encode(V.UINT32, s.n_expert)),
          (k(L.EXPERT_USED_COUNT), encode(V.UINT32, s.n_expert_used)),
          (k(L.EXPERT_FEED_FORWARD_LENGTH), encode(V.UINT32, s.n_ff_exp))]
    if s.n_ff_shexp:
        kv.append((k(L.EXPERT_SHARED_FEED_FORWARD_LENGTH), encode(V.UINT32, s.n_ff_shexp)))
    if s.sliding_window:   # gpt-oss-20b's rope and window keys (a smaller window)
        kv = [(key, v) for key, v in kv if key != k(R.FREQ_BASE)]
        kv += [(k(A.SLIDING_WINDOW), encode(V.UINT32, s.sliding_window)),
               (k(R.FREQ_BASE), encode(V.FLOAT32, 150000.0)),
               (k(R.SCALING_TYPE), encode(V.STRING, "yarn")),
               (k(R.SCALING_FACTOR), encode(V.FLOAT32, 32.0)),
               (k(R.SCALING_ORIG_CTX_LEN), encode(V.UINT32, 4096))]
    return kv + tokenizer_kv()


def tokenizer_kv() -> list[tuple[str, bytes]]:
    """the small byte-level BPE vocabulary's metadata (vocab())"""
    from llmlite.gguf.writer import encode

    T = Keys.Tokenizer
    toks, types, merges = vocab()
    return [(T.MODEL, encode(V.STRING, "gpt2")), (T.PRE, encode(V.STRING, "qwen2")),
            (T.LIST, encode((V.ARRAY, V.STRING), toks)), (T.TOKEN_TYPE, encode((V.ARRAY, V.INT32), types)),
            (T.MERGES, encode((V.ARRAY, V.STRING), merges)),
            (T.EOS_ID, encode(V.UINT32, toks.index("<|endoftext|>"))),
            (T.BOS_ID, encode(V.UINT32, toks.index("<|endoftext|>"))),
            (T.ADD_BOS, encode(V.BOOL, False))]


def build(name: str, path) -> str:
    """Write model `name` to path; its sha256"""
    s = MODELS[name]
    return write_model(path, _metadata(s), _tensors(s))


def write_model(path, kv, tensors) -> str:
    """Write metadata kv and (name, float32 array, ggml type) tensors, each quantized
    by llmlite's reference quantizers; the file's sha256 (tests/gemma4_models.py too)"""
    from llmlite import _lib
    from llmlite.gguf.writer import TensorOut, write_gguf

    table, blobs = [], []
    for tname, x, qt in tensors:
        if qt == Q.F32:
            blob = x.reshape(-1)
        else:
            blob = _lib.quantize_rows(int(qt), x.reshape(-1, x.shape[-1]))
        table.append(TensorOut(tname, tuple(reversed(x.shape)), int(qt), blob.nbytes))
        blobs.append(blob)
    write_gguf(path, kv, table, lambda i: blobs[i])
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
