#!/bin/bash
# One call of the GPU check on the device machine (csrc/cuda/README.md, "On a GPU").
# Every call runs this same script; what differs is the slice of the model stream it
# carried (.gpu/cK, made by pack.py). It takes the new slice, then runs in order each
# job whose inputs are there and that has not run yet on this machine (state in
# $LLK_WORK, /root/llk: kept while the machine stays warm). Optional jobs start only
# while the call is under $LLK_BUDGET seconds (default 240). Logs go to $OUT.
#   bash tools/gpu/device/step.sh
set -u
cd "$(dirname "$0")/../../.."
W=${LLK_WORK:-/root/llk}
OUT=${OUT:-$W/out}
BUDGET=${LLK_BUDGET:-240}       # optional jobs start only before this many seconds into the call
LIMIT=${LLK_CALL_LIMIT:-400}    # no job runs past this (the call's timeout_s is 420)
T0=$(date +%s)
mkdir -p "$W/done" "$W/logs" "$OUT"
N=$(( $(cat "$W/calls" 2>/dev/null || echo 0) + 1 ))
echo "$N" > "$W/calls"
LOG="$OUT/call$N.log"
export PYTHONPATH="$W/site:$PWD" PYTHONUNBUFFERED=1 LLMLITE_CACHE="$W/cache"
export LLMLITE_CUDA_LIB="$PWD/build/cuda/libllmlite_cuda.so" PATH="$PATH:/usr/local/cuda/bin"
el() { echo $(( $(date +%s) - T0 )); }

# job NAME TIMEOUT [optional] -- COMMAND...: once per machine, its exit code kept. It
# starts only with a minute left before LIMIT, and is cut at LIMIT; a job that timed out
# is tried once more in a later call.
job() {
    local name=$1 to=$2 opt=0
    shift 2
    [ "$1" = optional ] && { opt=1; shift; }
    [ "$1" = -- ] && shift
    [ -e "$W/done/$name" ] && return 0
    local left=$(( LIMIT - $(el) ))
    if [ $opt = 1 ] && [ "$(el)" -gt "$BUDGET" ]; then echo "== $name: left for the next call"; return 0; fi
    if [ "$left" -lt 60 ]; then echo "== $name: left for the next call ($left s left of this one)"; return 0; fi
    [ "$to" -gt "$left" ] && to=$left
    echo "== $name ($(el) s into the call, at most $to s)"
    timeout --kill-after=10 "$to" bash -c '"$@"' job "$@"     # the functions below are exported
    local rc=$?
    if { [ $rc = 124 ] || [ $rc = 137 ]; } && [ ! -e "$W/done/$name.timedout" ]; then
        touch "$W/done/$name.timedout"
        echo "== $name: cut after $to s: tried again in the next call"
        return 0
    fi
    echo "$rc" > "$W/done/$name"
    echo "== $name: exit $rc ($(el) s into the call)"
}

setup() {
    [ -d .gpu/c1/prebuilt ] || { echo "no .gpu/c1: carry it in the first call"; return 1; }
    nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.max.sm --format=csv,noheader
    nproc; python3 --version
    python3 -c "import cffi" 2>/dev/null ||
        python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$W/site" .gpu/c1/whl/*.whl ||
        return 1
    cp -a .gpu/c1/prebuilt/. .                 # the extension and build/cuda, made on the CI-like machine
    if ! python3 -c "import llmlite._llmlite" 2>/dev/null; then
        echo "prebuilt extension does not load here: building it"
        python3 -c "import sys; sys.path.insert(0, 'llmlite'); from _build import ffibuilder; ffibuilder.compile(tmpdir='.')" >/dev/null || return 1
    fi
    python3 -c "import llmlite, llmlite._lib as L; print('llmlite', llmlite.__file__, L.isa())" || return 1
    python3 -c "from llmlite import offload as o; print('cuda backend:', o.load_cuda(), 'free', o.vram_free())"
}

models() { python3 tools/gpu/device/stream.py "$W"; }
ready() { [ -f "$W/models/$1" ]; }
model_file() { python3 -c "import json; print(next(m['file'] for m in json.load(open('.gpu/c1/MANIFEST.json'))['models'] if m['name'] == '$1'))"; }

