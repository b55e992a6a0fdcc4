/* Importance-weighted quantizers: one row of n floats with its n importance
 * weights qw (an imatrix row: llama-quantize passes the tensor's, or its
 * expert's, vector), bit for bit what llama.cpp's quantize_<type>(src, dst,
 * nrow, n_per_row, quant_weights) writes when quant_weights is not NULL
 * (ggml-quants.c: quantize_row_<type>_impl). Same arithmetic rules as
 * quantize.c: the reference's operand order, no FMA contraction, its strict
 * comparisons. Each element's fitting weight is qw[j] * sqrt(sigma2 + x[j]^2),
 * sigma2 the mean square of the row (32-element types, Q2_K: of the row or the
 * super-block once; Q3_K .. Q5_K: twice the super-block's), except Q6_K, which
 * fits with qw itself. */
#include "quant_common.h"

/* sum of squares of n values, in order */
static inline float sum_sq(const float *x, long long n) {
    float s = 0;
    for (long long j = 0; j < n; j++) s += x[j] * x[j];
    return s;
}

/* w[j] = qw[j] * sqrt(sigma2 + x[j]^2) for n elements; returns their sum */
static inline float imatrix_weights(const float *x, const float *qw, float sigma2, int n, float *w) {
    float sw = 0;
    for (int j = 0; j < n; j++) w[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
    for (int j = 0; j < n; j++) sw += w[j];
    return sw;
}

/* codes 0..nmax for n non-negative values (the K-quants' sub-block scales or
 * minimums) and their scale, weights qw: the best of 9 trial scales by weighted
 * squared error, then up to 5 passes moving single codes while that raises
 * sum(w x l)^2 / sum(w l^2), the scale refitted (llama.cpp's make_qp_quants).
 * The codes live in uint8_t as the reference's do: IQ2_XXS passes a group whose
 * flipped element is negative, its code wraps, and the later sums read the wrapped
 * code. */
float llm_fit_scale_pos(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++) max = MAXI(max, x[i]);
    if (max < EPS_ZERO) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = nmax / max, best = 0;
    const float scale = 1 / iscale;
    for (int i = 0; i < n; i++) {
        /* the first guess's codes unclamped, through a byte as the reference stores them */
        const float e = x[i] - scale * (uint8_t)rne(iscale * x[i]);
        best += qw[i] * e * e;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / max, scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            const float e = x[i] - scale_is * MINI(nmax, rne(iscale_is * x[i]));
            mse += qw[i] * e * e;
        }
        if (mse < best) {
            best = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = MINI(nmax, rne(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += qw[i] * x[i] * l;
        suml2 += qw[i] * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * L[i], sl2 = suml2 - w * L[i] * L[i];
            if (!(slx > 0 && sl2 > 0)) continue;
            const int nl = MINI(nmax, rne(x[i] * sl2 / slx));
            if (nl == L[i]) continue;
            slx += w * x[i] * nl;
            sl2 += w * nl * nl;
            if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (uint8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ------------------------------------------------------ 32-element types */

/* the mean square of the whole row: the 32-element types' sigma2 */
static inline float row_sigma2(const float *x, long long n) { return sum_sq(x, n) / n; }

/* the 16 code bytes of 32 four-bit codes: element j low nibble, j+16 high */
static inline void pack4(const void *codes, uint8_t *qs) {
    const uint8_t *L = codes;
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
}

/* Q4_0 / Q5_0: a weighted symmetric fit per block, codes 0..2*nmax-1 in L */
static inline f16_t fit_block_sym(const float *x, const float *qw, float sigma2, int nmax, int8_t *L) {
    float w[QK];
    imatrix_weights(x, qw, sigma2, QK, w);
    return llm_f32_to_f16(fit_scale_sym(QK, nmax, x, L, w));
}

/* Q4_1 / Q5_1: a weighted scale-and-minimum fit per block, codes 0..nmax in L */
static inline void fit_block_min(const float *x, const float *qw, float sigma2, int nmax, uint8_t *L,
                                 f16_t *d16, f16_t *m16) {
    float w[QK], neg_min;
    uint8_t Laux[QK];
    imatrix_weights(x, qw, sigma2, QK, w);
    const float d = fit_scale_min(QK, nmax, x, w, L, &neg_min, Laux, -0.9f, 0.05f, 36, 0);
    *d16 = llm_f32_to_f16(d);
    *m16 = llm_f32_to_f16(-neg_min);
}

/* the 32-element types: a weighted fit per block (symmetric for Q4_0 / Q5_0,
 * with a minimum for Q4_1 / Q5_1), sigma2 the whole row's */
static inline void qw_q32(const float *x, uint8_t *out, long long n, const float *qw, int type) {
    const float sigma2 = row_sigma2(x, n);
    uint8_t L[QK];
    for (long long ib = 0; ib < n / QK; ib++, x += QK, qw += QK) {
        if (type == T_Q4_0) {
            block_q4_0 *y = (block_q4_0 *)out + ib;
            y->d = fit_block_sym(x, qw, sigma2, 8, (int8_t *)L);
            pack4(L, y->qs);
        } else if (type == T_Q5_0) {
            block_q5_0 *y = (block_q5_0 *)out + ib;
            y->d = fit_block_sym(x, qw, sigma2, 16, (int8_t *)L);
            pack5(L, y->qs, y->qh);
        } else if (type == T_Q4_1) {
            block_q4_1 *y = (block_q4_1 *)out + ib;
            fit_block_min(x, qw, sigma2, 15, L, &y->d, &y->m);
            pack4(L, y->qs);
        } else {
            block_q5_1 *y = (block_q5_1 *)out + ib;
            fit_block_min(x, qw, sigma2, 31, L, &y->d, &y->m);
            pack5(L, y->qs, y->qh);
        }
    }
}
static void qw_q4_0(const float *x, uint8_t *out, long long n, const float *qw) { qw_q32(x, out, n, qw, T_Q4_0); }
static void qw_q4_1(const float *x, uint8_t *out, long long n, const float *qw) { qw_q32(x, out, n, qw, T_Q4_1); }
static void qw_q5_0(const float *x, uint8_t *out, long long n, const float *qw) { qw_q32(x, out, n, qw, T_Q5_0); }
static void qw_q5_1(const float *x, uint8_t *out, long long n, const float *qw) { qw_q32(x, out, n, qw, T_Q5_1); }

/* ----------------------------------------------------------- K-quants */

static void qw_q2_K(const float *x, uint8_t *out, long long n, const float *qw) {
    block_q2_K *y = (block_q2_K *)out;
    for (long long i = 0; i < n / QKK; i++, x += QKK, qw += QKK) {
        uint8_t L[QKK], Laux[16], Ls[16], Lm[16];
        float w[16], sw[16], sc[16], mn[16];
        const float sigma2 = sum_sq(x, QKK) / QKK;
        for (int j = 0; j < 16; j++) {
            sw[j] = imatrix_weights(x + 16 * j, qw + 16 * j, sigma2, 16, w);
            sc[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mn[j], Laux, -0.9f, 0.05f, 36, 0);
        }
        y[i].d = llm_f32_to_f16(llm_fit_scale_pos(16, 15, sc, Ls, sw));
        y[i].dmin = llm_f32_to_f16(llm_fit_scale_pos(16, 15, mn, Lm, sw));
        for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
        q2K_requant_pack(x, &y[i], L);
    }
}

/* twice the super-block's mean square: Q3_K .. Q5_K's sigma2 */
static inline float block_sigma2(const float *x) { return 2 * sum_sq(x, QKK) / QKK; }

static void qw_q3_K(const float *x, uint8_t *out, long long n, const float *qw) {
    block_q3_K *y = (block_q3_K *)out;
    for (long long i = 0; i < n / QKK; i++, x += QKK, qw += QKK) {
        int8_t L[QKK], Ls[16];
        float w[16], sw[16], sc[16];
        const float sigma2 = block_sigma2(x);
        for (int j = 0; j < 16; j++) {
            sw[j] = imatrix_weights(x + 16 * j, qw + 16 * j, sigma2, 16, w);
            sc[j] = fit_scale_sym(16, 4, x + 16 * j, L + 16 * j, w);
        }
        /* the scales' own symmetric fit gives their 6-bit codes, offset 32 */
        const float d = fit_scale_sym(16, 32, sc, Ls, sw);
        q3K_put_scales(y[i].scales, Ls);
        y[i].d = llm_f32_to_f16(d);
        q3K_requant_pack(x, &y[i], L);
    }
}

/* Q4_K / Q5_K: the 6-bit scales and minimums fitted by llm_fit_scale_pos with the
 * sub-blocks' weight sums (Q5_K clamps them to 63, as its reference does; Q4_K's
 * does not) */
static void qw_q45_K(const float *x, long long n, const float *qw, block_q4_K *y4, block_q5_K *y5) {
    const int nmax = y5 ? 31 : 15;
    for (long long i = 0; i < n / QKK; i++, x += QKK, qw += QKK) {
        uint8_t L[QKK], Laux[32], Ls[8], Lm[8];
        float w[32], sw[8], sc[8], mn[8];
        const float sigma2 = block_sigma2(x);
        for (int j = 0; j < 8; j++) {
            sw[j] = imatrix_weights(x + 32 * j, qw + 32 * j, sigma2, 32, w);
            sc[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mn[j], Laux, -0.9f, 0.05f, 36, 0);
        }
        const float d = llm_fit_scale_pos(8, 63, sc, Ls, sw), m = llm_fit_scale_pos(8, 63, mn, Lm, sw);
        for (int j = 0; y5 && j < 8; j++) {
            Ls[j] = (uint8_t)MINI(63, Ls[j]);
            Lm[j] = (uint8_t)MINI(63, Lm[j]);
        }
        uint8_t *scales = y5 ? y5[i].scales : y4[i].scales;
        k4_put_scales(scales, Ls, Lm);
        k45_requant_pack(x, scales, llm_f32_to_f16(d), llm_f32_to_f16(m), L, y5 ? NULL : &y4[i], y5 ? &y5[i] : NULL);
    }
}
static void qw_q4_K(const float *x, uint8_t *out, long long n, const float *qw) {
    qw_q45_K(x, n, qw, (block_q4_K *)out, NULL);
}
static void qw_q5_K(const float *x, uint8_t *out, long long n, const float *qw) {
    qw_q45_K(x, n, qw, NULL, (block_q5_K *)out);
}

/* Q6_K fits each sub-block with the imatrix weights as they are (its reference
 * leaves the sigma2 form commented out) */
static void qw_q6_K(const float *x, uint8_t *out, long long n, const float *qw) {
    block_q6_K *y = (block_q6_K *)out;
    for (long long i = 0; i < n / QKK; i++, x += QKK, qw += QKK) {
        int8_t L[QKK];
        float sc[16];
        for (int j = 0; j < 16; j++) sc[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j, qw + 16 * j);
        q6K_from_scales(x, sc, L, &y[i]);
    }
}

qrow_w_fn llm_weighted_qk(int type) {
    switch (type) {
    case T_Q4_0: return qw_q4_0;
    case T_Q4_1: return qw_q4_1;
    case T_Q5_0: return qw_q5_0;
    case T_Q5_1: return qw_q5_1;
    case T_Q2_K: return qw_q2_K;
    case T_Q3_K: return qw_q3_K;
    case T_Q4_K: return qw_q4_K;
    case T_Q5_K: return qw_q5_K;
    case T_Q6_K: return qw_q6_K;
    default: return NULL;
    }
}
