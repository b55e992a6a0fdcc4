/* avx2 vec-dot kernels (stub: falls back to the scalar ones until written). */
#include "internal.h"

void llm_kernels_avx2(llm_kernel_table *t) { (void)t; }
