"""What decode_vs_probe.py and decode_passes.py share: their arguments, the model with
its decode copies moved into 2 MiB pages, the tokens each round decodes, and a probe
of the read bandwidth in pages of the copies' size."""
from __future__ import annotations

import argparse
from typing import Callable

import numpy as np

from llmlite import bench as B
from llmlite.model import Model


def setup(doc: str, n: int, rounds: int) -> tuple[argparse.Namespace, Model, list[int], Callable[[], float], bool]:
    """(args, model, tokens, probe, huge): MODEL [-n tokens a round] [-r rounds] [-t threads]"""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("-n", type=int, default=n, help="tokens decoded a round")
    ap.add_argument("-r", type=int, default=rounds, help="rounds")
    ap.add_argument("-t", type=int, default=2, help="threads")
    a = ap.parse_args()
    m = Model(a.model, n_ctx=max(a.n, 16), threads=a.t)
    toks = np.random.default_rng(0).integers(0, m.n_vocab, a.n).tolist()
    w = m.weights
    m.settle()                                    # the copies into 2 MiB pages (a step first)
    huge = 2 * w.huge_page_bytes >= w.repacked_bytes > 0
    return a, m, toks, lambda: B.probe_bandwidth(a.t, huge_pages=huge), huge
