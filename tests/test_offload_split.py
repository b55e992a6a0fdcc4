"""Partial offload without a GPU: the split machinery with the CPU backend standing in
for the device on the last layers (its own copy of their weights, its own KV cache).
The logits must equal the unsplit run's bit for bit on both real models, for a
prefill of several batch chunks and for decode steps; the head goes with the span
only when every layer does; a span that runs out of memory falls back to fewer
layers with one line each; the CUDA loader fails with one clear line without a
driver."""
import json
import shutil
import subprocess

import numpy as np
import pytest

from llmlite._lib import lib
from llmlite.model import Model

from helpers import ROOT, llmlite, run_python

# the tests that build the real CUDA backend (the others run its sources on the emulated runtime)
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc: the CUDA backend cannot be built here")


def _run(m, ids):
    """all logits of a prefill of ids (several 64-token chunks), then three decode steps"""
    m.reset()
    out = [m.eval(ids).copy()]
    for t in (17, 4242, 9):
        out.append(m.step(t).copy()[None, :])
    return np.concatenate(out)


@pytest.fixture(scope="module")
def prompts(smollm2_path, gemma3_path):
    rng = np.random.default_rng(7)
    return {p: rng.integers(10, 3000, size=150).tolist() for p in (smollm2_path, gemma3_path)}


@pytest.mark.parametrize("which,n_gpu", [("smollm2", 20), ("smollm2", 30), ("smollm2", 1),
                                         ("gemma3", 9), ("gemma3", 18)])
def test_split_logits_are_bit_identical(which, n_gpu, smollm2_path, gemma3_path, prompts):
    path = smollm2_path if which == "smollm2" else gemma3_path
    ids = prompts[path]
    ref = Model(path, n_ctx=256, n_batch=64)
    want = _run(ref, ids)
    ref_kv = ref.weights.kv_bytes
    ref.close()
    m = Model(path, n_ctx=256, n_batch=64, gpu_layers=n_gpu, offload_backend="cpu")
    w = m.weights
    n_layer = int(w.cfg.n_layer)
    assert w.n_gpu == n_gpu and w.span_bytes > 0
    # the CPU keeps only its layers' KV cache; the span holds the rest
    assert w.kv_bytes == ref_kv * (n_layer - n_gpu) // n_layer or n_gpu == n_layer
    got = _run(m, ids)
    assert np.array_equal(got, want), f"max |diff| {np.abs(got - want).max()}"
    m.close()


def test_head_goes_with_the_span_only_when_all_layers_do(smollm2_path):
    """SmolLM2 ties its head to the embeddings: a full offload copies that matrix (and
    output_norm) to the span; a partial one leaves the head on the CPU"""
    part = Model(smollm2_path, n_ctx=64, gpu_layers=29, offload_backend="cpu")
    full = Model(smollm2_path, n_ctx=64, gpu_layers=30, offload_backend="cpu")
    g = part.gguf
    assert "output.weight" not in g.tensors
    nbytes = {n: g.tensor_data(n).nbytes for n in g.tensors}
    layer0 = sum(v for n, v in nbytes.items() if n.startswith("blk.0."))
    kv_layer = part.weights.kv_bytes                      # the CPU kept layer 0's cache only
    assert kv_layer * 30 == Model(smollm2_path, n_ctx=64).weights.kv_bytes
    assert full.weights.span_bytes - part.weights.span_bytes == \
        layer0 + kv_layer + nbytes["token_embd.weight"] + nbytes["output_norm.weight"]
    ids = list(range(5, 40))
    assert np.array_equal(part.eval(ids), full.eval(ids))


def test_out_of_device_memory_falls_back_to_fewer_layers(smollm2_path):
    notes = []
    ref = Model(smollm2_path, n_ctx=128).eval(list(range(3, 30)))
    lib.llm_cpu_span_set_capacity(40 << 20)          # the stand-in device holds 40 MiB
    try:
        m = Model(smollm2_path, n_ctx=128, gpu_layers=20, offload_backend="cpu", notify=notes.append)
    finally:
        lib.llm_cpu_span_set_capacity(0)
    fails = [x for x in notes if x.startswith("offload of")]
    assert fails and all("out of CPU stand-in memory" in x and "layers on the CPU stand-in instead" in x
                         for x in fails)
    assert 0 < m.weights.n_gpu < 20 and m.weights.span_bytes <= 40 << 20
    assert notes[0].startswith("offload plan: 20/30 layers")       # the plan came first
    assert np.array_equal(m.eval(list(range(3, 30))), ref)


