"""Every setting llmlite takes from the environment, its folders and its defaults, listed once.

The README's "Settings" table is this module's ENV list (a test holds them equal). Python reads
a variable only through `env()`; the few that the C side or the CUDA backend read themselves are
listed here too, marked `read_by="C"` / `"CUDA"`, so that one table names them all.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Var:
    name: str
    default: str
    doc: str
    read_by: str = "Python"


ENV = [
    Var("LLMLITE_CACHE", "~/.cache/llmlite", "llmlite's cache: models/ (the PyPI-provided models), the chat "
        "history, the measured bandwidth and speed constants (devices.json), when each model was last run"),
    Var("LLMLITE_CONFIG", "$XDG_CONFIG_HOME/llmlite or ~/.config/llmlite", "the folder of the user's models.toml"),
    Var("LLMLITE_MODELS_TOML", "the package's models.toml", "the shipped alias list to use instead"),
    Var("LLMLITE_PLAIN", "0", "1: replies as plain text, never rendered Markdown (as --plain)"),
    Var("LLMLITE_ISA", "the best this CPU has", "scalar, avx2 or avx512: force a kernel set", "C"),
    Var("LLMLITE_REPACK", "1", "0: no interleaved copies of the weights (csrc/repack.c; made only where they fit "
        "in the memory available): slower decode"),
    Var("LLMLITE_HUGE_PAGES", "1", "0: the copies stay in 4 KiB pages (csrc/huge_pages.c moves them into 2 MiB "
        "pages in the model's pauses after the load): slower decode"),
    Var("LLMLITE_OFFLOAD_BACKEND", "cuda", "the device backend -ngl offloads to: cuda, or cpu (the stand-in "
        "device the tests use)"),
    Var("LLMLITE_STANDIN_VRAM_MB", "the free RAM", "the free memory the cpu stand-in device reports"),
    Var("LLMLITE_DEVICE_FALLBACK", "1", "0: a device that fails a step raises instead of handing over to the CPU"),
    Var("LLMLITE_SPEED_TIMING", "1", "0: the plan's speed constants are not timed on this machine (the cached ones, "
        "else the defaults: issue 24's H200 figures)"),
    Var("LLMLITE_CUDA_LIB", "libllmlite_cuda.so beside the package", "the CUDA backend library to load"),
    Var("LLMLITE_CUDA_GRAPH", "1", "0: decode steps launched one by one instead of replayed from a CUDA graph",
        "CUDA"),
    Var("LLMLITE_CUDA_FUSE", "1", "0: the unfused kernels (one launch per op), for checking the fused ones",
        "CUDA"),
    Var("LLMLITE_CUDA_ACTQ", "0", "1: quantize each matmul input as the CPU's dot products see it", "CUDA"),
    Var("LLMLITE_CUDA_DEBUG", "0", "1: print each CUDA failure on stderr as it happens", "CUDA"),
    Var("LLMLITE_CUDA", "0", "1 at `pip install`: build the CUDA backend too (needs nvcc)", "setup.py"),
]
_NAMES = {v.name for v in ENV}

# defaults that more than one place needs
DEFAULT_CTX = 4096          # -c when not given: min(this, the training context)
MAX_CTX = (1 << 31) - 1024  # the C side counts positions (and a little more) in an int


def env(name: str) -> str | None:
    """The value of one of the variables in ENV (None when unset or empty)."""
    assert name in _NAMES, f"{name} is not in llmlite.settings.ENV"
    return os.environ.get(name) or None


def env_flag(name: str, default: bool) -> bool:
    v = env(name)
    return default if v is None else v not in ("0", "false", "no", "off")


def cache_root() -> Path:
    """$LLMLITE_CACHE, else ~/.cache/llmlite (not created here)."""
    return Path(env("LLMLITE_CACHE") or Path.home() / ".cache" / "llmlite")


def config_dir() -> Path:
    """$LLMLITE_CONFIG, else $XDG_CONFIG_HOME/llmlite (~/.config/llmlite)."""
    base = env("LLMLITE_CONFIG")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "llmlite"


def default_ctx(n_ctx_train: int | None) -> int:
    """The context a model gets when none is asked for: min(DEFAULT_CTX, its training context)."""
    return min(DEFAULT_CTX, n_ctx_train) if n_ctx_train and n_ctx_train > 0 else DEFAULT_CTX


def readme_table() -> str:
    """The README's settings table, from ENV."""
    rows = ["| variable | default | what | read by |", "|---|---|---|---|"]
    rows += [f"| `{v.name}` | {v.default} | {v.doc} | {v.read_by} |" for v in ENV]
    return "\n".join(rows)
