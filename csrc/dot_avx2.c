/* AVX2 + FMA + F16C vec-dot kernels for every weight type (x86 without AVX-512).
 *
 * Quantized types: integer products are summed exactly in int32 lanes (the
 * 32-element types' lanes stay below 2^24 in magnitude, so their conversion to
 * float is exact; the K-quants' sums are rounded to float once); blocks are then
 * scaled and accumulated in float in a fixed order. Results depend only
 * on (n, w, a): batch invariant. Every quantized type runs llama.cpp's x86 order
 * (32-element types: one 8-lane fma chain, hsum8; K-quants: its batched orders,
 * see the K-quant section), the same bits as the AVX-512 and scalar kernels.
 * int8 products use maddubs (unsigned x signed, pairs summed to int16): operands
 * are arranged so that no pair can saturate (unsigned weight codes <= 63, or the
 * sign moved from one signed operand onto the other).
 * Every quantized kernel also has a multi-column form (vec_dot_nc, the weight
 * decoded once for up to 4 columns at a time, 6 for the 32-element types;
 * bit-identical per column to vec_dot: see "multi-column form" below); Q4_0,
 * Q5_0 and Q8_0 also take the wide activation layout (vec_dot_ncw). */
#include "internal.h" /* first: declarations made under the pragma below would take its target */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
#include "x86_steps.h"   /* h2f, hsum8, tiled_step(_m): built for AVX2 here */

/* ---- helpers ---- */

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}


/* 16 packed bytes -> 32 nibbles: low nibbles in bytes 0..15, high nibbles in 16..31 */
static inline __m256i nibbles32(const uint8_t *p) {
    /* both halves loaded at once; the upper one shifted right by 4 (per-qword shift) */
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(0x0f));
}

/* the 32 bits of a little-endian u32 -> 32 bytes, 0xff where the bit is set */
static inline __m256i bits32(const uint8_t *p) {
    uint32_t x; memcpy(&x, p, 4);
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                             0x0101010101010101LL, 0x0000000000000000LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), spread);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* u (unsigned bytes) . s (signed bytes): 8 int32 lanes, each the sum of 4 products */
static inline __m256i dot_us8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* ---- float types ---- */

static void dot_f32(long long n, float *s, const void *wv, const void *av) {
    const float *w = wv, *a = av;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    long long i = 0;
    for (; i + 32 <= n; i += 32) {
        c0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), c0);
        c1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(a + i + 8), c1);
        c2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(a + i + 16), c2);
        c3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(a + i + 24), c3);
    }
    for (; i + 8 <= n; i += 8) c0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), c0);
    float r = hsum_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)));
    for (; i < n; i++) r += w[i] * a[i];
    *s = r;
}

static inline __m256 ld_f16(const f16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static void dot_f16(long long n, float *s, const void *wv, const void *av) {
    const f16_t *w = wv, *a = av;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    long long i = 0;
    for (; i + 32 <= n; i += 32) {
        c0 = _mm256_fmadd_ps(ld_f16(w + i), ld_f16(a + i), c0);
        c1 = _mm256_fmadd_ps(ld_f16(w + i + 8), ld_f16(a + i + 8), c1);
        c2 = _mm256_fmadd_ps(ld_f16(w + i + 16), ld_f16(a + i + 16), c2);
        c3 = _mm256_fmadd_ps(ld_f16(w + i + 24), ld_f16(a + i + 24), c3);
    }
    for (; i + 8 <= n; i += 8) c0 = _mm256_fmadd_ps(ld_f16(w + i), ld_f16(a + i), c0);
    float r = hsum_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)));
    for (; i < n; i++) r += h2f(w[i]) * h2f(a[i]);
    *s = r;
}

/* bf16 -> f32 is a 16-bit shift; interleaving zeros below each value does it for
 * 16 values at once, in a lane order that differs from memory order but is the same
 * for w and a, so the products are the same ones */
static inline __m256 bf16_lo(__m256i v) { return _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), v)); }
static inline __m256 bf16_hi(__m256i v) { return _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), v)); }

static void dot_bf16(long long n, float *s, const void *wv, const void *av) {
    const bf16_t *w = wv, *a = av;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    long long i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(w + i)), a0 = _mm256_loadu_si256((const __m256i *)(a + i));
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(w + i + 16)), a1 = _mm256_loadu_si256((const __m256i *)(a + i + 16));
        c0 = _mm256_fmadd_ps(bf16_lo(w0), bf16_lo(a0), c0);
        c1 = _mm256_fmadd_ps(bf16_hi(w0), bf16_hi(a0), c1);
        c2 = _mm256_fmadd_ps(bf16_lo(w1), bf16_lo(a1), c2);
        c3 = _mm256_fmadd_ps(bf16_hi(w1), bf16_hi(a1), c3);
    }
    for (; i + 16 <= n; i += 16) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(w + i)), a0 = _mm256_loadu_si256((const __m256i *)(a + i));
        c0 = _mm256_fmadd_ps(bf16_lo(w0), bf16_lo(a0), c0);
        c1 = _mm256_fmadd_ps(bf16_hi(w0), bf16_hi(a0), c1);
    }
    float r = hsum_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)));
    for (; i < n; i++) r += llm_bf16_to_f32(w[i]) * llm_bf16_to_f32(a[i]);
    *s = r;
}

