/* The ternary family: TQ1_0 and TQ2_0, 256 weights of -1, 0, +1 times one fp16 d.
 *   TQ2_0: 64 bytes of 2-bit codes t (value t - 1): byte m of 32-byte chunk j holds
 *          elements 128j + 32l + m in bits 2l, 2l+1 (l = 0..3); then d.
 *   TQ1_0: 5 trits a byte in base 3, as the fraction q = ceil(v * 256 / 243) so that
 *          trit n of a byte is (uint8_t)(q * 3^n) * 3 >> 8: bytes 0..31 give elements
 *          32n + m, bytes 32..47 elements 160 + 16n + m, the 4 bytes qh (4 trits
 *          each, the first at 3^1) elements 240 + 4n + j; then d.
 *
 * Their dot product takes Q8_K activations. llama.cpp has no repacked or tinyBLAS
 * kernel for them, so its batch path is vec_dot (arch/x86/quants.c), whose order
 * per super-block is: 16 int16 lanes k of the codes t times the quants (lane k:
 * bytes 2k, 2k+1 of each 32-element segment), less the Q8_K bsums[k] (the -1 of
 * every value, in int16), lanes 2l and 2l+1 summed to int32 L_l; then 8 float lanes
 *     acc_l = fma((float)L_l, dy * f16(dx), acc_l)
 * (the compiler fuses its mul and add: the library is built without
 * -ffp-contract=off), and at the end hsum_float_8. Every kernel here runs that, so
 * the bits are the same on every ISA and whatever the batch. */
#include <immintrin.h>
#include <math.h>
#include "internal.h"
/* hsum8 (llama.cpp's hsum_float_8), built for AVX2 (callable from the AVX-512 bodies) */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include "x86_steps.h"
#pragma GCC pop_options

#define AVX2_TARGET "avx2,fma,f16c"
#define AVX512_TARGET "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl"

/* ------------------------------------------------------- the codes */

/* trit n of a TQ1_0 byte (the top 2 bits of its fraction times 3) */
static inline uint8_t trit(uint8_t q, uint8_t pow3) { return (uint8_t)(((uint16_t)(uint8_t)(q * pow3) * 3) >> 8); }

static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};

/* the 256 codes (value + 1: 0, 1, 2) of a block, in element order */
static void tq1_codes(const block_tq1_0 *b, uint8_t t[256]) {
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 32; m++) t[32 * n + m] = trit(b->qs[m], pow3[n]);
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 16; m++) t[160 + 16 * n + m] = trit(b->qs[32 + m], pow3[n]);
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 4; j++) t[240 + 4 * n + j] = trit(b->qh[j], pow3[n]);
}

static void tq2_codes(const block_tq2_0 *b, uint8_t t[256]) {
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++) t[128 * j + 32 * l + m] = (b->qs[32 * j + m] >> (2 * l)) & 3;
}

/* ------------------------------------------------------- dequantization */

static void dequant_codes(const uint8_t t[256], f16_t d16, float *y) {
    const float d = llm_f16_to_f32(d16);
    for (int e = 0; e < 256; e++) y[e] = (float)(t[e] - 1) * d;
}

void llm_dequant_tq1_0(const uint8_t *b, float *y, long long nb) {
    for (long long i = 0; i < nb; i++, b += sizeof(block_tq1_0), y += 256) {
        block_tq1_0 blk;
        uint8_t t[256];
        memcpy(&blk, b, sizeof blk);                 /* the source may be unaligned */
        tq1_codes(&blk, t);
        dequant_codes(t, blk.d, y);
    }
}

void llm_dequant_tq2_0(const uint8_t *b, float *y, long long nb) {
    for (long long i = 0; i < nb; i++, b += sizeof(block_tq2_0), y += 256) {
        block_tq2_0 blk;
        uint8_t t[256];
        memcpy(&blk, b, sizeof blk);
        tq2_codes(&blk, t);
        dequant_codes(t, blk.d, y);
    }
}

/* ------------------------------------------------------------ quantizers */

/* llama.cpp's quantize_row_tq*_ref: d = amax, each element to lroundf(x / d) + 1
 * (x times the float 1/d, rounded half away from zero) */
static inline void ternary_scale(const float *x, f16_t *d16, float *id) {
    float amax = 0.0f;
    for (int j = 0; j < 256; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);   /* MAX(): a NaN is kept */
    *d16 = llm_f32_to_f16(amax);
    *id = amax ? 1.0f / amax : 0.0f;
}

static inline int code_of(float x, float id) { return (int)lroundf(x * id) + 1; }

/* k codes (most significant first, padded with zero trits to 5) as a base-3 fraction of 256 */
static inline uint8_t pack_trits(const float *x, long long stride, int k, float id) {
    uint32_t q = 0;
    for (int n = 0; n < k; n++) q = (uint8_t)(q * 3 + code_of(x[n * stride], id));
    for (int n = k; n < 5; n++) q = (uint8_t)(q * 3);
    return (uint8_t)((q * 256 + 242) / 243);
}

