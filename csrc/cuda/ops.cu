/* Per-token kernels (see ops.cuh). Numerics mirror csrc/ops.c and forward.c:
 *   RMSNorm   sum of squares of float products accumulated in double, mean as float,
 *             scale = 1/sqrtf(mean + eps), y = (x*scale)*w (row_inv_rms and
 *             residual_row in rowops.cuh; the residual's block is RES_THREADS, as in
 *             the matmul that fuses it for a few tokens, so both give the same bits)
 *   RoPE      theta = pos * theta_scale^i by repeated float multiplication (theta_scale
 *             = powf(base, -2/n_rot), computed by the host's libm like the CPU's),
 *             / freq_factor[i], * freq_scale; x0' = fma(x0,c,-(x1*s)), x1' = fma(x0,s,x1*c)
 *   attention Q rounded to F16 (as the CPU), K/V from the F16 cache, scores and
 *             softmax in float (max-subtracted, expf), output in float
 *   SiLU      x/(1+expf(-x)) * u;  GELU: llama.cpp's table numerics (input and output
 *             rounded to F16, 0 below -10, x above 10) * u (glu_act, rowops.cuh; the
 *             fused gate+up matmul uses it too)
 * Attention is one launch: partials per 128-key chunk, then the last block of each
 * (token, head) to finish (a device counter, reset by that block) merges them in chunk
 * order; attn_combine_kernel does the same merge as its own launch when the span runs
 * unfused (LLMLITE_CUDA_FUSE=0).
 * Reductions are fixed trees per row, independent of the batch size. */
#include <math.h>
#include "ops.cuh"
#include "rowops.cuh"

/* as residual_row's block: the same double-sum tree, so a span starting at layer l
 * normalises l's input with the bits that layer l-1's residual would have given */
#define NORM_THREADS RES_THREADS
#define QK_THREADS 128
#define AT_WARPS 4
#define AT_MAX_HD 512                 /* LLM_MAX_HEAD_DIM */
#define AT_PAIRS (AT_MAX_HD / 64)     /* half2 pairs per lane */
static_assert(AT_WARPS * 32 == 128, "attn_combine: one block of 128 threads");

/* ---- norms ---- */

__global__ void __launch_bounds__(NORM_THREADS) rmsnorm_kernel(float *y, const float *x, const float *w, int d, float eps) {
    __shared__ double sh[32];
    const float *xr = x + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    const float sc = row_inv_rms(xr, d, eps, sh);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = w ? mul_rn(xr[i], sc) * w[i] : xr[i] * sc;
}

cudaError_t cu_rmsnorm(float *y, const float *x, const float *w, int n, int d, float eps, cudaStream_t st) {
    rmsnorm_kernel<<<n, NORM_THREADS, 0, st>>>(y, x, w, d, eps);
    return cudaGetLastError();
}

__global__ void __launch_bounds__(RES_THREADS)
residual_kernel(float *x, const float *o, const float *post, const float *norm, float *xn, int d, float eps) {
    __shared__ double sh[32];
    const size_t r = (size_t)blockIdx.x * d;
    residual_row(x + r, o + r, post, norm, xn + r, d, eps, sh);
}

cudaError_t cu_residual(float *x, const float *o, const float *post, const float *norm, float *xn, int n, int d,
                        float eps, cudaStream_t st) {
    residual_kernel<<<n, RES_THREADS, 0, st>>>(x, o, post, norm, xn, d, eps);
    return cudaGetLastError();
}

/* ---- Q/K stage: bias, q/k norm, RoPE, prescale; K and V into the F16 cache ---- */