/* ---- multi-column form ----
 * Every quantized kernel is written once as an always_inline body K_k(n, s, ss,
 * w, a, as, NC), NC a literal 1..LLM_NC_MAX: the weight blocks are decoded once
 * and every column c (activation row at a + c*as bytes, result at s[c*ss]) runs
 * its own accumulators through exactly the operations of the one-column body
 * (NC = 1, which is vec_dot itself), so each column's result is bit-identical to
 * vec_dot on that column alone. */
#define INL static inline __attribute__((always_inline))
#define NCM 4 /* columns per pass (16 ymm registers); vec_dot_nc takes any nc in passes */
#define NCA 8 /* the K-quant bodies' column capacity (8 columns per pass where 32 registers allow, below) */
#define FORC for (int c = 0; c < NC; c++)
#define XCOL(T, c) ((const T *)((const char *)av + (long long)(c) * as))

#define NC_FUNCS(K)                                                                             \
    static void K(long long n, float *s, const void *w, const void *a) { K##_k(n, s, 0, w, a, 0, 1); } \
    static void K##_nc(long long n, float *s, long long ss, const void *w, const void *a, long long as, int nc) { \
        const char *ac = a;                                                                     \
        for (; nc >= NCM; nc -= NCM, s += NCM * ss, ac += NCM * as) K##_k(n, s, ss, w, ac, as, NCM); \
        if (nc == 3) K##_k(n, s, ss, w, ac, as, 3);                                             \
        else if (nc == 2) K##_k(n, s, ss, w, ac, as, 2);                                        \
        else if (nc == 1) K##_k(n, s, ss, w, ac, as, 1);                                        \
    }

/* ---- 32-element types ----
 * In the order of llama.cpp's x86 kernels (ggml_vec_dot_q4_0_q8_0 & co. with
 * AVX2), bit for bit the AVX-512 and scalar kernels' order: one 8-lane float
 * chain per column, acc = fma(dw*dx, lanes, acc) over the blocks in order, lane
 * l the exact int32 sum of elements 4l..4l+3 of w.x (maddubs pairs, then madd
 * with ones; col_* below say why no pair saturates), dw*dx the float product of the
 * two widened fp16 scales; Q4_1 / Q5_1 also run the scalar chain
 * ms = fma(m_w, s_x, ms); the result is hsum8(acc) (+ ms). One chain is
 * latency-bound for one column; the multi-column form runs NC chains at once. */


static inline uint32_t ld32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
/* the fp16 pair at p (d and m, or d and s; or d and two quants, lane 1 then
 * unused) -> floats in lanes 0, 1 (exact); lanes 2, 3 zero */
static inline __m128 f16x2(const void *p) { return _mm_cvtph_ps(_mm_cvtsi32_si128((int)ld32(p))); }

/* weight side of one block: unsigned operand u and, for the signed types, the
 * signed values sg whose sign moves onto x */
typedef struct { __m256i u, sg; } wblk;
/* Q4_0: u = the unsigned nibble q (the -8 comes off as 8*x, see col_q4_0) */
INL wblk dec_q4_0(const block_q4_0 *w) { wblk r = {nibbles32(w->qs), _mm256_setzero_si256()}; return r; }
INL wblk dec_q4_1(const block_q4_1 *w) { wblk r = {nibbles32(w->qs), _mm256_setzero_si256()}; return r; }
INL __m256i q5_codes(const uint8_t *qs, const uint8_t *qh) {
    return _mm256_or_si256(nibbles32(qs), _mm256_and_si256(bits32(qh), _mm256_set1_epi8(0x10)));
}
INL wblk dec_q5_0(const block_q5_0 *w) {
    const __m256i v = _mm256_sub_epi8(q5_codes(w->qs, w->qh), _mm256_set1_epi8(16));   /* -16..15 */
    wblk r = {_mm256_sign_epi8(v, v), v};
    return r;
}
INL wblk dec_q5_1(const block_q5_1 *w) { wblk r = {q5_codes(w->qs, w->qh), _mm256_setzero_si256()}; return r; }
INL wblk dec_q8_0(const block_q8_0 *w) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)w->qs);
    wblk r = {_mm256_sign_epi8(v, v), v};
    return r;
}

