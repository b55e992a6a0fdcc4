/* AVX-512 vec-dot kernels (AVX512F/BW/VL/DQ + VNNI).
 *
 * 32-element types (against Q8_0 / Q8_1) take two blocks per zmm and four per
 * loop step (two float accumulators); the integer part is one vpdpbusd (u8 x
 * s8) per pair: Q8_0 and Q5_0 move the weight's sign onto x and feed |w|;
 * Q4_0 feeds the unsigned nibble and subtracts 8*sum(x) with a second dot;
 * Q4_1 / Q5_1 feed the unsigned code (their minimum rides on Q8_1's s).
 * The fp16 block scales are packed four at a time in general registers and
 * converted with one vcvtph2ps.
 * K-quants (against Q8_K): vpmaddubsw of the unsigned codes with q8, then
 * vpdpwssd with the sub-block scales as int16 words, into one int32
 * accumulator per super-block (Q4_K: per 64 elements); offsets and minimums
 * come from Q8_K's bsums; the float steps follow llama.cpp's batched x86 orders
 * (Q4_K: the repacked gemm's; Q2_K, Q3_K, Q5_K, Q6_K: the tiled matmul's), the
 * same bits as the AVX2 and scalar kernels.
 * Every call runs the same instruction sequence
 * for a given n, so the result depends only on (n, w row, a row).
 * Every quantized kernel also has a multi-column form (vec_dot_nc, up to
 * LLM_NC_MAX activation rows against one weight row, the weight decoded once):
 * see "multi-column form" below for why its results equal vec_dot's bit for bit.
 * Q4_K, Q5_K and Q6_K also have a 16-row tile form for prefill (vec_dot_r16, "16-row
 * tiles" below): the rows in the lanes, the same float steps per lane.
 * Q4_K also has a 4-row one-column form for decode (vec_dot_r4, "4 rows, one
 * column" below). */
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
#include <immintrin.h>
#include "internal.h"
#include "x86_steps.h"

#define INL static inline __attribute__((always_inline))

INL uint32_t ld32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }

INL float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

/* ---------------------------------------------------------------- floats */

static void dot_f32(long long n, float *s, const void *vw, const void *va) {
    const float *w = vw, *a = va;
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    long long i = 0;
    for (; i + 64 <= n; i += 64) {
        c0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(a + i), c0);
        c1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(a + i + 16), c1);
        c2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(a + i + 32), c2);
        c3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(a + i + 48), c3);
    }
    for (; i + 16 <= n; i += 16)
        c0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(a + i), c0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        c1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, a + i), c1);
    }
    *s = hsum(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)));
}

INL __m512 ld_f16(const f16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
INL __m512 ldm_f16(__mmask16 m, const f16_t *p) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

static void dot_f16(long long n, float *s, const void *vw, const void *va) {
    const f16_t *w = vw, *a = va;
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    long long i = 0;
    for (; i + 64 <= n; i += 64) {
        c0 = _mm512_fmadd_ps(ld_f16(w + i), ld_f16(a + i), c0);
        c1 = _mm512_fmadd_ps(ld_f16(w + i + 16), ld_f16(a + i + 16), c1);
        c2 = _mm512_fmadd_ps(ld_f16(w + i + 32), ld_f16(a + i + 32), c2);
        c3 = _mm512_fmadd_ps(ld_f16(w + i + 48), ld_f16(a + i + 48), c3);
    }
    for (; i + 16 <= n; i += 16) c0 = _mm512_fmadd_ps(ld_f16(w + i), ld_f16(a + i), c0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        c1 = _mm512_fmadd_ps(ldm_f16(m, w + i), ldm_f16(m, a + i), c1);
    }
    *s = hsum(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)));
}

INL __m512 bf_widen(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }
INL __m512 ld_bf16(const bf16_t *p) { return bf_widen(_mm256_loadu_si256((const __m256i *)p)); }
INL __m512 ldm_bf16(__mmask16 m, const bf16_t *p) { return bf_widen(_mm256_maskz_loadu_epi16(m, p)); }

static void dot_bf16(long long n, float *s, const void *vw, const void *va) {
    const bf16_t *w = vw, *a = va;
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    long long i = 0;
    for (; i + 64 <= n; i += 64) {
        c0 = _mm512_fmadd_ps(ld_bf16(w + i), ld_bf16(a + i), c0);
        c1 = _mm512_fmadd_ps(ld_bf16(w + i + 16), ld_bf16(a + i + 16), c1);
        c2 = _mm512_fmadd_ps(ld_bf16(w + i + 32), ld_bf16(a + i + 32), c2);
        c3 = _mm512_fmadd_ps(ld_bf16(w + i + 48), ld_bf16(a + i + 48), c3);
    }
    for (; i + 16 <= n; i += 16) c0 = _mm512_fmadd_ps(ld_bf16(w + i), ld_bf16(a + i), c0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        c1 = _mm512_fmadd_ps(ldm_bf16(m, w + i), ldm_bf16(m, a + i), c1);
    }
    *s = hsum(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)));
}

/* ------------------------------------------------- 32-element block types */

INL __m512i ld2x32(const void *a, const void *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* 64 unsigned codes from two blocks' 16 nibble bytes, in element order:
 * [a low nibbles, a high nibbles, b low nibbles, b high nibbles] */
INL __m512i nib2(const uint8_t *a, const uint8_t *b) {
    __m512i z = _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)a)), 0xFF00,
                                            _mm_loadu_si128((const __m128i *)b));   /* 128-bit lanes a, a, b, b */
    const __m512i cnt = _mm512_set_epi64(0x0004000400040004LL, 0x0004000400040004LL, 0, 0,
                                         0x0004000400040004LL, 0x0004000400040004LL, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi16(z, cnt), _mm512_set1_epi8(0x0F));
}
/* 32 codes of one block */
INL __m256i nib1(const uint8_t *a) {
    __m256i z = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)a));
    const __m256i cnt = _mm256_set_epi64x(0x0004000400040004LL, 0x0004000400040004LL, 0, 0);
    return _mm256_and_si256(_mm256_srlv_epi16(z, cnt), _mm256_set1_epi8(0x0F));
}

INL __m256i dot_uo1(__m256i q, __m256i x, int off) {
    __m256i z = _mm256_setzero_si256();
    return _mm256_sub_epi32(_mm256_dpbusd_epi32(z, q, x), _mm256_dpbusd_epi32(z, _mm256_set1_epi8((char)off), x));
}

/* the (d, m) f16 pairs of 2 blocks, packed in a general register (the barrier
 * keeps the compiler from moving the packing onto the vector pipes) */
INL uint64_t pack2(const void *a, const void *b) {
    uint64_t v = (uint64_t)ld32(a) | (uint64_t)ld32(b) << 32;
    __asm__("" : "+r"(v));
    return v;
}

/* ------------------------------------------------------- multi-column form
 * Every quantized kernel is written once as an always_inline body K_k(n, s, ss,
 * w, a, as, NC), NC a literal 1..LLM_NC_MAX: the weight blocks are decoded once
 * per step and every column c (activation row at a + c*as bytes, result at
 * s[c*ss]) then runs its own accumulators through exactly the float operations
 * that the one-column body (NC = 1, which is vec_dot itself) runs, so each
 * column's result is bit-identical to vec_dot on that column alone. */
#define NCM LLM_NC_MAX
#define NCM2 LLM_NC2_MAX
#define FORC for (int c = 0; c < NC; c++)
#define XCOL(T, c) ((const T *)((const char *)va + (long long)(c) * as))

/* FN: a multi-column entry point (any nc) over the body KB (const NC 1..NCM) */
#define NC_ENTRY(FN, KB)                                                                        \
    static void FN(long long n, float *s, long long ss, const void *w, const void *a, long long as, int nc) { \
        const char *ac = a;                                                                     \
        for (; nc >= NCM; nc -= NCM, s += NCM * ss, ac += NCM * as) KB(n, s, ss, w, ac, as, NCM); \
        switch (nc) {                                                                           \
        case 7: KB(n, s, ss, w, ac, as, NCM > 7 ? 7 : 1); break;                                \
        case 6: KB(n, s, ss, w, ac, as, NCM > 6 ? 6 : 1); break;                                \
        case 5: KB(n, s, ss, w, ac, as, NCM > 5 ? 5 : 1); break;                                \
        case 4: KB(n, s, ss, w, ac, as, NCM > 4 ? 4 : 1); break;                                \
        case 3: KB(n, s, ss, w, ac, as, 3); break;                                              \
        case 2: KB(n, s, ss, w, ac, as, 2); break;                                              \
        case 1: KB(n, s, ss, w, ac, as, 1); break;                                              \
        }                                                                                       \
    }
