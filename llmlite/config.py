"""A model's hyper-parameters, read from its GGUF once (ModelConfig.of), and the one
place they become the C forward pass's llm_config (ModelConfig.to_c).

`llmlite info`, the offload plan, `bench` and the model all read this one object;
the facts about architectures that the C side needs (its id, rotary layout, Gemma's
scalings) are one row each of ARCHS.
"""
from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass, field, replace

import numpy as np

from llmlite import config_families as families, settings
from llmlite._lib import ffi, lib
from llmlite.errors import LlmliteError
from llmlite.gguf import GGUFError, StringArray
from llmlite.gguf.constants import VALUE_TYPE_NAMES, Keys
from llmlite.gguf.reader import _show

MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS
# an integer hyper-parameter becomes a C int of llm_config (2^31 would wrap negative there)
MAX_INT = (1 << 31) - 1
# Gemma 3 files carry no pattern: llama.cpp's default, five sliding-window layers then a global one
GEMMA3_SWA_PATTERN = 6
# a layer's tensor: blk.N.<its name within the layer>
BLK = re.compile(r"blk\.(\d+)\.(.*)", re.S)


def layer_of(name: str) -> tuple[int, str] | None:
    """(N, the rest) for a tensor named blk.N.rest; None for a global tensor."""
    m = BLK.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


@dataclass(frozen=True)
class Arch:
    """What the C forward pass must know of an architecture beyond its hyper-parameters."""
    c_id: int                 # LLM_ARCH_* (csrc/llmlite.h)
    rope_neox: bool = True    # rotary pairs (i, i + n_rot/2); False: adjacent pairs (llama's NORM)
    gemma: bool = False       # Gemma's scalings: embeddings by sqrt(n_embd), Q by 1/sqrt(head_dim), GELU FFN
    moe: bool = False         # a mixture of experts (softmax router) in place of the dense FFN
    expert_norm_w: bool = False   # the chosen experts' weights divided by their sum (llama.cpp's norm_w)
    shared_expert: bool = False   # a dense shared expert beside the routed ones, gated by a sigmoid
    shexp_sigmoid: bool = False   # that sigmoid as ggml_sigmoid (qwen35moe), not silu(g) / g (qwen2moe)
    # gpt-oss (llama.cpp's openai_moe): the k largest router logits chosen, their softmax the
    # weights (SOFTMAX_WEIGHT); the clamped SwiGLU (its swiglu_oai, alpha and limit fixed in
    # llama.cpp's graph); sliding-window layers every other one unless the file says
    softmax_k: bool = False
    swiglu_oai: tuple[float, float] | None = None
    swa_pattern: int | None = None
    # Gemma 4: Q, K and V rms-normed and the scores unscaled (its attention scale is 1);
    # its sliding layers' own head size, rotary dims and base; K/V shared by its last
    # layers; per-layer token embeddings (read by _read_gemma4)
    gemma4: bool = False
    # a layer tensor's name in the file -> the slot name it fills (gpt-oss's post_attention_norm
    # is the norm before its FFN, not one applied to the attention's output as Gemma's)
    renames: tuple = ()
    # qwen35: gated delta-net (linear attention) layers between full-attention ones, whose
    # queries carry a per-head output gate, rotated by the multi-section rope
    hybrid: bool = False
    # smollm3: every nope_step-th layer attends without rotary embedding (llama.cpp fixes
    # its n_no_rope_layer_step at 4; the file carries no key for it)
    nope_step: int = 0
    # lfm2: short-convolution layers (n_head_kv 0) between attention ones (read_shortconv)
    shortconv: bool = False
    granite: bool = False     # granite's embedding, residual, attention and logit multipliers (read_granite)