/* the 8 int32 lanes of one block against x (32 int8 at xq).
 * Q4_0: q*x - 8*x per pair in int16 (|.| <= 2*15*128), exact for every x, as the
 * AVX-512 kernel's offset form. Q5_0 / Q8_0: |w| times x carrying w's sign, as
 * the AVX-512 kernel does (pairs <= 2*128*127; x = -128 against w < 0 wraps there
 * as here, and differs from the scalar kernel's exact sum: quantize_act gives
 * -128 only in blocks whose fp16 scale is 0, where the lanes do not count).
 * Q4_1 / Q5_1: the unsigned codes (<= 31) times x. */
INL __m256i col_q4_0(wblk d, const int8_t *xq) {
    const __m256i x = _mm256_loadu_si256((const __m256i *)xq);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(d.u, x), _mm256_maddubs_epi16(_mm256_set1_epi8(8), x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
INL __m256i col_sgn(wblk d, const int8_t *xq) {
    return dot_us8(d.u, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xq), d.sg));
}
INL __m256i col_u(wblk d, const int8_t *xq) { return dot_us8(d.u, _mm256_loadu_si256((const __m256i *)xq)); }

/* These kernels take up to NC32 columns per pass (matmul passes up to
 * LLM_NC_MAX): one ymm chain per column. */
#define NC32 6
#define NC32_FUNCS(NCF, KK)                                                                  \
static void NCF(long long n, float *s, long long ss, const void *w, const void *a, long long as, int nc) { \
    const char *ac = a;                                                                      \
    for (; nc >= NC32; nc -= NC32, s += NC32 * ss, ac += NC32 * as) KK(n, s, ss, w, ac, as, NC32); \
    switch (nc) {                                                                            \
    case 5: KK(n, s, ss, w, ac, as, 5); break;                                               \
    case 4: KK(n, s, ss, w, ac, as, 4); break;                                               \
    case 3: KK(n, s, ss, w, ac, as, 3); break;                                               \
    case 2: KK(n, s, ss, w, ac, as, 2); break;                                               \
    case 1: KK(n, s, ss, w, ac, as, 1); break;                                               \
    }                                                                                        \
}

/* The d-only types (Q4_0, Q5_0, Q8_0 against Q8_0). WIDE: the activations in
 * the wide layout of vec_dot_ncw (each column's nb blocks of 32 quants, then
 * their nb scales as floats, exactly widened), where the scale product is a
 * vector multiply of broadcasts: the same float product dw*dx. */
