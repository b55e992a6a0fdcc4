/* The 4-bit non-linear i-quants: IQ4_NL (32-element blocks, one fp16 scale,
 * against Q8_0) and IQ4_XS (256-element super-blocks, an fp16 scale and a 6-bit
 * signed scale per 32 elements, against Q8_K). A 4-bit code indexes the 16
 * values of KV below (llama.cpp's kvalues_iq4nl), so a weight is d * KV[code]
 * (IQ4_XS: d * (ls - 32) * KV[code]). Per 32 elements the 16 code bytes hold
 * element j in the low nibble of byte j and element j+16 in its high nibble.
 *
 * This file holds the family's dequantizers, quantizers (llama.cpp's
 * quantize_iq4_nl / quantize_iq4_xs, which is what ggml_quantize_chunk and
 * llama-quantize run, with and without an importance matrix), the scalar vec_dot
 * and its AVX2 and AVX-512 twins, their multi-column forms (vec_dot_nc), IQ4_XS's
 * 4-row one-column form (vec_dot_r4), the row tiles (vec_dot_r16: IQ4_NL from one
 * column, the Q4_0 row tile's kernel on its values (AVX-512: under 8 columns); on
 * AVX-512, 16 rows transposed into the lanes of a zmm for prefill, both types),
 * each giving every (row, column) vec_dot's bits, and the table filler
 * llm_kernels_iq4.
 *
 * The dot products follow llama.cpp's x86 batch path, bit for bit:
 *  IQ4_NL: weights with rows % 8 == 0 are repacked (repack.cpp, iq4_nl_8x8_q8_0)
 *    and multiplied by ggml_gemm/gemv_iq4_nl_8x8_q8_0 (arch/x86/repack.cpp):
 *    per (row, column) one float accumulator, per block b in order
 *      acc = fma((float)I_b, d_w * d_x, acc)
 *    I_b the exact integer dot of the block (|I_b| < 2^24: exact in float) and
 *    d_w * d_x the product of the two widened fp16 scales, rounded once. Its
 *    plain vec_dot (two 8-lane chains, then a horizontal sum) gives other bits;
 *    the batch path, which decode (its gemv) shares, is the reference.
 *  Q4_0 with rows % 8 == 0 is repacked too (q4_0_8x8_q8_0) and multiplied by
 *    ggml_gemm/gemv_q4_0_8x8_q8_0, which run the same x86 kernels
 *    (gemm/gemv_q4_b32_8x8_q8_0_lut_avx) on the code table q - 8: the IQ4_NL
 *    kernels below on KQ40 give those bits (the table's q4_0_rp entries; matmul.c
 *    takes them per weight by its row count, the other Q4_0 weights keep vec_dot).
 *  IQ4_XS: no repack on x86; with 8 or more columns mul_mat takes the tiled
 *    matmul (ggml-cpu/tiled, AVX-512 VNNI build): per super-block the exact
 *    integer I = sum over the 8 sub-blocks of ls * (w . x), then
 *      acc = fma((float)I * d_w, d_x, acc)
 *    ((float)I rounded when |I| >= 2^24; the product with d_w rounded once; its
 *    epilogue's add of the product with d_x is contracted to an fma by GCC). Its
 *    vec_dot (8 float lanes, one-column decode) gives other bits; the batch path
 *    is the reference here too.
 * Every kernel's result depends only on (n, weight row, activation row). */
#include <math.h>
#include "internal.h"

/* the 16 values of a code (llama.cpp's kvalues_iq4nl): iq_grids.h's, generated from
 * gguf-py's IQ4_NL.kvalues (the grid tables it also declares are unused here) */
#include "iq_grids.h"
#define KV llm_kvalues_iq4nl
/* Q4_0's codes as the same kind of table (q - 8: llama.cpp's signextendlut): its
 * repacked batch path runs the very kernels IQ4_NL's does, on this table */
static const int8_t KQ40[16] = {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7};

#define TGT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TGT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

/* IQ4_XS sub-block ib's scale: 4 low bits from scales_l, 2 high from scales_h, minus 32 */
static inline int xs_scale(const block_iq4_xs *x, int ib) {
    return (((x->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x->scales_h >> 2 * ib) & 3) << 4)) - 32;
}

/* 32 values in element order from 16 code bytes */
static inline void decode32(const uint8_t *qs, int8_t *v) {
    for (int j = 0; j < 16; j++) {
        v[j] = KV[qs[j] & 15];
        v[j + 16] = KV[qs[j] >> 4];
    }
}

/* ------------------------------------------------------- dequantization */

void llm_dq_iq4_nl(const uint8_t *b, float *y, long long nb) {
    const block_iq4_nl *x = (const block_iq4_nl *)b;
    for (long long i = 0; i < nb; i++, y += QK) {
        const float d = llm_f16_to_f32(x[i].d);
        int8_t v[QK];
        decode32(x[i].qs, v);
        for (int j = 0; j < QK; j++) y[j] = d * (float)v[j];
    }
}

void llm_dq_iq4_xs(const uint8_t *b, float *y, long long nb) {
    const block_iq4_xs *x = (const block_iq4_xs *)b;
    for (long long i = 0; i < nb; i++) {
        const float d = llm_f16_to_f32(x[i].d);
        for (int ib = 0; ib < QKK / 32; ib++, y += 32) {
            const float dl = d * (float)xs_scale(&x[i], ib);   /* rounded once, as ggml and gguf-py do */
            int8_t v[32];
            decode32(x[i].qs + 16 * ib, v);
            for (int j = 0; j < 32; j++) y[j] = dl * (float)v[j];
        }
    }
}

/* ------------------------------------------------------------ quantizers */

#define GROUP_MAX_EPS 1e-15f   /* below this a sub-block counts as all zero */
#define NTRY 7                 /* the scales tried around the first guess (ggml_quantize_chunk's) */

