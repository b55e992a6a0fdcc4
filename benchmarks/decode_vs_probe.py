"""Decode's read bandwidth against the machine's probe, in paired rounds.

`llmlite bench` probes the read bandwidth once, after its runs. On a machine whose
memory bandwidth is shared with other tenants the probe moves by 1.5x within minutes,
so a probe taken at another moment than the decode says little about the decode. Here
each round probes right before and right after its decode (tg of -n tokens from an
empty cache) and compares the decode with the mean of its two probes; the median
round is the figure (issue 19: decode >= 90% of the probed read bandwidth). The probe
reads pages of the size the decode copies have once csrc/huge_pages.c has moved them
(2 MiB; 4 KiB with LLMLITE_HUGE_PAGES=0), and the rounds start after that.

Such a machine's memory also moves between states (here the 2-thread probe reads
about 50 GB/s in one and 88 in the other, for minutes each). A round whose two probes
differ by more than 15% changed state during its decode and is left out of the
medians; the others are also summed up by state, those within 20% of the fastest
round's probe and the rest, since decode's share of the probe differs between them.

    python3 benchmarks/decode_vs_probe.py MODEL.gguf [-n 64] [-r 5] [-t 2]
"""
from __future__ import annotations

import statistics
import time

import decode_rounds
from llmlite import bench as B


def main() -> None:
    a, m, toks, probe, huge = decode_rounds.setup(__doc__, 64, 5)
    w = m.weights
    bpt = B.decode_bytes_per_token(m, a.n // 2)

    def decode_gbs() -> float:
        m.reset()
        t0 = time.perf_counter()
        for t in toks:
            m.step(t)
        return a.n * bpt / (time.perf_counter() - t0) / 1e9

    decode_gbs()                                  # warm-up: the copies' pages, the caches
    ratios, probes, moved = [], [], []
    print(f"{a.model}: {bpt / 1e6:.1f} MB a token, {a.t} threads, tg{a.n}, {w.huge_page_bytes / 1e6:.0f} of "
          f"{w.repacked_bytes / 1e6:.0f} MB of copies in 2 MiB pages: the probe in {'2 MiB' if huge else '4 KiB'} pages")
    for r in range(a.r):
        p0 = probe()
        d = decode_gbs()
        p1 = probe()
        ratios.append(d / ((p0 + p1) / 2))
        probes.append((p0 + p1) / 2)
        moved.append(abs(p0 - p1) > 0.15 * min(p0, p1))
        print(f"round {r + 1}: probe {p0:.1f} / {p1:.1f} GB/s, decode {d:.1f} GB/s: {ratios[-1]:.0%}"
              + (" (the probe moved: left out)" if moved[-1] else ""))
    kept = [i for i in range(a.r) if not moved[i]]
    if not kept:
        print("every round's probe moved during its decode: no figure")
        return
    summary(f"median decode / probe ({len(kept)} of {a.r} rounds)", [ratios[i] for i in kept])
    top = max(probes[i] for i in kept)
    high = [i for i in kept if probes[i] >= 0.8 * top]
    if len(high) < len(kept):   # both states seen: each on its own
        for idx in (high, [i for i in kept if i not in high]):
            lo, hi = min(probes[i] for i in idx), max(probes[i] for i in idx)
            summary(f"  the {len(idx)} with the probe at {lo:.0f}-{hi:.0f} GB/s", [ratios[i] for i in idx])


def summary(label: str, r: list[float]) -> None:
    print(f"{label}: {statistics.median(r):.0%} (min {min(r):.0%}, max {max(r):.0%})")


if __name__ == "__main__":
    main()