#define DOT32_D(NAME, WT, DEC, COL)                                                          \
INL void NAME##_b(long long n, float *s, long long ss, const void *wv, const void *av, long long as, \
                  const int NC, const int WIDE) {                                           \
    const WT *w = wv;                                                                        \
    const long long nb = n / QK;                                                             \
    const char *xc[NC32];                                                                    \
    __m256 acc[NC32];                                                                        \
    FORC { xc[c] = (const char *)av + (long long)c * as; acc[c] = _mm256_setzero_ps(); }     \
    for (long long i = 0; i < nb; i++) {                                                     \
        const wblk d = DEC(w + i);                                                           \
        const float wd = h2f(w[i].d);                                                        \
        FORC {                                                                               \
            __m256 v, dd;                                                                    \
            if (WIDE) {                                                                      \
                v = _mm256_cvtepi32_ps(COL(d, (const int8_t *)xc[c] + 32 * i));              \
                dd = _mm256_mul_ps(_mm256_set1_ps(wd), _mm256_broadcast_ss((const float *)(xc[c] + 32 * nb) + i)); \
            } else {                                                                         \
                const block_q8_0 *x = (const block_q8_0 *)xc[c] + i;                         \
                v = _mm256_cvtepi32_ps(COL(d, x->qs));                                       \
                dd = _mm256_broadcastss_ps(_mm_mul_ss(_mm_set_ss(wd), f16x2(&x->d)));         \
            }                                                                                \
            acc[c] = _mm256_fmadd_ps(dd, v, acc[c]);                                         \
        }                                                                                    \
    }                                                                                        \
    FORC s[c * ss] = hsum8(acc[c]);                                                          \
}                                                                                            \
INL void NAME##_k(long long n, float *s, long long ss, const void *w, const void *a, long long as, const int NC) { \
    NAME##_b(n, s, ss, w, a, as, NC, 0);                                                     \
}                                                                                            \
INL void NAME##w_k(long long n, float *s, long long ss, const void *w, const void *a, long long as, const int NC) { \
    NAME##_b(n, s, ss, w, a, as, NC, 1);                                                     \
}                                                                                            \
static void NAME(long long n, float *s, const void *w, const void *a) { NAME##_k(n, s, 0, w, a, 0, 1); } \
NC32_FUNCS(NAME##_nc, NAME##_k)                                                              \
NC32_FUNCS(NAME##_ncw, NAME##w_k)

/* The d+m types (Q4_1, Q5_1 against Q8_1). With [dw, mw] and [dx, sx] in lanes
 * 0, 1: lane 0 of their product is dw*dx, and lane 1 of the fma chain
 * msv = fma([dw, mw], [dx, sx], msv) is ms = fma(mw, sx, ms) (lane 0 unused). */
#define DOT32_M(NAME, WT, DEC)                                                               \
INL void NAME##_k(long long n, float *s, long long ss, const void *wv, const void *av, long long as, const int NC) { \
    const WT *w = wv;                                                                        \
    const block_q8_1 *xc[NC32];                                                              \
    const long long nb = n / QK;                                                             \
    __m256 acc[NC32];                                                                        \
    __m128 msv[NC32];                                                                        \
    FORC { xc[c] = XCOL(block_q8_1, c); acc[c] = _mm256_setzero_ps(); msv[c] = _mm_setzero_ps(); } \
    for (long long i = 0; i < nb; i++) {                                                     \
        const wblk d = DEC(w + i);                                                           \
        const __m128 wdm = f16x2(&w[i].d);                                                   \
        FORC {                                                                               \
            const block_q8_1 *x = xc[c] + i;                                                 \
            const __m128 xds = f16x2(&x->d);                                                 \
            const __m256 v = _mm256_cvtepi32_ps(col_u(d, x->qs));                            \
            msv[c] = _mm_fmadd_ps(wdm, xds, msv[c]);                                         \
            acc[c] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_mul_ss(wdm, xds)), v, acc[c]); \
        }                                                                                    \
    }                                                                                        \
    FORC s[c * ss] = hsum8(acc[c]) + _mm_cvtss_f32(_mm_movehdup_ps(msv[c]));                \
}                                                                                            \
static void NAME(long long n, float *s, const void *w, const void *a) { NAME##_k(n, s, 0, w, a, 0, 1); } \
NC32_FUNCS(NAME##_nc, NAME##_k)

DOT32_D(dot_q4_0, block_q4_0, dec_q4_0, col_q4_0)
DOT32_D(dot_q5_0, block_q5_0, dec_q5_0, col_sgn)
DOT32_D(dot_q8_0, block_q8_0, dec_q8_0, col_sgn)
DOT32_M(dot_q4_1, block_q4_1, dec_q4_1)
DOT32_M(dot_q5_1, block_q5_1, dec_q5_1)

/* ---- K-quants (256-element super-blocks, Q8_K activations) ----
 * In the orders of llama.cpp's batched x86 paths, bit for bit the scalar and
 * AVX-512 kernels (see dot_scalar.c): per super-block the exact int32 sums
 * I = Σ scale·q·x (and M = Σ min·bsums), here in SIMD lanes, then a few scalar
 * float steps per column:
 *   Q4_K (repacked gemm): I_k, M_k per 64 elements k = 0..3,
 *        acc = fma(I_k, dw*dx, acc), accm = fma(M_k, dmin*dx, accm); acc - accm
 *   Q6_K, Q3_K (tiled, no min): acc = fma(I*dw, dx, acc)
 *   Q5_K, Q2_K (tiled, with min): acc = fma(fma(-dmin, M, I*dw), dx, acc)
 * The multi-column form runs NC columns' float steps side by side. */

/* the int16 pair-sum vector p (16 lanes: 8 of one 16-element sub-block, then 8 of
 * the next) times that pair's scales: sc8 holds 8 int16 scales, pair k = 0..3 */
static const int8_t pair_shuf[4][32] = {
    {0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1, 2,3,2,3,2,3,2,3,2,3,2,3,2,3,2,3},
    {4,5,4,5,4,5,4,5,4,5,4,5,4,5,4,5, 6,7,6,7,6,7,6,7,6,7,6,7,6,7,6,7},
    {8,9,8,9,8,9,8,9,8,9,8,9,8,9,8,9, 10,11,10,11,10,11,10,11,10,11,10,11,10,11,10,11},
    {12,13,12,13,12,13,12,13,12,13,12,13,12,13,12,13, 14,15,14,15,14,15,14,15,14,15,14,15,14,15,14,15},
};
static inline __m256i pair_scales(__m256i sc8x2, int k) {
    return _mm256_shuffle_epi8(sc8x2, _mm256_loadu_si256((const __m256i *)pair_shuf[k]));
}

/* 16 int16 bsums -> 8 int16 sums of adjacent pairs (one per 32-element sub-block;
 * |sum| <= 32*127, no wrap) */
static inline __m128i bsums_pairs(const int16_t *b) {
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)b), _mm_loadu_si128((const __m128i *)(b + 8)));
}

