"""The machine probes (csrc/probe.c): the clock and the read-bandwidth probe."""
import math
import sys
import time

import pytest

from llmlite._lib import lib

from helpers import ROOT, run_python


def test_now_is_monotonic_seconds():
    a = lib.llm_now()
    time.sleep(0.05)
    b = lib.llm_now()
    assert 0.04 <= b - a < 5.0
    assert lib.llm_now() >= b


def test_read_bw_is_positive_and_finite():
    for threads in (1, 2):
        bw = lib.llm_probe_read_bw(32 << 20, threads, 2)
        assert math.isfinite(bw) and 0.05 < bw < 10000, (threads, bw)
        for huge in (0, 1):
            bw = lib.llm_probe_read_bw_pages(16 << 20, threads, 1, huge)
            assert math.isfinite(bw) and 0.05 < bw < 10000, (threads, huge, bw)


def test_odd_sizes_and_arguments():
    # sizes that are not a multiple of the line size or of the thread count,
    # tiny sizes, and reps <= 0 (one pass) all give a figure
    for nbytes, threads, reps in ((1_000_003, 2, 1), (100, 1, 1), (4096 + 64 * 3, 2, 0), (1 << 20, 3, 1)):
        bw = lib.llm_probe_read_bw(nbytes, threads, reps)
        assert math.isfinite(bw) and bw > 0, (nbytes, threads, reps, bw)


def test_thread_count_is_restored():
    prev = lib.llm_get_threads()
    try:
        for before, during in ((1, 2), (2, 1), (2, 2), (1, 3)):
            assert lib.llm_set_threads(before) == before
            lib.llm_probe_read_bw(1 << 20, during, 1)
            assert lib.llm_get_threads() == before
    finally:
        lib.llm_set_threads(prev)


def test_probe_after_thread_changes_does_not_hang():
    # Each probe resizes the pool, runs jobs on it at once, and resizes it back:
    # workers created just before a job is posted must still pick it up. Run in
    # a subprocess so that a lost wake-up fails the test instead of hanging it.
    code = (
        "from llmlite._lib import lib\n"
        "for i in range(300):\n"
        "    lib.llm_set_threads(1 + i % 2)\n"
        "    assert lib.llm_probe_read_bw(8192, 2 - i % 2, 1) > 0\n"
        "print('ok')\n"
    )
    r = run_python(code, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_matvec_throughput_accounts_for_every_2d_weight(smollm2_path):
    # the kernel benchmark's bookkeeping (not its speed): every 2-D weight is
    # timed once per pass and its bytes counted under its type; threads restored
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from matvec import matvec_throughput
    from llmlite.gguf import open_gguf

    with open_gguf(smollm2_path) as g:
        want = {}
        for t in g.tensors.values():
            if len(t.shape) == 2:
                n, b = want.get(t.type_name, (0, 0))
                want[t.type_name] = (n + 1, b + t.nbytes)
    prev = lib.llm_get_threads()
    r = matvec_throughput(smollm2_path, threads=1, repeats=1, probe_gbs=10.0, probe_4k_gbs=5.0)
    assert lib.llm_get_threads() == prev
    assert r.threads == 1 and r.skipped == {}
    got = {row.type: (row.tensors, row.bytes) for row in r.rows if row.type != "total"}
    assert got == want == {"Q4_1": (210, got["Q4_1"][1]), "Q8_0": (1, got["Q8_0"][1])}
    total = r.rows[-1]
    assert total.type == "total"
    assert total.bytes == sum(b for _, b in want.values())
    assert total.seconds > 0 and total.seconds == pytest.approx(sum(row.seconds for row in r.rows[:-1]), rel=1e-12)
    for row in r.rows:
        assert row.gbs == row.bytes / row.seconds / 1e9
        assert row.frac_of_probe == row.gbs / 10.0
        assert row.frac_of_probe_4k == row.gbs / 5.0
