/* Scalar vec-dot kernels (stub, being written). */
#include "internal.h"

void llm_kernels_scalar(llm_kernel_table *t) { memset(t, 0, sizeof *t); }