def test_auto_places_what_the_plan_says(smollm2_path, monkeypatch):
    from llmlite import offload

    for mb, want in ((100, None), (560, None), (10**6, 30)):
        monkeypatch.setenv("LLMLITE_STANDIN_VRAM_MB", str(mb))
        m = Model(smollm2_path, n_ctx=512, gpu_layers="auto", offload_backend="cpu")
        costs = offload.model_costs(m.gguf, 512, 256, backend="cpu")
        n = offload.plan_split(costs, int(mb * offload.MiB), gpu_layers="auto").n_gpu
        assert m.weights.n_gpu == n == (want if want is not None else n)
        if mb == 100:
            assert n == 0                              # less than the margin: nothing fits
        if mb == 560:
            assert 0 < n < 30                          # 48 MiB past the margin: some layers


def test_cli_prints_the_plan_and_answers_the_same(smollm2_path):
    args = ["run", smollm2_path, "-p", "Name a colour.", "-n", "12", "--temp", "0", "-c", "256"]
    plain = llmlite(*args, "-ngl", "0", env={"LLMLITE_OFFLOAD_BACKEND": "cpu"})
    split = llmlite(*args, "-ngl", "20", env={"LLMLITE_OFFLOAD_BACKEND": "cpu"})
    assert plain.returncode == split.returncode == 0, split.stderr
    assert split.stdout == plain.stdout and split.stdout.strip()
    err = split.stderr
    assert "offload plan: 20/30 layers on the CPU stand-in (layers 10-29), head on CPU" in err
    assert "CPU:" in err and "decode t/s" in err and err.index("offload plan") < err.index("prompt ")
    assert "offload plan" not in plain.stderr


