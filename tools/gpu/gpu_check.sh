#!/bin/sh
# One-shot check of the CUDA backend, for a machine with a GPU (works without one too:
# it then stops after the probe). From anywhere:  sh tools/gpu/gpu_check.sh [check|quick|bench|all|races]
# Builds into build/cuda/ (ignored by git; carry it to a machine without nvcc, the
# build step is skipped there when the binaries exist, or with GPU_CHECK_BUILD=0), then runs, in order:
#   probe          the library loads, its two symbols, device_info
#   dequant_check  the device decoders' host twins vs the CPU dequantizers (no GPU needed)
#   mmq_check      the integer matmul kernels vs a double reference, batch invariance
#   span_check     CUDA span vs CPU span on random models (see span_check.c); default "all"
#   compute-sanitizer memcheck on "span_check quick", when the tool is installed
#   races: compute-sanitizer racecheck (shared memory) and synccheck (barriers) on
#          "span_check quick" only, nothing else (slow: a job of its own)
set -e
cd "$(dirname "$0")/../.."
WHAT=${1:-all}
B=build/cuda
PATH=$PATH:/usr/local/cuda/bin
mkdir -p $B
if [ "${GPU_CHECK_BUILD:-1}" = 0 ] && [ -x $B/span_check ] && [ -f $B/libllmlite_cuda.so ]; then
    echo "== GPU_CHECK_BUILD=0: using the binaries in $B"
elif command -v nvcc >/dev/null 2>&1; then
    echo "== build ($(nvcc --version | tail -1))"
    # the library and nvcc's flags as the Makefile has them (the one place they live)
    make -s cuda CUDA_LIB=$B/libllmlite_cuda.so
    rm -rf $B/cpu            # no object of a source since removed
    mkdir -p $B/cpu
    for f in csrc/*.c; do
        gcc -O3 -std=gnu11 -ffp-contract=off -pthread -Icsrc -c "$f" -o $B/cpu/"$(basename "$f" .c)".o   # as llmlite/_build.py
    done
    nvcc $(make -s print-nvcc-flags) -Icsrc/cuda -o $B/dequant_check tools/gpu/dequant_check.cu $B/cpu/*.o \
        -lpthread -ldl -lm
    nvcc $(make -s print-nvcc-flags) -Icsrc/cuda -o $B/mmq_check tools/gpu/mmq_check.cu csrc/cuda/mmq.cu \
        csrc/cuda/matmul.cu csrc/cuda/ops.cu $B/cpu/*.o -lpthread -ldl -lm
    gcc -O2 -std=gnu11 -Icsrc -o $B/span_check tools/gpu/span_check.c $B/cpu/*.o -ldl -lm -pthread
    gcc -O2 -Icsrc -o $B/probe tools/gpu/probe_main.c -ldl
    echo "exported: $(nm -D --defined-only $B/libllmlite_cuda.so | awk '{print $3}' | tr '\n' ' ')"
else
    echo "== no nvcc: using the binaries in $B"
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader || true
if [ "$WHAT" = races ]; then
    rc=0
    for tool in racecheck synccheck; do
        echo "== compute-sanitizer $tool (span_check quick)"
        s=0
        timeout 300 compute-sanitizer --tool $tool --error-exitcode 3 \
            $B/span_check $B/libllmlite_cuda.so quick > $B/$tool.log 2>&1 || s=$?
        tail -6 $B/$tool.log
        [ $s = 0 ] || { echo "compute-sanitizer $tool: exit $s"; rc=$s; }
    done
    exit $rc
fi
echo "== probe"
$B/probe $B/libllmlite_cuda.so
echo "== dequant_check"
$B/dequant_check | tail -1
rc=0
echo "== mmq_check"
if [ -x $B/mmq_check ]; then
    $B/mmq_check > $B/mmq_check.log 2>&1 || rc=$?
    tail -10 $B/mmq_check.log
fi
echo "== span_check $WHAT"
$B/span_check $B/libllmlite_cuda.so "$WHAT" || rc=$?
if [ "$WHAT" = check ] || [ "$WHAT" = all ]; then
    echo "== span_check stress"
    $B/span_check $B/libllmlite_cuda.so stress > $B/stress.log 2>&1 || rc=$?
    tail -4 $B/stress.log
fi
if command -v compute-sanitizer >/dev/null 2>&1 && [ "$WHAT" != bench ]; then
    echo "== compute-sanitizer memcheck (span_check quick)"
    # its exit status, not tail's (sh has no pipefail)
    s=0
    timeout 240 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 3 \
        $B/span_check $B/libllmlite_cuda.so quick > $B/sanitizer.log 2>&1 || s=$?
    tail -20 $B/sanitizer.log
    [ $s = 0 ] || { echo "compute-sanitizer: exit $s"; rc=$s; }
fi
exit $rc
