"""The kernel tables (ISAs) a test can run on, and a switch to one that always
switches back. For tests only: the package runs on the table it picked from the
CPU (or LLMLITE_ISA) at load, and llmlite._lib.isa() names it."""
from __future__ import annotations

from contextlib import contextmanager

from llmlite._lib import isa, lib

# every table csrc/dispatch.c has; scalar, the one the others must equal, first
ISAS = ("scalar", "avx2", "avx512")


def isas() -> list[str]:
    """The ISAs this CPU runs, scalar first."""
    return [i for i in ISAS if lib.llm_cpu_has(i.encode())]


@contextmanager
def using_isa(name: str):
    """Run the block on ISA `name` (this CPU must run it), then on the table before it."""
    before = isa()
    assert lib.llm_set_isa(name.encode()) == 0 and isa() == name, f"this CPU does not run {name}"
    try:
        yield name
    finally:
        lib.llm_set_isa(before.encode())


def assert_same_on_every_isa(path, toks, name: str) -> None:
    """The model file at path gives toks the same logits (all positions, one batch) with
    every kernel table this CPU runs as with the scalar one."""
    import numpy as np

    from llmlite.gguf import open_gguf
    from llmlite.model import Weights

    got = {}
    with open_gguf(path) as g:
        w = Weights(g, 64, n_batch=64, flash_attn=False)
        for name_ in isas():
            with using_isa(name_):
                got[name_] = w.forward(toks, 0, 2)
        del w
    for isa_name, logits in got.items():
        assert np.array_equal(logits, got["scalar"]), (name, isa_name)


def assert_decode_same_on_every_isa(path, toks, name: str) -> None:
    """toks decoded one at a time (one column: the tables' gemv and 4-row kernels) give
    every kernel table's logits the scalar one's bits."""
    import numpy as np

    from llmlite.gguf import open_gguf
    from llmlite.model import Weights

    got = {}
    with open_gguf(path) as g:
        w = Weights(g, 64, n_batch=64, flash_attn=False)
        for table in isas():
            with using_isa(table):
                got[table] = np.stack([w.forward([t], i, 1) for i, t in enumerate(toks)])
        del w
    for table, logits in got.items():
        assert np.array_equal(logits, got["scalar"]), (name, table)
