/* The CPU stand-in for the CUDA runtime declared in include/cuda_runtime.h.
 *
 * Kernels: a grid runs block after block on the calling thread, in a shuffled order
 * (EMU_BLOCK_ORDER=linear: in index order). The threads of a
 * block are fibers (own stacks, a 14-instruction x86-64 context switch below), run
 * in turn until each reaches a barrier: __syncthreads releases when every live
 * thread of the block waits there (exited threads count as arrived, as on the
 * hardware); a shuffle is two warp barriers around a per-warp exchange buffer and
 * releases when the warp's 32 lanes wait there. A block where no thread can go on
 * (a divergent barrier) or a shuffle with exited lanes aborts with a message.
 *
 * Memory: cudaMalloc / cudaHostAlloc fill new memory with 0xff bytes (NaN as float
 * and as F16), so reading scratch that was never written shows up in the results.
 * EMU_ALLOC_LIMIT=N: device allocations past N bytes in all fail (cudaFree gives back).
 *
 * Faults: EMU_FAIL_LAUNCH=k makes the k-th grid launched (from 1) fault as an illegal
 * address does on a GPU: it does not run, and from then on every call returns the
 * error (a sticky error: the context is lost). With EMU_FAIL_KIND=soft it fails as a
 * bad launch configuration does instead: that launch only, reported once.
 *
 * Trace: EMU_TRACE=file appends, while it is set (read at each call, so a caller can
 * trace one decode step), a line per device allocation ("alloc ID BYTES"), per copy into
 * one ("copy ID OFFSET BYTES") and per grid run ("launch NAME grid X,Y,Z block X,Y,Z smem
 * N ptrs ID+OFFSET,..."): the kernel's demangled name, and every 8-byte word of its
 * arguments (structs of pointers included) that points into a device allocation. */
#include <cxxabi.h>
#include <dlfcn.h>
#include <map>
#include <sanitizer/common_interface_defs.h>
#include <utility>
#include <vector>
#include "cuda_runtime.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

/* ---- fibers ---- */

