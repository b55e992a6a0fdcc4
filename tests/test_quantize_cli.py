"""`llmlite quantize` on GGUF input: llama-quantize's type choices (spec section 3),
its file layout (metadata copied in order, quantization_version and file_type last,
tensors in the loader's order, data aligned to 32), the reference quantizers'
bytes, and the failure cases (one line, nothing left at OUTPUT).
benchmarks/quantize_vs_llamacpp.py compares whole files with llama.cpp's."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from llmlite import _lib
from llmlite.gguf import open_gguf
from llmlite.quantize import FTYPES, plan, use_more_bits

from helpers import llmlite as cli
from helpers import start_llmlite
from hf_fixture import quantize_gguf

Q4_K, Q5_0, Q6_K, Q8_0, F16, F32 = 12, 6, 14, 8, 1, 0


@pytest.fixture(scope="module")
def smol_f16(smollm2_path, tmp_path_factory):
    """SmolLM2 with every tensor dequantized to F16 (norms stay F32), as a converter writes it"""
    p = tmp_path_factory.mktemp("q") / "smol-f16.gguf"
    quantize_gguf(smollm2_path, p, "f16", allow_requantize=True)
    return p


def test_q4_k_m_plan_follows_llamacpps_rules(smol_f16):
    """SmolLM2 (576 wide, 30 layers, tied embeddings): rows of 576 are not whole
    256-blocks, so Q4_K falls back to Q5_0 and Q6_K to Q8_0; ffn_down (rows of
    1536) keeps Q6_K in the use_more_bits layers and Q4_K elsewhere; attn_v counts
    as the more sensitive tensor; the tied token_embd takes the output's type."""
    with open_gguf(smol_f16) as g:
        p = {e.name: e for e in plan(g, "q4_k_m")}
    assert p["token_embd.weight"].dst_type == Q8_0
    for i in range(30):
        more = use_more_bits(i, 30)
        assert p[f"blk.{i}.ffn_down.weight"].dst_type == (Q6_K if more else Q4_K), i
        assert p[f"blk.{i}.attn_v.weight"].dst_type == (Q8_0 if more else Q5_0), i
        for t in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"):
            assert p[f"blk.{i}.{t}.weight"].dst_type == Q5_0, (i, t)
        assert p[f"blk.{i}.attn_norm.weight"].dst_type == F32
    assert sorted(use_more_bits(i, 16) for i in range(16)) and \
        [i for i in range(16) if use_more_bits(i, 16)] == [0, 1, 4, 7, 10, 13, 14, 15]


def test_float_types_take_no_mixture(smol_f16):
    with open_gguf(smol_f16) as g:
        for ty, want in (("f16", F16), ("bf16", 30), ("f32", F32)):
            types = {e.dst_type for e in plan(g, ty) if len(e.shape) == 2}
            assert types == {want}, ty


@pytest.mark.slow
def test_file_layout_and_bytes(smol_f16, tmp_path):
    out = tmp_path / "q8.gguf"
    r = quantize_gguf(smol_f16, out, "q8_0")
    assert r["types"] == {"F32": 61, "Q8_0": 211}
    from gguf import GGUFReader

    a, b = GGUFReader(str(smol_f16)), GGUFReader(str(out))
    keys_in = [k for k in a.fields if not k.startswith("GGUF.")]
    keys_out = [k for k in b.fields if not k.startswith("GGUF.")]
    base = [k for k in keys_in if k not in ("general.quantization_version", "general.file_type")]
    assert keys_out == base + ["general.quantization_version", "general.file_type"]
    assert b.fields["general.file_type"].contents() == FTYPES["q8_0"][0]
    for k in base:
        assert a.fields[k].contents() == b.fields[k].contents(), k
    names = [t.name for t in b.tensors]
    layer = [int(n.split(".")[1]) if n.startswith("blk.") else -1 for n in names]
    assert layer == sorted(layer) and names[:3] == ["output_norm.weight", "token_embd.weight", "blk.0.attn_k.weight"]
    assert all(t.data_offset % 32 == 0 for t in b.tensors)
    with open_gguf(smol_f16) as g_in, open_gguf(out) as g_out:
        for name in ("token_embd.weight", "blk.3.ffn_down.weight", "blk.3.attn_norm.weight"):
            ti, to = g_in.tensors[name], g_out.tensors[name]
            x = _lib.dequantize(ti.type, g_in.tensor_data(name), ti.n_elements).reshape(-1, ti.shape[0])
            want = _lib.quantize_rows(to.type, x) if to.type != ti.type else g_in.tensor_data(name)
            assert np.array_equal(np.asarray(g_out.tensor_data(name)), np.asarray(want).reshape(-1)), name