/* exact sums of the int32 lanes: of a and b at once (lane 0 and 1 of the result) */
INL __m128i hsum2_i32x8(__m256i a, __m256i b) {
    const __m256i t = _mm256_hadd_epi32(a, b);   /* per half: a01 a23 b01 b23 */
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    return _mm_hadd_epi32(r, r);                 /* A B A B */
}

/* K-quants: the weight codes of each 32-element group are decoded once, then
 * every column adds its scaled products into its own int32 lanes (integer sums
 * are exact, so their association does not matter); the float steps per column
 * are those of the one-column body. */

INL void dot_q2_K_k(long long n, float *s, long long ss, const void *wv, const void *av, long long as, const int NC) {
    const block_q2_K *x = wv;
    const block_q8_K *yc[NCA];
    const long long nb = n / QKK;
    const __m256i m3 = _mm256_set1_epi8(3);
    float acc[NCA];
    FORC { yc[c] = XCOL(block_q8_K, c); acc[c] = 0.0f; }
    for (long long ib = 0; ib < nb; ib++) {
        const float wd = h2f(x[ib].d), wdm = h2f(x[ib].dmin);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[ib].scales);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0f)));
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, _mm_set1_epi8(0x0f)));
        __m256i sumi[NCA];
        FORC sumi[c] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
            const __m256i q2 = _mm256_loadu_si256((const __m256i *)(x[ib].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                const __m256i cd = _mm256_and_si256(k ? _mm256_srli_epi16(q2, 2 * k) : q2, m3);
                const __m256i sk = pair_scales(sch, k);
                FORC {
                    const __m256i yk = _mm256_loadu_si256((const __m256i *)(yc[c][ib].qs + 128 * h + 32 * k));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(_mm256_maddubs_epi16(cd, yk), sk));
                }
            }
        }
        FORC {
            const block_q8_K *y = yc[c] + ib;
            /* M: Σ_j m_j * bsums_j over the 16 sub-blocks */
            const __m256i pm = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)y->bsums));
            acc[c] = tiled_step_m(acc[c], hsum2_i32x8(sumi[c], pm), wd, wdm, y->d);
        }
    }
    FORC s[c * ss] = acc[c];
}
NC_FUNCS(dot_q2_K)

/* Q3_K scales: 12 bytes -> 16 signed values s_j - 32 */
static inline __m128i q3k_scales(const uint8_t *p) {
    uint32_t a0, a1, a2;
    memcpy(&a0, p, 4); memcpy(&a1, p + 4, 4); memcpy(&a2, p + 8, 4);
    const uint32_t lo = 0x0f0f0f0f, hb = 0x03030303;
    uint32_t s0 = (a0 & lo) | ((a2 & hb) << 4);
    uint32_t s1 = (a1 & lo) | (((a2 >> 2) & hb) << 4);
    uint32_t s2 = ((a0 >> 4) & lo) | (((a2 >> 4) & hb) << 4);
    uint32_t s3 = ((a1 >> 4) & lo) | (((a2 >> 6) & hb) << 4);
    return _mm_sub_epi8(_mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0), _mm_set1_epi8(32));
}

INL void dot_q3_K_k(long long n, float *s, long long ss, const void *wv, const void *av, long long as, const int NC) {
    const block_q3_K *x = wv;
    const block_q8_K *yc[NCA];
    const long long nb = n / QKK;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    float acc[NCA];
    FORC { yc[c] = XCOL(block_q8_K, c); acc[c] = 0.0f; }
    for (long long ib = 0; ib < nb; ib++) {
        const float wd = h2f(x[ib].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales(x[ib].scales));
        const __m256i sc4 = _mm256_slli_epi16(sc16, 2);
        /* L - 4 with L = low2 + 4*hbit in 0..7: sum L*q8 - 4*bsums, per sub-block */
        __m256i sumi[NCA];
        FORC sumi[c] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                        _mm256_madd_epi16(sc4, _mm256_loadu_si256((const __m256i *)yc[c][ib].bsums)));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[ib].hmask);
        for (int h = 0; h < 2; h++) {
            const __m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
            const __m256i q2 = _mm256_loadu_si256((const __m256i *)(x[ib].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                /* high bit of group 4h + k: bit 4h + k of hmask[l], moved to bit 2 */
                const int hs = 4 * h + k;
                const __m256i hbit = hs < 2 ? _mm256_slli_epi16(hm, 2 - hs) : hs == 2 ? hm : _mm256_srli_epi16(hm, hs - 2);
                const __m256i lk = _mm256_or_si256(_mm256_and_si256(k ? _mm256_srli_epi16(q2, 2 * k) : q2, m3),
                                                   _mm256_and_si256(hbit, four));
                const __m256i sk = pair_scales(sch, k);
                FORC {
                    const __m256i yk = _mm256_loadu_si256((const __m256i *)(yc[c][ib].qs + 128 * h + 32 * k));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(_mm256_maddubs_epi16(lk, yk), sk));
                }
            }
        }
        FORC acc[c] = tiled_step(acc[c], hsum2_i32x8(sumi[c], sumi[c]), wd, yc[c][ib].d);
    }
    FORC s[c * ss] = acc[c];
}
NC_FUNCS(dot_q3_K)

