/* The FP4 family: MXFP4 (gpt-oss's experts). A block of 32 weights is one E8M0
 * exponent byte e and 16 bytes of E2M1 codes (element j in the low nibble of byte
 * j, element j + 16 in its high nibble); llama.cpp maps a code through the E2M1
 * values doubled (integers, fp4_values below) and the exponent through half its
 * E8M0 value, 2^(e - 128), so that value * scale is the element.
 *
 * Its dot product takes Q8_0 activations. llama.cpp's batch path on x86 is the
 * repacked 8x8 gemm (repack.cpp: any weight with rows % 8 == 0 on AVX2/AVX-512;
 * its gemv for the leftover columns and for mul_mat_id's expert rows), whose
 * order per (row, column) is one float chain over the blocks in order:
 *     acc = fma((float)I_b, e_half(e_b) * f16(d_b), acc),  acc starting at 0,
 * with I_b the exact integer dot of the block's values and quants (|I_b| <=
 * 32 * 12 * 128 < 2^24, so its conversion is exact). (vec_dot_mxfp4_q8_0 in
 * arch/x86/quants.c sums in another order, two 8-lane chains: not the batch
 * path's bits.) Every kernel here runs that chain, so each (row, column) has the
 * same bits on every ISA and whatever the batch around it.
 *
 * NVFP4: 64 weights, four UE4M3 scale bytes (one per 16) then 32 bytes of E2M1
 * codes (sub-block s: bytes 8s..8s+7, element j in the low nibble of byte j, j + 8
 * in its high nibble); the scale as half its UE4M3 value (ggml_ue4m3_to_fp32).
 * Activations Q8_0, two blocks per NVFP4 block. llama.cpp has no repacked or
 * tinyBLAS kernel for it, so its batch path is ggml_vec_dot_nvfp4_q8_0: 8 float
 * lanes; per block, for each half h (32 elements, Q8_0 block 2i + h), lane l takes
 * the exact integer dot I_l of elements 4l..4l+3 of the half:
 *     acc_l = fma(ue4m3_half(d[2h + l / 4]) * f16(dy), (float)I_l, acc_l)
 * (half 0, then half 1), and hsum_float_8 at the end. */
#include <math.h>
#include <immintrin.h>
#include "internal.h"
/* hsum8 (llama.cpp's hsum_float_8), built for AVX2 (callable from the AVX-512 bodies) */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include "x86_steps.h"
#pragma GCC pop_options

#define AVX2_TARGET "avx2,fma,f16c"
#define AVX512_TARGET "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl"

/* the E2M1 values doubled, by code (ggml's kvalues_fp4; the sign is bit 3) */
static const int8_t fp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* half the E8M0 value, 2^(e - 128), built on its bits as ggml_e8m0_to_fp32_half
 * does: e < 2 gives the subnormals 2^-128, 2^-127 (e = 255 gives 2^127, no NaN) */
static inline float e8m0_half(uint8_t e) {
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* ------------------------------------------------------- dequantization */

void llm_dequant_mxfp4(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += sizeof(block_mxfp4), y += 32) {
        const float d = e8m0_half(b[0]);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)fp4_values[b[1 + j] & 15] * d;
            y[j + 16] = (float)fp4_values[b[1 + j] >> 4] * d;
        }
    }
}

/* ------------------------------------------------------------ quantizer */

/* the first code whose value (times d) is nearest to v: strict <, codes in order,
 * as quantize_row_mxfp4_ref's best_index (so 0 wins over -0, and a tie goes to
 * the smaller code) */
static inline uint8_t fp4_nearest(float v, float d) {
    uint8_t best = 0;
    float best_err = fabsf((float)fp4_values[0] * d - v);
    for (uint8_t c = 1; c < 16; c++) {
        const float err = fabsf((float)fp4_values[c] * d - v);
        if (err < best_err) { best = c; best_err = err; }
    }
    return best;
}

/* llama.cpp's quantize_row_mxfp4_ref: e = floor(log2(amax)) - 2 + 127 (6 * 2^(e-127)
 * covers amax with the doubled values' 12 * 2^(e-128)), each element to its nearest
 * code. The float -> byte conversion goes through int32, as x86 code does the
 * reference's direct cast (out of range only for amax < 2^-125, where it wraps). */