/* llama.cpp's nearest_int: round half to even for |v| <= 4194303 */
static inline int iq4_rne(float v) {
    float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* the code whose value is nearest x (ties to the lower; a NaN x gives 15), as
 * llama.cpp's best_index_int8 finds it by a binary search: for KV[0] < x < KV[15]
 * that search ends at lo = the last i with KV[i] <= x, counted here without
 * branches (the same comparisons, so the same code), then the nearer neighbour */
static inline int nearest_code(float x) {
    if (x != x) return 15;
    if (x <= KV[0]) return 0;
    if (x >= KV[15]) return 15;
    int lo = 0;
    for (int i = 1; i < 15; i++) lo += KV[i] <= x;
    return x - KV[lo] < KV[lo + 1] - x ? lo : lo + 1;
}

/* sum w*q*x and sum w*q*q over 32 elements for the codes of id*x; codes stored
 * in L when L is not NULL */
static inline void fit_sums(const float *x, const float *w, float id, uint8_t *L, float *sumqx, float *sumq2) {
    float qx = 0, q2 = 0;
    for (int j = 0; j < 32; j++) {
        const int l = nearest_code(id * x[j]);
        if (L) L[j] = (uint8_t)l;
        const float q = KV[l];
        qx += w[j] * q * x[j];
        q2 += w[j] * q * q;
    }
    *sumqx = qx;
    *sumq2 = q2;
}

/* the weighted least-squares scale of one 32-element sub-block: the best of a
 * first guess (the largest magnitude onto -127) and the 2*NTRY+1 scales mapping
 * it onto -127 + t; its codes in L. 0 for an all-zero sub-block (L left as it was). */
static float fit_block(const float *x, const float *w, uint8_t *L) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++) {
        const float ax = fabsf(x[j]);
        if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (amax < GROUP_MAX_EPS) return 0;
    float d = -max / KV[0], sumqx, sumq2;
    fit_sums(x, w, 1 / d, L, &sumqx, &sumq2);
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int t = -NTRY; t <= NTRY; t++) {
        fit_sums(x, w, (float)(t + KV[0]) / max, NULL, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* the fitting weights of the sub-block x[0..31] of a super-block of ns elements
 * whose sum of squares is ssq: x^2 without an importance matrix, else
 * qw * sqrt(sigma2 + x^2) with sigma2 = 2 * ssq / ns (llama.cpp's
 * quantize_row_iq4_nl_impl) */
static inline void block_weights(const float *x, const float *qw, float ssq, int ns, float *w) {
    const float sigma2 = ssq * (2.f / ns);
    for (int j = 0; j < 32; j++) w[j] = qw ? qw[j] * sqrtf(sigma2 + x[j] * x[j]) : x[j] * x[j];
}

static inline float sum_sq(const float *x, int n) {
    float s = 0;
    for (int j = 0; j < n; j++) s += x[j] * x[j];
    return s;
}

/* the 16 code bytes of 32 codes in element order */
static inline void pack_codes(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
}

/* one IQ4_NL block; qw its 32 importance weights or NULL */
static void q_nl_block(const float *x, const float *qw, block_iq4_nl *y) {
    /* the codes chosen again for the final scale (a block's one scale: no 6-bit step) */
    uint8_t L[QK];
    float w[QK];
    block_weights(x, qw, qw ? sum_sq(x, QK) : 0, QK, w);
    const float d = fit_block(x, w, L), id = d ? 1 / d : 0;
    y->d = llm_f32_to_f16(d);
    for (int j = 0; j < QK; j++) L[j] = (uint8_t)nearest_code(id * x[j]);
    pack_codes(L, y->qs);
}

/* one IQ4_XS super-block; qw its 256 importance weights or NULL */
static void q_xs_block(const float *x, const float *qw, block_iq4_xs *y) {
    float sc[QKK / 32], w[32], max_scale = 0, amax_scale = 0;
    uint8_t L[32];
    const float ssq = qw ? sum_sq(x, QKK) : 0;
    for (int ib = 0; ib < QKK / 32; ib++) {
        block_weights(x + 32 * ib, qw ? qw + 32 * ib : NULL, ssq, QKK, w);
        sc[ib] = fit_block(x + 32 * ib, w, L);
        if (fabsf(sc[ib]) > amax_scale) { amax_scale = fabsf(sc[ib]); max_scale = sc[ib]; }
    }
    /* the super-block scale maps the largest sub-block scale onto -32; each
     * sub-block's codes are then chosen again for its rounded 6-bit scale */
    const float d = -max_scale / 32, id = d ? 1 / d : 0.f;
    y->d = llm_f32_to_f16(d);
    y->scales_h = 0;
    memset(y->scales_l, 0, sizeof y->scales_l);
    for (int ib = 0; ib < QKK / 32; ib++) {
        int l = iq4_rne(id * sc[ib]);
        l = l < -32 ? -32 : l > 31 ? 31 : l;
        const float dl = d * l, idl = dl ? 1 / dl : 0.f;
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)nearest_code(idl * x[32 * ib + j]);
        pack_codes(L, y->qs + 16 * ib);
        l += 32;
        y->scales_l[ib / 2] |= (uint8_t)((l & 0xf) << 4 * (ib % 2));
        y->scales_h |= (uint16_t)((l >> 4) << 2 * ib);
    }
}

void llm_q_iq4_nl(const float *x, uint8_t *out, long long nb) {
    for (long long i = 0; i < nb; i++) q_nl_block(x + QK * i, NULL, (block_iq4_nl *)out + i);
}
void llm_q_iq4_xs(const float *x, uint8_t *out, long long nb) {
    for (long long i = 0; i < nb; i++) q_xs_block(x + QKK * i, NULL, (block_iq4_xs *)out + i);
}
/* with an importance matrix (one row of n elements and its n weights) */
void llm_qw_iq4_nl(const float *x, uint8_t *out, long long n, const float *qw) {
    for (long long i = 0; i < n / QK; i++) q_nl_block(x + QK * i, qw ? qw + QK * i : NULL, (block_iq4_nl *)out + i);
}
void llm_qw_iq4_xs(const float *x, uint8_t *out, long long n, const float *qw) {
    for (long long i = 0; i < n / QKK; i++) q_xs_block(x + QKK * i, qw ? qw + QKK * i : NULL, (block_iq4_xs *)out + i);
}

/* ------------------------------------------------------------ scalar dots */

/* the repacked gemm's step for one IQ4_NL block (every ISA's kernel runs it) */
static inline float nl_step(float acc, int32_t I, f16_t dw, f16_t dx) {
    return fmaf((float)I, llm_f16_to_f32(dw) * llm_f16_to_f32(dx), acc);
}

/* w . x over one block, exact */
static inline int32_t nl_int(const int8_t *lut, const block_iq4_nl *x, const int8_t *q8) {
    int32_t I = 0;
    for (int j = 0; j < QK / 2; j++) I += (int32_t)lut[x->qs[j] & 15] * q8[j] + (int32_t)lut[x->qs[j] >> 4] * q8[j + 16];
    return I;
}

static inline void dot_nl_lut(const int8_t *lut, long long n, float *s, const void *w, const void *a) {
    const block_iq4_nl *x = w;
    const block_q8_0 *y = a;
    float acc = 0;
    for (long long b = 0; b < n / QK; b++) acc = nl_step(acc, nl_int(lut, &x[b], y[b].qs), x[b].d, y[b].d);
    *s = acc;
}
static void dot_iq4_nl(long long n, float *s, const void *w, const void *a) { dot_nl_lut(KV, n, s, w, a); }
static void dot_q4_0_rp(long long n, float *s, const void *w, const void *a) { dot_nl_lut(KQ40, n, s, w, a); }

/* the tiled matmul's step for one IQ4_XS super-block (every ISA's kernel ends in it) */
static inline float xs_step(float acc, int32_t I, f16_t dw, float dx) {
    return fmaf((float)I * llm_f16_to_f32(dw), dx, acc);
}

/* IQ4_XS: each super-block's exact integer (INT) into the tiled step, in order */
#define DOT_IQ4_XS(NAME, TGT, INT)                                                  \
    TGT static void NAME(long long n, float *s, const void *w, const void *a) {    \
        const block_iq4_xs *x = w;                                                 \
        const block_q8_K *y = a;                                                   \
        float acc = 0;                                                             \
        for (long long b = 0; b < n / QKK; b++)                                    \
            acc = xs_step(acc, INT(&x[b], y[b].qs), x[b].d, y[b].d);               \
        *s = acc;                                                                  \
    }

/* sum over the 8 sub-blocks of (ls - 32) * (w . x), exact */
static inline int32_t xs_int(const block_iq4_xs *x, const int8_t *q8) {
    int32_t I = 0;
    for (int ib = 0; ib < QKK / 32; ib++) {
        int8_t v[32];
        decode32(x->qs + 16 * ib, v);
        int32_t p = 0;
        for (int j = 0; j < 32; j++) p += (int32_t)v[j] * q8[32 * ib + j];
        I += xs_scale(x, ib) * p;
    }
    return I;
}

DOT_IQ4_XS(dot_iq4_xs, , xs_int)

/* ------------------------------------------------------------------- x86 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* 16 code bytes -> their 32 values in element order (low nibbles, then high) */
TGT_AVX2 static inline __m256i decode32_lut_avx2(const int8_t *tab, const uint8_t *qs) {
    const __m128i lut = _mm_loadu_si128((const __m128i *)tab), m = _mm_set1_epi8(15);
    const __m128i v = _mm_loadu_si128((const __m128i *)qs);
    const __m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(v, m));
    const __m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(v, 4), m));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}
TGT_AVX2 static inline __m256i decode32_avx2(const uint8_t *qs) { return decode32_lut_avx2(KV, qs); }

/* the pair sums of |v| * (y with v's sign, negated in int8): llama.cpp's mul_add_epi8 */
TGT_AVX2 static inline __m256i mul_add_i8(__m256i v, __m256i y) {
    return _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(y, v));
}

/* the 8 lanes of v . y (4 elements each), exact for Q8_0's y (never -128, which
 * the sign trick would leave unnegated; no pair sum reaches 2^15) */
TGT_AVX2 static inline __m256i lanes_avx2(__m256i v, __m256i y) {
    return _mm256_madd_epi16(mul_add_i8(v, y), _mm256_set1_epi16(1));
}
TGT_AVX512 static inline __m256i lanes_vnni(__m256i v, __m256i y) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(v, v), _mm256_sign_epi8(y, v));
}

/* the 8 lane vectors' totals, r[k] = sum of p[k]'s lanes (integers: any order) */
TGT_AVX2 static inline __m256i totals8(const __m256i p[8]) {
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    /* a: [t0..t3 of the low halves | t0..t3 of the high halves]; b likewise for 4..7 */
    const __m256i lo = _mm256_permute2x128_si256(a, b, 0x20), hi = _mm256_permute2x128_si256(a, b, 0x31);
    return _mm256_add_epi32(lo, hi);
}

TGT_AVX2 static inline int32_t total1(__m256i p) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    s = _mm_hadd_epi32(s, s);
    return _mm_cvtsi128_si32(_mm_hadd_epi32(s, s));
}

static inline uint16_t rd_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* 8 fp16 values at byte stride st -> floats (built in registers: narrow stores then a
 * wide load would stall store forwarding) */
