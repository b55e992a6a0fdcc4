/* Weight matmul on the device: Y[c*rows + r] = dot(W row r, X column c), r < rows,
 * c < ncols, with W in its GGUF block layout (dequantized on the fly) and X, Y float32
 * column after column (X column c at X + c*k). The same layout as csrc's llm_matmul. */
#ifndef LLMCUDA_MATMUL_CUH
#define LLMCUDA_MATMUL_CUH
#include "common.cuh"

/* 1 if a kernel exists for this weight type and a row of k elements (k a multiple of
 * the type's block: 32 or 256 elements, 8 for F32/F16/BF16) */
int cu_matmul_ok(int type, long long k);
/* enqueue on st; returns the launch error (cudaSuccess) */
cudaError_t cu_matmul(int type, const void *W, int rows, int k, const float *X, int ncols, float *Y,
                      cudaStream_t st);

#endif
