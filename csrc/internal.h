/* Internal declarations shared by the C files (not read by cffi). */
#ifndef LLM_INTERNAL_H
#define LLM_INTERNAL_H
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "llmlite.h"

enum {
    T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7,
    T_Q8_0 = 8, T_Q8_1 = 9, T_Q2_K = 10, T_Q3_K = 11, T_Q4_K = 12,
    T_Q5_K = 13, T_Q6_K = 14, T_Q8_K = 15,
    /* the i-quants, ternary and microscaling types (ggml's ids; a table entry
     * exists once a family file fills it) */
    T_IQ2_XXS = 16, T_IQ2_XS = 17, T_IQ3_XXS = 18, T_IQ1_S = 19, T_IQ4_NL = 20,
    T_IQ3_S = 21, T_IQ2_S = 22, T_IQ4_XS = 23, T_IQ1_M = 29,
    T_BF16 = 30, T_TQ1_0 = 34, T_TQ2_0 = 35, T_MXFP4 = 39, T_NVFP4 = 40, T_COUNT = 41
};

#define QK 32
#define LLM_MAX_HEAD_DIM 512    /* the attention kernels' stack buffers; a model with more is refused */
#define QKK 256
#define K_SCALE_SIZE 12

typedef uint16_t f16_t;
typedef uint16_t bf16_t;

/* block layouts, bit-for-bit ggml's (ggml-common.h); the size of each in bytes beside it */
typedef struct { f16_t d; uint8_t qs[16]; } block_q4_0;                 /* 18 */
typedef struct { f16_t d, m; uint8_t qs[16]; } block_q4_1;              /* 20 */
typedef struct { f16_t d; uint8_t qh[4]; uint8_t qs[16]; } block_q5_0;  /* 22 */
typedef struct { f16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } block_q5_1; /* 24 */
typedef struct { f16_t d; int8_t qs[32]; } block_q8_0;                  /* 34 */
typedef struct { f16_t d, s; int8_t qs[32]; } block_q8_1;               /* 36 */
typedef struct { uint8_t scales[16]; uint8_t qs[64]; f16_t d, dmin; } block_q2_K;  /* 84 */
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; f16_t d; } block_q3_K; /* 110 */
typedef struct { f16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } block_q4_K; /* 144 */
typedef struct { f16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } block_q5_K; /* 176 */
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; f16_t d; } block_q6_K; /* 210 */
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } block_q8_K; /* 292 */
/* a Q8_K block as the 4-row kernel of Q4_K's decode copy reads it (q8_K_x4 makes it in
 * place, so it fits in one): the quants' dwords in the order 16k + j at 4j + k (j 0..15,
 * k 0..3: 16-byte chunk j holds dword j of each 64 quants), bp the 8 sub-blocks' bsums
 * (b_2s + b_2s+1, as bsums_pairs), d */
typedef struct { int8_t qs[256]; int16_t bp[8]; float d; } block_q8_K_x4; /* 276 */
_Static_assert(sizeof(block_q8_K_x4) <= sizeof(block_q8_K), "q8_K_x4 rewrites Q8_K blocks in place");
typedef struct { uint8_t e; uint8_t qs[16]; } block_mxfp4;             /* 17: E8M0 exponent, E2M1 codes */
typedef struct { uint8_t d[4]; uint8_t qs[32]; } block_nvfp4;           /* 36: UE4M3 scales, E2M1 codes */
typedef struct { uint8_t qs[48]; uint8_t qh[4]; f16_t d; } block_tq1_0;  /* 54: 5 trits a byte, then 4 */
typedef struct { uint8_t qs[64]; f16_t d; } block_tq2_0;                 /* 66: 2-bit codes */
/* the grid i-quants (type_iq_grid.c) */
typedef struct { f16_t d; uint16_t qs[32]; } block_iq2_xxs;                                  /* 66 */
typedef struct { f16_t d; uint16_t qs[32]; uint8_t scales[8]; } block_iq2_xs;               /* 74 */
typedef struct { f16_t d; uint8_t qs[64]; uint8_t qh[8]; uint8_t scales[8]; } block_iq2_s;  /* 82 */
typedef struct { f16_t d; uint8_t qs[96]; } block_iq3_xxs;                                  /* 98 */
typedef struct { f16_t d; uint8_t qs[64]; uint8_t qh[8]; uint8_t signs[32]; uint8_t scales[4]; } block_iq3_s; /* 110 */
typedef struct { f16_t d; uint8_t qs[32]; uint16_t qh[8]; } block_iq1_s;                    /* 50 */
typedef struct { uint8_t qs[32]; uint8_t qh[16]; uint8_t scales[8]; } block_iq1_m;          /* 56, d in the scales' top nibbles */
typedef struct { f16_t d; uint8_t qs[16]; } block_iq4_nl;              /* 18 */
typedef struct { f16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } block_iq4_xs; /* 136 */

