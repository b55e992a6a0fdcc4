"""The CPU/GPU layer split plan: what `-ngl auto|N` would place where, and
the decode speed to expect of each side (the bandwidth cliff): each layer the larger of
its floor (the GPU's launches, the CPU's per-layer cost) and its bytes over the side's
bandwidth, with constants measured once per device (llmlite/device_costs.py).

Pure Python over the GGUF tensor table: nothing is loaded, so `llmlite info MODEL
--plan [-c N] [--vram GB]` can answer "what if" for any VRAM size. The last layers go
to the GPU; the embeddings stay on the CPU; the output head (output.weight, or the tied
token_embd, which the GPU then needs its own copy of, + output_norm) goes with the last
span, so it is on the GPU only when every layer is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from llmlite import settings
from llmlite.config import ModelConfig, layer_of
from llmlite.device_costs import BASE_LAUNCHES, HEAD_LAUNCHES, Speed, default_speed, device_speed

MiB, GiB = 1 << 20, 1 << 30
DEFAULT_MARGIN = 512 * MiB
DEFAULT_CPU_GBS = 20.0   # a placeholder: pass cpu_bandwidth_gbs() (the machine's probe) instead


@dataclass
class ModelCosts:
    """Bytes of each part of a model at a context n_ctx and batch n_batch."""
    n_layer: int
    n_ctx: int
    n_batch: int
    layer_weights: list[int]   # sum of blk.{i}.* tensor bytes
    layer_kv: list[int]        # K + V cache of layer i at n_ctx
    kv_pos_bytes: int          # K + V of one position in one layer
    windows: list[int]         # per layer: the sliding window the attention reads (0: all)
    embd_bytes: int            # token_embd (always on the CPU)
    embd_row_bytes: int        # the one row of it a token reads
    head_bytes: int            # output.weight or the tied token_embd, + output_norm
    head_tied: bool
    other_bytes: int           # other global tensors (rope_freqs...): on the CPU, copied to a GPU span
    scratch_bytes: int         # the CPU model's compute buffers (compute_bytes)
    logits_bytes: int          # n_vocab * n_batch floats, the CPU's when it holds the head
    file_tensor_bytes: int     # every tensor in the file, once
    span_compute: int = 0      # a device span's compute buffers without the head (span_compute_bytes)
    span_compute_head: int = 0  # ... and with it (its logits buffer)
    backend: str = "cuda"      # the device the span_compute figures are for
    # why span_compute is cuda_compute_estimate's bound, not the backend's own figure ("": it is)
    span_compute_estimated: str = ""
    # what a device span adds to the tensors of each part: each weight's slice of its
    # reservation is a multiple of LLM_SPAN_WEIGHT_ALIGN (span_weight_bytes; 0 on the
    # real models, whose tensors are multiples already; none for the CPU stand-in)
    layer_pad: list[int] = field(default_factory=list)
    head_pad: int = 0
    other_pad: int = 0
    # what a decode token reads of layer i's weights: all of them, except the experts of a
    # mixture of experts, of which it reads the n_expert_used it is routed to (empty: all)
    layer_read: list[int] = field(default_factory=list)
    # a decode layer's launches on the GPU (layer_launches: more where Q/K/V or gate/up
    # are of several types; empty: device_costs.BASE_LAUNCHES everywhere)
    layer_launches: list[int] = field(default_factory=list)


def span_weight_bytes(nbytes: int) -> int:
    """What a device span reserves for a tensor of nbytes: a slice of its one weights
    allocation, rounded up to LLM_SPAN_WEIGHT_ALIGN (csrc/span.h)."""
    from llmlite._lib import lib

    a = int(lib.LLM_SPAN_WEIGHT_ALIGN)
    return (nbytes + a - 1) // a * a


def compute_bytes(n_batch: int, n_ctx: int, n_embd: int, n_head: int, n_head_kv: int, head_dim: int,
                  n_ff: int, experts: ModelConfig | None = None) -> int:
    """The batch scratch llm_model_new allocates (csrc/model.c scratch_sizes, asked of
    the C side so the two cannot drift apart):
    4 B * n_batch * (x, xn: n_embd; q, att: q_dim; k, v: kv_dim; gate, up: n_ff;
    tmp: wide = max(n_ff, q_dim, q_dim + 2 kv_dim, 2 n_ff))
    + 4 B * 256 thread slots * group * ((n_ctx + 16) scores + 16 * head_dim acc32)
    + 2 B * 256 thread slots * 2 q_dim (q16, acc16),
    with q_dim = n_head*head_dim, kv_dim = n_head_kv*head_dim, group = n_head/n_head_kv;
    experts, a mixture of experts' config: its routing buffers and the n_batch *
    n_expert_used rows of the experts' inputs and outputs (csrc/model.h llm_moe_scratch),
    and gate, up as wide as the shared expert.
    (The CPU stand-in's span needs exactly this: span_compute_bytes("cpu", ...).)"""
    return span_compute_bytes("cpu", n_batch, n_ctx, n_embd, n_head, n_head_kv, head_dim, n_ff, 1, False, experts)


def span_compute_bytes(backend: str, n_batch: int, n_ctx: int, n_embd: int, n_head: int, n_head_kv: int,
                       head_dim: int, n_ff: int, n_vocab: int, head: bool, experts: ModelConfig | None = None) -> int:
    """What a span on `backend` allocates besides its weights and KV cache, as the
    backend's own table reports it (csrc/span.h compute_bytes): for "cuda" the buffers
    of its layout (scratch rows, attention partials, and with the head a logits buffer
    of at most 64 MiB), asked of the CUDA library without starting a device; for the
    "cpu" stand-in the CPU model's scratch. Where the CUDA library cannot be loaded,
    cuda_compute_estimate (span_table says why)."""
    from llmlite._lib import lib

    table, _ = span_table(backend)
    if table is None:
        return cuda_compute_estimate(n_batch, n_ctx, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, head)
    # one layer of these sizes (the architecture and the rest do not change the buffers)
    cfg = ModelConfig(arch="llama", n_layer=1, n_embd=n_embd, n_ff=n_ff, n_head=n_head, n_head_kv=n_head_kv,
                      head_dim=head_dim).to_c(n_vocab)
    if experts is not None and experts.is_moe:
        experts.set_c_experts(cfg)
    return int(lib.llm_span_compute_bytes(table, cfg, n_ctx, n_batch, 1 if head else 0))


_tables: dict[str, tuple] = {}     # CUDA library path -> (its table or None, why not)


def span_table(backend: str):
    """(the backend's span table, "") or (None, why it cannot be had). The CUDA table
    comes from the library ($LLMLITE_CUDA_LIB or beside the package) opened without a
    device, so a machine with the library but no GPU plans with its exact figures."""
    from llmlite._lib import ffi, lib

    if backend == "cpu":
        return lib.llm_cpu_span_ops(), ""
    path = cuda_lib_path()
    if not path.is_file():
        return None, f"no CUDA library at {path}"
    if str(path) not in _tables:
        err = ffi.new("char[512]")
        t = lib.llm_cuda_table(str(path).encode(), err, 512)
        _tables[str(path)] = (t, "") if t != ffi.NULL else (None, ffi.string(err).decode(errors="replace"))
    return _tables[str(path)]


# The CUDA layout's constants the estimate needs (csrc/cuda/span_layout.h, where they
# live): keys per attention chunk, partial slots per head, the logits buffer's cap
_CUDA_ATTN_CHUNK, _CUDA_PART_SLOTS, _CUDA_LOGIT_BYTES = 128, 2048, 64 * MiB


def cuda_compute_estimate(n_batch: int, n_ctx: int, n_embd: int, n_head: int, n_head_kv: int, head_dim: int,
                          n_ff: int, n_vocab: int, head: bool) -> int:
    """A CUDA span's buffers besides weights and KV cache where no CUDA library is
    there to ask (a CPU-only install planning for a GPU): an upper bound of what the
    library reports (tests/test_offload_plan.py holds it above, and close), taking the
    larger form of each setting (LLMLITE_CUDA_FUSE=0's tmp, LLMLITE_CUDA_ACTQ=1's xq),
    read from no environment, and 256 B of alignment for each of 16 buffers:
      4 B * n_batch * (x, xn: n_embd; q, att: q_dim; k, v: kv_dim; gate, up: n_ff;
                       tmp: max(n_embd, q_dim + 2 kv_dim, 2 n_ff); xq: max(n_embd, q_dim, n_ff))
    + 4 B * n_head * max(chunks, min(n_batch * chunks, 2048)) * (head_dim + 2)   attention partials
    + 4 B * (n_batch * n_head + 1)                                             counters
    + 4 B * min(n_batch, max(16, 64 MiB / (4 n_vocab))) * n_vocab              logits, with the head
    + 16 * 256 B,
    with q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim, chunks = ceil(n_ctx / 128)."""
    q, kv = n_head * head_dim, n_head_kv * head_dim
    rows = 2 * n_embd + 2 * q + 2 * kv + max(n_embd, q + 2 * kv, 2 * n_ff) + 2 * n_ff + max(n_embd, q, n_ff)
    chunks = -(-n_ctx // _CUDA_ATTN_CHUNK)
    slots = n_head * max(chunks, min(n_batch * chunks, _CUDA_PART_SLOTS))
    logit_rows = min(n_batch, max(16, _CUDA_LOGIT_BYTES // (4 * n_vocab))) if head else 0
    return 4 * (n_batch * rows + slots * (head_dim + 2) + n_batch * n_head + 1 + logit_rows * n_vocab) + 16 * 256


def model_costs(gguf, n_ctx: int, n_batch: int = 256, backend: str = "cuda") -> ModelCosts:
    """Costs from an open GGUFFile (or a path). n_batch defaults to Model's (256);
    backend: the device the offloaded span would run on ("cuda", or the "cpu" stand-in).

    KV cache, as csrc/model.c allocates it (kcache, vcache: F16, head-major
    [n_layer][n_head_kv][n_ctx][head_dim]; sliding-window layers hold the full context
    too): per layer 2 (K, V) * n_ctx * n_head_kv * head_dim * 2 bytes (ModelConfig.layer_kv_bytes:
    gemma4's at each layer's head size, none for a layer reading another's), their sum is
    llm_model_kv_bytes. Hyper-parameters as the C model gets them (ModelConfig.to_c: the
    first layer's values, n_vocab = token_embd's rows, head_dim for V too)."""
    from llmlite._lib import lib
    from llmlite.gguf import open_gguf

    if not hasattr(gguf, "tensors"):
        with open_gguf(gguf) as g:
            return model_costs(g, n_ctx, n_batch, backend)
    cfg = ModelConfig.of(gguf)
    T, n = gguf.tensors, cfg.n_layer
    embd = T["token_embd.weight"]
    n_vocab = int(embd.shape[1])

    def pad(t) -> int:
        return span_weight_bytes(t.nbytes) - t.nbytes if backend == "cuda" and t is not None else 0

    layer_w, layer_read, layer_pad, other, other_pad = [0] * n, [0] * n, [0] * n, 0, 0
    for name, t in T.items():
        blk = layer_of(name)
        if blk and blk[0] < n:     # a layer's experts are held with it; a token reads k of them
            layer_w[blk[0]] += t.nbytes
            layer_read[blk[0]] += (t.nbytes // cfg.n_expert * cfg.n_expert_used if blk[1].endswith("_exps.weight")
                                   and cfg.is_moe else t.nbytes)
            layer_pad[blk[0]] += pad(t)
        elif name not in ("token_embd.weight", "output.weight", "output_norm.weight"):
            other += t.nbytes
            other_pad += pad(t)
    types = {name: t.type for name, t in T.items()}
    out = T.get("output.weight")
    norm = T["output_norm.weight"].nbytes if "output_norm.weight" in T else 0
    # a layer's K/V per position: the widest (gemma4's full layers; its shared layers read it too)
    kv_pos = max(2 * h * cfg.layer_head_dim(il) * 2 for il, h in enumerate(cfg.n_head_kv_per_layer))
    return ModelCosts(
        n_layer=n, n_ctx=n_ctx, n_batch=n_batch, layer_weights=layer_w,
        layer_kv=[cfg.layer_kv_bytes(il, n_ctx) for il in range(n)],
        kv_pos_bytes=kv_pos, windows=cfg.c_windows(), embd_bytes=embd.nbytes,
        embd_row_bytes=embd.nbytes // n_vocab + _ple_read(T, n_vocab),
        head_bytes=(out.nbytes if out is not None else embd.nbytes) + norm, head_tied=out is None,
        other_bytes=other,
        # the CPU model's own figure for its config (gemma4's two head sizes, widest FFN, per-layer inputs)
        scratch_bytes=int(lib.llm_scratch_bytes(cfg.to_c(n_vocab), n_ctx, n_batch)),
        logits_bytes=4 * n_vocab * n_batch, file_tensor_bytes=sum(t.nbytes for t in T.values()),
        layer_read=layer_read, layer_launches=[layer_launches(types, il) for il in range(n)],
        **{k: span_compute_bytes(backend, n_batch, n_ctx, cfg.n_embd, cfg.n_head, cfg.n_head_kv, cfg.head_dim,
                                 cfg.n_ff, n_vocab, head, cfg)
           for k, head in (("span_compute", False), ("span_compute_head", True))},
        backend=backend, span_compute_estimated=span_table(backend)[1], layer_pad=layer_pad, other_pad=other_pad,
        head_pad=pad(out if out is not None else embd) + pad(T.get("output_norm.weight")))


def layer_launches(types: dict, il: int) -> int:
    """layer il's decode launches on the CUDA span (csrc/cuda/README.md's table, span_cuda.cu
    enq_layer): the base counts one launch for Q/K/V, which fuse when they share a type
    (one more for each further type among them), and one for gate + up + activation,
    which fuse when the two share a type (three launches when they do not)"""
    qkv = {types[k] for k in (f"blk.{il}.attn_{m}.weight" for m in "qkv") if k in types}
    gate, up = types.get(f"blk.{il}.ffn_gate.weight"), types.get(f"blk.{il}.ffn_up.weight")
    return BASE_LAUNCHES + max(len(qkv) - 1, 0) + (2 if gate is not None and up is not None and gate != up else 0)


def _ple_read(T, n_vocab: int) -> int:
    """what a token reads of gemma4's per-layer embeddings (held with the other global
    tensors, on the CPU): its row of the table, the projection of its embedding and that
    projection's norm whole; 0 for other models"""
    table = T.get("per_layer_token_embd.weight")
    if table is None:
        return 0
    return table.nbytes // n_vocab + sum(T[k].nbytes for k in ("per_layer_model_proj.weight",
                                                               "per_layer_proj_norm.weight") if k in T)


def host_context_bytes(costs: ModelCosts, n_gpu: int = 0) -> int:
    """What the CPU model allocates for its context with the last n_gpu layers offloaded
    (llm_model_new_span): the KV cache of the layers it keeps and its compute buffers.
    Anonymous memory, unlike the weights, which are paged in from the file."""
    return _split(costs, n_gpu, 0, Speed())[0].kv + costs.scratch_bytes


def ram_total() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def check_context_fits(g, n_ctx: int, n_batch: int, n_gpu: int = 0) -> int:
    """The bytes host_context_bytes counts, after refusing (ContextMemoryError) a context
    they exceed the physical memory for. The C side maps its buffers lazily, so a
    context too large for the memory either fails there with no reason given or, under
    overcommit, is killed later by the OOM killer as the cache fills: refused here
    instead, with the figures. Past the training context is allowed (the CLI warns)."""
    from llmlite.errors import ContextMemoryError

    costs = model_costs(g, n_ctx, n_batch, "cpu")
    need, ram = host_context_bytes(costs, n_gpu), ram_total()
    if ram and need > ram:
        raise ContextMemoryError(
            f"a context of {n_ctx} tokens needs {size_text(need)} of KV cache and buffers (plus "
            f"{size_text(costs.file_tensor_bytes)} of weights); this machine has {size_text(ram)} of memory: use a smaller -c")
    return need


@dataclass
class Side:
    """What one device holds, and what it reads per decoded token."""
    layers: range
    weights: int = 0       # the layers' tensors
    head: int = 0          # the output head (on the CPU, without the tied matrix it shares with embd)
    extra: int = 0         # embeddings and other global tensors
    kv: int = 0
    compute: int = 0
    bytes_per_token: int = 0
    ms_per_token: float = 0.0

    @property
    def total(self) -> int:
        return self.weights + self.head + self.extra + self.kv + self.compute


@dataclass
class Plan:
    n_layer: int
    n_gpu: int
    head_on_gpu: bool
    cpu: Side
    gpu: Side
    vram_free: int | None
    margin: int
    fits: bool
    tokens_per_s: float
    speed: Speed
    kv_fill: int
    cliff: list[tuple[int, int, float, bool]] = field(default_factory=list)  # (%, layers, t/s, fits)
    notes: list[str] = field(default_factory=list)
    device: str = "GPU"        # what the offloaded side is called ("CPU stand-in" in tests)


def _split(c: ModelCosts, n_gpu: int, kv_fill: int, sp: Speed) -> tuple[Side, Side, float]:
    """The two sides with the last n_gpu layers on the GPU, and the expected decode t/s,
    1 / (the CPU part + the GPU part), where (device_costs.py; sp: its constants)
      a CPU layer costs max(sp.cpu_layer_us, bytes / sp.cpu_gbs), the head and the
        embedding row bytes / sp.cpu_gbs;
      a GPU layer max(launches * sp.gpu_launch_us, bytes / sp.gpu_gbs), the head
        max(HEAD_LAUNCHES * sp.gpu_launch_us, bytes / sp.gpu_gbs), and a step with any
        GPU layer sp.gpu_step_us more (the hidden state across, the result back);
    a layer's bytes are its weights (a mixture of experts: the experts a token reads) +
    the KV its attention reads at kv_fill tokens (min(kv_fill, window) on
    sliding-window layers)."""
    n = c.n_layer
    head_gpu = n_gpu == n
    sides = []
    for on_gpu, rng in ((False, range(0, n - n_gpu)), (True, range(n - n_gpu, n))):
        s = Side(rng)
        if on_gpu and not rng:
            sides.append(s)
            continue
        held = sum(c.layer_weights[i] for i in rng)
        s.weights = held + (sum(c.layer_pad[i] for i in rng) if on_gpu and c.layer_pad else 0)
        s.kv = sum(c.layer_kv[i] for i in rng)
        s.extra = c.other_bytes + (c.other_pad if on_gpu else c.embd_bytes)
        has_head = head_gpu == on_gpu
        s.head = (c.head_bytes - (c.embd_bytes if c.head_tied and not on_gpu else 0)) if has_head else 0
        s.head += c.head_pad if has_head and on_gpu else 0
        if on_gpu:
            s.compute = c.span_compute_head if has_head else c.span_compute
        else:
            s.compute = c.scratch_bytes + (c.logits_bytes if has_head else 0)
        gbs = (sp.gpu_gbs if on_gpu else sp.cpu_gbs) * 1e3     # bytes per us
        us = 0.0
        for i in rng:
            read = (c.layer_read or c.layer_weights)[i] + min(kv_fill, c.windows[i] or kv_fill) * c.kv_pos_bytes
            s.bytes_per_token += read
            floor = ((c.layer_launches[i] if c.layer_launches else BASE_LAUNCHES) * sp.gpu_launch_us if on_gpu
                     else sp.cpu_layer_us)
            us += max(floor, read / gbs)
        if has_head:
            s.bytes_per_token += c.head_bytes
            us += max(HEAD_LAUNCHES * sp.gpu_launch_us, c.head_bytes / gbs) if on_gpu else c.head_bytes / gbs
        if on_gpu:
            us += sp.gpu_step_us
        else:
            s.bytes_per_token += c.embd_row_bytes
            us += c.embd_row_bytes / gbs
        s.ms_per_token = us / 1e3
        sides.append(s)
    cpu, gpu = sides
    ms = cpu.ms_per_token + gpu.ms_per_token
    return cpu, gpu, (1e3 / ms if ms > 0 else float("inf"))


def plan_split(costs: ModelCosts, vram_free: int | None, margin: int = DEFAULT_MARGIN, gpu_layers="auto", *,
               speed: Speed | None = None, kv_fill: int = 0, device: str = "GPU") -> Plan:
    """Place the layers. gpu_layers "auto": the largest N whose last N layers' weights + KV +
    the span's compute buffers (+ the head and logits when N == n_layer) fit in
    vram_free - margin (0 without a GPU, vram_free None); an int: as asked, capped at
    n_layer; "all": n_layer. speed: the estimate's constants (None: the defaults with
    the placeholder CPU bandwidth, device_costs.default_speed); kv_fill: tokens in the cache."""
    sp = speed or default_speed(DEFAULT_CPU_GBS)
    n = costs.n_layer
    budget = None if vram_free is None else vram_free - margin

    def gpu_need(k: int) -> int:
        return _split(costs, k, kv_fill, sp)[1].total

    def fits(k: int) -> bool:
        return k == 0 or (budget is not None and gpu_need(k) <= budget)

    notes = []
    if costs.span_compute_estimated:
        notes.append(f"the {device}'s compute buffers are an estimate, an upper bound "
                     f"({costs.span_compute_estimated})")
    if gpu_layers == "auto":
        k = next(k for k in range(n, -1, -1) if fits(k))
        if budget is None:
            notes.append("no GPU found: every layer on the CPU")
    else:
        k = n if gpu_layers == "all" else int(gpu_layers)
        if k < 0:
            raise ValueError(f"-ngl must be >= 0 (got {k})")
        k = min(k, n)                     # -ngl 99: every layer, as llama.cpp takes it
        if not fits(k):
            why = "more than the free VRAM less the margin" if budget is not None else "but no GPU was found"
            notes.append(f"{k} layers need {size_text(gpu_need(k))} on the GPU, {why}")
    cpu, gpu, tps = _split(costs, k, kv_fill, sp)
    cliff = [(pct, n * pct // 100, _split(costs, n * pct // 100, kv_fill, sp)[2],
              fits(n * pct // 100))
             for pct in (0, 25, 50, 75, 100)]
    return Plan(n, k, k == n, cpu, gpu, vram_free, margin, fits(k), tps, sp, kv_fill, cliff, notes, device)


def expected_tps(costs: ModelCosts, n_gpu: int, speed: Speed, kv_fill: int = 0) -> float:
    """the decode t/s the estimate gives with the last n_gpu layers on the GPU"""
    return _split(costs, min(max(n_gpu, 0), costs.n_layer), kv_fill, speed)[2]


def size_text(x: int) -> str:
    """a size as the offload plan and the memory errors print it (one decimal, MiB to TiB)"""
    return (f"{x / (GiB << 10):.1f} TiB" if x >= GiB << 10 else f"{x / GiB:.1f} GiB" if x >= GiB
            else f"{x / MiB:.1f} MiB")


def _range(r: range) -> str:
    return "none" if not r else f"layer {r[0]}" if len(r) == 1 else f"layers {r[0]}-{r[-1]}"


def format_plan(p: Plan) -> str:
    """The plan for people (stderr), with the bandwidth cliff."""
    dev = p.device
    head = dev if p.head_on_gpu else "CPU"
    lines = [f"offload plan: {p.n_gpu}/{p.n_layer} layers on the {dev} ({_range(p.gpu.layers)}), head on {head}"]
    for name, s in ((dev, p.gpu), ("CPU", p.cpu)):
        w = f"{size_text(s.weights + s.head + s.extra)} weights"
        what = [_range(s.layers)] + (["head"] if name == head else []) + (["embeddings"] if name == "CPU" else [])
        line = f"  {name}: {w} ({', '.join(what)}) + {size_text(s.kv)} KV + {size_text(s.compute)} compute = {size_text(s.total)}"
        if name == dev:
            line += (f" of {size_text(p.vram_free)} free (margin {size_text(p.margin)})" if p.vram_free is not None
                     else " (no GPU found)")
        lines.append(line)
    fill = f"KV read at {p.kv_fill} tokens" if p.kv_fill else "empty KV cache"
    lines.append(f"  expected decode: ~{p.tokens_per_s:.0f} t/s (CPU part {p.cpu.ms_per_token:.2f} ms/token, "
                 f"{dev} part {p.gpu.ms_per_token:.2f} ms/token; {fill})")
    lines.append(f"  speed constants: {p.speed.describe()}")
    label = f"layers on {dev}"
    lines.append(f"  {label} " + "".join(f"{f'{pct}% ({k})':>12}" for pct, k, _, _ in p.cliff))
    lines.append(f"  {'decode t/s':{len(label)}} " + "".join(f"{f'{t:.0f}' + ('' if ok else '*'):>12}"
                                                           for _, _, t, ok in p.cliff))
    if not all(ok for *_, ok in p.cliff):
        lines.append(f"  (* does not fit in the {dev}'s free memory)")
    lines += [f"  note: {x}" for x in p.notes]
    return "\n".join(lines)


# ---- the backends: the CUDA library loaded at run time, the CPU stand-in -------------

def device_name(backend: str) -> str:
    """what the offloaded side is called in messages and plans"""
    return "GPU" if backend == "cuda" else "CPU stand-in"


_cuda: tuple[bool, str] | None = None     # (loaded, why not)


def cuda_lib_path() -> Path:
    """libllmlite_cuda.so: $LLMLITE_CUDA_LIB, else beside the package (`make cuda`)"""
    env = settings.env("LLMLITE_CUDA_LIB")
    return Path(env) if env else Path(__file__).resolve().parent / "libllmlite_cuda.so"


def load_cuda() -> tuple[bool, str]:
    """Load the CUDA backend once: (True, "") or (False, the reason: no library, no
    driver, no GPU...). Never raises."""
    global _cuda
    if _cuda is None:
        path = cuda_lib_path()
        if not path.is_file():
            _cuda = (False, "no CUDA backend in this build (`make cuda` builds it where nvcc exists)")
        else:
            try:
                from llmlite._lib import ffi, lib

                err = ffi.new("char[512]")
                ok = lib.llm_cuda_load(str(path).encode(), err, 512) == 0
                _cuda = (ok, "" if ok else ffi.string(err).decode(errors="replace"))
            except Exception as e:  # a broken extension must not stop a CPU run
                _cuda = (False, f"CUDA backend: {e}")
    return _cuda


def vram_free(backend: str = "cuda") -> int | None:
    """Free memory of the offload device in bytes: cudaMemGetInfo through the CUDA
    backend, or for the CPU stand-in $LLMLITE_STANDIN_VRAM_MB (else the free RAM);
    None without a usable device. Never raises."""
    try:
        if backend == "cpu":
            mb = settings.env("LLMLITE_STANDIN_VRAM_MB")
            if mb:
                return int(float(mb) * MiB)
            import psutil

            return int(psutil.virtual_memory().available)
        if not load_cuda()[0]:
            return None
        from llmlite._lib import ffi, lib

        free, total, name = ffi.new("long long *"), ffi.new("long long *"), ffi.new("char[128]")
        if lib.llm_cuda_info(free, total, name, 128) != 0:
            return None
        return int(free[0])
    except Exception:
        return None


def choose_layers(g, n_ctx: int, n_batch: int, gpu_layers, backend: str = "cuda",
                  margin: int = DEFAULT_MARGIN) -> tuple[int, Plan | None, str]:
    """How many of the last layers to offload for -ngl (auto, all, or N): (n, the plan
    or None, a note for the user or ""). No usable backend: 0 layers, with the reason
    when layers were asked for explicitly (auto stays quiet on a CPU-only build)."""
    if gpu_layers == 0:
        return 0, None, ""
    if backend == "cuda":
        ok, why = load_cuda()
        if not ok:
            quiet = gpu_layers == "auto" and not cuda_lib_path().is_file()
            return 0, None, "" if quiet else f"{why}: running on the CPU"
    costs = model_costs(g, n_ctx, n_batch, backend)
    if backend == "cpu":                   # the stand-in: the same memory, no launches
        gbs = cpu_bandwidth_gbs()
        sp = Speed(cpu_gbs=gbs, gpu_gbs=gbs, source="the CPU stand-in: the CPU's bandwidth on both sides")
        p = plan_split(costs, vram_free(backend), margin, gpu_layers, speed=sp, device=device_name(backend))
    else:
        p = plan_split(costs, vram_free(backend), margin, gpu_layers, speed=device_speed(backend))
    return p.n_gpu, p, ""


def cpu_bandwidth_gbs(threads: int | None = None) -> float:
    """The CPU side's read bandwidth, GB/s: `llmlite bench`'s probe (llm_probe_read_bw_pages)
    with 4 KiB pages, as memory-mapped weights have. Measured once per machine and
    thread count (~0.3 s), then read from the cache folder."""
    import json
    import socket

    from llmlite.bench import probe_bandwidth

    base = settings.cache_root()
    f = base / "bandwidth.json"
    key = f"{socket.gethostname()}:{os.cpu_count()}:{threads or 0}"
    try:
        return float(json.loads(f.read_text())[key])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    gbs = probe_bandwidth(threads, huge_pages=False)
    try:
        data = json.loads(f.read_text()) if f.is_file() else {}
        data[key] = gbs
        base.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(data))
    except (OSError, ValueError):
        pass
    return gbs
