"""Matvec throughput per weight type on a model's real weights: what `make bench`
(benchmarks/bench_kernels.py) reports. Benchmark code, kept out of the package."""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from llmlite import _lib
from llmlite._lib import ffi, lib
from llmlite.bench import CHUNK_BYTES, probe_bandwidth
from llmlite.errors import LlmliteError
from llmlite.gguf.constants import type_name


@dataclass
class TypeRow:
    """Matvec figures for one weight type (or the total)."""
    type: str
    tensors: int = 0
    bytes: int = 0
    seconds: float = 0.0        # one matvec over each of these tensors (best pass each)
    gbs: float = 0.0            # bytes / seconds / 1e9
    frac_of_probe: float = 0.0  # gbs / probed read bandwidth (2 MiB pages)
    frac_of_probe_4k: float = 0.0  # gbs / probed read bandwidth with 4 KiB pages, as mmapped weights have


@dataclass
class MatvecReport:
    path: str
    threads: int
    isa: str
    probe_gbs: float
    probe_4k_gbs: float
    repeats: int
    best_pass_seconds: float = 0.0   # wall time of the fastest whole pass (calls included)
    rows: list[TypeRow] = field(default_factory=list)   # per type, then "total"
    skipped: dict[str, int] = field(default_factory=dict)  # type name -> tensors without a kernel

    def as_dict(self) -> dict:
        return asdict(self)


def _weights(g):
    """The 2-D weights of an open GGUF, in file order: (name, type, rows, k, data)."""
    out, skipped = [], defaultdict(int)
    for name, t in g.tensors.items():
        if len(t.shape) != 2 or t.n_elements == 0:
            continue
        k, rows = int(t.shape[0]), int(t.shape[1])
        if not lib.llm_type_supported(t.type) or lib.llm_row_bytes(t.type, k) < 0:
            skipped[type_name(t.type)] += 1
            continue
        out.append((name, t.type, rows, k, g.tensor_data(name)))
    return out, dict(skipped)


def matvec_throughput(path: str | os.PathLike, threads: int | None = None, repeats: int = 5,
                      probe_gbs: float | None = None, probe_4k_gbs: float | None = None,
                      seed: int = 0) -> MatvecReport:
    """Time a one-column matmul (decode's matvec) over every 2-D weight of the GGUF
    at `path`, one tensor after the other in file order, `repeats` passes after a
    warm-up pass. The activation is converted to the paired type once per shape,
    outside the timing, so what is timed is the kernel reading the weight.
    The probes (measured here unless given) are the yardsticks.

    The whole set is read each pass, so for models larger than the last-level
    cache every tensor comes from memory, as it does when decoding. Each tensor
    (or row slice of at most CHUNK_BYTES of a bigger one) is timed on its own and
    its best pass kept; a type's time is the sum over its tensors, the total the
    sum over all. On a shared machine a long call is nearly always interrupted
    somewhere; a short one mostly is not, so the best passes show the kernels.
    """
    from llmlite.gguf import open_gguf

    repeats = max(1, int(repeats))
    prev = lib.llm_get_threads()
    n = _lib.set_threads(threads)
    try:
        if probe_gbs is None:
            probe_gbs = probe_bandwidth(n)
        if probe_4k_gbs is None:
            probe_4k_gbs = probe_bandwidth(n, huge_pages=False)
        rng = np.random.default_rng(seed)
        with open_gguf(path) as g:
            weights, skipped = _weights(g)
            acts, jobs = {}, []
            for name, wtype, rows, k, data in weights:
                key = (wtype, k)
                if key not in acts:
                    acts[key] = _lib.quantize_act(wtype, rng.standard_normal(k).astype(np.float32))
                # a big tensor (an embedding used as the output) is timed in row
                # slices of about CHUNK_BYTES: the same work, as the probe does it
                rb = int(lib.llm_row_bytes(wtype, k))
                step = max(1, CHUNK_BYTES // rb)
                for r0 in range(0, rows, step):
                    nr = min(step, rows - r0)
                    jobs.append((type_name(wtype), wtype, nr, k,
                                 ffi.cast("void *", data.ctypes.data + r0 * rb), nr * rb,
                                 ffi.cast("void *", acts[key].ctypes.data)))
            ymax = max((j[2] for j in jobs), default=0)
            y = np.empty(max(ymax, 1), dtype=np.float32)
            yp = ffi.cast("float *", y.ctypes.data)

            matmul_q, now = lib.llm_matmul_q, lib.llm_now
            times = np.empty((repeats, len(jobs)))
            walls = []
            for rep in range(-1, repeats):   # pass -1 warms up (page faults, pool threads)
                w0 = now()
                for i, (tname, wtype, rows, k, wp, _, xp) in enumerate(jobs):
                    t0 = now()
                    if matmul_q(wtype, wp, rows, k, xp, 1, yp) != 0:
                        raise LlmliteError(f"matmul_q failed on a {tname} weight ({rows} x {k})")
                    if rep >= 0:
                        times[rep, i] = now() - t0
                if rep >= 0:
                    walls.append(now() - w0)
            del acts
    finally:
        lib.llm_set_threads(prev)

    # best pass per tensor: on a shared machine a pass can be interrupted, and the
    # minimum is what the kernel does when it is not; the figures add up by type
    tbest = times.min(axis=0)
    report = MatvecReport(path=str(path), threads=n, isa=_lib.isa(), probe_gbs=probe_gbs,
                          probe_4k_gbs=probe_4k_gbs, repeats=repeats, skipped=skipped,
                          best_pass_seconds=min(walls) if walls else 0.0)
    by_type: dict[str, TypeRow] = {}
    for _, wtype, _, _, _ in weights:
        tname = type_name(wtype)
        by_type.setdefault(tname, TypeRow(tname)).tensors += 1
    for (tname, _, _, _, _, nbytes, _), t in zip(jobs, tbest):
        r = by_type[tname]
        r.bytes += nbytes
        r.seconds += float(t)
    total = TypeRow("total", tensors=len(weights), bytes=sum(r.bytes for r in by_type.values()),
                    seconds=sum(r.seconds for r in by_type.values()))
    for r in [*sorted(by_type.values(), key=lambda r: r.type), total]:
        r.gbs = r.bytes / r.seconds / 1e9 if r.seconds > 0 else 0.0
        r.frac_of_probe = r.gbs / probe_gbs if probe_gbs > 0 else 0.0
        r.frac_of_probe_4k = r.gbs / probe_4k_gbs if probe_4k_gbs > 0 else 0.0
        report.rows.append(r)
    return report
