/* Shared by the CUDA backend's files: type ids, fp16 helpers, warp/block reductions.
 * Everything device-side computes in float32; the only F16 values are the KV cache
 * entries (rounded to nearest even, like the CPU's llm_f32_to_f16) and the query
 * rounded to F16 before the score dot (the CPU attention does the same). */
#ifndef LLMCUDA_COMMON_CUH
#define LLMCUDA_COMMON_CUH
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

/* ggml type ids (the same numbers as csrc/internal.h, which is C-only) */
enum {
    CT_F32 = 0, CT_F16 = 1, CT_Q4_0 = 2, CT_Q4_1 = 3, CT_Q5_0 = 6, CT_Q5_1 = 7, CT_Q8_0 = 8,
    CT_Q2_K = 10, CT_Q3_K = 11, CT_Q4_K = 12, CT_Q5_K = 13, CT_Q6_K = 14, CT_IQ2_XXS = 16,
    CT_IQ2_XS = 17, CT_IQ3_XXS = 18, CT_IQ1_S = 19, CT_IQ4_NL = 20, CT_IQ3_S = 21, CT_IQ2_S = 22,
    CT_IQ4_XS = 23, CT_IQ1_M = 29, CT_BF16 = 30, CT_TQ1_0 = 34, CT_TQ2_0 = 35, CT_MXFP4 = 39, CT_NVFP4 = 40
};

#define HD __host__ __device__ __forceinline__
/* #pragma unroll for the device pass only (the host compiler does not know it) */
#ifdef __CUDA_ARCH__
#define UNROLL _Pragma("unroll")
#else
#define UNROLL
#endif
#define FULL_MASK 0xffffffffu

/* fp16 bits -> float, exact (the device's cvt; on the host the same bit manipulation
 * as csrc/internal.h's llm_f16_to_f32, so host checks see the device's values) */
HD float h2f(uint16_t h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#else
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7fffu;
    uint32_t bits;
    if (em >= 0x7c00u) bits = (em << 13) | 0x7f800000u;            /* inf / NaN */
    else if (em >= 0x0400u) bits = (em << 13) + (112u << 23);      /* normal */
    else {                                                         /* zero / subnormal */
        const float f = (float)em * 0x1p-24f;
        __builtin_memcpy(&bits, &f, 4);
    }
    bits |= sign;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
#endif
}

/* the float of these 32 bits */
HD float bits_f(uint32_t b) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(b);
#else
    float f;
    __builtin_memcpy(&f, &b, 4);
    return f;
#endif
}

HD float bf2f(uint16_t h) { return bits_f((uint32_t)h << 16); }

/* a*b and a+-b, each rounded once and never fused into an fma by nvcc: the decoders
 * compute d*q + m exactly as the CPU does (and identically in every kernel instance) */
HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

/* little-endian loads at the alignment a block layout guarantees */
HD uint32_t ld_u8(const uint8_t *p) { return *p; }
HD uint32_t ld_u16(const uint8_t *p) { return *(const uint16_t *)p; }                  /* 2-aligned */
HD uint32_t ld_u32_a2(const uint8_t *p) { return ld_u16(p) | (ld_u16(p + 2) << 16); }  /* 2-aligned */
HD uint32_t ld_u32(const uint8_t *p) { return *(const uint32_t *)p; }                  /* 4-aligned */

#ifdef __CUDACC__
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}
/* sum over the whole block (blockDim.x a multiple of 32, <= 1024); every thread gets
 * the total. sh: 32 doubles of shared memory, free again when this returns. */
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < nw ? sh[lane] : 0.0;
        v = warp_sum_d(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    v = sh[0];
    __syncthreads();
    return v;
}
/* "Last block done": each of the `arrivals` blocks that share *count calls this, every
 * thread of the block, after its global stores; true (for the whole block) in the block
 * that arrives last, which may then read the others' stores through L2 (__ldcg). That
 * block sets *count back to 0, ready for the next launch (graph replays included).
 * Ordering as cooperative groups' grid sync: every thread fences its own stores, the
 * barrier, then thread 0 fences (release, cumulative over the block) and counts; the
 * last one's thread 0 fences again (acquire) before the barrier that lets the block
 * read. No block ever waits for another: no co-residency needed. last: shared int. */
__device__ __forceinline__ bool last_block(unsigned *count, unsigned arrivals, int *last) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        const bool l = atomicAdd(count, 1u) == arrivals - 1;
        if (l) {
            atomicExch(count, 0u);
            __threadfence();
        }
        *last = l;
    }
    __syncthreads();
    return *last != 0;
}
/* float -> F16 -> float (round to nearest even), as the CPU rounds the query and KV */
__device__ __forceinline__ float round_f16(float x) { return __half2float(__float2half_rn(x)); }
#endif

#endif
