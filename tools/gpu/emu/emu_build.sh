#!/bin/sh
# Builds the CUDA backend's sources for the CPU emulation (no GPU, no nvcc needed) with
# AddressSanitizer and UndefinedBehaviorSanitizer, and runs dequant_check, mmq_check and span_check against it:
#   sh tools/gpu/emu/emu_build.sh [quick|check|all]     (default quick)
#   sh tools/gpu/emu/emu_build.sh types [NAME,NAME...]  span_check's exact check of those
#                                        weight types only (all types without a list)
#   sh tools/gpu/emu/emu_build.sh lib    only the library, without the sanitizers and
#                                        unoptimised (quickest to build): the one the
#                                        pytests load into Python (tests/conftest.py)
# The .cu files are compiled as they are, except that each kernel<<<g, b, smem, st>>>(...)
# is rewritten to emu_launch(g, b, smem, st, kernel, ...), into $E/src. Into
# $EMU_DIR (default build/cuda-emu/).
set -e
cd "$(dirname "$0")/../../.."
E=${EMU_DIR:-build/cuda-emu}
WHAT=${1:-quick}
rm -rf $E/src
mkdir -p $E/src
python3 - "$E/src" <<'EOF'
import glob, os, re, sys
out = sys.argv[1]
launch = re.compile(r'([A-Za-z_][A-Za-z_0-9]*(?:<[^<>;()]*>)?)<<<(.*?)>>>\(')
for f in glob.glob('csrc/cuda/*.cu') + glob.glob('csrc/cuda/*.cuh') + glob.glob('csrc/cuda/*.h'):
    src = open(f).read()
    dst = launch.sub(lambda m: 'emu_launch(%s, %s, ' % (m.group(2), m.group(1)), src)
    open(os.path.join(out, os.path.basename(f)), 'w').write(dst)
EOF
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
OPT="-O1 -g $SAN"
[ "$WHAT" = lib ] && OPT=-O0
g++ -std=c++17 $OPT -ffp-contract=off -fPIC -shared -Wno-unknown-pragmas \
    -Itools/gpu/emu/include -Icsrc -o $E/libllmlite_cuda.so -x c++ $E/src/*.cu tools/gpu/emu/emu.cpp
[ "$WHAT" = lib ] && exit 0
rm -rf $E/cpu            # no object of a source since removed
mkdir -p $E/cpu
# -O3 as the extension (llmlite/_build.py): some AVX-512 intrinsics take an immediate only
# a fully unrolled loop gives
for f in csrc/*.c; do
    gcc -O3 -std=gnu11 -ffp-contract=off -pthread -Icsrc -c "$f" -o $E/cpu/"$(basename "$f" .c)".o
done
gcc -O1 -g $SAN -std=gnu11 -Icsrc -o $E/span_check tools/gpu/span_check.c $E/cpu/*.o -ldl -lm -pthread
gcc -O1 -g $SAN -Icsrc -o $E/probe tools/gpu/probe_main.c -ldl
g++ -std=c++17 -O1 -g $SAN -ffp-contract=off -Wno-unknown-pragmas -Itools/gpu/emu/include -Icsrc -Icsrc/cuda \
    -o $E/dequant_check -x c++ tools/gpu/dequant_check.cu -x none $E/cpu/*.o -ldl -lm -pthread
g++ -std=c++17 -O1 -g $SAN -ffp-contract=off -Wno-unknown-pragmas -Itools/gpu/emu/include -Icsrc -I$E/src \
    -o $E/mmq_check -x c++ tools/gpu/mmq_check.cu $E/src/*.cu tools/gpu/emu/emu.cpp -x none $E/cpu/*.o -ldl -lm -pthread
export ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0
echo "== dequant_check (the decoders on the host, under the sanitizers: a misaligned load fails)"
$E/dequant_check > $E/dequant_check.log || { grep -v ": ok" $E/dequant_check.log; exit 1; }
tail -1 $E/dequant_check.log
echo "== mmq_check (the integer matmul kernels, emulated)"
$E/mmq_check > $E/mmq_check.log || { cat $E/mmq_check.log; exit 1; }
tail -1 $E/mmq_check.log
echo "== probe (emulated device, then none)"
$E/probe $E/libllmlite_cuda.so
EMU_NO_DEVICE=1 $E/probe $E/libllmlite_cuda.so
echo "== span_check $WHAT (emulated)"
EMU_STATS=1 $E/span_check $E/libllmlite_cuda.so "$WHAT" ${2:+"$2"}