TGT_AVX2 static inline __m256 f16x8(const uint8_t *p, long long st) {
    __m128i h = _mm_cvtsi32_si128(rd_u16(p));
    h = _mm_insert_epi16(h, rd_u16(p + st), 1);
    h = _mm_insert_epi16(h, rd_u16(p + 2 * st), 2);
    h = _mm_insert_epi16(h, rd_u16(p + 3 * st), 3);
    h = _mm_insert_epi16(h, rd_u16(p + 4 * st), 4);
    h = _mm_insert_epi16(h, rd_u16(p + 5 * st), 5);
    h = _mm_insert_epi16(h, rd_u16(p + 6 * st), 6);
    h = _mm_insert_epi16(h, rd_u16(p + 7 * st), 7);
    return _mm256_cvtph_ps(h);
}

/* 8 consecutive blocks' d_w * d_x, rounded once each */
TGT_AVX2 static inline __m256 scales8(const block_iq4_nl *x, const block_q8_0 *y) {
    return _mm256_mul_ps(f16x8((const uint8_t *)&x->d, sizeof *x), f16x8((const uint8_t *)&y->d, sizeof *y));
}

/* the fma chain over 8 blocks: I (exact) times their scales, in block order */
TGT_AVX2 static inline float chain8(float acc, __m256i I, __m256 d) {
    float fi[8], fd[8];
    _mm256_storeu_ps(fi, _mm256_cvtepi32_ps(I));
    _mm256_storeu_ps(fd, d);
    for (int k = 0; k < 8; k++) acc = fmaf(fi[k], fd[k], acc);
    return acc;
}

/* IQ4_NL: 8 blocks' integer dots at a time, then their 8 chain steps; LANES is
 * lanes_avx2 or lanes_vnni (the same integers) */
#define DOT_IQ4_NL(NAME, TGT, LANES, LUT)                                                            \
    TGT static void NAME(long long n, float *s, const void *w, const void *a) {                  \
        const block_iq4_nl *x = w;                                                               \
        const block_q8_0 *y = a;                                                                 \
        const long long nb = n / QK;                                                             \
        float acc = 0;                                                                           \
        long long b = 0;                                                                         \
        for (; b + 8 <= nb; b += 8) {                                                            \
            __m256i p[8];                                                                        \
            for (int k = 0; k < 8; k++)                                                          \
                p[k] = LANES(decode32_lut_avx2(LUT, x[b + k].qs), _mm256_loadu_si256((const __m256i *)y[b + k].qs)); \
            acc = chain8(acc, totals8(p), scales8(&x[b], &y[b]));                                 \
        }                                                                                        \
        for (; b < nb; b++) {                                                                    \
            const int32_t I = total1(LANES(decode32_lut_avx2(LUT, x[b].qs), _mm256_loadu_si256((const __m256i *)y[b].qs))); \
            acc = nl_step(acc, I, x[b].d, y[b].d);                                                \
        }                                                                                        \
        *s = acc;                                                                                \
    }

DOT_IQ4_NL(dot_iq4_nl_avx2, TGT_AVX2, lanes_avx2, KV)
DOT_IQ4_NL(dot_iq4_nl_avx512, TGT_AVX512, lanes_vnni, KV)
DOT_IQ4_NL(dot_q4_0_rp_avx2, TGT_AVX2, lanes_avx2, KQ40)
DOT_IQ4_NL(dot_q4_0_rp_avx512, TGT_AVX512, lanes_vnni, KQ40)

/* A group of R contiguous rows read block by block interleaves R streams, which the
 * hardware prefetcher does not follow on weights streamed from memory: the group
 * AHEAD groups on is fetched as one sequential stream instead, the R*step bytes that
 * match offset off of each row (prefetches never fault, past the weight's end too) */
static inline void prefetch_rows_ahead(const void *w, long long w_stride, int R, int ahead, long long off, int step) {
    const uint8_t *pf = (const uint8_t *)w + ahead * R * w_stride + R * off;
    for (int l = 0; l < R * step; l += 64) __builtin_prefetch(pf + l, 0, 3);
}


/* xs_int: per sub-block the pair sums of |x| * (w with x's sign) (exact: Q8_K's
 * -128 becomes the unsigned 128, and w is never -128), madd'ed with its scale */
TGT_AVX2 static inline __m256i xs_sub_avx2(__m256i v, const int8_t *q8, __m256i ls) {
    const __m256i y = _mm256_loadu_si256((const __m256i *)q8);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(y), _mm256_sign_epi8(v, y)), ls);
}

TGT_AVX2 static inline __m256i xs_ls_avx2(const block_iq4_xs *x, int ib) {
    return _mm256_set1_epi16((int16_t)xs_scale(x, ib));
}

TGT_AVX2 static inline int32_t xs_int_avx2(const block_iq4_xs *x, const int8_t *q8) {
    __m256i sum = _mm256_setzero_si256();
    for (int ib = 0; ib < QKK / 32; ib++)
        sum = _mm256_add_epi32(sum, xs_sub_avx2(decode32_avx2(x->qs + 16 * ib), q8 + 32 * ib, xs_ls_avx2(x, ib)));
    return total1(sum);
}

DOT_IQ4_XS(dot_iq4_xs_avx2, TGT_AVX2, xs_int_avx2)

/* IQ4_XS, two sub-blocks per zmm: the 32 code bytes of sub-blocks ib, ib+1 ->
 * their 64 values in element order */
/* two runs of 16 code bytes (in one ymm: the first run low) -> their 64 values in element order */
TGT_AVX512 static inline __m512i decode2x32_lut_avx512(const int8_t *tab, __m256i q) {
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)tab));
    const __m512i v = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), _mm512_castsi256_si512(q));
    /* 128-bit lanes 1 and 3 take the high nibbles */
    const __m512i c = _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), _mm512_set1_epi8(15));
    return _mm512_shuffle_epi8(lut, c);
}
TGT_AVX512 static inline __m512i decode2x32_avx512(__m256i q) { return decode2x32_lut_avx512(KV, q); }

TGT_AVX512 static inline __m512i decode64_avx512(const uint8_t *qs) {
    return decode2x32_avx512(_mm256_loadu_si256((const __m256i *)qs));
}

/* xs_int, two sub-blocks per vpdpbusd: |x| (unsigned: -128 is 128) times w
 * negated where x < 0, exact; times the two scales */
TGT_AVX512 static inline __m512i xs_sub_avx512(__m512i v, const int8_t *q8, __m512i ls) {
    const __m512i y = _mm512_loadu_si512((const void *)q8);
    const __m512i sv = _mm512_mask_sub_epi8(v, _mm512_movepi8_mask(y), _mm512_setzero_si512(), v);
    return _mm512_mullo_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(y), sv), ls);
}

/* sub-blocks ib and ib+1's scales in the low and high 8 lanes */
TGT_AVX512 static inline __m512i xs_ls_avx512(const block_iq4_xs *x, int ib) {
    return _mm512_inserti64x4(_mm512_set1_epi32(xs_scale(x, ib)), _mm256_set1_epi32(xs_scale(x, ib + 1)), 1);
}

TGT_AVX512 static inline int32_t xs_int_avx512(const block_iq4_xs *x, const int8_t *q8) {
    __m512i sum = _mm512_setzero_si512();
    for (int ib = 0; ib < QKK / 32; ib += 2)
        sum = _mm512_add_epi32(sum, xs_sub_avx512(decode64_avx512(x->qs + 16 * ib), q8 + 32 * ib, xs_ls_avx512(x, ib)));
    return _mm512_reduce_add_epi32(sum);
}

DOT_IQ4_XS(dot_iq4_xs_avx512, TGT_AVX512, xs_int_avx512)

/* IQ4_XS, LLM_R4 rows against one column (decode): per row and 32 (AVX-512: 64)
 * elements the pair sums |y| * (w with y's sign) (vpmaddubsw: at most 2*128*127,
 * no saturation; AVX-512 takes |y| and the signs once for the 4 rows) times the
 * sub-block's scale as words, added into int32 lanes (vpmaddwd; vpdpwssd), so each
 * row's exact I of xs_int; then the 4 rows' xs_step in 4 lanes. The next rows are
 * prefetched as one sequential stream (the 4 interleaved row streams alone defeat
 * the hardware prefetcher on weights streamed from memory). */
#define XS_R4_PF 2   /* how many 4-row groups ahead */

