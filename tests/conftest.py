"""The fixtures every test file shares (the real and the tiny models, the shared
reference data, the kernel tables, the emulated CUDA backend), the markers they
bring, and the one rule for a run without ../shared. Plain helper functions:
tests/helpers.py; the markers' meanings: pyproject.toml."""
import os
from pathlib import Path

import pytest

from helpers import ROOT
from isa import ISAS, isas, using_isa

SHARED = Path(os.environ.get("LLMLITE_SHARED", ROOT.parent / "shared"))
# the plan's speed constants are not timed in the tests (the processes they start too):
# a model loaded with -ngl on the emulated CUDA backend would time it on its large
# model (llmlite/device_costs.py); tests/test_device_costs.py turns it on where it checks it
os.environ.setdefault("LLMLITE_SPEED_TIMING", "0")
NO_SHARED = "needs the shared reference data: set LLMLITE_SHARED"
# a test that takes one of these fixtures (directly or through another) gets the marker
FIXTURE_MARKERS = {"shared_dir": "shared", "emulated_cuda_lib": "gpu"}


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # without ../shared a test that needs it skips, with one reason; in CI it fails
    # instead (CI has the folder: it must never pass by skipping what it did not run)
    if item.get_closest_marker("shared") and not SHARED.is_dir():
        if _in_ci():
            pytest.fail(f"{NO_SHARED} ({SHARED} is absent, and CI is set)", pytrace=False)
        pytest.skip(NO_SHARED)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def tiny_path(shared_dir) -> Path:
    """A llama with random weights and SmolLM2's tokenizer and ChatML template
    (refs/synthetic, 2.7 MB): fast, fine for plumbing."""
    return shared_dir / "refs" / "synthetic" / "llama-mqa-tiny-f16.gguf"


@pytest.fixture(scope="module")
def tiny(tiny_path):
    """tiny_path loaded (n_ctx 256), one per test file: the tests reset it as they need."""
    import llmlite

    m = llmlite.load(tiny_path, n_ctx=256)
    yield m
    m.close()


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from llmlite.registry import ensure_model

    return ensure_model("smollm2-135m", quiet=True)


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    from llmlite.registry import ensure_model

    return ensure_model("gemma3-270m", quiet=True)


@pytest.fixture(params=ISAS)
def isa(request):
    """The test once per kernel table (ISA), run on it; skipped where this CPU lacks it."""
    if request.param not in isas():
        pytest.skip(f"this CPU does not run {request.param}")
    with using_isa(request.param):
        yield request.param


@pytest.fixture
def simd_isas() -> list[str]:
    """The SIMD ISAs this CPU runs, each to be held against scalar; skipped without one."""
    names = isas()[1:]
    if not names:
        pytest.skip("this CPU runs no SIMD ISA that llmlite uses")
    return names


@pytest.fixture(scope="session")
def emulated_cuda_lib(tmp_path_factory) -> Path:
    """the CUDA backend's own sources built with g++ against tools/gpu/emu's CPU
    emulation of the CUDA runtime (`emu_build.sh lib`: no sanitizers, so Python can
    load it); the rewritten sources stay beside it in src/"""
    import shutil
    import subprocess

    if not shutil.which("g++"):
        pytest.skip("no g++ to build the emulated CUDA backend")
    d = tmp_path_factory.mktemp("emu")
    r = subprocess.run(["sh", str(ROOT / "tools/gpu/emu/emu_build.sh"), "lib"], env=dict(os.environ, EMU_DIR=str(d)),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return d / "libllmlite_cuda.so"