void llm_quantize_mxfp4(const float *x, uint8_t *out, long long nb) {
    for (long long i = 0; i < nb; i++, x += 32, out += sizeof(block_mxfp4)) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]);
        const uint8_t e = amax > 0.0f ? (uint8_t)(int32_t)(floorf(log2f(amax)) - 2 + 127) : 0;
        const float d = e8m0_half(e);
        out[0] = e;
        for (int j = 0; j < 16; j++) out[1 + j] = (uint8_t)(fp4_nearest(x[j], d) | fp4_nearest(x[j + 16], d) << 4);
    }
}

/* ------------------------------------------------------------- the chain */

/* one block's float step of the gemm's chain, from its exact integer dot */
static inline __attribute__((always_inline)) float mxfp4_step(float acc, int32_t isum, uint8_t e, f16_t d) {
    return fmaf((float)isum, e8m0_half(e) * llm_f16_to_f32(d), acc);
}

/* the scalar reference */
static void dot_mxfp4(long long n, float *s, const void *wv, const void *av) {
    const block_mxfp4 *w = wv;
    const block_q8_0 *a = av;
    float acc = 0.0f;
    for (long long i = 0; i < n / 32; i++) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++)
            isum += fp4_values[w[i].qs[j] & 15] * a[i].qs[j] + fp4_values[w[i].qs[j] >> 4] * a[i].qs[j + 16];
        acc = mxfp4_step(acc, isum, w[i].e, a[i].d);
    }
    *s = acc;
}

/* ------------------------------------------------------------------ NVFP4 */

/* half the UE4M3 value (the sign bit ignored; 0 and 0x7F give 0), as a small
 * integer times a power of two: exact, the bits of ggml_ue4m3_to_fp32 */
static inline float ue4m3_half(uint8_t x) {
    const int ex = (x >> 3) & 15, man = x & 7;
    const uint32_t pbits = (uint32_t)((ex ? ex : 1) - 11 + 127) << 23;    /* 2^(ex - 11), normal */
    float p;
    memcpy(&p, &pbits, 4);
    return (x == 0 || x == 0x7F) ? 0.0f : (float)(ex ? 8 + man : man) * p;
}

/* ggml_fp32_to_ue4m3: the UE4M3 byte nearest above a positive float's first 3
 * mantissa bits (round half up on the 4th), saturating at 0x7E (448); subnormals
 * round(x * 512) */
static uint8_t ue4m3_of(float x) {
    if (!(x > 0.0f)) return 0;
    if (x > 448.0f) x = 448.0f;
    uint32_t bits;
    memcpy(&bits, &x, 4);
    int ex = (int)((bits >> 23) & 0xFF) - 127 + 7;
    if (ex <= 0) {
        int man = (int)(x * 512.0f + 0.5f);
        return man < 1 ? 0 : (uint8_t)(man > 7 ? 7 : man);
    }
    if (ex >= 15) return 0x7E;
    int man = (int)((bits >> 20) & 7) + (int)((bits >> 19) & 1);
    if (man > 7) {
        man = 0;
        if (++ex >= 15) return 0x7E;
    }
    return (uint8_t)(ex << 3 | man);
}

/* the 32 values of half h of a block (16 code bytes: two sub-blocks), element order */
static inline void nvfp4_half_values(const uint8_t *qs, int8_t v[32]) {
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < 8; j++) {
            v[16 * t + j] = fp4_values[qs[8 * t + j] & 15];
            v[16 * t + j + 8] = fp4_values[qs[8 * t + j] >> 4];
        }
}

void llm_dequant_nvfp4(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += sizeof(block_nvfp4))
        for (int h = 0; h < 2; h++, y += 32) {
            int8_t v[32];
            nvfp4_half_values(b + 4 + 16 * h, v);
            for (int e = 0; e < 32; e++) y[e] = (float)v[e] * ue4m3_half(b[2 * h + e / 16]);
        }
}

/* llama.cpp's quantize_row_nvfp4_ref: per 16 elements, the scale ue4m3_of(amax / 6),
 * each element to its nearest code times half that scale's value */