void llm_quantize_tq1_0(const float *x, uint8_t *out, long long nb) {
    for (long long i = 0; i < nb; i++, x += 256, out += sizeof(block_tq1_0)) {
        block_tq1_0 b;
        float id;
        ternary_scale(x, &b.d, &id);
        for (int m = 0; m < 32; m++) b.qs[m] = pack_trits(x + m, 32, 5, id);
        for (int m = 0; m < 16; m++) b.qs[32 + m] = pack_trits(x + 160 + m, 16, 5, id);
        for (int j = 0; j < 4; j++) b.qh[j] = pack_trits(x + 240 + j, 4, 4, id);
        memcpy(out, &b, sizeof b);
    }
}

void llm_quantize_tq2_0(const float *x, uint8_t *out, long long nb) {
    for (long long i = 0; i < nb; i++, x += 256, out += sizeof(block_tq2_0)) {
        block_tq2_0 b;
        float id;
        ternary_scale(x, &b.d, &id);
        for (int j = 0; j < 2; j++)
            for (int m = 0; m < 32; m++) {
                uint8_t q = 0;
                for (int l = 0; l < 4; l++) q = (uint8_t)(q + ((code_of(x[128 * j + 32 * l + m], id) & 3) << (2 * l)));
                b.qs[32 * j + m] = q;
            }
        memcpy(out, &b, sizeof b);
    }
}

/* ------------------------------------------------------------- scalar dot */

/* the 8 int32 lanes of one super-block (codes t, element order): int16 lane k sums
 * t * quant over bytes 2k, 2k+1 of the 8 segments of 32, less bsums[k], wrapping
 * as int16 does */
static void ternary_lanes(const uint8_t t[256], const block_q8_K *y, int32_t L[8]) {
    for (int l = 0; l < 8; l++) {
        L[l] = 0;
        for (int h = 0; h < 2; h++) {
            const int k = 2 * l + h;
            int32_t p = 0;
            for (int s = 0; s < 8; s++) p += t[32 * s + 2 * k] * y->qs[32 * s + 2 * k] + t[32 * s + 2 * k + 1] * y->qs[32 * s + 2 * k + 1];
            L[l] += (int16_t)(uint16_t)(p - y->bsums[k]);
        }
    }
}

#define TERNARY_SCALAR(NAME, BLOCK, CODES)                                                      \
    static void NAME(long long n, float *s, const void *wv, const void *av) {                   \
        const BLOCK *w = wv;                                                                    \
        const block_q8_K *a = av;                                                               \
        float acc[8] = {0};                                                                     \
        for (long long i = 0; i < n / 256; i++) {                                               \
            uint8_t t[256];                                                                     \
            int32_t L[8];                                                                       \
            CODES(w + i, t);                                                                    \
            ternary_lanes(t, a + i, L);                                                         \
            const float d = a[i].d * llm_f16_to_f32(w[i].d);                                   \
            for (int l = 0; l < 8; l++) acc[l] = fmaf((float)L[l], d, acc[l]);                  \
        }                                                                                       \
        *s = llm_hsum8(acc);                                                                 \
    }
TERNARY_SCALAR(dot_tq1_0, block_tq1_0, tq1_codes)
TERNARY_SCALAR(dot_tq2_0, block_tq2_0, tq2_codes)

/* ------------------------------------------------------------------ AVX2 */

/* trit of each byte v (v * 3 >> 8, as two rounding averages: (v-1 + (v-1)/2) / 4 rounded up, top 2 bits) */
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256i trits_avx2(__m256i v) {
    const __m256i a = _mm256_subs_epu8(v, _mm256_set1_epi8(1));
    const __m256i c = _mm256_avg_epu8(a, _mm256_avg_epu8(a, _mm256_setzero_si256()));
    return _mm256_and_si256(_mm256_srli_epi16(c, 6), _mm256_set1_epi8(3));
}

/* bytes times 3 and times 9, modulo 256 (no byte multiply: shifts and adds) */
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256i mul3_avx2(__m256i v) {
    return _mm256_add_epi8(v, _mm256_add_epi8(v, v));
}
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256i mul9_avx2(__m256i v) {
    return _mm256_add_epi8(_mm256_and_si256(_mm256_slli_epi16(v, 3), _mm256_set1_epi8((char)0xf8)), v);
}

