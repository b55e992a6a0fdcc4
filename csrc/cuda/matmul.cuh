/* Weight matmul on the device: Y[c*rows + r] = dot(W row r, X column c), r < rows,
 * c < ncols, with W in its GGUF block layout and X, Y float32 column after column (X
 * column c at X + c*k). The same layout as csrc's llm_matmul. Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K weights take the integer kernels (mmq.cuh: X quantized to
 * Q8_1), every other type the float ones (matmul.cu: weights decoded to float). */
#ifndef LLMCUDA_MATMUL_CUH
#define LLMCUDA_MATMUL_CUH
#include "common.cuh"

/* 1 if a kernel exists for this weight type and a row of k elements (k a multiple of
 * the type's block: 32 or 256 elements, 8 for F32/F16/BF16) */
int cu_matmul_ok(int type, long long k);
/* enqueue on st; returns the launch error (cudaSuccess). q8: scratch of ncols*k*5/4
 * bytes (mmq.cuh: the Q8_1 copy of X that a batch with integer kernels takes; NULL:
 * such a batch is refused) */
cudaError_t cu_matmul(int type, const void *W, int rows, int k, const float *X, int ncols, float *Y, void *q8,
                      cudaStream_t st);

/* up to MM_MAX matrices of the same type and row length k that read the same X, in one
 * launch: matrix i (rows[i] rows, 0 = unused) writes Y[i] as cu_matmul would, bit for bit */
#define MM_MAX 3
typedef struct {
    const void *W[MM_MAX];
    float *Y[MM_MAX];
    int rows[MM_MAX];
} mm_set;
cudaError_t cu_matmul_set(int type, const mm_set *m, int k, const float *X, int ncols, void *q8, cudaStream_t st);

/* Y = W X (rows == d, one row of d per token), then, in the same launch, cu_residual's
 * step (ops.cuh) on the ncols tokens with o = Y: x += post ? rmsnorm(Y)*post : Y, and
 * xn = rmsnorm(x)*norm if norm, bit-identical to cu_matmul + cu_residual. The last
 * block to finish does the residual, one token after another: meant for a few tokens.
 * *count: 0 on entry, 0 again when the launch is done (one counter serves every such
 * launch of a stream) */
typedef struct {
    float *x, *xn;
    const float *post, *norm;
    float eps;
    unsigned *count;
} mm_residual;
cudaError_t cu_matmul_residual(int type, const void *W, int rows, int k, const float *X, int ncols, float *Y,
                               const mm_residual *r, void *q8, cudaStream_t st);

/* out[c*ff + j] = glu_act(dot(Wg row j, X col c), dot(Wu row j, X col c), gelu) for
 * j < ff: gate and up (both of this type, k per row) and the gated activation in one
 * launch, bit-identical to two cu_matmul and cu_gated_act */
cudaError_t cu_matmul_glu(int type, const void *Wg, const void *Wu, int ff, int k, const float *X, int ncols, int gelu,
                          float *out, void *q8, cudaStream_t st);

#endif