extern "C" void emu_switch(void **save_sp, void *new_sp);
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_START(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define ASAN_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define ASAN_START(save, bottom, size) ((void)0)
#define ASAN_FINISH(save, bottom, size) ((void)0)
#endif

enum { RUN, WAIT_BLOCK, WAIT_WARP, DONE };
struct fiber { void *sp; char *stack; int state; uint3 idx; };
static const size_t STACK = 256 << 10;
static std::vector<fiber> fib;
static void *sched_sp;
static int cur;
static const std::function<void()> *body;
static const void *sched_bottom;
static size_t sched_size;
static unsigned char xbuf[32][32][8];     /* [warp][lane]: a shuffle's values */
static long long n_blocks, n_switches;

static void to_scheduler(int state) {
    fib[cur].state = state;
    void *fake = nullptr;
    ASAN_START(state == DONE ? nullptr : &fake, sched_bottom, sched_size);
    emu_switch(&fib[cur].sp, sched_sp);
    ASAN_FINISH(fake, &sched_bottom, &sched_size);
}

static void fiber_entry() {
    ASAN_FINISH(nullptr, &sched_bottom, &sched_size);
    (*body)();
    to_scheduler(DONE);
    abort();                                  /* never resumed */
}

void emu_syncthreads(void) { to_scheduler(WAIT_BLOCK); }

void emu_warp_exchange(const void *v, void *out, int size, int src_lane) {
    const int w = cur / 32, l = cur % 32;
    memcpy(xbuf[w][l], v, (size_t)size);
    to_scheduler(WAIT_WARP);
    memcpy(out, xbuf[w][src_lane], (size_t)size);
    to_scheduler(WAIT_WARP);
}

static void fail(const char *what) {
    fprintf(stderr, "emu: %s (block %u,%u,%u of %u,%u,%u; %u threads)\n", what, blockIdx.x, blockIdx.y, blockIdx.z,
            gridDim.x, gridDim.y, gridDim.z, blockDim.x * blockDim.y * blockDim.z);
    abort();
}

static void run_block(int n) {
    for (int t = 0; t < n; t++) {
        fiber &f = fib[t];
        if (!f.stack) f.stack = (char *)aligned_alloc(64, STACK);
        void **sp = (void **)(((uintptr_t)(f.stack + STACK)) & ~(uintptr_t)15) - 8;
        for (int i = 0; i < 8; i++) sp[i] = nullptr;    /* r15..rbp, return address, padding */
        sp[6] = (void *)&fiber_entry;
        f.sp = sp;
        f.state = RUN;
        f.idx.x = t % blockDim.x;
        f.idx.y = t / blockDim.x % blockDim.y;
        f.idx.z = t / (blockDim.x * blockDim.y);
    }
    for (;;) {
        for (int t = 0; t < n; t++) {
            if (fib[t].state != RUN) continue;
            cur = t;
            threadIdx = fib[t].idx;
            void *fake = nullptr;
            ASAN_START(&fake, fib[t].stack, STACK);
            emu_switch(&sched_sp, fib[t].sp);
            ASAN_FINISH(fake, nullptr, nullptr);
            n_switches++;
        }
        int live = 0, at_block = 0;
        for (int t = 0; t < n; t++) {
            live += fib[t].state != DONE;
            at_block += fib[t].state == WAIT_BLOCK;
        }
        if (!live) break;
        bool released = false;
        if (at_block == live) {
            for (int t = 0; t < n; t++) if (fib[t].state == WAIT_BLOCK) fib[t].state = RUN;
            released = true;
        } else {
            for (int w = 0; w * 32 < n; w++) {
                int wl = 0, ww = 0, done = 0;
                for (int t = w * 32; t < n && t < w * 32 + 32; t++) {
                    wl += fib[t].state != DONE;
                    ww += fib[t].state == WAIT_WARP;
                    done += fib[t].state == DONE;
                }
                if (ww && ww == wl) {
                    if (done) fail("shuffle in a warp with exited lanes");
                    for (int t = w * 32; t < n && t < w * 32 + 32; t++) fib[t].state = RUN;
                    released = true;
                }
            }
        }
        if (!released) fail("deadlock: a barrier or shuffle that not every thread reaches");
    }
    n_blocks++;
}

static cudaError_t last_err = cudaSuccess;
static cudaError_t sticky_err = cudaSuccess;   /* once set, every call returns it */
#define STICKY do { if (sticky_err != cudaSuccess) return sticky_err; } while (0)

void emu_run_grid(dim3 g, dim3 b, const std::function<void()> &k) {
    static long long launches;
    static const long long fail_at = getenv("EMU_FAIL_LAUNCH") ? atoll(getenv("EMU_FAIL_LAUNCH")) : 0;
    if (sticky_err != cudaSuccess) return;
    if (++launches == fail_at) {
        static const bool soft = getenv("EMU_FAIL_KIND") && !strcmp(getenv("EMU_FAIL_KIND"), "soft");
        if (!soft) sticky_err = cudaErrorIllegalAddress;
        last_err = soft ? cudaErrorInvalidValue : cudaErrorIllegalAddress;
        return;
    }
    const unsigned nt = b.x * b.y * b.z;
    if (nt == 0 || nt > 1024 || g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535) {
        fprintf(stderr, "emu: bad launch configuration grid (%u,%u,%u) block (%u,%u,%u)\n", g.x, g.y, g.z, b.x, b.y, b.z);
        last_err = cudaErrorInvalidValue;
        return;
    }
    if (nt % 32) fail("block size not a multiple of 32");
    if (fib.size() < nt) fib.resize(nt, fiber{nullptr, nullptr, DONE, {0, 0, 0}});
    gridDim = g;
    blockDim = b;
    body = &k;
    /* the blocks in a shuffled order, new for every launch (EMU_BLOCK_ORDER=linear: in
     * index order): a GPU promises no order, so no kernel may depend on one (e.g. which
     * block of a "last block done" counter comes last) */
    static const bool linear = getenv("EMU_BLOCK_ORDER") && !strcmp(getenv("EMU_BLOCK_ORDER"), "linear");
    static uint64_t rs = 0x2545F4914F6CDD1Dull;
    const size_t nb = (size_t)g.x * g.y * g.z;
    static std::vector<uint32_t> order;
    order.resize(nb);
    for (size_t i = 0; i < nb; i++) order[i] = (uint32_t)i;
    for (size_t i = nb; !linear && i > 1; i--) {         /* Fisher-Yates, xorshift64 */
        rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
        std::swap(order[i - 1], order[rs % i]);
    }
    for (size_t i = 0; i < nb; i++) {
        const uint32_t o = order[i];
        blockIdx.x = o % g.x; blockIdx.y = o / g.x % g.y; blockIdx.z = o / g.x / g.y;
        run_block((int)nt);
    }
}

/* ---- runtime ---- */

struct emu_graph { std::vector<std::function<void()>> ops; };
struct emu_stream { bool capturing; emu_graph *g; };

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    default: return "unknown error";
    }
}
const char *cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated"; }
cudaError_t cudaGetLastError(void) {
    STICKY;
    const cudaError_t e = last_err;
    last_err = cudaSuccess;
    return e;
}

