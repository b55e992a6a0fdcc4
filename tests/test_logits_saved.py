"""Both real models' logits on a fixed text, held bit for bit against the values saved in
tests/data/logits_saved.npz (written by tests/make_saved_logits.py at an earlier commit),
on every ISA this CPU has (Gemma 3's 262k-row head on the scalar kernels alone would take
8 s: it runs on the SIMD ones; test_isa_exact holds the scalar kernels to the SIMD bits): a
change that is not meant to move the numbers moves none."""
import numpy as np
import pytest

from isa import isas, using_isa
from make_saved_logits import compute, summary

SAVED = np.load(__import__("pathlib").Path(__file__).parent / "data" / "logits_saved.npz")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_logits_equal_the_saved_ones(name, request):
    path = request.getfixturevalue("smollm2_path" if name.startswith("smollm2") else "gemma3_path")
    for isa in [i for i in isas() if name.startswith("smollm2") or i != "scalar"]:
        with using_isa(isa):
            ids, logits = compute(path)
        assert ids.tolist() == SAVED[f"{name}/tokens"].tolist(), "the tokenizer moved"
        s = summary(logits)
        np.testing.assert_array_equal(s["top_ids"], SAVED[f"{name}/top_ids"], err_msg=isa)
        np.testing.assert_array_equal(s["top_logits"], SAVED[f"{name}/top_logits"], err_msg=isa)
        assert s["sha256"] == str(SAVED[f"{name}/sha256"]), \
            f"{isa}: logits moved outside the top {s['top_ids'].shape[1]}"


def test_load_takes_flash_attn(smollm2_path):
    """llmlite.load(..., flash_attn=True), as the README documents it: the online-softmax
    attention: the same model to rounding (these small quantized models move a little under
    any rounding change), not the same bits"""
    import llmlite

    ids = SAVED["smollm2-135m/tokens"].tolist()
    m = llmlite.load(smollm2_path, n_ctx=256, flash_attn=True)
    try:
        fa = m.eval(ids)
    finally:
        m.close()
    top = SAVED["smollm2-135m/top_ids"]
    same_top1 = (fa.argmax(axis=1) == top[:, 0]).mean()
    drift = np.abs(np.take_along_axis(fa, top, axis=1) - SAVED["smollm2-135m/top_logits"]).mean()
    assert same_top1 >= 0.9 and drift < 0.25, (same_top1, drift)   # the CPU's own -fa floor is ~97% top-1
    assert summary(fa)["sha256"] != str(SAVED["smollm2-135m/sha256"])   # a different order, not the same path
