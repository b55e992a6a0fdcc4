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
 * Q4_K, Q5_K and Q6_K also have a 16-row tile form for prefill (vec_dot_r16) and
 * Q4_K a 4-row one-column form for decode (vec_dot_r4): tiles_avx512.c. The inline
 * steps both files use: avx512_steps.h. */
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
#include <immintrin.h>
#include "internal.h"
#include "x86_steps.h"
#include "avx512_steps.h"

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


/* quants.c's qa_q8_K (quantize_row_q8_K_ref) in vectors, the same bits: amax the
 * largest |x| (vmaxps keeps the running max where x is NaN, as its > does), max the
 * first x of that |x|, then per element the same float steps (iscale * x, nearest_int's
 * + 1.5 * 2^23), min 127 and the int8 cast (vpmovdb truncates) */
static void quant_q8_K(const float *x, void *dst, long long n) {
    uint8_t *b = dst;
    const __m512 absm = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (long long i = 0; i < n / 256; i++, x += 256, b += 292) {
        __m512 am = _mm512_setzero_ps();
        for (int j = 0; j < 16; j++) am = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(x + 16 * j), absm), am);
        const float amax = _mm512_reduce_max_ps(am);
        int8_t qs[256];
        int16_t bsums[16];
        float d = 0.f;
        if (amax == 0.f) {
            memset(qs, 0, sizeof qs);
            memset(bsums, 0, sizeof bsums);
        } else {
            float max = 0.f;
            for (int j = 0; j < 16; j++) {
                const __mmask16 m = _mm512_cmp_ps_mask(_mm512_and_ps(_mm512_loadu_ps(x + 16 * j), absm),
                                                       _mm512_set1_ps(amax), _CMP_EQ_OQ);
                if (m) {
                    max = x[16 * j + __builtin_ctz(m)];
                    break;
                }
            }
            const float iscale = -127.f / max;
            for (int j = 0; j < 16; j++) {
                const __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(iscale), _mm512_loadu_ps(x + 16 * j)),
                                               _mm512_set1_ps(12582912.f));
                __m512i v = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(t), _mm512_set1_epi32(0x007fffff)),
                                             _mm512_set1_epi32(0x00400000));
                const __m128i q = _mm512_cvtepi32_epi8(_mm512_min_epi32(v, _mm512_set1_epi32(127)));
                _mm_storeu_si128((__m128i *)(qs + 16 * j), q);
                bsums[j] = (int16_t)_mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(q));
            }
            d = 1.f / iscale;
        }
        memcpy(b, &d, 4);
        memcpy(b + 4, qs, 256);
        memcpy(b + 260, bsums, 32);
    }
}

void llm_kernels_avx512(llm_kernel_table *t) {
    t->quant_q8_K = quant_q8_K;
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
    llm_kernels_avx512_tiles(t);   /* the row tiles: tiles_avx512.c */
}
