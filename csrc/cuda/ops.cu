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
 * Attention: attention.cu.
 * Reductions are fixed trees per row, independent of the batch size. */
#include <math.h>
#include "ops.cuh"
#include "rowops.cuh"
#include "qk_stage.cuh"

/* as residual_row's block: the same double-sum tree, so a span starting at layer l
 * normalises l's input with the bits that layer l-1's residual would have given */
#define NORM_THREADS RES_THREADS
#define AT_MAX_HD 512                 /* LLM_MAX_HEAD_DIM */

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
    const int t = blockIdx.y, pos = *p.pos0 + t;
    const int is_q = (int)blockIdx.x < p.n_head, h = is_q ? blockIdx.x : blockIdx.x - p.n_head;
    qk_load(p, is_q, h, t, buf);
    qk_finish(p, buf, 1, is_q, pos, sh);
    if (is_q) {
        float *out = p.q_out + (size_t)t * p.n_head * p.hd + (size_t)h * p.hd;
        for (int i = threadIdx.x; i < p.hd; i += blockDim.x) out[i] = q_final(p, buf[i]);
    } else {
        qk_store_kv(p, h, t, pos, buf);
    }
}

cudaError_t cu_qk_stage(const qk_params *p, int n, cudaStream_t st) {
    qk_kernel<<<dim3(p->n_head + p->n_head_kv, n), QK_THREADS, 0, st>>>(*p);
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
