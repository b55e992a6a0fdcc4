"""A Hugging Face checkpoint made from a GGUF (dequantized, llama's q/k permutation
undone): model.safetensors (F16 matrices, F32 vectors), config.json
(LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM or
GraniteForCausalLM with its multipliers), tokenizer.json (BPE with
SmolLM2's pre-tokenizer, digits split then byte-level, as the test models carry),
tokenizer_config.json with the chat template. Made from smollm2-135m it is a real
model; from the synthetic qwen2/qwen3 refs, a check of those architectures' names.
Used by the quantize tests, with quantize_gguf, `llmlite quantize` in this process."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np


def quantize_gguf(src, dst, ftype: str, allow_requantize: bool = False, progress=None, alignment=None) -> dict:
    """Write dst from the GGUF src for ftype, as `llmlite quantize` does; returns the summary"""
    from llmlite.quantize import GGUFSource, write_quantized

    source = GGUFSource(src)
    try:
        return write_quantized(source, dst, ftype, allow_requantize, progress, alignment)
    finally:
        source.close()


def assert_converts_as_from_gguf(src, hf, folder: Path) -> Path:
    """`llmlite quantize` of checkpoint hf (made from the GGUF src) to q8_0 gives the
    tensors, byte for byte, of src's weights quantized the GGUF way (F32, F16, then q8_0),
    and src's values of its architecture's and tokenizer's metadata (the SentencePiece
    add_space_prefix aside); the converted file's path"""
    from gguf import GGUFReader
    from helpers import llmlite

    folder = Path(folder)
    r = llmlite("quantize", hf, folder / "hf.gguf", "--type", "q8_0")
    assert r.returncode == 0, r.stderr
    quantize_gguf(src, folder / "f32.gguf", "f32", allow_requantize=True)
    quantize_gguf(folder / "f32.gguf", folder / "f16.gguf", "f16")
    quantize_gguf(folder / "f16.gguf", folder / "gguf.gguf", "q8_0")
    a, b, o = (GGUFReader(str(p)) for p in (folder / "hf.gguf", folder / "gguf.gguf", src))
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for ta, tb in zip(a.tensors, b.tensors):
        assert ta.tensor_type == tb.tensor_type and ta.data.tobytes() == tb.data.tobytes(), ta.name
    arch = o.fields["general.architecture"].contents()
    for k in o.fields:
        if k.startswith((arch + ".", "tokenizer.")) and k != "tokenizer.ggml.add_space_prefix":
            assert a.fields[k].contents() == o.fields[k].contents(), k
    return folder / "hf.gguf"


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """the inverse of convert_hf.permute_qk: llama's q/k rows back to HF's rotate-half order"""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# Granite's multipliers: config.json's names (those llama.cpp's converter reads) -> the
# GGUF keys; written out here apart from llmlite/convert_hf.py's table, which this checks
_GRANITE_SCALES = (("attention_multiplier", "attention.scale"), ("embedding_multiplier", "embedding_scale"),
                   ("residual_multiplier", "residual_scale"), ("logits_scaling", "logit_scale"))


def _gguf_to_hf_name(name: str, arch: str = "llama") -> str | None:
    from llmlite.convert_hf import _GEMMA3_NAMES, _NAMES

    table = {**_NAMES, **_GEMMA3_NAMES} if arch == "gemma3" else _NAMES
    if arch == "gemma3":
        table = {k: v for k, v in table.items() if k != "model.layers.{i}.post_attention_layernorm.weight"
                 or v == "blk.{i}.post_attention_norm.weight"}
    for hf, g in table.items():
        if "{i}" not in g:
            if g == name:
                return hf
            continue
        pre, post = g.split("{i}")
        if name.startswith(pre) and name.endswith(post):
            i = name[len(pre):len(name) - len(post)]
            if i.isdigit():
                return hf.format(i=i)
    return None


class BF16Array:
    """float32 values to be stored as BF16 (round to nearest even)"""

    def __init__(self, x: np.ndarray):
        u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
        self.bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
        self.shape, self.nbytes, self.dtype = x.shape, self.bits.nbytes, "BF16"

    def tobytes(self) -> bytes:
        return self.bits.tobytes()


def write_safetensors(path: Path, tensors: dict) -> None:
    header, off = {}, 0
    for name, a in tensors.items():
        dt = a.dtype if isinstance(a, BF16Array) else {np.dtype("<f2"): "F16", np.dtype("<f4"): "F32"}[a.dtype]
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for a in tensors.values():
            f.write(a.tobytes() if isinstance(a, BF16Array) else np.ascontiguousarray(a).tobytes())


HF_ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
           "gemma3": "Gemma3ForCausalLM", "granite": "GraniteForCausalLM"}


