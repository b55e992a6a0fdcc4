/* Matmul kernels: one warp per weight row, the row's quantized bytes read once and
 * decoded 8 weights at a time (quant_units.cuh), dotted in float32 with up to NC
 * activation columns at once, then reduced across the warp by shuffles.
 *
 *   decode (n == 1):  NC = 1, a matrix-vector product; 4 rows per 128-thread block.
 *   batch  (n > 1):   NC = 2, 4 or 8 columns per pass (grid.y = column groups of NC),
 *                     so each weight unit is decoded once for NC columns; more than 8
 *                     columns re-read the row per group of 8 (from L2 mostly).
 *
 * Fused forms cut the launches of a layer (launch latency dominates small decode):
 *   mm_kernel      up to MM_MAX matrices of one type and row length that read the same
 *                  X in one launch (attn_q, attn_k, attn_v): grid rows cover matrix 0's
 *                  rows, then 1's, then 2's; a warp finds its matrix and writes its Y.
 *   mm_kernel<RES> + the residual step of the few tokens (attn_out, ffn_down): every
 *                  block counts itself done on a device counter after its rows; the
 *                  last one (it sees gridDim-1) runs residual_row per token.
 *   mm_glu_kernel  a warp computes row j of gate and row j of up (two dots in turn)
 *                  and writes glu_act(gate, up), the ffn's gated activation, without
 *                  the gate/up round trip through memory.
 * Every warp runs row_dot + warp_sum, the same code in every kernel, and the epilogues
 * call the functions of rowops.cuh that ops.cu's kernels call, with the same block
 * size, so a fused result is bit-identical to the separate launches'.
 *
 * Summation order: lane l accumulates units l, l+32, ... (each unit's 8 products in
 * a fixed fma chain), then a butterfly over the 32 lanes. The order differs from the
 * CPU's (which also quantizes activations to Q8), so results agree to float
 * rounding, not bit for bit; every column's result is independent of ncols. */
#include "matmul.cuh"
#include "quant_units.cuh"
#include "mm_epilogue.cuh"
#include "mmq.cuh"

#define MM_WARPS 4
static_assert(MM_WARPS * 32 == RES_THREADS, "the residual epilogue runs residual_row on one matmul block");

/* lane's partial dots of one weight row (wr) with nc <= NC columns of X (xb, column
 * c at xb + c*k): units lane, lane+32, ..., each unit's 8 products in a fixed chain */
template <class T, int NC>
__device__ __forceinline__ void row_dot(const uint8_t *__restrict__ wr, int nblk, const float *__restrict__ xb, int k,
                                        int nc, int lane, float *acc) {
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
}

template <class T, int NC, bool RES>
__global__ void __launch_bounds__(MM_WARPS * 32)
mm_kernel(const uint8_t *__restrict__ W0, const uint8_t *__restrict__ W1, const uint8_t *__restrict__ W2, mm_set m,
          int nblk, const float *__restrict__ X, int k, int ncols, mm_residual r) {
    /* the weights come as __restrict__ parameters (m.W repeated), so that their loads go
     * through the read-only cache (ld.global.nc): from the struct they would not */
    const int lane = threadIdx.x & 31;
    int row = blockIdx.x * MM_WARPS + (threadIdx.x >> 5);
    const uint8_t *W = W0;
    float *Y = m.Y[0];
    int rows = m.rows[0];
#pragma unroll
    for (int i = 1; i < MM_MAX; i++)           /* constant indices: the set stays in parameter space */
        if (row >= rows) { row -= rows; W = i == 1 ? W1 : W2; Y = m.Y[i]; rows = m.rows[i]; }
    if (row < rows) {                          /* whole warps */
        const int c0 = blockIdx.y * NC;
        const int nc = min(NC, ncols - c0);
        float acc[NC];
        row_dot<T, NC>(W + (size_t)row * nblk * T::BB, nblk, X + (size_t)c0 * k, k, nc, lane, acc);
#pragma unroll
        for (int c = 0; c < NC; c++) {
            if (c < nc) {                           /* nc is the same for the whole warp */
                const float v = warp_sum(acc[c]);
                if (lane == 0) Y[(size_t)(c0 + c) * rows + row] = v;
            }
        }
    }
    if (RES) residual_epilogue(r, m.Y[0], m.rows[0], ncols);
}

template <class T, int NC>
__global__ void __launch_bounds__(MM_WARPS * 32)
mm_glu_kernel(const uint8_t *__restrict__ Wg, const uint8_t *__restrict__ Wu, int ff, int nblk,
              const float *__restrict__ X, int k, int ncols, int gelu, float *__restrict__ out) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * MM_WARPS + (threadIdx.x >> 5);
    if (row >= ff) return;
    const int c0 = blockIdx.y * NC;
    const int nc = min(NC, ncols - c0);
    const float *xb = X + (size_t)c0 * k;
    float ag[NC], au[NC];
    row_dot<T, NC>(Wg + (size_t)row * nblk * T::BB, nblk, xb, k, nc, lane, ag);
    row_dot<T, NC>(Wu + (size_t)row * nblk * T::BB, nblk, xb, k, nc, lane, au);
#pragma unroll
    for (int c = 0; c < NC; c++) {
        if (c < nc) {
            const float g = warp_sum(ag[c]), u = warp_sum(au[c]);
            if (lane == 0) out[(size_t)(c0 + c) * ff + row] = glu_act(g, u, gelu);
        }
    }
}

static dim3 mm_grid(long long rows, int ncols, int nc) {
    return dim3((unsigned)((rows + MM_WARPS - 1) / MM_WARPS), (unsigned)((ncols + nc - 1) / nc));
}

