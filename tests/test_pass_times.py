"""csrc/forward.c's pass timer (llm_pass_times), which benchmarks/decode_passes.py
reads: switched off it counts nothing; on, each kind of pass adds the bytes of its
weights once a token, and time within the forward calls' own; a read restarts the sums."""
from llmlite._lib import ffi, lib
from llmlite.gguf import open_gguf
from llmlite.model import Model

NK = lib.LLM_PASS_KINDS


def _read(on: int) -> list[float]:
    out = ffi.new("double[]", 2 * NK + 2)
    lib.llm_pass_times(on, out)
    return list(out)


def test_each_kind_of_pass_counts_its_weights_once_a_token(smollm2_path):
    g = open_gguf(smollm2_path)

    def nbytes(*suffixes: str) -> int:
        return sum(t.nbytes for n, t in g.tensors.items() if n.endswith(suffixes))

    head = "output.weight" if "output.weight" in g.tensors else "token_embd.weight"
    want = [0] * NK
    want[lib.LLM_PASS_QKV] = nbytes("attn_q.weight", "attn_k.weight", "attn_v.weight")
    want[lib.LLM_PASS_ATTN_OUT] = nbytes("attn_output.weight")
    want[lib.LLM_PASS_FFN_UP] = nbytes("ffn_gate.weight", "ffn_up.weight")
    want[lib.LLM_PASS_FFN_DOWN] = nbytes("ffn_down.weight")
    want[lib.LLM_PASS_HEAD] = g.tensors[head].nbytes
    assert all(w > 0 for w in want)
    m = Model(smollm2_path, n_ctx=64, threads=1)
    try:
        _read(0)
        m.step(1)
        m.step(2)
        assert _read(1) == [0.0] * (2 * NK + 2)        # off: nothing counted
        for t in (3, 4, 5):
            m.step(t)
        v = _read(0)
        sec, got, fwd, tokens = v[:NK], v[NK:2 * NK], v[2 * NK], v[2 * NK + 1]
        assert tokens == 3
        assert got == [3.0 * w for w in want]
        assert all(s > 0 for s in sec) and sum(sec) < fwd
        assert _read(0) == [0.0] * (2 * NK + 2)        # the read restarted the sums
    finally:
        lib.llm_pass_times(0, ffi.NULL)
        m.close()
