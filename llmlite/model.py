"""A loaded model: GGUF weights (memory-mapped, not copied) handed to the C forward
pass, the KV cache, and eval(tokens) -> logits."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from llmlite import _lib, settings
from llmlite._lib import ffi, lib
from llmlite.config import ARCHS, ModelConfig, layer_of
from llmlite.errors import DeviceLost, GGUFError, LlmliteError, OffloadError
from llmlite.genconfig import DEFAULT_MAX_TOKENS, GenerationConfig
from llmlite.gguf.constants import type_name

LAYER_SLOTS = {
    "attn_norm.weight": lib.LLM_T_ATTN_NORM, "attn_q.weight": lib.LLM_T_ATTN_Q,
    "attn_k.weight": lib.LLM_T_ATTN_K, "attn_v.weight": lib.LLM_T_ATTN_V,
    "attn_qkv.weight": lib.LLM_T_ATTN_QKV, "attn_output.weight": lib.LLM_T_ATTN_OUT,
    "attn_q.bias": lib.LLM_T_ATTN_Q_B, "attn_k.bias": lib.LLM_T_ATTN_K_B, "attn_v.bias": lib.LLM_T_ATTN_V_B,
    "attn_q_norm.weight": lib.LLM_T_ATTN_Q_NORM, "attn_k_norm.weight": lib.LLM_T_ATTN_K_NORM,
    "post_attention_norm.weight": lib.LLM_T_POST_ATTN_NORM, "ffn_norm.weight": lib.LLM_T_FFN_NORM,
    "ffn_gate.weight": lib.LLM_T_FFN_GATE, "ffn_up.weight": lib.LLM_T_FFN_UP,
    "ffn_down.weight": lib.LLM_T_FFN_DOWN, "post_ffw_norm.weight": lib.LLM_T_POST_FFW_NORM,
    "ffn_gate_inp.weight": lib.LLM_T_FFN_GATE_INP, "ffn_gate_exps.weight": lib.LLM_T_FFN_GATE_EXPS,
    "ffn_up_exps.weight": lib.LLM_T_FFN_UP_EXPS, "ffn_down_exps.weight": lib.LLM_T_FFN_DOWN_EXPS,
    "ffn_gate_inp_shexp.weight": lib.LLM_T_FFN_GATE_INP_SHEXP, "ffn_gate_shexp.weight": lib.LLM_T_FFN_GATE_SHEXP,
    "ffn_up_shexp.weight": lib.LLM_T_FFN_UP_SHEXP, "ffn_down_shexp.weight": lib.LLM_T_FFN_DOWN_SHEXP,
    "attn_output.bias": lib.LLM_T_ATTN_OUT_B, "attn_sinks.weight": lib.LLM_T_ATTN_SINKS,
    "ffn_gate_inp.bias": lib.LLM_T_FFN_GATE_INP_B, "ffn_gate_exps.bias": lib.LLM_T_FFN_GATE_EXPS_B,
    "ffn_up_exps.bias": lib.LLM_T_FFN_UP_EXPS_B, "ffn_down_exps.bias": lib.LLM_T_FFN_DOWN_EXPS_B,
    # gemma4: the layer's output scale and per-layer embedding term
    "layer_output_scale.weight": lib.LLM_T_LAYER_OUT_SCALE, "inp_gate.weight": lib.LLM_T_PLE_INP_GATE,
    "proj.weight": lib.LLM_T_PLE_PROJ, "post_norm.weight": lib.LLM_T_PLE_POST_NORM,
    # gemma4's expert layers beside their dense FFN
    "ffn_gate_inp.scale": lib.LLM_T_FFN_GATE_INP_S, "ffn_gate_up_exps.weight": lib.LLM_T_FFN_GATE_UP_EXPS,
    "ffn_down_exps.scale": lib.LLM_T_FFN_DOWN_EXPS_S, "pre_ffw_norm_2.weight": lib.LLM_T_FFN_PRE_NORM_2,
    "post_ffw_norm_1.weight": lib.LLM_T_FFN_POST_NORM_1, "post_ffw_norm_2.weight": lib.LLM_T_FFN_POST_NORM_2,
    # qwen35's gated delta-net layers
    "attn_gate.weight": lib.LLM_T_ATTN_GATE, "ssm_conv1d.weight": lib.LLM_T_SSM_CONV1D,
    "ssm_dt.bias": lib.LLM_T_SSM_DT_B, "ssm_a": lib.LLM_T_SSM_A, "ssm_beta.weight": lib.LLM_T_SSM_BETA,
    "ssm_alpha.weight": lib.LLM_T_SSM_ALPHA, "ssm_norm.weight": lib.LLM_T_SSM_NORM, "ssm_out.weight": lib.LLM_T_SSM_OUT,
    # lfm2's short-convolution layers (its kernel in the delta-net's convolution slot)
    "shortconv.in_proj.weight": lib.LLM_T_SHORTCONV_IN, "shortconv.conv.weight": lib.LLM_T_SSM_CONV1D,
    "shortconv.out_proj.weight": lib.LLM_T_SHORTCONV_OUT,
}
GLOBAL_SLOTS = {"token_embd.weight": lib.LLM_G_TOKEN_EMBD, "output_norm.weight": lib.LLM_G_OUTPUT_NORM,
                "output.weight": lib.LLM_G_OUTPUT, "rope_freqs.weight": lib.LLM_G_ROPE_FREQS,
                "per_layer_token_embd.weight": lib.LLM_G_PLE_TOKEN_EMBD,
                "per_layer_model_proj.weight": lib.LLM_G_PLE_MODEL_PROJ,
                "per_layer_proj_norm.weight": lib.LLM_G_PLE_PROJ_NORM}


BACKENDS = {"cpu": lib.LLM_BACKEND_CPU, "cuda": lib.LLM_BACKEND_CUDA}
# a recurrent state's copies (csrc/delta_net.c's slots): the end of a prompt, the start of a verify
PROMPT_COPY, VERIFY_COPY = 0, 1
HIDDEN = 3   # llm_forward's mode without the head: each token's hidden state after the output norm


def repack_bytes(g, n_gpu: int = 0) -> int:
    """What the interleaved copies of g's weights (csrc/repack.c) hold on this machine
    (Weights.repacked_bytes once loaded): the weights of the CPU's layers and head whose
    type this machine's kernels take a copy of (0 where they would not fit in the memory
    available). The file's pages of those weights are let go once copied, so the process
    holds about as much as without them."""
    if not settings.env_flag("LLMLITE_REPACK", True):
        return 0
    config = ModelConfig.of(g)
    split = config.n_layer - n_gpu
    head = "output.weight" if "output.weight" in g.tensors else "token_embd.weight"
    renames = dict(ARCHS[config.arch].renames)
    total = 0
    for name, t in g.tensors.items():
        blk = layer_of(name)
        slot = LAYER_SLOTS.get(renames.get(blk[1], blk[1])) if blk and blk[0] < split else None
        copied = lib.llm_repack_slot(slot) if slot is not None else (name == head and split > 0)
        # rows: one expert's where the tensor holds several (each expert's in whole groups)
        rows = int(np.prod(t.shape[1:] if copied != 2 else t.shape[1:2])) if len(t.shape) > 1 else 1
        if copied and lib.llm_repack_takes(int(t.type)) and int(t.shape[0]) % 256 == 0 and rows % 4 == 0:
            total += t.nbytes
    return total if _copies_fit(total) else 0


def _copies_fit(nbytes: int, margin: int = 512 << 20) -> bool:
    """Whether copies of nbytes fit in the memory available now. The file's pages they
    replace could be dropped by the kernel under pressure; the copies cannot, so a model
    larger than the memory at hand keeps reading the file (and stays as fast as the disk)."""
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return True
    return nbytes + margin <= avail


class Weights:
    """The C model built from an open GGUF file; keeps the file mapped while alive.

    n_gpu > 0: the last n_gpu layers run in a span on `backend` (its own copy
    of their weights, its own KV cache), and the output head too when that is every
    layer; the CPU runs the embeddings and the layers before. backend "cpu" stands in
    for a device (tests)."""

    def __init__(self, g, n_ctx: int, n_batch: int = 256, flash_attn: bool = False, n_gpu: int = 0,
                 backend: str = "cuda"):
        self.g = g
        self.config = ModelConfig.of(g)           # the hyper-parameters; self.cfg: them as C's llm_config
        fname = Path(g.path).name
        emb = g.tensors.get("token_embd.weight")
        if emb is None:
            raise GGUFError(f"{fname}: missing tensor token_embd.weight: the file is incomplete or not a model "
                               "llmlite can run")
        n_vocab = int(emb.shape[1])
        try:
            self.cfg = self.config.to_c(n_vocab, flash_attn)
        except LlmliteError as e:            # the file's name in front; its kind (and exit status) kept
            e.args = (f"{fname}: {e}",)
            raise
        self.n_ctx = int(n_ctx if n_ctx else self.config.default_ctx)
        self.n_batch = n_batch
        self.n_vocab = n_vocab
        n_layer = self.config.n_layer
        n_gpu = max(0, min(int(n_gpu), n_layer))
        self.n_gpu, self.backend = n_gpu, (backend if n_gpu else "cpu")
        from llmlite.offload import check_context_fits, device_name, size_text, span_weight_bytes

        self.device = device_name(backend)
        split = n_layer - n_gpu               # the first layer of the span
        span_head = n_gpu == n_layer          # the head goes with the last span when all layers do
        need = check_context_fits(g, self.n_ctx, n_batch, n_gpu)
        m = lib.llm_model_new_span(self.cfg, self.n_ctx, n_batch, 0, split, 0 if span_head else 1)
        if m == ffi.NULL:
            raise LlmliteError(f"could not create the model for a context of {self.n_ctx} tokens ({size_text(need)} of KV "
                               "cache and buffers): out of memory, or bad hyper-parameters")
        self.ptr = ffi.gc(m, lib.llm_model_free)
        self._watch_mapping(g)                    # before the first read: an offload copies the weights below
        slots = []                                # (name, tensor, layer, slot, goes to the span)
        renames = dict(ARCHS[self.config.arch].renames)
        for name, t in g.tensors.items():
            blk = layer_of(name)
            if blk:   # (qwen35's multi-token-prediction blocks, after n_layer, are not run)
                layer, slot = blk[0], LAYER_SLOTS.get(renames.get(blk[1], blk[1])) if blk[0] < n_layer else None
            else:
                layer, slot = -1, GLOBAL_SLOTS.get(renames.get(name, name))   # lfm2's token_embd_norm
            if slot is not None:
                to_span = (layer >= split if layer >= 0 else
                           slot == lib.LLM_G_ROPE_FREQS or (span_head and slot != lib.LLM_G_TOKEN_EMBD))
                slots.append((name, t, layer, slot, bool(n_gpu) and to_span))
        tied = span_head and "output.weight" not in g.tensors   # the span needs its own copy of the head
        err = ffi.new("char[256]")
        if n_gpu:
            reserve = sum(span_weight_bytes(t.nbytes) for _, t, _, _, sp in slots if sp)
            reserve += span_weight_bytes(g.tensors["token_embd.weight"].nbytes) if tied else 0
            if lib.llm_model_attach(m, BACKENDS[backend], reserve, err, 256) != 0:
                msg = ffi.string(err).decode(errors="replace")
                raise OffloadError(msg, out_of_memory="out of memory" in msg)
        self._views = []
        for name, t, layer, slot, to_span in slots:
            data = g.tensor_data(name)
            self._views.append(data)
            ne0 = int(t.shape[0])
            ne1 = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
            if lib.llm_model_set_tensor(m, layer, slot, int(t.type), ffi.cast("void *", data.ctypes.data), ne0, ne1) != 0:
                raise LlmliteError(f"tensor {name}: type {type_name(t.type)} or shape {tuple(t.shape)} not supported")
            if to_span:
                self._to_span(name, layer, slot, t, data, ne0, ne1)
        if tied:
            t = g.tensors["token_embd.weight"]
            self._to_span("token_embd.weight", -1, lib.LLM_G_OUTPUT, t, g.tensor_data("token_embd.weight"),
                          int(t.shape[0]), int(np.prod(t.shape[1:])))
        err = ffi.new("char[256]")
        if lib.llm_model_check(m, err, 256) != 0:
            raise GGUFError(f"{fname}: {ffi.string(err).decode()}: the file is incomplete or not a "
                               f"{self.config.arch} model as llmlite expects it")
        self.repacked_bytes = 0                   # the interleaved copies (csrc/repack.c)
        if repack_bytes(g, n_gpu):
            self.repacked_bytes = int(lib.llm_model_repack(m, 1))   # 1: g's weights are a file mapping
            if self.repacked_bytes < 0:
                raise LlmliteError("out of memory while making the decode copies of the weights "
                                   "(LLMLITE_REPACK=0 runs without them)")
            if self.repacked_bytes and settings.env_flag("LLMLITE_HUGE_PAGES", True):
                lib.llm_model_huge_start(m)   # into 2 MiB pages while the model runs (csrc/huge_pages.c)

    def _watch_mapping(self, g) -> None:
        """While these weights live, a read of the file's mapping that faults (the file
        truncated or rewritten in place under the process) prints one line naming it and
        exits 1 (csrc/sigbus.c), where SIGBUS killed the process silently. Preformatted
        now: the signal handler cannot format or allocate."""
        import os
        import weakref

        buf = g.buffer
        line = b"error: the model file " + os.fsencode(str(g.path)) + b" changed or was truncated while in use (SIGBUS)\n"
        slot = lib.llm_sigbus_watch(ffi.cast("void *", buf.ctypes.data), buf.size, line)
        weakref.finalize(self, lib.llm_sigbus_unwatch, slot)

    def _to_span(self, name, layer, slot, t, data, ne0, ne1) -> None:
        rc = lib.llm_model_set_span_tensor(self.ptr, layer, slot, int(t.type), ffi.cast("void *", data.ctypes.data),
                                           ne0, ne1)
        if rc == -2:
            raise OffloadError(f"out of {self.device} memory at tensor {name}", out_of_memory=True)
        if rc == -3:
            raise OffloadError(f"{self.device} error at tensor {name}: {self.span_error()[0]}")
        if rc != 0:
            raise OffloadError(f"the {self.device} backend cannot run tensor {name} ({type_name(t.type)})")

    @property
    def state_pos(self) -> int:
        """the tokens a recurrent state (qwen35's delta-net layers) holds; -1: none kept"""
        return int(lib.llm_dn_pos(self.ptr))

    def save_state(self, slot: int) -> int:
        """keep a copy of the recurrent state in slot (0 .. LLM_DN_SLOTS - 1); the position
        it holds, -1: none"""
        return int(lib.llm_dn_save(self.ptr, slot))

    def restore_state(self, slot: int) -> int:
        """slot's copy made the state again; its position (-1: no copy)"""
        return int(lib.llm_dn_restore(self.ptr, slot))

    @property
    def kv_bytes(self) -> int:
        return int(lib.llm_model_kv_bytes(self.ptr))

    @property
    def huge_page_bytes(self) -> int:
        """the copies' bytes moved into 2 MiB pages so far (csrc/huge_pages.c)"""
        return int(lib.llm_model_huge_bytes(self.ptr))

    @property
    def span_bytes(self) -> int:
        """what the offloaded span holds on its backend (weights, KV cache, scratch)"""
        return int(lib.llm_model_span_bytes(self.ptr))

    def span_error(self) -> tuple[str, bool]:
        """why the span's last upload or step failed, and whether its device is lost"""
        dead = ffi.new("int *")
        msg = ffi.string(lib.llm_model_span_error(self.ptr, dead)).decode(errors="replace")
        return msg, bool(dead[0])

    def forward(self, tokens, pos: int, mode: int, out: np.ndarray | None = None) -> np.ndarray | None:
        """Run tokens at positions pos.. (mode 0: no logits, 1: last, 2: all, HIDDEN: no
        head, each token's hidden state after the output norm). `out`, when given,
        receives the logits (a buffer made once, for the per-token decode step)."""
        toks = np.ascontiguousarray(tokens, dtype=np.int32)
        n = toks.size
        if mode == 1 and out is None:
            out = np.empty(self.n_vocab, dtype=np.float32)
        elif mode == 2 and out is None:
            out = np.empty((n, self.n_vocab), dtype=np.float32)
        elif mode == HIDDEN:
            if self.n_gpu == self.config.n_layer:   # the span holds the output norm and hands back logits only
                raise LlmliteError("embeddings need the output norm on the CPU: offload fewer than all layers "
                                   f"(-ngl {self.n_gpu - 1} or less)")
            out = np.empty((n, self.config.n_embd), dtype=np.float32)
        if pos + n > self.n_ctx:
            raise LlmliteError(f"context full: {pos + n} tokens > n_ctx {self.n_ctx} (use a larger -c)")
        rc = lib.llm_forward(self.ptr, ffi.cast("int *", toks.ctypes.data), n, pos,
                             ffi.NULL if mode == 0 else ffi.cast("float *", out.ctypes.data), mode)
        if rc == -2:
            msg, dead = self.span_error()
            raise DeviceLost(f"{self.device} error: {msg or 'the step failed'}", dead)
        if rc != 0:
            held = self.state_pos
            if held >= 0 and pos not in (0, held):
                raise LlmliteError(f"the recurrent state holds {held} tokens, not {pos}: run again from position 0")
            raise LlmliteError("forward pass failed (token id out of range?)")
        return out if mode else None


@dataclass(frozen=True)
class _LoadOptions:
    """How a Model makes its Weights: kept to make them again (a new context size, the
    CPU taking over from a failed device)."""
    n_batch: int
    flash_attn: bool
    gpu_layers: int | str | None     # the last N layers on the device, "all" or "auto"
    backend: str | None              # None: $LLMLITE_OFFLOAD_BACKEND, else "cuda"
    margin: int | None               # device memory the offload plan leaves free (None: offload.DEFAULT_MARGIN)
    notify: Callable[[str], None] | None


class Model:
    """A loaded GGUF model: tokenizer, weights, KV cache. What llmlite.load returns; its public
    API (the README's): tokenize, detokenize, eval, eval_last, reset, generate."""

    def __init__(self, path, n_ctx: int | None = 2048, threads: int | None = None,
                 gpu_layers: int | str = 0, n_batch: int = 256, gguf=None, flash_attn: bool = False,
                 offload_backend: str | None = None, vram_margin: int | None = None, notify=None):
        """gguf: the file already opened with llmlite.gguf.open_gguf (the model takes it over).
        flash_attn: online-softmax attention with an F16 accumulator (llama.cpp's -fa);
        off by default, as in llama.cpp's and llama-cpp-python's defaults, whose logits
        llmlite then reproduces bit for bit.
        gpu_layers: the last N layers on the GPU, "all", or "auto" (as many as fit the
        free memory, llmlite/offload.py); offload_backend "cuda" (default, or
        $LLMLITE_OFFLOAD_BACKEND) or "cpu" (a CPU span standing in for a device).
        notify(line): told when fewer layers than planned could be offloaded, and why."""
        from llmlite.tokenizer import Tokenizer

        self.path = Path(path)
        if gguf is None:
            from llmlite.gguf import open_gguf

            gguf = open_gguf(self.path)
        self.gguf = gguf
        self.gguf.check_computable()
        self.config = ModelConfig.of(self.gguf)   # read once: the weights and the offload plan share it
        self.threads = _lib.set_threads(threads)
        self.offload_notes: list[str] = []
        self.offload_plan = None
        self._load = _LoadOptions(n_batch, flash_attn, gpu_layers, offload_backend, vram_margin, notify)
        self.weights = self._make_weights(n_ctx or 0)
        self.tokenizer = Tokenizer.from_gguf(self.gguf)
        self.metadata = self.gguf.metadata
        self.arch = self.metadata.get("general.architecture")
        self.n_vocab = self.weights.n_vocab
        self.n_ctx = self.weights.n_ctx
        self.tokens: list[int] = []   # what the KV cache holds, position by position
        self._tok1 = np.zeros(1, dtype=np.int32)                       # decode-step input
        self._step_logits = np.empty(self.n_vocab, dtype=np.float32)   # decode-step output
        self.last_reused = 0          # prompt tokens the last prefill() found in the cache
        # a recurrent model: where its state's copies stand, one per use (-1: none)
        self._saved_at = {PROMPT_COPY: -1, VERIFY_COPY: -1}

    def _make_weights(self, n_ctx) -> Weights:
        """Weights with the layers -ngl asks for on the device; when the device refuses
        (out of its memory despite the plan, a type it cannot run), fewer layers, down
        to none, each step one line to notify."""
        from llmlite import offload

        o = self._load
        backend = o.backend or settings.env("LLMLITE_OFFLOAD_BACKEND") or "cuda"
        if backend not in BACKENDS:
            raise LlmliteError(f"offload backend {backend!r}: one of {', '.join(BACKENDS)}")
        say = o.notify or (lambda line: None)
        n = 0
        if o.gpu_layers not in (0, None) and self.config.gpu_missing and backend == "cuda":
            # as choose_layers: auto stays quiet on a CPU-only build
            if o.gpu_layers != "auto" or offload.cuda_lib_path().is_file():
                note = (f"the {offload.device_name(backend)} backend has no {self.config.gpu_missing} yet: "
                        "all on the CPU")
                self.offload_notes.append(note)
                say(note)
        elif o.gpu_layers not in (0, None):
            ctx = n_ctx or self.config.default_ctx
            n, self.offload_plan, note = offload.choose_layers(
                self.gguf, ctx, o.n_batch, o.gpu_layers, backend,
                offload.DEFAULT_MARGIN if o.margin is None else o.margin)
            if note:
                self.offload_notes.append(note)
                say(note)
            if self.offload_plan is not None and (n or o.gpu_layers != "auto"):
                say(offload.format_plan(self.offload_plan))     # before anything is loaded
        while True:
            try:
                return Weights(self.gguf, n_ctx, o.n_batch, flash_attn=o.flash_attn, n_gpu=n, backend=backend)
            except OffloadError as e:
                fewer = n * 3 // 4 if n > 4 and e.out_of_memory else 0
                note = f"offload of {n} layers failed ({e}): {fewer} layers on the {offload.device_name(backend)} instead"
                self.offload_notes.append(note)
                say(note)
                n = fewer

    # ---- tokens ----
    def tokenize(self, text, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self.tokenizer.encode(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, ids, special: bool = False) -> bytes:
        return self.tokenizer.decode(ids, special=special)

    # ---- evaluation ----
    @property
    def n_past(self) -> int:
        return len(self.tokens)

    def reset(self) -> None:
        """Empty the KV cache (and a recurrent state's copies with it: they hold the old history)."""
        self.truncate(0)

    def truncate(self, n: int) -> None:
        """Keep the first n positions of the KV cache (later ones are overwritten). A
        recurrent state (qwen35) cannot drop tokens: the next pass brings it back to n
        (_rewind)."""
        del self.tokens[n:]
        for slot, at in self._saved_at.items():
            if n < at:                # the copy holds tokens that may now change
                self._saved_at[slot] = -1

    def _save_state(self, slot: int) -> None:
        """a recurrent model keeps a copy of its state here: before a prompt's last token
        (PROMPT_COPY: where /regen and the next turn start over) or at the start of a
        guess being verified (VERIFY_COPY), so one never replaces the other. Only a state
        that holds the cache's tokens: after a reset (or an embedding) the state still
        holds the old history until the next pass starts it again at position 0, and a
        copy of that would be restored later as if it were the new one's."""
        if self.weights.state_pos >= 0 and self.weights.state_pos == self.n_past:
            self._saved_at[slot] = self.weights.save_state(slot)

    def _rewind(self) -> None:
        """A recurrent state holding more tokens than the cache keeps (truncate) is
        brought back to n_past: the copy restored and the tokens after it run again,
        or, without a usable copy, the whole history; exact, as a token's logits do not
        depend on its batch."""
        held = self.weights.state_pos
        if held < 0 or held == self.n_past or self.n_past == 0:
            return
        # the latest copy still a prefix of the cache (new weights, a device given up for
        # the CPU, have none: restore says -1)
        usable = [(at, slot) for slot, at in self._saved_at.items() if 0 <= at <= self.n_past]
        start = max(self.weights.restore_state(max(usable)[1]), 0) if usable else 0
        if start < self.n_past:
            self.weights.forward(self.tokens[start:self.n_past], start, 0)

    def _run(self, ids, mode: int):
        ids = [int(i) for i in ids]
        if not ids:
            return np.empty((0, self.n_vocab), np.float32) if mode == 2 else None
        if self.n_past + len(ids) > self.n_ctx:
            raise LlmliteError(f"context full: {self.n_past + len(ids)} tokens > n_ctx {self.n_ctx} "
                               "(start a new chat or use a larger -c)")
        out = self._forward(ids, mode)
        self.tokens.extend(ids)
        return out

    def _forward(self, ids, mode: int, out=None):
        self._rewind()
        if len(ids) > 1:
            self._save_state(VERIFY_COPY)
        try:
            return self.weights.forward(ids, self.n_past, mode, out)
        except DeviceLost as e:
            if not settings.env_flag("LLMLITE_DEVICE_FALLBACK", True):   # checks of the device itself
                raise
            why = f"{e} (the {self.weights.device} cannot be used again by this process)" if e.dead else str(e)
        self._to_cpu(why)                         # outside the except: its traceback holds the old weights
        return self.weights.forward(ids, self.n_past, mode, out)

    def _to_cpu(self, why: str) -> None:
        """The device failed a step: every layer on the CPU from now on, with the KV cache
        of the tokens so far computed again there (the conversation goes on), one line to
        notify (a RuntimeWarning without one). LLMLITE_DEVICE_FALLBACK=0 raises instead."""
        self._load = replace(self._load, gpu_layers=0)
        notify = self._load.notify
        note = f"{why}: continuing on the CPU (the {self.n_past} tokens so far evaluated again)"
        self.offload_notes.append(note)
        if notify:
            notify(note)
        else:
            import warnings

            warnings.warn(note, RuntimeWarning, stacklevel=4)
        self.weights, self.offload_plan = None, None   # the span's memory goes first
        try:
            self.weights = self._make_weights(self.n_ctx)
            if self.tokens:
                self.weights.forward(self.tokens, 0, 0)
        except LlmliteError as e:
            raise LlmliteError(f"{why}, and the CPU could not take over: {e}") from None

    def eval(self, ids) -> np.ndarray:
        """Logits (len(ids), n_vocab) for ids, continuing after what the KV cache holds."""
        return self._run(ids, 2)

    def eval_last(self, ids) -> np.ndarray:
        """Logits of the last of ids only (n_vocab,)."""
        return self._run(ids, 1)

    def hidden_states(self, ids) -> np.ndarray:
        """Each token's hidden state after the output norm (len(ids), n_embd) float32: what
        the head would read, llama.cpp's per-token embeddings. ids run from position 0,
        alone: they overwrite the KV cache, so it is emptied (the next prefill evaluates
        its whole prompt again)."""
        ids = [int(i) for i in ids]
        if len(ids) > self.n_ctx:
            raise LlmliteError(f"{len(ids)} tokens > n_ctx {self.n_ctx}: too long for this context (use a larger -c)")
        self.truncate(0)
        if not ids:
            return np.empty((0, self.config.n_embd), np.float32)
        return self._forward(ids, HIDDEN)

    def step(self, tok: int) -> np.ndarray:
        """Decode one token: its logits in a buffer reused by the next step (read them
        before calling step again; eval_last returns a fresh array instead)."""
        if self.n_past + 1 > self.n_ctx:
            raise LlmliteError(f"context full: {self.n_past + 1} tokens > n_ctx {self.n_ctx} "
                               "(start a new chat or use a larger -c)")
        self._tok1[0] = tok
        self._forward(self._tok1, 1, self._step_logits)
        self.tokens.append(int(tok))
        return self._step_logits

    def prefill(self, ids) -> np.ndarray:
        """Reuse the longest cached prefix of ids, evaluate the rest, return the last logits.
        At least the last token is always evaluated (its logits are needed)."""
        ids = [int(i) for i in ids]
        common = 0
        for a, b in zip(self.tokens, ids):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)
        self.truncate(common)
        self.last_reused = common
        rest = ids[common:]
        if self.weights.state_pos >= 0 and len(rest) > 1:
            # a recurrent state copied before the prompt's last token: where a regenerated
            # reply starts over (prefill evaluates that token again)
            self._run(rest[:-1], 0)
            self._save_state(PROMPT_COPY)
            rest = rest[-1:]
        return self.eval_last(rest)

    # ---- generation ----
    def generate(self, prompt, max_tokens: int = DEFAULT_MAX_TOKENS, *, stats=None, **options):
        """Stream text pieces (str) for a prompt (str, or a list of token ids). options:
        the other fields of llmlite.genconfig.GenerationConfig, checked now (an unknown
        one is a TypeError, a value out of range a ValueError); stats: a GenStats to fill.
        A delegate kept for the public API: the decode loop is llmlite/generate.py's,
        which uses this model's public methods only (imported here, so that this
        module does not depend on it)."""
        from llmlite.generate import generate_text

        return generate_text(self, prompt, GenerationConfig.from_options(max_tokens=max_tokens, **options), stats)

    def set_context(self, n_ctx: int) -> None:
        """A new context size (> 0): the KV cache made again at that size, empty, with the
        offload planned again for it (the weights stay mapped). The old cache goes first,
        so the peak is one cache; if the new one cannot be made, the old size is restored."""
        old = self.n_ctx
        self.weights = None
        try:
            self.weights = self._make_weights(n_ctx)
        except BaseException:
            self.weights = self._make_weights(old)
            raise
        self.n_ctx = self.weights.n_ctx
        self.tokens = []

    def settle(self, limit_s: float = 300.0) -> float:
        """Wait until the decode copies are in 2 MiB pages (csrc/huge_pages.c moves them
        in the model's pauses after its first forward pass; one step is run first if
        none has been, then the cache is emptied). Returns the seconds waited."""
        import time

        t0 = time.perf_counter()
        if not lib.llm_model_huge_busy(self.weights.ptr):
            return 0.0
        if not self.tokens:
            self.step(0)
            self.reset()
        while lib.llm_model_huge_busy(self.weights.ptr) and time.perf_counter() - t0 < limit_s:
            time.sleep(0.02)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.weights = None
        self.gguf.close()


def load(model, n_ctx: int | None = 2048, threads: int | None = None, gpu_layers: int | str = 0,
         n_batch: int = 256, flash_attn: bool = False) -> Model:
    """Load a GGUF path or a models.toml alias."""
    from llmlite.registry import resolve_model

    return Model(resolve_model(str(model)) if model is not None else resolve_model(None),
                 n_ctx=n_ctx, threads=threads, gpu_layers=gpu_layers, n_batch=n_batch, flash_attn=flash_attn)
