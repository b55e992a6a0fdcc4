"""Time opening a GGUF and reading all its metadata: llmlite.gguf vs gguf-py.

    python benchmarks/bench_load.py [-r 7] [--no-oracle] [MODEL ...]

MODEL: paths or models.toml aliases (default: smollm2-135m gemma3-270m).
llmlite: open_gguf + touch every metadata value (numbers read, lengths of
arrays and string arrays taken, the first and last string decoded) + the
ModelConfig; nothing big is materialised. Median of -r runs (after one warm-up,
so the file is in the page cache for both readers).
gguf-py: one GGUFReader(path) run (it parses everything at open), plus reading
each field's contents for small fields.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def touch_llmlite(path) -> int:
    import numpy as np

    from llmlite.config import ModelConfig
    from llmlite.gguf import StringArray, open_gguf

    n = 0
    with open_gguf(path) as g:
        for v in g.metadata.values():
            if isinstance(v, StringArray):
                n += len(v)
                if len(v):
                    v[0], v[len(v) - 1]
            elif isinstance(v, np.ndarray):
                n += v.size
                if v.size:
                    v[0], v[-1]
            elif isinstance(v, list):
                n += len(v)
            else:
                n += 1
        ModelConfig.from_gguf(g)
        n += len(g.tensors)
    return n


def time_oracle(path) -> float:
    import gguf

    t = time.perf_counter()
    r = gguf.GGUFReader(path)
    for f in r.fields.values():
        if len(f.data) < 64:
            f.contents()
    len(r.tensors)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("-r", "--repeat", type=int, default=7)
    ap.add_argument("--no-oracle", action="store_true", help="skip gguf.GGUFReader (slow: ~10 s on gemma3)")
    a = ap.parse_args()
    from llmlite.registry import resolve_model

    print(f"{'model':40s} {'llmlite (median)':>18s} {'gguf-py (1 run)':>16s} {'ratio':>8s}")
    for m in a.models:
        path = resolve_model(m)
        touch_llmlite(path)  # warm-up: page cache, imports
        ts = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            touch_llmlite(path)
            ts.append(time.perf_counter() - t)
        ours = statistics.median(ts)
        if a.no_oracle:
            print(f"{Path(path).name:40s} {ours * 1e3:15.1f} ms {'-':>16s} {'-':>8s}")
        else:
            ref = time_oracle(path)
            print(f"{Path(path).name:40s} {ours * 1e3:15.1f} ms {ref:14.2f} s {ref / ours:7.0f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
