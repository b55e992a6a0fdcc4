"""Writes tests/data/logits_saved.npz: the logits of both real models on a fixed text,
computed by the code at the commit that wrote it. test_logits_saved.py holds every later
commit to them bit for bit (refactors must not move a single bit).

    python tests/make_saved_logits.py   # only when a change is meant to move the logits
"""
import hashlib
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TEXT = ("The capital of France is Paris. In 1889 the Eiffel Tower was built for the "
        "World's Fair, and it is still the tallest structure in the city.")
TOP = 32


def compute(path):
    import llmlite

    m = llmlite.load(path, n_ctx=256)
    try:
        ids = m.tokenize(TEXT)
        return np.asarray(ids, np.int32), m.eval(ids)
    finally:
        m.close()


def summary(logits: np.ndarray) -> dict:
    top = np.argsort(-logits, axis=1, kind="stable")[:, :TOP].astype(np.int32)
    return {"sha256": hashlib.sha256(np.ascontiguousarray(logits, np.float32).tobytes()).hexdigest(),
            "top_ids": top, "top_logits": np.take_along_axis(logits, top, axis=1).astype(np.float32)}


def main():
    from llmlite.registry import ensure_model

    out = {}
    for name in ("smollm2-135m", "gemma3-270m"):
        ids, logits = compute(ensure_model(name, quiet=True))
        s = summary(logits)
        out[f"{name}/tokens"] = ids
        out[f"{name}/sha256"] = np.array(s["sha256"])
        out[f"{name}/top_ids"] = s["top_ids"]
        out[f"{name}/top_logits"] = s["top_logits"]
        print(name, len(ids), "tokens", s["sha256"])
    np.savez_compressed(HERE / "data" / "logits_saved.npz", **out)


if __name__ == "__main__":
    main()