/* vec_dot K and vec_dot_nc K##_nc of the body K##_k */
#define NC_FUNCS(K)                                                                             \
    static void K(long long n, float *s, const void *w, const void *a) { K##_k(n, s, 0, w, a, 0, 1); } \
    NC_ENTRY(K##_nc, K##_k)
/* vec_dot_ncw NAME##_ncw of the body NAME##w_k (the wide layout) */
#define NCW_FUNCS(NAME) NC_ENTRY(NAME##_ncw, NAME##w_k)

/* the entry point of a two-row kernel K2 (const NC 1..NCM2): any column count */
#define NC2_FUNCS(FN, K2)                                                                       \
    static void FN(long long n, float *s, long long ss, const void *w, long long ws,            \
                   const void *a, long long as, int nc) {                                       \
        const char *ac = a;                                                                     \
        for (; nc >= NCM2; nc -= NCM2, s += NCM2 * ss, ac += NCM2 * as) K2(n, s, ss, w, ws, ac, as, NCM2); \
        switch (nc) {                                                                           \
        case 11: K2(n, s, ss, w, ws, ac, as, 11); break;                                        \
        case 10: K2(n, s, ss, w, ws, ac, as, 10); break;                                        \
        case 9: K2(n, s, ss, w, ws, ac, as, 9); break;                                          \
        case 8: K2(n, s, ss, w, ws, ac, as, 8); break;                                          \
        case 7: K2(n, s, ss, w, ws, ac, as, 7); break;                                          \
        case 6: K2(n, s, ss, w, ws, ac, as, 6); break;                                          \
        case 5: K2(n, s, ss, w, ws, ac, as, 5); break;                                          \
        case 4: K2(n, s, ss, w, ws, ac, as, 4); break;                                          \
        case 3: K2(n, s, ss, w, ws, ac, as, 3); break;                                          \
        case 2: K2(n, s, ss, w, ws, ac, as, 2); break;                                          \
        case 1: K2(n, s, ss, w, ws, ac, as, 1); break;                                          \
        }                                                                                       \
    }

/* [w0, w1, w2, w3] fp16 -> float, and the two-block form in lanes 0, 1 */
INL __m128 f16x2(f16_t a, f16_t b) { return _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)a | (uint32_t)b << 16))); }

/* The d-only types (Q4_0, Q5_0, Q8_0 against Q8_0). The weight side of a block
 * decodes to an unsigned operand u and the lanes where x takes a minus sign;
 * COL1 gives the int32 lanes against x. */
typedef struct { __m256i u; __mmask32 neg; } wdec1;
INL __m256i col_s1(wdec1 d, __m256i x) {
    __m256i sx = _mm256_mask_sub_epi8(x, d.neg, _mm256_setzero_si256(), x);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), d.u, sx);
}
INL __m256i col_o1(wdec1 d, __m256i x) { return dot_uo1(d.u, x, 8); }

INL wdec1 q8_0_dec1(const block_q8_0 *w) {
    __m256i v = _mm256_loadu_si256((const __m256i *)w->qs);
    wdec1 r = {_mm256_abs_epi8(v), _mm256_movepi8_mask(v)};
    return r;
}
INL wdec1 q4_0_dec1(const block_q4_0 *w) { wdec1 r = {nib1(w->qs), 0}; return r; }
/* Q5_0: w = q - 16 is negative exactly where the qh bit is clear, so |w| is
 * nib (bit set) or 16 - nib (bit clear), and x takes the sign where the bit is clear */
INL wdec1 q5_0_dec1(const block_q5_0 *w) {
    __mmask32 neg = (__mmask32)~ld32(w->qh);
    __m256i q = nib1(w->qs);
    wdec1 r = {_mm256_mask_sub_epi8(q, neg, _mm256_set1_epi8(16), q), neg};
    return r;
}

/* Over the wide layout this table stores x + 128 (llm_kernel_table.wide_xu), so
 * a column costs one vpdpbusd with no sign step: the weights w go in signed, the
 * unsigned x + 128 against them gives w.x + 128*sum4(w) per lane, and the
 * accumulator starts at -128*sum4(w), found once per weight block for every
 * column. The int32 lanes are exactly w.x's, as in the kernels above. */
typedef struct { __m512i w, off; } wsg2;
typedef struct { __m256i w, off; } wsg1;
INL wsg2 wsg2_of(__m512i w) {
    const __m512i z = _mm512_setzero_si512();
    wsg2 r = {w, _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, _mm512_set1_epi8((char)0x80), w))};
    return r;
}
INL wsg1 wsg1_of(__m256i w) {
    const __m256i z = _mm256_setzero_si256();
    wsg1 r = {w, _mm256_sub_epi32(z, _mm256_dpbusd_epi32(z, _mm256_set1_epi8((char)0x80), w))};
    return r;
}
INL wsg2 q8_0_sg2(const block_q8_0 *a, const block_q8_0 *b) { return wsg2_of(ld2x32(a->qs, b->qs)); }
INL wsg1 q8_0_sg1(const block_q8_0 *a) { return wsg1_of(_mm256_loadu_si256((const __m256i *)a->qs)); }
INL wsg2 q4_0_sg2(const block_q4_0 *a, const block_q4_0 *b) { return wsg2_of(_mm512_sub_epi8(nib2(a->qs, b->qs), _mm512_set1_epi8(8))); }
INL wsg1 q4_0_sg1(const block_q4_0 *a) { return wsg1_of(_mm256_sub_epi8(nib1(a->qs), _mm256_set1_epi8(8))); }
INL wsg2 q5_0_sg2(const block_q5_0 *a, const block_q5_0 *b) {
    const __mmask64 hi = (__mmask64)((uint64_t)ld32(a->qh) | (uint64_t)ld32(b->qh) << 32);
    const __m512i m16 = _mm512_set1_epi8(16);
    const __m512i q = nib2(a->qs, b->qs);
    return wsg2_of(_mm512_sub_epi8(_mm512_mask_add_epi8(q, hi, q, m16), m16));
}
INL wsg1 q5_0_sg1(const block_q5_0 *a) {
    const __m256i m16 = _mm256_set1_epi8(16);
    const __m256i q = nib1(a->qs);
    return wsg1_of(_mm256_sub_epi8(_mm256_mask_add_epi8(q, (__mmask32)ld32(a->qh), q, m16), m16));
}

INL __m256i ldx1(const block_q8_0 *x) { return _mm256_loadu_si256((const __m256i *)x->qs); }


/* In the order of llama.cpp's x86 kernels (ggml_vec_dot_q8_0_q8_0 and tinyBLAS's
 * Q0 gemm), so that results match it bit for bit: one 8-lane float chain
 * acc = fma(dw*dx, lanes(w.x), acc) over the blocks (lane l sums elements
 * 4l..4l+3, exactly, in int32), then hsum8. 256-bit: on one chain a zmm would
 * not be faster. */
#define DOT_D_ONLY(NAME, WT, DEC1, COL1)                                             \
    INL void NAME##_k(long long n, float *s, long long ss, const void *vw, const void *va, long long as, const int NC) { \
        const WT *w = vw;                                                                       \
        const block_q8_0 *xc[NCM];                                                              \
        __m256 acc[NCM];                                                                        \
        FORC { xc[c] = XCOL(block_q8_0, c); acc[c] = _mm256_setzero_ps(); }                     \
        const long long nb = n / QK;                                                            \
        for (long long i = 0; i < nb; i++) {                                                    \
            const wdec1 d1 = DEC1(w + i);                                                       \
            const float wd = h2f(w[i].d);                                                       \
            FORC {                                                                              \
                const __m256 v = _mm256_cvtepi32_ps(COL1(d1, ldx1(xc[c] + i)));                 \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(wd * h2f(xc[c][i].d)), v, acc[c]);      \
            }                                                                                   \
        }                                                                                       \
        FORC s[c * ss] = hsum8(acc[c]);                                                         \
    }                                                                                           \
    NC_FUNCS(NAME)

DOT_D_ONLY(dot_q8_0, block_q8_0, q8_0_dec1, col_s1)
DOT_D_ONLY(dot_q4_0, block_q4_0, q4_0_dec1, col_o1)
DOT_D_ONLY(dot_q5_0, block_q5_0, q5_0_dec1, col_s1)

/* The same kernels over the wide activation layout (see vec_dot_ncw): x quants
 * contiguous, x scales already widened to float (exactly), so every column runs
 * the very float operations of the kernel above. */
#define DOT_D_ONLY_W(NAME, WT, SG1)                                           \
    INL void NAME##w_k(long long n, float *s, long long ss, const void *vw, const void *va, long long as, const int NC) { \
        const WT *w = vw;                                                                       \
        const long long nb = n / QK;                                                            \
        const int8_t *xq[NCM];                                                                  \
        const float *xd[NCM];                                                                   \
        __m256 acc[NCM];                                                                        \
        FORC { xq[c] = (const int8_t *)va + (long long)c * as; xd[c] = (const float *)(xq[c] + nb * 32); \
               acc[c] = _mm256_setzero_ps(); }                                                  \
        for (long long i = 0; i < nb; i++) {                                                    \
            const wsg1 d1 = SG1(w + i);                                                         \
            const float wd = h2f(w[i].d);                                                       \
            FORC {                                                                              \
                const __m256 v = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(d1.off,                \
                                     _mm256_loadu_si256((const __m256i *)(xq[c] + i * 32)), d1.w)); \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(wd * xd[c][i]), v, acc[c]);             \
            }                                                                                   \
        }                                                                                       \
        FORC s[c * ss] = hsum8(acc[c]);                                                         \
    }                                                                                           \
    NCW_FUNCS(NAME)

DOT_D_ONLY_W(dot_q8_0, block_q8_0, q8_0_sg1)
DOT_D_ONLY_W(dot_q4_0, block_q4_0, q4_0_sg1)
DOT_D_ONLY_W(dot_q5_0, block_q5_0, q5_0_sg1)

