#!/usr/bin/env python3
"""Kernel benchmark: this machine's read bandwidth, and how close the one-column
matmul (decode's matvec) gets to it on the real test models' weights, per weight
type, with 1 and 2 threads.

    python3 benchmarks/bench_kernels.py [--models gemma3-270m smollm2-135m] [--threads 1 2] [--json]

Absolute figures on a shared machine drift from run to run; compare the
fraction of the probe, measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from llmlite import _lib
from llmlite.bench import probe_bandwidth
from matvec import matvec_throughput
from llmlite.registry import ensure_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"],
                    help="models.toml aliases or GGUF paths")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=10, help="timed passes over each model")
    ap.add_argument("--probe-mb", type=int, default=512, help="probe buffer size in MiB")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    a = ap.parse_args(argv)

    paths = {}
    for m in a.models:
        paths[m] = m if m.endswith(".gguf") else str(ensure_model(m, quiet=a.json))

    out = {"isa": _lib.isa(), "probe_gbs": {}, "probe_4k_gbs": {}, "matvec": []}
    for t in a.threads:
        out["probe_gbs"][t] = probe_bandwidth(t, a.probe_mb << 20)
        out["probe_4k_gbs"][t] = probe_bandwidth(t, a.probe_mb << 20, huge_pages=False)
    if not a.json:
        print(f"kernels: {out['isa']}")
        for t in a.threads:
            print(f"read bandwidth probe ({a.probe_mb} MiB), {t} thread{'s' if t > 1 else ''}: "
                  f"{out['probe_gbs'][t]:6.2f} GB/s (2 MiB pages), {out['probe_4k_gbs'][t]:6.2f} GB/s "
                  f"(4 KiB pages, as mmapped weights)")

    for m, p in paths.items():
        for t in a.threads:
            r = matvec_throughput(p, t, repeats=a.repeats, probe_gbs=out["probe_gbs"][t],
                                  probe_4k_gbs=out["probe_4k_gbs"][t])
            d = r.as_dict()
            d["model"] = m
            out["matvec"].append(d)
            if a.json:
                continue
            print(f"\n{m}, {r.threads} thread{'s' if r.threads > 1 else ''}: one-column matmul over every 2-D weight"
                  f" (best of {r.repeats} per tensor; best whole pass {r.best_pass_seconds * 1e3:.2f} ms)")
            print(f"  {'type':<6} {'tensors':>7} {'MB':>8} {'ms':>8} {'GB/s':>7} {'% probe':>8} {'% 4K':>7}")
            for row in r.rows:
                print(f"  {row.type:<6} {row.tensors:>7} {row.bytes / 1e6:>8.1f} {row.seconds * 1e3:>8.3f}"
                      f" {row.gbs:>7.2f} {row.frac_of_probe * 100:>7.1f}% {row.frac_of_probe_4k * 100:>6.1f}%")
            for tn, c in r.skipped.items():
                print(f"  ({c} {tn} tensor{'s' if c > 1 else ''} skipped: no kernel)")
    if a.json:
        json.dump(out, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