/* the 8 segments of 32 codes (element order) */
static inline __attribute__((always_inline, target(AVX2_TARGET))) void tq1_segments_avx2(const block_tq1_0 *b, __m256i seg[8]) {
    const __m256i q0 = _mm256_loadu_si256((const __m256i *)b->qs);
    const __m256i q1 = mul3_avx2(q0), q2 = mul9_avx2(q0);
    seg[0] = trits_avx2(q0);
    seg[1] = trits_avx2(q1);
    seg[2] = trits_avx2(q2);
    seg[3] = trits_avx2(mul9_avx2(q1));
    seg[4] = trits_avx2(mul9_avx2(q2));
    /* bytes 32..47 twice over (its trits n and n + 1 in one register), then qh's 16 */
    const __m256i r = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b->qs + 32)));
    const __m256i r01 = _mm256_blend_epi32(r, mul3_avx2(r), 0xf0);   /* x1 | x3 */
    const __m256i r23 = mul9_avx2(r01);                                /* x9 | x27 */
    /* qh's byte j times 3^n (mod 256) at 4n + j: in 16-bit lanes, then packed */
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    const __m256i h16 = _mm256_mullo_epi16(_mm256_cvtepu8_epi16(_mm_set1_epi32((int)qh)),
                                           _mm256_set_epi16(27, 27, 27, 27, 9, 9, 9, 9, 3, 3, 3, 3, 1, 1, 1, 1));
    const __m256i h8 = _mm256_and_si256(h16, _mm256_set1_epi16(0xff));
    const __m128i hq = _mm_packus_epi16(_mm256_castsi256_si128(h8), _mm256_extracti128_si256(h8, 1));
    seg[5] = trits_avx2(r01);
    seg[6] = trits_avx2(r23);
    seg[7] = trits_avx2(_mm256_inserti128_si256(mul9_avx2(r23), hq, 1));   /* x81 | qh's */
}

static inline __attribute__((always_inline, target(AVX2_TARGET))) void tq2_segments_avx2(const block_tq2_0 *b, __m256i seg[8]) {
    for (int j = 0; j < 2; j++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * j));
        for (int l = 0; l < 4; l++)
            seg[4 * j + l] = _mm256_and_si256(_mm256_srli_epi16(q, 2 * l), _mm256_set1_epi8(3));
    }
}

/* the 8 int32 lanes of a super-block from its segments: maddubs (codes <= 3 unsigned,
 * quants signed: no pair saturates), int16 sums less bsums, pairs to int32 */
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256i ternary_lanes_avx2(const __m256i seg[8], const block_q8_K *y) {
    __m256i p = _mm256_setzero_si256();
    for (int s = 0; s < 8; s++)
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(seg[s], _mm256_loadu_si256((const __m256i *)(y->qs + 32 * s))));
    p = _mm256_sub_epi16(p, _mm256_loadu_si256((const __m256i *)y->bsums));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* a SIMD vec_dot_nc for one type (its segments from SEGMENTS), built for TARGET: a
 * super-block's codes decoded once for up to LLM_NC_MAX columns, each column
 * vec_dot's steps (vec_dot is its nc = 1) */
#define TERNARY_SIMD(NAME, TARGET, BLOCK, SEGMENTS)                                             \
    static __attribute__((target(TARGET))) void NAME##_nc(long long n, float *s, long long ss, const void *wv, \
                                                          const void *av, long long as, int nc) { \
        const BLOCK *w = wv;                                                                    \
        __m256 acc[LLM_NC_MAX];                                                                 \
        for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();                              \
        for (long long i = 0; i < n / 256; i++) {                                               \
            __m256i seg[8];                                                                     \
            SEGMENTS(w + i, seg);                                                               \
            const float dw = llm_f16_to_f32(w[i].d);                                            \
            for (int c = 0; c < nc; c++) {                                                      \
                const block_q8_K *a = (const block_q8_K *)((const char *)av + c * as) + i;      \
                const __m256 d = _mm256_set1_ps(a->d * dw);                                     \
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ternary_lanes_avx2(seg, a)), d, acc[c]); \
            }                                                                                   \
        }                                                                                       \
        for (int c = 0; c < nc; c++) s[c * ss] = hsum8(acc[c]);                                \
    }                                                                                           \
    static __attribute__((target(TARGET))) void NAME(long long n, float *s, const void *w, const void *a) { \
        NAME##_nc(n, s, 0, w, a, 0, 1);                                                         \
    }
TERNARY_SIMD(dot_tq1_0_avx2, AVX2_TARGET, block_tq1_0, tq1_segments_avx2)
TERNARY_SIMD(dot_tq2_0_avx2, AVX2_TARGET, block_tq2_0, tq2_segments_avx2)
/* the same bodies with AVX-512VL's 32 registers (the same bits) */
TERNARY_SIMD(dot_tq1_0_avx512, AVX512_TARGET, block_tq1_0, tq1_segments_avx2)
TERNARY_SIMD(dot_tq2_0_avx512, AVX512_TARGET, block_tq2_0, tq2_segments_avx2)

/* ------------------------------------------------------------------ table */

void llm_kernels_ternary(llm_kernel_table *t, int isa) {
    t->vec_dot[T_TQ1_0] = isa == 2 ? dot_tq1_0_avx512 : isa == 1 ? dot_tq1_0_avx2 : dot_tq1_0;
    t->vec_dot[T_TQ2_0] = isa == 2 ? dot_tq2_0_avx512 : isa == 1 ? dot_tq2_0_avx2 : dot_tq2_0;
    t->vec_dot_nc[T_TQ1_0] = isa == 2 ? dot_tq1_0_avx512_nc : isa == 1 ? dot_tq1_0_avx2_nc : NULL;
    t->vec_dot_nc[T_TQ2_0] = isa == 2 ? dot_tq2_0_avx512_nc : isa == 1 ? dot_tq2_0_avx2_nc : NULL;
}
