"""`llmlite quantize`: a GGUF in, a GGUF out with llama-quantize's choices and bytes.

The plan (which type each tensor gets) follows llama.cpp's src/llama-quant.cpp:
tensors in the loader's order (layer number, -1 for the global tensors, then the
name byte-wise), the category rules of each file type with their counters, then the
fallbacks for rows that are not whole blocks. The bytes come from the reference
quantizers in csrc/quantize.c. The file is written as llama-quantize writes it
(through llmlite/gguf/writer.py): every input key/value copied in order, then
general.quantization_version and general.file_type last, tensor data aligned to
the input's general.alignment (32 without one).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmlite.config import layer_of
from llmlite.errors import QuantizeError
from llmlite.gguf.constants import FILE_TYPE_NAMES, QUANT_VERSION, GGMLType, Keys, ValueType, file_type, type_name
from llmlite.gguf.writer import TensorOut, encode, with_alignment, write_gguf

# short names for the rules below, as llama-quant.cpp's GGML_TYPE_* read
F32, F16, BF16, Q4_0, Q5_0, Q5_1, Q8_0 = (GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q4_0, GGMLType.Q5_0,
                                          GGMLType.Q5_1, GGMLType.Q8_0)
Q4_1 = GGMLType.Q4_1
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K = GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K
MXFP4, TQ1_0, TQ2_0 = GGMLType.MXFP4, GGMLType.TQ1_0, GGMLType.TQ2_0
IQ4_NL, IQ4_XS = GGMLType.IQ4_NL, GGMLType.IQ4_XS
IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S = GGMLType.IQ1_S, GGMLType.IQ1_M, GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S
IQ3_XXS, IQ3_S = GGMLType.IQ3_XXS, GGMLType.IQ3_S
FLOAT_TYPES = {F32, F16, BF16}


def file_type_value(name: str) -> int:
    """general.file_type of a file type named as llama-quantize names it"""
    return {n: f for f, n in FILE_TYPE_NAMES.items()}[name.upper()]

# the file types whose rules _rules implements, by llama-quantize's names -> (general.file_type
# value, the tensor type the rules start from)
FTYPES = {name: file_type(name) for name in ("f32", "f16", "bf16", "q4_0", "q4_1", "q8_0", "q5_0", "q5_1",
                                             "q2_k", "q3_k_m", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
                                             "mxfp4_moe", "tq1_0", "tq2_0", "iq4_nl", "iq4_xs",
                                             "iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq3_s")}
# the grid i-quant file types whose name is not their default tensor type
# (llama_ftype_get_default_type: IQ2_S starts from IQ2_XS, IQ2_M from IQ2_S, IQ3_XS and IQ3_M from IQ3_S)
FTYPES.update({name: (file_type_value(name), int(t)) for name, t in (("iq2_s", IQ2_XS), ("iq2_m", IQ2_S),
                                                                     ("iq3_xs", IQ3_S), ("iq3_m", IQ3_S))})
IQ4_FTYPES = ("iq4_nl", "iq4_xs")
# the very low-bit file types, which take their own branch of the rules (llama-quant.cpp)
IQ_LOW_FTYPES = ("iq2_xxs", "iq2_xs", "iq1_s", "iq2_s", "iq2_m", "iq1_m")
# the tensor types llama-quantize will not write without an importance matrix (tensor_requires_imatrix)
NEEDS_IMATRIX = {IQ3_XXS, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_M, IQ1_S}


def _blck(t: int) -> int:
    from llmlite import _lib

    return _lib.lib.llm_type_block_elems(t)


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def category(name: str) -> str:
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for key, cat in (("attn_qkv.weight", "attn_qkv"), ("attn_kv_b.weight", "attn_kv_b"), ("attn_v.weight", "attn_v"),
                     ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"), ("attn_output.weight", "attn_output"),
                     ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"), ("ffn_down", "ffn_down")):
        if key in name:
            return cat
    return "other"


ATTN_V_LIKE = ("attn_v", "attn_qkv", "attn_kv_b")
_NO_QUANT = ("_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
             "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
             "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
             "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
             "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
             "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
             "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
             ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd")


def allows_quantization(name: str, n_dims: int) -> bool:
    """llama.cpp's tensor_allows_quantization (without --leave-output-tensor)"""
    if n_dims < 2 or not name.endswith("weight"):
        return False
    if name in ("position_embd.weight", "token_types.weight"):
        return False
    return not any(k in name for k in _NO_QUANT)


