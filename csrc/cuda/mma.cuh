/* Integer tensor-core products of the integer matmul kernels (mmq.cu): one warp's
 * mma.sync.aligned.m16n8k{32,16}.row.col.s32.s8.s8.s32, C = A B with A 16 x K int8
 * (row-major), B K x 8 int8 (column-major), C 16 x 8 int32, zero-initialised.
 * Fragments (PTX ISA, "Matrix fragments for mma.m16n8k32/k16" with .s8), lane =
 * 4 g + t (g = groupID 0..7, t = thread in group 0..3), each register 4 int8 in
 * increasing k:
 *   k32  A a[0]: row g,   k 4t..4t+3    a[1]: row g+8, k 4t..    a[2]: row g, k 16+4t..
 *        a[3]: row g+8, k 16+4t..       B b[0]: k 4t.., column g  b[1]: k 16+4t.., column g
 *   k16  A a[0]: row g, k 4t..          a[1]: row g+8, k 4t..     B b[0]: k 4t.., column g
 *   C    c[0], c[1]: row g, columns 2t, 2t+1;  c[2], c[3]: row g+8, the same columns.
 * The sums are exact integers, so the hardware's order of additions inside an mma
 * cannot show in the results. The emulator (LLMCUDA_EMU, tools/gpu/emu) and
 * architectures before sm_80 get a portable body: warp shuffles gather each lane's
 * row of A and columns of B, and the products are summed in plain int arithmetic. */
#ifndef LLMCUDA_MMA_CUH
#define LLMCUDA_MMA_CUH
#include "common.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && !defined(LLMCUDA_EMU)
#define LLMCUDA_MMA_PTX 1
#endif

#ifdef __CUDACC__
/* the dot product of the 4 signed bytes of a and b */
__device__ __forceinline__ int dot4_s8(uint32_t a, uint32_t b) {
    int s = 0;
UNROLL
    for (int i = 0; i < 4; i++) s += (int)(int8_t)(uint8_t)(a >> (8 * i)) * (int)(int8_t)(uint8_t)(b >> (8 * i));
    return s;
}

#ifndef LLMCUDA_MMA_PTX
__device__ __forceinline__ unsigned long long pack2(uint32_t lo, uint32_t hi) {
    return (unsigned long long)lo | ((unsigned long long)hi << 32);
}
#define LO32(v) ((uint32_t)(v))
#define HI32(v) ((uint32_t)((v) >> 32))
#endif

__device__ __forceinline__ void mma_s8_k32(const uint32_t a[4], const uint32_t b[2], int c[4]) {
#ifdef LLMCUDA_MMA_PTX
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%10, %10, %10, %10};"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(0));
#else
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const unsigned long long a01 = pack2(a[0], a[1]), a23 = pack2(a[2], a[3]), bb = pack2(b[0], b[1]);
    int s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int s = 0; s < 4; s++) {                  /* lane 4g+s holds k 4s.. and 16+4s.. of row g / column g */
        const unsigned long long A01 = __shfl_sync(FULL_MASK, a01, 4 * g + s), A23 = __shfl_sync(FULL_MASK, a23, 4 * g + s);
        const unsigned long long B0 = __shfl_sync(FULL_MASK, bb, 8 * t + s), B1 = __shfl_sync(FULL_MASK, bb, 8 * t + 4 + s);
        s0 += dot4_s8(LO32(A01), LO32(B0)) + dot4_s8(LO32(A23), HI32(B0));
        s1 += dot4_s8(LO32(A01), LO32(B1)) + dot4_s8(LO32(A23), HI32(B1));
        s2 += dot4_s8(HI32(A01), LO32(B0)) + dot4_s8(HI32(A23), HI32(B0));
        s3 += dot4_s8(HI32(A01), LO32(B1)) + dot4_s8(HI32(A23), HI32(B1));
    }
    c[0] = s0; c[1] = s1; c[2] = s2; c[3] = s3;
#endif
}

__device__ __forceinline__ void mma_s8_k16(const uint32_t a[2], uint32_t b, int c[4]) {
#ifdef LLMCUDA_MMA_PTX
    asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
                 "{%7, %7, %7, %7};"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b), "r"(0));
#else
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const unsigned long long a01 = pack2(a[0], a[1]);
    int s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int s = 0; s < 4; s++) {
        const unsigned long long A = __shfl_sync(FULL_MASK, a01, 4 * g + s);
        const uint32_t B0 = __shfl_sync(FULL_MASK, b, 8 * t + s), B1 = __shfl_sync(FULL_MASK, b, 8 * t + 4 + s);
        s0 += dot4_s8(LO32(A), B0);
        s1 += dot4_s8(LO32(A), B1);
        s2 += dot4_s8(HI32(A), B0);
        s3 += dot4_s8(HI32(A), B1);
    }
    c[0] = s0; c[1] = s1; c[2] = s2; c[3] = s3;
#endif
}
#endif

#endif