def test_cli_writes_a_model_that_runs(smol_f16, tmp_path):
    src = tmp_path / "m.gguf"
    os.symlink(smol_f16, src)
    r = cli("quantize", src, "--type", "Q4_K_M", "-t", "2")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "m-Q4_K_M.gguf"
    assert out.is_file() and "bits per weight" in r.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temporary left
    import llmlite

    m = llmlite.load(out, n_ctx=64)
    ids = m.tokenize("The capital of France is")
    assert np.isfinite(m.eval_last(ids)).all()
    m.close()


def test_dry_run_prints_the_plan_and_writes_nothing(smol_f16, tmp_path):
    out = tmp_path / "x.gguf"
    r = cli("quantize", smol_f16, out, "--type", "q6_k", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "blk.29.ffn_down.weight" in r.stdout and "Q6_K" in r.stdout and "bits per weight" in r.stdout
    assert not out.exists()


@pytest.mark.parametrize("args,words", [
    (["--type", "q9_x"], ["--type", "q4_k_m"]),
    (["--type", "q4_0", "{same}"], ["overwrite the input"]),
])
def test_bad_options(smol_f16, args, words):
    r = cli("quantize", smol_f16, *[str(smol_f16) if a == "{same}" else a for a in args])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and all(w in line for w in words), line


def test_bad_inputs(tmp_path, smollm2_path):
    r = cli("quantize", tmp_path / "missing.gguf")
    assert r.returncode == 2 and "no such file" in r.stderr
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 10)
    r = cli("quantize", junk, tmp_path / "o.gguf")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert not (tmp_path / "o.gguf").exists()
    r = cli("quantize", smollm2_path, tmp_path / "o.gguf", "--type", "q4_0")   # Q4_1 weights: requantizing
    assert r.returncode == 2 and "--allow-requantize" in r.stderr
    assert not (tmp_path / "o.gguf").exists()


def test_interrupted_run_leaves_nothing(smol_f16, tmp_path):
    out = tmp_path / "int.gguf"

    def stop(done, total, e):
        if done == 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quantize_gguf(smol_f16, out, "q8_0", progress=stop)
    assert list(tmp_path.iterdir()) == []


def _parts(folder):
    return [p.name for p in folder.iterdir() if ".part-" in p.name]


def test_sigterm_removes_the_partial_file(smol_f16, tmp_path):
    """SIGTERM mid-write (kill, a CI timeout) is handled as Ctrl-C is: the hidden
    .NAME.part-PID is removed, one error line, a non-zero exit."""
    out = tmp_path / "term.gguf"
    p = start_llmlite("quantize", smol_f16, out, "--type", "q8_0")
    deadline = time.monotonic() + 60
    while not _parts(tmp_path) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _parts(tmp_path), "the part file never appeared"
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    err = err.decode()
    assert p.returncode != 0 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert list(tmp_path.iterdir()) == []


def test_stale_parts_of_dead_processes_are_removed(tiny_path, tmp_path):
    """A part file whose process is gone (killed by SIGKILL, a crash) is removed by
    the next quantize to the same output; one of a live process is left alone."""
    out = tmp_path / "o.gguf"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = tmp_path / f".o.gguf.part-{dead.pid}", tmp_path / f".o.gguf.part-{os.getpid()}"
    stale.write_bytes(b"half a model")
    live.write_bytes(b"being written")
    r = cli("quantize", tiny_path, out, "--type", "f32", "--allow-requantize")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "o.gguf"]


def test_write_errors_name_the_output(tiny_path, tmp_path):
    """An output that cannot be written is named as the user typed it, not as the
    hidden temporary it is written to first."""
    out = tmp_path / "missing" / "o.gguf"
    r = cli("quantize", tiny_path, out, "--type", "f32", "--allow-requantize")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"error: {out}: No such file or directory"