def loader_order(names) -> list[str]:
    """the model loader's weights_map order: layer number (-1 without one), then name"""
    def key(n):
        blk = layer_of(n)
        return (blk[0] if blk else -1, n.encode())
    return sorted(names, key=key)


@dataclass
class Planned:
    name: str
    shape: tuple          # GGUF order: ne[0] first
    src_type: int
    dst_type: int
    src_bytes: int
    dst_bytes: int


class _State:
    def __init__(self, names, n_layer: int, n_gqa: int, n_expert: int, has_imatrix: bool = False):
        self.n_attention_wv = sum(category(n) in ATTN_V_LIKE for n in names)
        self.has_tied = "output.weight" not in names
        self.n_layer, self.n_gqa, self.n_expert = n_layer, n_gqa, n_expert
        self.has_imatrix = has_imatrix
        self.i_attention_wv = self.i_ffn_down = self.i_ffn_gate = self.i_ffn_up = 0


def _fallback(ne0: int, t: int) -> int:
    """tensor_type_fallback: rows that are not whole blocks of t"""
    if ne0 % _blck(t) == 0:
        return t
    r = {Q2_K: Q4_0, Q3_K: Q4_0, TQ1_0: Q4_0, TQ2_0: Q4_0, Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0,
         IQ4_XS: IQ4_NL, IQ1_S: IQ4_NL, IQ1_M: IQ4_NL, IQ2_XXS: IQ4_NL, IQ2_XS: IQ4_NL, IQ2_S: IQ4_NL,
         IQ3_XXS: IQ4_NL, IQ3_S: IQ4_NL}.get(t, t)
    return r if ne0 % _blck(r) == 0 else F16


