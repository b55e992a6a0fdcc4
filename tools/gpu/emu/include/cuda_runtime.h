/* CPU stand-in for the CUDA runtime, for testing csrc/cuda/*.cu without a GPU (see
 * ../emu_build.sh). Only what the backend uses. Kernels run on the calling thread,
 * one block at a time in a shuffled order, each CUDA thread a fiber (emu.cpp):
 * __syncthreads waits for the block, shuffles for the warp, a barrier that some
 * threads never reach is reported as a deadlock. Device memory is host memory (malloc), so AddressSanitizer
 * sees out-of-bounds reads; the vector types carry CUDA's alignments, so
 * UndefinedBehaviorSanitizer sees misaligned vector loads. Streams are synchronous;
 * stream capture records the launches and copies, and a graph launch replays them. */
#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <functional>

#define __CUDACC__ 1
#define __CUDA_ARCH__ 900
#define LLMCUDA_EMU 1   /* the backend's real-GPU-only code (inline PTX) takes its portable body */
#define CUDART_VERSION 13000
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __restrict__ __restrict

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
static inline float2 make_float2(float a, float b) { float2 r; r.x = a; r.y = b; return r; }

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
template <class T> static inline T __ldg(const T *p) { return *p; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }

/* __ldcg: a load through L2 only; here every load sees the latest store anyway */
template <class T> static inline T __ldcg(const T *p) { return *p; }

/* Atomics and fences. Fibers switch only at barriers and shuffles, so nothing can come
 * between the load and the store of one read-modify-write; they are still done with
 * the compiler's atomic builtins (sequentially consistent, the strongest order),
 * returning the old value as CUDA's do. Blocks run one after another (in a shuffled
 * order, see emu.cpp), so a missing __threadfence cannot show here. */
static inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline int atomicExch(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicExch(unsigned *p, unsigned v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline int atomicCAS(int *p, int cmp, int v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
static inline unsigned atomicCAS(unsigned *p, unsigned cmp, unsigned v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
static inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

void emu_syncthreads(void);
void emu_warp_exchange(const void *v, void *out, int size, int src_lane);
#define __syncthreads() emu_syncthreads()
template <class T> static inline T __shfl_sync(unsigned, T v, int src) {
    T r;
    emu_warp_exchange(&v, &r, (int)sizeof(T), src & 31);
    return r;
}
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int mask) {
    T r;
    emu_warp_exchange(&v, &r, (int)sizeof(T), (int)((threadIdx.x & 31) ^ (unsigned)mask));
    return r;
}

typedef enum cudaError {
    cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100, cudaErrorECCUncorrectable = 214, cudaErrorIllegalAddress = 700,
    cudaErrorLaunchTimeout = 702, cudaErrorAssert = 710, cudaErrorHardwareStackError = 714,
    cudaErrorIllegalInstruction = 715, cudaErrorMisalignedAddress = 716, cudaErrorInvalidAddressSpace = 717,
    cudaErrorInvalidPc = 718, cudaErrorLaunchFailure = 719, cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorUnknown = 999
} cudaError_t;
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);

typedef struct emu_stream *cudaStream_t;
typedef struct emu_graph *cudaGraph_t;
typedef struct emu_graph *cudaGraphExec_t;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
#define cudaStreamNonBlocking 1u
#define cudaHostAllocDefault 0u
struct cudaDeviceProp { char name[256]; int major, minor; };

cudaError_t cudaSetDevice(int d);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMemGetInfo(size_t *f, size_t *t);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned flags);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode m);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);

/* a launch: run now, or record it while s is capturing */
void emu_enqueue(cudaStream_t s, std::function<void()> op);
void emu_run_grid(dim3 g, dim3 b, const std::function<void()> &body);
/* EMU_TRACE=file (read at each launch): a line per grid run, the kernel's name and the
 * device memory its arguments point into (emu.cpp; tools/gpu/kernel_report.py reads it) */
bool emu_tracing(void);
void emu_trace_launch(const void *k, dim3 g, dim3 b, size_t smem, const void *const *args, const size_t *sizes, int n);
template <class... KA, class... A>
static inline void emu_launch(dim3 g, dim3 b, size_t smem, cudaStream_t s, void (*k)(KA...), A... a) {
    emu_enqueue(s, [=]() {
        if (emu_tracing()) {
            const void *const args[] = {&a..., nullptr};
            const size_t sizes[] = {sizeof(a)..., 0};
            emu_trace_launch((const void *)k, g, b, smem, args, sizes, (int)sizeof...(A));
        }
        emu_run_grid(g, b, [=]() { k(a...); });
    });
}

#endif
