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
