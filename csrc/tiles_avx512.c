/* AVX-512 row-tile kernels for the K-quants: the 16-row tiles of prefill
 * (vec_dot_r16: Q4_K, Q5_K, Q6_K) and the 4-row one-column kernel of decode
 * (vec_dot_r4: Q4_K). Each gives, per (row, column), the bits of the one-row
 * kernels of dot_avx512.c: the same exact integers, the same float steps in the
 * same order, only in other lanes. llm_kernels_avx512 sets them (through
 * llm_kernels_avx512_tiles) with the column counts from which they pay. */
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
#include <immintrin.h>
#include "internal.h"
#include "x86_steps.h"
#include "avx512_steps.h"

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

/* slot t's scales and mins from their bytes: sub-block j's scale in byte j of sc_lo
 * (j < 4) or byte j - 4 of sc_hi, its min so in m_lo, m_hi */
INL void k4_r16_scales(q4k_r16 *T, int t, __m512i sc_lo, __m512i sc_hi, __m512i m_lo, __m512i m_hi) {
    for (int j = 0; j < 4; j++) { T->sc[t][j] = byte_of(sc_lo, j); T->sc[t][4 + j] = byte_of(sc_hi, j); }
    const __m512i lo8 = _mm512_set1_epi32(0xff), b2 = _mm512_set1_epi32(0xff0000);
    T->mw[t][0] = _mm512_or_si512(_mm512_and_si512(m_lo, lo8), _mm512_and_si512(_mm512_slli_epi32(m_lo, 8), b2));
    T->mw[t][1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(m_lo, 16), lo8), _mm512_and_si512(_mm512_srli_epi32(m_lo, 8), b2));
    T->mw[t][2] = _mm512_or_si512(_mm512_and_si512(m_hi, lo8), _mm512_and_si512(_mm512_slli_epi32(m_hi, 8), b2));
    T->mw[t][3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(m_hi, 16), lo8), _mm512_and_si512(_mm512_srli_epi32(m_hi, 8), b2));
}
/* Q4_K / Q5_K: d, dmin, the 6-bit scales and mins of row r's super-block at p + r*ws
 * (lanes of ix) into slot t */
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
    k4_r16_scales(T, t, sc_lo, sc_hi, m_lo, m_hi);
}
/* the qs dword that dword D of the stored codes is: Q5_K's decode copy (X4 1) holds
 * the 16-byte pieces of qs in the order QS_X4 (repack.c) */
static const int qs_x4_piece[8] = {0, 2, 4, 6, 1, 3, 5, 7};
INL int qs_dword(int D, const int X4) { return X4 ? 4 * qs_x4_piece[D / 4] + D % 4 : D; }

INL void q4k_r16_dec(q4k_r16 *T, int t, const char *p, __m512i ix, const long long *ro, const int32_t *rq,
                     const int X4) {
    (void)rq; (void)X4;   /* the file's layout (the copy: q4k_x4_r16_dec) */
    k4_r16_head(T, t, p, ix);
    const __m512i nib = _mm512_set1_epi8(0x0f);
    for (int h = 0; h < 2; h++) {   /* stored qs dwords 16h..16h+15 */
        __m512i v[16];
        tr16(p + 16 + 64 * h, ro, v);
        for (int g = 0; g < 16; g++) {
            const int o = 16 * h + g, k = o / 8;   /* qs dword o: group o % 8 of k */
            T->q[t][2 * k][o % 8] = _mm512_and_si512(v[g], nib);
            T->q[t][2 * k + 1][o % 8] = _mm512_and_si512(_mm512_srli_epi32(v[g], 4), nib);
        }
    }
}

/* Q4_K's decode copy (repack.c's q4_K_group: a super-block's 4 rows as one group): lane
 * r's group at p + ro[r] - 144 rq[r], its row rq[r]. The head gathered per lane; the
 * codes as 8 loads a group, chunk g of group G holding row r's qs dword 8k + g in
 * dword 4r + k, so that (k, g) of the 16 rows is dword 4r + k of the 4 groups' loads */
