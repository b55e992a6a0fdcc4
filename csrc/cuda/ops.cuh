/* The per-token operations of csrc/forward.c on the device: norms and residuals,
 * the Q/K stage (bias, q/k norm, RoPE, KV cache write), attention, gated activation,
 * logit softcap. Activations are float32 rows, token after token. Every kernel that
 * needs the position reads it from a device int (pos0: the position of token 0), so a
 * captured CUDA graph serves every position. Each function enqueues on st and returns
 * the launch error. */
#ifndef LLMCUDA_OPS_CUH
#define LLMCUDA_OPS_CUH
#include "common.cuh"
#include "span_layout.h"

/* y row t = rmsnorm(x row t) * w (w NULL: no weight), n rows of d */
cudaError_t cu_rmsnorm(float *y, const float *x, const float *w, int n, int d, float eps, cudaStream_t st);

/* per row t: o = post ? rmsnorm(o)*post : o; x += o; then, if norm: xn = rmsnorm(x)*norm.
 * (ST_POST_ATTN / ST_POST_FFN of forward.c, fused with the next norm) */
cudaError_t cu_residual(float *x, const float *o, const float *post, const float *norm, float *xn, int n, int d,
                        float eps, cudaStream_t st);

typedef struct {
    const float *q_in, *k_in, *v_in;   /* token t's raw rows at + t*q_stride / t*kv_stride */
    int q_stride, kv_stride;
    const float *bq, *bk, *bv;         /* biases (NULL: none) */
    const float *qn, *kn;              /* q/k norm weights over head_dim (NULL: none) */
    const float *freq;                 /* rope_freqs, n_rot/2 divisors (NULL: none) */
    float *q_out;                      /* [n][n_head*hd]: normed, rotated, prescaled Q */
    __half *kc, *vc;                   /* this layer's caches, [n_head_kv][n_ctx][hd] */
    const int *pos0;
    int n_head, n_head_kv, hd, n_ctx, n_rot, neox;
    float eps, theta_scale, rope_scale, q_prescale;
} qk_params;
/* ST_QK of forward.c for n tokens: one block per (head, token) */
cudaError_t cu_qk_stage(const qk_params *p, int n, cudaStream_t st);

/* attention (attention.cu): keys are cut into absolute chunks of ATTN_CHUNK positions
 * (chunk c: keys c*ATTN_CHUNK..); each chunk a query sees gives a partial (max, sum,
 * unnormalised output) and the merge takes a query's partials in chunk order, so a
 * token's result does not depend on the batch it is in nor on the grid. A block takes
 * one chunk of one KV head for the query heads of that KV head and, in a batch, a tile
 * of tokens (K/V rows read once for all of them); one launch: the last block of a
 * (token tile, KV head) to finish does the merge (count: a counter per such block row) */
#define ATTN_CHUNK LLMCUDA_ATTN_CHUNK    /* 128, span_layout.h: the planner sizes the partials by it */
typedef struct {
    const float *q;                    /* [n][n_head*hd] */
    const __half *kc, *vc;             /* this layer's caches */
    float *out;                        /* [n][n_head*hd] */
    float *part;                       /* partials: [n][n_head][pstride][hd + 2], slot = chunk */
    unsigned *count;                   /* [n][n_head] (at least) blocks done, 0 between launches */
    const int *pos0;
    int n_head, n_head_kv, hd, n_ctx;
    int window;                        /* > 0: sliding window (keys p-window+1..p) */
    float scale;
    int pstride;                       /* partial slots per (token, head) > any token's last chunk */
} attn_params;
/* attention of tokens t0..t0+n-1 (the partials of token t0+i in slot i). qk (NULL:
 * none; else the Q/K stage of these tokens, not yet run): where cu_attention_folds,
 * the attention does that stage itself (decode: one launch less, the same bits);
 * otherwise the caller runs cu_qk_stage first and passes NULL */
cudaError_t cu_attention(const attn_params *p, const qk_params *qk, int t0, int n, cudaStream_t st);
/* 1 where the attention of n tokens can take their Q/K stage (one token, the query
 * heads of a KV head in one block, their Q rows and the K row in its shared memory) */
int cu_attention_folds(const attn_params *p, int n);

/* out row t = act(g row t) * (u row t), rows of ff at stride `stride` in g and u, out
 * rows of ff (out may be g when stride == ff). gelu: GELU-tanh (llama.cpp's F16 table
 * numerics, as csrc/ops.c), else SiLU. */
cudaError_t cu_gated_act(float *out, const float *g, const float *u, int stride, int n, int ff, int gelu,
                         cudaStream_t st);

/* x = tanh(x/cap)*cap over count floats */
cudaError_t cu_softcap(float *x, long long count, float cap, cudaStream_t st);

/* (LLMLITE_CUDA_ACTQ=1) the activations a matmul with weights of `type` multiplies, as
 * the CPU's dot products see them (csrc/quants.c llm_quantize_act, llama.cpp's vec_dot_type): Q8_0 /
 * Q8_1 blocks of 32 (Q4_0..Q8_0 weights; d = amax/127 rounded to F16, q = rne(x*127/amax)),
 * Q8_K blocks of 256 (K-quants; d = max/-127, q = min(127, rne(x*-127/max)), max the
 * first element of largest |x|), F16 or BF16 (rounded to nearest even), as floats
 * q*d: y = n rows of k. Returns 0 (F32 weights: nothing to do, use x), else 1 with the
 * launch enqueued; *err the launch error. Off by default, the GPU multiplies the exact
 * activations, as the CPU run of the same weights in F32 does; on Gemma 3 that run's
 * perplexity is 0.55% below the quantized CPU run's (0.30% on SmolLM2), so a GPU session
 * measures both (tools/real_check.py). Each matmul then matches the CPU's to ~1e-7
 * (Q4_1/Q5_1 to ~1e-3: Q8_1's sum term is an F16 of its own), for one more launch each. */
int cu_act_as_cpu(float *y, const float *x, int n, int k, int type, cudaStream_t st, cudaError_t *err);
/* the activation form cu_act_as_cpu gives for weights of `type`: CT_F32 (none), CT_F16,
 * CT_BF16, CT_Q8_0 (Q4_0..Q8_0, MXFP4, NVFP4, IQ4_NL weights: Q8_0 and Q8_1 give the same
 * floats), CT_Q4_K (the K-quants, TQ1_0/TQ2_0, IQ4_XS and the grid i-quants: Q8_K) */
HD int act_family(int type) {
    switch (type) {
    case CT_F32: case CT_F16: case CT_BF16: return type;
    case CT_Q2_K: case CT_Q3_K: case CT_Q4_K: case CT_Q5_K: case CT_Q6_K: case CT_TQ1_0: case CT_TQ2_0: return CT_Q4_K;
    case CT_IQ4_XS: case CT_IQ2_XXS: case CT_IQ2_XS: case CT_IQ2_S: case CT_IQ3_XXS: case CT_IQ3_S:
    case CT_IQ1_S: case CT_IQ1_M: return CT_Q4_K;
    default: return CT_Q8_0;
    }
}

#endif
