"""llmlite.offload: the CPU/GPU split plan, checked against figures computed by hand
from the tensor shapes of small synthetic GGUF files, and on the two real models."""
from __future__ import annotations

import gguf
import numpy as np
import pytest

from llmlite.device_costs import Speed
from llmlite.gguf import open_gguf
from llmlite.offload import MiB, format_plan, model_costs, plan_split, vram_free

Q8 = gguf.GGMLQuantizationType.Q8_0

# A 4-layer llama-like model: n_embd 64, 4 heads, 2 KV heads, head_dim 16, n_ff 128, n_vocab 256.
# Bytes by hand (F32 4 B, F16 2 B per element; Q8_0 34 B per 32 elements):
#   attn_norm, ffn_norm   F32 64           2 x 256
#   attn_q, attn_output   F16 64 x 64      2 x 8192
#   attn_k, attn_v        Q8_0 32 rows x 64    2 x 32*2*34 = 2 x 2176
#   ffn_gate, ffn_up      Q8_0 128 rows x 64   2 x 128*2*34 = 2 x 8704
#   ffn_down              layers 0-1: F32 64 rows x 128 = 32768; layers 2-3: Q8_0 64*4*34 = 8704
LAYER = [71424, 71424, 47360, 47360]
# A CUDA span places each weight at a multiple of 256 B (one reservation): attn_k and
# attn_v (2176 = 8.5 x 256) take 128 B more each; every other layer tensor is a multiple
LAYER_PAD = 2 * 128
EMBD = 256 * 2 * 34            # token_embd Q8_0, 256 rows of 64: 17408, one row 68
OUTPUT = 256 * 64 * 2          # output.weight F16: 32768
NORM = 64 * 4                  # output_norm F32
ROPE = 8 * 4                   # rope_freqs F32 (untied file only)
ROPE_PAD = 256 - ROPE          # its slice of the CUDA span's reservation
KV_POS = 2 * 2 * 16 * 2        # K and V, 2 KV heads of 16, F16: bytes per position per layer