INL void q4k_x4_r16_dec(q4k_r16 *T, int t, const char *p, __m512i ix, const long long *ro, const int32_t *rq,
                        const int X4) {
    (void)X4;
    const __m512i q = _mm512_loadu_si512(rq);
    const __m512i base = _mm512_sub_epi32(ix, _mm512_mullo_epi32(q, _mm512_set1_epi32((int)sizeof(block_q4_K))));
    const __m512i id = _mm512_add_epi32(base, _mm512_slli_epi32(q, 1));   /* d at 2 rq, dmin at 8 + 2 rq */
    T->dw[t] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gat(id, p)));
    T->dm[t] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gat(id, p + 8)));
    /* A at 16 + 8 rq: bytes sc | (m >> 4) << 6 of sub-blocks 0..3 (a0), 4..7 (a1); the
     * mins' low 4 bits at 48 + 8 (rq & 1), nibble rq >> 1 */
    const __m512i ia = _mm512_add_epi32(base, _mm512_slli_epi32(q, 3));
    const __m512i a0 = gat(ia, p + 16), a1 = gat(ia, p + 20);
    const __m512i ib = _mm512_add_epi32(base, _mm512_slli_epi32(_mm512_and_si512(q, _mm512_set1_epi32(1)), 3));
    const __m512i sh = _mm512_slli_epi32(_mm512_srli_epi32(q, 1), 2);
    const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), m4 = _mm512_set1_epi32(0x0f0f0f0f), hi2 = _mm512_set1_epi32((int)0xc0c0c0c0);
    const __m512i s0 = _mm512_and_si512(a0, m6), s1 = _mm512_and_si512(a1, m6);
    const __m512i n0 = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi32(gat(ib, p + 48), sh), m4),
                                       _mm512_srli_epi32(_mm512_and_si512(a0, hi2), 2));
    const __m512i n1 = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi32(gat(ib, p + 52), sh), m4),
                                       _mm512_srli_epi32(_mm512_and_si512(a1, hi2), 2));
    k4_r16_scales(T, t, s0, s1, n0, n1);
    const char *g0[4];
    for (int G = 0; G < 4; G++) g0[G] = p + ro[4 * G] - (long long)sizeof(block_q4_K) * rq[4 * G] + 64;
    /* dwords 0..7: k (rows 0..3 of the first load, then of the second), 8..15: k + 2 */
    const __m512i ka = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 2, 6, 10, 14, 18, 22, 26, 30);
    const __m512i kb = _mm512_add_epi32(ka, _mm512_set1_epi32(1));
    const __m512i nib = _mm512_set1_epi8(0x0f);
    for (int g = 0; g < 8; g++) {
        const __m512i L0 = ld64(g0[0] + 64 * g), L1 = ld64(g0[1] + 64 * g), L2 = ld64(g0[2] + 64 * g), L3 = ld64(g0[3] + 64 * g);
        const __m512i u0 = _mm512_permutex2var_epi32(L0, ka, L1), v0 = _mm512_permutex2var_epi32(L2, ka, L3);
        const __m512i u1 = _mm512_permutex2var_epi32(L0, kb, L1), v1 = _mm512_permutex2var_epi32(L2, kb, L3);
        const __m512i Q[4] = {_mm512_shuffle_i64x2(u0, v0, 0x44), _mm512_shuffle_i64x2(u1, v1, 0x44),
                              _mm512_shuffle_i64x2(u0, v0, 0xEE), _mm512_shuffle_i64x2(u1, v1, 0xEE)};
        for (int k = 0; k < 4; k++) {
            T->q[t][2 * k][g] = _mm512_and_si512(Q[k], nib);
            T->q[t][2 * k + 1][g] = _mm512_and_si512(_mm512_srli_epi32(Q[k], 4), nib);
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
/* X4 1: the weights' decode copy (repack.c: groups of 4 rows, their blocks
 * interleaved), nr a multiple of 4 */
#define R16_FUNCS(NAME, TT, BT, DEC, COLS, FIN) \
    R16_BODY(NAME, TT, BT, DEC, COLS, FIN, 0)   \
    R16_BODY(NAME##_x4, TT, BT, DEC, COLS, FIN, 1)
#define R16_BODY(NAME, TT, BT, DEC, COLS, FIN, X4)                                              \
    static __attribute__((unused)) void NAME(long long n, float *s, long long ss, const void *w, long long ws, int nr,  \
                     const void *av, long long as, int nc) {                                    \
        const long long nb = n / QKK;                                                           \
        long long ro[R16];                                                                      \
        int32_t ro32[R16], rq[R16];   /* X4: rq, the row's place in its group */                \
        for (int r = 0; r < R16; r++) {                                                         \
            const int rr = r < nr ? r : nr - 1;                                                 \
            ro[r] = X4 ? rr / LLM_R4 * LLM_R4 * ws + rr % LLM_R4 * (long long)sizeof(BT) : rr * ws; \
            ro32[r] = (int32_t)ro[r];                                                           \
            rq[r] = rr % LLM_R4;                                                                \
        }                                                                                       \
        const __m512i ix = _mm512_loadu_si512(ro32);                                            \
        const __mmask16 keep = (__mmask16)((1u << nr) - 1);                                     \
        TT T;                                                                                   \
        __m512 acc[R16_NCP], accm[R16_NCP];                                                     \
        for (int c0 = 0; c0 < nc; c0 += R16_NCP) {                                              \
            const int ncp = nc - c0 < R16_NCP ? nc - c0 : R16_NCP;                              \
            for (int c = 0; c < ncp; c++) acc[c] = accm[c] = _mm512_setzero_ps();               \
            for (long long ib0 = 0; ib0 < nb; ib0 += R16_IBC) {                                 \
                const int nib = nb - ib0 < R16_IBC ? (int)(nb - ib0) : R16_IBC;                 \
                for (int t = 0; t < nib; t++)                                                   \
                    DEC(&T, t, (const char *)((const BT *)w + (X4 ? LLM_R4 : 1) * (ib0 + t)), ix, ro, rq, X4); \
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
R16_BODY(dot_q4_K_r16, q4k_r16, block_q4_K, q4k_r16_dec, q4k_r16_cols, FIN_SUB, 0)
R16_BODY(dot_q4_K_r16_x4, q4k_r16, block_q4_K, q4k_x4_r16_dec, q4k_r16_cols, FIN_SUB, 1)
R16_BODY(dot_q4_K_gemv_r16, q4k_r16, block_q4_K, q4k_r16_dec, q4k_gemv_r16_cols, FIN_SUB, 0)
R16_BODY(dot_q4_K_gemv_r16_x4, q4k_r16, block_q4_K, q4k_x4_r16_dec, q4k_gemv_r16_cols, FIN_SUB, 1)

/* Q6_K: codes q = 0..63 (unsigned), I = sum_j sc_j q.x - 32 sum_j sc_j bsums_j
 * (16-element sub-blocks j), then acc = fma(I*dw, dx, acc) as dot_q6_K_k */
typedef struct {
    __m512i q[R16_IBC][16][4];  /* sub-block j, group g of 4 codes */
    __m512i sc[R16_IBC][16];    /* scales, int32 lanes */
    __m512 dw[R16_IBC];
} q6k_r16;

INL void q6k_r16_dec(q6k_r16 *T, int t, const char *p, __m512i ix, const long long *ro, const int32_t *rq,
                     const int X4) {
    (void)rq; (void)X4;   /* Q6_K's copy keeps the blocks' own layout */
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
INL void q5k_r16_dec(q4k_r16 *T, int t, const char *p, __m512i ix, const long long *ro, const int32_t *rq,
                     const int X4) {
    (void)rq;
    k4_r16_head(T, t, p, ix);
    const __m512i nib = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
    __m512i qh[16];   /* qh at 16..47: dwords 0..7 (8..15 are quants, unused) */
    tr16(p + 16, ro, qh);
    for (int h = 0; h < 2; h++) {   /* qs at 48: stored dwords 16h..16h+15 */
        __m512i v[16];
        tr16(p + 48 + 64 * h, ro, v);
        for (int g = 0; g < 16; g++) {
            const int o = qs_dword(16 * h + g, X4), k = o / 8;   /* qs dword o: group o % 8 of k */
            const __m512i hb = qh[o % 8];
            const __m512i b0 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2 * k), one), 4);
            const __m512i b1 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2 * k + 1), one), 4);
            T->q[t][2 * k][o % 8] = _mm512_or_si512(_mm512_and_si512(v[g], nib), b0);
            T->q[t][2 * k + 1][o % 8] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v[g], 4), nib), b1);
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
 * (high). vpdpbusd (one op per 64 codes) gives per dword the sum of 4 products, so
 * the low and the high nibbles' sums go as the two words of one dword (an int16 each:
 * Q4_K, the high nibbles' products summed in place, 16 Dh, then shifted up and the
 * low ones' added by the next vpdpbusd over a bias R4_B; Q5_K, a shift and a blend)
 * and one vpdpwssd against the words (sc_2k, sc_2k+1) scales and sums them: per
 * 256-bit half the lanes of I_k (k = 0, 1; then 2, 3 from qs[64..127]), exact. Q5_K's
 * decode copy (X4) holds qs in the order of repack.c's QS_X4, so that lane k of both
 * loads is sub-blocks 2k, 2k+1: the quants go as the 128-bit lanes of their 64-byte
 * rows transposed (once per super-block for the 4 rows), the two loads' words go into
 * one sum per nibble, and each row takes one vpdpwssd and one scale vector, no lane
 * shuffle (Q4_K's copy has a layout of its own: q4_K_x4_body). Per row the float steps are dot_q4_K_k's: [acc, accm] = fma([I_k,
 * M_k], [dw*dx, dmin*dx], [acc, accm]) in k order, here the rows' acc in lanes 0..3
 * and their accm in 4..7 of a ymm. */
#ifndef R4_PF
#define R4_PF 1
#endif
static const int32_t q4r4_mt[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
/* vpermw: the 4 rows' d (words 0..3), then their dmin (4..7), from their heads */
static const int16_t q4r4_dd[32] = {0, 8, 16, 24, 1, 9, 17, 25};
/* vpshufb per 128-bit lane (row r), from its 8 scales then 8 mins (q4k_head_x4):
 * the mins as words; the scale pairs (sc_2k, sc_2k+1) as the words of dword k */
#define Z (-128)
static const int8_t q4r4_mins[64] = {
    8, Z, 9, Z, 10, Z, 11, Z, 12, Z, 13, Z, 14, Z, 15, Z, 8, Z, 9, Z, 10, Z, 11, Z, 12, Z, 13, Z, 14, Z, 15, Z,
    8, Z, 9, Z, 10, Z, 11, Z, 12, Z, 13, Z, 14, Z, 15, Z, 8, Z, 9, Z, 10, Z, 11, Z, 12, Z, 13, Z, 14, Z, 15, Z};
static const int8_t q4r4_scp[64] = {
    0, Z, 1, Z, 2, Z, 3, Z, 4, Z, 5, Z, 6, Z, 7, Z, 0, Z, 1, Z, 2, Z, 3, Z, 4, Z, 5, Z, 6, Z, 7, Z,
    0, Z, 1, Z, 2, Z, 3, Z, 4, Z, 5, Z, 6, Z, 7, Z, 0, Z, 1, Z, 2, Z, 3, Z, 4, Z, 5, Z, 6, Z, 7, Z};
#undef Z
/* vpermd: row r's scale pairs of k = 2h (dwords 0..7) and 2h+1 (8..15), at 4r + k */
#define SCP_SEL(r, h) _mm512_set_epi32(4 * (r) + 2 * (h) + 1, 4 * (r) + 2 * (h) + 1, 4 * (r) + 2 * (h) + 1, 4 * (r) + 2 * (h) + 1, \
                                       4 * (r) + 2 * (h) + 1, 4 * (r) + 2 * (h) + 1, 4 * (r) + 2 * (h) + 1, 4 * (r) + 2 * (h) + 1, \
                                       4 * (r) + 2 * (h), 4 * (r) + 2 * (h), 4 * (r) + 2 * (h), 4 * (r) + 2 * (h), \
                                       4 * (r) + 2 * (h), 4 * (r) + 2 * (h), 4 * (r) + 2 * (h), 4 * (r) + 2 * (h))

/* Q4_K: the low word of each dword that vpdpwssd scales goes as Dl + B, B = 2^13, for
 * |Dl| <= 4*15*128: in [512, 15812], an int16 with no borrow from the high word that
 * the add of the shifted Dh would take otherwise; the sum then holds B * sc_2k for
 * each of the 8 low words of B in I_k (4 dwords of the two loads' p), taken off once
 * per super-block */
#define R4_B_LOG2 13
#define R4_B (1 << R4_B_LOG2)

/* k4_scales of 4 rows at once: H holds row r's 16-byte head (d, dmin, the 12 scale
 * bytes a0 a1 a2 as dwords 1..3) in 128-bit lane r; lane r of the result: its 8
 * scales, then its 8 mins (dwords sc_lo, sc_hi, m_lo, m_hi) */
INL __m512i q4k_head_x4(__m512i H) {
    const __m512i A = _mm512_shuffle_epi32(H, 0xA5);   /* a0 a0 a1 a1 */
    const __m512i B = _mm512_shuffle_epi32(H, 0xFF);   /* a2 a2 a2 a2 */
    const __m512i lo = _mm512_and_si512(A, _mm512_set1_epi32(0x3f3f3f3f));
    /* sc_hi = (a2 & 0x0f) | (a0 >> 6) << 4 and m_hi = (a2 >> 4 & 0x0f) | (a1 >> 6) << 4, per byte */
    const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi32(B, _mm512_set4_epi32(4, 0, 0, 0)), _mm512_set1_epi32(0x0f0f0f0f)),
                                       _mm512_and_si512(_mm512_srli_epi32(A, 2), _mm512_set1_epi32(0x30303030)));
    return _mm512_mask_blend_epi32(0xAAAA, lo, hi);
}
/* a super-block's float steps on its exact I, M (lane k: rows 0..3), the rows' [dw],
 * [dmin] (dsep) and the column's dx */