void llm_quantize_nvfp4(const float *x, uint8_t *out, long long nb) {
    for (long long i = 0; i < nb; i++, out += sizeof(block_nvfp4))
        for (int s = 0; s < 4; s++, x += 16) {
            float amax = 0.0f;
            for (int j = 0; j < 16; j++)
                if (amax < fabsf(x[j])) amax = fabsf(x[j]);
            const uint8_t ue = ue4m3_of(amax / 6.0f);
            const float d = ue4m3_half(ue);
            out[s] = ue;
            for (int j = 0; j < 8; j++) out[4 + 8 * s + j] = (uint8_t)(fp4_nearest(x[j], d) | fp4_nearest(x[j + 8], d) << 4);
        }
}

/* the scales of the two sub-blocks of half h of a block (lanes 0..3, 4..7) */
static inline __attribute__((always_inline)) void nvfp4_half_scales(const block_nvfp4 *w, const block_q8_0 *a, int h, float sc[2]) {
    const float dy = llm_f16_to_f32(a[h].d);
    sc[0] = ue4m3_half(w->d[2 * h]) * dy;
    sc[1] = ue4m3_half(w->d[2 * h + 1]) * dy;
}

static void dot_nvfp4(long long n, float *s, const void *wv, const void *av) {
    const block_nvfp4 *w = wv;
    const block_q8_0 *a = av;
    float acc[8] = {0};
    for (long long i = 0; i < n / 64; i++)
        for (int h = 0; h < 2; h++) {
            const int8_t *q = a[2 * i + h].qs;
            int8_t v[32];
            float sc[2];
            nvfp4_half_values(w[i].qs + 16 * h, v);
            nvfp4_half_scales(w + i, a + 2 * i, h, sc);
            for (int l = 0; l < 8; l++) {
                const int32_t isum = v[4 * l] * q[4 * l] + v[4 * l + 1] * q[4 * l + 1] + v[4 * l + 2] * q[4 * l + 2] +
                                     v[4 * l + 3] * q[4 * l + 3];
                acc[l] = fmaf(sc[l / 4], (float)isum, acc[l]);
            }
        }
    *s = llm_hsum8(acc);
}

/* ------------------------------------------------------------------ AVX2 */

/* one block's 32 values as int8, in element order (low nibbles, then high) */
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256i mxfp4_values_avx2(const uint8_t *qs) {
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)fp4_values));
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i codes = _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(15));
    return _mm256_shuffle_epi8(lut, codes);
}

/* 8 int32 lanes summing to a block's integer dot, from its 32 values v and
 * m = maddubs(128, v) (computed once per weight block, whatever the columns).
 * maddubs takes the quants as unsigned x + 128 (no pair can saturate:
 * 255 * 12 * 2 < 2^15); m takes the 128 * v pairs away again in int16, exactly,
 * for any quant byte. */
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256i fp4_lanes_vm(__m256i v, __m256i m, const int8_t *q) {
    const __m256i xu = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)q), _mm256_set1_epi8((char)0x80));
    return _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(xu, v), m), _mm256_set1_epi16(1));
}
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256i fp4_m(__m256i v) {
    return _mm256_maddubs_epi16(_mm256_set1_epi8((char)0x80), v);
}

/* the totals of 8 vectors of 8 int32 lanes, vector k's in lane k */
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256i hsum8x8_epi32(const __m256i v[8]) {
    const __m256i s0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i s1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(s0, s1, 0x20), _mm256_permute2x128_si256(s0, s1, 0x31));
}

static inline __attribute__((always_inline, target(AVX2_TARGET))) int32_t hsum_epi32_avx2(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0x4e));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xb1));
    return _mm_cvtsi128_si32(r);
}

/* the 8 blocks' e_half(e) in vector lanes, on the bits as e8m0_half */
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256 mxfp4_ehalf8(const block_mxfp4 *w) {
    uint8_t e[8];
    for (int k = 0; k < 8; k++) e[k] = w[k].e;
    const __m256i e32 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)e));
    const __m256i sub = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e32);      /* e < 2 */
    const __m256i norm = _mm256_slli_epi32(_mm256_sub_epi32(e32, _mm256_set1_epi32(1)), 23);
    const __m256i small = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e32);
    return _mm256_castsi256_ps(_mm256_blendv_epi8(norm, sub, small));
}

