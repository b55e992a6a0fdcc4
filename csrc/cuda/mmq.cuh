/* Integer matmul (mmq.cu) for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K weights:
 * the activations quantized to Q8_1 (blocks of 32: d = amax/127 rounded to F16, the
 * CPU's Q8_0 codes, s = d * sum of codes), int8 tensor-core products per group of the
 * weights' scales. matmul.cu's entry points (matmul.cuh) send these types here. */
#ifndef LLMCUDA_MMQ_CUH
#define LLMCUDA_MMQ_CUH
#include "matmul.cuh"

/* 1 if the integer kernels take weights of this type */
int cu_mmq_type(int type);

/* Y = W X as matmul.cuh's cu_matmul_set (r: + the residual epilogue, as
 * cu_matmul_residual; NULL: none), or glu: m->W[0] gate, m->W[1] up, m->rows[0] = ff,
 * m->Y[0] = the gated activation (cu_matmul_glu). q8: scratch of ncols*k*5/4 bytes
 * for the Q8_1 copy of X that batches take (decode and verify quantize X in each
 * block's shared memory); NULL where there is none: such a batch is refused. */
cudaError_t cu_mmq(int type, const mm_set *m, int k, const float *X, int ncols, const mm_residual *r, int glu,
                   int gelu, void *q8, cudaStream_t st);

#endif