INL __m256 q4r4_step(__m256 acc, __m512i I, __m512i M, __m256 dsep, float dx, const int GEMV, const int Q5,
                     __m512i im_lo, __m512i im_hi) {
    /* [dw_r*dx], [dmin_r*dx] as dot_q4_K_k's d = [dw, dmin] * dx */
    const __m256 d = _mm256_mul_ps(dsep, _mm256_set1_ps(dx));
    if (GEMV || Q5) {
        /* [I_k, M_k] per k, then the sum over k (exact): [I, M] of rows 0..3 */
        const __m512i t = _mm512_add_epi32(_mm512_permutex2var_epi32(I, im_lo, M), _mm512_permutex2var_epi32(I, im_hi, M));
        const __m256i IM = _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1));
        if (Q5) {   /* rows' acc in lanes 0..3: r = fnmadd(M, dmin, I*dw), acc = fma(r, dx, acc) (tiled_step_m) */
            const __m256 f = _mm256_cvtepi32_ps(IM);
            const __m128 r = _mm_fnmadd_ps(_mm256_extractf128_ps(f, 1), _mm256_extractf128_ps(dsep, 1),
                                           _mm_mul_ps(_mm256_castps256_ps128(f), _mm256_castps256_ps128(dsep)));
            return _mm256_castps128_ps256(_mm_fmadd_ps(r, _mm_set1_ps(dx), _mm256_castps256_ps128(acc)));
        }
        return _mm256_fmadd_ps(_mm256_cvtepi32_ps(IM), d, acc);
    }
    /* [I_k, M_k] of rows 0..3 for k = 0..3, in k order */
    const __m512 fI = _mm512_cvtepi32_ps(I), fM = _mm512_cvtepi32_ps(M);
    const __m512 t01 = _mm512_permutex2var_ps(fI, im_lo, fM), t23 = _mm512_permutex2var_ps(fI, im_hi, fM);
    acc = _mm256_fmadd_ps(_mm512_castps512_ps256(t01), d, acc);
    acc = _mm256_fmadd_ps(_mm512_extractf32x8_ps(t01, 1), d, acc);
    acc = _mm256_fmadd_ps(_mm512_castps512_ps256(t23), d, acc);
    return _mm256_fmadd_ps(_mm512_extractf32x8_ps(t23, 1), d, acc);
}
/* GEMV 1: the repacked gemv's order (q4_K_gemv): the four I_k, M_k of a super-block
 * summed (exact) before one float step */