def _write(path, tied: bool, arch: str = "llama", window: int = 0, pattern: int = 0):
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), arch)
    for k, v in {"block_count": 4, "context_length": 2048, "embedding_length": 64,
                 "feed_forward_length": 128, "attention.head_count": 4, "attention.head_count_kv": 2}.items():
        w.add_uint32(f"{arch}.{k}", v)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    if window:
        w.add_uint32(f"{arch}.attention.sliding_window", window)
        w.add_uint32(f"{arch}.attention.sliding_window_pattern", pattern)

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def q8(rows, cols):
        return rng.integers(0, 256, (rows, cols // 32 * 34), dtype=np.uint8)

    w.add_tensor("token_embd.weight", q8(256, 64), raw_dtype=Q8)
    for i in range(4):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", f32(64))
        w.add_tensor(p + "attn_q.weight", f32(64, 64).astype(np.float16))
        w.add_tensor(p + "attn_k.weight", q8(32, 64), raw_dtype=Q8)
        w.add_tensor(p + "attn_v.weight", q8(32, 64), raw_dtype=Q8)
        w.add_tensor(p + "attn_output.weight", f32(64, 64).astype(np.float16))
        w.add_tensor(p + "ffn_norm.weight", f32(64))
        w.add_tensor(p + "ffn_gate.weight", q8(128, 64), raw_dtype=Q8)
        w.add_tensor(p + "ffn_up.weight", q8(128, 64), raw_dtype=Q8)
        if i < 2:
            w.add_tensor(p + "ffn_down.weight", f32(64, 128))
        else:
            w.add_tensor(p + "ffn_down.weight", q8(64, 128), raw_dtype=Q8)
    w.add_tensor("output_norm.weight", f32(64))
    if not tied:
        w.add_tensor("output.weight", f32(256, 64).astype(np.float16))
        w.add_tensor("rope_freqs.weight", f32(8))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("offload")
    return {"untied": _write(d / "untied.gguf", False), "tied": _write(d / "tied.gguf", True),
            "swa": _write(d / "swa.gguf", True, "gemma3", window=8, pattern=2)}


@pytest.fixture
def cuda_library(emulated_cuda_lib, monkeypatch):
    """the plan's CUDA figures from the CUDA backend's own table (its sources built
    against the emulated runtime; only its table is read, no device is started)"""
    monkeypatch.setenv("LLMLITE_CUDA_LIB", str(emulated_cuda_lib))
    return emulated_cuda_lib


# model.c's scratch at n_batch 8, n_ctx 128, by hand:
#   rows: 8 * 4 B * (x 64 + xn 64 + q 64 + att 64 + k 32 + v 32 + tmp max(128, 64, 128, 256) + gate 128 + up 128)
#   scores: 256 threads * group 2 * (128 + 16) * 4 B; acc32: 256 * 2 * 16 * 16 * 4 B; q16, acc16: 2 * 256 * 64 * 2 B
SCRATCH = 8 * 4 * 832 + 256 * 2 * 144 * 4 + 256 * 2 * 16 * 16 * 4 + 2 * 256 * 64 * 2
LOGITS = 256 * 8 * 4
# the CUDA span's buffers (csrc/cuda/span_layout.h, as the library reports them: the
# tests below that use these take the cuda_library fixture) at n_batch 8, n_ctx 128, by hand, each
# starting at a multiple of 256 B in one allocation:
#   in 16 + 8*64*4 (2064, so 2304 with the gap before xn); xn 8*64*4; q, att 2 * 8*64*4;
#   k, v 2 * 8*32*4; tmp 8 * max(64, 64+2*32) * 4; gate, up 2 * 8*128*4; xq (the integer
#   kernels' Q8_1 copy of a batch's matmul input) 8 * max(64, 64, 128) * 5/4; attention partials:
#   1 chunk of 128 keys, 8 slots per head, 4 heads, (16 + 2) floats; last-block counters
#   (8 tokens * 4 heads + 1) * 4 B = 132, so 256 up to the logits (or the end)
SPAN = 2304 + 2048 + 2 * 2048 + 2 * 1024 + 8 * 128 * 4 + 2 * 4096 + 8 * 128 * 5 // 4 + 8 * 4 * 18 * 4 + 256
SPAN_LOGITS = 8 * 256 * 4      # with the head: n_batch rows of logits (under the 64 MiB cap)


def _need(n, tied=False):
    """GPU bytes for the last n layers at n_ctx 128, n_batch 8, by hand."""
    if n == 0:
        return 0
    kv = n * 128 * KV_POS
    head = (EMBD + NORM if tied else OUTPUT + NORM) + SPAN_LOGITS if n == 4 else 0
    return sum(LAYER[4 - n:]) + n * LAYER_PAD + kv + SPAN + head + (0 if tied else ROPE + ROPE_PAD)


def test_layer_head_and_embedding_bytes(files):
    for kind in ("untied", "tied"):
        c = model_costs(files[kind], 128, 8)
        assert c.n_layer == 4 and c.layer_weights == LAYER and c.layer_pad == [LAYER_PAD] * 4
        assert (c.head_pad, c.other_pad) == (0, 0 if kind == "tied" else ROPE_PAD)
        assert model_costs(files[kind], 128, 8, backend="cpu").layer_pad == [0] * 4   # malloc'd copies
        assert c.embd_bytes == EMBD and c.embd_row_bytes == 68
        assert c.head_tied == (kind == "tied")
        assert c.head_bytes == (EMBD + NORM if kind == "tied" else OUTPUT + NORM)
        assert c.other_bytes == (0 if kind == "tied" else ROPE)


def test_kv_bytes_two_contexts(files):
    for n_ctx in (128, 1000):
        c = model_costs(files["untied"], n_ctx, 8)
        assert c.layer_kv == [2 * n_ctx * 2 * 16 * 2] * 4       # K+V * positions * kv heads * head_dim * F16
    assert model_costs(files["untied"], 1000, 8).layer_kv[0] == 128000


def test_kv_bytes_match_what_the_c_model_allocates(files):
    from llmlite.model import Weights

    for n_ctx in (128, 1000):
        with open_gguf(files["untied"]) as g:
            assert sum(model_costs(g, n_ctx, 8).layer_kv) == Weights(g, n_ctx, 8).kv_bytes


def test_compute_bytes(cuda_library, files):
    c = model_costs(files["untied"], 128, 8)
    assert c.span_compute_estimated == ""                # the library's own figure
    assert c.scratch_bytes == SCRATCH == 911360
    assert c.logits_bytes == LOGITS
    assert (c.span_compute, c.span_compute_head) == (SPAN, SPAN + SPAN_LOGITS) == (26624, 34816)
    # the CPU stand-in needs the CPU model's scratch, and no logits buffer of its own
    s = model_costs(files["untied"], 128, 8, backend="cpu")
    assert (s.span_compute, s.span_compute_head) == (SCRATCH, SCRATCH)


def test_unfused_cuda_span_needs_a_wider_tmp(cuda_library, files, monkeypatch):
    """LLMLITE_CUDA_FUSE=0 (the separate launches) keeps a fused ffn_up's 2 n_ff rows in tmp"""
    monkeypatch.setenv("LLMLITE_CUDA_FUSE", "0")
    c = model_costs(files["untied"], 128, 8)
    assert c.span_compute == SPAN + 8 * (256 - 128) * 4


def test_cuda_logits_buffer_is_capped(cuda_library, files):
    """the CUDA span computes the logits of a large batch in slices of at most 64 MiB
    (and 16 rows at least): the plan counts that buffer, not n_batch full rows"""
    from llmlite.offload import span_compute_bytes

    def extra(n_vocab, n_batch):
        return (span_compute_bytes("cuda", n_batch, 512, 64, 4, 2, 16, 128, n_vocab, True)
                - span_compute_bytes("cuda", n_batch, 512, 64, 4, 2, 16, 128, n_vocab, False))
    assert extra(256, 8) == 8 * 256 * 4
    assert extra(262144, 256) == 64 * 262144 * 4                 # gemma3's vocabulary: 64 rows, not 256
    assert extra(49152, 256) == 256 * 49152 * 4                  # smollm2's: 341 rows fit, 256 asked
    assert extra(8_000_000, 256) == 16 * 8_000_000 * 4           # at least 16 rows


@pytest.mark.parametrize("tied", [False, True])
def test_auto_at_the_boundary(cuda_library, files, tied):
    c = model_costs(files["tied" if tied else "untied"], 128, 8)
    margin = 3 * MiB
    for n in (1, 2, 3, 4):
        p = plan_split(c, _need(n, tied) + margin, margin)
        assert p.n_gpu == n and p.fits and p.gpu.total == _need(n, tied)
        assert p.gpu.layers == range(4 - n, 4) and p.cpu.layers == range(0, 4 - n)
        assert p.head_on_gpu == (n == 4)
        assert (p.gpu.head > 0) == (n == 4) and (p.cpu.head > 0) == (n < 4)
        assert plan_split(c, _need(n, tied) + margin - 1, margin).n_gpu == n - 1
        assert plan_split(c, _need(n, tied) + margin, margin + 1).n_gpu == n - 1   # the margin is kept


def test_hand_figures_are_not_all_the_same():
    # the boundary test means something only if each extra layer costs something
    assert [_need(n) for n in range(5)] == sorted(set(_need(n) for n in range(5)))
    assert _need(1) == 47360 + 256 + 16384 + 26624 + 256


def test_small_vram_and_no_gpu(cuda_library, files):
    c = model_costs(files["untied"], 128, 8)
    assert plan_split(c, _need(1) - 1, 0).n_gpu == 0
    assert plan_split(c, 100 * MiB, 512 * MiB).n_gpu == 0            # less free than the margin
    p = plan_split(c, None)
    assert p.n_gpu == 0 and p.gpu.total == 0 and any("no GPU" in x for x in p.notes)


def test_explicit_n_and_all(cuda_library, files):
    c = model_costs(files["untied"], 128, 8)
    p = plan_split(c, 0, 0, gpu_layers=2)
    assert p.n_gpu == 2 and not p.fits and p.gpu.total == _need(2) and p.notes
    p = plan_split(c, _need(2), 0, gpu_layers=2)
    assert p.n_gpu == 2 and p.fits and not p.notes
    p = plan_split(c, 10**12, 0, gpu_layers=9)
    assert p.n_gpu == 4 and p.head_on_gpu and not p.notes
    assert plan_split(c, 10**12, 0, gpu_layers="all").n_gpu == 4
    assert plan_split(c, 10**12, 0, gpu_layers=0).n_gpu == 0


@pytest.mark.parametrize("n", [0, 2, 4])
def test_decode_estimate(files, n):
    c = model_costs(files["untied"], 128, 8)
    assert c.layer_launches == [6] * 4          # Q (F16) apart from K and V (Q8_0): two launches
    kv = 50 * KV_POS
    cpu = sum(LAYER[:4 - n]) + (4 - n) * kv + 68 + (OUTPUT + NORM if n < 4 else 0)
    gpu = sum(LAYER[4 - n:]) + n * kv + (OUTPUT + NORM if n == 4 else 0)
    # no floors: each side's bytes over its bandwidth
    p = plan_split(c, 10**12, 0, gpu_layers=n, speed=Speed(cpu_gbs=10, gpu_gbs=1000), kv_fill=50)
    assert (p.cpu.bytes_per_token, p.gpu.bytes_per_token) == (cpu, gpu)
    assert p.tokens_per_s == pytest.approx(1 / (cpu / 10e9 + gpu / 1000e9), rel=1e-12)
    # floors above the bytes: the GPU's launches (5 a layer at 30 us, 6 here, the head 3) and a
    # step cost; the CPU's per-layer floor below its layers' bytes (71 us at 1 GB/s)
    sp = Speed(cpu_gbs=1, cpu_layer_us=50, gpu_gbs=1000, gpu_launch_us=30, gpu_step_us=7)
    p = plan_split(c, 10**12, 0, gpu_layers=n, speed=sp, kv_fill=50)
    want_gpu = (n * 6 * 30 + (3 * 30 if n == 4 else 0) + 7) * 1e-6 if n else 0
    assert p.tokens_per_s == pytest.approx(1 / (cpu / 1e9 + want_gpu), rel=1e-12)
    # a CPU floor above the bytes takes their place
    sp = Speed(cpu_gbs=1000, cpu_layer_us=500)
    p = plan_split(c, 10**12, 0, gpu_layers=n, speed=sp, kv_fill=50)
    head = (OUTPUT + NORM if n < 4 else 0) + 68
    assert p.cpu.ms_per_token == pytest.approx((4 - n) * 0.5 + head / 1e9, rel=1e-12)


def test_layer_launches_follow_the_types():
    """Q/K/V in two types is one launch more, in three two more; gate and up of
    different types two more"""
    from llmlite.offload import layer_launches

    t = {f"blk.0.{m}.weight": 8 for m in ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up")}
    assert layer_launches(t, 0) == 5 and layer_launches(t, 1) == 5
    assert layer_launches({**t, "blk.0.attn_v.weight": 12}, 0) == 6
    assert layer_launches({**t, "blk.0.attn_v.weight": 12, "blk.0.attn_k.weight": 13}, 0) == 7
    assert layer_launches({**t, "blk.0.ffn_up.weight": 12}, 0) == 7


def test_decode_sliding_window_reads_the_window(files):
    # gemma3 with pattern 2: layers 0 and 2 read at most 8 positions, 1 and 3 all 20
    c = model_costs(files["swa"], 128, 8)
    assert c.windows == [8, 0, 8, 0] and c.layer_kv == [128 * KV_POS] * 4   # the cache is full-size anyway
    p = plan_split(c, None, speed=Speed(cpu_gbs=5), kv_fill=20)
    assert p.cpu.bytes_per_token == sum(LAYER) + (8 + 20 + 8 + 20) * KV_POS + 68 + EMBD + NORM


def test_cliff_and_format(cuda_library, files):
    c = model_costs(files["untied"], 128, 8)
    p = plan_split(c, _need(2) + 1000, 1000, speed=Speed(cpu_gbs=10, gpu_gbs=1000))
    assert [(pct, k, ok) for pct, k, _, ok in p.cliff] == [
        (0, 0, True), (25, 1, True), (50, 2, True), (75, 3, False), (100, 4, False)]
    tps = [t for _, _, t, _ in p.cliff]
    assert tps == sorted(tps) and tps[2] == pytest.approx(p.tokens_per_s)
    s = format_plan(p)
    assert "2/4 layers on the GPU (layers 2-3), head on CPU" in s
    assert "GPU:" in s and "CPU:" in s and "layers 0-1" in s and "margin" in s
    assert "100%" in s and "25%" in s and "t/s" in s
    one = format_plan(plan_split(c, _need(1), 0))
    assert "(layer 3)" in one and "layers 0-2" in one


def test_without_the_cuda_library_the_plan_says_it_estimates(files, tmp_path, monkeypatch):
    """no CUDA library to ask (a CPU-only install): the CUDA side's compute figure is
    offload.cuda_compute_estimate's, and the plan says so; the CPU stand-in's is exact"""
    from llmlite.offload import cuda_compute_estimate

    monkeypatch.setenv("LLMLITE_CUDA_LIB", str(tmp_path / "missing.so"))
    c = model_costs(files["untied"], 128, 8)
    assert "no CUDA library at" in c.span_compute_estimated and str(tmp_path) in c.span_compute_estimated
    assert (c.span_compute, c.span_compute_head) == tuple(
        cuda_compute_estimate(8, 128, 64, 4, 2, 16, 128, 256, head) for head in (False, True))
    p = plan_split(c, 10**12, 0)
    assert p.n_gpu == 4 and any("compute buffers are an estimate, an upper bound" in x for x in p.notes)
    assert "an estimate" in format_plan(p)
    assert model_costs(files["untied"], 128, 8, backend="cpu").span_compute_estimated == ""


# (n_batch, n_ctx, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab): this file's model,
# SmolLM2-135M's and Gemma 3 270M's shapes, at the batch and context sizes runs use
ESTIMATE_SHAPES = [(8, 128, 64, 4, 2, 16, 128, 256), (1, 100, 64, 4, 2, 16, 128, 256),
                   (256, 512, 576, 9, 3, 64, 1536, 49152), (64, 8192, 576, 9, 3, 64, 1536, 49152),
                   (256, 4096, 640, 4, 1, 256, 2048, 262144), (7, 33000, 640, 4, 1, 256, 2048, 262144)]


@pytest.mark.parametrize("fuse,actq", [("1", "0"), ("0", "0"), ("1", "1"), ("0", "1")])
def test_the_estimate_bounds_what_the_library_reports(cuda_library, monkeypatch, fuse, actq):
    """the estimate is never below the CUDA backend's own figure, whatever its settings,
    and above it by no more than the buffers of the settings that are off (the unfused
    tmp rows, the ACTQ input rows) and 16 x 256 B of alignment"""
    from llmlite.offload import cuda_compute_estimate, span_compute_bytes

    monkeypatch.setenv("LLMLITE_CUDA_FUSE", fuse)
    monkeypatch.setenv("LLMLITE_CUDA_ACTQ", actq)
    for shape in ESTIMATE_SHAPES:
        b, _, e, h, hkv, hd, ff, _ = shape
        room = (4 * b * max(e, h * hd, ff) if actq == "0" else 0) + (4 * b * 2 * ff if fuse == "1" else 0) + 4096
        for head in (False, True):
            got, est = span_compute_bytes("cuda", *shape, head), cuda_compute_estimate(*shape, head)
            assert 0 < got <= est <= got + room, (shape, head, got, est)


def test_vram_free_on_this_build_never_raises():
    v = vram_free()
    assert v is None or (isinstance(v, int) and v >= 0)


def _hand_scratch(g, n_ctx, n_batch):
    """model.c's llm_model_new scratch, written out again from the metadata."""
    md, a = g.metadata, g.metadata["general.architecture"]
    e, h, ff = md[f"{a}.embedding_length"], md[f"{a}.attention.head_count"], md[f"{a}.feed_forward_length"]
    hkv = md.get(f"{a}.attention.head_count_kv", h)
    hd = md.get(f"{a}.attention.key_length", e // h)
    q, kv = h * hd, hkv * hd
    rows = n_batch * 4 * (2 * e + 2 * q + 2 * kv + max(ff, q, q + 2 * kv, 2 * ff) + 2 * ff)
    return rows + 256 * (h // hkv) * ((n_ctx + 16) + 16 * hd) * 4 + 256 * q * 2 * 2


@pytest.mark.parametrize("which", ["smollm2", "gemma3"])
def test_real_models_nothing_lost_nothing_twice(which, request):
    from llmlite.model import Weights

    path = request.getfixturevalue(f"{which}_path")
    n_ctx, n_batch = 512, 64
    with open_gguf(path) as g:
        file_bytes = sum(t.nbytes for t in g.tensors.values())
        # the tensor table's sizes fill the data section, up to alignment padding
        assert 0 <= g.file_size - g.data_offset - file_bytes < len(g.tensors) * g.alignment
        c = model_costs(g, n_ctx, n_batch)
        kv = Weights(g, n_ctx, n_batch).kv_bytes
        vocab = g.tensors["token_embd.weight"].shape[1]
        tied = "output.weight" not in g.tensors
        embd = g.tensors["token_embd.weight"].nbytes
        scratch = _hand_scratch(g, n_ctx, n_batch)
    assert c.file_tensor_bytes == file_bytes and c.scratch_bytes == scratch
    n = c.n_layer
    for k in (0, 1, n // 2, n - 1, n):
        p = plan_split(c, 10**12, 0, gpu_layers=k)
        assert p.cpu.kv + p.gpu.kv == kv
        compute = scratch + (4 * vocab * n_batch if k < n else 0)                    # the CPU's
        compute += (c.span_compute_head if k == n else c.span_compute) if k else 0    # the span's
        dup = embd if tied and k == n else 0                    # the GPU's own copy of the tied matrix
        copies = c.other_bytes if k else 0                       # globals (rope_freqs) a GPU span needs too
        assert p.cpu.total + p.gpu.total == file_bytes + dup + copies + kv + compute, k