/* a vector of int32 lanes folded to 8 (integers: any order) */
TGT_AVX2 static inline __m256i fold256(__m256i v) { return v; }
TGT_AVX512 static inline __m256i fold512(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* the 8 sub-block scales - 32 of a super-block as words */
TGT_AVX2 static inline __m128i xs_scale_words(const block_iq4_xs *x) {
    uint32_t sl;
    memcpy(&sl, x->scales_l, 4);
    const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)sl), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                        _mm256_set1_epi32(15));
    const __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(x->scales_h), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                                        _mm256_set1_epi32(3));
    const __m256i ls = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
    /* packs per 128-bit lane: [0..3 0..3 | 4..7 4..7] -> 0..7 in the low lane */
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packs_epi32(ls, ls), 0x08));
}

/* vpshufb control: every word of the low 256 bits <- word a of its 128-bit lane, of the high 256 <- word b */
TGT_AVX512 static inline __m512i word_pick2(int a, int b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(0x0100 + 0x0202 * a))),
                              _mm256_set1_epi16((short)(0x0100 + 0x0202 * b)), 1);
}

/* the 4 totals of 4 vectors of int32 lanes (integers: any order) */
TGT_AVX2 static inline __m128i totals4(const __m256i f[4]) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(f[0], f[1]), _mm256_hadd_epi32(f[2], f[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* xs_step in each of the 4 lanes: ((float)I * dw) rounded, then fma with dx */
TGT_AVX2 static inline __m128 xs_step4(__m128 acc, __m128i I, __m128i hw, float dx) {
    return _mm_fmadd_ps(_mm_mul_ps(_mm_cvtepi32_ps(I), _mm_cvtph_ps(hw)), _mm_set1_ps(dx), acc);
}

/* the 4 rows' d as fp16 words 0..3 */
TGT_AVX2 static inline __m128i xs_d4(const block_iq4_xs *const x[LLM_R4], long long b) {
    __m128i hw = _mm_cvtsi32_si128(x[0][b].d);
    for (int r = 1; r < LLM_R4; r++) hw = _mm_insert_epi16(hw, x[r][b].d, r);
    return hw;
}

TGT_AVX2 static void dot_iq4_xs_r4_avx2(long long n, float *s, const void *w, long long w_stride, const void *a) {
    const block_q8_K *y = a;
    const block_iq4_xs *x[LLM_R4];
    for (int r = 0; r < LLM_R4; r++) x[r] = (const block_iq4_xs *)((const uint8_t *)w + r * w_stride);
    __m128 acc = _mm_setzero_ps();
    for (long long b = 0; b < n / QKK; b++) {
        prefetch_rows_ahead(w, w_stride, LLM_R4, XS_R4_PF, b * (long long)sizeof(block_iq4_xs), sizeof(block_iq4_xs));
        __m256i p[LLM_R4];
        for (int r = 0; r < LLM_R4; r++) {
            const __m256i lsw = _mm256_broadcastsi128_si256(xs_scale_words(&x[r][b]));
            p[r] = _mm256_setzero_si256();
            for (int ib = 0; ib < QKK / 32; ib++) {
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[b].qs + 32 * ib));
                const __m256i q = _mm256_maddubs_epi16(_mm256_abs_epi8(yv), _mm256_sign_epi8(decode32_avx2(x[r][b].qs + 16 * ib), yv));
                p[r] = _mm256_add_epi32(p[r], _mm256_madd_epi16(q, _mm256_shuffle_epi8(lsw, _mm256_set1_epi16((short)(0x0100 + 0x0202 * ib)))));
            }
        }
        acc = xs_step4(acc, totals4(p), xs_d4(x, b), y[b].d);
    }
    _mm_storeu_ps(s, acc);
}

TGT_AVX512 static void dot_iq4_xs_r4_avx512(long long n, float *s, const void *w, long long w_stride, const void *a) {
    const block_q8_K *y = a;
    const block_iq4_xs *x[LLM_R4];
    for (int r = 0; r < LLM_R4; r++) x[r] = (const block_iq4_xs *)((const uint8_t *)w + r * w_stride);
    __m128 acc = _mm_setzero_ps();
    __m512i pick[4];
    for (int i = 0; i < 4; i++) pick[i] = word_pick2(2 * i, 2 * i + 1);
    for (long long b = 0; b < n / QKK; b++) {
        prefetch_rows_ahead(w, w_stride, LLM_R4, XS_R4_PF, b * (long long)sizeof(block_iq4_xs), sizeof(block_iq4_xs));
        __m512i ay[4];
        __mmask64 neg[4];
        for (int i = 0; i < 4; i++) {
            const __m512i yv = _mm512_loadu_si512((const void *)(y[b].qs + 64 * i));
            ay[i] = _mm512_abs_epi8(yv);   /* -128 as the unsigned 128 */
            neg[i] = _mm512_movepi8_mask(yv);
        }
        __m256i f[LLM_R4];
        for (int r = 0; r < LLM_R4; r++) {
            const __m512i lsw = _mm512_broadcast_i32x4(xs_scale_words(&x[r][b]));
            __m512i p = _mm512_setzero_si512();
            for (int i = 0; i < 4; i++) {
                const __m512i v = decode64_avx512(x[r][b].qs + 32 * i);
                const __m512i sv = _mm512_mask_sub_epi8(v, neg[i], _mm512_setzero_si512(), v);
                p = _mm512_dpwssd_epi32(p, _mm512_maddubs_epi16(ay[i], sv), _mm512_shuffle_epi8(lsw, pick[i]));
            }
            f[r] = fold512(p);
        }
        acc = xs_step4(acc, totals4(f), xs_d4(x, b), y[b].d);
    }
    _mm_storeu_ps(s, acc);
}

/* ---- multi-column forms (vec_dot_nc): the weight decoded once for up to
 * LLM_NC_MAX columns, column c's chain in lane c of one float vector. Lane c
 * runs exactly vec_dot's steps on its own integers (the same exact I, the same
 * once-rounded scale products, the same fma, in block order), so each column
 * gets vec_dot's bits whatever nc. Lanes past nc compute on zeros. */

/* every pass computes NCP lanes (a fixed count: the loops over the columns unroll
 * into registers); lanes past nc repeat column 0, lanes NCP..7 hold zeros */
#define NCP LLM_NC_MAX

/* the lanes' column pointers (column c at a + c*a_stride) */
static inline void column_ptrs(const void *a, long long a_stride, int nc, const uint8_t *col[NCP]) {
    for (int c = 0; c < NCP; c++) col[c] = (const uint8_t *)a + (c < nc ? c : 0) * a_stride;
}

static inline float rd_f32(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }

/* the lanes' fp16 block scales at byte offset off of each column -> floats (built
 * in registers: narrow stores then a wide load would stall store forwarding) */
TGT_AVX2 static inline __m256 col_scales_f16(const uint8_t *const col[NCP], long long off) {
    __m128i h = _mm_cvtsi32_si128(rd_u16(col[0] + off));
    h = _mm_insert_epi16(h, rd_u16(col[1] + off), 1);
    h = _mm_insert_epi16(h, rd_u16(col[2] + off), 2);
    h = _mm_insert_epi16(h, rd_u16(col[3] + off), 3);
    h = _mm_insert_epi16(h, rd_u16(col[4] + off), 4);
    h = _mm_insert_epi16(h, rd_u16(col[5] + off), 5);
    return _mm256_cvtph_ps(h);
}

TGT_AVX2 static inline __m256 col_scales_f32(const uint8_t *const col[NCP], long long off) {
    return _mm256_setr_ps(rd_f32(col[0] + off), rd_f32(col[1] + off), rd_f32(col[2] + off), rd_f32(col[3] + off),
                          rd_f32(col[4] + off), rd_f32(col[5] + off), 0.f, 0.f);
}

/* an fp16 value widened, in every lane (F16C: cheaper than the scalar converter) */
TGT_AVX2 static inline __m256 bcast_f16(f16_t h) {
    return _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

TGT_AVX2 static inline void store_cols(__m256 acc, float *s, long long s_stride, int nc) {
    float r[8];
    _mm256_storeu_ps(r, acc);
    for (int c = 0; c < nc; c++) s[c * s_stride] = r[c];
}

/* IQ4_NL: one block for the columns, their I in the lanes of one vector, then
 * nl_step in each lane */
TGT_AVX2 static inline __m256 nl_nc_step(const int8_t *lut, __m256 acc, const block_iq4_nl *xb, const uint8_t *const col[NCP],
                                          long long off) {
    const __m256i v = decode32_lut_avx2(lut, xb->qs);
    __m256i p[8] = {0};
    for (int c = 0; c < NCP; c++) p[c] = lanes_avx2(v, _mm256_loadu_si256((const __m256i *)(col[c] + off + 2)));
    const __m256 d = _mm256_mul_ps(bcast_f16(xb->d), col_scales_f16(col, off));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(totals8(p)), d, acc);
}