/* Q5 1: Q5_K blocks (the same d, dmin and scales, the fifth bits in qh, then qs),
 * in dot_q5_K_k's order: per super-block acc = fma(fma(-dmin, M, I*dw), dx, acc),
 * and only on its decode copy (X4: the rows' blocks interleaved, llm_repack_x4: block
 * ib of row r at (4 ib + r) blocks, qs in the order QS_X4): one sequential stream,
 * nothing to prefetch (a software prefetch ahead of it lost, streamed from memory).
 * Q5 0: Q4_K on the file's layout (its copy: q4_K_x4_body) */
INL void q4_K_r4_body(long long n, float *s, const void *vw, long long ws, const void *va, const int GEMV,
                      const int Q5) {
    const int X4 = Q5;
    const block_q8_K *y = va;
    const char *w0 = vw;
    const long long nb = n / QKK;
    const long long BS = Q5 ? (long long)sizeof(block_q5_K) : (long long)sizeof(block_q4_K);
    const __m512i c16 = _mm512_set1_epi8(16);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    /* Q4_K: the low words' bias B as bias4 << 12 */
    const __m512i bias4 = _mm512_set1_epi32(R4_B >> 12);
    const __m512i mt = _mm512_loadu_si512(q4r4_mt), ddx = _mm512_loadu_si512(q4r4_dd);
    const __m512i mins_c = _mm512_loadu_si512(q4r4_mins), scp_c = _mm512_loadu_si512(q4r4_scp);
    /* vpermt2d of I (at 4k + r), M (at 4r + k): [I_0 M_0 I_1 M_1], [I_2 M_2 I_3 M_3] (rows 0..3 each) */
    const __m512i im_lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 20, 24, 28, 4, 5, 6, 7, 17, 21, 25, 29);
    const __m512i im_hi = _mm512_setr_epi32(8, 9, 10, 11, 18, 22, 26, 30, 12, 13, 14, 15, 19, 23, 27, 31);
    const __m512i sel[4][2] = {{SCP_SEL(0, 0), SCP_SEL(0, 1)}, {SCP_SEL(1, 0), SCP_SEL(1, 1)},
                               {SCP_SEL(2, 0), SCP_SEL(2, 1)}, {SCP_SEL(3, 0), SCP_SEL(3, 1)}};
    /* Q5_K, the decode copy: bit 2k (2k+1) of qh in the bytes of lane k */
    const __m512i q5lo = _mm512_set_epi32(0x40404040, 0x40404040, 0x40404040, 0x40404040, 0x10101010, 0x10101010,
                                          0x10101010, 0x10101010, 0x04040404, 0x04040404, 0x04040404, 0x04040404,
                                          0x01010101, 0x01010101, 0x01010101, 0x01010101);
    const __m512i q5hi = _mm512_add_epi8(q5lo, q5lo);
    __m256 acc = _mm256_setzero_ps();   /* acc of rows 0..3, then their accm */
    __m512i pI = _mm512_setzero_si512(), pM = pI;   /* the super-block before's sums */
    __m256 pdsep = _mm256_setzero_ps();
    for (long long ib = 0; ib < nb; ib++) {
        /* the rows' four interleaved streams defeat the hardware prefetcher on weights
         * streamed from memory (half the one-row kernel's speed): the groups ahead are
         * fetched as one sequential stream (the 4 rows are contiguous, 576 bytes per step) */
        if (!X4) {
            const char *pf = w0 + R4_PF * LLM_R4 * ws + ib * (LLM_R4 * BS);
            for (int l = 0; l < (int)(LLM_R4 * BS); l += 64) _mm_prefetch(pf + l, _MM_HINT_T0);
        }
        const char *b[4];
        for (int r = 0; r < 4; r++) b[r] = X4 ? w0 + (ib * LLM_R4 + r) * BS : w0 + r * ws + ib * BS;
        const int8_t *q8 = y[ib].qs;
        __m512i xl0, xh0, xl1, xh1;
        if (X4) {   /* lane k: 16-byte pieces 4k (xl0), 4k+2 (xh0), 4k+1 (xl1), 4k+3 (xh1) of the quants */
            const __m512i X0 = ld64(q8), X1 = ld64(q8 + 64), X2 = ld64(q8 + 128), X3 = ld64(q8 + 192);
            const __m512i t0 = _mm512_shuffle_i64x2(X0, X1, 0x88), t1 = _mm512_shuffle_i64x2(X2, X3, 0x88);
            const __m512i t2 = _mm512_shuffle_i64x2(X0, X1, 0xDD), t3 = _mm512_shuffle_i64x2(X2, X3, 0xDD);
            xl0 = _mm512_shuffle_i64x2(t0, t1, 0x88);
            xh0 = _mm512_shuffle_i64x2(t0, t1, 0xDD);
            xl1 = _mm512_shuffle_i64x2(t2, t3, 0x88);
            xh1 = _mm512_shuffle_i64x2(t2, t3, 0xDD);
        } else {   /* [x0..31 | x64..95], [x32..63 | x96..127], then the same 128 on */
            xl0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)q8)),
                                     _mm256_loadu_si256((const __m256i *)(q8 + 64)), 1);
            xh0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + 32))),
                                     _mm256_loadu_si256((const __m256i *)(q8 + 96)), 1);
            xl1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + 128))),
                                     _mm256_loadu_si256((const __m256i *)(q8 + 192)), 1);
            xh1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + 160))),
                                     _mm256_loadu_si256((const __m256i *)(q8 + 224)), 1);
        }
        /* Q4_K and Q5_K share the head: d, dmin (offset 0) and the scales (offset 4) */
        __m512i H = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)b[0]));
        H = _mm512_inserti32x4(H, _mm_loadu_si128((const __m128i *)b[1]), 1);
        H = _mm512_inserti32x4(H, _mm_loadu_si128((const __m128i *)b[2]), 2);
        H = _mm512_inserti32x4(H, _mm_loadu_si128((const __m128i *)b[3]), 3);
        const __m512i S = q4k_head_x4(H);
        const __m512i scp = _mm512_shuffle_epi8(S, scp_c);   /* dword 4r + k: row r's (sc_2k, sc_2k+1) */
        const __m512i scpt = _mm512_permutexvar_epi32(mt, scp);   /* the same at 4k + r */
        __m512i R[4];
        for (int r = 0; r < 4; r++) {
            const uint8_t *qs = Q5 ? ((const block_q5_K *)b[r])->qs : ((const block_q4_K *)b[r])->qs;
            const __m512i q0 = _mm512_loadu_si512(qs), q1 = _mm512_loadu_si512(qs + 64);
            const __m512i z = _mm512_setzero_si512();
            __m512i p0, p1;
            if (Q5) {   /* sub-block j's fifth bit: bit j of qh[l]; lane k of l0, l1 holds sub-block 2k (l 0..15
                         * in q0, 16..31 in q1: the decode copy's order), of h0, h1 2k+1 */
                __m512i l0 = _mm512_and_si512(q0, m4), h0 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
                __m512i l1 = _mm512_and_si512(q1, m4), h1 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
                const uint8_t *qhp = ((const block_q5_K *)b[r])->qh;
                const __m512i qa = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)qhp));
                const __m512i qb = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(qhp + 16)));
                l0 = _mm512_mask_add_epi8(l0, _mm512_test_epi8_mask(qa, q5lo), l0, c16);
                h0 = _mm512_mask_add_epi8(h0, _mm512_test_epi8_mask(qa, q5hi), h0, c16);
                l1 = _mm512_mask_add_epi8(l1, _mm512_test_epi8_mask(qb, q5lo), l1, c16);
                h1 = _mm512_mask_add_epi8(h1, _mm512_test_epi8_mask(qb, q5hi), h1, c16);
                /* lane k of both loads: sub-blocks 2k, 2k+1, so one sum each (|.| <= 2*4*31*128, an
                 * int16: the low word of a blend, no bias) */
                p0 = _mm512_mask_blend_epi16(0xAAAAAAAA, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, l0, xl0), l1, xl1),
                                             _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, h0, xh0), h1, xh1), 16));
                p1 = z;
            } else {   /* the high nibbles in place (16 h): (16 Dh + B / 2^12) << 12 = Dh << 16 + B, then + Dl */
                p0 = _mm512_dpbusd_epi32(_mm512_slli_epi32(_mm512_dpbusd_epi32(bias4, _mm512_andnot_si512(m4, q0), xh0), 12),
                                         _mm512_and_si512(q0, m4), xl0);
                p1 = _mm512_dpbusd_epi32(_mm512_slli_epi32(_mm512_dpbusd_epi32(bias4, _mm512_andnot_si512(m4, q1), xh1), 12),
                                         _mm512_and_si512(q1, m4), xl1);
            }
            if (X4) {   /* lane k of p0: sub-blocks 2k, 2k+1 -> lane k: 4 int32 of I_k; row r's
                         * (sc_2k, sc_2k+1) in every dword of lane k (vpshufd: cheaper than a vpermd) */
                const __m512i sc = r == 0 ? _mm512_shuffle_epi32(scpt, 0x00) : r == 1 ? _mm512_shuffle_epi32(scpt, 0x55)
                                 : r == 2 ? _mm512_shuffle_epi32(scpt, 0xAA) : _mm512_shuffle_epi32(scpt, 0xFF);
                R[r] = _mm512_dpwssd_epi32(z, p0, sc);
                continue;
            }
            const __m512i a = _mm512_dpwssd_epi32(z, p0, _mm512_permutexvar_epi32(sel[r][0], scp));
            /* 128-bit lanes of a: k0 k0 k1 k1, of c: k2 k2 k3 k3 -> lane k: 4 int32 of I_k
             * (the gemv order sums them all: any lanes, one chain) */
            if (GEMV) {
                R[r] = _mm512_dpwssd_epi32(a, p1, _mm512_permutexvar_epi32(sel[r][1], scp));
            } else {
                const __m512i c = _mm512_dpwssd_epi32(z, p1, _mm512_permutexvar_epi32(sel[r][1], scp));
                R[r] = _mm512_add_epi32(_mm512_shuffle_i64x2(a, c, 0x88), _mm512_shuffle_i64x2(a, c, 0xDD));
            }
        }
        /* per 128-bit lane k: the 4 rows' sums of their 4 int32 (exact) -> I_k of rows 0..3 */
        const __m512i u0 = _mm512_add_epi32(_mm512_unpacklo_epi32(R[0], R[1]), _mm512_unpackhi_epi32(R[0], R[1]));
        const __m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi32(R[2], R[3]), _mm512_unpackhi_epi32(R[2], R[3]));
        __m512i I = _mm512_add_epi32(_mm512_unpacklo_epi64(u0, u1), _mm512_unpackhi_epi64(u0, u1));
        /* Q4_K: less the bias, 8 low words of B in each I_k, times sc_2k */
        if (!Q5) I = _mm512_sub_epi32(I, _mm512_slli_epi32(_mm512_and_si512(scpt, _mm512_set1_epi32(0xffff)), R4_B_LOG2 + 3));
        /* M_k = m_2k (b_4k + b_4k+1) + m_2k+1 (b_4k+2 + b_4k+3): row r's in lane r */
        const __m128i bp = bsums_pairs(y[ib].bsums);
        const __m512i mw = _mm512_shuffle_epi8(S, mins_c);
        const __m512i M = _mm512_madd_epi16(mw, _mm512_broadcast_i32x4(bp));   /* at 4r + k */
        /* [dw_r], [dmin_r] */
        const __m256 dsep = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi16(ddx, H)));
        /* the float steps of the super-block before this one: in program order after this
         * one's integer work, when their inputs are long ready (the ops waiting on them
         * otherwise fill the scheduler); the same steps in the same order */
        if (ib > 0) acc = q4r4_step(acc, pI, pM, pdsep, y[ib - 1].d, GEMV, Q5, im_lo, im_hi);
        pI = I;
        pM = M;
        pdsep = dsep;
    }
    if (nb > 0) acc = q4r4_step(acc, pI, pM, pdsep, y[nb - 1].d, GEMV, Q5, im_lo, im_hi);
    if (Q5) _mm_storeu_ps(s, _mm256_castps256_ps128(acc));
    else _mm_storeu_ps(s, _mm_sub_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
}
static void dot_q4_K_r4(long long n, float *s, const void *vw, long long ws, const void *va) {
    q4_K_r4_body(n, s, vw, ws, va, 0, 0);
}
static void dot_q4_K_gemv_r4(long long n, float *s, const void *vw, long long ws, const void *va) {
    q4_K_r4_body(n, s, vw, ws, va, 1, 0);
}

