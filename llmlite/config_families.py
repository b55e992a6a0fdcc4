"""Hyper-parameters that only some families carry: mixtures of experts, Gemma 4's
per-layer kinds, qwen35's gated delta-net, smollm3's NoPE layers, mistral3's query
temperature and YaRN keys, Granite's multipliers. Each reader fills a ModelConfig that
config.py has begun, and raises one GGUFError line for what the forward pass cannot run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llmlite.gguf import GGUFError
from llmlite.gguf.constants import ExpertGatingFuncType, Keys

if TYPE_CHECKING:
    from llmlite.config import Arch, ModelConfig

MAX_EXPERTS = 512  # llama.cpp's LLAMA_MAX_EXPERTS (LLM_MAX_EXPERTS in csrc/model.h)
# llama.cpp's per-layer recurrent flags (LLM_KV_ATTENTION_RECURRENT_LAYERS; gguf-py has no name for it)
RECURRENT_LAYERS = "{arch}.attention.recurrent_layers"
# llama.cpp's expert gating functions (LLAMA_EXPERT_GATING_FUNC_TYPE_*); these archs route by softmax
GATING_SOFTMAX = int(ExpertGatingFuncType.SOFTMAX)


def read_experts(cfg: ModelConfig, family: Arch, num, layered, bad) -> None:
    """A mixture of experts' hyper-parameters (llama.cpp's defaults where a key is
    missing); one GGUFError line for what the forward pass cannot run."""
    L, arch = Keys.LLM, cfg.arch
    cfg.n_expert = num(L.EXPERT_COUNT, 0)
    cfg.n_expert_used = num(L.EXPERT_USED_COUNT, 0)
    if not 0 < cfg.n_expert <= MAX_EXPERTS:
        raise bad(L.EXPERT_COUNT.format(arch=arch), f"is {cfg.n_expert:,} (expected 1 to {MAX_EXPERTS})")
    if not 0 < cfg.n_expert_used <= cfg.n_expert:
        raise bad(L.EXPERT_USED_COUNT.format(arch=arch),
                  f"is {cfg.n_expert_used:,} (expected 1 to the {cfg.n_expert:,} experts)")
    widths = set(layered(L.EXPERT_FEED_FORWARD_LENGTH, 0))
    if len(widths) > 1:
        raise bad(L.EXPERT_FEED_FORWARD_LENGTH.format(arch=arch), "differs between layers (not supported)")
    cfg.n_ff_exp = widths.pop() or cfg.n_ff // cfg.n_expert_used
    if not cfg.n_ff_exp:
        raise bad(L.EXPERT_FEED_FORWARD_LENGTH.format(arch=arch), "is missing or 0")
    if family.shared_expert:
        cfg.n_ff_shexp = num(L.EXPERT_SHARED_FEED_FORWARD_LENGTH, 0) or cfg.n_ff
    gating = num(L.EXPERT_GATING_FUNC, GATING_SOFTMAX)
    if gating != GATING_SOFTMAX and not family.softmax_k:   # llama.cpp fixes gpt-oss's gating
        name = next((f.name.lower() for f in ExpertGatingFuncType if f == gating), "unknown")
        raise bad(L.EXPERT_GATING_FUNC.format(arch=arch), f"is {gating} ({name}): llmlite routes {arch} "
                  "experts by softmax only")
    # expert_weights_scale stays 0 (unscaled): llama.cpp reads {arch}.expert_weights_scale
    # for other mixtures of experts (deepseek2...), not for these


def period(flags: list[bool]) -> int | None:
    """p where flags[il] is il % p < p - 1 for every layer (sliding layers then a full
    one, repeated), or None"""
    for p in range(2, len(flags) + 1):
        if all(f == (il % p < p - 1) for il, f in enumerate(flags)):
            return p
    return None


def read_gemma4(cfg: ModelConfig, num, bad) -> None:
    """Gemma 4's hyper-parameters beyond Gemma 3's (llama.cpp's defaults where a key is
    missing); one GGUFError line for what the forward pass cannot run."""
    L, A, R, arch = Keys.LLM, Keys.Attention, Keys.Rope, cfg.arch
    key = lambda k: k.format(arch=arch)   # noqa: E731
    cfg.head_dim_swa = num(A.KEY_LENGTH_SWA, cfg.head_dim)
    if num(A.VALUE_LENGTH_SWA, cfg.head_dim_swa) != cfg.head_dim_swa or cfg.head_dim_v != cfg.head_dim:
        raise bad(key(A.VALUE_LENGTH_SWA), "differs from the key length (Gemma 4 has one head size per layer kind)")
    cfg.n_rot_swa = num(R.DIMENSION_COUNT_SWA, cfg.n_rot)
    if cfg.n_rot_swa > cfg.head_dim_swa or cfg.n_rot_swa % 2:
        raise bad(key(R.DIMENSION_COUNT_SWA), f"is {cfg.n_rot_swa:,} (expected an even number up to the "
                  f"sliding layers' head size {cfg.head_dim_swa:,})")
    cfg.n_embd_per_layer = num(L.EMBD_LENGTH_PER_LAYER_INP, 0)
    cfg.n_kv_shared = num(A.SHARED_KV_LAYERS, 0)
    n_kv = cfg.n_layer - cfg.n_kv_shared
    # the shared layers read layer n_kv - 2 (sliding) or n_kv - 1 (full), as llama.cpp maps them
    if cfg.n_kv_shared and (n_kv < 2 or not cfg.swa_layers[n_kv - 2] or cfg.swa_layers[n_kv - 1]):
        raise bad(key(A.SHARED_KV_LAYERS), f"is {cfg.n_kv_shared:,}: the layers before the shared ones must end "
                  "with a sliding and a full one")
    if any(cfg.swa_layers) and period(cfg.swa_layers) is None:
        raise bad(key(A.SLIDING_WINDOW_PATTERN), "is not sliding layers then a full one, repeated (not supported)")
    # KV heads per layer kind (26B-A4B's sliding layers have more than its full ones)
    kinds = {(cfg.swa_layers[il] if cfg.swa_layers else False, h) for il, h in enumerate(cfg.n_head_kv_per_layer)}
    if len(kinds) > len({k for k, _ in kinds}):
        raise bad(key(A.HEAD_COUNT_KV), "differs between layers of one kind (not supported)")
    for _, h in kinds:
        if not h or cfg.n_head % h:
            raise bad(key(A.HEAD_COUNT_KV), f"has {h:,}, which does not divide {key(A.HEAD_COUNT)} {cfg.n_head:,}")


def check_layer_kinds(cfg: ModelConfig, g, marker: str, kinds: tuple[str, str]) -> None:
    """one GGUFError line for a layer whose tensors are not its kind's (kinds: the
    recurrent layers' name, the others'): the C side tells the kinds apart by the
    marker tensor, which a recurrent layer has and no other"""
    for il, rec in enumerate(cfg.recurrent_layers):
        if rec != (f"blk.{il}.{marker}" in g.tensors):
            kind, want = (kinds[0], marker) if rec else (kinds[1], "no " + marker)
            raise GGUFError(f"{g.path}: layer {il} is a {kind} layer but has {'no ' if rec else ''}tensor "
                            f"blk.{il}.{marker} (expected {want})")


def read_hybrid(cfg: ModelConfig, g, num, bad) -> None:
    """qwen35's gated delta-net sizes, recurrent layers and rope sections (llama.cpp's
    keys; the recurrent-layer list where the file has one, else every layer but each
    full_attention_interval-th); one GGUFError line for what the forward pass cannot run,
    a layer whose tensors are not its kind's among them (the C side tells the kinds
    apart by ssm_out)."""
    L, S, arch, md = Keys.LLM, Keys.SSM, cfg.arch, g.metadata
    n_mtp = num(L.NEXTN_PREDICT_LAYERS, 0)
    if n_mtp >= cfg.n_layer:
        raise bad(L.NEXTN_PREDICT_LAYERS.format(arch=arch), f"is {n_mtp:,}, not fewer than the {cfg.n_layer:,} blocks")
    if n_mtp:   # multi-token-prediction blocks after the trunk's (block_count counts them): never run
        cfg.n_layer -= n_mtp
        for per_layer in (cfg.n_ff_per_layer, cfg.n_head_per_layer, cfg.n_head_kv_per_layer, cfg.swa_layers):
            del per_layer[cfg.n_layer:]
    cfg.ssm_d_conv, cfg.ssm_d_state = num(S.CONV_KERNEL, 0), num(S.STATE_SIZE, 0)
    cfg.ssm_n_group, cfg.ssm_n_v_head = num(S.GROUP_COUNT, 0), num(S.TIME_STEP_RANK, 0)
    for key, v, hi in ((S.CONV_KERNEL, cfg.ssm_d_conv, 64), (S.STATE_SIZE, cfg.ssm_d_state, 1 << 12),
                       (S.GROUP_COUNT, cfg.ssm_n_group, 1 << 12), (S.TIME_STEP_RANK, cfg.ssm_n_v_head, 1 << 12)):
        if not 0 < v <= hi:
            raise bad(key.format(arch=arch), f"is {v:,} (expected 1 to {hi:,})")
    if cfg.ssm_n_v_head % cfg.ssm_n_group:
        raise bad(S.TIME_STEP_RANK.format(arch=arch), f"is {cfg.ssm_n_v_head:,}, not a multiple of "
                  f"{S.GROUP_COUNT.format(arch=arch)} {cfg.ssm_n_group:,}")
    inner = num(S.INNER_SIZE, cfg.ssm_d_state * cfg.ssm_n_v_head)
    if inner != cfg.ssm_d_state * cfg.ssm_n_v_head:
        raise bad(S.INNER_SIZE.format(arch=arch), f"is {inner:,}, expected state_size x time_step_rank "
                  f"({cfg.ssm_d_state * cfg.ssm_n_v_head:,})")
    listed = md.get(RECURRENT_LAYERS.format(arch=arch))
    if isinstance(listed, np.ndarray) and listed.ndim == 1 and listed.size >= cfg.n_layer:
        cfg.recurrent_layers = [bool(x) for x in listed[:cfg.n_layer]]
    else:
        every = num(L.FULL_ATTENTION_INTERVAL, 4)
        if not every:
            raise bad(L.FULL_ATTENTION_INTERVAL.format(arch=arch), "is 0")
        cfg.recurrent_layers = [(il + 1) % every != 0 for il in range(cfg.n_layer)]
    check_layer_kinds(cfg, g, "ssm_out.weight", ("linear-attention", "full-attention"))
    sec = md.get(Keys.Rope.DIMENSION_SECTIONS.format(arch=arch))
    cfg.rope_sections = [int(x) for x in sec][:4] if isinstance(sec, np.ndarray) else []
    cfg.rope_sections += [0] * (4 - len(cfg.rope_sections))
    if any(x < 0 for x in cfg.rope_sections):
        raise bad(Keys.Rope.DIMENSION_SECTIONS.format(arch=arch), f"has a negative section: {cfg.rope_sections}")


def _rope_whole_head(cfg: ModelConfig, bad) -> None:
    """llama.cpp's smollm3, mistral3 and granite graphs assert one head size for K and V, all of it rotated"""
    A, R, arch = Keys.Attention, Keys.Rope, cfg.arch
    if cfg.head_dim_v != cfg.head_dim:
        raise bad(A.VALUE_LENGTH.format(arch=arch), f"is {cfg.head_dim_v:,}, not the key length {cfg.head_dim:,}")
    if cfg.n_rot != cfg.head_dim:
        raise bad(R.DIMENSION_COUNT.format(arch=arch), f"is {cfg.n_rot:,}, not the head size {cfg.head_dim:,} "
                  f"({arch} rotates whole heads)")