IQ4_NL, IQ4_XS, Q5_K, Q5_1 = 20, 23, 13, 7


@pytest.mark.parametrize("ftype", ["iq4_xs", "iq4_nl"])
def test_iq4_plans_follow_llamacpps_rules(smol_f16, ftype):
    """SmolLM2 (rows of 576, ffn_down rows of 1536, 30 layers, GQA 3): IQ4_XS falls back
    to IQ4_NL on rows of 576; ffn_down takes Q5_K in the first 30 // 8 layers (no
    importance matrix); the tied token_embd takes the output's Q6_K, Q8_0 on rows of 576.
    (benchmarks/quantize_vs_llamacpp.py finds the whole files identical to llama-quantize's.)"""
    with open_gguf(smol_f16) as g:
        p = {e.name: e.dst_type for e in plan(g, ftype)}
    assert p["token_embd.weight"] == Q8_0
    for i in range(30):
        assert p[f"blk.{i}.ffn_down.weight"] == (Q5_K if i < 3 else IQ4_XS if ftype == "iq4_xs" else IQ4_NL), i
        for t in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up"):
            assert p[f"blk.{i}.{t}.weight"] == IQ4_NL, (i, t)


def test_iq4_attn_v_takes_q5_k_from_gqa_4():
    """llama.cpp gives attn_v Q5_K for the IQ4 file types when 4 or more query heads
    share a KV head (then Q5_1 on rows that are not whole 256-blocks)"""
    from types import SimpleNamespace

    def tensor(ne0, ne1=512):
        return SimpleNamespace(type=F16, shape=(ne0, ne1), n_elements=ne0 * ne1, nbytes=2 * ne0 * ne1)

    kv = {"general.architecture": "llama", "llama.block_count": 1, "llama.attention.head_count": 8}
    tensors = {"blk.0.attn_v.weight": tensor(512), "blk.0.attn_q.weight": tensor(512),
               "blk.1.attn_v.weight": tensor(576)}
    for n_kv, want in ((2, Q5_K), (4, IQ4_XS)):
        g = SimpleNamespace(tensors=tensors, get={**kv, "llama.attention.head_count_kv": n_kv}.get)
        p = {e.name: e.dst_type for e in plan(g, "iq4_xs")}
        assert p["blk.0.attn_v.weight"] == want and p["blk.0.attn_q.weight"] == IQ4_XS, n_kv
        assert p["blk.1.attn_v.weight"] == (Q5_1 if want == Q5_K else IQ4_NL), n_kv


@pytest.mark.slow
def test_iq4_xs_model_runs_like_llamacpp(smol_f16, tmp_path):
    """`llmlite quantize --type iq4_xs` writes a SmolLM2 whose logits equal, bit for bit,
    llama.cpp's on its own IQ4_XS quantization of the same F16 file (its batch kernels,
    24 positions: tests/data/iq4_refs.npz, benchmarks/make_iq_refs.py), through llmlite's
    batch and its one-token decode, on every ISA"""
    import hashlib
    from pathlib import Path

    from llmlite.model import Weights

    from isa import isas, using_isa

    refs = np.load(Path(__file__).parent / "data" / "iq4_refs.npz")
    out = tmp_path / "m-iq4.gguf"
    r = cli("quantize", smol_f16, out, "--type", "iq4_xs", "-t", "2")
    assert r.returncode == 0, r.stderr
    toks, want = refs["logit_tokens"], [bytes(h) for h in refs["logit_sha_IQ4_XS"]]

    def sha(y):
        return hashlib.sha256(np.ascontiguousarray(y, np.float32).tobytes()).digest()[:8]

    with open_gguf(out) as g:
        for i in isas():
            with using_isa(i):
                w = Weights(g, 64, n_batch=64, flash_attn=False)
                assert [sha(y) for y in w.forward(toks, 0, 2)] == want, f"{i} batch"
                w.forward(toks[:20], 0, 0)
                assert [sha(w.forward(toks[p:p + 1], p, 1)) for p in range(20, 24)] == want[20:], f"{i} decode"
