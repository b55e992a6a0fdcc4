"""The CLI against hostile files (issue 18's acceptance): hypothesis mutates a copy of the
tiny model (hyper-parameter values, the header's tensor and KV counts, tensor data
offsets) and runs `llmlite info` or `llmlite run -p hi -n 1` on it, each in its own
process. Every case ends within 5 s and 200 MB of peak memory over the unmutated run,
exits 0 or 2, and when it fails says so in one line: no traceback, no internal error
(exit 1), no signal. Exit 0 only where the mutation leaves a loadable file."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import LLMLITE, rewrite_gguf, run_python
from llmlite.gguf import open_gguf
from test_hparams import HPARAM_KEYS, HPARAM_VALUES, _rel_offset_pos

TIMEOUT_S = 5.0
MEMORY_OVER_BASE = 200 << 20
COMMANDS = {"info": ("info",), "run": ("run", "-p", "hi", "-n", "1")}
N_TENSORS_AT, N_KV_AT = 8, 16
# the header: magic, version (u32 each), then the two u64 counts


# The measuring parent of each run: a fresh interpreter of ~10 MB. Linux carries the
# forking process's RSS into the child's ru_maxrss across exec, so a child forked by
# pytest itself would report pytest's size; a limit set with RLIMIT_AS instead would
# trip on numpy's and BLAS's address space reservations long before real use.
_BOUNDED = r"""
import os, subprocess, sys, time
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
deadline = time.monotonic() + float(sys.argv[1])
while not (done := os.wait4(p.pid, os.WNOHANG))[0]:
    if time.monotonic() > deadline:
        p.kill()
        print("timeout", flush=True)
        done = os.wait4(p.pid, 0)
        break
    time.sleep(0.01)
p.returncode = os.waitstatus_to_exitcode(done[1])   # reaped here: Popen must not wait again
print(p.returncode, done[2].ru_maxrss * 1024)
"""


def run_bounded(cmd: tuple, path: Path) -> tuple[int, str, int]:
    """(exit status, or -signal; stderr; peak RSS in bytes) of `llmlite CMD PATH ...`;
    a run past TIMEOUT_S fails the test."""
    r = run_python(_BOUNDED, TIMEOUT_S, *LLMLITE, cmd[0], path, *cmd[1:], timeout=TIMEOUT_S + 30)
    assert not r.stdout.startswith("timeout"), f"llmlite {' '.join(cmd)} ran past {TIMEOUT_S} s on {path}"
    rc, peak = map(int, r.stdout.split())
    return rc, r.stderr, peak


@pytest.fixture(scope="module")
def baseline_rss(tiny_path) -> dict:
    """each command's peak RSS on the unmutated tiny model (which it must run)"""
    peaks = {}
    for name, cmd in COMMANDS.items():
        rc, err, peaks[name] = run_bounded(cmd, tiny_path)
        assert rc == 0, err
    return peaks


def _table(path: Path) -> tuple[list[tuple[int, int]], int, int]:
    """([(where a tensor's relative data offset lies, its value)], tensor count, KV count)"""
    buf = path.read_bytes()
    with open_gguf(path) as g:
        offsets = [(_rel_offset_pos(buf, t.name, len(t.shape)), t.offset - g.data_offset) for t in g.tensors.values()]
    n_tensors, n_kv = struct.unpack_from("<QQ", buf, N_TENSORS_AT)
    return offsets, n_tensors, n_kv


U64_EDGES = st.sampled_from([0, 1, 31, 32, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1])
U64 = st.one_of(U64_EDGES, st.integers(0, 2**64 - 1))


@pytest.mark.slow                          # 25 cases of 0.4 to 1.5 s each on 2 cores
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_cli_on_a_mutated_model_exits_0_or_one_line(tiny_path, tmp_path, baseline_rss, data):
    name = data.draw(st.sampled_from(sorted(COMMANDS)), label="command")
    kv = data.draw(st.dictionaries(st.sampled_from(HPARAM_KEYS), HPARAM_VALUES, max_size=2), label="kv")
    path = rewrite_gguf(tiny_path, tmp_path / "m.gguf", kv=kv)
    offsets, n_tensors, n_kv = _table(path)
    buf = bytearray(path.read_bytes())
    # the header's counts and the tensors' data offsets: set one of them or none, to a
    # value near the true one or anywhere in a u64
    field = data.draw(st.sampled_from(["none", "n_tensors", "n_kv", "offset"]), label="field")
    broken = False                            # a count or offset that no longer fits the file: never loads
    if field != "none":
        at, true = ((N_TENSORS_AT, n_tensors) if field == "n_tensors" else (N_KV_AT, n_kv) if field == "n_kv"
                    else data.draw(st.sampled_from(offsets), label="tensor"))
        value = data.draw(st.one_of(st.sampled_from([max(true - 1, 0), true + 1, true + 32]), U64), label="value")
        struct.pack_into("<Q", buf, at, value)
        # a table cut short is still a well-formed GGUF of fewer tensors (info may list
        # it; run must miss a tensor); any other change leaves a file that cannot load
        broken = value != true and (name == "run" or not (field == "n_tensors" and value < true))
    path.write_bytes(buf)
    rc, err, peak = run_bounded(COMMANDS[name], path)
    assert "Traceback" not in err, err
    assert peak <= baseline_rss[name] + MEMORY_OVER_BASE, (peak, baseline_rss[name])
    assert rc in (0, 2), (rc, err)
    if rc == 0:
        assert not broken, f"{field} changed, yet {name} exits 0: {err}"
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err


def test_missing_tensor_exits_2(tiny_path, tmp_path):
    """found by the fuzz: a header that counts one tensor less cuts the table short,
    and run failed on the missing tensor as an internal error (exit 1), not a bad file"""
    path = tmp_path / "short.gguf"
    buf = bytearray(tiny_path.read_bytes())
    struct.pack_into("<Q", buf, N_TENSORS_AT, struct.unpack_from("<Q", buf, N_TENSORS_AT)[0] - 1)
    path.write_bytes(buf)
    rc, err, _ = run_bounded(COMMANDS["run"], path)
    assert (rc, len(err.splitlines())) == (2, 1), err