/* Q4_K on its decode copy (repack.c's q4_K_group: per super-block the 4 rows' d and
 * dmin, their scales and mins as bytes, then 8 chunks of codes, chunk j holding in
 * dword 4r + k row r's codes at positions 4j..4j+3 of sub-blocks 2k (low nibbles) and
 * 2k+1 (high)), against activations in block_q8_K_x4 (q8_K_x4: 16-byte chunk j holds
 * dword j of each 64 quants), so that every lane of every step is one (row r, pair k)
 * and nothing is shuffled per super-block but the head's bytes to words:
 * - per two chunks, the high nibbles (16 h) against their quants broadcast per 128-bit
 *   lane, both summed in place over a bias (4 << 12 = 2^14 >= 2*4*15*128), shifted up
 *   12, and the low ones' products added by the next two vpdpbusd: dword 4r + k holds
 *   Dh << 16 + Dl + 2^14 (low word in [1024, 31744]: no borrow);
 * - one vpdpwssd against the words (sc_2k, sc_2k+1) of dword 4r + k scales and sums
 *   the four such: I_k of row r at 4r + k, less the biases 2^16 sc_2k; M_k there from
 *   the mins as words against the bsum pairs;
 * then q4r4_step: dot_q4_K_k's float steps (GEMV 0), or the repacked gemv's (1).
 * Against the kernel on the former copy (the rows' blocks interleaved, qs in QS_X4
 * order: the quants shuffled per group of rows, the 4 rows' sums transposed, the
 * head 20 ops instead of 8), benchmarks/decode_kernels.py on the 1.5 B shape, one
 * thread: 1536 x 8960 in cache 65.5 -> 96.0 GB/s, 8960 x 1536 64.6 -> 81.0; the first
 * 60 tensors from memory 26.5 -> 34.7 (2 threads 38.1 -> 43.8).
 * Q4X4_PF: the group that many bytes on is prefetched. Now that the kernel keeps
 * ahead of the stream, it pays (the former one lost 4-9% with it): tg of the 1.5 B
 * shape, 2 threads, 4 alternated runs of 2 x 256 tokens, 64.5-67.0 t/s without,
 * 67.9-70.2 at 4 KB, 62.3-70.9 at 8 KB (the former copy 57.7-62.3) */