__global__ void __launch_bounds__(QK_THREADS) qk_kernel(qk_params p) {
    __shared__ float buf[AT_MAX_HD];
    __shared__ double sh[32];
    const int hd = p.hd, t = blockIdx.y;
    const int is_q = (int)blockIdx.x < p.n_head, h = is_q ? blockIdx.x : blockIdx.x - p.n_head;
    const int pos = *p.pos0 + t;
    const float *src = is_q ? p.q_in + (size_t)t * p.q_stride + (size_t)h * hd
                            : p.k_in + (size_t)t * p.kv_stride + (size_t)h * hd;
    const float *bias = is_q ? p.bq : p.bk, *nw = is_q ? p.qn : p.kn;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float v = src[i];
        if (bias) v = v + bias[(size_t)h * hd + i];
        buf[i] = v;
    }
    if (nw) {                                                /* each thread: its own elements */
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
            const float x0 = buf[i0], x1 = buf[i1];
            buf[i0] = fmaf(x0, c, -mul_rn(x1, s));
            buf[i1] = fmaf(x0, s, mul_rn(x1, c));
        }
        __syncthreads();
    }
    if (is_q) {
        float *out = p.q_out + (size_t)t * p.n_head * hd + (size_t)h * hd;
        for (int i = threadIdx.x; i < hd; i += blockDim.x) out[i] = p.q_prescale != 1.0f ? buf[i] * p.q_prescale : buf[i];
    } else {
        const size_t off = ((size_t)h * p.n_ctx + pos) * hd;
        const float *vs = p.v_in + (size_t)t * p.kv_stride + (size_t)h * hd;
        for (int i = threadIdx.x; i < hd; i += blockDim.x) {
            float v = vs[i];
            if (p.bv) v = v + p.bv[(size_t)h * hd + i];
            p.kc[off + i] = __float2half_rn(buf[i]);
            p.vc[off + i] = __float2half_rn(v);
        }
    }
}

cudaError_t cu_qk_stage(const qk_params *p, int n, cudaStream_t st) {
    qk_kernel<<<dim3(p->n_head + p->n_head_kv, n), QK_THREADS, 0, st>>>(*p);
    return cudaGetLastError();
}

/* ---- attention ----
 * Block (b, head h, token t) takes chunks b, b+nblk, ... of t's visible keys
 * lo..pos (lo = pos-window+1 on sliding layers, else 0). In a chunk of 128 keys warp
 * w takes keys 32w..32w+31: lane l computes the score of key 32w+l (its own K row,
 * q from shared memory), the warp takes max and sum, then accumulates p*V with
 * lanes over head_dim (half2 pairs), p broadcast by shuffle. The 4 warps merge in
 * order into one partial (max M, sum L, unnormalised output). The last block of
 * (t, h) to finish (a counter in device memory) merges t's partials in chunk order and
 * divides by the total sum: one launch, and the same bits whichever block is last. */

__device__ __forceinline__ int attn_lo(const attn_params &p, int pos) {
    return p.window > 0 && pos - p.window + 1 > 0 ? pos - p.window + 1 : 0;
}

__device__ __forceinline__ float2 h2_to_f2(uint32_t u) {
    __half2 h;
    memcpy(&h, &u, 4);
    return __half22float2(h);
}

/* dot(q (float, shared), k row (F16)) */
__device__ __forceinline__ float key_dot(const float *qs, const __half *k, int hd) {
    float s0 = 0.0f, s1 = 0.0f;
    if ((hd & 7) == 0) {                                     /* 16-byte rows: 8 halves per load */
        const uint4 *kr = (const uint4 *)k;
        for (int c = 0; c < hd / 8; c++) {
            const uint4 v = kr[c];
            const float *qc = qs + 8 * c;
            float2 a = h2_to_f2(v.x), b = h2_to_f2(v.y);
            s0 = fmaf(qc[0], a.x, s0); s1 = fmaf(qc[1], a.y, s1);
            s0 = fmaf(qc[2], b.x, s0); s1 = fmaf(qc[3], b.y, s1);
            a = h2_to_f2(v.z); b = h2_to_f2(v.w);
            s0 = fmaf(qc[4], a.x, s0); s1 = fmaf(qc[5], a.y, s1);
            s0 = fmaf(qc[6], b.x, s0); s1 = fmaf(qc[7], b.y, s1);
        }
    } else {
        const __half2 *kr = (const __half2 *)k;
        for (int c = 0; c < hd / 2; c++) {
            const float2 a = __half22float2(kr[c]);
            s0 = fmaf(qs[2 * c], a.x, s0);
            s1 = fmaf(qs[2 * c + 1], a.y, s1);
        }
    }
    return s0 + s1;
}