def _rules(st: _State, ftype: str, t: int, name: str, ne0: int, cat: str, n_mat: int = 1) -> int:
    """llama_tensor_get_type_impl for the file types above (non-Falcon); n_mat: the
    tensor's matrices (ne[2]: its experts)"""
    if cat == "output" or (st.has_tied and cat == "token_embd"):
        if ftype == "mxfp4_moe" or ne0 % _blck(t):
            return Q8_0
        if ftype in (*IQ_LOW_FTYPES, "iq3_xxs"):
            return Q5_K
        return t if t == Q8_0 else Q6_K
    if ftype == "mxfp4_moe":
        # the experts (one matrix each, stacked) to MXFP4, every other tensor to Q8_0: so a
        # dense model comes out all Q8_0
        return MXFP4 if n_mat > 1 else Q8_0
    if cat == "token_embd":
        return {"tq1_0": Q4_K, "tq2_0": Q4_K, "iq2_xxs": Q2_K, "iq2_xs": Q2_K, "iq1_s": Q2_K, "iq1_m": Q2_K,
                "iq2_s": IQ3_S, "iq2_m": IQ3_S, "iq3_xxs": IQ3_S}.get(ftype, t)
    if ftype in IQ_LOW_FTYPES:
        return _rules_iq_low(st, ftype, t, cat)
    if cat in ATTN_V_LIKE:
        if ftype == "q2_k":
            t = Q4_K if st.n_gqa >= 4 else Q3_K
        elif ftype == "q3_k_m":
            t = Q5_K if st.i_attention_wv < 2 else Q4_K
        elif ftype in ("q4_k_m", "q5_k_m") and use_more_bits(st.i_attention_wv, st.n_attention_wv):
            t = Q6_K
        elif ftype == "q4_k_s" and st.i_attention_wv < 4:
            t = Q5_K
        elif ftype in IQ4_FTYPES and st.n_gqa >= 4:
            t = Q5_K
        elif ftype == "iq3_xxs":
            t = Q4_K if st.n_gqa >= 4 else IQ3_XXS if st.has_imatrix else IQ3_S
        elif (ftype in ("iq3_xs", "iq3_s") and st.n_gqa >= 4) or ftype == "iq3_m":
            t = Q4_K
        if st.n_expert == 8:
            t = Q8_0
        st.i_attention_wv += 1
        return t
    if cat == "attn_k" and st.n_expert == 8:
        return Q8_0
    if cat in ("attn_k", "attn_q"):
        return {"iq3_xs": IQ3_XXS, "iq3_xxs": IQ2_S}.get(ftype, t)
    if cat in ("ffn_gate", "ffn_up"):
        return _rules_gate_up(st, ftype, t, name, cat)
    if cat == "ffn_down":
        i, n = st.i_ffn_down, st.n_layer
        if st.n_expert > 1:
            blk = layer_of(name)
            i = blk[0] if blk else i
        if ftype == "q2_k":
            t = Q3_K
        elif ftype == "q3_k_m":
            t = Q5_K if i < n // 16 else Q4_K
        elif ftype == "q4_k_m":
            if use_more_bits(i, n):
                t = Q6_K
        elif ftype in IQ4_FTYPES and i < n // 8 and not st.has_imatrix:
            t = Q5_K
        elif ftype == "q5_k_m" and use_more_bits(i, n):
            t = Q6_K
        elif ftype == "q4_k_s" and i < n // 8:
            t = Q5_K
        elif ftype in ("q4_0", "q5_0") and st.has_imatrix and i < n // 8:
            # llama.cpp's guard for the first ffn_down layers, only with an importance matrix
            t = Q4_1 if ftype == "q4_0" else Q5_1
        elif ftype == "iq3_xxs" and not st.has_imatrix:
            t = Q4_K if i < n // 8 else Q3_K
        elif ftype == "iq3_m" and (i < n // 8 or (st.n_expert == 8 and use_more_bits(i, n))):
            t = Q4_K
        st.i_ffn_down += 1
        return t
    if cat == "attn_output":
        if st.n_expert == 8:
            return Q5_K if ftype in ("q2_k", "q3_k_m", "q4_k_s", "q4_k_m", *IQ4_FTYPES, "iq3_xs", "iq3_xxs", "iq3_s",
                                     "iq3_m") else t
        return {"q2_k": Q3_K, "q3_k_m": Q4_K, "iq3_xxs": IQ3_S, "iq3_m": Q4_K}.get(ftype, t)
    return t          # attn_qkv is attn_v-like (above), as in llama.cpp


def _rules_iq_low(st: _State, ftype: str, t: int, cat: str) -> int:
    """the branch of llama_tensor_get_type_impl for IQ2_XXS, IQ2_XS, IQ1_S, IQ2_S,
    IQ2_M, IQ1_M (after the output and token_embd rules): ffn_down's first eighth
    counted by tensor, not by layer"""
    up = IQ3_S if ftype in ("iq2_s", "iq2_m") else Q2_K
    if cat in ATTN_V_LIKE:
        st.i_attention_wv += 1
        return Q4_K if st.n_gqa >= 4 or st.n_expert >= 4 else up
    if cat == "attn_k" and st.n_expert == 8:
        return Q4_K
    if cat == "ffn_down":
        first_eighth = st.i_ffn_down < st.n_layer // 8
        st.i_ffn_down += 1
        return up if first_eighth else t
    if cat == "attn_output":
        if st.n_expert == 8:
            return Q5_K
        return {"iq1_s": IQ2_XXS, "iq1_m": IQ2_XXS, "iq2_s": IQ3_S, "iq2_m": IQ3_S}.get(ftype, t)
    return t


def _rules_gate_up(st: _State, ftype: str, t: int, name: str, cat: str) -> int:
    """ffn_gate / ffn_up: IQ3_XS takes IQ3_XXS for the middle layers (by counter, by
    the name's layer in a mixture of experts)"""
    attr = "i_ffn_gate" if cat == "ffn_gate" else "i_ffn_up"
    i, n = getattr(st, attr), st.n_layer
    setattr(st, attr, i + 1)
    if st.n_expert > 1:
        blk = layer_of(name)
        i = blk[0] if blk else i
    return IQ3_XXS if ftype == "iq3_xs" and n // 8 <= i < 7 * n // 8 else t


def refuse_without_imatrix(p: list[Planned]) -> None:
    """llama-quantize's refusal without an importance matrix: a tensor (not the token
    embeddings or the output) planned as a type that needs one (tensor_requires_imatrix)"""
    for e in p:
        if (e.dst_type in NEEDS_IMATRIX and allows_quantization(e.name, len(e.shape))
                and e.name not in ("token_embd.weight", "per_layer_token_embd.weight", "output.weight")):
            raise QuantizeError(f"this quantization requires an importance matrix: {e.name} would be "
                                f"{type_name(e.dst_type)}")


def plan(g, ftype: str, has_imatrix: bool = False) -> list[Planned]:
    """the type of every tensor of g (an open GGUF, or any source with .tensors
    and .get) for this file type; has_imatrix: whether an importance matrix comes
    with it (some rules depend on that)"""
    from llmlite import _lib

    if ftype not in FTYPES:
        raise QuantizeError(f"unknown type {ftype!r}: one of {', '.join(FTYPES)}")
    default = FTYPES[ftype][1]
    arch = g.get("general.architecture", "")
    names = loader_order(g.tensors)
    n_layer = int(g.get(f"{arch}.block_count", 0) or 0)
    n_head = g.get(f"{arch}.attention.head_count", 1)
    n_head_kv = g.get(f"{arch}.attention.head_count_kv", n_head)
    # per-layer arrays: llama.cpp's n_gqa() is layer 0's, 0 where it has no KV heads (lfm2's conv layers)
    n_head = n_head[0] if isinstance(n_head, (list, tuple, np.ndarray)) else n_head
    n_head_kv = n_head_kv[0] if isinstance(n_head_kv, (list, tuple, np.ndarray)) else n_head_kv
    n_gqa = int(n_head) // int(n_head_kv) if n_head_kv else 0
    st = _State(names, n_layer, n_gqa, int(g.get(f"{arch}.expert_count", 0) or 0), has_imatrix)
    out = []
    for name in names:
        ti = g.tensors[name]
        t = ti.type
        if allows_quantization(name, len(ti.shape)):
            t = default
            if default not in FLOAT_TYPES:
                n_mat = ti.shape[2] if len(ti.shape) > 2 else 1
                t = _fallback(ti.shape[0], _rules(st, ftype, t, name, ti.shape[0], category(name), n_mat))
        rows = ti.n_elements // ti.shape[0]
        dst_bytes = rows * _lib.row_bytes(t, ti.shape[0]) if t != ti.type else ti.nbytes
        out.append(Planned(name, tuple(ti.shape), ti.type, int(t), ti.nbytes, dst_bytes))
    return out


# ------------------------------------------------------------------ writing

def _kv_section(stored_kvs, ftype_value: int, alignment: int | None, imatrix=None) -> list[tuple[str, bytes]]:
    """llama-quantize's key/values: the input's in order (without the ones it rewrites
    or a split model's), then the quantization version and the file type, then
    the importance matrix's (quantize.imatrix.*, when one is used)"""
    G, S = Keys.General, Keys.Split
    extra = [(G.QUANTIZATION_VERSION, encode(ValueType.UINT32, QUANT_VERSION)),
             (G.FILE_TYPE, encode(ValueType.UINT32, ftype_value))]
    for k, vt, v in imatrix.kvs() if imatrix is not None else ():
        extra.append((k, encode(ValueType.STRING, v) if vt == "str" else encode(ValueType.UINT32, v & 0xFFFFFFFF)))
    # a key llama-quantize sets moves to the end (gguf_set_val replaces it there)
    drop = {S.LLM_KV_SPLIT_NO, S.LLM_KV_SPLIT_COUNT, S.LLM_KV_SPLIT_TENSORS_COUNT, *(k for k, _ in extra)}
    kvs = [(k, v) for k, v in stored_kvs if k not in drop]
    if alignment is not None:
        kvs = with_alignment(kvs, alignment)
    return kvs + extra


class GGUFSource:
    """A GGUF file as the input of write_quantized: its tensors (TensorInfo), its
    metadata, its key/values as stored, a tensor's bytes or floats."""

    def __init__(self, path):
        from llmlite.gguf import open_gguf

        self.path = Path(path)
        self.g = open_gguf(path)
        self.tensors = self.g.tensors

    def get(self, key, default=None):
        return self.g.get(key, default)

    def kv_bytes(self) -> list[tuple[str, bytes]]:
        return self.g.stored_kvs()

    def raw(self, name):
        return self.g.tensor_data(name)

    def floats(self, name) -> np.ndarray:
        from llmlite import _lib

        t = self.tensors[name]
        return _lib.dequantize(t.type, self.g.tensor_data(name), t.n_elements).reshape(-1, t.shape[0])

    def close(self) -> None:
        self.g.close()


def write_quantized(source, dst, ftype: str, allow_requantize: bool = False, progress=None,
                    alignment: int | None = None, imatrix=None) -> dict:
    """Write dst from source (GGUFSource, or a checkpoint from convert_hf) for
    ftype; returns a summary. progress(done, total, Planned) after each tensor.
    alignment: the data's (general.alignment set to it); default: the source's.
    imatrix: an ImportanceMatrix (llmlite.imatrix) or None; one without entries
    counts as none, as in llama-quantize.
    The output goes to a temporary file beside dst, renamed when complete (an
    error or Ctrl-C leaves nothing at dst)."""
    from llmlite import _lib
    from llmlite.imatrix import tensor_weights

    t0 = time.perf_counter()
    imatrix = imatrix if imatrix is not None and imatrix.weights else None
    p = plan(source, ftype, has_imatrix=imatrix is not None)
    if imatrix is None:
        refuse_without_imatrix(p)
    if not allow_requantize:
        for e in p:
            if e.dst_type != e.src_type and e.src_type not in FLOAT_TYPES:
                raise QuantizeError(f"{e.name} is already {type_name(e.src_type)}: "
                                    "requantizing loses quality (--allow-requantize to do it anyway)")

    weights = {e.name: tensor_weights(imatrix, e, ftype) for e in p if e.dst_type != e.src_type}

    def data(i: int):
        e = p[i]
        raw = source.raw(e.name) if e.dst_type == e.src_type else None
        if raw is not None:
            return raw
        x, w = source.floats(e.name), weights.get(e.name)
        if w is None:
            return _lib.quantize_rows(e.dst_type, x)
        # an expert's rows with its own vector (llama.cpp: imatrix + expert * n_per_row)
        per = x.shape[0] // len(w)
        return np.concatenate([_lib.quantize_rows(e.dst_type, x[k * per:(k + 1) * per], imatrix=w[k])
                               for k in range(len(w))])

    write_gguf(dst, _kv_section(source.kv_bytes(), FTYPES[ftype][0], alignment, imatrix),
               [TensorOut(e.name, e.shape, e.dst_type, e.dst_bytes) for e in p], data,
               progress and (lambda done, total: progress(done, total, p[done - 1])))
    counts: dict[str, int] = {}
    for e in p:
        tn = type_name(e.dst_type)
        counts[tn] = counts.get(tn, 0) + 1
    n_params = sum(int(np.prod(e.shape)) for e in p)
    return {"tensors": len(p), "types": counts, "bytes_in": sum(e.src_bytes for e in p),
            "bytes_out": sum(e.dst_bytes for e in p), "params": n_params,
            "bpw": 8.0 * sum(e.dst_bytes for e in p) / max(1, n_params), "seconds": time.perf_counter() - t0}
