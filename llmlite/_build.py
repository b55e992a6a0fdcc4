"""cffi builder (out-of-line API mode): compiles csrc/*.c into llmlite._llmlite."""
import glob
import os
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")


def _cdef_text():
    with open(os.path.join(CSRC, "llmlite.h")) as f:
        lines = [ln for ln in f if not ln.lstrip().startswith("#")]
    return "".join(lines)


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())

# paths relative to the project root (setuptools and build_ext.sh run from there),
# so that object files land beside their sources
_sources = sorted("csrc/" + os.path.basename(p) for p in glob.glob(os.path.join(CSRC, "*.c")))
_args = ["-O3", "-std=gnu11", "-ffp-contract=off", "-fno-fast-math", "-fvisibility=hidden"]
if sys.platform != "win32":
    _args.append("-pthread")

ffibuilder.set_source(
    "llmlite._llmlite",
    '#include "llmlite.h"\n',
    sources=_sources,
    include_dirs=["csrc"],
    extra_compile_args=_args,
    extra_link_args=["-pthread", "-lm", "-ldl"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
