"""Hugging Face checkpoints as the input of `llmlite quantize`: config.json to GGUF
metadata, tensor names, llama's q/k permutation, safetensors read lazily (memory-
mapped, one tensor at a time), tokenizer.json (BPE) to tokenizer.ggml.*, the chat
template from tokenizer_config.json: the names and keys llama.cpp's converter writes.

Architectures: llama (LlamaForCausalLM, MistralForCausalLM; Llama 3 rope scaling as
rope_freqs), qwen2, qwen3, gemma3 (norms + 1), granite (GraniteForCausalLM: llama's
layout with its four multipliers); tokenizers: BPE tokenizer.json, or a
SentencePiece tokenizer.model (read here, without the sentencepiece package).
"""
from __future__ import annotations

import json
import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmlite.gguf.constants import GGMLType
from llmlite.gguf.constants import ValueType as V
from llmlite.gguf.writer import encode
from llmlite.quantize import QuantizeError

F32, F16, BF16 = GGMLType.F32, GGMLType.F16, GGMLType.BF16
STRINGS, I32S, F32S = (V.ARRAY, V.STRING), (V.ARRAY, V.INT32), (V.ARRAY, V.FLOAT32)   # array types (encode)

ARCHES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
          "Qwen3ForCausalLM": "qwen3", "Gemma3ForCausalLM": "gemma3", "GraniteForCausalLM": "granite"}
# the architectures whose q/k rows llama.cpp's converter permutes (LlamaModel's)
_PERMUTED = ("llama", "granite")
# granite's config.json multipliers -> their GGUF keys (GraniteModel.set_gguf_parameters')
_GRANITE_SCALES = (("attention_multiplier", "attention.scale"), ("embedding_multiplier", "embedding_scale"),
                   ("residual_multiplier", "residual_scale"), ("logits_scaling", "logit_scale"))
_DTYPES = {"F32": (np.dtype("<f4"), F32), "F16": (np.dtype("<f2"), F16), "BF16": (np.dtype("<u2"), BF16)}

# HF name (layer part as {i}) -> GGUF name
_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "model.layers.{i}.self_attn.q_proj.bias": "blk.{i}.attn_q.bias",
    "model.layers.{i}.self_attn.k_proj.bias": "blk.{i}.attn_k.bias",
    "model.layers.{i}.self_attn.v_proj.bias": "blk.{i}.attn_v.bias",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.self_attn.q_norm.weight": "blk.{i}.attn_q_norm.weight",
    "model.layers.{i}.self_attn.k_norm.weight": "blk.{i}.attn_k_norm.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
}
# Gemma 3's four norms per layer
_GEMMA3_NAMES = {
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.post_attention_norm.weight",
    "model.layers.{i}.pre_feedforward_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.post_feedforward_layernorm.weight": "blk.{i}.post_ffw_norm.weight",
}
_SKIP = re.compile(r"rotary_emb\.inv_freq$")


def gguf_name(hf: str, arch: str = "llama") -> str | None:
    m = re.match(r"model\.layers\.(\d+)\.(.*)$", hf)
    key, i = (f"model.layers.{{i}}.{m.group(2)}", m.group(1)) if m else (hf, None)
    name = (_GEMMA3_NAMES.get(key) if arch == "gemma3" else None) or _NAMES.get(key)
    return name.format(i=i) if name and i is not None else name


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama's q/k rows from HF's rotate-half order to GGUF's interleaved pairs"""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# ------------------------------------------------------------- safetensors

@dataclass
class _STensor:
    file: Path
    dtype: str
    shape: tuple
    begin: int
    end: int


def _read_json(path: Path):
    """a checkpoint's JSON file (config, tokenizer, index); a malformed one is a
    QuantizeError naming the file and where the JSON breaks"""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise QuantizeError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError:
        raise QuantizeError(f"{path}: not valid JSON (not UTF-8 text)") from None