/* Two weight rows at once over the wide layout: zmm lanes 0-7 are row 0's 8-lane
 * chain and lanes 8-15 row 1's, each column's x block broadcast to both halves;
 * every lane runs exactly the float operations of the one-row kernel above (the
 * scale products dw*dx per lane, the same fma), so each row's result is the same
 * bits, with half the instructions. */
INL float hsum8_hi(__m512 v) { return hsum8(_mm512_extractf32x8_ps(v, 1)); }
#define DOT_D_ONLY_W2(NAME, WT, SG2)                                                     \
    INL void NAME##w2_k(long long n, float *s, long long ss, const void *vw, long long ws,       \
                        const void *va, long long as, const int NC) {                            \
        const WT *w0 = vw, *w1 = (const WT *)((const char *)vw + ws);                           \
        const long long nb = n / QK;                                                            \
        const int8_t *xq[NCM2];                                                                  \
        const float *xd[NCM2];                                                                   \
        __m512 acc[NCM2];                                                                        \
        FORC { xq[c] = (const int8_t *)va + (long long)c * as; xd[c] = (const float *)(xq[c] + nb * 32); \
               acc[c] = _mm512_setzero_ps(); }                                                  \
        const __m512i sel = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);   \
        for (long long i = 0; i < nb; i++) {                                                    \
            const wsg2 d = SG2(w0 + i, w1 + i);                                                 \
            const __m512 wd = _mm512_permutexvar_ps(sel, _mm512_castps128_ps512(f16x2(w0[i].d, w1[i].d))); \
            FORC {                                                                              \
                const __m512i xv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(xq[c] + i * 32))); \
                const __m512 v = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(d.off, xv, d.w));        \
                acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(wd, _mm512_set1_ps(xd[c][i])), v, acc[c]); \
            }                                                                                   \
        }                                                                                       \
        FORC { s[c * ss] = hsum8(_mm512_castps512_ps256(acc[c])); s[c * ss + 1] = hsum8_hi(acc[c]); } \
    }                                                                                           \
    NC2_FUNCS(NAME##_ncw2, NAME##w2_k)

DOT_D_ONLY_W2(dot_q8_0, block_q8_0, q8_0_sg2)
DOT_D_ONLY_W2(dot_q4_0, block_q4_0, q4_0_sg2)
DOT_D_ONLY_W2(dot_q5_0, block_q5_0, q5_0_sg2)


INL __m256i q5_1blk(const uint8_t *qh, const uint8_t *qs) {
    __m256i q = nib1(qs);
    return _mm256_mask_add_epi8(q, (__mmask32)ld32(qh), q, _mm256_set1_epi8(16));
}

/* The d+m types (Q4_1, Q5_1 against Q8_1), in the order of llama.cpp's x86
 * kernel, so that results match it bit for bit: one 8-lane float chain
 * acc = fma(dw*dx, lanes(q.x), acc) over the blocks (lane l sums elements
 * 4l..4l+3), the m*s terms in a scalar fma chain, then hsum8(acc) + that chain.
 * 256-bit: on this chain a zmm would not be faster. */
#define DOT_D_M(NAME, WT, CODES1)                                                               \
    INL void NAME##_k(long long n, float *s, long long ss, const void *vw, const void *va, long long as, const int NC) { \
        const WT *w = vw;                                                                       \
        const block_q8_1 *xc[NCM];                                                              \
        const long long nb = n / QK;                                                            \
        __m256 acc[NCM];                                                                        \
        float ms[NCM];                                                                          \
        const __m256i z = _mm256_setzero_si256();                                               \
        FORC { xc[c] = XCOL(block_q8_1, c); acc[c] = _mm256_setzero_ps(); ms[c] = 0.0f; }        \
        for (long long i = 0; i < nb; i++) {                                                    \
            const __m256i q = CODES1(i);                                                        \
            const float wd = h2f(w[i].d), wm = h2f(w[i].m);                                     \
            FORC {                                                                              \
                const block_q8_1 *x = xc[c] + i;                                                \
                ms[c] = __builtin_fmaf(wm, h2f(x->s), ms[c]);                                   \
                const __m256 v = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(z, q, _mm256_loadu_si256((const __m256i *)x->qs))); \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(wd * h2f(x->d)), v, acc[c]);            \
            }                                                                                   \
        }                                                                                       \
        FORC s[c * ss] = hsum8(acc[c]) + ms[c];                                                 \
    }                                                                                           \
    NC_FUNCS(NAME)

/* Two weight rows at once (zmm lanes 0-7 row 0, 8-15 row 1; the m*s chains in
 * lanes 0 and 1 of an xmm), every lane running the one-row kernel's operations:
 * the same bits, half the instructions (vec_dot_nc2). */
#define DOT_D_M2(NAME, WT, CODESP)                                                              \
    INL void NAME##2_k(long long n, float *s, long long ss, const void *vw, long long ws,       \
                       const void *va, long long as, const int NC) {                            \
        const WT *w0 = vw, *w1 = (const WT *)((const char *)vw + ws);                           \
        const block_q8_1 *xc[NCM2];                                                             \
        const long long nb = n / QK;                                                            \
        __m512 acc[NCM2];                                                                       \
        __m128 ms[NCM2];                                                                        \
        FORC { xc[c] = XCOL(block_q8_1, c); acc[c] = _mm512_setzero_ps(); ms[c] = _mm_setzero_ps(); } \
        for (long long i = 0; i < nb; i++) {                                                    \
            const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(CODESP(&w0[i])), CODESP(&w1[i]), 1); \
            const __m512 wd = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(h2f(w0[i].d))), \
                                                 _mm256_set1_ps(h2f(w1[i].d)), 1);              \
            const __m128 wm = _mm_set_ps(0.0f, 0.0f, h2f(w1[i].m), h2f(w0[i].m));               \
            FORC {                                                                              \
                const block_q8_1 *x = xc[c] + i;                                                \
                ms[c] = _mm_fmadd_ps(wm, _mm_set1_ps(h2f(x->s)), ms[c]);                        \
                const __m512 v = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q, \
                                     _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x->qs)))); \
                acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(wd, _mm512_set1_ps(h2f(x->d))), v, acc[c]); \
            }                                                                                   \
        }                                                                                       \
        FORC {                                                                                  \
            s[c * ss] = hsum8(_mm512_castps512_ps256(acc[c])) + _mm_cvtss_f32(ms[c]);           \
            s[c * ss + 1] = hsum8(_mm512_extractf32x8_ps(acc[c], 1)) + _mm_cvtss_f32(_mm_movehdup_ps(ms[c])); \
        }                                                                                       \
    }                                                                                           \
    NC2_FUNCS(NAME##_nc2, NAME##2_k)

#define Q4_1_CODES1(i) nib1(w[i].qs)
DOT_D_M(dot_q4_1, block_q4_1, Q4_1_CODES1)
#define Q4_1_CODESP(b) nib1((b)->qs)
DOT_D_M2(dot_q4_1, block_q4_1, Q4_1_CODESP)

#define Q5_1_CODES1(i) q5_1blk(w[i].qh, w[i].qs)
DOT_D_M(dot_q5_1, block_q5_1, Q5_1_CODES1)
#define Q5_1_CODESP(b) q5_1blk((b)->qh, (b)->qs)
DOT_D_M2(dot_q5_1, block_q5_1, Q5_1_CODESP)

/* The same two kernels over the wide Q8_1 layout (vec_dot_ncw: x quants
 * contiguous, then the blocks' d, then their s, widened to float exactly), so a
 * column's scales cost a broadcast, not a conversion; the two rows' (d, m) are
 * widened with one vcvtph2ps. Every lane runs the one-row kernel's float
 * operations: the same bits. */
#define DOT_D_M_W(NAME, WT, CODES1)                                                             \
    INL void NAME##w_k(long long n, float *s, long long ss, const void *vw, const void *va, long long as, const int NC) { \
        const WT *w = vw;                                                                       \
        const long long nb = n / QK;                                                            \
        const int8_t *xq[NCM];                                                                  \
        const float *xd[NCM];                                                                   \
        __m256 acc[NCM];                                                                        \
        float ms[NCM];                                                                          \
        FORC { xq[c] = (const int8_t *)va + (long long)c * as; xd[c] = (const float *)(xq[c] + nb * 32); \
               acc[c] = _mm256_setzero_ps(); ms[c] = 0.0f; }                                    \
        for (long long i = 0; i < nb; i++) {                                                    \
            const __m256i q = CODES1(i);                                                        \
            const float wd = h2f(w[i].d), wm = h2f(w[i].m);                                     \
            FORC {                                                                              \
                ms[c] = __builtin_fmaf(wm, xd[c][nb + i], ms[c]);                               \
                const __m256 v = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q, \
                                     _mm256_loadu_si256((const __m256i *)(xq[c] + i * 32))));    \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(wd * xd[c][i]), v, acc[c]);             \
            }                                                                                   \
        }                                                                                       \
        FORC s[c * ss] = hsum8(acc[c]) + ms[c];                                                 \
    }                                                                                           \
    NCW_FUNCS(NAME)