/* Q4_K / Q5_K scales: 12 bytes -> 8 scales (bytes 0..7) and 8 mins (bytes 8..15) */
static inline __m128i k4_scales_mins(const uint8_t *p) {
    uint32_t a, b, c;
    memcpy(&a, p, 4); memcpy(&b, p + 4, 4); memcpy(&c, p + 8, 4);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t sc_lo = a & m6, m_lo = b & m6;
    uint32_t sc_hi = (c & m4) | (((a >> 6) & m2) << 4);
    uint32_t m_hi = ((c >> 4) & m4) | (((b >> 6) & m2) << 4);
    return _mm_set_epi32((int)m_hi, (int)m_lo, (int)sc_hi, (int)sc_lo);
}

/* Q4_K / Q5_K codes of step k (64 elements): sub-block 2k (lo) and 2k+1 (hi),
 * from qs[32k..32k+31]; with qh (Q5_K), bit 2k / 2k+1 of qh[l] adds 16 */
INL void k45_codes(const uint8_t *qs, const uint8_t *qh, __m256i lo[4], __m256i hi[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
    __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        const __m256i q4 = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
        lo[k] = _mm256_and_si256(q4, m4);
        hi[k] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
        if (qh) {
            lo[k] = _mm256_or_si256(lo[k], _mm256_and_si256(_mm256_slli_epi16(hb, 4), b4));
            hi[k] = _mm256_or_si256(hi[k], _mm256_and_si256(_mm256_slli_epi16(hb, 3), b4));
            hb = _mm256_srli_epi16(hb, 2);
        }
    }
}
/* scale j (of the 8 int16 in both halves of sc) in every int16 lane */
INL __m256i k4_scale(__m256i sc, int j) {
    return _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)(0x0100 + 0x0202 * j)));
}
/* int32 lanes of step k against q8 (its 64 quants) */
INL __m256i k45_step(__m256i lo, __m256i hi, __m256i slo, __m256i shi, const int8_t *q8) {
    const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
    const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
    return _mm256_add_epi32(_mm256_madd_epi16(plo, slo), _mm256_madd_epi16(phi, shi));
}

/* Q4_K in the repacked gemm's order: per column, the four I_k of a super-block
 * reduced together (lane k of one vector), the M_k likewise, and the two fma
 * chains run side by side as lanes 0 (acc) and 1 (accm) of one vector:
 * [acc, accm] = fma([I_k, M_k], [dw*dx, dmin*dx], [acc, accm]) in k order */
