/* The residual epilogue of the matmul + residual launches, shared by the float
 * kernels (matmul.cu) and the integer ones (mmq.cu): both run it on blocks of
 * RES_THREADS threads, so the fused residual gives cu_residual's bits either way. */
#ifndef LLMCUDA_MM_EPILOGUE_CUH
#define LLMCUDA_MM_EPILOGUE_CUH
#include "matmul.cuh"
#include "rowops.cuh"

/* last block done: every block adds 1 to *r.count after its rows of o; the one that
 * sees gridDim.x*gridDim.y - 1 sets it back to 0 and runs the residual of the ncols
 * tokens, one after another, with residual_row as residual_kernel does */
__device__ __forceinline__ void residual_epilogue(const mm_residual &r, const float *o, int d, int ncols) {
    __shared__ double sh[32];
    __shared__ int last;
    if (!last_block(r.count, gridDim.x * gridDim.y, &last)) return;
    for (int t = 0; t < ncols; t++)
        residual_row(r.x + (size_t)t * d, o + (size_t)t * d, r.post, r.norm, r.xn + (size_t)t * d, d, r.eps, sh);
}

#endif