#define DOT_D_M_W2(NAME, WT, CODES2)                                                            \
    INL void NAME##w2_k(long long n, float *s, long long ss, const void *vw, long long ws,      \
                        const void *va, long long as, const int NC) {                           \
        const WT *w0 = vw, *w1 = (const WT *)((const char *)vw + ws);                           \
        const long long nb = n / QK;                                                            \
        const int8_t *xq[NCM2];                                                                 \
        const float *xd[NCM2];                                                                  \
        __m512 acc[NCM2];                                                                       \
        __m128 ms[NCM2];                                                                        \
        FORC { xq[c] = (const int8_t *)va + (long long)c * as; xd[c] = (const float *)(xq[c] + nb * 32); \
               acc[c] = _mm512_setzero_ps(); ms[c] = _mm_setzero_ps(); }                        \
        const __m512i sel = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);   \
        for (long long i = 0; i < nb; i++) {                                                    \
            const __m512i q = CODES2(w0 + i, w1 + i);                                           \
            const __m128 dm = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)pack2(&w0[i].d, &w1[i].d))); /* d0 m0 d1 m1 */ \
            const __m512 wd = _mm512_permutexvar_ps(sel, _mm512_castps128_ps512(dm));           \
            const __m128 wm = _mm_shuffle_ps(dm, dm, _MM_SHUFFLE(3, 3, 3, 1));                  \
            FORC {                                                                              \
                ms[c] = _mm_fmadd_ps(wm, _mm_set1_ps(xd[c][nb + i]), ms[c]);                    \
                const __m512 v = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q, \
                                     _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(xq[c] + i * 32))))); \
                acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(wd, _mm512_set1_ps(xd[c][i])), v, acc[c]); \
            }                                                                                   \
        }                                                                                       \
        FORC {                                                                                  \
            s[c * ss] = hsum8(_mm512_castps512_ps256(acc[c])) + _mm_cvtss_f32(ms[c]);           \
            s[c * ss + 1] = hsum8_hi(acc[c]) + _mm_cvtss_f32(_mm_movehdup_ps(ms[c]));           \
        }                                                                                       \
    }                                                                                           \
    NC2_FUNCS(NAME##_ncw2, NAME##w2_k)

DOT_D_M_W(dot_q4_1, block_q4_1, Q4_1_CODES1)
#define Q4_1_CODES2(a, b) nib2((a)->qs, (b)->qs)
DOT_D_M_W2(dot_q4_1, block_q4_1, Q4_1_CODES2)
DOT_D_M_W(dot_q5_1, block_q5_1, Q5_1_CODES1)
#define Q5_1_CODES2(a, b) _mm512_inserti64x4(_mm512_castsi256_si512(q5_1blk((a)->qh, (a)->qs)), q5_1blk((b)->qh, (b)->qs), 1)
DOT_D_M_W2(dot_q5_1, block_q5_1, Q5_1_CODES2)

/* ------------------------------------------------------------ K-quants
 * Codes (unsigned) times q8 with vpmaddubsw (pairs into int16; no saturation:
 * at most 2*63*128), then vpdpwssd with the sub-block scales as int16 words:
 * scale and sum in one step, into an int32 accumulator per super-block. */

/* 32 bytes in both halves of a zmm */
INL __m512i bcast32(const void *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }
INL __m512i ld64(const void *p) { return _mm512_loadu_si512(p); }
/* per-16-bit shift counts: a in the low 32 bytes, b in the high 32 */
#define CNT2(a, b) _mm512_set_epi64((b) * 0x0001000100010001LL, (b) * 0x0001000100010001LL, \
                                    (b) * 0x0001000100010001LL, (b) * 0x0001000100010001LL, \
                                    (a) * 0x0001000100010001LL, (a) * 0x0001000100010001LL, \
                                    (a) * 0x0001000100010001LL, (a) * 0x0001000100010001LL)
/* bytes: a in the low 32, b in the high 32 */
#define BYTES2(a, b) _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi8((char)(a)), _mm512_set1_epi8((char)(b)))
/* vpshufb control: every word of 128-bit lane L <- word wL of the same lane */
#define WSELW(w) ((2 * (w) + 1) << 8 | 2 * (w))
#define WSELD(w) ((int)((unsigned)WSELW(w) << 16 | WSELW(w)))
#define WSEL4(a, b, c, d) _mm512_set_epi32(WSELD(d), WSELD(d), WSELD(d), WSELD(d), WSELD(c), WSELD(c), WSELD(c), WSELD(c), \
                                           WSELD(b), WSELD(b), WSELD(b), WSELD(b), WSELD(a), WSELD(a), WSELD(a), WSELD(a))
/* scale words of 32-element sub-blocks a (lanes 0-1) and b (lanes 2-3), from 8 words in every lane */
#define SC32(v, a, b) _mm512_shuffle_epi8(v, WSEL4(a, a, b, b))
/* scale words of 16-element sub-blocks f..f+3 (one per lane), from 8 words in every lane */
#define SC16(v, f) _mm512_shuffle_epi8(v, WSEL4(f, f + 1, f + 2, f + 3))

INL __m512i bcast_words(__m128i w) { return _mm512_broadcast_i32x4(w); }
/* sum += codes * q8 * scale words */
INL __m512i kdot(__m512i sum, __m512i codes, const int8_t *q8, __m512i scw) {
    return _mm512_dpwssd_epi32(sum, _mm512_maddubs_epi16(codes, ld64(q8)), scw);
}

/* Q4_K / Q5_K 6-bit scales and mins: 8 scale bytes then 8 min bytes */
INL __m128i k4_scales(const uint8_t *p) {
    uint32_t a0 = ld32(p), a1 = ld32(p + 4), a2 = ld32(p + 8);
    uint32_t sc_lo = a0 & 0x3f3f3f3fu;
    uint32_t m_lo = a1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (a2 & 0x0f0f0f0fu) | ((a0 >> 6) & 0x03030303u) << 4;
    uint32_t m_hi = ((a2 >> 4) & 0x0f0f0f0fu) | ((a1 >> 6) & 0x03030303u) << 4;
    return _mm_set_epi32((int)m_hi, (int)m_lo, (int)sc_hi, (int)sc_lo);
}

/* Q3_K: 16 6-bit scales, minus 32, as int8 */
INL __m128i k3_scales(const uint8_t *p) {
    uint32_t a0 = ld32(p), a1 = ld32(p + 4), a2 = ld32(p + 8);
    uint32_t s0 = (a0 & 0x0f0f0f0fu) | (a2 & 0x03030303u) << 4;
    uint32_t s1 = (a1 & 0x0f0f0f0fu) | ((a2 >> 2) & 0x03030303u) << 4;
    uint32_t s2 = ((a0 >> 4) & 0x0f0f0f0fu) | ((a2 >> 4) & 0x03030303u) << 4;
    uint32_t s3 = ((a1 >> 4) & 0x0f0f0f0fu) | ((a2 >> 6) & 0x03030303u) << 4;
    return _mm_sub_epi8(_mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0), _mm_set1_epi8(32));
}

/* the offset term off * sum_j sc_j * bsum_j subtracted from a fresh sum (Q3_K, Q6_K) */
INL __m512i k16_off(__m256i sc16, const int16_t *bsums, int shift) {
    __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)bsums), sc16);
    return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(_mm256_slli_epi32(off, shift)));
}

/* Q4_K: the AVX2 kernel (dot_avx2.c, in llama.cpp's repacked-gemm order) runs
 * faster on that order than a zmm version did (same bits), so this table keeps it. */

/* exact sums of the int32 lanes of a and of b, in lanes 0 and 1 */
INL __m128i hsum2_i32(__m512i a, __m256i b) {
    const __m256i t = _mm256_hadd_epi32(_mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1)), b);
    const __m128i r = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    return _mm_hadd_epi32(r, r);
}

/* the tiled step with the min term for one column: M = sum of the sub-block mins
 * (int16 words mins16) times the column's bsums, I = the lanes of sum */
INL float tiled_min(float acc, __m512i sum, const block_q8_K *y, __m256i mins16, float wd, float wdm) {
    const __m256i M = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), mins16);
    return tiled_step_m(acc, hsum2_i32(sum, M), wd, wdm, y->d);
}

/* Q5_K in the order of llama.cpp's tiled K-quant matmul: per super-block the
 * exact integers I = sum sc*q.x and M = sum m*bsum, then
 * acc = fma(fma(-dmin, M, I*dw), dx, acc) */