/* fp16 / bf16 conversion (exact widening; RNE narrowing) */
static inline float llm_f16_to_f32(f16_t h) {
    /* branch-free (vectorises): a subnormal half is man * 2^-24, exact in float */
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7fffu;
    uint32_t norm = (em << 13) + (112u << 23);            /* exp 1..30: rebias */
    uint32_t special = (em << 13) | 0x7f800000u;           /* exp 31: inf, NaN (payload kept) */
    float sub = (float)(int32_t)em * 0x1p-24f;             /* exp 0: zero or subnormal */
    uint32_t subb; memcpy(&subb, &sub, 4);
    uint32_t m_sub = 0u - (uint32_t)(em < 0x0400u), m_spec = 0u - (uint32_t)(em >= 0x7c00u);
    uint32_t bits = (norm & ~(m_sub | m_spec)) | (subb & m_sub) | (special & m_spec) | sign;
    float f; memcpy(&f, &bits, 4); return f;
}
static inline f16_t llm_f32_to_f16(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (f16_t)(sign | 0x7e00);          /* NaN */
    if (ax >= 0x477ff000u) return (f16_t)(sign | 0x7c00);         /* overflow -> inf */
    if (ax < 0x38800000u) {                                       /* subnormal or zero */
        if (ax < 0x33000000u) return (f16_t)sign;                 /* < 2^-25 -> 0 (ties to even: 2^-25 -> 0) */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;                                 /* 14 + (113 - e) - ... */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (f16_t)(sign | r);
    }
    uint32_t r = ax + 0xc8000fffu + ((ax >> 13) & 1);             /* rebias exp (-112<<23) and round */
    return (f16_t)(sign | (r >> 13));
}
static inline float llm_bf16_to_f32(bf16_t h) { uint32_t b = (uint32_t)h << 16; float f; memcpy(&f, &b, 4); return f; }
static inline bf16_t llm_f32_to_bf16(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40);
    return (bf16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
#define FP16_TO_F32(h) llm_f16_to_f32(h)

/* llama.cpp's hsum_float_8 on 8 float lanes, in scalar code: _mm256 high half + low
 * half, + movehl, then add_ss of movehdup */
static inline float llm_hsum8(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    return (r0 + r2) + (r1 + r3);
}

/* Q4_K / Q5_K 6-bit scale unpacking */
static inline void llm_get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) { *d = q[j] & 63; *m = q[j + 4] & 63; }
    else { *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

/* The kernel table: what each entry computes, on which shapes matmul takes it and why
 * it exists is csrc/README.md's table ("The kernel table"); the signatures follow.
 * One vec-dot: s = dot(weight row w, activation row a) over n elements, a in the
 * paired activation type. Every ISA file fills a table of these. */
typedef void (*llm_vec_dot_fn)(long long n, float *s, const void *w, const void *a);
/* Multi-column vec-dot: s[c*s_stride] = dot(w row, activation row at a + c*a_stride
 * bytes) for c < nc, 1 <= nc <= LLM_NC_MAX (the weight row is decoded once for
 * all nc columns). Each s[c*s_stride] is bit-identical to vec_dot of the same
 * table on that column alone (batch invariance). NULL where a table has none:
 * callers then loop vec_dot. */
#define LLM_NC_MAX 6
#define LLM_NC2_MAX 12
#define LLM_R16 16   /* rows of vec_dot_r16: matmul's row tile */
#define LLM_R4 4     /* rows of vec_dot_r4 */
#define LLM_Q8W_BYTES(n) ((n) / 32 * 36)
/* the wide Q8_1 layout: quants, then the blocks' d, then their s, as floats */
#define LLM_Q8W1_BYTES(n) ((n) / 32 * 40)
#define LLM_WIDE_BYTES(at, n) ((at) == T_Q8_1 ? LLM_Q8W1_BYTES(n) : LLM_Q8W_BYTES(n))
typedef void (*llm_vec_dot_nc_fn)(long long n, float *s, long long s_stride, const void *w,
                                  const void *a, long long a_stride, int nc);
typedef void (*llm_vec_dot_r16_fn)(long long n, float *s, long long s_stride, const void *w, long long w_stride,
                                   int nr, const void *a, long long a_stride, int nc);
/* Attention inner loops over the F16 KV cache (attn_kernels.c): dot of two F16
 * rows (float accumulation), y(F16) = y + v*x rounded to F16 per element,
 * and y(F16) *= v (the flash-attention path). */
typedef float (*llm_dot_f16_fn)(const f16_t *a, const f16_t *b, int n);
typedef void (*llm_mad_f16_fn)(f16_t *y, const f16_t *x, float v, int n);
typedef void (*llm_scale_f16_fn)(f16_t *y, float v, int n);
struct llm_kernel_table;
/* Flash attention (online softmax, F16 accumulator rounded per update) of G query
 * rows q16 (G x n, F16) sharing one K/V head, over cache rows start..end
 * (inclusive, row s at K/V + s*stride): out (G x n floats). acc: G x n scratch.
 * Each row's operations are those of dot_f16 / scale_f16 / mad_f16 of the same
 * table applied to it alone, so results do not depend on G. sink: the G rows'
 * attention sinks (NULL: none), folded in at the end as llama.cpp's flash path does. */
typedef void (*llm_attn_fa_fn)(const struct llm_kernel_table *kt, const f16_t *q16, int G, const f16_t *K,
                               const f16_t *V, size_t stride, int start, int end, int n, float scale,
                               const float *sink, f16_t *acc, float *out);

typedef struct llm_kernel_table {
    llm_vec_dot_fn vec_dot[T_COUNT];
    llm_dot_f16_fn dot_f16;
    llm_mad_f16_fn mad_f16;
    llm_scale_f16_fn scale_f16;
    llm_vec_dot_nc_fn vec_dot_nc[T_COUNT];
    llm_attn_fa_fn attn_fa;     /* attn_kernels.c */
    /* vec_dot_nc over Q8_0 activations in the wide layout (LLM_Q8W_BYTES per
     * column of n elements: the nb = n/32 blocks' quants, 32 bytes each, then
     * their nb scales as floats): bit-identical to vec_dot_nc on the same
     * activations in Q8_0 blocks. For the types paired with Q8_1 (Q4_1, Q5_1),
     * the wide Q8_1 layout (LLM_Q8W1_BYTES: quants, the nb d, then the nb s, as
     * floats). NULL where a table has none. */
    llm_vec_dot_nc_fn vec_dot_ncw[T_COUNT];
    /* vec_dot_ncw for two adjacent weight rows (w, w + w_stride bytes) at once, any
     * nc (LLM_NC2_MAX columns per pass):
     * row 0 into s[c*s_stride], row 1 into s[c*s_stride + 1], each bit-identical
     * to vec_dot_ncw on that row. NULL where a table has none. */
    void (*vec_dot_ncw2[T_COUNT])(long long n, float *s, long long s_stride, const void *w, long long w_stride,
                                  const void *a, long long a_stride, int nc);
    /* the fewest columns for which matmul takes vec_dot_ncw2 (below: vec_dot_ncw) */
    unsigned char ncw2_min[T_COUNT];
    /* 1: this table's kernels take the wide Q8_0 layout's quants as x + 128
     * (unsigned bytes: x XOR 0x80) instead of x */
    int wide_xu;
    /* the same over the activation type's own blocks (vec_dot_nc's layout) */
    void (*vec_dot_nc2[T_COUNT])(long long n, float *s, long long s_stride, const void *w, long long w_stride,
                                 const void *a, long long a_stride, int nc);
    /* attn_exact.c: G query heads sharing one K/V head (q16: G x hd), without
     * flash attention, and g = silu(g)*u, with llama.cpp's numerics (the same bits
     * from every table, whatever G). sc: G rows of scs >= end/16*16 + 16 floats;
     * acc: G x 16 x hd floats; out: G x hd floats. sink: the G heads' attention
     * sinks (logits in the softmax's denominator only), NULL: none. */
    void (*attn_group)(const f16_t *q16, int G, const f16_t *K, const f16_t *V, size_t stride, int start, int end,
                       int hd, float scale, const float *sink, float *sc, size_t scs, float *acc, float *out);
    void (*swiglu)(float *g, const float *u, int n);
    /* one output of llama.cpp's F32 x F32 matmul (sgemm 1: its tinyBLAS path, 0: its
     * vec_dot), the same bits from every table (moe.c's router) */
    float (*dot_f32_exact)(const float *w, const float *x, int n, int sgemm);
    /* delta_net.c's steps in llama.cpp's order, the same bits from every table: one token
     * of ggml_gated_delta_net for one value head (S: d x d, column c contiguous; delta: d
     * floats of scratch), and ggml_ssm_conv of n <= 64 channels of a token (x: its nc
     * taps' rows, oldest first; w: nc per channel; y may be x[nc - 1]) */
    void (*delta_step)(float *S, const float *q, const float *k, const float *v, float beta, float decay,
                       float *delta, float *out, int d, float scale);
    void (*ssm_conv)(float *y, const float *const *x, const float *w, int nc, int n);
    /* Q4_K in the order of llama.cpp's repacked gemv (what its mixture-of-experts
     * matmul takes for Q4_K experts at any batch): per super-block the whole I and M,
     * acc = fma(I, dw*dx, acc), accm = fma(M, dmin*dx, accm); acc - accm. One column,
     * and up to LLM_NC_MAX columns (NULL: matmul loops the one-column kernel) */
    llm_vec_dot_fn q4_K_gemv;
    llm_vec_dot_nc_fn q4_K_gemv_nc;
    /* and LLM_R4 rows against one column, as vec_dot_r4 (NULL: one row at a time) */
    void (*q4_K_gemv_r4)(long long n, float *s, const void *w, long long w_stride, const void *a);
    /* and a row tile against several columns, as vec_dot_r16 (from r16_min[T_Q4_K]
     * columns; NULL: q4_K_gemv_nc) */
    llm_vec_dot_r16_fn q4_K_gemv_r16;
    /* Q4_0 in the order of llama.cpp's repacked batch path (q4_0_8x8_q8_0, which it
     * takes on AVX2 and up for weights with rows % 8 == 0; matmul.c picks these for
     * such weights): per block acc = fma(I, dw*dx, acc), one chain per (row, column).
     * One column and up to LLM_NC_MAX columns (NULL: matmul loops q4_0_rp); type_iq4.c
     * fills them */
    llm_vec_dot_fn q4_0_rp;
    llm_vec_dot_nc_fn q4_0_rp_nc;
    /* and a row tile against any nc >= 1 columns, as vec_dot_r16 (NULL: the forms above) */
    llm_vec_dot_r16_fn q4_0_rp_r16;
    /* nr (1..LLM_R16) weight rows (w + r*w_stride bytes) against nc columns (any nc)
     * in the activation type's own blocks: row r, column c into s[c*s_stride + r],
     * each bit-identical to vec_dot on that row and column. NULL where a table has
     * none. */
    llm_vec_dot_r16_fn vec_dot_r16[T_COUNT];
    /* the fewest columns for which matmul takes vec_dot_r16 */
    unsigned char r16_min[T_COUNT];
    /* LLM_R4 adjacent weight rows (w + r*w_stride bytes) against one activation
     * row: s[r], each bit-identical to vec_dot on that row (decode's one column).
     * NULL where a table has none. */
    void (*vec_dot_r4[T_COUNT])(long long n, float *s, const void *w, long long w_stride, const void *a);
    /* vec_dot_r4 on the decode copy (llm_repack_x4): the LLM_R4 rows' blocks
     * interleaved from w, block ib of row r at block 4 ib + r (Q5_K: each block's qs
     * in repack.c's QS_X4 order; Q4_K: the 4 blocks as one group, repack.c's
     * q4_K_group, against block_q8_K_x4 activations); w_stride unused; the same
     * bits. NULL where a table has none (matmul then takes the weights' own layout),
     * and q4_K_gemv_r4 so */
    void (*vec_dot_x4[T_COUNT])(long long n, float *s, const void *w, long long w_stride, const void *a);
    void (*q4_K_gemv_x4)(long long n, float *s, const void *w, long long w_stride, const void *a);
    /* n / 256 Q8_K blocks at xq rewritten in place as block_q8_K_x4 (block i at i * 276
     * bytes): the activations of vec_dot_x4[T_Q4_K] and q4_K_gemv_x4 (set with them) */
    void (*q8_K_x4)(long long n, void *xq);
    /* repack.c's q4_K_group (the copy's group of 4 Q4_K blocks, row r's at s + r rb)
     * with this table's instructions, the same bytes; NULL: repack.c's */
    void (*q4_K_group)(char *o, const char *s, size_t rb);
    /* vec_dot_r16 on the decode copy (nr a multiple of LLM_R4, w_stride the rows'
     * bytes), for any nc; and q4_K_gemv_r16 so. A weight with a copy is read only
     * there where the table has all four of its kernels (repack.c) */
    llm_vec_dot_r16_fn vec_dot_r16x4[T_COUNT];
    llm_vec_dot_r16_fn q4_K_gemv_r16x4;
    /* llm_quantize_act to Q8_K (n a multiple of 256) with this table's instructions,
     * the same bits; NULL: the portable one (matmul's activations: it runs on one
     * thread for one column, while the others wait) */
    void (*quant_q8_K)(const float *x, void *dst, long long n);
} llm_kernel_table;

/* attn_kernels.c: fills the attention entries for isa 0 scalar, 1 avx2, 2 avx512 */
void llm_attn_kernels(llm_kernel_table *t, int isa);
void llm_exact_kernels(llm_kernel_table *t, int isa);
/* attn_exact.c: llama.cpp's CPU softmax of one row of n floats (moe.c's router) */
void llm_softmax_exact(float *y, const float *x, int n);

void llm_kernels_scalar(llm_kernel_table *t);  /* dot_scalar.c: every type */
void llm_kernels_avx2(llm_kernel_table *t);    /* dot_avx2.c: overrides what it has */
void llm_kernels_avx512(llm_kernel_table *t);  /* dot_avx512.c: overrides what it has */
void llm_kernels_avx512_tiles(llm_kernel_table *t);  /* tiles_avx512.c: the K-quant row tiles */
/* type_iq4.c (IQ4_NL, IQ4_XS): the table entries for isa 0 scalar, 1 avx2, 2 avx512;
 * dequantizers and reference quantizers of nb blocks */
void llm_kernels_iq4(llm_kernel_table *t, int isa);
void llm_dq_iq4_nl(const uint8_t *b, float *y, long long nb);
void llm_dq_iq4_xs(const uint8_t *b, float *y, long long nb);
void llm_q_iq4_nl(const float *x, uint8_t *out, long long nb);
void llm_q_iq4_xs(const float *x, uint8_t *out, long long nb);
/* Weighted quantizers: one row of n floats with its n importance weights (qw may
 * be NULL only for types whose llama.cpp quantizer accepts that) */
typedef void (*qrow_w_fn)(const float *x, uint8_t *out, long long n, const float *qw);
void llm_qw_iq4_nl(const float *x, uint8_t *out, long long n, const float *qw);   /* type_iq4.c */
void llm_qw_iq4_xs(const float *x, uint8_t *out, long long n, const float *qw);
qrow_w_fn llm_weighted_qk(int type);   /* quantize_weighted.c: Q4_0 .. Q5_1, Q2_K .. Q6_K */
/* dot_avx2.c: its Q4_K / Q6_K bodies built for AVX-512VL, 8 columns per pass (for the AVX-512 table) */
void llm_kernels_avx2_kquant_nc8(llm_kernel_table *t);
/* type_fp4.c: MXFP4's and NVFP4's kernels for isa 0 scalar, 1 avx2, 2 avx512; their dequantizers and reference quantizers (nb blocks) */
void llm_kernels_fp4(llm_kernel_table *t, int isa);
void llm_dequant_mxfp4(const uint8_t *b, float *y, long long nb);
void llm_quantize_mxfp4(const float *x, uint8_t *out, long long nb);   /* quantize.c's writer */
void llm_dequant_nvfp4(const uint8_t *b, float *y, long long nb);
void llm_quantize_nvfp4(const float *x, uint8_t *out, long long nb);
/* type_ternary.c: TQ1_0 and TQ2_0, the same entries */
void llm_kernels_ternary(llm_kernel_table *t, int isa);
void llm_dequant_tq1_0(const uint8_t *b, float *y, long long nb);
void llm_dequant_tq2_0(const uint8_t *b, float *y, long long nb);
void llm_quantize_tq1_0(const float *x, uint8_t *out, long long nb);
void llm_quantize_tq2_0(const float *x, uint8_t *out, long long nb);

/* type_iq_grid.c: the grid i-quants' kernels into table t (isa 0 scalar, 1 avx2,
 * 2 avx512); their dequantizer (nb super-blocks, -1 for another type) */
void llm_kernels_iq_grid(llm_kernel_table *t, int isa);
int llm_iq_grid_type(int type);
int llm_iq_grid_dequantize(int type, const uint8_t *src, float *dst, long long nb);
/* quant_iq3.c, quant_iq2.c, quant_iq1.c: the grid i-quants' quantizers, one row of n
 * floats (n % 256 == 0) with its n importance weights qw (NULL: the reference's
 * default weights), llama.cpp's bytes */
void llm_q_iq3_xxs(const float *x, uint8_t *out, long long n, const float *qw);
void llm_q_iq3_s(const float *x, uint8_t *out, long long n, const float *qw);
void llm_q_iq2_xxs(const float *x, uint8_t *out, long long n, const float *qw);
void llm_q_iq2_xs(const float *x, uint8_t *out, long long n, const float *qw);
void llm_q_iq2_s(const float *x, uint8_t *out, long long n, const float *qw);
void llm_q_iq1_s(const float *x, uint8_t *out, long long n, const float *qw);
void llm_q_iq1_m(const float *x, uint8_t *out, long long n, const float *qw);

/* the active table (dispatch.c) */
const llm_kernel_table *llm_kernels(void);

/* thread pool (threads.c): run fn(ith, nth, arg) on every thread, main thread is ith 0 */
typedef void (*llm_task_fn)(int ith, int nth, void *arg);
/* fn(ith, nth, arg) on the pool: fn must take its work dynamically (a shared
 * counter), for any number of threads may take part (worker 0 always does) */
void llm_parallel(llm_task_fn fn, void *arg);
/* every thread runs fn once, with its own ith of nth (static shares) */
void llm_parallel_all(llm_task_fn fn, void *arg);

/* ops.c: the per-row steps of the forward pass */
void llm_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* YaRN's per-layer-kind constants (llama.cpp's rope_yarn): the correction dims, the
 * extrapolation mix and the magnitude scale (llm_yarn_init from the config) */
