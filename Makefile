# llmlite: the commands the README names. Everything runs with $(PYTHON).
PYTHON ?= python3
MODEL  ?= smollm2-135m
MODELS := smollm2-135m gemma3-270m

# `make install` reinstalls only when the build inputs changed since the last
# install with this $(PYTHON) (pip rebuilds the whole extension every time)
STAMP := build/.installed$(subst /,_,$(PYTHON))

.PHONY: all install build cuda print-nvcc-flags models run test test-fast bench bench-compare clean FORCE

all: install

# editable install with the test extra; pip builds the C extension in place
# (llmlite/_llmlite.abi3.so). Drop a build_ext.sh build, which would shadow it.
install: $(STAMP)
$(STAMP): pyproject.toml setup.py llmlite/_build.py $(wildcard csrc/*.c csrc/*.h) \
          $(if $(wildcard llmlite/_llmlite*.so),,FORCE)
	$(PYTHON) -m pip install -e '.[test]'
	rm -f llmlite/_llmlite.cpython-*.so
	$(PYTHON) -m compileall -q llmlite   # as a regular pip install would (PYTHONDONTWRITEBYTECODE may be set)
	@mkdir -p build && touch $@

# rebuild the C extension in place after editing csrc/ (no reinstall needed)
build:
	./build_ext.sh
	rm -f llmlite/_llmlite.abi3.so

# the CUDA backend, where nvcc exists: a separate library the extension loads at run
# time (the CPU build never needs nvcc). CUDA_ARCHS picks the GPUs (A100, H100/H200).
NVCC ?= nvcc
CUDA_ARCHS ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_90,code=compute_90
# nvcc's flags for csrc/cuda, kept here only: tools/gpu/gpu_check.sh (its check programs)
# and tests/test_offload_split.py (the PTX check) read them with `make -s print-nvcc-flags`
# (CUDA_ARCHS=... for other GPUs)
NVCC_FLAGS = -O3 -std=c++17 -Icsrc $(CUDA_ARCHS)
# and for the library: the CUDA runtime linked in, hidden, so that it exports
# llmcuda_span_ops and llmcuda_device_info only
NVCC_LIB_FLAGS = -shared -Xcompiler -fPIC,-fvisibility=hidden -Xlinker --exclude-libs,ALL -cudart static
CUDA_LIB ?= llmlite/libllmlite_cuda.so
cuda: $(CUDA_LIB)
$(CUDA_LIB): $(wildcard csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.h) csrc/span.h csrc/llmlite.h
	@command -v $(NVCC) >/dev/null || { echo "make cuda: $(NVCC) not found (the CUDA toolkit); the CPU build needs none" >&2; exit 1; }
	$(NVCC) $(NVCC_FLAGS) $(NVCC_LIB_FLAGS) -o $@ $(filter %.cu,$^)

print-nvcc-flags:
	@echo $(NVCC_FLAGS)

# fetch the test models into the cache (~/.cache/llmlite, or $$LLMLITE_CACHE), sha256 checked
models: install
	$(PYTHON) -c "import sys; from llmlite.registry import ensure_model; [print(ensure_model(a)) for a in sys.argv[1:]]" $(MODELS)

# the main job on the default model (fetched on first use): one prompt, streamed
PROMPT ?= Explain in three sentences why the sky is blue.
run: install
	$(PYTHON) -m llmlite run $(MODEL) -p "$(PROMPT)" -n 128

# pytest's default report, not -q's: a run takes minutes, and the default prints a line
# per test file as it goes (its name, a dot per test, the percentage done), then the
# same summary -q ends with
test: install
	$(PYTHON) -m pytest

# the quick run: the tests not marked slow (pyproject.toml's markers)
test-fast: install
	$(PYTHON) -m pytest -m "not slow"

bench: install
	$(PYTHON) benchmarks/bench_kernels.py

# llmlite vs llama.cpp on the same machine (builds llama-cpp-python in .venv-llamacpp once)
bench-compare: install
	$(PYTHON) benchmarks/compare_llamacpp.py

FORCE:

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis
	rm -f csrc/*.o llmlite/_llmlite.c llmlite/_llmlite.o llmlite/_llmlite*.so llmlite/libllmlite_cuda.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