INL void dot_q5_K_k(long long n, float *s, long long ss, const void *vw, const void *va, long long as, const int NC) {
    const block_q5_K *w = vw;
    const block_q8_K *yc[NCM];
    const long long nb = n / QKK;
    const __m512i m4 = _mm512_set1_epi8(0x0F), cnt = CNT2(0, 4), c16 = _mm512_set1_epi8(16);
    float acc[NCM];
    FORC { yc[c] = XCOL(block_q8_K, c); acc[c] = 0.0f; }
    for (long long i = 0; i < nb; i++) {
        const __m128i scm = k4_scales(w[i].scales);
        const __m512i sc = bcast_words(_mm_cvtepu8_epi16(scm));
        const __m256i mw = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scm, scm)); /* m0 m0 m1 m1 ... */
        const __m512i qh = bcast32(w[i].qh);
        __m512i sum[NCM];
        FORC sum[c] = _mm512_setzero_si512();
        /* 64 elements per step: sub-block 2k (low nibbles), 2k+1 (high) of qs[32k..];
         * fifth bit: bit 2k (low half) / 2k+1 (high half) of qh[0..31] */
        for (int k = 0; k < 4; k++) {
            __m512i cd = _mm512_and_si512(_mm512_srlv_epi16(bcast32(w[i].qs + 32 * k), cnt), m4);
            const __mmask64 h = _mm512_test_epi8_mask(qh, k == 0 ? BYTES2(0x01, 0x02) : k == 1 ? BYTES2(0x04, 0x08)
                                                          : k == 2 ? BYTES2(0x10, 0x20) : BYTES2(0x40, 0x80));
            cd = _mm512_mask_add_epi8(cd, h, cd, c16);
            const __m512i scw = k == 0 ? SC32(sc, 0, 1) : k == 1 ? SC32(sc, 2, 3) : k == 2 ? SC32(sc, 4, 5) : SC32(sc, 6, 7);
            FORC sum[c] = kdot(sum[c], cd, yc[c][i].qs + 64 * k, scw);
        }
        const float wd = h2f(w[i].d), wdm = h2f(w[i].dmin);
        FORC acc[c] = tiled_min(acc[c], sum[c], yc[c] + i, mw, wd, wdm);
    }
    FORC s[c * ss] = acc[c];
}
NC_FUNCS(dot_q5_K)

/* Q6_K: the AVX2 kernel (dot_avx2.c, in llama.cpp's tiled order) is faster for one
 * column than the zmm version was and as fast for several (same bits): kept. */

/* Q2_K and Q3_K in the order of llama.cpp's tiled K-quant matmul (Q2_K with
 * the min term, as Q5_K; Q3_K without, as Q6_K) */
INL void dot_q2_K_k(long long n, float *s, long long ss, const void *vw, const void *va, long long as, const int NC) {
    const block_q2_K *w = vw;
    const block_q8_K *yc[NCM];
    long long nb = n / QKK;
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m512i cnt_a = CNT2(0, 2), cnt_b = CNT2(4, 6);
    float acc[NCM];
    FORC { yc[c] = XCOL(block_q8_K, c); acc[c] = 0.0f; }
    for (long long i = 0; i < nb; i++) {
        __m128i raw = _mm_loadu_si128((const __m128i *)w[i].scales);
        __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(0x0F)));
        __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
        __m512i lo = bcast_words(_mm256_castsi256_si128(sc16)), hi = bcast_words(_mm256_extracti128_si256(sc16, 1));
        __m512i sum[NCM];
        FORC sum[c] = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i b = bcast32(w[i].qs + 32 * h);
            __m512i c0 = _mm512_and_si512(_mm512_srlv_epi16(b, cnt_a), m3);
            __m512i c1 = _mm512_and_si512(_mm512_srlv_epi16(b, cnt_b), m3);
            __m512i v = h ? hi : lo;
            __m512i s0 = SC16(v, 0), s1 = SC16(v, 4);
            FORC {
                const int8_t *q8 = yc[c][i].qs;
                sum[c] = kdot(sum[c], c0, q8 + 128 * h, s0);
                sum[c] = kdot(sum[c], c1, q8 + 128 * h + 64, s1);
            }
        }
        const float wd = h2f(w[i].d), wdm = h2f(w[i].dmin);
        FORC acc[c] = tiled_min(acc[c], sum[c], yc[c] + i, mn, wd, wdm);
    }
    FORC s[c * ss] = acc[c];
}
NC_FUNCS(dot_q2_K)

INL void dot_q3_K_k(long long n, float *s, long long ss, const void *vw, const void *va, long long as, const int NC) {
    const block_q3_K *w = vw;
    const block_q8_K *yc[NCM];
    long long nb = n / QKK;
    const __m512i m3 = _mm512_set1_epi8(3), c4 = _mm512_set1_epi8(4);
    const __m512i cnt_a = CNT2(0, 2), cnt_b = CNT2(4, 6);
    float acc[NCM];
    FORC { yc[c] = XCOL(block_q8_K, c); acc[c] = 0.0f; }
    for (long long i = 0; i < nb; i++) {
        /* codes L = low2 + 4*hbit in 0..7; the -4 comes off as 4 * sum sc*bsum */
        __m256i sc16 = _mm256_cvtepi8_epi16(k3_scales(w[i].scales));
        __m512i lo = bcast_words(_mm256_castsi256_si128(sc16)), hi = bcast_words(_mm256_extracti128_si256(sc16, 1));
        __m512i sum[NCM];
        FORC sum[c] = k16_off(sc16, yc[c][i].bsums, 2);
        __m512i hm = bcast32(w[i].hmask);
        for (int h = 0; h < 2; h++) {
            __m512i b = bcast32(w[i].qs + 32 * h);
            __m512i c0 = _mm512_and_si512(_mm512_srlv_epi16(b, cnt_a), m3);
            __m512i c1 = _mm512_and_si512(_mm512_srlv_epi16(b, cnt_b), m3);
            /* high bit of element e: bit e/32 of hmask[e%32] */
            __mmask64 h0 = _mm512_test_epi8_mask(hm, h ? BYTES2(0x10, 0x20) : BYTES2(0x01, 0x02));
            __mmask64 h1 = _mm512_test_epi8_mask(hm, h ? BYTES2(0x40, 0x80) : BYTES2(0x04, 0x08));
            c0 = _mm512_mask_add_epi8(c0, h0, c0, c4);
            c1 = _mm512_mask_add_epi8(c1, h1, c1, c4);
            __m512i v = h ? hi : lo;
            __m512i s0 = SC16(v, 0), s1 = SC16(v, 4);
            FORC {
                const int8_t *q8 = yc[c][i].qs;
                sum[c] = kdot(sum[c], c0, q8 + 128 * h, s0);
                sum[c] = kdot(sum[c], c1, q8 + 128 * h + 64, s1);
            }
        }
        float wd = h2f(w[i].d);
        FORC acc[c] = tiled_step(acc[c], hsum2_i32(sum[c], _mm256_setzero_si256()), wd, yc[c][i].d);
    }
    FORC s[c * ss] = acc[c];
}
NC_FUNCS(dot_q3_K)


/* ------------------------------------------------ 16-row tiles (prefill)
 * vec_dot_r16: up to 16 weight rows against any number of columns, with the
 * rows in the lanes of a zmm: the codes of every row are transposed once per
 * pass of columns into a buffer (zmm (j, g): lane r = row r's 4 codes of group
 * g of sub-block j, unsigned), so one vpdpbusd against a column's 4 quants
 * broadcast adds 4 products to each of the 16 rows' sums, with no horizontal
 * sums. Each lane then runs, on the exact integers I_k, M_k (or I) of its
 * (row, column), the float operations of vec_dot in the same order, so every
 * result has vec_dot's bits. */
#define R16 LLM_R16
#define R16_NCP 128   /* columns per pass: the transposed codes are reused this often */
#define R16_IBC 2    /* super-blocks transposed at a time */

/* lane r: the offset of row r (the last row repeated past nr) */
INL __m512i r16_index(long long ws, int nr) {
    int32_t ix[R16];
    for (int r = 0; r < R16; r++) ix[r] = (int32_t)((r < nr ? r : nr - 1) * ws);
    return _mm512_loadu_si512(ix);
}
/* the 8 sums of adjacent bsums (one per 32-element sub-block; |.| <= 32*127) */
INL __m128i bsums_pairs(const int16_t *b) {
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)b), _mm_loadu_si128((const __m128i *)(b + 8)));
}
INL __m512i gat(__m512i ix, const void *p) { return _mm512_i32gather_epi32(ix, p, 1); }
/* 16 zmm at p + ro[r] (row r's dwords 0..15) -> c[g]: lane r = row r's dword g
 * (unpack dwords, then qwords, then 128-bit lanes: 64 shuffles, where 16 gathers
 * stalled on the rows' cache lines) */
INL void tr16(const char *p, const long long *ro, __m512i c[16]) {
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(p + ro[i]);
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i + e]: per 128-bit lane L, rows 4i..4i+3 of dword 4L + e */
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int e = 0; e < 4; e++) {
        const __m512i v0 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xEE);
        const __m512i w0 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x44), w1 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xEE);
        c[e] = _mm512_shuffle_i32x4(v0, w0, 0x88);
        c[4 + e] = _mm512_shuffle_i32x4(v0, w0, 0xDD);
        c[8 + e] = _mm512_shuffle_i32x4(v1, w1, 0x88);
        c[12 + e] = _mm512_shuffle_i32x4(v1, w1, 0xDD);
    }
}
/* byte b of every dword lane, zero-extended */
INL __m512i byte_of(__m512i v, int b) { return _mm512_and_si512(_mm512_srli_epi32(v, 8 * b), _mm512_set1_epi32(0xff)); }

typedef struct {
    __m512i q[R16_IBC][8][8];   /* sub-block j, group g of 4 codes */
    __m512i sc[R16_IBC][8];     /* sub-block scales, int32 lanes */
    __m512i mw[R16_IBC][4];     /* (m_2k, m_2k+1) as the two words of each lane */
    __m512 dw[R16_IBC], dm[R16_IBC];
} q4k_r16;