static bool no_device() { const char *s = getenv("EMU_NO_DEVICE"); return s && s[0] == '1'; }
cudaError_t cudaSetDevice(int d) { return no_device() ? cudaErrorInsufficientDriver : d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaDriverGetVersion(int *v) { *v = no_device() ? 0 : 13000; return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 0;
    if (no_device()) return cudaErrorInsufficientDriver;
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
    snprintf(p->name, sizeof p->name, "CPU emulation");
    p->major = 9; p->minor = 0;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) { STICKY; *f = 8ull << 30; *t = 16ull << 30; return cudaSuccess; }

/* ---- the trace (EMU_TRACE) ---- */

static std::map<uintptr_t, std::pair<size_t, long long>> traced;   /* base -> (bytes, id) of each allocation */
static long long n_allocs;

bool emu_tracing(void) { return getenv("EMU_TRACE") != nullptr; }

static FILE *trace_file() {
    const char *path = getenv("EMU_TRACE");
    return path ? fopen(path, "a") : nullptr;
}

/* the allocation p points into: its id and p's offset (false: none) */
static bool in_alloc(uintptr_t p, long long *id, size_t *off) {
    auto it = traced.upper_bound(p);
    if (it == traced.begin()) return false;
    --it;
    if (p >= it->first + it->second.first) return false;
    *id = it->second.second;
    *off = p - it->first;
    return true;
}

void emu_trace_launch(const void *k, dim3 g, dim3 b, size_t smem, const void *const *args, const size_t *sizes, int n) {
    FILE *f = trace_file();
    if (!f) return;
    Dl_info di;
    const char *sym = dladdr(k, &di) && di.dli_sname ? di.dli_sname : "?";
    int st = 0;
    char *dem = abi::__cxa_demangle(sym, nullptr, nullptr, &st);
    fprintf(f, "launch %s\tgrid %u,%u,%u\tblock %u,%u,%u\tsmem %zu\tptrs", st == 0 && dem ? dem : sym, g.x, g.y, g.z,
            b.x, b.y, b.z, smem);
    free(dem);
    char sep = ' ';
    for (int i = 0; i < n; i++)
        for (size_t w = 0; w + 8 <= sizes[i]; w += 8) {
            uintptr_t v;
            memcpy(&v, (const char *)args[i] + w, 8);
            long long id;
            size_t off;
            if (in_alloc(v, &id, &off)) { fprintf(f, "%c%lld+%zu", sep, id, off); sep = ','; }
        }
    fputc('\n', f);
    fclose(f);
}

static void trace_copy(const void *dst, size_t n) {
    long long id;
    size_t off;
    if (!in_alloc((uintptr_t)dst, &id, &off)) return;
    if (FILE *f = trace_file()) { fprintf(f, "copy %lld %zu %zu\n", id, off, n); fclose(f); }
}

static size_t alloc_limit() { const char *s = getenv("EMU_ALLOC_LIMIT"); return s ? strtoull(s, nullptr, 10) : 0; }
static size_t allocated;
static std::map<void *, size_t> alloc_sizes;
cudaError_t cudaMalloc(void **p, size_t n) {
    *p = nullptr;
    STICKY;
    const size_t lim = alloc_limit();
    if (lim && allocated + n > lim) return cudaErrorMemoryAllocation;
    *p = aligned_alloc(256, (n + 255) / 256 * 256);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, 0xff, n);
    allocated += n;
    alloc_sizes[*p] = n;
    traced[(uintptr_t)*p] = {n, ++n_allocs};
    if (FILE *f = trace_file()) { fprintf(f, "alloc %lld %zu\n", n_allocs, n); fclose(f); }
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = alloc_sizes.find(p);
    if (it == alloc_sizes.end()) fail("cudaFree of a pointer that cudaMalloc did not return");
    allocated -= it->second;
    alloc_sizes.erase(it);
    traced.erase((uintptr_t)p);
    free(p);
    return sticky_err;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned) {
    *p = aligned_alloc(64, (n + 63) / 64 * 64);
    if (*p) memset(*p, 0xff, n);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = new emu_stream{false, nullptr}; return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t s) { delete s; return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    STICKY;
    return s && s->capturing ? cudaErrorStreamCaptureInvalidated : cudaSuccess;
}

void emu_enqueue(cudaStream_t s, std::function<void()> op) {
    if (s && s->capturing) s->g->ops.push_back(std::move(op));
    else op();
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind, cudaStream_t s) {
    STICKY;
    trace_copy(dst, n);
    emu_enqueue(s, [=]() { memcpy(dst, src, n); });
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind) {
    trace_copy(dst, n);
    memcpy(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s) {
    STICKY;
    emu_enqueue(s, [=]() { memset(p, v, n); });
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t n) { memset(p, v, n); return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    if (!s || s->capturing) return cudaErrorInvalidValue;
    s->capturing = true;
    s->g = new emu_graph;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    if (!s || !s->capturing) return cudaErrorInvalidValue;
    s->capturing = false;
    *g = s->g;
    s->g = nullptr;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) { *e = new emu_graph(*g); return cudaSuccess; }
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
    STICKY;
    if (s && s->capturing) return cudaErrorInvalidValue;
    for (auto &op : e->ops) op();
    const cudaError_t err = last_err;        /* a node that failed (EMU_FAIL_KIND=soft) fails the launch */
    last_err = cudaSuccess;
    return err;
}

/* statistics at exit: blocks run and fiber switches */
static struct emu_report {
    ~emu_report() {
        if (getenv("EMU_STATS")) fprintf(stderr, "emu: %lld blocks, %lld fiber switches\n", n_blocks, n_switches);
    }
} emu_report_at_exit;
