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
qwen3-4b 2.32 GiB in 5 min, llama3.1-8b 4.58 GiB in 9 min (peak RSS 0.9 GB).
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


SHAPES = {
    "qwen2.5-1.5b": Shape("qwen2", 28, 1536, 8960, 12, 2, 128, 151936, True, QWEN, 1e6, 1e-6, 32768,
                          qkv_bias=True),
    "llama3.2-1b": Shape("llama", 16, 2048, 8192, 32, 8, 64, 128256, True, LLAMA3, 5e5, 1e-5, 131072),
    "qwen3-4b": Shape("qwen3", 36, 2560, 9728, 32, 8, 128, 151936, True, QWEN, 1e6, 1e-6, 40960, qk_norm=True),
    "llama3.1-8b": Shape("llama", 32, 4096, 14336, 32, 8, 128, 128256, False, LLAMA3, 5e5, 1e-5, 131072),
    # Qwen3-30B-A3B's layer in miniature (its heads of 128, its expert FFN of 768, top-8
    # routing) at half the width, 12 layers and 64 experts: 2.2 B parameters,
    # 0.45 B active per token (output head included); its n_ff is the dense FFN width
    # the real file declares but no tensor uses
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
    return [("general.architecture", ValueType.STRING, a), ("general.name", ValueType.STRING, f"{name} (random)"),
            (f"{a}.block_count", U, shape.n_layer), (f"{a}.context_length", U, shape.n_ctx_train),
            (f"{a}.embedding_length", U, shape.n_embd), (f"{a}.feed_forward_length", U, shape.n_ff),
            (f"{a}.attention.head_count", U, shape.n_head), (f"{a}.attention.head_count_kv", U, shape.n_head_kv),
            (f"{a}.attention.key_length", U, shape.head_dim), (f"{a}.attention.value_length", U, shape.head_dim),
            (f"{a}.rope.dimension_count", U, shape.head_dim), (f"{a}.rope.freq_base", F, shape.rope_base),
            (f"{a}.attention.layer_norm_rms_epsilon", F, shape.rms_eps), (f"{a}.vocab_size", U, shape.n_vocab),
            *([(f"{a}.expert_count", U, shape.n_expert), (f"{a}.expert_used_count", U, shape.n_expert_used),
               (f"{a}.expert_feed_forward_length", U, shape.n_ff_exp)] if shape.n_expert else []),
            *vocab_kvs(shape)]


def tensor_shapes(shape: Shape) -> dict[str, tuple[int, ...]]:
    """name -> GGUF shape (ne[0], the row length, first)"""
    E, F, V = shape.n_embd, shape.n_ff, shape.n_vocab
    q, kv = shape.n_head * shape.head_dim, shape.n_head_kv * shape.head_dim
    out = {"token_embd.weight": (E, V), "output_norm.weight": (E,)}
    if not shape.tied:
        out["output.weight"] = (E, V)
    for i in range(shape.n_layer):
        b = f"blk.{i}."
        out.update({b + "attn_norm.weight": (E,), b + "attn_q.weight": (E, q), b + "attn_k.weight": (E, kv),
                    b + "attn_v.weight": (E, kv), b + "attn_output.weight": (q, E), b + "ffn_norm.weight": (E,)})
        if shape.n_expert:
            X, FX = shape.n_expert, shape.n_ff_exp
            out.update({b + "ffn_gate_inp.weight": (E, X), b + "ffn_gate_exps.weight": (E, FX, X),
                        b + "ffn_up_exps.weight": (E, FX, X), b + "ffn_down_exps.weight": (FX, E, X)})
        else:
            out.update({b + "ffn_gate.weight": (E, F), b + "ffn_up.weight": (E, F), b + "ffn_down.weight": (F, E)})
        if shape.qkv_bias:
            out.update({b + "attn_q.bias": (q,), b + "attn_k.bias": (kv,), b + "attn_v.bias": (kv,)})
        if shape.qk_norm:
            out.update({b + "attn_q_norm.weight": (shape.head_dim,), b + "attn_k_norm.weight": (shape.head_dim,)})
    return out


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
    """rows start .. start+count of a tensor: norm weights 1, the rest N(0, WEIGHT_STD).
    Each chunk has its own stream (seed, name, first row): a chunk is generated
    without the ones before it (CHUNK_ELEMS is part of the stream: changing it
    changes the bytes, so it goes with a new GENERATOR_VERSION)."""
    n0 = shape[0]
    if name.endswith("norm.weight"):
        return np.ones((count, n0), np.float32)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), start])
    x = rng.standard_normal((count, n0), dtype=np.float32)
    x *= WEIGHT_STD
    return x


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
                  f"{s.n_head}/{s.n_head_kv} heads of {s.head_dim}, vocab {s.n_vocab}, "
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