/* row r's super-block at p + r*ws (lanes of ix) into slot t */
/* Q4_K / Q5_K: d, dmin, the 6-bit scales and mins of row r's super-block at p + r*ws */
INL void k4_r16_head(q4k_r16 *T, int t, const char *p, __m512i ix) {
    const __m512i dd = gat(ix, p);
    T->dw[t] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
    T->dm[t] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
    const __m512i a0 = gat(ix, p + 4), a1 = gat(ix, p + 8), a2 = gat(ix, p + 12);
    const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), m4 = _mm512_set1_epi32(0x0f0f0f0f), m2 = _mm512_set1_epi32(0x03030303);
    const __m512i sc_lo = _mm512_and_si512(a0, m6), m_lo = _mm512_and_si512(a1, m6);
    const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(a2, m4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(a0, 6), m2), 4));
    const __m512i m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(a2, 4), m4),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(a1, 6), m2), 4));
    for (int j = 0; j < 4; j++) { T->sc[t][j] = byte_of(sc_lo, j); T->sc[t][4 + j] = byte_of(sc_hi, j); }
    const __m512i lo8 = _mm512_set1_epi32(0xff), b2 = _mm512_set1_epi32(0xff0000);
    T->mw[t][0] = _mm512_or_si512(_mm512_and_si512(m_lo, lo8), _mm512_and_si512(_mm512_slli_epi32(m_lo, 8), b2));
    T->mw[t][1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(m_lo, 16), lo8), _mm512_and_si512(_mm512_srli_epi32(m_lo, 8), b2));
    T->mw[t][2] = _mm512_or_si512(_mm512_and_si512(m_hi, lo8), _mm512_and_si512(_mm512_slli_epi32(m_hi, 8), b2));
    T->mw[t][3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(m_hi, 16), lo8), _mm512_and_si512(_mm512_srli_epi32(m_hi, 8), b2));
}
INL void q4k_r16_dec(q4k_r16 *T, int t, const char *p, __m512i ix, const long long *ro) {
    k4_r16_head(T, t, p, ix);
    const __m512i nib = _mm512_set1_epi8(0x0f);
    for (int h = 0; h < 2; h++) {   /* qs dwords 16h..16h+15: groups of k = 2h, 2h+1 */
        __m512i v[16];
        tr16(p + 16 + 64 * h, ro, v);
        for (int g = 0; g < 16; g++) {
            const int k = 2 * h + g / 8;
            T->q[t][2 * k][g % 8] = _mm512_and_si512(v[g], nib);
            T->q[t][2 * k + 1][g % 8] = _mm512_and_si512(_mm512_srli_epi32(v[g], 4), nib);
        }
    }
}

/* Q4_K / Q5_K tiles: the exact sums of step k of super-block t (sub-blocks 2k in s0,
 * 2k+1 in s1) for each column, the 16 rows in the lanes */
INL void k45_r16_sums(const q4k_r16 *T, int t, int k, const block_q8_K *const *y, __m512i *s0, __m512i *s1,
                      const int NC) {
    FORC { s0[c] = _mm512_setzero_si512(); s1[c] = _mm512_setzero_si512(); }
    for (int g = 0; g < 8; g++) {
        const __m512i q0 = T->q[t][2 * k][g], q1 = T->q[t][2 * k + 1][g];
        FORC {
            const int8_t *x = y[c][t].qs + 64 * k + 4 * g;
            s0[c] = _mm512_dpbusd_epi32(s0[c], q0, _mm512_set1_epi32((int)ld32(x)));
            s1[c] = _mm512_dpbusd_epi32(s1[c], q1, _mm512_set1_epi32((int)ld32(x + 32)));
        }
    }
}

/* NC columns (blocks ib0.. at y[c]) over nib transposed super-blocks:
 * per k, [acc, accm] = fma([I_k, M_k], [dw*dx, dmin*dx], [acc, accm]) as dot_q4_K_k */
INL void q4k_r16_cols_g(const q4k_r16 *T, int nib, const block_q8_K *const *y, __m512 *acc, __m512 *accm, const int NC,
                        const int GEMV) {
    __m512 a[4], am[4];
    FORC { a[c] = acc[c]; am[c] = accm[c]; }
    for (int t = 0; t < nib; t++) {
        __m512 ddw[4], ddm[4];
        int32_t bp[4][4];   /* (b_4k + b_4k+1, b_4k+2 + b_4k+3) as words of dword k */
        FORC {
            const __m512 dx = _mm512_set1_ps(y[c][t].d);
            ddw[c] = _mm512_mul_ps(T->dw[t], dx);
            ddm[c] = _mm512_mul_ps(T->dm[t], dx);
            _mm_storeu_si128((__m128i *)bp[c], bsums_pairs(y[c][t].bsums));
        }
        __m512i Ib[4], Mb[4];   /* GEMV: the super-block's sums (exact), one step after */
        FORC { Ib[c] = _mm512_setzero_si512(); Mb[c] = _mm512_setzero_si512(); }
        for (int k = 0; k < 4; k++) {
            __m512i s0[4], s1[4];
            k45_r16_sums(T, t, k, y, s0, s1, NC);
            FORC {
                const __m512i I = _mm512_add_epi32(_mm512_mullo_epi32(s0[c], T->sc[t][2 * k]),
                                                   _mm512_mullo_epi32(s1[c], T->sc[t][2 * k + 1]));
                const __m512i M = _mm512_madd_epi16(T->mw[t][k], _mm512_set1_epi32(bp[c][k]));
                if (GEMV) {
                    Ib[c] = _mm512_add_epi32(Ib[c], I);
                    Mb[c] = _mm512_add_epi32(Mb[c], M);
                    continue;
                }
                a[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), ddw[c], a[c]);
                am[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(M), ddm[c], am[c]);
            }
        }
        if (GEMV)
            FORC {
                a[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(Ib[c]), ddw[c], a[c]);
                am[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(Mb[c]), ddm[c], am[c]);
            }
    }
    FORC { acc[c] = a[c]; accm[c] = am[c]; }
}
INL void q4k_r16_cols(const q4k_r16 *T, int nib, const block_q8_K *const *y, __m512 *acc, __m512 *accm, const int NC) {
    q4k_r16_cols_g(T, nib, y, acc, accm, NC, 0);
}
/* the repacked gemv's order (q4_K_gemv) */
INL void q4k_gemv_r16_cols(const q4k_r16 *T, int nib, const block_q8_K *const *y, __m512 *acc, __m512 *accm,
                           const int NC) {
    q4k_r16_cols_g(T, nib, y, acc, accm, NC, 1);
}

/* the entry point over a tile type TT: passes of R16_NCP columns; per pass, R16_IBC
 * super-blocks transposed (DEC) then run over the columns, 4 at a time (COLS);
 * FIN(acc, accm) is the result of a lane */
#define R16_FUNCS(NAME, TT, BT, DEC, COLS, FIN)                                                 \
    static void NAME(long long n, float *s, long long ss, const void *w, long long ws, int nr,  \
                     const void *av, long long as, int nc) {                                    \
        const long long nb = n / QKK;                                                           \
        const __m512i ix = r16_index(ws, nr);                                                   \
        long long ro[R16];                                                                      \
        for (int r = 0; r < R16; r++) ro[r] = (r < nr ? r : nr - 1) * ws;                       \
        const __mmask16 keep = (__mmask16)((1u << nr) - 1);                                     \
        TT T;                                                                                   \
        __m512 acc[R16_NCP], accm[R16_NCP];                                                     \
        for (int c0 = 0; c0 < nc; c0 += R16_NCP) {                                              \
            const int ncp = nc - c0 < R16_NCP ? nc - c0 : R16_NCP;                              \
            for (int c = 0; c < ncp; c++) acc[c] = accm[c] = _mm512_setzero_ps();               \
            for (long long ib0 = 0; ib0 < nb; ib0 += R16_IBC) {                                 \
                const int nib = nb - ib0 < R16_IBC ? (int)(nb - ib0) : R16_IBC;                 \
                for (int t = 0; t < nib; t++) DEC(&T, t, (const char *)((const BT *)w + ib0 + t), ix, ro); \
                const block_q8_K *y[4];                                                         \
                for (int c = 0; c < ncp; c += 4) {                                              \
                    const int m = ncp - c < 4 ? ncp - c : 4;                                    \
                    for (int i = 0; i < m; i++) y[i] = (const block_q8_K *)((const char *)av + (c0 + c + i) * as) + ib0; \
                    switch (m) {                                                                \
                    case 4: COLS(&T, nib, y, acc + c, accm + c, 4); break;                      \
                    case 3: COLS(&T, nib, y, acc + c, accm + c, 3); break;                      \
                    case 2: COLS(&T, nib, y, acc + c, accm + c, 2); break;                      \
                    default: COLS(&T, nib, y, acc + c, accm + c, 1); break;                     \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
            for (int c = 0; c < ncp; c++) _mm512_mask_storeu_ps(s + (c0 + c) * ss, keep, FIN(acc[c], accm[c])); \
        }                                                                                       \
    }
#define FIN_SUB(a, m) _mm512_sub_ps(a, m)
#define FIN_ACC(a, m) (a)
R16_FUNCS(dot_q4_K_r16, q4k_r16, block_q4_K, q4k_r16_dec, q4k_r16_cols, FIN_SUB)
R16_FUNCS(dot_q4_K_gemv_r16, q4k_r16, block_q4_K, q4k_r16_dec, q4k_gemv_r16_cols, FIN_SUB)

/* Q6_K: codes q = 0..63 (unsigned), I = sum_j sc_j q.x - 32 sum_j sc_j bsums_j
 * (16-element sub-blocks j), then acc = fma(I*dw, dx, acc) as dot_q6_K_k */
typedef struct {
    __m512i q[R16_IBC][16][4];  /* sub-block j, group g of 4 codes */
    __m512i sc[R16_IBC][16];    /* scales, int32 lanes */
    __m512 dw[R16_IBC];
} q6k_r16;

INL void q6k_r16_dec(q6k_r16 *T, int t, const char *p, __m512i ix, const long long *ro) {
    /* d is the high word of the dword at 206 (a dword at 208 would read past the block) */
    T->dw[t] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(gat(ix, p + 206), 16)));
    for (int i = 0; i < 4; i++) {
        const __m512i v = gat(ix, p + 192 + 4 * i);
        for (int b = 0; b < 4; b++) T->sc[t][4 * i + b] = _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * b), 24);
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(0x03);
    /* element 128h + 32m + l: nibble (m < 2: low) of ql[64h + 32(m&1) + l], bits 2m, 2m+1 of qh[32h + l] */
    __m512i ql[32], qh[16];   /* lane r: row r's dword g of ql, of qh */
    tr16(p, ro, ql);
    tr16(p + 64, ro, ql + 16);
    tr16(p + 128, ro, qh);
    for (int h = 0; h < 2; h++)
        for (int g = 0; g < 8; g++)
            for (int m = 0; m < 4; m++) {
                const __m512i l = ql[16 * h + 8 * (m & 1) + g];
                const __m512i lo4 = _mm512_and_si512(m >= 2 ? _mm512_srli_epi32(l, 4) : l, m4);
                const __m512i hb = qh[8 * h + g];
                const __m512i h2 = _mm512_and_si512(m ? _mm512_srli_epi32(hb, 2 * m) : hb, m3);
                T->q[t][8 * h + 2 * m + g / 4][g % 4] = _mm512_or_si512(lo4, _mm512_slli_epi32(h2, 4));
            }
}

