"""csrc/huge_pages.c: after the load a thread moves the decode copies (csrc/repack.c)
into 2 MiB pages in the model's pauses. The logits keep their bits during and after
the move, the model can be freed while it is under way, LLMLITE_HUGE_PAGES=0 keeps
the 4 KiB pages, and where transparent huge pages are off no thread starts."""
import re
import sys
import time

import numpy as np
import pytest

from llmlite._lib import lib

from test_repack import takes_copies


def huge_pages_possible() -> bool:
    """Linux with transparent huge pages not off"""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def anon_huge_kib() -> int:
    with open("/proc/self/smaps") as f:
        return sum(int(x) for x in re.findall(r"AnonHugePages:\s+(\d+) kB", f.read()))


@pytest.fixture(scope="module")
def wide_file(tmp_path_factory):
    """qwen3-4b's layout at 2 layers 1024 wide, FFN 4096, Q4_K_M: copies of ~16 MB,
    several 2 MiB ranges"""
    from helpers import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import shapes

    shape = shapes.scaled(shapes.SHAPES["qwen3-4b"], n_layer=2, n_embd=1024, n_ff=4096, n_head=8, n_head_kv=4,
                          n_vocab=2048)
    path = tmp_path_factory.mktemp("huge") / "wide-q4_k_m.gguf"
    shapes.build(path, "qwen3-4b", shape, "q4_k_m")
    return path


def _weights(path, monkeypatch, huge: bool):
    from llmlite.gguf import open_gguf
    from llmlite.model import Weights

    monkeypatch.setenv("LLMLITE_REPACK", "1")
    monkeypatch.setenv("LLMLITE_HUGE_PAGES", "1" if huge else "0")
    g = open_gguf(path)
    return g, Weights(g, 64, n_batch=64)


def _run(w):
    toks = [(37 * i + 5) % w.n_vocab for i in range(10)]
    out = [w.forward(toks[:7], 0, 2)]
    out += [w.forward([t], 7 + i, 2) for i, t in enumerate(toks[7:])]
    return np.concatenate(out)


def test_copies_move_into_huge_pages_and_keep_the_logits(wide_file, monkeypatch):
    if not takes_copies():
        pytest.skip("this kernel table takes no copies")
    g, w = _weights(wide_file, monkeypatch, huge=False)
    want = _run(w)
    assert w.huge_page_bytes == 0 and not lib.llm_model_huge_busy(w.ptr)
    del w
    g.close()

    before = anon_huge_kib()
    g, w = _weights(wide_file, monkeypatch, huge=True)
    assert w.repacked_bytes > 8 << 20
    # passes with pauses between them: the copies move in the pauses, the passes read
    # old and new copies, and every pass keeps the bits
    t0, passes = time.monotonic(), 0
    while True:
        got = _run(w)
        passes += 1
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"pass {passes}"
        if not lib.llm_model_huge_busy(w.ptr):
            break
        assert time.monotonic() - t0 < 120, "the copies' move into 2 MiB pages did not end"
        time.sleep(0.03)
    if huge_pages_possible():
        assert passes >= 2                 # the move began after a pass, in a pause
        assert w.huge_page_bytes == w.repacked_bytes
        assert anon_huge_kib() - before >= (w.huge_page_bytes >> 10) // 2
    else:
        assert w.huge_page_bytes == 0      # no thread: the copies stay in 4 KiB pages
    del w
    g.close()


def test_a_model_freed_while_its_copies_move(wide_file, monkeypatch):
    """the thread stops after the 2 MiB piece it is on; nothing is read after the unmap"""
    if not takes_copies():
        pytest.skip("this kernel table takes no copies")
    for pause in (0.0, 0.025, 0.05):
        g, w = _weights(wide_file, monkeypatch, huge=True)
        _run(w)
        time.sleep(pause)                  # the move begins 20 ms into a pause
        t0 = time.monotonic()
        del w
        g.close()
        assert time.monotonic() - t0 < 5.0
