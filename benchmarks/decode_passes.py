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

import decode_rounds
from llmlite._lib import ffi, lib

KINDS = {lib.LLM_PASS_QKV: "q/k/v", lib.LLM_PASS_ATTN_OUT: "attn output", lib.LLM_PASS_FFN_UP: "ffn gate/up",
         lib.LLM_PASS_FFN_DOWN: "ffn down", lib.LLM_PASS_HEAD: "head"}


def main() -> None:
    a, m, toks, probe, _ = decode_rounds.setup(__doc__, 128, 3)
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
        p0 = probe()
        v = decode()
        p1 = probe()
        pm = (p0 + p1) / 2
        sec, nbytes, fwd, ntok = v[:nk], v[nk:2 * nk], v[2 * nk], v[2 * nk + 1]
        print(f"round {r + 1}: probe {p0:.1f} / {p1:.1f} GB/s, {ntok / fwd:.1f} t/s "
              f"({fwd / ntok * 1e3:.2f} ms a token in the forward calls)")
        for k in sorted(KINDS):
            name, s, b = KINDS[k], sec[k], nbytes[k]
            if s > 0:
                print(f"  {name:12s} {s / ntok * 1e3:7.3f} ms  {b / ntok / 1e6:8.1f} MB  "
                      f"{b / s / 1e9:6.1f} GB/s  {b / s / 1e9 / pm:4.0%} of the probe")
        rest = fwd - sum(sec)
        print(f"  {'between':12s} {rest / ntok * 1e3:7.3f} ms  ({rest / fwd:.1%} of the forward calls)")


if __name__ == "__main__":
    main()
