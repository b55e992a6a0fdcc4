import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    """LLMLITE_CUDA=1: build the CUDA backend (make cuda, needs nvcc) into the package"""

    def run(self):
        if os.environ.get("LLMLITE_CUDA", "") not in ("", "0"):
            if subprocess.run(["make", "cuda"]).returncode != 0:
                raise SystemExit("LLMLITE_CUDA=1: `make cuda` failed (see above); without it: pip install .")
        super().run()


setup(cffi_modules=["llmlite/_build.py:ffibuilder"], cmdclass={"build_py": BuildPy})