def read_smollm3(cfg: ModelConfig, g, num, bad) -> None:
    """SmolLM3's NoPE layers: every nope_step-th attends without rope (llama.cpp fixes the
    step; no key for it); one GGUFError line for a head the graph cannot take."""
    from llmlite.config import ARCHS

    _rope_whole_head(cfg, bad)
    step = ARCHS[cfg.arch].nope_step
    cfg.nope_layers = [(il + 1) % step == 0 for il in range(cfg.n_layer)]


# the dense FFN's biases (optional in llama.cpp's mistral3 and granite loaders): llmlite's FFN has no slot for them
FFN_BIASES = ("ffn_gate.bias", "ffn_up.bias", "ffn_down.bias")


def _no_ffn_biases(g) -> None:
    biased = next((n for n in g.tensors if n.startswith("blk.") and n.endswith(FFN_BIASES)), None)
    if biased:
        raise GGUFError(f"{g.path}: tensor {biased}: FFN biases are not supported")


def read_mistral3(cfg: ModelConfig, g, num, bad) -> None:
    """Ministral 3's query temperature (llama 4's: its floor scale the original context,
    as llama.cpp sets it) and its YaRN keys; one GGUFError line for what the forward pass
    cannot run (its experts, FFN biases)."""
    L, A, R, arch = Keys.LLM, Keys.Attention, Keys.Rope, cfg.arch
    _rope_whole_head(cfg, bad)
    n_expert = num(L.EXPERT_COUNT, 0)
    if n_expert:
        raise bad(L.EXPERT_COUNT.format(arch=arch), f"is {n_expert:,}: llmlite runs dense mistral3 models only")
    _no_ffn_biases(g)
    cfg.yarn_beta_fast = num(R.SCALING_YARN_BETA_FAST, 32.0, float)
    cfg.yarn_beta_slow = num(R.SCALING_YARN_BETA_SLOW, 1.0, float)
    cfg.yarn_log_mul = num(R.SCALING_YARN_LOG_MUL, 0.0, float, positive=False)
    cfg.attn_temp_scale = num(A.TEMPERATURE_SCALE, 0.0, float, positive=False)
    if cfg.attn_temp_scale:
        cfg.attn_temp_floor = cfg.rope_orig_ctx or cfg.n_ctx_train
        if not cfg.attn_temp_floor:
            raise bad(R.SCALING_ORIG_CTX_LEN.format(arch=arch), "is missing or 0 (the attention temperature's scale)")