/* the combine of token t's partials for head h, by one block of AT_WARPS*32 == 128
 * threads: merged in chunk order, divided by the total sum. The partials were written
 * by other blocks of this launch: read through L2 (__ldcg), never from a stale L1 line */
__device__ __forceinline__ void attn_combine(const attn_params &p, int t, int tl, int h, int nchunks) {
    const int hd = p.hd;
    const float *pp = p.part + ((size_t)tl * p.n_head + h) * p.pstride * (hd + 2);
    float M = -INFINITY;
    for (int c = 0; c < nchunks; c++) M = fmaxf(M, __ldcg(pp + (size_t)c * (hd + 2)));
    float L = 0.0f, o[AT_MAX_HD / 128];
#pragma unroll
    for (int r = 0; r < AT_MAX_HD / 128; r++) o[r] = 0.0f;
    for (int c = 0; c < nchunks; c++) {                      /* chunk order: fixed */
        const float *pc = pp + (size_t)c * (hd + 2);
        const float w = expf(__ldcg(pc) - M);
        L += __ldcg(pc + 1) * w;
#pragma unroll
        for (int r = 0; r < AT_MAX_HD / 128; r++) {
            const int i = threadIdx.x + 128 * r;
            if (i < hd) o[r] += __ldcg(pc + 2 + i) * w;
        }
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    float *out = p.out + ((size_t)t * p.n_head + h) * hd;
#pragma unroll
    for (int r = 0; r < AT_MAX_HD / 128; r++) {
        const int i = threadIdx.x + 128 * r;
        if (i < hd) out[i] = o[r] * inv;
    }
}

__global__ void __launch_bounds__(AT_WARPS * 32) attn_kernel(attn_params p, int t0) {
    __shared__ float qs[AT_MAX_HD];
    __shared__ float accs[AT_WARPS][AT_MAX_HD];
    __shared__ float ms[AT_WARPS], ls[AT_WARPS];
    const int h = blockIdx.y, tl = blockIdx.z, t = t0 + tl;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int hd = p.hd, npairs = hd >> 1;
    const int kvh = h / (p.n_head / p.n_head_kv);
    const int pos = *p.pos0 + t, lo = attn_lo(p, pos);
    const int nchunks = (pos - lo + ATTN_CHUNK) / ATTN_CHUNK;
    if ((int)blockIdx.x >= nchunks) return;                  /* the whole block, before any barrier */
    const float *q = p.q + ((size_t)t * p.n_head + h) * hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) qs[i] = round_f16(q[i]);
    __syncthreads();
    const __half *K = p.kc + (size_t)kvh * p.n_ctx * hd, *V = p.vc + (size_t)kvh * p.n_ctx * hd;
    for (int ch = blockIdx.x; ch < nchunks; ch += p.nblk) {
        const int c_lo = lo + ch * ATTN_CHUNK, c_hi = min(pos, c_lo + ATTN_CHUNK - 1);
        const int k0 = c_lo + 32 * warp;                     /* this warp's 32 keys */
        float m = -INFINITY, l = 0.0f;
        float2 acc[AT_PAIRS];
#pragma unroll
        for (int j = 0; j < AT_PAIRS; j++) acc[j] = make_float2(0.0f, 0.0f);
        if (k0 <= c_hi) {                                    /* uniform over the warp */
            const int s = k0 + lane;
            const bool valid = s <= c_hi;
            const float sc = valid ? key_dot(qs, K + (size_t)s * hd, hd) * p.scale : -INFINITY;
            m = warp_max(sc);                                /* lane 0's key is valid: finite */
            const float pr = valid ? expf(sc - m) : 0.0f;
            l = warp_sum(pr);
            const int cnt = min(32, c_hi - k0 + 1);
            for (int jj = 0; jj < cnt; jj++) {
                const float pj = __shfl_sync(FULL_MASK, pr, jj);
                const __half2 *vr = (const __half2 *)(V + (size_t)(k0 + jj) * hd);
#pragma unroll
                for (int j = 0; j < AT_PAIRS; j++) {
                    const int pi = lane + 32 * j;
                    if (pi < npairs) {
                        const float2 v = __half22float2(vr[pi]);
                        acc[j].x = fmaf(pj, v.x, acc[j].x);
                        acc[j].y = fmaf(pj, v.y, acc[j].y);
                    }
                }
            }
        }
        if (lane == 0) { ms[warp] = m; ls[warp] = l; }
#pragma unroll
        for (int j = 0; j < AT_PAIRS; j++) {
            const int pi = lane + 32 * j;
            if (pi < npairs) { accs[warp][2 * pi] = acc[j].x; accs[warp][2 * pi + 1] = acc[j].y; }
        }
        __syncthreads();
        float M = ms[0];                                     /* warp 0 always has keys */
        for (int w = 1; w < AT_WARPS; w++) M = fmaxf(M, ms[w]);
        float ew[AT_WARPS], L = 0.0f;
        for (int w = 0; w < AT_WARPS; w++) {
            ew[w] = ms[w] == -INFINITY ? 0.0f : expf(ms[w] - M);
            L += ls[w] * ew[w];
        }
        float *pp = p.part + (((size_t)tl * p.n_head + h) * p.pstride + ch) * (hd + 2);
        if (threadIdx.x == 0) { pp[0] = M; pp[1] = L; }
        for (int i = threadIdx.x; i < hd; i += blockDim.x) {
            float o = 0.0f;
            for (int w = 0; w < AT_WARPS; w++) o += accs[w][i] * ew[w];
            pp[2 + i] = o;
        }
        __syncthreads();                                     /* before the next chunk reuses ms/accs */
    }
    /* last block done: the min(nblk, nchunks) blocks with chunks (every block computes
     * the same count from the same *pos0) each add 1 to (tl, h)'s counter after their
     * partials; the one that sees count-1 combines and sets the counter back to 0 for
     * the next launch (graph replays included). Blocks without chunks returned above
     * and never count. */
    if (!p.count) return;                                    /* attn_combine_kernel combines */
    __shared__ int last;
    if (last_block(p.count + (size_t)tl * p.n_head + h, (unsigned)min(p.nblk, nchunks), &last))
        attn_combine(p, t, tl, h, nchunks);
}