/* the chain over 8 blocks from their integer dots; the scales e_half * f16(d) in
 * vector lanes, the same bits as the scalar step's (the F16C conversion is exact;
 * one float multiply) */
static inline __attribute__((always_inline, target(AVX2_TARGET))) float mxfp4_steps8(float acc, __m256i isums, __m256 eh, const block_q8_0 *a) {
    uint16_t d[8];
    float f[8], sc[8];
    for (int k = 0; k < 8; k++) d[k] = a[k].d;
    _mm256_storeu_ps(f, _mm256_cvtepi32_ps(isums));
    _mm256_storeu_ps(sc, _mm256_mul_ps(eh, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d))));
    for (int k = 0; k < 8; k++) acc = fmaf(f[k], sc[k], acc);
    return acc;
}

/* MXFP4's SIMD vec_dot_nc (vec_dot is its nc = 1): per 8 blocks the weights are
 * decoded once, then each column's integer dots, their scales and its chain, which
 * are exactly vec_dot's steps for that column alone; the last nb % 8 blocks one by one */
#define MXFP4_DOT(NAME, TARGET)                                                                 \
    static __attribute__((target(TARGET))) void NAME##_nc(long long n, float *s, long long ss, const void *wv, \
                                                          const void *av, long long as, int nc) { \
        const block_mxfp4 *w = wv;                                                              \
        const long long nb = n / 32;                                                            \
        float acc[LLM_NC_MAX] = {0};                                                            \
        long long i = 0;                                                                        \
        for (; i + 8 <= nb; i += 8) {                                                           \
            __m256i v[8], m[8];                                                                 \
            const __m256 eh = mxfp4_ehalf8(w + i);                                              \
            for (int k = 0; k < 8; k++) {                                                       \
                v[k] = mxfp4_values_avx2(w[i + k].qs);                                          \
                m[k] = fp4_m(v[k]);                \
            }                                                                                   \
            for (int c = 0; c < nc; c++) {                                                      \
                const block_q8_0 *a = (const block_q8_0 *)((const char *)av + c * as) + i;      \
                __m256i l[8];                                                                   \
                for (int k = 0; k < 8; k++) l[k] = fp4_lanes_vm(v[k], m[k], a[k].qs);           \
                acc[c] = mxfp4_steps8(acc[c], hsum8x8_epi32(l), eh, a);                         \
            }                                                                                   \
        }                                                                                       \
        for (; i < nb; i++) {                                                                   \
            const __m256i v = mxfp4_values_avx2(w[i].qs);                                       \
            const __m256i m = fp4_m(v);                                                          \
            for (int c = 0; c < nc; c++) {                                                      \
                const block_q8_0 *a = (const block_q8_0 *)((const char *)av + c * as) + i;      \
                acc[c] = mxfp4_step(acc[c], hsum_epi32_avx2(fp4_lanes_vm(v, m, a->qs)), w[i].e, a->d); \
            }                                                                                   \
        }                                                                                       \
        for (int c = 0; c < nc; c++) s[c * ss] = acc[c];                                        \
    }                                                                                           \
    static __attribute__((target(TARGET))) void NAME(long long n, float *s, const void *w, const void *a) { \
        NAME##_nc(n, s, 0, w, a, 0, 1);                                                         \
    }
MXFP4_DOT(dot_mxfp4_avx2, AVX2_TARGET)

/* NVFP4: half h's 32 values in element order (its two sub-blocks, each low
 * nibbles then high) */
static inline __attribute__((always_inline, target(AVX2_TARGET))) __m256i nvfp4_values_avx2(const uint8_t *qs) {
    const __m128i lut = _mm_loadu_si128((const __m128i *)fp4_values), m4 = _mm_set1_epi8(15);
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(q, m4));
    const __m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(q, 4), m4));
    return _mm256_set_m128i(_mm_unpackhi_epi64(lo, hi), _mm_unpacklo_epi64(lo, hi));
}

/* ue4m3_half of every byte (filled by llm_kernels_fp4, before any kernel runs) */
static float ue4m3_halves[256];

/* a block's 4 scales ue4m3_half(d[k]) * f16(dy of half k / 2), each one float
 * multiply as nvfp4_half_scales's: lanes of the two halves' scale vectors */
