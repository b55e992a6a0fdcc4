"""Where decode's time goes: each kind of forward pass's ms a token and its weight bytes'
GB/s against the machine's probe, in paired rounds (llm_pass_times).

The kinds are the attention's q/k/v pass, its output, the FFN's gate/up pass, its down
pass and the head; "between" is the rest of the forward calls (norms, rope, attention
itself, the activation, a mixture of experts' routed FFN). Each round probes right
before and after its decode (-n tokens from an empty cache), as decode_vs_probe.py
does, so that each round's figures are read against the memory's state of the moment
(issue 19).

    python3 benchmarks/decode_passes.py MODEL.gguf [-n 128] [-r 3] [-t 2]
"""
from __future__ import annotations

import argparse

import numpy as np

from llmlite import bench as B
from llmlite._lib import ffi, lib
from llmlite.model import Model

KINDS = ("q/k/v", "attn output", "ffn gate/up", "ffn down", "head")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("-n", type=int, default=128, help="tokens decoded a round")
    ap.add_argument("-r", type=int, default=3, help="rounds")
    ap.add_argument("-t", type=int, default=2, help="threads")
    a = ap.parse_args()
    m = Model(a.model, n_ctx=max(a.n, 16), threads=a.t)
    toks = np.random.default_rng(0).integers(0, m.n_vocab, a.n).tolist()
    w = m.weights
    m.step(toks[0])
    m.settle()                                    # the copies into 2 MiB pages
    huge = 2 * w.huge_page_bytes >= w.repacked_bytes > 0
    nk = lib.LLM_PASS_KINDS
    out = ffi.new("double[]", 2 * nk + 2)

    def decode() -> list[float]:
        m.reset()
        lib.llm_pass_times(1, ffi.NULL)
        for t in toks:
            m.step(t)
        lib.llm_pass_times(0, out)
        return list(out)

    decode()                                      # warm-up
    for r in range(a.r):
        p0 = B.probe_bandwidth(a.t, huge_pages=huge)
        v = decode()
        p1 = B.probe_bandwidth(a.t, huge_pages=huge)
        probe = (p0 + p1) / 2
        sec, nbytes, fwd, ntok = v[:nk], v[nk:2 * nk], v[2 * nk], v[2 * nk + 1]
        print(f"round {r + 1}: probe {p0:.1f} / {p1:.1f} GB/s, {ntok / fwd:.1f} t/s "
              f"({fwd / ntok * 1e3:.2f} ms a token in the forward calls)")
        for name, s, b in zip(KINDS, sec, nbytes):
            if s > 0:
                print(f"  {name:12s} {s / ntok * 1e3:7.3f} ms  {b / ntok / 1e6:8.1f} MB  "
                      f"{b / s / 1e9:6.1f} GB/s  {b / s / 1e9 / probe:4.0%} of the probe")
        rest = fwd - sum(sec)
        print(f"  {'between':12s} {rest / ntok * 1e3:7.3f} ms  ({rest / fwd:.1%} of the forward calls)")


if __name__ == "__main__":
    main()
