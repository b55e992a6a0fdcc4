from setuptools import setup

setup(cffi_modules=["llmlite/_build.py:ffibuilder"])