INL void q6k_r16_cols(const q6k_r16 *T, int nib, const block_q8_K *const *y, __m512 *acc, __m512 *accm, const int NC) {
    (void)accm;
    __m512 a[4];
    FORC a[c] = acc[c];
    for (int t = 0; t < nib; t++) {
        /* sub-block j's sum starts at -32 bsums_j: (q - 32).x, exactly, before its scale */
        int32_t o[4][16];
        __m512i I[4];
        FORC {
            const __m512i b = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)y[c][t].bsums));
            _mm512_storeu_si512(o[c], _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(b, 5)));
            I[c] = _mm512_setzero_si512();
        }
        for (int j = 0; j < 16; j += 2) {
            __m512i s0[4], s1[4];
            FORC { s0[c] = _mm512_set1_epi32(o[c][j]); s1[c] = _mm512_set1_epi32(o[c][j + 1]); }
            for (int g = 0; g < 4; g++) {
                const __m512i q0 = T->q[t][j][g], q1 = T->q[t][j + 1][g];
                FORC {
                    const int8_t *x = y[c][t].qs + 16 * j + 4 * g;
                    s0[c] = _mm512_dpbusd_epi32(s0[c], q0, _mm512_set1_epi32((int)ld32(x)));
                    s1[c] = _mm512_dpbusd_epi32(s1[c], q1, _mm512_set1_epi32((int)ld32(x + 16)));
                }
            }
            FORC I[c] = _mm512_add_epi32(I[c], _mm512_add_epi32(_mm512_mullo_epi32(s0[c], T->sc[t][j]),
                                                                _mm512_mullo_epi32(s1[c], T->sc[t][j + 1])));
        }
        FORC a[c] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(I[c]), T->dw[t]), _mm512_set1_ps(y[c][t].d), a[c]);
    }
    FORC acc[c] = a[c];
}
R16_FUNCS(dot_q6_K_r16, q6k_r16, block_q6_K, q6k_r16_dec, q6k_r16_cols, FIN_ACC)


/* Q5_K: Q4_K's codes plus 16 where bit 2k (low nibbles) / 2k+1 (high) of qh[l] is
 * set; then, per super-block, I = sum_j sc_j q.x and M = sum_j m_j bsums, and the
 * tiled step acc = fma(fma(-dmin, M, I*dw), dx, acc) as dot_q5_K_k */
INL void q5k_r16_dec(q4k_r16 *T, int t, const char *p, __m512i ix, const long long *ro) {
    k4_r16_head(T, t, p, ix);
    const __m512i nib = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
    __m512i qh[16];   /* qh at 16..47: dwords 0..7 (8..15 are quants, unused) */
    tr16(p + 16, ro, qh);
    for (int h = 0; h < 2; h++) {   /* qs at 48: dwords 16h..16h+15, groups of k = 2h, 2h+1 */
        __m512i v[16];
        tr16(p + 48 + 64 * h, ro, v);
        for (int g = 0; g < 16; g++) {
            const int k = 2 * h + g / 8;
            const __m512i hb = qh[g % 8];
            const __m512i b0 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2 * k), one), 4);
            const __m512i b1 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2 * k + 1), one), 4);
            T->q[t][2 * k][g % 8] = _mm512_or_si512(_mm512_and_si512(v[g], nib), b0);
            T->q[t][2 * k + 1][g % 8] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v[g], 4), nib), b1);
        }
    }
}

INL void q5k_r16_cols(const q4k_r16 *T, int nib, const block_q8_K *const *y, __m512 *acc, __m512 *accm, const int NC) {
    (void)accm;
    __m512 a[4];
    FORC a[c] = acc[c];
    for (int t = 0; t < nib; t++) {
        int32_t bp[4][4];
        __m512i I[4], M[4];
        FORC {
            _mm_storeu_si128((__m128i *)bp[c], bsums_pairs(y[c][t].bsums));
            I[c] = M[c] = _mm512_setzero_si512();
        }
        for (int k = 0; k < 4; k++) {
            __m512i s0[4], s1[4];
            k45_r16_sums(T, t, k, y, s0, s1, NC);
            FORC {
                I[c] = _mm512_add_epi32(I[c], _mm512_add_epi32(_mm512_mullo_epi32(s0[c], T->sc[t][2 * k]),
                                                               _mm512_mullo_epi32(s1[c], T->sc[t][2 * k + 1])));
                M[c] = _mm512_add_epi32(M[c], _mm512_madd_epi16(T->mw[t][k], _mm512_set1_epi32(bp[c][k])));
            }
        }
        FORC {
            const __m512 r = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(M[c]), T->dm[t],
                                              _mm512_mul_ps(_mm512_cvtepi32_ps(I[c]), T->dw[t]));
            a[c] = _mm512_fmadd_ps(r, _mm512_set1_ps(y[c][t].d), a[c]);
        }
    }
    FORC acc[c] = a[c];
}
R16_FUNCS(dot_q5_K_r16, q4k_r16, block_q5_K, q5k_r16_dec, q5k_r16_cols, FIN_ACC)

/* ---------------------------------------------------------------- 4 rows, one column
 * vec_dot_r4 (decode): 4 adjacent weight rows against one activation column, each
 * activation load shared by the rows, the integers in zmm, every row's float steps
 * those of its vec_dot (the same exact integers, the same float ops in the same order,
 * only in other lanes). */

/* Q4_K: per row two zmm of codes (qs[0..63], qs[64..127]); the low nibbles of
 * qs[0..63] are sub-blocks 0 (bytes 0..31) and 2 (32..63), the high 1 and 3, so
 * the column's quants go as [x0..31 | x64..95] (low) and [x32..63 | x96..127]
 * (high); vpmaddubsw then vpdpwssd with each half's scale word gives per 256-bit
 * half the lanes of I_k (k = 0, 1; then 2, 3 from qs[64..127]). Per row the float
 * steps are dot_q4_K_k's: [acc, accm] = fma([I_k, M_k], [dw*dx, dmin*dx], [acc, accm])
 * in k order, here the rows' acc in lanes 0..3 and their accm in 4..7 of a ymm. */
