"""The device kit (tools/gpu/device): the test models cross to the GPU machine
in slices, one per call of the device tool, and are put back together there, sha256
checked, whatever order the slices arrive in and however a slice is cut."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

KIT = Path(__file__).resolve().parents[1] / "tools" / "gpu" / "device"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"kit_{name}", KIT / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


pack, stream = _load("pack"), _load("stream")


@pytest.fixture
def kit(tmp_path):
    rng = np.random.default_rng(3)
    paths = []
    for name, size in (("a.gguf", 3001), ("b.gguf", 5003)):
        p = tmp_path / "src" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        paths.append(p)
    models = pack.describe(paths, ["model-a", "model-b"])
    calls = pack.slice_plan(sum(m["size"] for m in models), room=2500, first_extra=700)
    gpu = tmp_path / "gpu"
    pack.write_slices(models, paths, calls, gpu)
    (gpu / "c1" / "MANIFEST.json").write_text(json.dumps({"models": models, "calls": calls}))
    return paths, models, calls, gpu, tmp_path / "work"


def test_slices_cover_the_stream_within_the_limit(kit):
    paths, models, calls, gpu, _ = kit
    assert [m["offset"] for m in models] == [0, 3001]
    assert calls[0]["size"] == 2500 - 700 and all(c["size"] <= 2500 for c in calls)
    assert sum(c["size"] for c in calls) == 8004 and len(calls) == 4
    assert [c["offset"] for c in calls] == [0, 1800, 4300, 6800]
    joined = b"".join((gpu / f"c{c['call']}" / f"stream.{c['call']}").read_bytes() for c in calls)
    assert joined == paths[0].read_bytes() + paths[1].read_bytes()
    with pytest.raises(ValueError):
        pack.slice_plan(100, room=50, first_extra=50)


def test_models_come_together_as_slices_arrive(kit, capsys):
    paths, models, calls, gpu, work = kit
    held = {}
    for c in calls[2:]:                                # call 3 and 4 have not happened yet
        d = gpu / f"c{c['call']}"
        held[d] = (d / f"stream.{c['call']}").read_bytes()
        (d / f"stream.{c['call']}").unlink()
    assert stream.take(work, gpu) == 0
    out = capsys.readouterr().out
    assert "slice 1 of 4 taken" in out and "slice 2 of 4 taken" in out
    assert f"ready model-a {work / 'models' / 'a.gguf'}" in out
    assert "waiting model-b: slices [3, 4] not received yet" in out
    assert (work / "models" / "a.gguf").read_bytes() == paths[0].read_bytes()
    for d, data in held.items():
        (d / f"stream.{d.name[1:]}").write_bytes(data)
    assert stream.take(work, gpu) == 0                 # idempotent: slices 1-2 are not taken again
    out = capsys.readouterr().out
    assert "slice 1" not in out and "slice 3 of 4 taken" in out and "ready model-b" in out
    assert (work / "models" / "b.gguf").read_bytes() == paths[1].read_bytes()
    assert sorted(p.name for p in (work / "models").iterdir()) == ["a.gguf", "b.gguf"]


def test_a_corrupt_slice_is_caught_by_the_hash_and_mended_by_carrying_it_again(kit, capsys):
    paths, models, calls, gpu, work = kit
    s3 = gpu / "c3" / "stream.3"
    good = s3.read_bytes()
    data = bytearray(good)
    data[10] ^= 1
    s3.write_bytes(bytes(data))
    stream.take(work, gpu)
    out = capsys.readouterr().out
    assert "ready model-a" in out and "BAD model-b: sha256" in out
    assert not (work / "models" / "b.gguf").exists()
    s3.write_bytes(good)                               # call 3 carried again
    stream.take(work, gpu)
    out = capsys.readouterr().out
    assert "ready model-b" in out and "slice 1 " not in out   # model-a's slice is not taken again
    assert (work / "models" / "b.gguf").read_bytes() == paths[1].read_bytes()
    assert sorted(p.name for p in (work / "models").iterdir()) == ["a.gguf", "b.gguf"]


def test_without_the_first_call(tmp_path, capsys):
    assert stream.take(tmp_path / "work", tmp_path / "nothing") == 1
    assert "call 1 (carry .gpu/c1) has not reached this machine" in capsys.readouterr().out


def _step(tree, work, out):
    import os
    import subprocess

    return subprocess.run(["bash", str(tree / "tools/gpu/device/step.sh")], capture_output=True, text=True,
                          env=dict(os.environ, LLK_WORK=str(work), OUT=str(out)), timeout=120)


def test_step_script_says_cold_machine_and_numbers_its_calls(tmp_path):
    """a later call that finds no .gpu/c1 is on a fresh machine (the warm one was given
    back): it says to start again from call 1; each call writes its own log"""
    import shutil

    tree = tmp_path / "repo"
    (tree / "tools/gpu/device").mkdir(parents=True)
    shutil.copy(KIT / "step.sh", tree / "tools/gpu/device/step.sh")
    work, out = tmp_path / "llk", tmp_path / "out"
    r = _step(tree, work, out)
    assert r.returncode == 2 and "COLD MACHINE" in r.stdout and "Start again from call 1" in r.stdout
    assert "COLD MACHINE" in (out / "call1.log").read_text()     # the log has everything tee saw
    (tree / ".gpu/c1").mkdir(parents=True)                       # c1 without its files: setup fails, once
    r = _step(tree, work, out)
    assert r.returncode == 1 and "no .gpu/c1: carry it in the first call" in r.stdout
    assert "setup failed: stopping" in (out / "call2.log").read_text()
    assert not (work / "done" / "setup").exists()                # so the next call tries again
    assert sorted(p.name for p in (work / "logs").iterdir()) == ["call1.log", "call2.log"]


llamacpp, cliff_table = _load("llamacpp"), _load("cliff_table")


def test_llamacpp_tarball_keeps_the_library_cuda_and_llama_bench_only(tmp_path):
    """the trimmed llama.cpp sources: ggml with its CPU and CUDA backends, no docs, models,
    other backends or tools but llama-bench, tools/ and vendor/ CMakeLists rewritten"""
    import tarfile

    src = tmp_path / "llama.cpp"
    files = ["CMakeLists.txt", "src/llama.cpp", "common/common.cpp", "ggml/CMakeLists.txt", "ggml/src/ggml.c",
             "ggml/src/CMakeLists.txt", "ggml/src/ggml-cuda/mmq.cu", "ggml/src/ggml-cpu/ggml-cpu.c",
             "ggml/src/ggml-vulkan/v.cpp", "ggml/src/ggml-metal/m.m", "docs/build.md", "models/ggml-vocab.gguf",
             "tools/CMakeLists.txt", "tools/server/server.cpp", "tools/llama-bench/llama-bench.cpp",
             "vendor/CMakeLists.txt", "vendor/miniaudio/miniaudio.h", "vendor/nlohmann/json.hpp", "examples/a.cpp"]
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_text(f"// {f}\n")
    out = tmp_path / "l.tar.xz"
    assert llamacpp.make_tarball(src, out) == out.stat().st_size
    with tarfile.open(out) as t:
        names = {m.name[len("llama.cpp/"):] for m in t.getmembers()}
        tools = t.extractfile("llama.cpp/tools/CMakeLists.txt").read().decode()
        vendor = t.extractfile("llama.cpp/vendor/CMakeLists.txt").read().decode()
    assert names == {"CMakeLists.txt", "src/llama.cpp", "common/common.cpp", "ggml/CMakeLists.txt", "ggml/src/ggml.c",
                     "ggml/src/CMakeLists.txt", "ggml/src/ggml-cuda/mmq.cu", "ggml/src/ggml-cpu/ggml-cpu.c",
                     "tools/CMakeLists.txt", "tools/llama-bench/llama-bench.cpp", "vendor/CMakeLists.txt",
                     "vendor/nlohmann/json.hpp"}
    assert "add_subdirectory(llama-bench)" in tools and "server" not in tools and "miniaudio" not in vendor
    assert "-DGGML_CUDA=ON" in llamacpp.CMAKE_ARGS and "-DCMAKE_CUDA_ARCHITECTURES=90" in llamacpp.CMAKE_ARGS


def _bench_json(path, tg_full=700.0):
    sp = {"gpu_launch_us": 7.8, "gpu_gbs": 1200.0, "gpu_step_us": 20.0, "cpu_layer_us": 85.0, "cpu_gbs": 100.0,
          "source": "measured on NVIDIA H200, 16 CPU threads", "measured": True}
    tests = []
    for ngl, pp, tg, est in ((0, 3186.0, 351.0, 351.0), (30, 20021.0, tg_full, 687.0)):
        for test, tps in (("pp512", pp), ("tg128", tg)):
            tests.append({"test": test, "tps_mean": tps, "tps_sd": 1.0, "split": ngl // 30, "ngl": ngl, "n_layer": 30,
                          "plan_tps": est, "plan_speed": sp, "plan_device_bytes": 0, "span_bytes": 0,
                          "device_free_drop": None, "notes": []})
    path.write_text(json.dumps({"name": "llama 135M Q4_1", "n_layer": 30, "threads": 16, "tests": tests}))
    return path


def test_cliff_table_sets_the_plan_against_the_measured_tg(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["cliff_table.py", str(_bench_json(tmp_path / "b.json"))])
    assert cliff_table.main() == 0
    out = capsys.readouterr().out
    assert "| plan tg t/s | plan vs tg |" in out
    assert "| 0/30 (0%) | 3186.0 ± 1.0 | 351.0 ± 1.0 | 351 | +0% |" in out
    assert "| 30/30 (100%) | 20021.0 ± 1.0 | 700.0 ± 1.0 | 687 | -2% |" in out
    assert "plan constants (measured): measured on NVIDIA H200" in out


def test_side_by_side_with_llama_bench(tmp_path):
    lb = tmp_path / "lb.json"
    lb.write_text(json.dumps([{"n_prompt": 512, "n_gen": 0, "avg_ts": 48000.0},
                              {"n_prompt": 0, "n_gen": 128, "avg_ts": 955.0}]))
    t = llamacpp.table(lb, _bench_json(tmp_path / "b.json", tg_full=743.0))
    assert "| pp512 | 20021 | 48000 | 0.42x |" in t and "| tg128 | 743 | 955 | 0.78x |" in t


def test_step_script_has_the_issue_24_jobs():
    """the side-by-side, prompt lookup on the GPU, the plan's constants, span_check bench
    and the race checks: each a job whose result the summary prints"""
    s = (KIT / "step.sh").read_text()
    for job in ("job speed ", "llamacpp_start\n", 'job "llamacpp-$name"', 'job "lookup-$name"',
                "job span_bench ", "job races "):
        assert job in s, job
    assert "llamacpp.py table" in s and 'grep -h "overall"' in s and "speed.txt" in s
    assert "span_bench.txt" in s and "ERROR SUMMARY" in s and "llamacpp_wait 180" in s
