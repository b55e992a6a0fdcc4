"""The constants of the plan's decode estimate (llmlite/offload.py _split), measured
once per device and cached, with a table of defaults where nothing was measured.

A decode step costs, per side:
  GPU layer: max(launches x gpu_launch_us, bytes read / gpu_gbs)
  GPU head:  max(HEAD_LAUNCHES x gpu_launch_us, head bytes / gpu_gbs)
  GPU step:  gpu_step_us once a step that uses the GPU (hidden state in, result out, the sync)
  CPU layer: max(cpu_layer_us, bytes read / cpu_gbs)
  CPU head and embedding row: bytes / cpu_gbs
Max, not the sum: a kernel either waits on its latency chain (launch, a dependent
reduction, a last-block merge), during which its loads are in flight anyway, or streams
its bytes, which hides the chain. The H200 figures of issue 24 say so: the layer kernels
of SmolLM2 take the same time for 0.2 MB (attn_output, 11.5 us) as for 0.55 MB
(ffn_down, 11.5 us), and the 1.1 MB gate+up launch takes less (6.0 us): their time is
not their bytes; only the 30 MB head (25 us) is above its floor and follows its bytes.

The measurement (measure_gpu / measure_cpu): decode steps of small random llama models
written to a temporary GGUF (all layers on the device, then all on the CPU), timed from
outside through the ordinary Weights/llm_forward path: the per-layer time is the slope
between a 2-layer and an 8-layer model of a narrow shape (floor-bound: its bytes take
~1 us on a GPU), the per-step cost its intercept, the bandwidth one wide layer's bytes
over its time. The narrow models' weights stay in the caches (8 layers are 26 MB: a
GPU's L2, a server's L3): the slope is the floor alone, the bandwidth term is measured
apart (the wide layer on the GPU, bench's probe on the CPU). Cached in
cache_root()/devices.json under the device's name, its driver, the backend library's
build id (a hash of the file) and the CPU thread count; LLMLITE_SPEED_TIMING=0 times
nothing."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass  # noqa: F401 (asdict: for the callers)
from pathlib import Path

from llmlite import settings

# launches of a decode layer whose Q/K/V share a type and whose gate/up share one
# (csrc/cuda/README.md's launches-per-layer table; offload.layer_launches adds those of
# other layers): 5 since the decode attention takes the Q/K stage (6 before). The head:
# output norm, matmul, logits copy.
BASE_LAUNCHES, HEAD_LAUNCHES = 5, 3


@dataclass(frozen=True)
class Speed:
    """What a decode step costs on each side (see the module docstring)."""
    cpu_gbs: float = 20.0        # the CPU's read bandwidth (bench's probe, 4 KiB pages)
    cpu_layer_us: float = 0.0    # a CPU layer's floor at this thread count
    gpu_gbs: float = 1200.0      # what the GPU's matmuls stream at
    gpu_launch_us: float = 0.0   # one launch of a decode layer, replayed from a graph
    gpu_step_us: float = 0.0     # a step that uses the GPU: the copies across and the sync
    source: str = "given"        # where the figures come from, for the plan's text
    measured: bool = False

    def describe(self) -> str:
        return (f"{self.source}: GPU {self.gpu_launch_us:.1f} us/launch, {self.gpu_gbs:.0f} GB/s, "
                f"{self.gpu_step_us:.0f} us/step; CPU {self.cpu_layer_us:.0f} us/layer floor, {self.cpu_gbs:.0f} GB/s")


# The defaults where no measurement exists: issue 24's H200 figures (SmolLM2-135M Q4_1,
# graphs on, the kernels before issue 24's: 6 launches a layer): a decode layer ~47 us,
# 47/6 us a launch (the 743 t/s side-by-side run: 1.4 ms
# a step over 30 layers; ncu's per-kernel times, at its locked clocks, sum to 58.7 us),
# the Q8_0 head's 30 MB in 25 us (ncu) as the matmuls' bandwidth, ~20 us a step for the
# two PCIe copies and the sync (an estimate). Any other NVIDIA GPU gets the same figures
# until measured: the floor is the kernels' latency, which differs little between
# H100 and H200. The CPU's defaults: its probe and 85 us a layer (the 16-core H200 host's
# 0% figure, 351 t/s, less its head at ~100 GB/s, over 30 layers).
DEFAULT_GPU = dict(gpu_gbs=1200.0, gpu_launch_us=47.0 / 6, gpu_step_us=20.0)
DEFAULT_CPU_LAYER_US = 85.0


def default_speed(cpu_gbs: float) -> Speed:
    return Speed(cpu_gbs=cpu_gbs, cpu_layer_us=DEFAULT_CPU_LAYER_US, **DEFAULT_GPU,
                 source="defaults (issue 24's H200 figures)")


# ---- the measurement ----------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """a llama layer shape for the timing models (Q8_0 matrices, F32 norms)"""
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_vocab: int = 256

    def layer_bytes(self) -> int:
        """its matrices' Q8_0 bytes (q, k, v, output, gate, up, down; the norms left out)"""
        kv = self.n_head_kv * (self.n_embd // self.n_head)
        return self.n_embd * (2 * self.n_embd + 2 * kv + 3 * self.n_ff) * 34 // 32


NARROW = Shape(512, 1536, 8, 2)          # floor-bound: 3.2 MB a layer, ~1 us of bytes on a GPU
WIDE = Shape(4096, 14336, 32, 8)         # bandwidth-bound: 232 MB a layer, gate + up 125 MB in one launch


def write_model(path: Path, shape: Shape, n_layer: int, wtype: int | None = None, head_type: int | None = None) -> Path:
    """a llama GGUF of n_layer layers of shape: matrices of type wtype (default Q8_0)
    holding zero codes, Q8_0's with unit scales (the kernels read every byte whatever
    the values), F32 norms of ones; the head tied to the embeddings, or an output.weight
    of head_type. For timing and tracing, not for its tokens."""
    import numpy as np

    from llmlite.gguf.constants import GGML_TYPES
    from llmlite.gguf.constants import GGMLType as Q
    from llmlite.gguf.constants import ValueType as V
    from llmlite.gguf.writer import TensorOut, encode, write_gguf

    d, hd = shape.n_embd, shape.n_embd // shape.n_head
    wtype = int(Q.Q8_0) if wtype is None else wtype
    kvs = [("general.architecture", encode(V.STRING, "llama"))]
    for k, v in (("block_count", n_layer), ("context_length", 4096), ("embedding_length", d),
                 ("feed_forward_length", shape.n_ff), ("attention.head_count", shape.n_head),
                 ("attention.head_count_kv", shape.n_head_kv)):
        kvs.append((f"llama.{k}", encode(V.UINT32, v)))
    kvs.append(("llama.attention.layer_norm_rms_epsilon", encode(V.FLOAT32, 1e-5)))
    tensors, data = [], []

    def f32(name, n):
        tensors.append(TensorOut(name, (n,), int(Q.F32), 4 * n))
        data.append(lambda n=n: np.ones(n, np.float32))

    def matrix(name, k, rows, t=wtype):
        _, per, size = GGML_TYPES[t]
        nbytes = rows * k // per * size
        tensors.append(TensorOut(name, (k, rows), t, nbytes))

        def blocks(nbytes=nbytes):
            if t != int(Q.Q8_0):
                return np.zeros(nbytes, np.uint8)
            b = np.zeros(nbytes // 34 * 17, np.uint16).reshape(-1, 17)
            b[:, 0] = 0x3C00                                 # d = 1.0 (F16), codes 0
            return b.reshape(-1).view(np.uint8)
        data.append(blocks)

    if d * shape.n_vocab <= 1 << 20:
        tensors.append(TensorOut("token_embd.weight", (d, shape.n_vocab), int(Q.F32), 4 * d * shape.n_vocab))
        data.append(lambda: np.random.default_rng(1).standard_normal(d * shape.n_vocab).astype(np.float32) * 0.1)
    else:
        matrix("token_embd.weight", d, shape.n_vocab, int(Q.Q8_0))
    f32("output_norm.weight", d)
    if head_type is not None:
        matrix("output.weight", d, shape.n_vocab, head_type)
    for il in range(n_layer):
        p = f"blk.{il}."
        f32(p + "attn_norm.weight", d)
        f32(p + "ffn_norm.weight", d)
        for name, k, rows in (("attn_q", d, d), ("attn_k", d, shape.n_head_kv * hd), ("attn_v", d, shape.n_head_kv * hd),
                              ("attn_output", d, d), ("ffn_gate", d, shape.n_ff), ("ffn_up", d, shape.n_ff),
                              ("ffn_down", shape.n_ff, d)):
            matrix(p + name + ".weight", k, rows)
    write_gguf(path, kvs, tensors, lambda i: data[i]())
    return path


def time_decode(path: Path, n_gpu: int, backend: str, steps: int) -> float:
    """seconds per decode step (the median of `steps`, after 3 that warm up and capture
    the decode graph) of the model at path with its last n_gpu layers on backend"""
    from llmlite.gguf import open_gguf
    from llmlite.model import Weights

    with open_gguf(path) as g:
        w = Weights(g, 64 + steps, 8, n_gpu=n_gpu, backend=backend)
        times = []
        for pos in range(3 + steps):
            t0 = time.perf_counter()
            w.forward([1 + pos % 200], pos, 1)
            times.append(time.perf_counter() - t0)
        del w
    return statistics.median(times[3:])


def _slope(t_small: float, t_big: float, n_small: int, n_big: int) -> tuple[float, float]:
    """(per layer, per step) in us from two step times of n_small and n_big layers"""
    per_layer = max(0.0, (t_big - t_small) / (n_big - n_small))
    return 1e6 * per_layer, 1e6 * max(0.0, t_small - n_small * per_layer)


STEPS = 20                               # decode steps timed per model


def measure_gpu(backend: str = "cuda") -> dict:
    """gpu_launch_us, gpu_step_us and gpu_gbs of the device behind backend (see the
    module docstring): three temporary models, every layer on the device"""
    narrow, wide, steps = NARROW, WIDE, STEPS
    with tempfile.TemporaryDirectory(prefix="llmlite-speed-") as d:
        t = {n: time_decode(write_model(Path(d) / f"n{n}.gguf", narrow, n), n, backend, steps) for n in (2, 8)}
        layer_us, step_us = _slope(t[2], t[8], 2, 8)
        tw = time_decode(write_model(Path(d) / "wide.gguf", wide, 1), 1, backend, steps)
    wide_us = max(1e-3, 1e6 * tw - step_us)
    return dict(gpu_launch_us=layer_us / BASE_LAUNCHES, gpu_step_us=step_us,
                gpu_gbs=wide.layer_bytes() / (wide_us * 1e-6) / 1e9)


def measure_cpu() -> dict:
    """cpu_layer_us: the slope between 2 and 8 narrow layers on the CPU"""
    narrow, steps = NARROW, STEPS
    with tempfile.TemporaryDirectory(prefix="llmlite-speed-") as d:
        t = {n: time_decode(write_model(Path(d) / f"n{n}.gguf", narrow, n), 0, "cpu", steps) for n in (2, 8)}
    return dict(cpu_layer_us=_slope(t[2], t[8], 2, 8)[0])


# ---- the cache ----------------------------------------------------------------------

def _cache_file() -> Path:
    return settings.cache_root() / "devices.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, entry: dict) -> None:
    try:
        data = _read_cache()
        data[key] = entry
        f = _cache_file()
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, f)
    except OSError:
        pass


def build_id(path: Path) -> str:
    """the backend library's build: a hash of its bytes (a rebuild measures again)"""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()[:16]


def driver_version() -> str:
    """the NVIDIA kernel driver's version line ("" where there is none)"""
    try:
        return Path("/proc/driver/nvidia/version").read_text().splitlines()[0].split("Kernel Module")[-1].split()[0]
    except (OSError, IndexError):
        return ""


def cpu_key(threads: int) -> str:
    return f"cpu|{socket.gethostname()}|{os.cpu_count()}|{threads}"


def gpu_key(name: str, lib_path: Path) -> str:
    return f"cuda|{name}|{driver_version()}|{build_id(lib_path)}"


def device_speed(backend: str = "cuda", *, measure: bool = True, cpu_gbs: float | None = None,
                 threads: int | None = None, device_name: str | None = None) -> Speed:
    """The Speed of this machine for a plan on backend: each side's figures from the
    cache, else measured now (measure=True, unless LLMLITE_SPEED_TIMING=0) and cached,
    else the defaults. backend
    "cpu" (the stand-in) and a CUDA backend without a usable device: the GPU side from
    the defaults. device_name: the GPU's name (None: asked of the loaded backend)."""
    from llmlite._lib import lib
    from llmlite.offload import cpu_bandwidth_gbs, cuda_lib_path, load_cuda

    threads = threads or int(lib.llm_get_threads())
    measure = measure and settings.env_flag("LLMLITE_SPEED_TIMING", True)
    gbs = cpu_gbs if cpu_gbs is not None else cpu_bandwidth_gbs(threads)
    cache = _read_cache()
    notes, measured, t0 = [], True, time.perf_counter()
    ck = cpu_key(threads)
    cpu = cache.get(ck)
    timed = (ck not in cache or backend == "cuda" and load_cuda()[0]
             and gpu_key(device_name or _cuda_name(), cuda_lib_path()) not in cache) and measure
    if cpu is None and measure:
        cpu = _measured(measure_cpu, ck, notes)
    if cpu is None:
        cpu, measured = {"cpu_layer_us": DEFAULT_CPU_LAYER_US}, False
        notes.append("CPU defaults")
    gpu = None
    if backend == "cuda" and load_cuda()[0]:
        name = device_name or _cuda_name()
        gk = gpu_key(name, cuda_lib_path())
        gpu = cache.get(gk)
        if gpu is None and measure:
            gpu = _measured(lambda: measure_gpu("cuda"), gk, notes)
        what = name
    else:
        what = "no GPU here" if backend == "cuda" else "the CPU stand-in"
    if gpu is None:
        gpu, measured = DEFAULT_GPU, False
        notes.append(f"GPU defaults, issue 24's H200 figures ({what})")
    src = ("measured on " + what + f", {threads} CPU threads") if measured else \
        ("; ".join(notes) + ("" if "CPU defaults" in notes else f"; CPU measured, {threads} threads"))
    if timed:
        src += f" (timed now, {time.perf_counter() - t0:.1f} s, once for this device: {_cache_file()})"
    return Speed(cpu_gbs=gbs, cpu_layer_us=float(cpu["cpu_layer_us"]),
                 **{k: float(gpu[k]) for k in DEFAULT_GPU}, source=src, measured=measured)


def _measured(fn, key: str, notes: list) -> dict | None:
    """fn()'s figures, cached under key; None (and a note) where the timing failed: a
    plan must not stop the run it is for"""
    try:
        got = fn()
    except Exception as e:      # e.g. the device out of memory for the wide model
        notes.append(f"the timing failed ({type(e).__name__}: {e})")
        return None
    _write_cache(key, {**got, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return got


def _cuda_name() -> str:
    from llmlite._lib import ffi, lib

    free, total, name = ffi.new("long long *"), ffi.new("long long *"), ffi.new("char[128]")
    if lib.llm_cuda_info(free, total, name, 128) != 0:
        return "GPU"
    return ffi.string(name).decode(errors="replace")