INL void q4_K_kk(long long n, float *s, long long ss, const void *wv, const void *av, long long as, const int NC,
                 const int GEMV) {
    const block_q4_K *x = wv;
    const block_q8_K *yc[NCA];
    const long long nb = n / QKK;
    __m128 acc[NCA];   /* lanes 0, 1: acc, accm */
    FORC { yc[c] = XCOL(block_q8_K, c); acc[c] = _mm_setzero_ps(); }
    for (long long ib = 0; ib < nb; ib++) {
        const __m128 wdm = f16x2(&x[ib].d);   /* [dw, dmin, 0, 0] */
        const __m256i scm = _mm256_cvtepu8_epi16(k4_scales_mins(x[ib].scales)); /* 8 sc, then 8 m, as int16 */
        const __m128i mw = _mm256_extracti128_si256(scm, 1);
        const __m256i sc = _mm256_permute2x128_si256(scm, scm, 0x00);
        __m256i lo[4], hi[4];
        k45_codes(x[ib].qs, NULL, lo, hi);
        FORC {
            const block_q8_K *y = yc[c] + ib;
            __m256i p[4];
            for (int k = 0; k < 4; k++)
                p[k] = k45_step(lo[k], hi[k], k4_scale(sc, 2 * k), k4_scale(sc, 2 * k + 1), y->qs + 64 * k);
            /* hadd tree: lane k of each half = that half's sum of p[k] */
            const __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
            const __m128i I = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            /* M_k = m_2k (b_4k + b_4k+1) + m_2k+1 (b_4k+2 + b_4k+3) in lane k */
            const __m128i M = _mm_madd_epi16(mw, bsums_pairs(y->bsums));
            const __m128 im01 = _mm_cvtepi32_ps(_mm_unpacklo_epi32(I, M));   /* I0 M0 I1 M1 */
            const __m128 im23 = _mm_cvtepi32_ps(_mm_unpackhi_epi32(I, M));   /* I2 M2 I3 M3 */
            const __m128 d = _mm_mul_ps(wdm, _mm_set1_ps(y->d));            /* dw*dx, dmin*dx */
            if (GEMV) {   /* the super-block's whole I and M (exact int32 sums), one step */
                const __m128i im = _mm_unpacklo_epi32(I, M), im2 = _mm_unpackhi_epi32(I, M); /* I0 M0 I1 M1, I2 M2 I3 M3 */
                const __m128i s4 = _mm_add_epi32(im, im2);
                const __m128i sb = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));              /* Ib Mb . . */
                acc[c] = _mm_fmadd_ps(_mm_cvtepi32_ps(sb), d, acc[c]);
                continue;
            }
            __m128 a = acc[c];
            a = _mm_fmadd_ps(im01, d, a);
            a = _mm_fmadd_ps(_mm_movehl_ps(im01, im01), d, a);
            a = _mm_fmadd_ps(im23, d, a);
            a = _mm_fmadd_ps(_mm_movehl_ps(im23, im23), d, a);
            acc[c] = a;
        }
    }
    FORC s[c * ss] = _mm_cvtss_f32(_mm_sub_ss(acc[c], _mm_movehdup_ps(acc[c])));
}
INL void dot_q4_K_k(long long n, float *s, long long ss, const void *wv, const void *av, long long as, const int NC) {
    q4_K_kk(n, s, ss, wv, av, as, NC, 0);
}
NC_FUNCS(dot_q4_K)
/* the repacked gemv's order (llama.cpp's Q4_K experts) */
INL void dot_q4_K_gemv_k(long long n, float *s, long long ss, const void *wv, const void *av, long long as, const int NC) {
    q4_K_kk(n, s, ss, wv, av, as, NC, 1);
}
NC_FUNCS(dot_q4_K_gemv)

/* Q5_K in the tiled order */
INL void dot_q5_K_k(long long n, float *s, long long ss, const void *wv, const void *av, long long as, const int NC) {
    const block_q5_K *x = wv;
    const block_q8_K *yc[NCA];
    const long long nb = n / QKK;
    float acc[NCA];
    FORC { yc[c] = XCOL(block_q8_K, c); acc[c] = 0.0f; }
    for (long long ib = 0; ib < nb; ib++) {
        const float wd = h2f(x[ib].d), wdm = h2f(x[ib].dmin);
        const __m256i scm = _mm256_cvtepu8_epi16(k4_scales_mins(x[ib].scales)); /* 8 sc, then 8 m, as int16 */
        const __m128i mw = _mm256_extracti128_si256(scm, 1);
        const __m256i sc = _mm256_permute2x128_si256(scm, scm, 0x00);
        __m256i lo[4], hi[4];
        k45_codes(x[ib].qs, x[ib].qh, lo, hi);
        __m256i sumi[NCA];
        FORC sumi[c] = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            const __m256i slo = k4_scale(sc, 2 * k), shi = k4_scale(sc, 2 * k + 1);
            FORC sumi[c] = _mm256_add_epi32(sumi[c], k45_step(lo[k], hi[k], slo, shi, yc[c][ib].qs + 64 * k));
        }
        FORC {
            const block_q8_K *y = yc[c] + ib;
            const __m128i pm = _mm_madd_epi16(mw, bsums_pairs(y->bsums));   /* 4 lanes, M = their sum */
            acc[c] = tiled_step_m(acc[c], hsum2_i32x8(sumi[c], _mm256_zextsi128_si256(pm)), wd, wdm, y->d);
        }
    }
    FORC s[c * ss] = acc[c];
}
NC_FUNCS(dot_q5_K)

