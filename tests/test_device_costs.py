"""llmlite/device_costs.py: the plan's decode estimate against the H200 cliff of issue
24, and its constants measured once per device and cached (the measurement path run on
the emulated CUDA backend, whose times mean nothing: the caching and the arithmetic
are what is checked)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from llmlite import device_costs as D
from llmlite.offload import model_costs, plan_split

from helpers import run_python

# `llmlite bench SmolLM2-135M-Instruct.Q4_1 -ngl 0,25%,50%,75%,100%` on the H200 machine
# (16 CPU threads): tg128 t/s at 0, 7, 15, 22 and 30 of the 30 layers on the GPU
H200_TG128 = [351, 379, 456, 502, 707]


def h200_speeds():
    """The constants a measurement on that machine gives, from figures other than the five
    above, and no fitting to them:
      GPU, per launch: the issue's ~47 us a layer for its 6 launches, from the side-by-side
        run against llama.cpp (743 t/s, graphs on: 1.4 ms a step over 30 layers); and, as a
        second derivation, ncu's per-kernel times of one decode step summed, attn 21 +
        2 x 11.5 (the matmuls with the residual epilogue) + 6.0 (gate/up) + 4.2 (QKV) + 4.5
        (Q/K stage) = 58.7 us a layer (ncu locks the clocks to base and serializes the
        kernels: an upper bound of what the timed span gives);
      GPU bandwidth: ncu's Q8_0 head, 30.1 MB in 25 us (1.2 TB/s);
      GPU step: 20 us, the two PCIe copies and the sync (an estimate, no figure given);
      CPU: no figure of that host's but the 0% point itself, which is what the CPU
        measurement times (a decode with every layer on the CPU): its per-layer floor is
        (2.85 ms - the head at the CPU's bandwidth) / 30, for each bandwidth its probe
        could plausibly give (50-200 GB/s on 16 cores); the 25-100% points are then
        predictions of how the two sides compose."""
    head = 30083328 + 612                 # the tied Q8_0 head + the embedding row, bytes
    for layer_us in (47.0, 58.7):
        for cpu_gbs in (50.0, 100.0, 200.0):
            floor = (1e6 / H200_TG128[0] - head / (cpu_gbs * 1e3)) / 30
            yield D.Speed(cpu_gbs=cpu_gbs, cpu_layer_us=floor, gpu_gbs=30.1e6 / 25e-6 / 1e9,
                          gpu_launch_us=layer_us / 6, gpu_step_us=20.0)


@pytest.mark.parametrize("speed", list(h200_speeds()), ids=lambda s: f"{s.gpu_launch_us * 6:.0f}us-{s.cpu_gbs:.0f}GBs")
def test_the_estimate_follows_the_h200_cliff(smollm2_path, speed):
    """within 25% of each measured tg128 (the issue asks it at 0, 50 and 100%); the old
    estimate (bandwidth and 15 us a layer) said ~2,057 t/s at 100% where 707 was measured"""
    c = model_costs(smollm2_path, 512, 512)
    assert c.layer_launches == [D.BASE_LAUNCHES] * 30 and c.head_tied
    c = dataclasses.replace(c, layer_launches=[6] * 30)     # the kernels of that run: 6 launches a layer
    p = plan_split(c, 80 << 30, 0, gpu_layers="all", speed=speed, kv_fill=64)
    assert [k for _, k, _, _ in p.cliff] == [0, 7, 15, 22, 30]
    for (pct, _, est, _), got in zip(p.cliff, H200_TG128):
        assert abs(est / got - 1) < 0.25, (pct, est, got)


def test_the_defaults_are_the_h200_figures():
    sp = D.default_speed(100.0)
    assert sp.gpu_launch_us * 6 == pytest.approx(47.0) and sp.gpu_gbs == 1200 and not sp.measured
    assert "H200" in sp.source and "not measured" not in sp.describe()


def test_the_timing_model_is_what_the_table_says(tmp_path):
    """the temporary models the measurement times: a llama of the shape asked, its bytes
    as Shape.layer_bytes counts them"""
    p = D.write_model(tmp_path / "m.gguf", D.Shape(64, 128, 4, 2), 3)
    c = model_costs(p, 64, 8, backend="cpu")
    assert c.n_layer == 3 and c.layer_launches == [D.BASE_LAUNCHES] * 3
    assert c.layer_weights == [D.Shape(64, 128, 4, 2).layer_bytes() + 2 * 64 * 4] * 3


MEASURE = """
import json, sys
from llmlite import device_costs as D, offload
D.NARROW, D.WIDE, D.STEPS = D.Shape(64, 128, 4, 2), D.Shape(128, 256, 4, 2), 2
assert offload.load_cuda()[0], offload.load_cuda()
calls = []
for f in ("measure_gpu", "measure_cpu"):
    def counted(*a, _f=getattr(D, f), _n=f, **k):
        calls.append(_n)
        return _f(*a, **k)
    setattr(D, f, counted)
a = D.device_speed("cuda", cpu_gbs=10.0, threads=2)
b = D.device_speed("cuda", cpu_gbs=10.0, threads=2)        # from the cache
c = D.device_speed("cuda", cpu_gbs=10.0, threads=3)        # another thread count: the CPU again
print(json.dumps({"a": D.asdict(a), "b": D.asdict(b), "c": D.asdict(c), "calls": calls}))
"""


def test_measured_once_per_device_and_cached(emulated_cuda_lib, tmp_path):
    """the first plan with a device measures it (here the emulated CUDA backend: every
    step of the measurement through the real span code), the next ones read
    devices.json, keyed by the device's name, the driver, the library's build and the
    CPU thread count"""
    r = run_python(MEASURE, env={"LLMLITE_CUDA_LIB": emulated_cuda_lib, "LLMLITE_CACHE": tmp_path,
                                 "LLMLITE_SPEED_TIMING": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.splitlines()[-1])
    a, b, c = out["a"], out["b"], out["c"]
    assert out["calls"] == ["measure_cpu", "measure_gpu", "measure_cpu"]
    assert a["measured"] and a["source"].startswith("measured on CPU emulation, 2 CPU threads (timed now, ")
    assert b == {**a, "source": "measured on CPU emulation, 2 CPU threads"}
    assert a["gpu_launch_us"] >= 0 and a["gpu_gbs"] > 0 and a["cpu_layer_us"] >= 0 and a["cpu_gbs"] == 10.0
    assert {k: c[k] for k in D.DEFAULT_GPU} == {k: a[k] for k in D.DEFAULT_GPU}
    cache = json.loads((tmp_path / "devices.json").read_text())
    keys = sorted(cache)
    assert len(keys) == 3 and keys[0].startswith("cpu|") and keys[0].endswith("|2") and keys[1].endswith("|3")
    name, _drv, build = keys[2].split("|")[1:]
    assert name == "CPU emulation" and build == D.build_id(emulated_cuda_lib)
    assert set(cache[keys[2]]) == {"gpu_launch_us", "gpu_gbs", "gpu_step_us", "when"}


def test_without_a_gpu_the_gpu_side_is_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLITE_SPEED_TIMING", "1")
    monkeypatch.setenv("LLMLITE_CACHE", str(tmp_path))
    monkeypatch.setattr(D, "measure_cpu", lambda: {"cpu_layer_us": 42.0})
    import llmlite.offload as O

    monkeypatch.setattr(O, "load_cuda", lambda: (False, "no GPU"))
    sp = D.device_speed("cuda", cpu_gbs=10.0, threads=4)
    assert (sp.cpu_layer_us, sp.gpu_launch_us, sp.measured) == (42.0, D.DEFAULT_GPU["gpu_launch_us"], False)
    assert "GPU defaults" in sp.source and "CPU measured" in sp.source
    assert D.device_speed("cuda", cpu_gbs=10.0, threads=4, measure=False).cpu_layer_us == 42.0   # cached
    assert D.device_speed("cuda", cpu_gbs=10.0, threads=5, measure=False).cpu_layer_us == D.DEFAULT_CPU_LAYER_US


def test_a_failed_timing_falls_back_to_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLITE_SPEED_TIMING", "1")
    monkeypatch.setenv("LLMLITE_CACHE", str(tmp_path))

    def fails():
        raise MemoryError("no room")

    monkeypatch.setattr(D, "measure_cpu", fails)
    sp = D.device_speed("cpu", cpu_gbs=10.0, threads=4)
    assert sp.cpu_layer_us == D.DEFAULT_CPU_LAYER_US and not sp.measured
    assert "the timing failed (MemoryError: no room)" in sp.source
    assert not (tmp_path / "devices.json").exists()          # nothing cached: tried again next time


def test_timing_off_keeps_the_cache_and_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLITE_CACHE", str(tmp_path))
    monkeypatch.setenv("LLMLITE_SPEED_TIMING", "0")

    def never():
        raise AssertionError("timed")

    monkeypatch.setattr(D, "measure_cpu", never)
    assert D.device_speed("cpu", cpu_gbs=10.0, threads=4).cpu_layer_us == D.DEFAULT_CPU_LAYER_US
