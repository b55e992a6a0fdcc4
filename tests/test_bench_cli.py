"""`llmlite bench`: llama-bench's pp/tg tests, and with a list of -ngl values the
partial-offload cliff, one set of tests per split, each with the device memory its
plan promised and its span took (the CPU backend standing in for the device)."""
import json

import pytest

from helpers import llmlite


def bench(*args):
    """`llmlite bench ARGS` with the CPU backend standing in for the device"""
    return llmlite("bench", *args, env={"LLMLITE_OFFLOAD_BACKEND": "cpu"})


def test_ngl_list_gives_one_set_of_tests_per_split(smollm2_path):
    r = bench(smollm2_path, "-p", 32, "-n", 4, "-r", 1, "-ngl", "0,50%,30,all", "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["n_layer"] == 30
    assert [(t["ngl"], t["test"]) for t in b["tests"]] == [
        (0, "pp32"), (0, "tg4"), (15, "pp32"), (15, "tg4"), (30, "pp32"), (30, "tg4"), (30, "pp32"), (30, "tg4")]
    for t in b["tests"]:
        assert t["tps_mean"] > 0 and len(t["runs"]) == 1
        if t["ngl"] == 0:
            assert t["backend"] == "CPU" and t["span_bytes"] == 0 and t["plan_device_bytes"] == 0
        else:
            assert t["backend"] == "CPU stand-in+CPU"
            assert t["span_bytes"] > 0 and t["plan_device_bytes"] > 0
            assert t["device_free_drop"] is None          # measured on a CUDA device only
    half = next(t for t in b["tests"] if t["ngl"] == 15)
    assert half["span_bytes"] == half["plan_device_bytes"]   # the stand-in holds what the plan counts
    full = next(t for t in b["tests"] if t["ngl"] == 30)
    assert full["span_bytes"] > half["span_bytes"]
    # the plan of each split went to stderr before its model loaded
    assert r.stderr.count("offload plan: 15/30 layers") == 1 and r.stderr.count("offload plan: 30/30 layers") == 2
    assert b["verdict"]                                   # from the CPU-only split
    assert 0 < b["peak_rss_tests"] <= b["peak_rss"]        # the process's peak takes in the probe's buffer


def test_table_names_backend_and_device_memory(smollm2_path):
    r = bench(smollm2_path, "-p", 16, "-n", 2, "-r", 1, "-ngl", "0,10")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:8] == ["model", "size", "params", "backend", "ngl", "threads", "test", "t/s"]
    rows = [ln for ln in lines if " pp16 " in ln or " tg2 " in ln]
    assert len(rows) == 4 and " 10 " in rows[2] and "CPU stand-in+CPU" in rows[2]
    assert any(ln.startswith("-ngl 10/30: device memory planned") for ln in lines)


@pytest.mark.parametrize("bad", ["120%", "x", "-1", "5,abc"])
def test_bad_ngl_lists_are_one_line(smollm2_path, bad):
    r = bench(smollm2_path, "-p", 8, "-n", 0, "-r", 1, "-ngl", bad)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_no_cuda_library_runs_on_the_cpu(smollm2_path, tmp_path):
    """-ngl auto without a CUDA backend: the CPU, quietly, as before"""
    r = llmlite("bench", smollm2_path, "-p", "8", "-n", "2", "-r", "1", "--json",
                env={"LLMLITE_OFFLOAD_BACKEND": "cuda", "LLMLITE_CUDA_LIB": tmp_path / "none.so"})
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert {t["ngl"] for t in b["tests"]} == {0} and "offload" not in r.stderr


def test_a_failing_split_is_a_row_and_the_others_go_on(smollm2_path, monkeypatch):
    """one split that fails mid-run (a device error, say) is reported in its row; the
    splits before and after it are measured"""
    from typer.testing import CliRunner

    from llmlite import bench as B
    from llmlite.errors import LlmliteError
    from llmlite.cli import app

    monkeypatch.setenv("LLMLITE_OFFLOAD_BACKEND", "cpu")
    real, calls = B.run_model_bench, []

    def flaky(m, *a, **k):
        calls.append(m.weights.n_gpu)
        if len(calls) == 2:
            raise LlmliteError("cuda span: an illegal memory access was encountered")
        return real(m, *a, **k)
    monkeypatch.setattr(B, "run_model_bench", flaky)
    r = CliRunner().invoke(app, ["bench", str(smollm2_path), "-p", "8", "-n", "2", "-r", "1", "-ngl", "0,10,all",
                                 "--json"])
    assert r.exit_code == 0, r.output
    b = json.loads(r.stdout)
    assert calls == [0, 10, 30]
    assert [(t["split"], t["ngl"], t.get("test")) for t in b["tests"]] == [
        (0, 0, "pp8"), (0, 0, "tg2"), (1, 10, None), (2, 30, "pp8"), (2, 30, "tg2")]
    assert b["tests"][2]["error"] == "cuda span: an illegal memory access was encountered"


def test_device_memory_figures(monkeypatch):
    """the split's memory fields: the plan's device bytes, the span's own count, and the
    fall of the device's free memory since the plan read it"""
    from types import SimpleNamespace

    from llmlite import offload
    from llmlite.cli.bench import _bench_split, _device_memory_line

    plan = SimpleNamespace(n_gpu=12, vram_free=8000 << 20, gpu=SimpleNamespace(total=500 << 20))
    m = SimpleNamespace(weights=SimpleNamespace(n_gpu=12, backend="cuda", span_bytes=490 << 20),
                        offload_plan=plan, offload_notes=[])
    monkeypatch.setattr(offload, "vram_free", lambda backend="cuda": 7480 << 20)
    s = _bench_split(m, 3, 30)
    assert (s["split"], s["ngl"], s["backend"]) == (3, 12, "CUDA+CPU")
    assert (s["plan_device_bytes"], s["span_bytes"], s["device_free_drop"]) == (500 << 20, 490 << 20, 520 << 20)
    assert _device_memory_line(s) == ("-ngl 12/30: device memory planned 500.0 MiB, allocated 490.0 MiB, "
                                      "free memory fell 520.0 MiB (+4.0% against the plan)")
    m.offload_plan = SimpleNamespace(n_gpu=16, vram_free=8000 << 20, gpu=plan.gpu)   # fell back from 16 layers
    assert _bench_split(m, 0, 30)["plan_device_bytes"] is None


def test_peak_rss_is_the_process_peak(smollm2_path):
    """the peak RSS bench prints is at least what the kernel counted for the whole process
    (its ru_maxrss as the parent reaps it), the bandwidth probe's buffer included; the
    narrower peak, until the tests ended, is labelled as such"""
    import os
    import subprocess

    from helpers import LLMLITE, ROOT, cli_env

    p = subprocess.Popen([*LLMLITE, "bench", str(smollm2_path), "-p", "8", "-n", "2", "-r", "1", "-ngl", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, env=cli_env(), text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)       # this child's own rusage, not every child's so far
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0
    line = next(ln for ln in out.splitlines() if "peak RSS" in ln)
    value, unit = line.split("peak RSS ")[1].split()[:2]
    assert float(value) * {"MiB": 1 << 20, "GiB": 1 << 30}[unit] >= 0.9 * usage.ru_maxrss * 1024, line
    assert "until the tests ended, before the bandwidth probe)" in line