TGT_AVX2 static inline void nl_nc_avx2(const int8_t *lut, long long n, float *s, long long s_stride, const void *w,
                                       const void *a, long long a_stride, int nc) {
    const block_iq4_nl *x = w;
    const uint8_t *col[NCP];
    column_ptrs(a, a_stride, nc, col);
    __m256 acc = _mm256_setzero_ps();
    for (long long b = 0; b < n / QK; b++) acc = nl_nc_step(lut, acc, &x[b], col, b * (long long)sizeof(block_q8_0));
    store_cols(acc, s, s_stride, nc);
}
TGT_AVX2 static void dot_iq4_nl_nc_avx2(long long n, float *s, long long s_stride, const void *w, const void *a,
                                        long long a_stride, int nc) {
    nl_nc_avx2(KV, n, s, s_stride, w, a, a_stride, nc);
}
TGT_AVX2 static void dot_q4_0_rp_nc_avx2(long long n, float *s, long long s_stride, const void *w, const void *a,
                                         long long a_stride, int nc) {
    nl_nc_avx2(KQ40, n, s, s_stride, w, a, a_stride, nc);
}

/* The 8 rows' interleaved streams defeat the hardware prefetcher on weights streamed
 * from memory (matvec 16384x4096 on one thread: 4.3 ms against the old one-row
 * kernel's 3.0): the 8-row group Q40_PF ahead (contiguous) is fetched as one
 * sequential stream, 144 bytes per block step (1 group ahead: 3.5 ms, 2: 3.0 ms).
 * Prefetches never fault, past the weight's end too. */
#ifndef Q40_PF
#define Q40_PF 2   /* how many 8-row groups ahead */
#endif

/* The repacked order on AVX2, 8 rows against NC columns (as the AVX-512 row tile
 * below): per block each row's 32 elements decoded once, per column and row the
 * pair sums (int16, exact; Q4_0: u*y less 8*y for its unsigned nibbles u, |.| <=
 * 2*8*127; NL, IQ4_NL: lanes_avx2's |v| * (y with v's sign) for its values v)
 * summed to 8 int32 lanes, the 8 rows' totals in the lanes of one vector (I exact),
 * then per lane (row) acc = fma(I, dw*dx, acc): vec_dot's bits whatever nr and nc. */
__attribute__((always_inline)) TGT_AVX2 static inline void rp_r8_cols_avx2(long long nb, float *s, long long s_stride,
                                                                         const uint8_t *w, long long w_stride,
                                                                         const uint8_t *a, long long a_stride,
                                                                         const int NC, const int NL) {
    __m256 acc[4];
    for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();
    const __m128i m15 = _mm_set1_epi8(15);
    const __m256i ones = _mm256_set1_epi16(1), eight = _mm256_set1_epi8(8);
    for (long long b = 0; b < nb; b++) {
        const uint8_t *wb = w + b * (long long)sizeof(block_q4_0);
        prefetch_rows_ahead(w, w_stride, 8, Q40_PF, b * (long long)sizeof(block_q4_0), sizeof(block_q4_0));
        __m256i u[8];
        for (int r = 0; r < 8; r++) {
            const __m128i v = _mm_loadu_si128((const __m128i *)(wb + r * w_stride + 2));
            u[r] = NL ? decode32_avx2(wb + r * w_stride + 2)
                      : _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(v, m15)),
                                                _mm_and_si128(_mm_srli_epi16(v, 4), m15), 1);
        }
        const __m256 dw = f16x8(wb, w_stride);
        for (int c = 0; c < NC; c++) {
            const block_q8_0 *y = (const block_q8_0 *)(a + c * a_stride) + b;
            const __m256i yv = _mm256_loadu_si256((const __m256i *)y->qs);
            const __m256i m16 = _mm256_maddubs_epi16(eight, yv);
            __m256i p[8];
            for (int r = 0; r < 8; r++)
                p[r] = NL ? lanes_avx2(u[r], yv) : _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(u[r], yv), m16), ones);
            const __m256 d = _mm256_mul_ps(dw, bcast_f16(y->d));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(totals8(p)), d, acc[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm256_storeu_ps(s + c * s_stride, acc[c]);
}

/* a row tile in the repacked order on AVX2 (NL: IQ4_NL's values, else Q4_0's), as rp_r16_avx512 */
__attribute__((always_inline)) TGT_AVX2 static inline void rp_r16_avx2(long long n, float *s, long long s_stride, const void *w,
                                                                     long long w_stride, int nr, const void *a,
                                                                     long long a_stride, int nc, const int NL) {
    const long long nb = n / QK;
    const uint8_t *wp = w, *ap = a;
    int r = 0;
    for (; r + 8 <= nr; r += 8) {
        int c = 0;
        for (; c + 4 <= nc; c += 4) rp_r8_cols_avx2(nb, s + c * s_stride + r, s_stride, wp + r * w_stride, w_stride, ap + c * a_stride, a_stride, 4, NL);
        if (nc - c >= 2) { rp_r8_cols_avx2(nb, s + c * s_stride + r, s_stride, wp + r * w_stride, w_stride, ap + c * a_stride, a_stride, 2, NL); c += 2; }
        if (nc - c >= 1) rp_r8_cols_avx2(nb, s + c * s_stride + r, s_stride, wp + r * w_stride, w_stride, ap + c * a_stride, a_stride, 1, NL);
    }
    for (; r < nr; r++)   /* rows past the last 8 (never, for the Q4_0 weights that take this order) */
        for (int c = 0; c < nc; c += NCP)
            nl_nc_avx2(NL ? KV : KQ40, n, s + c * s_stride + r, s_stride, wp + r * w_stride, ap + c * a_stride, a_stride,
                       nc - c < NCP ? nc - c : NCP);
}
TGT_AVX2 static void dot_q4_0_rp_r16_avx2(long long n, float *s, long long s_stride, const void *w, long long w_stride,
                                          int nr, const void *a, long long a_stride, int nc) {
    rp_r16_avx2(n, s, s_stride, w, w_stride, nr, a, a_stride, nc, 0);
}
TGT_AVX2 static void dot_iq4_nl_r16_avx2(long long n, float *s, long long s_stride, const void *w, long long w_stride,
                                         int nr, const void *a, long long a_stride, int nc) {
    rp_r16_avx2(n, s, s_stride, w, w_stride, nr, a, a_stride, nc, 1);
}

/* the 128-bit quarters' sums of the 16 lanes of a and b, interleaved per quarter:
 * [a0+a2, b0+b2, a1+a3, b1+b3] in each quarter (integers: any order) */
TGT_AVX512 static inline __m512i pair_fold(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
}

/* IQ4_NL on AVX-512, two blocks per zmm: p[c] holds column c's 8 lanes of block b
 * (low half) and block b+1 (high half); their totals as two vectors over the columns */