#ifndef Q4X4_PF
#define Q4X4_PF 4096
#endif
/* X4_PF_HINT: how Q4_K's and Q6_K's 4-row kernels prefetch their copies' groups ahead.
 * Non-temporal: the weights are read once a token; fetched into L2 (T1) they probably
 * pushed out what every pass reuses (the column's activations: 10 KB at 8960 wide,
 * and the kernels streamed 5-7 points less of the probe there than at 1536). tg128
 * of the 1.5 B shape, 2 threads, 5 builds alternated over 6-10 rounds: with the
 * memory at ~52 GB/s 49.2 -> 51.3 t/s (T1 -> NTA), at ~89 GB/s 70 -> 75 (71.4-76.0
 * against 68.1-71.5); the streamed Q6_K kernel alone at 8960 wide 64-70% -> 71-74%
 * of the probe (fast memory). NTA with Q6X4_PF at 6 KB read 52.2 t/s in the slow
 * state but 72 in the fast one; at 4 KB 68.7-74.0 */
#define X4_PF_HINT _MM_HINT_NTA
/* o[i] lane l = v[l] lane i: the 4 x 4 transposition of 4 registers' 128-bit lanes */
INL void lanes_t4(const __m512i v[4], __m512i o[4]) {
    const __m512i t0 = _mm512_shuffle_i64x2(v[0], v[1], 0x44), t1 = _mm512_shuffle_i64x2(v[2], v[3], 0x44);
    const __m512i t2 = _mm512_shuffle_i64x2(v[0], v[1], 0xEE), t3 = _mm512_shuffle_i64x2(v[2], v[3], 0xEE);
    o[0] = _mm512_shuffle_i64x2(t0, t1, 0x88);
    o[1] = _mm512_shuffle_i64x2(t0, t1, 0xDD);
    o[2] = _mm512_shuffle_i64x2(t2, t3, 0x88);
    o[3] = _mm512_shuffle_i64x2(t2, t3, 0xDD);
}
INL __m512i bc128(const void *p) { return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p)); }
INL void q4_K_x4_body(long long n, float *s, const void *vw, const void *va, const int GEMV) {
    const block_q8_K_x4 *y = va;
    const char *w0 = vw;
    const long long nb = n / QKK;
    const __m512i m4 = _mm512_set1_epi8(0x0F), bias4 = _mm512_set1_epi32(4);
    const __m512i m6w = _mm512_set1_epi16(0x3f), m4w = _mm512_set1_epi16(0x0f), m30w = _mm512_set1_epi16(0x30);
    /* the mins' low bits: words 0..15 (rows 0, 1) in the low nibbles, 16..31 the high */
    const __m512i nsh = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    /* vpermt2d of I, M (both at 4r + k): [I_0 M_0 I_1 M_1], [I_2 M_2 I_3 M_3] (rows 0..3 each) */
    const __m512i im_lo = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i im_hi = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    __m256 acc = _mm256_setzero_ps();   /* acc of rows 0..3, then their accm */
    __m512i pI = _mm512_setzero_si512(), pM = pI;   /* the super-block before's sums */
    __m256 pdsep = _mm256_setzero_ps();
    for (long long ib = 0; ib < nb; ib++) {
        const char *g = w0 + ib * LLM_R4 * (long long)sizeof(block_q4_K);
        const block_q8_K_x4 *x = y + ib;
#if Q4X4_PF
        for (int l = 0; l < (int)(LLM_R4 * sizeof(block_q4_K)); l += 64) _mm_prefetch(g + Q4X4_PF + l, X4_PF_HINT);
#endif
        const __m256 dsep = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g));   /* [dw_r], [dmin_r] */
        const __m512i A = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(g + 16)));
        const __m512i sc = _mm512_and_si512(A, m6w);   /* dword 4r + k: (sc_2k, sc_2k+1) of row r */
        const __m512i B = _mm512_cvtepu8_epi16(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(g + 48))));
        const __m512i mlo = _mm512_and_si512(_mm512_srlv_epi16(B, nsh), m4w);
        const __m512i mw = _mm512_ternarylogic_epi32(_mm512_srli_epi16(A, 2), m30w, mlo, 0xEA);   /* (a & b) | c */
        const __m512i M = _mm512_madd_epi16(mw, bc128(x->bp));
        __m512i R = _mm512_setzero_si512();
        for (int p = 0; p < 4; p++) {   /* chunks 2p, 2p+1 */
            const __m512i qa = ld64(g + 64 + 128 * p), qb = ld64(g + 128 + 128 * p);
            __m512i t = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(bias4, _mm512_andnot_si512(m4, qa), bc128(x->qs + 128 + 32 * p)),
                                            _mm512_andnot_si512(m4, qb), bc128(x->qs + 144 + 32 * p));
            t = _mm512_slli_epi32(t, 12);
            t = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(t, _mm512_and_si512(qa, m4), bc128(x->qs + 32 * p)),
                                    _mm512_and_si512(qb, m4), bc128(x->qs + 16 + 32 * p));
            R = _mm512_dpwssd_epi32(R, t, sc);
        }
        const __m512i I = _mm512_sub_epi32(R, _mm512_slli_epi32(sc, 16));
        /* the float steps one super-block behind, as q4_K_r4_body */
        if (ib > 0) acc = q4r4_step(acc, pI, pM, pdsep, y[ib - 1].d, GEMV, 0, im_lo, im_hi);
        pI = I;
        pM = M;
        pdsep = dsep;
    }
    if (nb > 0) acc = q4r4_step(acc, pI, pM, pdsep, y[nb - 1].d, GEMV, 0, im_lo, im_hi);
    _mm_storeu_ps(s, _mm_sub_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
}
static void dot_q4_K_x4(long long n, float *s, const void *vw, long long ws, const void *va) {
    (void)ws;
    q4_K_x4_body(n, s, vw, va, 0);
}
static void dot_q4_K_gemv_x4(long long n, float *s, const void *vw, long long ws, const void *va) {
    (void)ws;
    q4_K_x4_body(n, s, vw, va, 1);
}
/* repack.c's q4_K_group, the same bytes: the 4 heads as q4k_head_x4 reads them, each
 * row's 32 qs dwords into (chunk j, k) order, then chunk j from the 4 rows' lane j */