typedef struct { float corr[2], ext_factor, mscale; } llm_yarn;
void llm_yarn_init(llm_yarn *y, const llm_config *c, float base, float scale);
/* llama 4's query temperature at position pos (mistral3's attn_temp_scale; llama.cpp's
 * llm_graph_input_attn_temp, in double as it computes it) */
float llm_attn_temp(const llm_config *c, int pos);
/* y NULL: plain rope */
void llm_rope_cache(float *cs, int n_rot, int pos, float base, float scale, const float *freq_factors,
                    const llm_yarn *y);
void llm_rope_apply(float *x, const float *cs, int n_rot, int neox);
/* llm_rope_cache's pairs of an interleaved multi-section rope (qwen35) set for text */
void llm_rope_imrope(float *cs, int n_rot, const int *sections);
void llm_geglu(float *g, const float *u, int n);
void llm_ops_init(void);   /* builds the GELU table once */

/* matmul.c: nj (<= 32) one-column matmuls in one pool: Y[i] = W[i] X[i] (wtype[i],
 * rows[i] x k; gemv[i]: LLM_MV_GEMV, Q4_K in llama.cpp's repacked-gemv order, and
 * LLM_MV_X4, W[i] is the weight's decode copy), each input quantized once; every Y[i]
 * has the bits of its own llm_matmul (llm_matmul_q4_K_gemv). A token's routed experts
 * in one pool pass instead of one per expert. */
enum { LLM_MV_GEMV = 1, LLM_MV_X4 = 2 };
int llm_matvec_group(int nj, const int *wtype, const void *const *W, const long long *rows, long long k,
                     const float *const *X, float *const *Y, const unsigned char *gemv);
/* matmul.c: Y[i] = W[i] X for nw (<= 4) weights of k columns over the same ncols
 * activation rows X: the activations quantized once and every weight's row tiles
 * in one parallel pool; each Y[i] bit-identical to llm_matmul of that weight. how
 * (or NULL): LLM_MV_X4 where W[i] is the weight's decode copy */
int llm_matmul_multi(int nw, const int *wtype, const void *const *W, const long long *rows, long long k,
                     const float *X, long long ncols, float *const *Y, const unsigned char *how);

#endif