/* the combine as a launch of its own (count == NULL: LLMLITE_CUDA_FUSE=0) */
__global__ void __launch_bounds__(128) attn_combine_kernel(attn_params p, int t0) {
    const int h = blockIdx.x, tl = blockIdx.y, t = t0 + tl;
    const int pos = *p.pos0 + t, lo = attn_lo(p, pos);
    attn_combine(p, t, tl, h, (pos - lo + ATTN_CHUNK) / ATTN_CHUNK);
}

cudaError_t cu_attention(const attn_params *p, int t0, int n, cudaStream_t st) {
    attn_kernel<<<dim3(p->nblk, p->n_head, n), AT_WARPS * 32, 0, st>>>(*p, t0);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || p->count) return e;
    attn_combine_kernel<<<dim3(p->n_head, n), 128, 0, st>>>(*p, t0);
    return cudaGetLastError();
}

/* ---- gated activation, softcap ---- */

__global__ void act_kernel(float *out, const float *g, const float *u, int stride, int n, int ff, int gelu) {
    const long long total = (long long)n * ff;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long t = idx / ff, i = idx % ff;
        out[t * ff + i] = glu_act(g[t * stride + i], u[t * stride + i], gelu);
    }
}

cudaError_t cu_gated_act(float *out, const float *g, const float *u, int stride, int n, int ff, int gelu,
                         cudaStream_t st) {
    const long long total = (long long)n * ff;
    const long long blocks = (total + 255) / 256;
    act_kernel<<<(unsigned)(blocks < 65536 ? blocks : 65536), 256, 0, st>>>(out, g, u, stride, n, ff, gelu);
    return cudaGetLastError();
}

