/* The Q/K stage of one token (forward.c ST_QK) as per-row device code, shared by
 * ops.cu's qk_kernel (batches, and decode where the attention cannot take it) and the
 * attention's decode form (attention.cu), which computes the rows it needs itself: one
 * launch less per layer, the same bits (a block of QK_THREADS threads either way: the
 * norm's double-sum tree depends on it). Numerics as ops.cu's header says. */
#ifndef LLMCUDA_QK_STAGE_CUH
#define LLMCUDA_QK_STAGE_CUH
#include "ops.cuh"
#include "rowops.cuh"

#define QK_THREADS 128

/* row h of token t's Q (is_q) or K input, with its bias, into dst (hd floats) */
__device__ __forceinline__ void qk_load(const qk_params &p, int is_q, int h, int t, float *dst) {
    const float *src = is_q ? p.q_in + (size_t)t * p.q_stride + (size_t)h * p.hd
                            : p.k_in + (size_t)t * p.kv_stride + (size_t)h * p.hd;
    const float *bias = is_q ? p.bq : p.bk;
    for (int i = threadIdx.x; i < p.hd; i += blockDim.x) {
        float v = src[i];
        if (bias) v = v + bias[(size_t)h * p.hd + i];
        dst[i] = v;
    }
}

/* rows (shared memory, hd floats apart) of one token at position pos, loaded by
 * qk_load: rows 0..nq-1 of Q, the rest of K. q/k norm, then RoPE (each pair's angle
 * computed once for all the rows), in place. Every thread of the block calls it; it
 * starts and ends with a barrier. */
__device__ __forceinline__ void qk_finish(const qk_params &p, float *rows, int nrows, int nq, int pos, double *sh) {
    const int hd = p.hd;
    __syncthreads();
    for (int r = 0; r < nrows; r++) {
        const float *nw = r < nq ? p.qn : p.kn;
        if (!nw) continue;                                   /* uniform over the block */
        float *buf = rows + (size_t)r * hd;
        const float sc = row_inv_rms(buf, hd, p.eps, sh);
        for (int i = threadIdx.x; i < hd; i += blockDim.x) buf[i] = mul_rn(buf[i], sc) * nw[i];
    }
    __syncthreads();
    if (p.n_rot > 0) {
        const int half = p.n_rot / 2;
        for (int i = threadIdx.x; i < half; i += blockDim.x) {   /* one thread per rotated pair */
            float theta = (float)pos;
            for (int j = 0; j < i; j++) theta = mul_rn(theta, p.theta_scale);
            float a = theta / (p.freq ? p.freq[i] : 1.0f);
            a = mul_rn(p.rope_scale, a);
            const float c = cosf(a), s = sinf(a);
            const int i0 = p.neox ? i : 2 * i, i1 = p.neox ? i + half : 2 * i + 1;
            for (int r = 0; r < nrows; r++) {
                float *buf = rows + (size_t)r * hd;
                const float x0 = buf[i0], x1 = buf[i1];
                buf[i0] = fmaf(x0, c, -mul_rn(x1, s));
                buf[i1] = fmaf(x0, s, mul_rn(x1, c));
            }
        }
        __syncthreads();
    }
}

/* a finished Q element as the attention takes it (prescaled) */
__device__ __forceinline__ float q_final(const qk_params &p, float v) { return p.q_prescale != 1.0f ? v * p.q_prescale : v; }

/* K head h of token t at pos (krow: finished) and its V row (+ bias) into the F16 cache */
__device__ __forceinline__ void qk_store_kv(const qk_params &p, int h, int t, int pos, const float *krow) {
    const size_t off = ((size_t)h * p.n_ctx + pos) * p.hd;
    const float *vs = p.v_in + (size_t)t * p.kv_stride + (size_t)h * p.hd;
    for (int i = threadIdx.x; i < p.hd; i += blockDim.x) {
        float v = vs[i];
        if (p.bv) v = v + p.bv[(size_t)h * p.hd + i];
        p.kc[off + i] = __float2half_rn(krow[i]);
        p.vc[off + i] = __float2half_rn(v);
    }
}

#endif