#ifndef R4_PF
#define R4_PF 1
#endif
static const int32_t q4r4_mt[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
/* GEMV 1: the repacked gemv's order (q4_K_gemv): the four I_k, M_k of a super-block
 * summed (exact) before one float step */
static inline __attribute__((always_inline)) void q4_K_r4_body(long long n, float *s, const void *vw, long long ws,
                                                               const void *va, const int GEMV) {
    const block_q8_K *y = va;
    const char *w0 = vw;
    const long long nb = n / QKK;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i s_lo0 = WSEL4(0, 0, 2, 2), s_hi0 = WSEL4(1, 1, 3, 3), s_lo1 = WSEL4(4, 4, 6, 6), s_hi1 = WSEL4(5, 5, 7, 7);
    const __m512i mt = _mm512_loadu_si512(q4r4_mt);
    __m256 acc = _mm256_setzero_ps();   /* acc of rows 0..3, then their accm */
    for (long long ib = 0; ib < nb; ib++) {
        /* the rows' four interleaved streams defeat the hardware prefetcher on weights
         * streamed from memory (half the one-row kernel's speed): the groups ahead are
         * fetched as one sequential stream (the 4 rows are contiguous, 576 bytes per step) */
        {
            const char *pf = w0 + R4_PF * LLM_R4 * ws + ib * (LLM_R4 * sizeof(block_q4_K));
            for (int l = 0; l < (int)(LLM_R4 * sizeof(block_q4_K)); l += 64) _mm_prefetch(pf + l, _MM_HINT_T0);
        }
        const int8_t *q8 = y[ib].qs;
        const __m512i xl0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)q8)),
                                               _mm256_loadu_si256((const __m256i *)(q8 + 64)), 1);
        const __m512i xh0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + 32))),
                                               _mm256_loadu_si256((const __m256i *)(q8 + 96)), 1);
        const __m512i xl1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + 128))),
                                               _mm256_loadu_si256((const __m256i *)(q8 + 192)), 1);
        const __m512i xh1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + 160))),
                                               _mm256_loadu_si256((const __m256i *)(q8 + 224)), 1);
        __m512i R[4];
        __m128i mins[4];
        uint32_t dd[4];
        for (int r = 0; r < 4; r++) {
            const block_q4_K *b = (const block_q4_K *)(w0 + r * ws) + ib;
            const __m128i scm = k4_scales(b->scales);
            const __m512i sc = bcast_words(_mm_cvtepu8_epi16(scm));
            mins[r] = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(scm, scm));
            dd[r] = ld32(&b->d);
            const __m512i q0 = _mm512_loadu_si512(b->qs), q1 = _mm512_loadu_si512(b->qs + 64);
            const __m512i l0 = _mm512_and_si512(q0, m4), h0 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
            const __m512i l1 = _mm512_and_si512(q1, m4), h1 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
            __m512i a = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(l0, xl0), _mm512_shuffle_epi8(sc, s_lo0));
            __m512i c = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(l1, xl1), _mm512_shuffle_epi8(sc, s_lo1));
            a = _mm512_dpwssd_epi32(a, _mm512_maddubs_epi16(h0, xh0), _mm512_shuffle_epi8(sc, s_hi0));
            c = _mm512_dpwssd_epi32(c, _mm512_maddubs_epi16(h1, xh1), _mm512_shuffle_epi8(sc, s_hi1));
            /* 128-bit lanes of a: k0 k0 k1 k1, of c: k2 k2 k3 k3 -> lane k: 4 int32 of I_k */
            R[r] = _mm512_add_epi32(_mm512_shuffle_i64x2(a, c, 0x88), _mm512_shuffle_i64x2(a, c, 0xDD));
        }
        /* per 128-bit lane k: the 4 rows' sums of their 4 int32 (exact) -> I_k of rows 0..3 */
        const __m512i u0 = _mm512_add_epi32(_mm512_unpacklo_epi32(R[0], R[1]), _mm512_unpackhi_epi32(R[0], R[1]));
        const __m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi32(R[2], R[3]), _mm512_unpackhi_epi32(R[2], R[3]));
        const __m512i I = _mm512_add_epi32(_mm512_unpacklo_epi64(u0, u1), _mm512_unpackhi_epi64(u0, u1));
        /* M_k = m_2k (b_4k + b_4k+1) + m_2k+1 (b_4k+2 + b_4k+3): row r's in lane r, then k-major */
        const __m128i bp = bsums_pairs(y[ib].bsums);
        const __m512i mw = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(mins[1], mins[0])), _mm256_set_m128i(mins[3], mins[2]), 1);
        const __m512i M = _mm512_permutexvar_epi32(mt, _mm512_madd_epi16(mw, _mm512_broadcast_i32x4(bp)));
        const __m512 fI = _mm512_cvtepi32_ps(I), fM = _mm512_cvtepi32_ps(M);
        /* [dw_r*dx], [dmin_r*dx] as dot_q4_K_k's d = [dw, dmin] * dx */
        const __m256 dm = _mm256_cvtph_ps(_mm_setr_epi32((int)dd[0], (int)dd[1], (int)dd[2], (int)dd[3]));  /* dw0 dmin0 dw1 ... */
        const __m256 dsep = _mm256_permutevar8x32_ps(dm, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        const __m256 d = _mm256_mul_ps(dsep, _mm256_set1_ps(y[ib].d));
        if (GEMV) {
            const __m128i Is = _mm_add_epi32(_mm_add_epi32(_mm512_extracti32x4_epi32(I, 0), _mm512_extracti32x4_epi32(I, 1)),
                                             _mm_add_epi32(_mm512_extracti32x4_epi32(I, 2), _mm512_extracti32x4_epi32(I, 3)));
            const __m128i Ms = _mm_add_epi32(_mm_add_epi32(_mm512_extracti32x4_epi32(M, 0), _mm512_extracti32x4_epi32(M, 1)),
                                             _mm_add_epi32(_mm512_extracti32x4_epi32(M, 2), _mm512_extracti32x4_epi32(M, 3)));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_set_m128i(Ms, Is)), d, acc);
            continue;
        }
        for (int k = 0; k < 4; k++) {
            const __m256 im = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm512_extractf32x4_ps(fI, k)), _mm512_extractf32x4_ps(fM, k), 1);
            acc = _mm256_fmadd_ps(im, d, acc);
        }
    }
    _mm_storeu_ps(s, _mm_sub_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
}
static void dot_q4_K_r4(long long n, float *s, const void *vw, long long ws, const void *va) {
    q4_K_r4_body(n, s, vw, ws, va, 0);
}
static void dot_q4_K_gemv_r4(long long n, float *s, const void *vw, long long ws, const void *va) {
    q4_K_r4_body(n, s, vw, ws, va, 1);
}

void llm_kernels_avx512(llm_kernel_table *t) {
    t->vec_dot[T_F32] = dot_f32;
    t->vec_dot[T_F16] = dot_f16;
    t->vec_dot[T_BF16] = dot_bf16;
    /* no multi-column float kernels: matmul loops vec_dot (and an inherited AVX2
     * entry must not pair with this table's vec_dot) */
    t->vec_dot_nc[T_F32] = t->vec_dot_nc[T_F16] = t->vec_dot_nc[T_BF16] = NULL;
#define SET(T, K) (t->vec_dot[T] = K, t->vec_dot_nc[T] = K##_nc)
    SET(T_Q4_0, dot_q4_0);
    SET(T_Q4_1, dot_q4_1);
    SET(T_Q5_0, dot_q5_0);
    SET(T_Q5_1, dot_q5_1);
    SET(T_Q8_0, dot_q8_0);
    SET(T_Q2_K, dot_q2_K);
    SET(T_Q3_K, dot_q3_K);
    SET(T_Q5_K, dot_q5_K);
#undef SET
    llm_kernels_avx2_kquant_nc8(t);
    t->wide_xu = 1;   /* the wide Q8_0 layout's quants as x + 128 (the ncw kernels above) */
    t->vec_dot_ncw[T_Q4_0] = dot_q4_0_ncw;
    t->vec_dot_ncw[T_Q5_0] = dot_q5_0_ncw;
    t->vec_dot_ncw[T_Q8_0] = dot_q8_0_ncw;
    t->vec_dot_ncw[T_Q4_1] = dot_q4_1_ncw;
    t->vec_dot_ncw[T_Q5_1] = dot_q5_1_ncw;
    t->vec_dot_ncw2[T_Q4_1] = dot_q4_1_ncw2;
    t->vec_dot_ncw2[T_Q5_1] = dot_q5_1_ncw2;
    t->vec_dot_nc2[T_Q4_1] = dot_q4_1_nc2;
    t->vec_dot_nc2[T_Q5_1] = dot_q5_1_nc2;
    t->vec_dot_ncw2[T_Q4_0] = dot_q4_0_ncw2;
    t->vec_dot_ncw2[T_Q5_0] = dot_q5_0_ncw2;
    t->vec_dot_ncw2[T_Q8_0] = dot_q8_0_ncw2;
    /* Q8_0's two-row kernel streams its weights from memory at half the one-row
     * kernel's speed (measured: 131072 x 576, 2 columns 6.1 vs 2.9 ms; 8: 10.2 vs
     * 8.6), though it is faster on weights in cache: prefill-sized batches only */
    t->ncw2_min[T_Q8_0] = 16;
    /* the 16-row tiles from the column count where they overtook vec_dot_nc (one
     * thread, 1536 x 1536, 8960 x 1536, 1536 x 8960; Q6_K's heavier transposition
     * lost below 8 columns on weights streamed from memory; Q5_K at 8 broke even
     * there) */
    t->vec_dot_r16[T_Q4_K] = dot_q4_K_r16;
    t->r16_min[T_Q4_K] = 4;
    t->vec_dot_r16[T_Q6_K] = dot_q6_K_r16;
    t->r16_min[T_Q6_K] = 8;
    t->vec_dot_r16[T_Q5_K] = dot_q5_K_r16;
    t->r16_min[T_Q5_K] = 8;
    t->vec_dot_r4[T_Q4_K] = dot_q4_K_r4;
    t->q4_K_gemv_r4 = dot_q4_K_gemv_r4;
    t->q4_K_gemv_r16 = dot_q4_K_gemv_r16;
}
