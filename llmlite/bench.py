"""What `llmlite bench` measures: the machine's read bandwidth (the ceiling for decoding,
which reads every weight once per token), pp/tg as llama-bench times them, bytes moved per
token, and the verdict on what limits decode. (Per-type matvec throughput, `make bench`,
is benchmark code: benchmarks/matvec.py.)"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmlite._lib import lib

PROBE_BYTES = 512 << 20   # well past any L3 this runs on
CHUNK_BYTES = 8 << 20     # the most one timed call reads (the probe's chunk, csrc/probe.c)


def probe_bandwidth(threads: int | None = None, nbytes: int = PROBE_BYTES, reps: int = 5,
                    huge_pages: bool = True) -> float:
    """Read bandwidth of this machine in GB/s (1e9 bytes/s) with `threads` threads
    (None: physical cores), best of `reps` passes (per 8 MiB chunk) over `nbytes`.
    huge_pages=False measures with 4 KiB pages, as weights mapped from a file
    get (on a virtual machine that can be much lower)."""
    return float(lib.llm_probe_read_bw_pages(int(nbytes), 0 if threads is None else int(threads),
                                             int(reps), 1 if huge_pages else 0))


# ---- llama-bench style model benchmark: pp512 / tg128 ---------------------------

@dataclass
class BenchResult:
    test: str            # "pp512" / "tg128"
    n_tokens: int
    runs: list[float]    # tokens/s per run
    settle_s: float = 0.0   # tg: the wait for the copies' move into 2 MiB pages before it (Model.settle)

    @property
    def mean(self) -> float:
        return float(np.mean(self.runs)) if self.runs else 0.0

    @property
    def sd(self) -> float:
        return float(np.std(self.runs, ddof=1)) if len(self.runs) > 1 else 0.0


def decode_bytes_per_token(model, pos: int) -> int:
    """Bytes one decode step reads at KV position pos: every weight a token uses once
    (the output head in full; one row of an untied token embedding and of gemma4's
    per-layer embedding table; of a mixture of
    experts' expert tensors, the n_expert_used experts it runs) plus the K and V cache
    up to pos (F16)."""
    g = model.gguf
    c = model.config
    total = 0
    for name, t in g.tensors.items():
        if (name == "token_embd.weight" and "output.weight" in g.tensors) or name == "per_layer_token_embd.weight":
            total += t.nbytes // max(1, int(t.shape[1]))     # one row (gemma4's per-layer table too)
            continue
        if c.n_expert and name.endswith("_exps.weight"):
            total += t.nbytes // c.n_expert * c.n_expert_used
            continue
        total += t.nbytes
    # every layer reads pos positions of a cache (gemma4's: each at its own heads and head
    # size, a shared layer an earlier layer's)
    total += pos * sum(2 * h * c.layer_head_dim(il) * 2 for il, h in enumerate(c.n_head_kv_per_layer))
    return int(total)


def _runs(model, reps: int, n: int, work) -> list[float]:
    """tokens/s of `reps` timed runs of work() from an empty cache, after one warm-up run"""
    import time

    runs = []
    for r in range(reps + 1):
        model.reset()
        t0 = time.perf_counter()
        work()
        dt = time.perf_counter() - t0
        if r:
            runs.append(n / dt)
    return runs


def run_model_bench(model, n_prompt: int = 512, n_gen: int = 128, reps: int = 3, seed: int = 0):
    """llama-bench's pp and tg tests on a loaded model: random tokens, from an empty cache,
    one warm-up run each; tg once the decode copies are in 2 MiB pages (Model.settle: a
    session's decode after its first pause). Returns (pp BenchResult | None, tg
    BenchResult | None)."""
    rng = np.random.default_rng(seed)
    pp = tg = None
    for flag, n in (("-p", n_prompt), ("-n", n_gen)):
        if n > model.n_ctx:
            raise ValueError(f"{flag} {n} is larger than the context {model.n_ctx}")
    if n_prompt > 0:
        toks = rng.integers(0, model.n_vocab, n_prompt).tolist()
        pp = BenchResult(f"pp{n_prompt}", n_prompt, _runs(model, reps, n_prompt, lambda: model.eval_last(toks)))
    if n_gen > 0:
        gen = rng.integers(0, model.n_vocab, n_gen).tolist()

        def decode():
            for t in gen:
                model.step(t)          # the decode loop's own call: logits into a reused buffer

        settle_s = model.settle()
        tg = BenchResult(f"tg{n_gen}", n_gen, _runs(model, reps, n_gen, decode), settle_s)
    model.reset()
    return pp, tg


def bottleneck_verdict(tg_tps: float, bytes_per_token: float, probe_gbs: float, pp_tps: float | None,
                       threads: int, cores: int) -> str:
    """One line naming what limits decode, in the spirit of the field guide."""
    achieved = tg_tps * bytes_per_token / 1e9
    frac = achieved / probe_gbs if probe_gbs > 0 else 0.0
    if frac >= 0.6:
        more = "more threads will not" if threads >= cores else "more threads may help a little"
        return (f"decode is bandwidth-bound at {frac:.0%} of {probe_gbs:.1f} GB/s: fewer bits per weight "
                f"or prompt-lookup speculation would help; {more}")
    if frac >= 0.3:
        return (f"decode reaches {frac:.0%} of {probe_gbs:.1f} GB/s: partly bandwidth-bound, partly "
                "per-token overhead (kernels, threads, attention); fused kernels would help")
    return (f"decode reaches only {frac:.0%} of {probe_gbs:.1f} GB/s: compute or overhead-bound, not memory; "
            + ("more threads would help" if threads < cores else "faster kernels or less per-token work would help"))
