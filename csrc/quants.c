/* Block formats: dequantization and activation quantizers (stub, being written). */
#include "internal.h"

int llm_dequantize(int type, const void *src, float *dst, long long n) { (void)type; (void)src; (void)dst; (void)n; return -1; }
int llm_quantize_act(int act_type, const float *x, void *dst, long long n) { (void)act_type; (void)x; (void)dst; (void)n; return -1; }
