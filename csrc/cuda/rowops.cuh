/* Per-row device functions shared by ops.cu's kernels and matmul.cu's fused forms, so
 * that a value computed by either gives the same bits (batch invariance across the
 * fused and the separate launches). Numerics as csrc/ops.c and forward.c:
 *   RMSNorm   sum of squares of float products accumulated in double, mean as float,
 *             scale = 1/sqrtf(mean + eps), y = (x*scale)*w
 *   SiLU      x/(1+expf(-x)) * u;  GELU: llama.cpp's table numerics (input and output
 *             rounded to F16, 0 below -10, x above 10) * u
 * Every + and * that the CPU rounds on its own is written mul_rn/add_rn here, so nvcc
 * never contracts it into an fma differently in different kernels. */
#ifndef LLMCUDA_ROWOPS_CUH
#define LLMCUDA_ROWOPS_CUH
#include "common.cuh"

/* the block of residual_row: both its callers launch exactly this many threads (the
 * double sums' tree depends on it) */
#define RES_THREADS 128

__device__ __forceinline__ float inv_rms(double sumsq, int d, float eps) {
    const float mean = (float)(sumsq / d);
    return 1.0f / sqrtf(mean + eps);
}

/* 1/sqrt(mean(x^2) + eps) over a row, every thread of the block taking part */
__device__ __forceinline__ float row_inv_rms(const float *x, int d, float eps, double *sh) {
    double s = 0.0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float v = x[i];
        s += (double)(v * v);
    }
    return inv_rms(block_sum_d(s, sh), d, eps);
}

/* one token's residual (cu_residual, ops.cuh) by a block of RES_THREADS threads:
 * o = post ? rmsnorm(o)*post : o; x += o; if norm: xn = rmsnorm(x)*norm. o is read
 * through L2 (__ldcg): in the fused matmul it was written by other blocks of the same
 * launch. Each thread re-reads only the x[i] it wrote. sh: 32 doubles of shared memory */
__device__ __forceinline__ void residual_row(float *xr, const float *orow, const float *post, const float *norm,
                                             float *xnr, int d, float eps, double *sh) {
    float ps = 1.0f;
    if (post) {
        double s = 0.0;
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            const float v = __ldcg(orow + i);
            s += (double)(v * v);
        }
        ps = inv_rms(block_sum_d(s, sh), d, eps);
    }
    double s = 0.0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float ov = __ldcg(orow + i);
        const float oi = post ? mul_rn(mul_rn(ov, ps), post[i]) : ov;
        const float xi = add_rn(xr[i], oi);
        xr[i] = xi;
        s += (double)(xi * xi);
    }
    if (!norm) return;                                       /* uniform over the block */
    const float sc = inv_rms(block_sum_d(s, sh), d, eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) xnr[i] = mul_rn(mul_rn(xr[i], sc), norm[i]);
}

/* the ffn's gated activation of one element, as csrc/ops.c: act(g) * u, act = SiLU
 * g/(1+expf(-g)), or (gelu) GELU-tanh with the F16 table numerics */
#define GELU_COEF_A 0.044715f
#define SQRT_2_OVER_PI 0.79788456080286535587989211986876f
__device__ __forceinline__ float gelu_ref(float x) {
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    const float xh = round_f16(x);
    const float inner = mul_rn(mul_rn(SQRT_2_OVER_PI, xh), fmaf(GELU_COEF_A * xh, xh, 1.0f));
    return round_f16(mul_rn(mul_rn(0.5f, xh), add_rn(1.0f, tanhf(inner))));
}
__device__ __forceinline__ float glu_act(float g, float u, int gelu) {
    const float y = gelu ? gelu_ref(g) : g / add_rn(1.0f, expf(-g));
    return mul_rn(y, u);
}

#endif