TGT_AVX512 static inline void totals_2x8(const __m512i p[8], __m256i *t0, __m256i *t1) {
    const __m512i f01 = pair_fold(p[0], p[1]), f23 = pair_fold(p[2], p[3]);
    const __m512i f45 = pair_fold(p[4], p[5]), f67 = pair_fold(p[6], p[7]);
    /* per quarter: the quarter's sum for columns 0..3 (4..7) */
    const __m512i q03 = _mm512_add_epi32(_mm512_unpacklo_epi64(f01, f23), _mm512_unpackhi_epi64(f01, f23));
    const __m512i q47 = _mm512_add_epi32(_mm512_unpacklo_epi64(f45, f67), _mm512_unpackhi_epi64(f45, f67));
    /* quarters 0+1 (block b) and 2+3 (block b+1): [b 0..3, b+1 0..3, b 4..7, b+1 4..7] */
    const __m512i s = _mm512_add_epi32(_mm512_shuffle_i64x2(q03, q47, _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_i64x2(q03, q47, _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i o = _mm512_shuffle_i64x2(s, s, _MM_SHUFFLE(3, 1, 2, 0));
    *t0 = _mm512_castsi512_si256(o);
    *t1 = _mm512_extracti64x4_epi64(o, 1);
}

TGT_AVX512 static inline void nl_nc_avx512(const int8_t *lut, long long n, float *s, long long s_stride, const void *w,
                                           const void *a, long long a_stride, int nc) {
    const block_iq4_nl *x = w;
    const uint8_t *col[NCP];
    column_ptrs(a, a_stride, nc, col);
    const long long nb = n / QK;
    __m256 acc = _mm256_setzero_ps();
    long long b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m512i v = decode2x32_lut_avx512(lut, _mm256_loadu2_m128i((const __m128i *)x[b + 1].qs, (const __m128i *)x[b].qs));
        const __m512i av = _mm512_abs_epi8(v);
        const __mmask64 neg = _mm512_movepi8_mask(v);
        const long long off = b * (long long)sizeof(block_q8_0);
        __m512i p[8] = {0};
        for (int c = 0; c < NCP; c++) {
            const __m512i y = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(col[c] + off + 2))),
                                                 _mm256_loadu_si256((const __m256i *)(col[c] + off + sizeof(block_q8_0) + 2)), 1);
            /* y negated where w < 0: exact, Q8_0 has no -128 */
            p[c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), av, _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y));
        }
        __m256i I0, I1;
        totals_2x8(p, &I0, &I1);
        const __m256 d0v = _mm256_mul_ps(bcast_f16(x[b].d), col_scales_f16(col, off));
        const __m256 d1v = _mm256_mul_ps(bcast_f16(x[b + 1].d), col_scales_f16(col, off + sizeof(block_q8_0)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(I0), d0v, acc);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(I1), d1v, acc);
    }
    if (b < nb) acc = nl_nc_step(lut, acc, &x[b], col, b * (long long)sizeof(block_q8_0));   /* the last block alone */
    store_cols(acc, s, s_stride, nc);
}
TGT_AVX512 static void dot_iq4_nl_nc_avx512(long long n, float *s, long long s_stride, const void *w, const void *a,
                                            long long a_stride, int nc) {
    nl_nc_avx512(KV, n, s, s_stride, w, a, a_stride, nc);
}
TGT_AVX512 static void dot_q4_0_rp_nc_avx512(long long n, float *s, long long s_stride, const void *w, const void *a,
                                             long long a_stride, int nc) {
    nl_nc_avx512(KQ40, n, s, s_stride, w, a, a_stride, nc);
}

/* The repacked order (Q4_0's, IQ4_NL's), 8 rows against NC columns (an 8-row group
 * of a row tile, llama.cpp's gemm shape): per block the 8 rows' values decoded once
 * as unsigned bytes u = value + OFF (two rows per zmm; Q4_0: its nibble, OFF 8;
 * IQ4_NL: a vpshufb of the table KV + 128, OFF 128), per column the 8 rows' exact
 * I = u . y - OFF * sum(y) (the second term is the start value of the dpbusd,
 * exact: Q8_0 has no -128; no lane sum passes 4*255*127) in the lanes of one
 * vector, then per lane (row) acc = fma(I, dw*dx, acc): each (row, column) runs
 * vec_dot's steps, so the bits are vec_dot's whatever nr and nc. The lanes hold
 * the rows in the order 0 2 4 6 1 3 5 7 (the fold's), put back at the store. */
TGT_AVX512 static inline __m256i rows8_totals(const __m512i p[4]) {
    const __m512i f01 = pair_fold(p[0], p[1]), f23 = pair_fold(p[2], p[3]);
    /* per quarter: the quarter's sum of p0, p1, p2, p3 */
    const __m512i g = _mm512_add_epi32(_mm512_unpacklo_epi64(f01, f23), _mm512_unpackhi_epi64(f01, f23));
    /* quarters 0+1 (rows 0 2 4 6), 2+3 (rows 1 3 5 7) */
    const __m512i t = _mm512_add_epi32(_mm512_shuffle_i64x2(g, g, _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_i64x2(g, g, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_castsi512_si256(t);
}

/* two rows' 16 nibble bytes (in one ymm: the first row low) -> their 64 nibbles in element order */
TGT_AVX512 static inline __m512i nibbles2x32_avx512(__m256i q) {
    const __m512i v = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), _mm512_castsi256_si512(q));
    return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), _mm512_set1_epi8(15));
}

__attribute__((always_inline)) TGT_AVX512 static inline void rp_r8_cols(long long nb, float *s, long long s_stride,
                                                                       const block_q4_0 *const x[8], const uint8_t *a,
                                                                       long long a_stride, const int NC, const int NL) {
    __m256 acc[8];
    /* IQ4_NL's values + 128 (1..241), in every 128-bit lane */
    const __m512i lut = _mm512_broadcast_i32x4(_mm_add_epi8(_mm_loadu_si128((const __m128i *)KV), _mm_set1_epi8(-128)));
    const __m512i off = _mm512_set1_epi8(NL ? (char)128 : 8);
    for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();
    const __m256i back = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);   /* row r's lane (lanes: rows 0 2 4 6 1 3 5 7) */
    for (long long b = 0; b < nb; b++) {
        prefetch_rows_ahead(x[0], (const uint8_t *)x[1] - (const uint8_t *)x[0], 8, Q40_PF, b * (long long)sizeof(block_q4_0),
                            sizeof(block_q4_0));
        __m512i u[4];
        for (int h = 0; h < 4; h++) {
            u[h] = nibbles2x32_avx512(_mm256_loadu2_m128i((const __m128i *)x[2 * h + 1][b].qs, (const __m128i *)x[2 * h][b].qs));
            if (NL) u[h] = _mm512_shuffle_epi8(lut, u[h]);
        }
        __m128i hw = _mm_cvtsi32_si128(x[0][b].d);
        hw = _mm_insert_epi16(hw, x[2][b].d, 1);
        hw = _mm_insert_epi16(hw, x[4][b].d, 2);
        hw = _mm_insert_epi16(hw, x[6][b].d, 3);
        hw = _mm_insert_epi16(hw, x[1][b].d, 4);
        hw = _mm_insert_epi16(hw, x[3][b].d, 5);
        hw = _mm_insert_epi16(hw, x[5][b].d, 6);
        hw = _mm_insert_epi16(hw, x[7][b].d, 7);
        const __m256 dw = _mm256_cvtph_ps(hw);
        for (int c = 0; c < NC; c++) {
            const block_q8_0 *y = (const block_q8_0 *)(a + c * a_stride) + b;
            const __m512i yv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)y->qs));
            /* -OFF * y's lane sums (OFF * -y: exact, no -128), the dpbusd's start */
            const __m512i m8 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, _mm512_sub_epi8(_mm512_setzero_si512(), yv));
            __m512i p[4];
            for (int h = 0; h < 4; h++) p[h] = _mm512_dpbusd_epi32(m8, u[h], yv);
            const __m256 d = _mm256_mul_ps(dw, bcast_f16(y->d));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(rows8_totals(p)), d, acc[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm256_storeu_ps(s + c * s_stride, _mm256_permutevar8x32_ps(acc[c], back));
}

/* a row tile in the repacked order (NL: IQ4_NL's values, else Q4_0's): 8-row groups
 * against the columns 8, 4, 2, 1 at a time, the rows past the last 8 one by one */
__attribute__((always_inline)) TGT_AVX512 static inline void rp_r16_avx512(long long n, float *s, long long s_stride,
                                                                         const void *w, long long w_stride, int nr,
                                                                         const void *a, long long a_stride, int nc,
                                                                         const int NL) {
    const long long nb = n / QK;
    const uint8_t *ap = a;
    int r = 0;
    for (; r + 8 <= nr; r += 8) {
        const block_q4_0 *x[8];
        for (int i = 0; i < 8; i++) x[i] = (const block_q4_0 *)((const uint8_t *)w + (r + i) * w_stride);
        int c = 0;
        for (; c + 8 <= nc; c += 8) rp_r8_cols(nb, s + c * s_stride + r, s_stride, x, ap + c * a_stride, a_stride, 8, NL);
        if (nc - c >= 4) { rp_r8_cols(nb, s + c * s_stride + r, s_stride, x, ap + c * a_stride, a_stride, 4, NL); c += 4; }
        if (nc - c >= 2) { rp_r8_cols(nb, s + c * s_stride + r, s_stride, x, ap + c * a_stride, a_stride, 2, NL); c += 2; }
        if (nc - c >= 1) rp_r8_cols(nb, s + c * s_stride + r, s_stride, x, ap + c * a_stride, a_stride, 1, NL);
    }
    for (; r < nr; r++)   /* rows past the last 8 (never, for the Q4_0 weights that take this order) */
        for (int c = 0; c < nc; c += NCP)
            nl_nc_avx512(NL ? KV : KQ40, n, s + c * s_stride + r, s_stride, (const uint8_t *)w + r * w_stride,
                         ap + c * a_stride, a_stride, nc - c < NCP ? nc - c : NCP);
}
TGT_AVX512 static void dot_q4_0_rp_r16_avx512(long long n, float *s, long long s_stride, const void *w, long long w_stride,
                                              int nr, const void *a, long long a_stride, int nc) {
    rp_r16_avx512(n, s, s_stride, w, w_stride, nr, a, a_stride, nc, 0);
}