template <class T, bool RES>
static cudaError_t launch(const mm_set &m, int k, const float *X, int ncols, const mm_residual &r, cudaStream_t st) {
    const int nblk = k / T::QK;
    const dim3 block(MM_WARPS * 32);
    long long total = 0;
    for (int i = 0; i < MM_MAX; i++) total += m.rows[i];
    const uint8_t *w0 = (const uint8_t *)m.W[0], *w1 = (const uint8_t *)m.W[1], *w2 = (const uint8_t *)m.W[2];
    static_assert(MM_MAX == 3, "one __restrict__ weight parameter per matrix of the set");
    if (ncols == 1) mm_kernel<T, 1, RES><<<mm_grid(total, ncols, 1), block, 0, st>>>(w0, w1, w2, m, nblk, X, k, ncols, r);
    else if (ncols == 2) mm_kernel<T, 2, RES><<<mm_grid(total, ncols, 2), block, 0, st>>>(w0, w1, w2, m, nblk, X, k, ncols, r);
    else if (ncols <= 4) mm_kernel<T, 4, RES><<<mm_grid(total, ncols, 4), block, 0, st>>>(w0, w1, w2, m, nblk, X, k, ncols, r);
    else mm_kernel<T, 8, RES><<<mm_grid(total, ncols, 8), block, 0, st>>>(w0, w1, w2, m, nblk, X, k, ncols, r);
    return cudaGetLastError();
}

template <class T>
static cudaError_t launch_glu(const void *Wg, const void *Wu, int ff, int k, const float *X, int ncols, int gelu,
                              float *out, cudaStream_t st) {
    const int nblk = k / T::QK;
    const dim3 block(MM_WARPS * 32);
    const uint8_t *g = (const uint8_t *)Wg, *u = (const uint8_t *)Wu;
    if (ncols == 1) mm_glu_kernel<T, 1><<<mm_grid(ff, ncols, 1), block, 0, st>>>(g, u, ff, nblk, X, k, ncols, gelu, out);
    else if (ncols == 2) mm_glu_kernel<T, 2><<<mm_grid(ff, ncols, 2), block, 0, st>>>(g, u, ff, nblk, X, k, ncols, gelu, out);
    else if (ncols <= 4) mm_glu_kernel<T, 4><<<mm_grid(ff, ncols, 4), block, 0, st>>>(g, u, ff, nblk, X, k, ncols, gelu, out);
    else mm_glu_kernel<T, 8><<<mm_grid(ff, ncols, 8), block, 0, st>>>(g, u, ff, nblk, X, k, ncols, gelu, out);
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

static cudaError_t matmul(int type, const mm_set *m, int k, const float *X, int ncols, const mm_residual &r,
                          void *q8, cudaStream_t st) {
    long long total = 0;
    for (int i = 0; i < MM_MAX; i++) {
        if (m->rows[i] < 0 || (m->rows[i] > 0 && (!m->W[i] || !m->Y[i]))) return cudaErrorInvalidValue;
        total += m->rows[i];
    }
    if (total <= 0 || total > 0x7fffffffLL || ncols <= 0 || (ncols + 7) / 8 > 65535) return cudaErrorInvalidValue;
    if (cu_mmq_type(type)) return cu_mmq(type, m, k, X, ncols, r.count ? &r : NULL, 0, 0, q8, st);
    switch (type) {
#define UNIT_CASE(T) case T::type: return r.count ? launch<T, true>(*m, k, X, ncols, r, st) \
                                                   : launch<T, false>(*m, k, X, ncols, r, st);
        LLMCUDA_FOR_EACH_UNIT(UNIT_CASE)
#undef UNIT_CASE
    default: return cudaErrorInvalidValue;
    }
}

cudaError_t cu_matmul_set(int type, const mm_set *m, int k, const float *X, int ncols, void *q8, cudaStream_t st) {
    return matmul(type, m, k, X, ncols, mm_residual{}, q8, st);
}

cudaError_t cu_matmul(int type, const void *W, int rows, int k, const float *X, int ncols, float *Y, void *q8,
                      cudaStream_t st) {
    mm_set m = {};
    m.W[0] = W; m.Y[0] = Y; m.rows[0] = rows;
    return matmul(type, &m, k, X, ncols, mm_residual{}, q8, st);
}

cudaError_t cu_matmul_residual(int type, const void *W, int rows, int k, const float *X, int ncols, float *Y,
                               const mm_residual *r, void *q8, cudaStream_t st) {
    if (!r || !r->count || !r->x || (r->norm && !r->xn)) return cudaErrorInvalidValue;
    mm_set m = {};
    m.W[0] = W; m.Y[0] = Y; m.rows[0] = rows;
    return matmul(type, &m, k, X, ncols, *r, q8, st);
}

cudaError_t cu_matmul_glu(int type, const void *Wg, const void *Wu, int ff, int k, const float *X, int ncols, int gelu,
                          float *out, void *q8, cudaStream_t st) {
    if (ff <= 0 || ncols <= 0 || (ncols + 7) / 8 > 65535) return cudaErrorInvalidValue;
    if (cu_mmq_type(type)) {
        mm_set m = {};
        m.W[0] = Wg; m.W[1] = Wu; m.Y[0] = out; m.rows[0] = ff;
        return cu_mmq(type, &m, k, X, ncols, NULL, 1, gelu, q8, st);
    }
    switch (type) {
#define UNIT_CASE(T) case T::type: return launch_glu<T>(Wg, Wu, ff, k, X, ncols, gelu, out, st);
        LLMCUDA_FOR_EACH_UNIT(UNIT_CASE)
#undef UNIT_CASE
    default: return cudaErrorInvalidValue;
    }
}