static inline __attribute__((always_inline, target(AVX2_TARGET))) void nvfp4_scales_avx2(const block_nvfp4 *w, const block_q8_0 *a, __m256 sc[2]) {
    const __m128 dy = _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, (short)a[1].d, (short)a[1].d, (short)a[0].d, (short)a[0].d));
    const __m128 ue = _mm_set_ps(ue4m3_halves[w->d[3]], ue4m3_halves[w->d[2]], ue4m3_halves[w->d[1]], ue4m3_halves[w->d[0]]);
    const __m256 s4 = _mm256_castps128_ps256(_mm_mul_ps(ue, dy));
    sc[0] = _mm256_permutevar8x32_ps(s4, _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0));
    sc[1] = _mm256_permutevar8x32_ps(s4, _mm256_set_epi32(3, 3, 3, 3, 2, 2, 2, 2));
}

/* NVFP4's SIMD vec_dot_nc (vec_dot is its nc = 1): a block's values decoded once for
 * up to LLM_NC_MAX columns, each column vec_dot's steps */
#define NVFP4_DOT(NAME, TARGET)                                                                 \
    static __attribute__((target(TARGET))) void NAME##_nc(long long n, float *s, long long ss, const void *wv, \
                                                          const void *av, long long as, int nc) { \
        const block_nvfp4 *w = wv;                                                              \
        __m256 acc[LLM_NC_MAX];                                                                 \
        for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();                              \
        for (long long i = 0; i < n / 64; i++) {                                                \
            __m256i v[2], m[2];                                                                 \
            for (int h = 0; h < 2; h++) {                                                       \
                v[h] = nvfp4_values_avx2(w[i].qs + 16 * h);                                     \
                m[h] = fp4_m(v[h]);                                                             \
            }                                                                                   \
            for (int c = 0; c < nc; c++) {                                                      \
                const block_q8_0 *a = (const block_q8_0 *)((const char *)av + c * as) + 2 * i;  \
                __m256 sc[2];                                                                   \
                nvfp4_scales_avx2(w + i, a, sc);                                                \
                for (int h = 0; h < 2; h++)                                                     \
                    acc[c] = _mm256_fmadd_ps(sc[h], _mm256_cvtepi32_ps(fp4_lanes_vm(v[h], m[h], a[h].qs)), acc[c]); \
            }                                                                                   \
        }                                                                                       \
        for (int c = 0; c < nc; c++) s[c * ss] = hsum8(acc[c]);                                \
    }                                                                                           \
    static __attribute__((target(TARGET))) void NAME(long long n, float *s, const void *w, const void *a) { \
        NAME##_nc(n, s, 0, w, a, 0, 1);                                                         \
    }
NVFP4_DOT(dot_nvfp4_avx2, AVX2_TARGET)

/* --------------------------------------------------------------- AVX-512 */

/* the AVX2 bodies built with AVX-512VL's 32 registers (the same bits; a VNNI form
 * of MXFP4's integer dots measured no faster) */
MXFP4_DOT(dot_mxfp4_avx512, AVX512_TARGET)
NVFP4_DOT(dot_nvfp4_avx512, AVX512_TARGET)

/* ------------------------------------------------------------------ table */

void llm_kernels_fp4(llm_kernel_table *t, int isa) {
    for (int x = 0; x < 256; x++) ue4m3_halves[x] = ue4m3_half((uint8_t)x);
    t->vec_dot[T_MXFP4] = isa == 2 ? dot_mxfp4_avx512 : isa == 1 ? dot_mxfp4_avx2 : dot_mxfp4;
    t->vec_dot_nc[T_MXFP4] = isa == 2 ? dot_mxfp4_avx512_nc : isa == 1 ? dot_mxfp4_avx2_nc : NULL;
    t->vec_dot[T_NVFP4] = isa == 2 ? dot_nvfp4_avx512 : isa == 1 ? dot_nvfp4_avx2 : dot_nvfp4;
    t->vec_dot_nc[T_NVFP4] = isa == 2 ? dot_nvfp4_avx512_nc : isa == 1 ? dot_nvfp4_avx2_nc : NULL;
}