/* IQ4_NL prefill tile: 16 rows in the lanes of a zmm. Per chunk of NL_IBC blocks
 * the rows' codes are gathered and transposed once (lane r of U[t][g]: row r's
 * values + 128 of elements 4g..4g+3 of block t, unsigned), then reused for every
 * column of a pass: one vpdpbusd against a column's 4 quants broadcast adds 64
 * products, with no horizontal sums. Per (row, column) and block the exact
 * I = u . y - 128 * sum(y) (the second term the chain's start value, the same in
 * every lane), then acc = fma(I, dw*dx, acc) in block order: vec_dot's steps, so
 * its bits whatever nr and nc. The gathers pay from about NL_T16_MIN columns; below,
 * rp_r16_avx512. */
#define NL_IBC 8        /* blocks transposed at a time */
#define NL_T16_MIN 8    /* fewer columns: the 8-row kernel (at 8 the two ran even; at 12, 16 the tile 1.2-1.3x) */

/* 32 elements' codes of the 16 rows (16 code bytes at qs + ix[r]) -> u[g]: lane r =
 * row r's values + 128 of elements 4g..4g+3 (code dword d: elements 4d.. in its low
 * nibbles, 16+4d.. in its high ones) */
TGT_AVX512 static inline void t16_codes(const uint8_t *qs, __m512i ix, __m512i u[8]) {
    const __m512i lut = _mm512_broadcast_i32x4(_mm_add_epi8(_mm_loadu_si128((const __m128i *)KV), _mm_set1_epi8(-128)));
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int d = 0; d < 4; d++) {
        const __m512i v = _mm512_i32gather_epi32(ix, qs + 4 * d, 1);
        u[d] = _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m4));
        u[4 + d] = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi32(v, 4), m4));
    }
}

/* D[c] += u . (column c's 32 quants at q[c]), per lane (row) */
__attribute__((always_inline)) TGT_AVX512 static inline void t16_dots(__m512i *D, const __m512i u[8],
                                                                    const int8_t *const *q, const int NC) {
    for (int g = 0; g < 8; g++)
        for (int c = 0; c < NC; c++) {
            int32_t v;
            memcpy(&v, q[c] + 4 * g, 4);
            D[c] = _mm512_dpbusd_epi32(D[c], u[g], _mm512_set1_epi32(v));
        }
}

typedef struct {
    __m512i u[NL_IBC][8];   /* block t, group g of 4 values + 128 */
    __m512 dw[NL_IBC];      /* block t's widened d, per row */
} nl_t16;

/* a block of the 16 rows (at p + ix[r]) into slot t */
TGT_AVX512 static inline void nl_t16_dec(nl_t16 *T, int t, const uint8_t *p, __m512i ix) {
    T->dw[t] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(ix, p, 1)));
    t16_codes(p + 2, ix, T->u[t]);
}

/* -128 * the sum of a Q8_0 block's 32 quants, in every lane (vpsadbw of y + 128,
 * less 128 * 32) */
TGT_AVX512 static inline __m512i q8_0_neg128_sum(const block_q8_0 *y) {
    const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)y->qs), _mm256_set1_epi8((char)0x80));
    const __m256i q = _mm256_sad_epu8(v, _mm256_setzero_si256());
    __m128i h = _mm_add_epi64(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    h = _mm_add_epi64(h, _mm_unpackhi_epi64(h, h));
    return _mm512_sub_epi32(_mm512_set1_epi32(128 * 32 * 128), _mm512_slli_epi32(_mm512_broadcastd_epi32(h), 7));
}

/* NC columns (blocks b0.. at y[c]) over nib transposed blocks */
__attribute__((always_inline)) TGT_AVX512 static inline void nl_t16_cols(const nl_t16 *T, int nib,
                                                                       const block_q8_0 *const *y, __m512 *acc,
                                                                       const int NC) {
    __m512 a[8];
    for (int c = 0; c < NC; c++) a[c] = acc[c];
    for (int t = 0; t < nib; t++) {
        __m512i I[8];
        const int8_t *q[8];
        for (int c = 0; c < NC; c++) {
            I[c] = q8_0_neg128_sum(&y[c][t]);
            q[c] = y[c][t].qs;
        }
        t16_dots(I, T->u[t], q, NC);
        for (int c = 0; c < NC; c++) {
            const __m512 d = _mm512_mul_ps(T->dw[t], _mm512_cvtph_ps(_mm256_set1_epi16((short)y[c][t].d)));
            a[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[c]), d, a[c]);
        }
    }
    for (int c = 0; c < NC; c++) acc[c] = a[c];
}

/* the 16-row tile over TT: passes of T16_NCP columns; per pass, IBC blocks of type BLK
 * transposed (DEC) then run over the columns (activation blocks ABLK), 8 at a time (COLS) */
#define T16_NCP 128   /* columns per pass: the transposed codes are reused this often */
#define T16_TILE(NAME, TT, IBC, BLK, ABLK, DEC, COLS)                                                       \
    TGT_AVX512 static void NAME(long long n, float *s, long long s_stride, const void *w, long long w_stride, \
                                int nr, const void *a, long long a_stride, int nc) {                         \
        const long long nb = n / (2 * (long long)sizeof(((BLK *)0)->qs)); /* 2 codes a byte */      \
        int32_t ro[16];                                                                                      \
        for (int r = 0; r < 16; r++) ro[r] = (int32_t)((r < nr ? r : nr - 1) * w_stride); /* last row repeated */ \
        const __m512i ix = _mm512_loadu_si512(ro);                                                           \
        const __mmask16 keep = (__mmask16)((1u << nr) - 1);                                                  \
        TT T;                                                                                                \
        __m512 acc[T16_NCP];                                                                                 \
        for (int c0 = 0; c0 < nc; c0 += T16_NCP) {                                                           \
            const int ncp = nc - c0 < T16_NCP ? nc - c0 : T16_NCP;                                           \
            for (int c = 0; c < ncp; c++) acc[c] = _mm512_setzero_ps();                                      \
            for (long long b0 = 0; b0 < nb; b0 += IBC) {                                                     \
                const int nib = nb - b0 < IBC ? (int)(nb - b0) : IBC;                                        \
                for (int t = 0; t < nib; t++) DEC(&T, t, (const uint8_t *)((const BLK *)w + b0 + t), ix);    \
                const ABLK *y[8];                                                                            \
                for (int c = 0; c < ncp; c += 8) {                                                           \
                    const int m = ncp - c < 8 ? ncp - c : 8;                                                 \
                    for (int i = 0; i < m; i++) y[i] = (const ABLK *)((const uint8_t *)a + (c0 + c + i) * a_stride) + b0; \
                    switch (m) {                                                                             \
                    case 8: COLS(&T, nib, y, acc + c, 8); break;                                             \
                    case 7: COLS(&T, nib, y, acc + c, 7); break;                                             \
                    case 6: COLS(&T, nib, y, acc + c, 6); break;                                             \
                    case 5: COLS(&T, nib, y, acc + c, 5); break;                                             \
                    case 4: COLS(&T, nib, y, acc + c, 4); break;                                             \
                    case 3: COLS(&T, nib, y, acc + c, 3); break;                                             \
                    case 2: COLS(&T, nib, y, acc + c, 2); break;                                             \
                    default: COLS(&T, nib, y, acc + c, 1); break;                                            \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
            for (int c = 0; c < ncp; c++) _mm512_mask_storeu_ps(s + (c0 + c) * s_stride, keep, acc[c]);     \
        }                                                                                                    \
    }

T16_TILE(nl_t16_tile, nl_t16, NL_IBC, block_iq4_nl, block_q8_0, nl_t16_dec, nl_t16_cols)

/* IQ4_XS prefill tile, as IQ4_NL's: per super-block and 16 rows, the values + 128
 * of each sub-block gathered and transposed, and the sub-block scales ls - 32 in
 * int32 lanes. Per (row, column) and sub-block the exact D = u . y - 128 * sum(y)
 * (the chain's start value, from Q8_K's bsums), I = the sum over the sub-blocks of
 * ls * D (exact: |I| < 2^31), then acc = fma((float)I * dw, dx, acc) per
 * super-block in order: vec_dot's steps (xs_step), so its bits whatever nr, nc. */
#define XS_IBC 2        /* super-blocks transposed at a time */
#define XS_T16_MIN 2    /* fewer columns (one): vec_dot_r4; the tile beat vec_dot_nc 1.5-1.8x at 2 to 6 */

typedef struct {
    __m512i u[XS_IBC][8][8];   /* super-block t, sub-block ib, group g of 4 values + 128 */
    __m512i ls[XS_IBC][8];     /* sub-block scales - 32 */
    __m512 dw[XS_IBC];
} xs_t16;

TGT_AVX512 static inline void xs_t16_dec(xs_t16 *T, int t, const uint8_t *p, __m512i ix) {
    const __m512i h = _mm512_i32gather_epi32(ix, p, 1), sl = _mm512_i32gather_epi32(ix, p + 4, 1);   /* d, scales_h; scales_l */
    T->dw[t] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h));
    const __m512i sh = _mm512_srli_epi32(h, 16);
    for (int ib = 0; ib < 8; ib++) {
        const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(sl, 4 * ib), _mm512_set1_epi32(15));
        const __m512i hi = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(sh, 2 * ib), _mm512_set1_epi32(3)), 4);
        T->ls[t][ib] = _mm512_sub_epi32(_mm512_or_si512(lo, hi), _mm512_set1_epi32(32));
        t16_codes(p + 8 + 16 * ib, ix, T->u[t][ib]);
    }
}