def read_shortconv(cfg: ModelConfig, g, num, bad) -> None:
    """lfm2's short-convolution layers (llama.cpp's: a layer with head_count_kv 0 is one):
    the convolution's taps (shortconv.l_cache, kept in ssm_d_conv) and which layers;
    one GGUFError line for what the forward pass cannot run."""
    A, arch = Keys.Attention, cfg.arch
    key = lambda k: k.format(arch=arch)   # noqa: E731
    cfg.ssm_d_conv = num(Keys.ShortConv.L_CACHE, 0)
    if not 1 < cfg.ssm_d_conv <= 64:
        raise bad(key(Keys.ShortConv.L_CACHE), f"is {cfg.ssm_d_conv:,} (expected 2 to 64)")
    cfg.recurrent_layers = [h == 0 for h in cfg.n_head_kv_per_layer]
    if len({h for h in cfg.n_head_kv_per_layer if h}) > 1:
        raise bad(key(A.HEAD_COUNT_KV), "differs between attention layers (not supported)")
    if cfg.sliding_window:
        # llama.cpp's lfm2 with a window: every attention layer slides, on the one rope base.
        # The C side's pattern p makes layer il slide where il % p < p - 1: n_layer + 1, all
        # of them (the convolution layers have no attention to window)
        cfg.swa_layers = [not r for r in cfg.recurrent_layers]
        cfg.sliding_window_pattern = cfg.n_layer + 1
        cfg.rope_freq_base_swa = cfg.rope_freq_base
    causal = g.metadata.get(key(A.CAUSAL), True)
    if causal is not True:   # LFM2's embedding models (Lfm2BidirectionalModel) see both ways
        raise bad(key(A.CAUSAL), f"is {causal}: bidirectional (embedding) lfm2 models are not supported")
    check_layer_kinds(cfg, g, "shortconv.out_proj.weight", ("short-convolution", "attention"))