def make_checkpoint(gguf_path, folder: Path, rope_scaling: dict | None = None, dtype: str = "F16") -> Path:
    """rope_scaling: the config.json entry behind a GGUF's rope_freqs tensor (which
    a checkpoint does not carry: the converter computes it); dtype: F16, BF16 or
    F32, the matrices' type in model.safetensors"""
    from llmlite import _lib
    from llmlite.gguf import open_gguf

    folder.mkdir(parents=True, exist_ok=True)
    with open_gguf(gguf_path) as g:
        md = g.metadata
        a = md["general.architecture"]
        n_head, n_head_kv = md[f"{a}.attention.head_count"], md[f"{a}.attention.head_count_kv"]
        tensors = {}
        for name, t in g.tensors.items():
            w = _lib.dequantize(t.type, g.tensor_data(name), t.n_elements).reshape(tuple(reversed(t.shape)))
            if a in ("llama", "granite") and name.endswith("attn_q.weight"):
                w = unpermute_qk(w, n_head)
            elif a in ("llama", "granite") and name.endswith("attn_k.weight"):
                w = unpermute_qk(w, n_head_kv)
            if name == "rope_freqs.weight":
                continue
            hf = _gguf_to_hf_name(name, a)
            assert hf is not None, name
            if a == "gemma3" and name.endswith("norm.weight"):
                w = w - np.float32(1.0)      # HF stores Gemma's norm weights minus one
            if w.ndim != 2 or dtype == "F32":
                tensors[hf] = w.astype(np.float32)
            else:
                tensors[hf] = BF16Array(w) if dtype == "BF16" else w.astype(np.float16)
        write_safetensors(folder / "model.safetensors", tensors)
        cfg = {"architectures": [HF_ARCH[a]], "model_type": a,
               "hidden_size": md[f"{a}.embedding_length"], "intermediate_size": md[f"{a}.feed_forward_length"],
               "num_hidden_layers": md[f"{a}.block_count"], "num_attention_heads": n_head,
               "num_key_value_heads": n_head_kv, "rms_norm_eps": float(md[f"{a}.attention.layer_norm_rms_epsilon"]),
               "rope_theta": float(md[f"{a}.rope.freq_base"]), "max_position_embeddings": md[f"{a}.context_length"],
               "vocab_size": len(md["tokenizer.ggml.tokens"]), "tie_word_embeddings": "output.weight" not in g.tensors,
               "bos_token_id": md["tokenizer.ggml.bos_token_id"], "eos_token_id": md["tokenizer.ggml.eos_token_id"],
               "torch_dtype": "float16"}
        if rope_scaling:
            cfg["rope_scaling"] = rope_scaling
        if a == "gemma3":
            cfg.update({"sliding_window": md.get("gemma3.attention.sliding_window", 4096), "sliding_window_pattern": 6,
                        "query_pre_attn_scalar": md["gemma3.attention.key_length"]})
            if "gemma3.rope.freq_base_swa" in md:
                cfg["rope_local_base_freq"] = float(md["gemma3.rope.freq_base_swa"])
            if md.get("gemma3.rope.scaling.type") == "linear":
                cfg["rope_scaling"] = {"rope_type": "linear", "factor": float(md["gemma3.rope.scaling.factor"])}
        if a == "granite":   # its multipliers under config.json's names
            cfg.update({hf: float(md[f"granite.{k}"]) for hf, k in _GRANITE_SCALES if f"granite.{k}" in md})
        if f"{a}.attention.key_length" in md:
            cfg["head_dim"] = md[f"{a}.attention.key_length"]
        (folder / "config.json").write_text(json.dumps(cfg, indent=2))
        toks, types = list(md["tokenizer.ggml.tokens"]), list(md["tokenizer.ggml.token_type"])
        ids = {k: md.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "unknown", "padding")}
        tc = {k: bool(md[f"tokenizer.ggml.{k}"]) for k in ("add_bos_token", "add_sep_token", "add_eos_token")
              if f"tokenizer.ggml.{k}" in md}
        tc.update({f"{k}_token": toks[ids[n]] for k, n in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"),
                                                           ("pad", "padding")) if ids[n] is not None})
        if "tokenizer.chat_template" in md:
            tc["chat_template"] = md["tokenizer.chat_template"]
        if md["tokenizer.ggml.model"] == "llama":      # SentencePiece
            _write_sentencepiece(folder / "tokenizer.model", toks, list(md["tokenizer.ggml.scores"]), types)
            tc["added_tokens_decoder"] = {str(i): {"content": t, "special": False} for i, (t, ty)
                                          in enumerate(zip(toks, types)) if ty == 4}
            (folder / "tokenizer_config.json").write_text(json.dumps(tc, ensure_ascii=False), encoding="utf-8")
            return folder
        added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
                  "special": True} for i, (t, ty) in enumerate(zip(toks, types)) if ty == 3]
        tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
              "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                  {"type": "Digits", "individual_digits": True},
                  {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
              "post_processor": None, "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                                  "use_regex": True},
              "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                        "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                        "vocab": {t: i for i, t in enumerate(toks)},
                        "merges": list(md["tokenizer.ggml.merges"])}}
        (folder / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
        (folder / "tokenizer_config.json").write_text(json.dumps(tc, indent=2, ensure_ascii=False), encoding="utf-8")
    return folder



def _pb_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _write_sentencepiece(path: Path, tokens, scores, types) -> None:
    """a SentencePiece ModelProto holding just the pieces (field 1: piece, score, type)"""
    out = bytearray()
    for t, sc, ty in zip(tokens, scores, types):
        p = t.encode("utf-8")
        msg = b"\x0a" + _pb_varint(len(p)) + p + b"\x15" + struct.pack("<f", float(sc)) + b"\x18" + _pb_varint(int(ty))
        out += b"\x0a" + _pb_varint(len(msg)) + msg
    path.write_bytes(bytes(out))