__attribute__((always_inline)) TGT_AVX512 static inline void xs_t16_cols(const xs_t16 *T, int nib,
                                                                       const block_q8_K *const *y, __m512 *acc,
                                                                       const int NC) {
    __m512 a[8];
    for (int c = 0; c < NC; c++) a[c] = acc[c];
    for (int t = 0; t < nib; t++) {
        __m512i I[8];
        for (int c = 0; c < NC; c++) I[c] = _mm512_setzero_si512();
        for (int ib = 0; ib < 8; ib++) {
            __m512i D[8];
            const int8_t *q[8];
            for (int c = 0; c < NC; c++) {
                D[c] = _mm512_set1_epi32(-128 * (y[c][t].bsums[2 * ib] + y[c][t].bsums[2 * ib + 1]));
                q[c] = y[c][t].qs + 32 * ib;
            }
            t16_dots(D, T->u[t][ib], q, NC);
            for (int c = 0; c < NC; c++) I[c] = _mm512_add_epi32(I[c], _mm512_mullo_epi32(D[c], T->ls[t][ib]));
        }
        for (int c = 0; c < NC; c++)
            a[c] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(I[c]), T->dw[t]), _mm512_set1_ps(y[c][t].d), a[c]);
    }
    for (int c = 0; c < NC; c++) acc[c] = a[c];
}

T16_TILE(dot_iq4_xs_r16_avx512, xs_t16, XS_IBC, block_iq4_xs, block_q8_K, xs_t16_dec, xs_t16_cols)

TGT_AVX512 static void dot_iq4_nl_r16_avx512(long long n, float *s, long long s_stride, const void *w, long long w_stride,
                                             int nr, const void *a, long long a_stride, int nc) {
    if (nc >= NL_T16_MIN) nl_t16_tile(n, s, s_stride, w, w_stride, nr, a, a_stride, nc);
    else rp_r16_avx512(n, s, s_stride, w, w_stride, nr, a, a_stride, nc, 1);
}

/* IQ4_XS: xs_int's steps per column (SUB over sub-blocks of STEP elements, the
 * weight decoded once by DECODE), then xs_step in each lane. FOLD takes a column's
 * vector of int32 sums to 8 lanes (integers: any order). */
#define DOT_IQ4_XS_NC(NAME, TGT, VEC, ZERO, STEP, DECODE, LS, SUB, ADD, FOLD)                        \
    TGT static void NAME(long long n, float *s, long long s_stride, const void *w, const void *a,    \
                         long long a_stride, int nc) {                                                \
        const block_iq4_xs *x = w;                                                                   \
        const uint8_t *col[NCP];                                                                     \
        column_ptrs(a, a_stride, nc, col);                                                           \
        __m256 acc = _mm256_setzero_ps();                                                            \
        for (long long b = 0; b < n / QKK; b++) {                                                    \
            const long long off = b * (long long)sizeof(block_q8_K);                                 \
            VEC sum[NCP];                                                                            \
            for (int c = 0; c < NCP; c++) sum[c] = ZERO();                                           \
            for (int ib = 0; ib < QKK / 32; ib += STEP) {                                            \
                const VEC v = DECODE(x[b].qs + 16 * ib), ls = LS(&x[b], ib);                         \
                for (int c = 0; c < NCP; c++)                                                        \
                    sum[c] = ADD(sum[c], SUB(v, (const int8_t *)col[c] + off + 4 + 32 * ib, ls));    \
            }                                                                                        \
            __m256i lanes[8] = {0};                                                                  \
            for (int c = 0; c < NCP; c++) lanes[c] = FOLD(sum[c]);                                   \
            const __m256 r = _mm256_mul_ps(_mm256_cvtepi32_ps(totals8(lanes)), bcast_f16(x[b].d)); \
            acc = _mm256_fmadd_ps(r, col_scales_f32(col, off), acc);                                 \
        }                                                                                            \
        store_cols(acc, s, s_stride, nc);                                                            \
    }


DOT_IQ4_XS_NC(dot_iq4_xs_nc_avx2, TGT_AVX2, __m256i, _mm256_setzero_si256, 1, decode32_avx2, xs_ls_avx2, xs_sub_avx2,
              _mm256_add_epi32, fold256)
DOT_IQ4_XS_NC(dot_iq4_xs_nc_avx512, TGT_AVX512, __m512i, _mm512_setzero_si512, 2, decode64_avx512, xs_ls_avx512,
              xs_sub_avx512, _mm512_add_epi32, fold512)
#endif

/* ------------------------------------------------------------- the table */

void llm_kernels_iq4(llm_kernel_table *t, int isa) {
    t->vec_dot[T_IQ4_NL] = dot_iq4_nl;
    t->vec_dot[T_IQ4_XS] = dot_iq4_xs;
    t->q4_0_rp = dot_q4_0_rp;
    t->q4_0_rp_nc = NULL;
    t->q4_0_rp_r16 = NULL;
#if defined(__x86_64__) || defined(__i386__)
    if (isa >= 1) {
        t->vec_dot[T_IQ4_NL] = dot_iq4_nl_avx2;
        t->vec_dot[T_IQ4_XS] = dot_iq4_xs_avx2;
        t->vec_dot_nc[T_IQ4_NL] = dot_iq4_nl_nc_avx2;
        t->vec_dot_r16[T_IQ4_NL] = dot_iq4_nl_r16_avx2;
        t->r16_min[T_IQ4_NL] = 1;   /* one column too (so no vec_dot_r4): 8 rows' chains in one vector */
        t->vec_dot_nc[T_IQ4_XS] = dot_iq4_xs_nc_avx2;
        t->vec_dot_r4[T_IQ4_XS] = dot_iq4_xs_r4_avx2;
        t->q4_0_rp = dot_q4_0_rp_avx2;
        t->q4_0_rp_nc = dot_q4_0_rp_nc_avx2;
        t->q4_0_rp_r16 = dot_q4_0_rp_r16_avx2;
    }
    if (isa >= 2) {
        t->vec_dot[T_IQ4_NL] = dot_iq4_nl_avx512;
        t->vec_dot[T_IQ4_XS] = dot_iq4_xs_avx512;
        t->vec_dot_nc[T_IQ4_NL] = dot_iq4_nl_nc_avx512;
        t->vec_dot_r16[T_IQ4_NL] = dot_iq4_nl_r16_avx512;
        t->r16_min[T_IQ4_NL] = 1;   /* one column too (so no vec_dot_r4): 8 rows' chains in one vector */
        t->vec_dot_r16[T_IQ4_XS] = dot_iq4_xs_r16_avx512;
        t->vec_dot_r4[T_IQ4_XS] = dot_iq4_xs_r4_avx512;
        t->r16_min[T_IQ4_XS] = XS_T16_MIN;
        t->vec_dot_nc[T_IQ4_XS] = dot_iq4_xs_nc_avx512;
        t->q4_0_rp = dot_q4_0_rp_avx512;
        t->q4_0_rp_nc = dot_q4_0_rp_nc_avx512;
        t->q4_0_rp_r16 = dot_q4_0_rp_r16_avx512;
    }
#else
    (void)isa;
#endif
}