# llama.cpp's key for Granite Vision's deepstack layers (gguf-py here has no name for it)
DEEPSTACK_MAPPING = "{arch}.deepstack_mapping"


def read_granite(cfg: ModelConfig, g, num, bad) -> None:
    """Granite's multipliers: the embeddings', the residual branches', the attention's
    (in place of 1/sqrt(head_dim)) and the logits' (they are divided by it). 0 or absent
    is none, as llama.cpp reads them, but for logit_scale, which llama.cpp requires; a
    negative, infinite or NaN one is refused. One GGUFError line for what llmlite does not
    run of the family: no rope (rope.scaling.finetuned false), a vision model's deepstack
    inputs, FFN biases, head counts that differ between layers (Granite 4.0's non-hybrid
    files list them per layer, all equal)."""
    L, A, R, arch, md = Keys.LLM, Keys.Attention, Keys.Rope, cfg.arch, g.metadata
    for key, per_layer in ((A.HEAD_COUNT, cfg.n_head_per_layer), (A.HEAD_COUNT_KV, cfg.n_head_kv_per_layer)):
        if len(set(per_layer)) > 1:
            raise bad(key.format(arch=arch), f"differs between layers ({', '.join(map(str, per_layer))}): "
                      "not supported for granite")
    cfg.embedding_scale = num(L.EMBEDDING_SCALE, 0.0, float, positive=False)
    cfg.residual_scale = num(L.RESIDUAL_SCALE, 0.0, float, positive=False)
    cfg.attention_scale = num(A.SCALE, 0.0, float, positive=False)
    cfg.logit_scale = num(L.LOGIT_SCALE, 0.0, float)
    if not cfg.logit_scale:
        raise bad(L.LOGIT_SCALE.format(arch=arch), "is missing (a granite model's logits are divided by it)")
    if md.get(R.SCALING_FINETUNED.format(arch=arch)) is False:
        raise bad(R.SCALING_FINETUNED.format(arch=arch), "is false: a granite without rope is not supported")
    ds = md.get(DEEPSTACK_MAPPING.format(arch=arch))
    if isinstance(ds, np.ndarray) and (ds >= 0).any():
        raise bad(DEEPSTACK_MAPPING.format(arch=arch), "maps vision inputs to layers (Granite Vision): not supported")
    _rope_whole_head(cfg, bad)      # llama.cpp's granite graph asserts it too
    if cfg.n_expert:   # granitemoe: llama.cpp's experts are feed_forward_length wide; a shared expert where set
        cfg.n_ff_exp = cfg.n_ff
        cfg.n_ff_shexp = num(L.EXPERT_SHARED_FEED_FORWARD_LENGTH, 0)
    _no_ffn_biases(g)


def set_c_granite(cfg: ModelConfig, c) -> None:
    """Granite's multipliers into llm_config c (float32, as llama.cpp keeps them): the
    embedding and attention scales replace the defaults where the file has them"""
    if cfg.embedding_scale:
        c.embd_scale = cfg.embedding_scale
    if cfg.attention_scale:
        c.attn_scale = cfg.attention_scale
    c.residual_scale = cfg.residual_scale
    c.logit_mul = float(np.float32(1.0) / np.float32(cfg.logit_scale))


# an architecture's own reader, run after the common hyper-parameters
READERS = {"smollm3": read_smollm3, "mistral3": read_mistral3, "lfm2": read_shortconv, "granite": read_granite,
           "granitemoe": read_granite}
