"""Time tokenizing a text file with each model's tokenizer.

    python benchmarks/bench_tokenize.py [-r 3] [-f FILE] [MODEL ...]

MODEL: paths or models.toml aliases (default: smollm2-135m gemma3-270m).
FILE: default $LLMLITE_SHARED/data/wikitext2_test.txt (1.26 MB of English; the folder
of data kept outside the repository, ../shared when the variable is unset).
For each model: the tokenizer's load time (open_gguf + Tokenizer.from_gguf),
"cold" = the first encode by a fresh tokenizer (empty word cache), "warm" = the
median of -r encodes by the same tokenizer afterwards, and decode of all ids.
The text is encoded without BOS, parse_special off (the perplexity protocol).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def resolve(name: str) -> Path:
    p = Path(name)
    if p.exists():
        return p
    from llmlite.registry import ensure_model
    return ensure_model(name, quiet=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    shared = Path(os.environ.get("LLMLITE_SHARED", ROOT.parent / "shared"))
    ap.add_argument("-f", "--file", default=str(shared / "data" / "wikitext2_test.txt"))
    ap.add_argument("-r", "--reps", type=int, default=3)
    args = ap.parse_args()

    from llmlite.gguf import open_gguf
    from llmlite.tokenizer import Tokenizer

    text = Path(args.file).read_text(encoding="utf-8")
    mb = len(text.encode()) / 1e6
    print(f"text: {args.file} ({mb:.2f} MB, {len(text):,} code points)")
    print(f"{'model':<40} {'load s':>7} {'tokens':>9} {'cold s':>7} {'warm s':>7} {'MB/s':>6} {'decode s':>8}")
    for name in args.models:
        path = resolve(name)
        t0 = time.perf_counter()
        tok = Tokenizer.from_gguf(open_gguf(path))
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special=False)
        t_cold = time.perf_counter() - t0
        warm = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            again = tok.encode(text, add_special=False)
            warm.append(time.perf_counter() - t0)
            assert again == ids
        t0 = time.perf_counter()
        tok.decode(ids)
        t_dec = time.perf_counter() - t0
        t_warm = statistics.median(warm)
        print(f"{path.name:<40} {t_load:7.3f} {len(ids):9,d} {t_cold:7.3f} {t_warm:7.3f} {mb / t_cold:6.2f} "
              f"{t_dec:8.3f}")


if __name__ == "__main__":
    main()