def _safetensors_index(folder: Path, single: Path | None) -> dict[str, _STensor]:
    files = [single] if single else None
    idx = folder / "model.safetensors.index.json"
    if files is None:
        if idx.is_file():
            files = sorted({folder / f for f in _read_json(idx)["weight_map"].values()})
        elif (folder / "model.safetensors").is_file():
            files = [folder / "model.safetensors"]
        else:
            raise QuantizeError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    out = {}
    for f in files:
        if not f.is_file():
            raise QuantizeError(f"{f}: missing (listed in model.safetensors.index.json)")
        with open(f, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            try:
                header = json.loads(fh.read(n))
            except ValueError:
                raise QuantizeError(f"{f}: not a safetensors file") from None
        base = 8 + n
        for name, h in header.items():
            if name == "__metadata__":
                continue
            if h["dtype"] not in _DTYPES:
                raise QuantizeError(f"{f}: tensor {name} has dtype {h['dtype']} (F32, F16 and BF16 are supported)")
            out[name] = _STensor(f, h["dtype"], tuple(h["shape"]), base + h["data_offsets"][0], base + h["data_offsets"][1])
    return out


@dataclass
class _Tensor:
    """a GGUF-side tensor of the checkpoint (what plan() reads)"""
    name: str
    shape: tuple       # GGUF order: ne[0] first
    type: int
    n_elements: int
    nbytes: int
    hf: str


class HFSource:
    """A Hugging Face checkpoint (folder, or a .safetensors file with config.json
    beside it) as the input of quantize.write_quantized."""

    def __init__(self, path):
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        single = path if path.is_file() else None
        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            raise QuantizeError(f"{folder}: no config.json beside the weights")
        self.cfg = _read_json(cfg_path)
        archs = self.cfg.get("architectures") or []
        self.arch = next((ARCHES[a] for a in archs if a in ARCHES), None)
        if self.arch is None:
            raise QuantizeError(f"{cfg_path}: architecture {', '.join(archs) or '(none)'} is not supported "
                                f"(supported: {', '.join(ARCHES)})")
        self.folder = folder
        self.st = _safetensors_index(folder, single)
        self._maps: dict[Path, mmap.mmap] = {}
        c = self.cfg
        self.n_head = c["num_attention_heads"]
        self.n_head_kv = c.get("num_key_value_heads", self.n_head)
        # granite's converter ignores head_dim (its heads are hidden_size / n_head)
        self.head_dim = (c.get("head_dim") if self.arch != "granite" else None) or c["hidden_size"] // self.n_head
        self.tensors: dict[str, _Tensor] = {}
        for hf, t in self.st.items():
            if _SKIP.search(hf):
                continue
            name = gguf_name(hf, self.arch)
            if name is None:
                raise QuantizeError(f"{hf}: a tensor llmlite does not know how to convert for {self.arch}")
            if name == "output.weight" and c.get("tie_word_embeddings"):
                continue
            shape = tuple(reversed(t.shape))
            n = int(np.prod(t.shape))
            ty = _DTYPES[t.dtype][1] if len(shape) >= 2 and not name.endswith("_norm.weight") else F32
            self.tensors[name] = _Tensor(name, shape, ty, n, n * (4 if ty == F32 else 2), hf)
        need = ["token_embd.weight", "output_norm.weight"] + [
            f"blk.{i}.{k}.weight" for i in range(c["num_hidden_layers"])
            for k in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")]
        missing = [n for n in need if n not in self.tensors]
        if missing:
            raise QuantizeError(f"{folder}: the checkpoint lacks {missing[0]} ({len(missing)} tensors missing)")
        self.rope_freqs = _llama3_rope_factors(c, self.head_dim) if self.arch == "llama" else None
        if self.rope_freqs is not None:
            n = len(self.rope_freqs)
            self.tensors["rope_freqs.weight"] = _Tensor("rope_freqs.weight", (n,), F32, n, 4 * n, "")
        q = self.tensors["blk.0.attn_q.weight"]
        if q.shape != (c["hidden_size"], self.n_head * self.head_dim):
            raise QuantizeError(f"{folder}: attn_q has shape {q.shape[::-1]}, config.json implies "
                                f"({self.n_head * self.head_dim}, {c['hidden_size']})")
        self.tok = _tokenizer(folder, c, self.arch)
        emb = self.tensors["token_embd.weight"]
        n_tok = len(self.tok["tokens"])
        if self.arch == "gemma3" and emb.shape[1] > n_tok:
            self.tensors["token_embd.weight"] = _Tensor(emb.name, (emb.shape[0], n_tok), emb.type,
                                                        emb.shape[0] * n_tok, emb.shape[0] * n_tok * 2, emb.hf)

    def get(self, key, default=None):
        return {f"{self.arch}.block_count": self.cfg["num_hidden_layers"],
                f"{self.arch}.attention.head_count": self.n_head,
                f"{self.arch}.attention.head_count_kv": self.n_head_kv,
                "general.architecture": self.arch}.get(key, default)

    def _array(self, t: _STensor) -> np.ndarray:
        mm = self._maps.get(t.file)
        if mm is None:
            with open(t.file, "rb") as f:
                mm = self._maps[t.file] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        dt = _DTYPES[t.dtype][0]
        a = np.frombuffer(mm, dtype=dt, count=(t.end - t.begin) // dt.itemsize, offset=t.begin)
        if t.dtype == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a.reshape(t.shape)

    def raw(self, name):
        return None   # always through floats (names, permutation and dtype change)

    def floats(self, name) -> np.ndarray:
        t = self.tensors[name]
        if name == "rope_freqs.weight":
            return self.rope_freqs.reshape(1, -1)
        st = self.st[t.hf]
        w = np.array(self._array(st), dtype=np.float32)    # a copy: the mapping's pages can go
        if self.arch in _PERMUTED and name.endswith("attn_q.weight"):
            w = permute_qk(w, self.n_head)
        elif self.arch in _PERMUTED and name.endswith("attn_k.weight"):
            w = permute_qk(w, self.n_head_kv)
        if self.arch == "gemma3" and name.endswith("norm.weight"):
            w = w + np.float32(1.0)       # Gemma3RMSNorm scales by 1 + w
        if name == "token_embd.weight" and w.shape[0] > t.shape[1]:
            w = w[:t.shape[1]]            # rows beyond the tokenizer's vocabulary
        self._drop(st)
        return np.ascontiguousarray(w).reshape(-1, t.shape[0])

    def _drop(self, st: _STensor) -> None:
        """let the kernel drop the pages of a tensor already read (peak memory stays
        near the largest tensor, not the model)"""
        mm = self._maps.get(st.file)
        start = st.begin // mmap.PAGESIZE * mmap.PAGESIZE
        if mm is not None and hasattr(mm, "madvise") and st.end > start:
            try:
                mm.madvise(mmap.MADV_DONTNEED, start, st.end - start)
            except (OSError, ValueError):
                pass

    def kv_bytes(self) -> list[tuple[str, bytes]]:
        return [(k, encode(t, v)) for k, t, v in (self._gemma3_kv() if self.arch == "gemma3" else self._kv())]

    def _head_kv(self, n_ctx_default: int) -> list:
        """the keys both converters below write first, in their order"""
        c, a = self.cfg, self.arch
        return [("general.architecture", V.STRING, a), ("general.type", V.STRING, "model"),
                ("general.name", V.STRING, self.folder.name),
                (f"{a}.block_count", V.UINT32, c["num_hidden_layers"]),
                (f"{a}.context_length", V.UINT32, c.get("max_position_embeddings", n_ctx_default)),
                (f"{a}.embedding_length", V.UINT32, c["hidden_size"]),
                (f"{a}.feed_forward_length", V.UINT32, c["intermediate_size"]),
                (f"{a}.attention.head_count", V.UINT32, self.n_head),
                (f"{a}.attention.head_count_kv", V.UINT32, self.n_head_kv)]

    def _gemma3_kv(self) -> list:
        """Gemma3Model.set_gguf_parameters' keys, in its order"""
        c, a = self.cfg, "gemma3"
        rp = c.get("rope_parameters") or {}
        full, local = rp.get("full_attention", rp), rp.get("sliding_attention", {})
        scaling = c.get("rope_scaling") or full
        kv = self._head_kv(131072)
        if scaling.get("rope_type", scaling.get("type")) == "linear" and scaling.get("factor") is not None:
            kv += [(f"{a}.rope.scaling.type", V.STRING, "linear"),
                   (f"{a}.rope.scaling.factor", V.FLOAT32, scaling["factor"])]
        swa_base = local.get("rope_theta", c.get("rope_local_base_freq"))
        if swa_base is not None:
            kv.append((f"{a}.rope.freq_base_swa", V.FLOAT32, swa_base))
        kv += [(f"{a}.attention.layer_norm_rms_epsilon", V.FLOAT32, c.get("rms_norm_eps", 1e-6)),
               (f"{a}.attention.key_length", V.UINT32, self.head_dim),
               (f"{a}.attention.value_length", V.UINT32, self.head_dim),
               (f"{a}.rope.freq_base", V.FLOAT32, full.get("rope_theta", c.get("rope_theta", 1_000_000.0)))]
        if c.get("final_logit_softcapping"):
            kv.append((f"{a}.final_logit_softcapping", V.FLOAT32, c["final_logit_softcapping"]))
        if c.get("sliding_window_pattern") != 1 and c.get("sliding_window"):
            kv.append((f"{a}.attention.sliding_window", V.UINT32, c["sliding_window"]))
        return kv + self.tok["kv"]

    def _kv(self) -> list:
        c, a = self.cfg, self.arch
        kv = self._head_kv(2048) + [(f"{a}.rope.freq_base", V.FLOAT32, c.get("rope_theta", 10000.0)),
                                    (f"{a}.attention.layer_norm_rms_epsilon", V.FLOAT32, c.get("rms_norm_eps", 1e-5))]
        if a == "qwen3" or self.head_dim != c["hidden_size"] // self.n_head:
            kv += [(f"{a}.attention.key_length", V.UINT32, self.head_dim),
                   (f"{a}.attention.value_length", V.UINT32, self.head_dim)]
        kv += [(f"{a}.vocab_size", V.UINT32, len(self.tok["tokens"])),
               (f"{a}.rope.dimension_count", V.UINT32, self.head_dim)]
        if a == "granite":
            kv += [(f"{a}.{key}", V.FLOAT32, c[hf]) for hf, key in _GRANITE_SCALES if c.get(hf)]
        return kv + self.tok["kv"]

    def close(self) -> None:
        for mm in self._maps.values():
            mm.close()
        self._maps.clear()


def _llama3_rope_factors(cfg: dict, head_dim: int) -> np.ndarray | None:
    """Llama 3's rope scaling as the rope_freqs tensor (one divisor per frequency
    pair), computed as llama.cpp's converter does: the frequencies in float32, the
    rest in double, stored as float32"""
    rs = cfg.get("rope_scaling") or {}
    if str(rs.get("rope_type", rs.get("type", ""))).lower() != "llama3":
        return None
    import math

    base = float(cfg.get("rope_theta", 10000.0))
    freqs = (np.float32(1.0) / (np.float32(base) ** (np.arange(0, head_dim, 2, dtype=np.float32) /
                                                      np.float32(head_dim)))).astype(np.float32)
    factor = float(rs.get("factor", 8.0))
    lo, hi = float(rs.get("low_freq_factor", 1.0)), float(rs.get("high_freq_factor", 4.0))
    old = float(rs.get("original_max_position_embeddings", 8192))
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / float(f)
        if wavelen < old / hi:
            out.append(1.0)
        elif wavelen > old / lo:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


# -------------------------------------------------------------- tokenizer

def _pre_name(tj: dict) -> str:
    """llama.cpp's tokenizer.ggml.pre from the pre-tokenizer's structure (the
    converter hashes HF's tokenization instead; the structures below are what
    those tokenizers carry)"""
    pre = tj.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    pats = " ".join(str((p.get("pattern") or {}).get("Regex", "")) for p in parts if p.get("type") == "Split")
    if r"\p{N}{1,3}" in pats and r"(?i:'s|'t|'re|'ve|'m|'ll|'d)" in pats:
        return "llama-bpe"
    if r"\p{N}" in pats and "(?i:'s|'t|'re|'ve|'m|'ll|'d)" in pats:
        return "qwen2"
    if kinds == ["ByteLevel"]:
        return "gpt-2"
    raise QuantizeError("tokenizer.json: a pre-tokenizer llmlite cannot name for llama.cpp "
                        f"({', '.join(k or '?' for k in kinds)})")


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, i
        shift += 7


def read_sentencepiece(path: Path) -> list[tuple[str, float, int]]:
    """(piece, score, type) of a SentencePiece tokenizer.model (the ModelProto's
    field 1; type as sentencepiece numbers it: 1 normal, 2 unknown, 3 control,
    4 user-defined, 5 unused, 6 byte)"""
    b = path.read_bytes()
    out, i = [], 0
    try:
        while i < len(b):
            tag, i = _varint(b, i)
            field, wt = tag >> 3, tag & 7
            if wt == 2:
                n, i = _varint(b, i)
                if field == 1:
                    piece, score, ty, j = "", 0.0, 1, i
                    while j < i + n:
                        t2, j = _varint(b, j)
                        f2, w2 = t2 >> 3, t2 & 7
                        if f2 == 1 and w2 == 2:
                            m, j = _varint(b, j)
                            piece = b[j:j + m].decode("utf-8")
                            j += m
                        elif f2 == 2 and w2 == 5:
                            score = struct.unpack_from("<f", b, j)[0]
                            j += 4
                        elif f2 == 3 and w2 == 0:
                            ty, j = _varint(b, j)
                        elif w2 == 0:
                            _, j = _varint(b, j)
                        elif w2 == 2:
                            m, j = _varint(b, j)
                            j += m
                        elif w2 == 5:
                            j += 4
                        elif w2 == 1:
                            j += 8
                        else:
                            raise ValueError(w2)
                    out.append((piece, score, ty))
                i += n
            elif wt == 0:
                _, i = _varint(b, i)
            elif wt == 5:
                i += 4
            elif wt == 1:
                i += 8
            else:
                raise ValueError(wt)
    except (IndexError, ValueError, UnicodeDecodeError):
        raise QuantizeError(f"{path}: not a SentencePiece model") from None
    if not out:
        raise QuantizeError(f"{path}: no pieces in this SentencePiece model")
    return out


def _looks_special(t: str) -> bool:
    return (t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (t.startswith("<|") and t.endswith("|>"))
            or (t.startswith("<\uff5c") and t.endswith("\uff5c>")) or (t.startswith("<unused") and t.endswith(">")))


def _special_kv(tc: dict, cfg: dict, lookup) -> list:
    kv = []
    for key, name in (("bos_token", "bos"), ("eos_token", "eos"), ("unk_token", "unknown"), ("pad_token", "padding")):
        v = tc.get(key)
        v = v.get("content") if isinstance(v, dict) else v
        i = lookup(v) if isinstance(v, str) else None
        if i is None and key in ("bos_token", "eos_token", "pad_token") and isinstance(cfg.get(f"{key}_id"), int):
            i = cfg[f"{key}_id"]
        if i is not None:
            kv.append((f"tokenizer.ggml.{name}_token_id", V.UINT32, i))
    for key in ("add_bos_token", "add_sep_token", "add_eos_token"):
        if key in tc:
            kv.append((f"tokenizer.ggml.{key}", V.BOOL, bool(tc[key])))
    if isinstance(tc.get("chat_template"), str):
        kv.append(("tokenizer.chat_template", V.STRING, tc["chat_template"]))
    return kv


def _spm_tokenizer(folder: Path, cfg: dict, tc: dict, arch: str) -> dict:
    """llama.cpp's converter on a SentencePiece vocabulary: the pieces with their
    scores and types (user-defined pieces count as normal), then the added tokens of
    tokenizer_config.json (special-looking: control; others: user-defined, score
    -1000, the SentencePiece space as a space)"""
    pieces = read_sentencepiece(folder / "tokenizer.model")
    n = cfg.get("vocab_size") or len(pieces)
    tokens = [f"[PAD{i}]" for i in range(n)]
    scores = [-10000.0] * n
    types = [5] * n
    for i, (p, sc, ty) in enumerate(pieces[:n]):
        tokens[i], scores[i], types[i] = p, sc, ty if ty in (2, 3, 5, 6) else 1
    for k, d in (tc.get("added_tokens_decoder") or {}).items():
        i, t = int(k), d["content"]
        if i >= n:
            continue
        if d.get("special") or _looks_special(t):
            types[i] = 3
        else:
            t = t.replace("\u2581", " ")
            types[i] = 4
        scores[i] = -1000.0
        tokens[i] = t
    index = {t: i for i, t in enumerate(tokens)}
    kv = [("tokenizer.ggml.model", V.STRING, "llama"), ("tokenizer.ggml.pre", V.STRING, "default"),
          ("tokenizer.ggml.tokens", STRINGS, tokens), ("tokenizer.ggml.scores", F32S, scores),
          ("tokenizer.ggml.token_type", I32S, types)]
    kv += _special_kv(tc, cfg, index.get)
    if arch == "gemma3":
        kv.append(("tokenizer.ggml.add_space_prefix", V.BOOL, False))
    return {"tokens": tokens, "kv": kv}


def _tokenizer(folder: Path, cfg: dict, arch: str = "llama") -> dict:
    tc_path = folder / "tokenizer_config.json"
    tc = _read_json(tc_path) if tc_path.is_file() else {}
    if (folder / "tokenizer.model").is_file():
        return _spm_tokenizer(folder, cfg, tc, arch)
    tj_path = folder / "tokenizer.json"
    if not tj_path.is_file():
        raise QuantizeError(f"{folder}: no tokenizer.json or tokenizer.model")
    tj = _read_json(tj_path)
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise QuantizeError(f"{tj_path}: tokenizer model {model.get('type')} (BPE is supported)")
    vocab: dict[str, int] = dict(model["vocab"])
    added = {t["id"]: t for t in tj.get("added_tokens", [])}
    for i, t in added.items():
        vocab[t["content"]] = i
    n = max(cfg.get("vocab_size", 0), max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [5] * n        # unused, until filled
    for tok, i in vocab.items():
        tokens[i] = tok
        types[i] = 1
    for i, t in added.items():
        types[i] = 3 if t.get("special") else 4
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    pre = _pre_name(tj)
    if arch == "granite" and pre == "smollm":   # the same structure; llama.cpp's converter (by its hash) says refact
        pre = "refact"
    kv = [("tokenizer.ggml.model", V.STRING, "gpt2"), ("tokenizer.ggml.pre", V.STRING, pre),
          ("tokenizer.ggml.tokens", STRINGS, tokens), ("tokenizer.ggml.token_type", I32S, types),
          ("tokenizer.ggml.merges", STRINGS, merges)]
    kv += _special_kv(tc, cfg, vocab.get)
    return {"tokens": tokens, "kv": kv}