real_check() { python3 tools/gpu/real_check.py "$W/models/$1" --corpus .gpu/c1/wikitext2_test.txt --chunks 8; }
cliff() {    # tg128/pp512 at 0-100% of the layers, device memory against the plan
    llamacpp_wait 180
    python3 -m llmlite bench "$W/models/$1" -ngl 0,25%,50%,75%,100% -r 3 --json > "$W/bench-$2.json" || return 1
    cp "$W/bench-$2.json" "$OUT/"
    python3 tools/gpu/device/cliff_table.py "$W/bench-$2.json"
}
sanitize() { # memcheck over a short real run: prefill, decode, every layer on the GPU, then half
    set -o pipefail
    local half
    half=$(python3 -c "from llmlite.gguf import open_gguf; from llmlite.config import ModelConfig; \
print(ModelConfig.of(open_gguf('$W/models/$1')).n_layer // 2)") || return 1
    for n in all "$half"; do
        echo "-- -ngl $n"
        compute-sanitizer --tool memcheck --leak-check no --error-exitcode 3 \
            python3 -m llmlite run "$W/models/$1" -p "The capital of France is" -n 16 --temp 0 -ngl "$n" -c 256 \
            2>&1 | grep -E "offload plan|ERROR SUMMARY|=========|Paris|error" | tail -12 || return $?
    done
}
variants() { # full-offload tg128 without the decode graph, without the fused launches, with ACTQ
    echo "-- LLMLITE_CUDA_GRAPH=0"; LLMLITE_CUDA_GRAPH=0 python3 -m llmlite bench "$W/models/$1" -ngl all -p 0 -n 128 -r 3
    echo "-- LLMLITE_CUDA_FUSE=0"; LLMLITE_CUDA_FUSE=0 python3 -m llmlite bench "$W/models/$1" -ngl all -p 0 -n 128 -r 3
    echo "-- LLMLITE_CUDA_ACTQ=1"; LLMLITE_CUDA_ACTQ=1 python3 -m llmlite bench "$W/models/$1" -ngl all -p 0 -n 128 -r 3
}