/* Q6_K: the unsigned codes q (0..63) times x, then 32 * Σ sc_j * bsums_j off */
INL void dot_q6_K_k(long long n, float *s, long long ss, const void *wv, const void *av, long long as, const int NC) {
    const block_q6_K *x = wv;
    const block_q8_K *yc[NCA];
    const long long nb = n / QKK;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x30);
    float acc[NCA];
    FORC { yc[c] = XCOL(block_q8_K, c); acc[c] = 0.0f; }
    for (long long ib = 0; ib < nb; ib++) {
        const float wd = h2f(x[ib].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[ib].scales));
        const __m256i sc32 = _mm256_slli_epi16(sc16, 5);   /* |32 sc| <= 4096 */
        __m256i sumi[NCA];
        FORC sumi[c] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                        _mm256_madd_epi16(sc32, _mm256_loadu_si256((const __m256i *)yc[c][ib].bsums)));
        for (int h = 0; h < 2; h++) {
            const __m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[ib].qh + 32 * h));
            for (int k = 0; k < 4; k++) {
                /* group k: low nibbles (k < 2) or high nibbles of ql[64h + 32(k&1)..], qh bits 2k, 2k+1 */
                const __m256i ql = _mm256_loadu_si256((const __m256i *)(x[ib].ql + 64 * h + 32 * (k & 1)));
                const __m256i lq = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), m4);
                const __m256i hq = _mm256_and_si256(k == 0 ? _mm256_slli_epi16(qh, 4) : k == 1 ? _mm256_slli_epi16(qh, 2)
                                                    : k == 2 ? qh : _mm256_srli_epi16(qh, 2), m3);
                const __m256i q = _mm256_or_si256(lq, hq);   /* pairs: |.| <= 2*63*128 */
                const __m256i sk = pair_scales(sch, k);
                FORC {
                    const __m256i yk = _mm256_loadu_si256((const __m256i *)(yc[c][ib].qs + 128 * h + 32 * k));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(_mm256_maddubs_epi16(q, yk), sk));
                }
            }
        }
        FORC acc[c] = tiled_step(acc[c], hsum2_i32x8(sumi[c], sumi[c]), wd, yc[c][ib].d);
    }
    FORC s[c * ss] = acc[c];
}
NC_FUNCS(dot_q6_K)

/* The table filler runs on every CPU (dispatch builds all tables at start), so it is
 * compiled for the baseline ISA: with AVX2 enabled, GCC stores these pointers with
 * vector instructions. */
#pragma GCC pop_options

void llm_kernels_avx2(llm_kernel_table *t) {
    t->vec_dot[T_F32] = dot_f32;
    t->vec_dot[T_F16] = dot_f16;
    t->vec_dot[T_BF16] = dot_bf16;
    /* no multi-column float kernels: matmul loops vec_dot */
    t->vec_dot_nc[T_F32] = t->vec_dot_nc[T_F16] = t->vec_dot_nc[T_BF16] = NULL;
#define SET(T, K) (t->vec_dot[T] = K, t->vec_dot_nc[T] = K##_nc)
    SET(T_Q4_0, dot_q4_0);
    SET(T_Q4_1, dot_q4_1);
    SET(T_Q5_0, dot_q5_0);
    SET(T_Q5_1, dot_q5_1);
    SET(T_Q8_0, dot_q8_0);
    SET(T_Q2_K, dot_q2_K);
    SET(T_Q3_K, dot_q3_K);
    SET(T_Q4_K, dot_q4_K);
    SET(T_Q5_K, dot_q5_K);
    SET(T_Q6_K, dot_q6_K);
#undef SET
    t->vec_dot_ncw[T_Q4_0] = dot_q4_0_ncw;
    t->vec_dot_ncw[T_Q5_0] = dot_q5_0_ncw;
    t->vec_dot_ncw[T_Q8_0] = dot_q8_0_ncw;
    t->q4_K_gemv = dot_q4_K_gemv;
    t->q4_K_gemv_nc = dot_q4_K_gemv_nc;
}

/* Q4_K and Q6_K for the AVX-512 table: these same bodies (the same bits), built
 * with AVX-512VL's 32 vector registers, eight columns per pass instead of four,
 * so the weight blocks are decoded half as often. */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq")
#define NC8_FUNCS(K)                                                                            \
    static void K##_nc8(long long n, float *s, long long ss, const void *w, const void *a, long long as, int nc) { \
        const char *ac = a;                                                                     \
        for (; nc >= NCA; nc -= NCA, s += NCA * ss, ac += NCA * as) K##_k(n, s, ss, w, ac, as, NCA); \
        switch (nc) {                                                                           \
        case 7: K##_k(n, s, ss, w, ac, as, 7); break;                                           \
        case 6: K##_k(n, s, ss, w, ac, as, 6); break;                                           \
        case 5: K##_k(n, s, ss, w, ac, as, 5); break;                                           \
        case 4: K##_k(n, s, ss, w, ac, as, 4); break;                                           \
        case 3: K##_k(n, s, ss, w, ac, as, 3); break;                                           \
        case 2: K##_k(n, s, ss, w, ac, as, 2); break;                                           \
        case 1: K##_k(n, s, ss, w, ac, as, 1); break;                                           \
        }                                                                                       \
    }
NC8_FUNCS(dot_q4_K)
NC8_FUNCS(dot_q6_K)
#pragma GCC pop_options

/* called by llm_kernels_avx512 (baseline code, as the table fillers) */
void llm_kernels_avx2_kquant_nc8(llm_kernel_table *t) {
    t->vec_dot_nc[T_Q4_K] = dot_q4_K_nc8;
    t->vec_dot_nc[T_Q6_K] = dot_q6_K_nc8;
}