__global__ void softcap_kernel(float *x, long long count, float cap) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
        x[i] = tanhf(x[i] / cap) * cap;
}

/* ---- activations as the CPU quantizes them (cu_act_as_cpu) ---- */

__global__ void act_round_kernel(float *y, const float *x, long long count, int bf16) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
        const float v = x[i];
        if (!bf16) { y[i] = round_f16(v); continue; }
        const unsigned u = __float_as_uint(v);      /* csrc/internal.h llm_f32_to_bf16 */
        const unsigned h = (u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        y[i] = __uint_as_float(h << 16);
    }
}

/* one warp per block of 32: Q8_0 / Q8_1 (the same q and d) */
__global__ void act_q8_kernel(float *y, const float *x, int k) {
    const size_t i = (size_t)blockIdx.y * k + (size_t)blockIdx.x * 32 + threadIdx.x;
    const float v = x[i];
    unsigned a = __float_as_uint(v) & 0x7fffffffu;     /* max |x| on the bit patterns, as the CPU */
UNROLL
    for (int o = 16; o > 0; o >>= 1) a = max(a, __shfl_xor_sync(FULL_MASK, a, o));
    const float amax = __uint_as_float(a);
    const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    const int q = (int)fminf(fmaxf(rintf(__fmul_rn(v, id)), -128.f), 127.f);   /* an int, as the CPU's: no -0 */
    y[i] = __fmul_rn((float)q, round_f16(d));
}

/* 256 threads per block of 256: Q8_K */
__global__ void act_q8k_kernel(float *y, const float *x, int k) {
    __shared__ unsigned long long best[8];
    const size_t i = (size_t)blockIdx.y * k + (size_t)blockIdx.x * 256 + threadIdx.x;
    const float v = x[i];
    /* the first element of largest |x| (the CPU's strict > over j = 0..255) */
    unsigned long long key = ((unsigned long long)(__float_as_uint(v) & 0x7fffffffu) << 32) | (255u - threadIdx.x);
UNROLL
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long other = __shfl_xor_sync(FULL_MASK, key, o);
        key = other > key ? other : key;
    }
    if ((threadIdx.x & 31) == 0) best[threadIdx.x >> 5] = key;
    __syncthreads();
    key = best[0];
    for (int w = 1; w < 8; w++) key = best[w] > key ? best[w] : key;
    const float amax = __uint_as_float((unsigned)(key >> 32));
    const float max = x[i - threadIdx.x + (255u - (unsigned)(key & 0xffu))];
    float out = 0.f;
    if (amax != 0.f) {
        const float iscale = -127.f / max;
        out = __fmul_rn((float)(int)fminf(rintf(__fmul_rn(iscale, v)), 127.f), 1.f / iscale);
    }
    y[i] = out;
}

int cu_act_as_cpu(float *y, const float *x, int n, int k, int type, cudaStream_t st, cudaError_t *err) {
    *err = cudaSuccess;
    switch (act_family(type)) {
    case CT_F32:
        return 0;
    case CT_F16: case CT_BF16: {
        const long long total = (long long)n * k, blocks = (total + 255) / 256;
        act_round_kernel<<<(unsigned)(blocks < 65536 ? blocks : 65536), 256, 0, st>>>(y, x, total, type == CT_BF16);
        break;
    }
    case CT_Q4_K:
        act_q8k_kernel<<<dim3(k / 256, n), 256, 0, st>>>(y, x, k);
        break;
    default:
        act_q8_kernel<<<dim3(k / 32, n), 32, 0, st>>>(y, x, k);
        break;
    }
    *err = cudaGetLastError();
    return 1;
}

cudaError_t cu_softcap(float *x, long long count, float cap, cudaStream_t st) {
    const long long blocks = (count + 255) / 256;
    softcap_kernel<<<(unsigned)(blocks < 65536 ? blocks : 65536), 256, 0, st>>>(x, count, cap);
    return cudaGetLastError();
}
