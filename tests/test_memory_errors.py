"""What a model's memory cannot take: a context whose KV cache is more than the machine's
memory, and a weights file that shrinks under the running process (the mapping's pages
gone: SIGBUS)."""
from pathlib import Path

import pytest

from helpers import llmlite


def one_error_line(r) -> str:
    """the CLI's single "error: ..." line (no traceback)"""
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_a_context_larger_than_memory_is_refused_with_the_figures(smollm2_path):
    r = llmlite("run", smollm2_path, "-p", "hi", "-n", "2", "-c", "10000000")
    assert r.returncode == 2 and r.stdout == ""
    line = one_error_line(r)
    assert line.startswith("error: a context of 10000000 tokens needs ") and " GiB of KV cache and buffers (plus " in line
    assert "of weights); this machine has " in line and line.endswith("of memory: use a smaller -c")
    # past the training context but within memory: a warning, and it runs (as before)
    r = llmlite("run", smollm2_path, "-p", "hi", "-n", "1", "-c", "9000")
    assert r.returncode == 0 and "larger than the model's training context 8192" in r.stderr


@pytest.mark.skipif(Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1"
                    if Path("/proc/sys/vm/overcommit_memory").exists() else True,
                    reason="needs the kernel to refuse a mapping larger than its memory")
def test_when_the_c_allocation_fails_the_message_names_the_bytes(tiny_path, monkeypatch):
    """the check cannot see the memory (ram_total None): the C side's refusal still says
    how much it tried to allocate"""
    import llmlite
    from llmlite import offload
    from llmlite.errors import LlmliteError

    monkeypatch.setattr(offload, "ram_total", lambda: None)
    with pytest.raises(LlmliteError, match=r"could not create the model for a context of 2000000000 tokens "
                                           r"\([0-9.]+ TiB of KV cache and buffers\): out of memory"):
        llmlite.load(tiny_path, n_ctx=2_000_000_000)


SHRINK = """
import os, sys
import llmlite

m = llmlite.load(sys.argv[1], n_ctx=64)
os.truncate(sys.argv[1], 4096)     # the weights' pages are gone from the mapping
m.eval([1, 2, 3])
print("read the weights after all")
"""


def test_a_model_file_truncated_while_in_use_is_one_line_not_a_crash(tiny_path, tmp_path):
    """the next read of a weight past the new end faults (SIGBUS): the process says which
    file and exits 1, where it died silently by the signal (-7)"""
    import shutil

    from helpers import run_python

    copy = tmp_path / "model.gguf"
    shutil.copyfile(tiny_path, copy)
    r = run_python(SHRINK, copy, env={"PYTHONFAULTHANDLER": "1"})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stdout == "" and r.stderr == (f"error: the model file {copy} changed or was truncated while in use "
                                           "(SIGBUS)\n")