static void q4_K_group_avx512(char *o, const char *s, size_t rb) {
    __m512i H = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)s));
    for (int r = 1; r < LLM_R4; r++) H = _mm512_mask_broadcast_i32x4(H, (__mmask16)(0xF << 4 * r), _mm_loadu_si128((const __m128i *)(s + r * rb)));
    _mm_storeu_si128((__m128i *)o, _mm512_castsi512_si128(_mm512_permutexvar_epi16(_mm512_loadu_si512(q4r4_dd), H)));
    const __m512i S = q4k_head_x4(H);   /* lane r: its 8 scales, then its 8 mins */
    const __m512i M = _mm512_bsrli_epi128(S, 8);
    const __m512i A = _mm512_or_si512(S, _mm512_and_si512(_mm512_slli_epi16(M, 2), _mm512_set1_epi8((char)0xC0)));
    const __m512i q0 = _mm512_setr_epi64(0, 2, 4, 6, 0, 2, 4, 6);   /* the low qword of each lane */
    _mm256_storeu_si256((__m256i *)(o + 16), _mm512_castsi512_si256(_mm512_permutexvar_epi64(q0, A)));
    const __m256i m = _mm256_and_si256(_mm512_castsi512_si256(_mm512_permutexvar_epi64(q0, M)), _mm256_set1_epi8(0x0f));
    _mm_storeu_si128((__m128i *)(o + 48), _mm_or_si128(_mm256_castsi256_si128(m), _mm_slli_epi16(_mm256_extracti128_si256(m, 1), 4)));
    /* dword 4j + k of P[r][h] (j < 4; 4 + j) <- row r's qs dword 8k + j */
    const __m512i i0 = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
    const __m512i i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(4));
    __m512i P[LLM_R4][2];
    for (int r = 0; r < LLM_R4; r++) {
        const char *q = s + r * rb + offsetof(block_q4_K, qs);
        const __m512i Q0 = ld64(q), Q1 = ld64(q + 64);
        P[r][0] = _mm512_permutex2var_epi32(Q0, i0, Q1);
        P[r][1] = _mm512_permutex2var_epi32(Q0, i1, Q1);
    }
    for (int h = 0; h < 2; h++) {   /* chunk 4h + l: lane l of P[0..3][h] */
        const __m512i v[4] = {P[0][h], P[1][h], P[2][h], P[3][h]};
        __m512i c[4];
        lanes_t4(v, c);
        for (int l = 0; l < 4; l++) _mm512_storeu_si512(o + 64 + 256 * h + 64 * l, c[l]);
    }
}
/* block_q8_K -> block_q8_K_x4 in place (276 <= 292 bytes: block i is read whole
 * before its new bytes, which end before block i + 1 starts) */