def test_cuda_loader_without_a_driver_is_one_line(tmp_path, tiny_path):
    """A library that reports no driver (what libllmlite_cuda.so does on a machine
    without one), a missing library, a library without the entry points: each is
    refused with its reason, and a run asking for GPU layers goes on on the CPU"""
    from llmlite._lib import ffi

    stub = tmp_path / "stub.c"
    stub.write_text('#include <stdio.h>\n'
                    'int llmcuda_device_info(int *c, long long *f, long long *t, char *n, int nl, char *e, int el)'
                    '{ *c = 0; snprintf(e, el, "no NVIDIA driver (CUDA driver version is insufficient)"); return -1; }\n'
                    'static const int ops[2] = {ABI, 0};\n'
                    'const void *llmcuda_span_ops(void) { return ops; }\n')
    so, old = tmp_path / "libstub.so", tmp_path / "libold.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-DABI=3", "-o", str(so), str(stub)], check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-DABI=2", "-o", str(old), str(stub)], check=True)
    other = tmp_path / "libother.so"
    (tmp_path / "other.c").write_text("int f(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(other), str(tmp_path / "other.c")], check=True)
    err = ffi.new("char[256]")
    for path, why in ((so, "no NVIDIA driver"), (tmp_path / "missing.so", "cannot load the CUDA backend"),
                      (other, "not an llmlite CUDA backend"), (old, "interface version 2, this build expects 3")):
        assert lib.llm_cuda_load(str(path).encode(), err, 256) == -1
        assert why in ffi.string(err).decode()
    env = {"LLMLITE_CUDA_LIB": so, "LLMLITE_OFFLOAD_BACKEND": None}
    r = llmlite("run", tiny_path, "--raw", "-p", "Hi", "-n", "2", "-ngl", "all", env=env)
    assert r.returncode == 0, r.stderr
    assert "no NVIDIA driver (CUDA driver version is insufficient): running on the CPU" in r.stderr
    r = llmlite("run", tiny_path, "--raw", "-p", "Hi", "-n", "2", env=env)
    assert r.returncode == 0 and "no NVIDIA driver" in r.stderr     # auto says why too, once the library is there


@pytest.mark.parametrize("which,n_gpu", [("smollm2", 12), ("smollm2", 30), ("gemma3", 18)])
def test_plan_counts_what_the_span_takes(which, n_gpu, smollm2_path, gemma3_path, monkeypatch):
    """the plan's bytes for the device side equal, to the byte, what the stand-in span
    holds: its copies of the weights, its KV cache and its scratch (the stand-in writes
    logits to the caller's buffer, so its plan counts no logits buffer; a CUDA span's
    plan does: tests/test_offload_plan.py)"""
    monkeypatch.setenv("LLMLITE_STANDIN_VRAM_MB", "100000")
    path = smollm2_path if which == "smollm2" else gemma3_path
    m = Model(path, n_ctx=512, gpu_layers=n_gpu, offload_backend="cpu")
    side = m.offload_plan.gpu
    assert m.weights.n_gpu == n_gpu == m.offload_plan.n_gpu
    assert side.total == m.weights.span_bytes


@pytest.mark.slow
@pytest.mark.gpu
@needs_nvcc
def test_cuda_library_builds_and_without_a_driver_the_run_goes_on(tmp_path, smollm2_path):
    """make cuda (one architecture, to be quick) builds the real backend; on a machine
    without a driver it loads, says why it cannot run in one line, and the run goes on
    on the CPU with the same output"""
    so = tmp_path / "libllmlite_cuda.so"
    r = subprocess.run(["make", "-s", "cuda", f"CUDA_LIB={so}", "CUDA_ARCHS=-gencode arch=compute_90,code=sm_90"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and so.is_file(), r.stderr
    syms = subprocess.run(["nm", "-D", "--defined-only", str(so)], capture_output=True, text=True).stdout
    assert sorted(ln.split()[-1] for ln in syms.splitlines() if ln.split()[-1].startswith("llm")) == \
        ["llmcuda_device_info", "llmcuda_span_ops"]
    env = {"LLMLITE_CUDA_LIB": so, "LLMLITE_OFFLOAD_BACKEND": None}
    args = ["run", smollm2_path, "-p", "Hi", "-n", "6", "--temp", "0"]
    gpu = llmlite(*args, "-ngl", "all", env=env)
    cpu = llmlite(*args, "-ngl", "0", env=env)
    assert gpu.returncode == 0 and gpu.stdout == cpu.stdout
    from llmlite.offload import load_cuda

    if not load_cuda()[0]:                  # no GPU here: the one line, and the CPU
        lines = [ln for ln in gpu.stderr.splitlines() if "running on the CPU" in ln]
        assert len(lines) == 1 and ("driver" in lines[0] or "GPU" in lines[0]), gpu.stderr


@pytest.mark.slow
@pytest.mark.gpu
@needs_nvcc
def test_cuda_matmul_reads_weights_through_the_read_only_cache(tmp_path):
    """every matmul kernel loads its weights and activations with ld.global.nc (the
    read-only path a decode matvec streams through); a plain ld.global in a kernel
    without the residual epilogue means nvcc lost track of a __restrict__"""
    import re

    ptx = tmp_path / "matmul.ptx"
    flags = subprocess.run(["make", "-s", "print-nvcc-flags", "CUDA_ARCHS=-arch=sm_90"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()   # the library's
    r = subprocess.run(["nvcc", *flags, "-ptx", "-o", str(ptx), "csrc/cuda/matmul.cu"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    s = ptx.read_text()
    kernels = 0
    for m in re.finditer(r"\.entry (\S+)\(", s):
        name, body = m.group(1), s[m.end():s.find("\n}\n", m.end())]
        res = re.search(r"Li\d+ELb([01])EEv", name)                  # mm_kernel<T, NC, RES>
        if "mm_glu_kernel" in name or ("mm_kernel" in name and res and res.group(1) == "0"):
            kernels += 1
            assert "ld.global.nc" in body and not re.search(r"ld\.global\.(?!nc)", body), name
    assert kernels >= 2 * 4 * 13        # plain and glu, NC 1/2/4/8, every weight type


def test_plan_is_what_the_cuda_span_allocates(emulated_cuda_lib, smollm2_path, gemma3_path):
    """the planner's device bytes (weights from the GGUF table, the tied head's copy,
    rope_freqs, KV, csrc/cuda/span_layout.h's buffers) against what the real CUDA span
    code allocates, counted by its mem_bytes, under the emulated runtime: equal to the
    byte, for partial and full offload of both models"""
    code = ("import sys; from llmlite.model import Model\n"
            "for p, n in ((sys.argv[1], 12), (sys.argv[1], 30), (sys.argv[2], 9), (sys.argv[2], 18)):\n"
            "    m = Model(p, n_ctx=512, gpu_layers=n)\n"
            "    print(m.weights.backend, m.weights.n_gpu, m.weights.span_bytes, m.offload_plan.gpu.total)\n"
            "    m.close()\n")
    r = run_python(code, smollm2_path, gemma3_path,
                   env={"LLMLITE_CUDA_LIB": emulated_cuda_lib, "LLMLITE_OFFLOAD_BACKEND": "cuda"})
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert [(b, int(n)) for b, n, _, _ in rows] == [("cuda", 12), ("cuda", 30), ("cuda", 9), ("cuda", 18)]
    for _, n, got, plan in rows:
        assert int(got) == int(plan) > 0, (n, got, plan)


def test_cuda_span_out_of_memory_retries_with_fewer_layers(emulated_cuda_lib, smollm2_path):
    """the real CUDA span code, with the emulated device refusing allocations past half
    of what all 30 layers need: the load goes on with fewer layers (30 -> 22 -> 16 ...),
    one line each, and what the span finally holds is the plan's figure for its count"""
    code = ("import sys; from llmlite.model import Model; from llmlite import offload\n"
            "m = Model(sys.argv[1], n_ctx=512, gpu_layers=30, notify=print)\n"
            "n = m.weights.n_gpu\n"
            "p = offload.plan_split(offload.model_costs(m.gguf, 512, 256), None, 0, gpu_layers=n)\n"
            "print('result', m.weights.backend, n, m.weights.span_bytes, p.gpu.total)\n")
    full = int(run_python("import sys; from llmlite import offload; print(offload.plan_split("
                          "offload.model_costs(sys.argv[1], 512, 256), None, 0, gpu_layers=30).gpu.total)", smollm2_path,
                          check=True).stdout)
    r = run_python(code, smollm2_path, env={"LLMLITE_CUDA_LIB": emulated_cuda_lib, "LLMLITE_OFFLOAD_BACKEND": "cuda",
                                            "EMU_ALLOC_LIMIT": full // 2})
    assert r.returncode == 0, r.stderr
    fails = [x for x in r.stdout.splitlines() if x.startswith("offload of")]
    assert fails and all("out of memory" in x for x in fails), r.stdout
    assert fails[0].startswith("offload of 30 layers failed") and "22 layers on the GPU instead" in fails[0]
    _, backend, n, got, plan = r.stdout.splitlines()[-1].split()
    assert backend == "cuda" and 0 < int(n) < 30 and int(got) == int(plan) <= full // 2


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sticky", "soft"])
def test_a_failing_device_hands_over_to_the_cpu(emulated_cuda_lib, shared_dir, kind):
    """a kernel that fails on the device during the 3rd or so decode step (EMU_FAIL_LAUNCH:
    the 100th launch; sticky: an illegal address, which loses the context as on a GPU;
    soft: a launch refused once): one line, then every layer on the CPU with the tokens so
    far evaluated again, and the step's logits are those of a CPU model fed the same
    tokens, bit for bit. With LLMLITE_DEVICE_FALLBACK=0 (the device checks) the step
    raises instead, with the device's reason; bench reports such a split as failed."""
    tiny = shared_dir / "refs" / "synthetic" / "llama-ropefreqs-tiny-q4_1.gguf"
    code = ("import sys, numpy as np; from llmlite.model import Model\n"
            "notes = []\n"
            "m = Model(sys.argv[1], n_ctx=64, gpu_layers='all', notify=notes.append)\n"
            "print('before', m.weights.backend, m.weights.n_gpu)\n"
            "logits = m.prefill([1, 5, 9, 13, 17])\n"
            "for _ in range(12):\n"
            "    logits = m.step(int(np.argmax(logits)))\n"
            "print('after', m.weights.backend, m.weights.n_gpu, m.n_past)\n"
            "print('note', notes[-1])\n"
            "ref = Model(sys.argv[1], n_ctx=64, gpu_layers=0)\n"
            "ref.eval(m.tokens[:-1])\n"
            "print('same', int(np.array_equal(ref.step(m.tokens[-1]), logits)))\n")
    env = {"LLMLITE_CUDA_LIB": emulated_cuda_lib, "LLMLITE_OFFLOAD_BACKEND": "cuda", "EMU_FAIL_LAUNCH": 100,
           "EMU_FAIL_KIND": kind, "LLMLITE_DEVICE_FALLBACK": None}
    r = run_python(code, tiny, env=env)
    assert r.returncode == 0, r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert out["before"] == "cuda 4" and out["after"] == "cpu 0 17" and out["same"] == "1", r.stdout
    why = "illegal memory access" if kind == "sticky" else "invalid argument"
    assert out["note"].startswith("GPU error: cuda span: ") and why in out["note"]
    assert "continuing on the CPU (the " in out["note"]
    assert ("cannot be used again by this process" in out["note"]) == (kind == "sticky")

    r = run_python(code, tiny, env={**env, "LLMLITE_DEVICE_FALLBACK": 0})
    assert r.returncode != 0 and "before cuda 4" in r.stdout and "after" not in r.stdout
    assert "llmlite.errors.DeviceLost: GPU error: cuda span: " in r.stderr     # an LlmliteError
    assert why in r.stderr

    r = llmlite("bench", tiny, "-ngl", "all", "-p", "8", "-n", "16", "-r", "1", "--json", env=env)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["tests"]
    assert len(rows) == 1 and why in rows[0]["error"] and "continuing on the CPU" in rows[0]["error"], rows


def test_cuda_activations_as_the_cpu_quantizes_them(emulated_cuda_lib):
    """LLMLITE_CUDA_ACTQ=1's kernel (csrc/cuda/ops.cu cu_act_as_cpu), run by the emulated
    runtime, gives for each weight type exactly the floats the CPU's dot products see
    (llm_quantize_act to the paired activation type, then llm_dequantize): Q8_0/Q8_1's
    F16 scale, Q8_K's first element of largest |x| (a tie of +v and -v), an all-zero
    block, F16/BF16 rounding"""
    import ctypes

    from llmlite._lib import ffi

    d = emulated_cuda_lib.parent / "src"         # the sources as emu_build.sh rewrote them
    (d / "act_wrap.cpp").write_text(
        '#include "ops.cuh"\n'
        'extern "C" int act(float *y, const float *x, int n, int k, int type) {\n'
        '    cudaError_t e; return cu_act_as_cpu(y, x, n, k, type, 0, &e) ? (int)e : -1; }\n')
    so = d / "libact.so"
    r = subprocess.run(["g++", "-std=c++17", "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-Wno-unknown-pragmas",
                        f"-I{d}", "-Itools/gpu/emu/include", "-Icsrc", "-o", str(so), "-x", "c++",
                        str(d / "act_wrap.cpp"), str(d / "ops.cu"), "tools/gpu/emu/emu.cpp"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    act = ctypes.CDLL(str(so)).act
    n, k = 3, 1536
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((n, k)) * np.where(rng.random((n, k)) < 0.02, 30, 1)).astype(np.float32)
    x[1, 256:512] = 0.0                                        # an all-zero block
    x[2, 300], x[2, 301] = -50.0, 50.0                         # Q8_K: the first of equal |x| sets the sign
    # Q4_0 Q4_1 Q5_0 Q8_0 Q4_K Q6_K F16 BF16 MXFP4 NVFP4 IQ4_NL (Q8_0) TQ1_0 TQ2_0 IQ4_XS, the grid
    # i-quants IQ2_XXS IQ2_XS IQ3_XXS IQ1_S IQ3_S IQ2_S IQ1_M (Q8_K)
    for wtype in (2, 3, 6, 8, 12, 14, 1, 30, 39, 40, 20, 34, 35, 23, 16, 17, 18, 19, 21, 22, 29):
        y = np.full((n, k), np.nan, np.float32)
        assert act(y.ctypes.data_as(ctypes.c_void_p), x.ctypes.data_as(ctypes.c_void_p), n, k, wtype) == 0
        at = lib.llm_type_act_type(wtype)
        want = np.empty((n, k), np.float32)
        buf = np.empty(int(lib.llm_row_bytes(at, k)), np.uint8)
        for i in range(n):
            row = np.ascontiguousarray(x[i])
            lib.llm_quantize_act(at, ffi.cast("float *", row.ctypes.data), ffi.cast("void *", buf.ctypes.data), k)
            lib.llm_dequantize(at, ffi.cast("void *", buf.ctypes.data), ffi.cast("float *", want[i].ctypes.data), k)
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), wtype
        assert not np.array_equal(y, x)                        # it did quantize
    assert act(y.ctypes.data_as(ctypes.c_void_p), x.ctypes.data_as(ctypes.c_void_p), n, k, 0) == -1   # F32: nothing