# the architectures the C side runs
ARCHS = {"llama": Arch(lib.LLM_ARCH_LLAMA, rope_neox=False), "qwen2": Arch(lib.LLM_ARCH_QWEN2),
         "qwen3": Arch(lib.LLM_ARCH_QWEN3), "gemma3": Arch(lib.LLM_ARCH_GEMMA3, gemma=True),
         "phi3": Arch(lib.LLM_ARCH_PHI3),
         "qwen3moe": Arch(lib.LLM_ARCH_QWEN3MOE, moe=True, expert_norm_w=True),
         "qwen2moe": Arch(lib.LLM_ARCH_QWEN2MOE, moe=True, shared_expert=True),
         "gpt-oss": Arch(lib.LLM_ARCH_GPTOSS, moe=True, softmax_k=True, swiglu_oai=(1.702, 7.0), swa_pattern=2,
                         renames=(("post_attention_norm.weight", "ffn_norm.weight"),)),
         # its 26B-A4B's experts (where the file has expert_count): renormalised softmax top-k, GEGLU
         "gemma4": Arch(lib.LLM_ARCH_GEMMA4, gemma=True, gemma4=True, expert_norm_w=True),
         "qwen35": Arch(lib.LLM_ARCH_QWEN35, hybrid=True, renames=(("post_attention_norm.weight", "ffn_norm.weight"),)),
         "smollm3": Arch(lib.LLM_ARCH_SMOLLM3, rope_neox=False, nope_step=4),
         "mistral3": Arch(lib.LLM_ARCH_MISTRAL3, rope_neox=False),
         "lfm2": Arch(lib.LLM_ARCH_LFM2, shortconv=True, renames=(("token_embd_norm.weight", "output_norm.weight"),)),
         "granite": Arch(lib.LLM_ARCH_GRANITE, rope_neox=False, granite=True),
         "granitemoe": Arch(lib.LLM_ARCH_GRANITEMOE, rope_neox=False, granite=True, moe=True, expert_norm_w=True)}
# qwen35's layers, every FFN a renormalised softmax top-k with a sigmoid-gated shared expert
ARCHS["qwen35moe"] = replace(ARCHS["qwen35"], moe=True, expert_norm_w=True, shared_expert=True, shexp_sigmoid=True)

_BUILT: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # open GGUFFile -> its ModelConfig


def _unsupported(arch: str) -> str:
    return f"unsupported architecture '{_show(arch)}' (supported: {', '.join(ARCHS)})"


def _int(v) -> int | None:
    return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else None