static void q8_K_x4(long long n, void *xq) {
    for (long long ib = 0; ib < n / QKK; ib++) {
        const block_q8_K *x = (const block_q8_K *)xq + ib;
        const __m512i X0 = ld64(x->qs), X1 = ld64(x->qs + 64), X2 = ld64(x->qs + 128), X3 = ld64(x->qs + 192);
        const __m128i bp = bsums_pairs(x->bsums);
        const float d = x->d;
        /* per 128-bit lane m, the 4x4 transposition of dwords 4m..4m+3 of X0..X3: u_i
         * lane m is chunk 4m + i; then chunk 4m + i to lane i of output m */
        const __m512i t0 = _mm512_unpacklo_epi32(X0, X1), t1 = _mm512_unpackhi_epi32(X0, X1);
        const __m512i t2 = _mm512_unpacklo_epi32(X2, X3), t3 = _mm512_unpackhi_epi32(X2, X3);
        const __m512i u[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                              _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
        __m512i c[4];
        lanes_t4(u, c);
        block_q8_K_x4 *o = (block_q8_K_x4 *)xq + ib;
        for (int m = 0; m < 4; m++) _mm512_storeu_si512(o->qs + 64 * m, c[m]);
        _mm_storeu_si128((__m128i *)o->bp, bp);
        o->d = d;
    }
}
static void dot_q5_K_x4(long long n, float *s, const void *vw, long long ws, const void *va) {
    q4_K_r4_body(n, s, vw, ws, va, 0, 1);
}

/* Q6_K, 4 rows interleaved (vec_dot_x4 only: on the rows' own layout the 4 streams
 * lost to vec_dot when streamed from memory, see csrc/README). Per zmm two rows
 * (row 2p in the low 256 bits, 2p+1 in the high), each half running dot_q6_K_k's
 * integer steps (dot_avx2.c) with the column's quants broadcast to both halves; the
 * exact sums then take its float steps, acc = fma(I*dw, dx, acc), rows in lanes. */
static const int8_t q6x4_pair[4][32] = {
    {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
    {4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7},
    {8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11},
    {12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15},
};
INL __m512i ld2x256(const uint8_t *a, const uint8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}
#define Q6X4_PF 8192
static void dot_q6_K_x4(long long n, float *s, const void *vw, long long ws, const void *va) {
    (void)ws;
    const block_q8_K *y = va;
    const block_q6_K *w0 = vw;
    const long long nb = n / QKK;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(0x30);
    __m512i pair[4];
    for (int k = 0; k < 4; k++) pair[k] = bcast32(q6x4_pair[k]);
    __m128 acc = _mm_setzero_ps();
    for (long long ib = 0; ib < nb; ib++) {
        const block_q6_K *w = w0 + ib * LLM_R4;   /* rows 0..3 of super-block ib */
        /* the 4 blocks' pieces are read out of order (scales, qh, then ql by row pair),
         * which the hardware prefetcher does not keep far enough ahead of: the group
         * Q6X4_PF bytes on is prefetched (X4_PF_HINT). Streamed from memory (one thread) 52-61%
         * -> 77-89% of a plain read of the same copies; tg64 of the 1.5 B shape 37.4-38.4
         * -> 38.9-40.1 t/s (2 threads, 4 alternated runs each; Q4_K's kernel on its former
         * copy lost 4-9% with the same prefetch, its present one gains: Q4X4_PF) */
        for (int l = 0; l < (int)(LLM_R4 * sizeof(block_q6_K)); l += 64)
            _mm_prefetch((const char *)w + Q6X4_PF + l, X4_PF_HINT);
        const __m512i yb = bcast32(y[ib].bsums);
        __m512i sumi[2], sc16[2];
        for (int p = 0; p < 2; p++) {
            sc16[p] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[2 * p].scales))),
                                         _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[2 * p + 1].scales)), 1);
            sumi[p] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_madd_epi16(_mm512_slli_epi16(sc16[p], 5), yb));
        }
        for (int h = 0; h < 2; h++) {
            __m512i sch[2], qh[2];
            for (int p = 0; p < 2; p++) {   /* 128-bit lanes: row 2p's scales of half h twice, then row 2p+1's */
                sch[p] = h ? _mm512_shuffle_i64x2(sc16[p], sc16[p], 0xF5) : _mm512_shuffle_i64x2(sc16[p], sc16[p], 0xA0);
                qh[p] = ld2x256(w[2 * p].qh + 32 * h, w[2 * p + 1].qh + 32 * h);
            }
            for (int k = 0; k < 4; k++) {
                const __m512i yk = bcast32(y[ib].qs + 128 * h + 32 * k);
                for (int p = 0; p < 2; p++) {
                    const __m512i ql = ld2x256(w[2 * p].ql + 64 * h + 32 * (k & 1), w[2 * p + 1].ql + 64 * h + 32 * (k & 1));
                    const __m512i lq = _mm512_and_si512(k < 2 ? ql : _mm512_srli_epi16(ql, 4), m4);
                    const __m512i hq = _mm512_and_si512(k == 0 ? _mm512_slli_epi16(qh[p], 4) : k == 1 ? _mm512_slli_epi16(qh[p], 2)
                                                        : k == 2 ? qh[p] : _mm512_srli_epi16(qh[p], 2), m3);
                    sumi[p] = _mm512_dpwssd_epi32(sumi[p], _mm512_maddubs_epi16(_mm512_or_si512(lq, hq), yk),
                                                  _mm512_shuffle_epi8(sch[p], pair[k]));
                }
            }
        }
        /* each row's 8 int32 summed (exact): lanes 0..3 = rows 0..3 */
        const __m256i t0 = _mm256_hadd_epi32(_mm512_castsi512_si256(sumi[0]), _mm512_extracti64x4_epi64(sumi[0], 1));
        const __m256i t1 = _mm256_hadd_epi32(_mm512_castsi512_si256(sumi[1]), _mm512_extracti64x4_epi64(sumi[1], 1));
        const __m256i t = _mm256_hadd_epi32(t0, t1);
        const __m128i I = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16((short)w[0].d, (short)w[1].d, (short)w[2].d, (short)w[3].d, 0, 0, 0, 0));
        acc = _mm_fmadd_ps(_mm_mul_ps(_mm_cvtepi32_ps(I), dw), _mm_set1_ps(y[ib].d), acc);
    }
    _mm_storeu_ps(s, acc);
}

void llm_kernels_avx512_tiles(llm_kernel_table *t) {
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
    /* the same bodies in the order of llama.cpp's repacked gemv (moe.c's Q4_K experts) */
    t->q4_K_gemv_r4 = dot_q4_K_gemv_r4;
    t->q4_K_gemv_r16 = dot_q4_K_gemv_r16;
    /* the same 4 rows on the interleaved decode copy (llm_repack_x4) */
    t->vec_dot_x4[T_Q4_K] = dot_q4_K_x4;
    t->vec_dot_x4[T_Q6_K] = dot_q6_K_x4;
    t->q4_K_gemv_x4 = dot_q4_K_gemv_x4;
    t->q8_K_x4 = q8_K_x4;
    t->q4_K_group = q4_K_group_avx512;
    t->vec_dot_r16x4[T_Q4_K] = dot_q4_K_r16_x4;
    t->vec_dot_r16x4[T_Q6_K] = dot_q6_K_r16_x4;
    t->vec_dot_x4[T_Q5_K] = dot_q5_K_x4;
    t->vec_dot_r16x4[T_Q5_K] = dot_q5_K_r16_x4;
    t->q4_K_gemv_r16x4 = dot_q4_K_gemv_r16_x4;
}
