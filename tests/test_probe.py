"""The machine probes (csrc/probe.c): the clock and the read-bandwidth probe."""
import math
import subprocess
import sys
import time

from llmlite._lib import lib


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
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
