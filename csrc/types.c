/* Block sizes and the weight/activation pairing: the activation type a weight type's
 * dot product takes (llama.cpp's CPU vec_dot_type), into which matmul.c quantizes
 * the input once per matmul. */
#include "internal.h"

static int info(int t, int *elems, int *bytes, int *act) {
    switch (t) {
    case T_F32:  *elems = 1;   *bytes = 4;   *act = T_F32;  return 1;
    case T_F16:  *elems = 1;   *bytes = 2;   *act = T_F16;  return 1;
    case T_BF16: *elems = 1;   *bytes = 2;   *act = T_BF16; return 1;
    case T_Q4_0: *elems = 32;  *bytes = 18;  *act = T_Q8_0; return 1;
    case T_Q4_1: *elems = 32;  *bytes = 20;  *act = T_Q8_1; return 1;
    case T_Q5_0: *elems = 32;  *bytes = 22;  *act = T_Q8_0; return 1;
    case T_Q5_1: *elems = 32;  *bytes = 24;  *act = T_Q8_1; return 1;
    case T_Q8_0: *elems = 32;  *bytes = 34;  *act = T_Q8_0; return 1;
    case T_Q8_1: *elems = 32;  *bytes = 36;  *act = -1;     return 0;
    case T_Q2_K: *elems = 256; *bytes = 84;  *act = T_Q8_K; return 1;
    case T_Q3_K: *elems = 256; *bytes = 110; *act = T_Q8_K; return 1;
    case T_Q4_K: *elems = 256; *bytes = 144; *act = T_Q8_K; return 1;
    case T_Q5_K: *elems = 256; *bytes = 176; *act = T_Q8_K; return 1;
    case T_Q6_K: *elems = 256; *bytes = 210; *act = T_Q8_K; return 1;
    case T_Q8_K: *elems = 256; *bytes = 292; *act = -1;     return 0;
    case T_MXFP4: *elems = 32; *bytes = 17;  *act = T_Q8_0; return 1;
    case T_NVFP4: *elems = 64; *bytes = 36;  *act = T_Q8_0; return 1;
    case T_TQ1_0: *elems = 256; *bytes = 54; *act = T_Q8_K; return 1;
    case T_TQ2_0: *elems = 256; *bytes = 66; *act = T_Q8_K; return 1;
    case T_IQ2_XXS: *elems = 256; *bytes = 66;  *act = T_Q8_K; return 1;
    case T_IQ2_XS:  *elems = 256; *bytes = 74;  *act = T_Q8_K; return 1;
    case T_IQ2_S:   *elems = 256; *bytes = 82;  *act = T_Q8_K; return 1;
    case T_IQ3_XXS: *elems = 256; *bytes = 98;  *act = T_Q8_K; return 1;
    case T_IQ3_S:   *elems = 256; *bytes = 110; *act = T_Q8_K; return 1;
    case T_IQ1_S:   *elems = 256; *bytes = 50;  *act = T_Q8_K; return 1;
    case T_IQ1_M:   *elems = 256; *bytes = 56;  *act = T_Q8_K; return 1;
    case T_IQ4_NL: *elems = 32;  *bytes = 18;  *act = T_Q8_0; return 1;
    case T_IQ4_XS: *elems = 256; *bytes = 136; *act = T_Q8_K; return 1;
    default:     *elems = 0;   *bytes = 0;   *act = -1;     return 0;
    }
}

int llm_type_supported(int t) { int e, b, a; return info(t, &e, &b, &a); }
int llm_type_block_elems(int t) { int e, b, a; info(t, &e, &b, &a); return e; }
int llm_type_block_bytes(int t) { int e, b, a; info(t, &e, &b, &a); return b; }
int llm_type_act_type(int t) { int e, b, a; info(t, &e, &b, &a); return a; }

long long llm_row_bytes(int t, long long n) {
    int e, b, a;
    info(t, &e, &b, &a);
    if (e == 0 || n < 0 || n % e) return -1;
    return n / e * b;
}
