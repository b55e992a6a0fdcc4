/* Matmul kernels: one warp per weight row, the row's quantized bytes read once and
 * decoded 8 weights at a time (quant_units.cuh), dotted in float32 with up to NC
 * activation columns at once, then reduced across the warp by shuffles.
 *
 *   decode (n == 1):  NC = 1, a matrix-vector product; 4 rows per 128-thread block.
 *   batch  (n > 1):   NC = 2, 4 or 8 columns per pass (grid.y = column groups of NC),
 *                     so each weight unit is decoded once for NC columns; more than 8
 *                     columns re-read the row per group of 8 (from L2 mostly).
 *
 * Summation order: lane l accumulates units l, l+32, ... (each unit's 8 products in
 * a fixed fma chain), then a butterfly over the 32 lanes. The order differs from the
 * CPU's (which also quantizes activations to Q8), so results agree to float
 * rounding, not bit for bit; every column's result is independent of ncols. */
#include "matmul.cuh"
#include "quant_units.cuh"

#define MM_WARPS 4

template <class T, int NC>
__global__ void __launch_bounds__(MM_WARPS * 32)
mm_kernel(const uint8_t *__restrict__ W, int rows, int nblk, const float *__restrict__ X, int k, int ncols,
          float *__restrict__ Y) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * MM_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;                   /* whole warps leave; no block barrier below */
    const int c0 = blockIdx.y * NC;
    const int nc = min(NC, ncols - c0);
    const uint8_t *wr = W + (size_t)row * nblk * T::BB;
    const float *xb = X + (size_t)c0 * k;
    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.0f;
    const int nunits = nblk * T::NU;
    for (unsigned t = lane; t < (unsigned)nunits; t += 32) {
        const int b = (int)(t / T::NU), u = (int)(t % T::NU);   /* NU is a power of two: shifts */
        float w[8];
        T::decode(wr + (size_t)b * T::BB, u, w);
        const int e0 = b * T::QK + T::run(u, 0), e1 = b * T::QK + T::run(u, 1);
#pragma unroll
        for (int c = 0; c < NC; c++) {
            if (c < nc) {
                const float4 a = __ldg((const float4 *)(xb + (size_t)c * k + e0));
                const float4 z = __ldg((const float4 *)(xb + (size_t)c * k + e1));
                float s = acc[c];
                s = fmaf(w[0], a.x, s); s = fmaf(w[1], a.y, s); s = fmaf(w[2], a.z, s); s = fmaf(w[3], a.w, s);
                s = fmaf(w[4], z.x, s); s = fmaf(w[5], z.y, s); s = fmaf(w[6], z.z, s); s = fmaf(w[7], z.w, s);
                acc[c] = s;
            }
        }
    }
#pragma unroll
    for (int c = 0; c < NC; c++) {
        if (c < nc) {                               /* nc is the same for the whole warp */
            const float v = warp_sum(acc[c]);
            if (lane == 0) Y[(size_t)(c0 + c) * rows + row] = v;
        }
    }
}

template <class T>
static cudaError_t launch(const void *W, int rows, int k, const float *X, int ncols, float *Y, cudaStream_t st) {
    const int nblk = k / T::QK;
    const dim3 block(MM_WARPS * 32);
    const unsigned gx = (unsigned)((rows + MM_WARPS - 1) / MM_WARPS);
    const uint8_t *w = (const uint8_t *)W;
    if (ncols == 1) mm_kernel<T, 1><<<dim3(gx, 1), block, 0, st>>>(w, rows, nblk, X, k, ncols, Y);
    else if (ncols == 2) mm_kernel<T, 2><<<dim3(gx, 1), block, 0, st>>>(w, rows, nblk, X, k, ncols, Y);
    else if (ncols <= 4) mm_kernel<T, 4><<<dim3(gx, 1), block, 0, st>>>(w, rows, nblk, X, k, ncols, Y);
    else mm_kernel<T, 8><<<dim3(gx, (unsigned)((ncols + 7) / 8)), block, 0, st>>>(w, rows, nblk, X, k, ncols, Y);
    return cudaGetLastError();
}

template <class T> static int k_ok(long long k) { return k > 0 && k % T::QK == 0 && k <= (1LL << 30); }

int cu_matmul_ok(int type, long long k) {
    switch (type) {
#define UNIT_CASE(T) case T::type: return k_ok<T>(k);
        LLMCUDA_FOR_EACH_UNIT(UNIT_CASE)
#undef UNIT_CASE
    default: return 0;
    }
}

cudaError_t cu_matmul(int type, const void *W, int rows, int k, const float *X, int ncols, float *Y,
                      cudaStream_t st) {
    if (rows <= 0 || ncols <= 0 || (ncols + 7) / 8 > 65535) return cudaErrorInvalidValue;
    switch (type) {
#define UNIT_CASE(T) case T::type: return launch<T>(W, rows, k, X, ncols, Y, st);
        LLMCUDA_FOR_EACH_UNIT(UNIT_CASE)
#undef UNIT_CASE
    default: return cudaErrorInvalidValue;
    }
}