@dataclass
class ModelConfig:
    """The model hyper-parameters that a forward pass needs, read from GGUF metadata."""

    arch: str
    name: str = ""
    n_layer: int = 0
    n_ctx_train: int = 0
    n_embd: int = 0
    n_ff: int = 0                      # the first layer's, if per-layer
    n_ff_per_layer: list[int] = field(default_factory=list)
    n_head: int = 0                    # the first layer's, if per-layer
    n_head_per_layer: list[int] = field(default_factory=list)
    n_head_kv: int = 0                 # the first layer's, if per-layer
    n_head_kv_per_layer: list[int] = field(default_factory=list)
    head_dim: int = 0                  # key_length (default n_embd / n_head)
    head_dim_v: int = 0                # value_length (default head_dim)
    n_rot: int = 0                     # rope.dimension_count (default head_dim)
    rope_freq_base: float = 10000.0
    rope_freq_base_swa: float | None = None
    rope_scaling_type: str | None = None
    rope_scaling_factor: float = 1.0   # freq_scale = 1 / factor
    rope_orig_ctx: int | None = None
    rope_attn_factor: float = 1.0      # rope.scaling.attn_factor
    rms_eps: float = 1e-5
    norm_eps: float | None = None      # layer_norm_epsilon (non-RMS norms)
    sliding_window: int = 0            # 0: no sliding-window attention
    sliding_window_pattern: int | None = None
    swa_layers: list[bool] = field(default_factory=list)  # True where a layer uses the window
    attn_logit_softcapping: float | None = None
    final_logit_softcapping: float | None = None
    n_vocab: int = 0
    tokenizer_model: str | None = None
    tokenizer_pre: str | None = None
    has_chat_template: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    add_bos_token: bool | None = None
    add_eos_token: bool | None = None
    param_count: int = 0
    tied_embeddings: bool = False
    n_expert: int = 0                  # 0: a dense FFN
    n_expert_used: int = 0             # experts each token runs
    n_ff_exp: int = 0                  # an expert's width
    n_ff_shexp: int = 0                # the shared expert's width (0: none)
    expert_weights_scale: float = 0.0  # 0 or 1: the weights unscaled
    active_param_count: int = 0        # parameters one token computes with (param_count when dense)
    head_dim_swa: int = 0              # gemma4: the sliding layers' head size (0: head_dim)
    n_rot_swa: int = 0                 # gemma4: the sliding layers' rotary dims (0: n_rot)
    n_kv_shared: int = 0               # gemma4: the last layers reading an earlier layer's K/V
    n_embd_per_layer: int = 0          # gemma4: per-layer token embedding width (0: none)
    # qwen35's gated delta-net layers (llama.cpp's ssm.* keys): conv taps, head width, key
    # heads (group_count), value heads (time_step_rank); which layers are recurrent
    ssm_d_conv: int = 0
    ssm_d_state: int = 0
    ssm_n_group: int = 0
    ssm_n_v_head: int = 0
    recurrent_layers: list[bool] = field(default_factory=list)
    rope_sections: list[int] = field(default_factory=list)
    nope_layers: list[bool] = field(default_factory=list)   # smollm3: the layers without rope
    # mistral3: the query temperature (0: none) and its floor scale (the original context);
    # YaRN's betas and log multiplier as its file gives them (llama.cpp's defaults otherwise)
    attn_temp_scale: float = 0.0
    attn_temp_floor: int = 0
    yarn_beta_fast: float = 32.0
    yarn_beta_slow: float = 1.0
    yarn_log_mul: float = 0.0
    # granite's multipliers, 0 where the file has none (llama.cpp's reading: no scaling)
    embedding_scale: float = 0.0
    residual_scale: float = 0.0
    attention_scale: float = 0.0
    logit_scale: float = 0.0

    @classmethod
    def of(cls, g) -> "ModelConfig":
        """The configuration of an open GGUFFile, read on first use and kept with it:
        the model, its offload plan and `bench` share the one reading."""
        cfg = _BUILT.get(g)
        if cfg is None:
            cfg = _BUILT[g] = cls.from_gguf(g)
        return cfg

    @classmethod
    def from_gguf(cls, g) -> "ModelConfig":
        """Read the metadata of g (an open GGUFFile). A missing or ill-typed value raises
        GGUFError (one line), and so does a value the forward pass cannot use (an architecture
        it does not run, a zero size, a NaN or non-positive epsilon or rotary base): `info`
        and `run` refuse a file alike, before anything is sized from it."""
        md = g.metadata
        arch = md.get(Keys.General.ARCHITECTURE)
        if not isinstance(arch, str) or not arch:
            raise GGUFError(f"{g.path}: metadata {Keys.General.ARCHITECTURE} is missing (not a model file?)")
        if arch not in ARCHS:
            raise GGUFError(f"{g.path}: {_unsupported(arch)}")

        def bad(key, why):
            return GGUFError(f"{g.path}: metadata {_show(key)} {why}")

        def num(key, default=None, kind=int, positive=True):
            """key's value; a float must be finite and, where positive, above 0 (an epsilon,
            a base or a scale: 0, negative or NaN would turn every activation into NaN)."""
            k = key.format(arch=arch)
            v = md.get(k)
            if v is None:
                return default
            if kind is int:
                iv = _int(v)
                if iv is None:
                    raise bad(k, f"has type {VALUE_TYPE_NAMES[g.metadata_types[k]]}, expected an integer")
                if not 0 <= iv <= MAX_INT:
                    raise bad(k, f"is {iv:,}, out of range (0 to {MAX_INT:,})")
                return iv
            if isinstance(v, (bool, str, list, StringArray, np.ndarray)):
                raise bad(k, f"has type {VALUE_TYPE_NAMES[g.metadata_types[k]]}, expected a number")
            fv = float(v)
            if not math.isfinite(fv) or fv < 0 or (positive and fv == 0):
                raise bad(k, f"is {fv:g}, expected a {'positive' if positive else 'non-negative'} finite number")
            return fv

        L, A, R, T = Keys.LLM, Keys.Attention, Keys.Rope, Keys.Tokenizer
        n_layer = num(L.BLOCK_COUNT)
        if n_layer is None:
            raise GGUFError(f"{g.path}: metadata {_show(L.BLOCK_COUNT.format(arch=arch))} is missing "
                            "(not a model file?)")
        if not 1 <= n_layer <= MAX_LAYERS:
            raise bad(L.BLOCK_COUNT.format(arch=arch), f"is {n_layer:,} (expected 1 to {MAX_LAYERS})")
        nm = md.get(Keys.General.NAME)
        cfg = cls(arch=arch, name=nm if isinstance(nm, str) else "")
        cfg.n_layer = n_layer
        cfg.n_ctx_train = num(L.CONTEXT_LENGTH, 0)
        cfg.n_embd = num(L.EMBEDDING_LENGTH, 0)

        def layered(key, default):
            k = key.format(arch=arch)
            v = md.get(k)
            if v is None:
                return [default] * n_layer
            if isinstance(v, np.ndarray):
                if v.ndim != 1 or v.size != n_layer or v.dtype.kind not in "iu":
                    raise bad(k, f"is an array of {v.size} {v.dtype}, expected {n_layer} per-layer integers")
                lst = [int(x) for x in v]
                if min(lst) < 0 or max(lst) > MAX_INT:
                    raise bad(k, "has a value out of range")
                return lst
            return [num(key)] * n_layer

        cfg.n_ff_per_layer = layered(L.FEED_FORWARD_LENGTH, 0)
        cfg.n_ff = cfg.n_ff_per_layer[0]
        cfg.n_head_per_layer = layered(A.HEAD_COUNT, 0)
        cfg.n_head = cfg.n_head_per_layer[0]
        cfg.n_head_kv_per_layer = layered(A.HEAD_COUNT_KV, cfg.n_head)
        cfg.n_head_kv = next((h for h in cfg.n_head_kv_per_layer if h), 0)   # lfm2's conv layers have 0
        # the sizes every layer divides by or allocates from: the C side has no default for them
        for key, v in ((L.EMBEDDING_LENGTH, cfg.n_embd), (L.FEED_FORWARD_LENGTH, cfg.n_ff),
                       (A.HEAD_COUNT, cfg.n_head), (A.HEAD_COUNT_KV, cfg.n_head_kv)):
            if not v:
                raise bad(key.format(arch=arch), "is missing or 0")
        dflt_hd = cfg.n_embd // cfg.n_head if cfg.n_head else 0
        cfg.head_dim = num(A.KEY_LENGTH, dflt_hd)
        cfg.head_dim_v = num(A.VALUE_LENGTH, cfg.head_dim)
        cfg.n_rot = num(R.DIMENSION_COUNT, cfg.head_dim)
        # each query head reads key/value head h / (n_head / n_head_kv), and rotates n_rot of its
        # head_dim values: either out of step reads past a row
        if cfg.n_head % cfg.n_head_kv:
            raise bad(A.HEAD_COUNT_KV.format(arch=arch), f"is {cfg.n_head_kv:,}, which does not divide "
                      f"{A.HEAD_COUNT.format(arch=arch)} {cfg.n_head:,}")
        if cfg.n_rot > cfg.head_dim or cfg.n_rot % 2:
            raise bad(R.DIMENSION_COUNT.format(arch=arch), f"is {cfg.n_rot:,} (expected an even number "
                      f"up to the head size {cfg.head_dim:,})")
        cfg.rope_freq_base = num(R.FREQ_BASE, 10000.0, float)
        cfg.rope_freq_base_swa = num(R.FREQ_BASE_SWA, None, float)
        st = md.get(R.SCALING_TYPE.format(arch=arch))
        cfg.rope_scaling_type = st if isinstance(st, str) else None
        cfg.rope_scaling_factor = num(R.SCALING_FACTOR, 1.0, float)
        cfg.rope_orig_ctx = num(R.SCALING_ORIG_CTX_LEN, None)
        cfg.rope_attn_factor = num(R.SCALING_ATTN_FACTOR, 1.0, float)
        cfg.rms_eps = num(A.LAYERNORM_RMS_EPS, 1e-5, float)
        cfg.norm_eps = num(A.LAYERNORM_EPS, None, float)
        cfg.sliding_window = num(A.SLIDING_WINDOW, 0)
        # a softcap of 0 is none
        cfg.attn_logit_softcapping = num(L.ATTN_LOGIT_SOFTCAPPING, None, float, positive=False)
        cfg.final_logit_softcapping = num(L.FINAL_LOGIT_SOFTCAPPING, None, float, positive=False)
        gemma3 = arch.startswith("gemma3")
        pat = md.get(A.SLIDING_WINDOW_PATTERN.format(arch=arch))
        if isinstance(pat, np.ndarray):     # one flag per layer
            if pat.ndim != 1 or pat.size != n_layer:
                raise bad(A.SLIDING_WINDOW_PATTERN.format(arch=arch),
                          f"is an array of {pat.size}, expected {n_layer} per-layer flags")
            cfg.swa_layers = [bool(x) for x in pat]
        else:
            n = num(A.SLIDING_WINDOW_PATTERN)
            if n is None and gemma3 and cfg.sliding_window:
                n = GEMMA3_SWA_PATTERN
            if n is None and cfg.sliding_window:
                n = ARCHS[arch].swa_pattern
            cfg.sliding_window_pattern = n
            if cfg.sliding_window and n:
                cfg.swa_layers = [il % n < n - 1 for il in range(n_layer)]
            elif cfg.sliding_window:
                cfg.swa_layers = [True] * n_layer
            else:
                cfg.swa_layers = [False] * n_layer
        if gemma3 and cfg.sliding_window and cfg.rope_freq_base_swa is None:
            cfg.rope_freq_base_swa = 10000.0
        if cfg.rope_freq_base_swa is None and ARCHS[arch].swa_pattern:   # gpt-oss: one base for both
            cfg.rope_freq_base_swa = cfg.rope_freq_base

        toks = md.get(T.LIST)
        cfg.n_vocab = len(toks) if isinstance(toks, (StringArray, list)) else (num(L.VOCAB_SIZE, 0) or 0)
        tm, tp = md.get(T.MODEL), md.get(T.PRE)
        cfg.tokenizer_model = tm if isinstance(tm, str) else None
        cfg.tokenizer_pre = tp if isinstance(tp, str) else None
        cfg.has_chat_template = isinstance(md.get(T.CHAT_TEMPLATE), str)
        cfg.bos_token_id, cfg.eos_token_id = _int(md.get(T.BOS_ID)), _int(md.get(T.EOS_ID))
        ab, ae = md.get(T.ADD_BOS), md.get(T.ADD_EOS)
        cfg.add_bos_token = ab if isinstance(ab, bool) else None
        cfg.add_eos_token = ae if isinstance(ae, bool) else None
        cfg.param_count = g.param_count()
        cfg.tied_embeddings = "output.weight" not in g.tensors
        if ARCHS[arch].moe or (ARCHS[arch].gemma4 and L.EXPERT_COUNT.format(arch=arch) in md):
            families.read_experts(cfg, ARCHS[cfg.arch], num, layered, bad)
        if ARCHS[arch].gemma4:
            families.read_gemma4(cfg, num, bad)
        if ARCHS[arch].hybrid:
            families.read_hybrid(cfg, g, num, bad)
        if arch in families.READERS:
            families.READERS[arch](cfg, g, num, bad)
        cfg.active_param_count = cfg.param_count - cfg.idle_expert_params(g)
        return cfg

    def idle_expert_params(self, g) -> int:
        """Parameters of the experts a token does not run: (n_expert - n_expert_used)
        of every n_expert of the expert tensors' (their biases too)."""
        if not self.n_expert:
            return 0
        idle = 0
        for name, t in g.tensors.items():
            if name.endswith(("_exps.weight", "_exps.bias")):   # gpt-oss's experts have biases
                idle += int(np.prod(t.shape, dtype=np.int64)) // self.n_expert * (self.n_expert - self.n_expert_used)
        return idle

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 0

    @property
    def layer_kinds(self) -> list[str]:
        """each layer's kind: "attention", "linear" (a gated delta-net layer) or "shortconv" (lfm2's)"""
        rec = "shortconv" if ARCHS[self.arch].shortconv else "linear"
        return [rec if r else "attention" for r in self.recurrent_layers] or ["attention"] * self.n_layer

    @property
    def gpu_missing(self) -> str | None:
        """What the CUDA backend cannot run of this model yet (its layers then stay on the
        CPU), or None"""
        if self.is_moe:
            return "mixture-of-experts layers"
        if any(self.recurrent_layers):
            return "short-convolution layers" if ARCHS[self.arch].shortconv else "linear-attention (gated delta-net) layers"
        if self.rope_scaling_type == "yarn" and self.rope_scaling_factor != 1.0:
            return "YaRN rope"
        if any(self.nope_layers):
            return "layers without rotary embedding (NoPE)"
        if self.attn_temp_scale:
            return "attention temperature scaling"
        if ARCHS[self.arch].gemma4:
            return "Gemma 4 layers (per-layer embeddings, shared K/V, two head sizes)"
        if self.residual_scale not in (0.0, 1.0) or self.logit_scale not in (0.0, 1.0):
            return "Granite residual and logit scales"
        return None

    def layer_head_dim(self, il: int) -> int:
        """layer il's head size (gemma4's sliding layers have their own)"""
        return self.head_dim_swa if self.head_dim_swa and self.swa_layers and self.swa_layers[il] else self.head_dim

    def own_kv(self, il: int) -> bool:
        """whether layer il keeps a K/V cache (gemma4's last n_kv_shared read another's)"""
        return il < self.n_layer - self.n_kv_shared

    @property
    def default_ctx(self) -> int:
        """the context a model gets when none is asked for (settings.default_ctx)"""
        return settings.default_ctx(self.n_ctx_train)

    @property
    def recurrent_state_bytes(self) -> int:
        """a linear-attention layer's state in place of its KV cache (F32): each conv
        channel's last d_conv - 1 inputs and each value head's d_state x d_state matrix,
        and as much again for each copy csrc/delta_net.c keeps for rewinds"""
        d, nv = self.ssm_d_state, self.ssm_n_v_head
        if ARCHS[self.arch].shortconv:   # lfm2: the n_embd channels' inputs only
            floats = self.n_embd * (self.ssm_d_conv - 1)
        else:
            floats = (2 * d * self.ssm_n_group + d * nv) * (self.ssm_d_conv - 1) + nv * d * d if d else 0
        return 4 * (1 + lib.LLM_DN_SLOTS) * floats

    def kv_cache_bytes(self, n_ctx: int, bytes_per_elem: int = 2, windowed: bool = False) -> int:
        """Bytes of an F16 K and V cache for n_ctx positions (every layer full,
        or sliding-window layers holding only the window when windowed); a
        linear-attention layer's recurrent state instead of its cache."""
        total = 0
        for il in range(self.n_layer):
            cells = n_ctx
            if windowed and self.sliding_window and self.swa_layers and self.swa_layers[il]:
                cells = min(n_ctx, self.sliding_window)
            total += self.layer_kv_bytes(il, cells, bytes_per_elem)
        return total

    def layer_kv_bytes(self, il: int, n_ctx: int, bytes_per_elem: int = 2) -> int:
        """layer il's K and V cache for n_ctx positions (gemma4's: its head size, and
        none where it reads another layer's); a linear-attention layer's recurrent state"""
        if self.recurrent_layers and self.recurrent_layers[il]:
            return self.recurrent_state_bytes
        if not self.own_kv(il):
            return 0
        hd = self.layer_head_dim(il)
        hd_v = self.head_dim_v if hd == self.head_dim else hd   # gemma4: one size per layer kind
        return n_ctx * self.n_head_kv_per_layer[il] * (hd + hd_v) * bytes_per_elem

    # ---- the C side's view ----
    @property
    def _c_swa_pattern(self) -> int:
        # one pattern for every layer: the C side has no per-layer list (a file's per-layer
        # array is its period where it has one, as Gemma 4's do; else 1: no sliding window)
        return self.sliding_window_pattern or families.period(self.swa_layers) or 1

    def c_windows(self) -> list[int]:
        """Per layer, the window the C forward pass's attention reads (0: the whole
        context): forward.c's is_swa, a window and a pattern p > 1 with il % p < p - 1."""
        p = self._c_swa_pattern
        return [self.sliding_window if self.sliding_window > 0 and p > 1 and il % p < p - 1 else 0
                for il in range(self.n_layer)]

    def to_c(self, n_vocab: int, flash_attn: bool = False) -> "ffi.CData":
        """The llm_config the C forward pass takes (the one place one is made): n_vocab is
        the rows of token_embd. Raises LlmliteError (one line) for an architecture the C
        side does not run (from_gguf has checked the sizes it needs)."""
        arch = ARCHS.get(self.arch)
        if arch is None:    # from_gguf refuses these; a ModelConfig made by hand may not have
            raise LlmliteError(_unsupported(self.arch))
        c = ffi.new("llm_config *")
        c.arch = arch.c_id
        # n_ff: the widest layer's (the C side reads each layer's from its tensors)
        c.n_layer, c.n_embd, c.n_ff, c.n_head, c.n_head_kv = (self.n_layer, self.n_embd, max(self.n_ff_per_layer, default=self.n_ff),
                                                              self.n_head, self.n_head_kv)
        c.head_dim = self.head_dim
        c.n_vocab = n_vocab
        c.n_rot = self.n_rot
        c.rope_neox = 1 if arch.rope_neox else 0
        c.rms_eps = self.rms_eps
        c.rope_base = self.rope_freq_base
        linear = self.rope_scaling_type == "linear" and self.rope_scaling_factor
        yarn = self.rope_scaling_type == "yarn" and self.rope_scaling_factor
        c.rope_scale = 1.0 / self.rope_scaling_factor if linear or yarn else 1.0
        c.rope_base_swa = 10000.0 if self.rope_freq_base_swa is None else self.rope_freq_base_swa
        # gpt-oss's sliding-window layers share the full ones' scaling (llama.cpp's
        # rope_freq_scale_train_swa); Gemma 3's are unscaled
        c.rope_scale_swa = c.rope_scale if arch.swa_pattern else 1.0
        if yarn:   # ext_factor 1 (llama.cpp's for YaRN); the betas 32 and 1 unless the family reads its own
            c.rope_ext_factor, c.yarn_beta_fast, c.yarn_beta_slow = 1.0, self.yarn_beta_fast, self.yarn_beta_slow
            c.yarn_log_mul = self.yarn_log_mul
            c.rope_attn_factor = self.rope_attn_factor
            c.n_ctx_orig = self.rope_orig_ctx or self.n_ctx_train
        c.sliding_window = self.sliding_window
        c.swa_pattern = self._c_swa_pattern
        c.logit_softcap = self.final_logit_softcapping or 0.0
        c.flash_attn = 1 if flash_attn else 0
        # float32 as llama.cpp computes them: 1.0f/sqrtf(head_dim), sqrtf(n_embd)
        inv_sqrt_hd = float(np.float32(1.0) / np.sqrt(np.float32(self.head_dim)))
        if arch.gemma:
            c.attn_scale, c.q_prescale = 1.0, (1.0 if arch.gemma4 else inv_sqrt_hd)
            c.embd_scale = float(np.sqrt(np.float32(self.n_embd), dtype=np.float32))
            c.ffn_gelu = 1
        else:
            c.attn_scale, c.q_prescale, c.embd_scale, c.ffn_gelu = inv_sqrt_hd, 1.0, 1.0, 0
        self.set_c_experts(c)
        c.rope_skip = [1 if x else 0 for x in self.nope_layers]
        c.attn_temp_scale, c.attn_temp_floor = self.attn_temp_scale, self.attn_temp_floor
        if arch.granite:
            families.set_c_granite(self, c)
        if arch.gemma4:
            c.head_dim_swa, c.n_rot_swa, c.n_embd_ple = self.head_dim_swa, self.n_rot_swa, self.n_embd_per_layer
            c.n_layer_kv = self.n_layer - self.n_kv_shared if self.n_kv_shared else 0
            c.v_norm = 1
            kv = {bool(s): h for s, h in zip(self.swa_layers or [False] * self.n_layer, self.n_head_kv_per_layer)}
            c.n_head_kv = kv.get(False, self.n_head_kv)      # the full layers' (head_dim's)
            c.n_head_kv_swa = kv.get(True, 0)
        if arch.hybrid:
            c.ssm_d_conv, c.ssm_d_state = self.ssm_d_conv, self.ssm_d_state
            c.ssm_n_group, c.ssm_n_v_head = self.ssm_n_group, self.ssm_n_v_head
            c.attn_q_gate = 1
            c.rope_sections = list(self.rope_sections)
        if arch.shortconv:
            c.ssm_d_conv = self.ssm_d_conv
        return c

    def set_c_experts(self, c) -> None:
        """The expert fields of an llm_config c (to_c's; the offload planner sizes a
        span's buffers on a one-layer config that carries them)"""
        c.n_expert, c.n_expert_used, c.n_ff_exp = self.n_expert, self.n_expert_used, self.n_ff_exp
        c.n_ff_shexp = self.n_ff_shexp
        c.shexp_ungated = 1 if ARCHS[self.arch].granite else 0   # granitemoe's shared expert has no gate
        c.shexp_sigmoid = 1 if ARCHS[self.arch].shexp_sigmoid else 0
        c.expert_norm_w = 1 if ARCHS[self.arch].expert_norm_w else 0
        c.expert_w_scale = self.expert_weights_scale
        arch = ARCHS[self.arch]
        c.expert_softmax_k = 1 if arch.softmax_k else 0
        if arch.swiglu_oai:
            c.swiglu_alpha, c.swiglu_limit = arch.swiglu_oai