speed() {    # the plan's constants timed on this GPU, cached in $LLMLITE_CACHE for the cliff's plans
    python3 -c "from llmlite.device_costs import device_speed; print(device_speed('cuda').describe())" |
        tee "$W/speed.txt"
}
cmake_bin() {   # the machine's cmake, else the one of the wheel in the stream (installed once); none: 1
    command -v cmake && return 0
    [ -x "$W/cmake/cmake/data/bin/cmake" ] || {
        local whl
        whl=$(model_file cmake-wheel 2>/dev/null) && [ -f "$W/models/$whl" ] &&
            python3 -m pip install -q --no-index --no-deps --target "$W/cmake" "$W/models/$whl" >/dev/null 2>&1
    } || return 1
    echo "$W/cmake/cmake/data/bin/cmake"
}
llamacpp_build() {   # llama.cpp's CUDA build (tools/gpu/device/llamacpp.py): llama-bench only, sm_90
    local d=$W/llamacpp cm=$1
    [ -d "$d/llama.cpp" ] || { mkdir -p "$d" && tar xJf .gpu/c1/llamacpp.tar.xz -C "$d"; } || return 1
    # shellcheck disable=SC2046
    "$cm" -S "$d/llama.cpp" -B "$d/build" $(python3 tools/gpu/device/llamacpp.py cmake-args) > "$d/configure.log" 2>&1 ||
        { tail -20 "$d/configure.log"; return 1; }
    "$cm" --build "$d/build" --target llama-bench -j "$(nproc)" 2>&1 | tail -3
    [ -x "$d/build/bin/llama-bench" ]
}
# The llama.cpp build (~5 minutes on 16 cores) runs in the background from the first call
# that has its sources (c1) and a cmake, beside the GPU jobs: CPU work that would take a
# call of its own. Its own session (setsid), so a call's end does not stop it; a build
# found neither running nor done is started again (cmake resumes what it had built),
# twice at most.
llamacpp_start() {
    [ -f .gpu/c1/llamacpp.tar.xz ] || return 0
    [ -x "$W/llamacpp/build/bin/llama-bench" ] && return 0
    local pid cm
    pid=$(cat "$W/llamacpp.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null && return 0
    [ "$(grep -c '^exit [1-9]' "$W/llamacpp-build.log" 2>/dev/null)" -ge 2 ] && return 0   # failed twice: its log says why
    if ! cm=$(cmake_bin); then echo "== llama.cpp: no cmake here yet (its wheel comes after SmolLM2)"; return 0; fi
    echo "== llama.cpp build started in the background ($W/llamacpp-build.log)"
    setsid nohup nice -n 10 bash -c 'llamacpp_build "$1"; echo "exit $?"' _ "$cm" >> "$W/llamacpp-build.log" 2>&1 &
    echo $! > "$W/llamacpp.pid"
}
llamacpp_wait() {   # before a CPU timing: let the background build finish (at most $1 s)
    local pid t=0
    pid=$(cat "$W/llamacpp.pid" 2>/dev/null) || return 0
    while kill -0 "$pid" 2>/dev/null && [ $t -lt "$1" ]; do sleep 5; t=$((t + 5)); done
    kill -0 "$pid" 2>/dev/null && echo "note: the llama.cpp build is still running: the CPU timings share the machine"
    return 0
}
llamacpp_bench() {   # llama-bench -ngl 99 -p 512 -n 128, then the table against our cliff's 100% row
    "$W/llamacpp/build/bin/llama-bench" -m "$W/models/$1" -ngl 99 -p 512 -n 128 -o json > "$W/llamacpp-$2.json" ||
        return 1
    cp "$W/llamacpp-$2.json" "$OUT/"
    [ -f "$W/bench-$2.json" ] && python3 tools/gpu/device/llamacpp.py table "$W/llamacpp-$2.json" "$W/bench-$2.json"
    return 0
}
lookup() {   # prompt lookup's decode speed-up with every layer on the GPU (the same tokens, checked)
    python3 benchmarks/lookup_bench.py "$W/models/$1" -ngl all -n 128 --workloads .gpu/c1/lookup-workloads.jsonl |
        tee "$W/lookup-$2.txt"
}
span_bench() {   # span_check's timed shapes (SmolLM2's, the llama-1B one): prefill and decode ms/token
    set -o pipefail
    build/cuda/span_check build/cuda/libllmlite_cuda.so bench | tee "$W/span_bench.txt"
}
races() {        # compute-sanitizer racecheck and synccheck on span_check quick
    set -o pipefail
    env GPU_CHECK_BUILD=0 sh tools/gpu/gpu_check.sh races | tee "$W/races.txt"
}

export W OUT
export -f setup real_check cliff sanitize variants speed llamacpp_build llamacpp_bench llamacpp_wait lookup model_file \
    span_bench races
main() {
echo "== call $N, $(date -u +%FT%TZ), $(hostname); slices here: $(ls -d .gpu/c* 2>/dev/null | tr '\n' ' ')"
if [ ! -d .gpu/c1 ]; then
    echo "COLD MACHINE: .gpu/c1 is not here, so the machine of the earlier calls is gone (given back"
    echo "after 30 s idle) with everything they left. Start again from call 1 (carry .gpu/c1)."
    return 2
fi
job setup 120 -- setup
[ -e "$W/done/setup" ] && [ "$(cat "$W/done/setup")" = 0 ] || { echo "setup failed: stopping"; rm -f "$W/done/setup"; return 1; }
models
llamacpp_start
job speed 60 -- speed
job gpu_check 380 -- env GPU_CHECK_BUILD=0 sh tools/gpu/gpu_check.sh check
for name in smollm2-135m gemma3-270m; do
    f=$(model_file $name) || continue
    ready "$f" || continue
    job "real-$name" 300 -- real_check "$f"
    job "cliff-$name" 300 -- cliff "$f" "$name"
    job "sanitize-$name" 300 optional -- sanitize "$f" "$name"
    job "variants-$name" 180 optional -- variants "$f"
    llamacpp_start
    [ -x "$W/llamacpp/build/bin/llama-bench" ] && job "llamacpp-$name" 150 optional -- llamacpp_bench "$f" "$name"
    job "lookup-$name" 180 optional -- lookup "$f" "$name"
done
job span_bench 120 optional -- span_bench
job races 300 optional -- races

echo "== summary after call $N ($(el) s)"
for f in "$W"/done/*; do case $f in *.timedout) ;; *) echo "  $(basename "$f"): exit $(cat "$f")" ;; esac; done
[ -f "$W/speed.txt" ] && echo "  the plan's constants: $(cat "$W/speed.txt")"
for f in "$W"/bench-*.json; do [ -f "$f" ] && python3 tools/gpu/device/cliff_table.py "$f"; done
[ -f "$W/llamacpp-build.log" ] && echo "  llama.cpp build: $(if [ -x "$W/llamacpp/build/bin/llama-bench" ]; then
    echo built; else tail -1 "$W/llamacpp-build.log"; fi)"
for f in "$W"/llamacpp-*.json; do
    n=${f##*/llamacpp-}; n=${n%.json}
    [ -f "$W/bench-$n.json" ] && python3 tools/gpu/device/llamacpp.py table "$f" "$W/bench-$n.json"
done
for f in "$W"/lookup-*.txt; do [ -f "$f" ] && grep -h "overall" "$f"; done
[ -f "$W/span_bench.txt" ] && grep -hE "shape: [0-9]+ layers|prefill 512|decode at pos" "$W/span_bench.txt"
[ -f "$W/races.txt" ] && grep -hE "ERROR SUMMARY|compute-sanitizer .*: exit" "$W/races.txt"
}

main 2>&1 | tee "$LOG"          # the pipeline ends when tee has written everything
rc=${PIPESTATUS[0]}
cp "$LOG" "$W/logs/"
exit "$rc"
