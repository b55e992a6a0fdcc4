"""Both real models' logits on a fixed text, held bit for bit against the values saved in
tests/data/logits_saved.npz (written by tests/make_saved_logits.py at an earlier commit),
on every ISA this CPU has: a change that is not meant to move the numbers moves none."""
import numpy as np
import pytest

from llmlite import _lib
from make_saved_logits import compute, summary

SAVED = np.load(__import__("pathlib").Path(__file__).parent / "data" / "logits_saved.npz")


@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_logits_equal_the_saved_ones(name, request):
    path = request.getfixturevalue("smollm2_path" if name.startswith("smollm2") else "gemma3_path")
    prev = _lib.isa()
    try:
        for isa in [i for i in ("avx512", "avx2", "scalar") if _lib.cpu_has(i)]:
            assert _lib.set_isa(isa)
            ids, logits = compute(path)
            assert ids.tolist() == SAVED[f"{name}/tokens"].tolist(), "the tokenizer moved"
            s = summary(logits)
            np.testing.assert_array_equal(s["top_ids"], SAVED[f"{name}/top_ids"], err_msg=isa)
            np.testing.assert_array_equal(s["top_logits"], SAVED[f"{name}/top_logits"], err_msg=isa)
            assert s["sha256"] == str(SAVED[f"{name}/sha256"]), f"{isa}: logits moved outside the top {s['top_ids'].shape[1]}"
    finally:
        _lib.set_isa(prev)
