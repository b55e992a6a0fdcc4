/* Helpers shared by the plain quantizers (quantize.c) and the importance-weighted
 * ones (quantize_weighted.c): the scale fits both call, and the K-quants' last
 * stages (codes chosen again for the rounded scales, then packed), which
 * llama.cpp's _ref and _impl quantizers run the same way once the scales are set. */
#ifndef LLM_QUANT_COMMON_H
#define LLM_QUANT_COMMON_H
#include <float.h>
#include <math.h>
#include "internal.h"

#define MAXI(a, b) ((a) > (b) ? (a) : (b))
#define MINI(a, b) ((a) < (b) ? (a) : (b))
#define EPS_ZERO 1e-15f   /* below this a group counts as all zero */

/* llama.cpp's make_qp_quants: codes 0..nmax in L for n non-negative values, weights w,
 * and their scale (quantize_weighted.c: the K-quants' sub-block scales and minimums;
 * the IQ2_XXS quantizer's first group scale) */
float llm_fit_scale_pos(int n, int nmax, const float *x, uint8_t *L, const float *w);

/* round half to even for |v| <= 4194303 (the reference's bit trick) */
static inline int rne(float v) {
    float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* the first element of largest magnitude, with its sign */
static inline float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    return max;
}

/* low nibbles of 32 five-bit codes into qs, their fifth bits into qh (bit j: element j) */
static inline void pack5(const uint8_t *q, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        h |= (uint32_t)(q[j] >> 4 & 1) << j | (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    memcpy(qh, &h, 4);
}

/* scale and minimum (returned in *neg_min as -min >= 0) of n values with
 * weights w, codes 0..nmax in L: a first guess from the range, then nstep+1
 * trial scales around it, each refitted by weighted least squares and kept if
 * its weighted error (|err| or err^2) is lower (llama.cpp's make_qkx2_quants, and
 * make_qkx3_quants, the same function when it is given weights) */
static inline float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                           uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    float mn = x[0], mx = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *neg_min = -mn;
        return 0.0f;
    }
    float iscale = nmax / (mx - mn), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)MAXI(0, MINI(nmax, rne(iscale * (x[i] - mn))));
        float e = scale * L[i] + mn - x[i];
        e = use_mad ? fabsf(e) : e * e;
        best += w[i] * e;
    }
    for (int is = 0; nstep >= 1 && is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (mx - mn);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            const int l = MAXI(0, MINI(nmax, rne(iscale * (x[i] - mn))));
            Laux[i] = (uint8_t)l;
            sl += w[i] * l;
            sl2 += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        const float D = sum_w * sl2 - sl * sl;
        if (!(D > 0)) continue;
        float s = (sum_w * sxl - sum_x * sl) / D, m = (sl2 * sum_x - sl * sxl) / D;
        if (m > 0) { m = 0; s = sxl / sl2; }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float e = s * Laux[i] + m - x[i];
            e = use_mad ? fabsf(e) : e * e;
            err += w[i] * e;
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = s;
            mn = m;   /* later trials use the refitted minimum */
        }
    }
    *neg_min = -mn;
    return scale;
}

/* symmetric scale of n values, codes L in 0..2*nmax-1 (offset nmax), weights
 * qw (x^2 when NULL): the best of 19 trial scales by sum(w x l)^2 / sum(w l^2)
 * (llama.cpp's make_qx_quants with rmse_type 1) */
static inline float fit_scale_sym(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    const float max = signed_absmax(x, n);
    if (fabsf(max) < EPS_ZERO) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = MAXI(-nmax, MINI(nmax - 1, rne(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        const float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = MAXI(-nmax, MINI(nmax - 1, rne(iscale * x[i])));
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + MAXI(-nmax, MINI(nmax - 1, rne(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* 2-bit codes of 128 elements (four groups of 32) into 32 bytes */
static inline void pack2bit(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *g = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(g[0] | g[32] << 2 | g[64] << 4 | g[96] << 6);
        }
}

/* ----------------------------------------- K-quants: the stages after the fit */

/* Q2_K: codes of the 16 sub-blocks chosen again from the block's rounded scales
 * and minimums (sub-blocks whose scale rounds to 0 keep the fit's), packed */
static inline void q2K_requant_pack(const float *x, block_q2_K *y, uint8_t *L) {
    for (int j = 0; j < 16; j++) {
        const float d = llm_f16_to_f32(y->d) * (y->scales[j] & 0xF);
        if (!d) continue;
        const float dm = llm_f16_to_f32(y->dmin) * (y->scales[j] >> 4);
        for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)MAXI(0, MINI(3, rne((x[16 * j + l] + dm) / d)));
    }
    pack2bit(L, y->qs);
}

/* Q3_K: 16 six-bit scales (offset 32) into the 12 scale bytes */
static inline void q3K_put_scales(uint8_t *scales, const int8_t *ls) {
    memset(scales, 0, 12);
    for (int j = 0; j < 16; j++) {
        const int l = ls[j];
        if (j < 8) scales[j] = (uint8_t)(l & 0xF);
        else scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
        scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
}

/* Q3_K: codes (offset 4) chosen again from the rounded scales, then the high
 * bits into hmask and the low two into qs */
static inline void q3K_requant_pack(const float *x, block_q3_K *y, int8_t *L) {
    for (int j = 0; j < 16; j++) {
        int8_t s = (int8_t)(j < 8 ? y->scales[j] & 0xF : y->scales[j - 8] >> 4);
        s = (int8_t)((s | ((y->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32);
        const float d = llm_f16_to_f32(y->d) * s;
        if (!d) continue;
        for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(MAXI(-4, MINI(3, rne(x[16 * j + l] / d))) + 4);
    }
    /* high bit of element e: bit e/32 of hmask[e%32] */
    memset(y->hmask, 0, 32);
    uint8_t lo[QKK];
    for (int e = 0; e < QKK; e++) {
        int v = L[e];
        if (v > 3) { y->hmask[e % 32] |= (uint8_t)(1u << (e / 32)); v -= 4; }
        lo[e] = (uint8_t)v;
    }
    pack2bit(lo, y->qs);
}

/* Q4_K / Q5_K: 8 six-bit scales and minimums into the 12 scale bytes */
static inline void k4_put_scales(uint8_t *scales, const uint8_t *ls, const uint8_t *lm) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            scales[j] = ls[j];
            scales[j + 4] = lm[j];
        } else {
            scales[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Q4_K / Q5_K: codes 0..nmax chosen again from the rounded scales and minimums
 * (d16, m16 the super-block's), then packed into y4 or y5 (the other NULL) */
static inline void k45_requant_pack(const float *x, const uint8_t *scales, f16_t d16, f16_t m16, uint8_t *L,
                                    block_q4_K *y4, block_q5_K *y5) {
    const int nmax = y5 ? 31 : 15;
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        llm_get_scale_min_k4(j, scales, &s, &m);
        const float d = llm_f16_to_f32(d16) * s;
        if (!d) continue;
        const float dm = llm_f16_to_f32(m16) * m;
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)MAXI(0, MINI(nmax, rne((x[32 * j + l] + dm) / d)));
    }
    if (y4) {
        y4->d = d16;
        y4->dmin = m16;
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) y4->qs[32 * g + l] = (uint8_t)(L[64 * g + l] | L[64 * g + l + 32] << 4);
        return;
    }
    y5->d = d16;
    y5->dmin = m16;
    memset(y5->qh, 0, 32);
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            int a = L[64 * g + l], b = L[64 * g + l + 32];
            if (a > 15) { a -= 16; y5->qh[l] |= (uint8_t)(1u << (2 * g)); }
            if (b > 15) { b -= 16; y5->qh[l] |= (uint8_t)(2u << (2 * g)); }
            y5->qs[32 * g + l] = (uint8_t)(a | b << 4);
        }
}

/* Q6_K from its 16 fitted sub-block scales sc and codes L (offset 32): the
 * largest scale onto -128, the 8-bit scales, the codes chosen again, packed;
 * an all-zero block when every scale is below EPS_ZERO */
static inline void q6K_from_scales(const float *x, const float *sc, int8_t *L, block_q6_K *y) {
    float max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++)
        if (fabsf(sc[j]) > max_abs) { max_abs = fabsf(sc[j]); max_scale = sc[j]; }
    if (max_abs < EPS_ZERO) {
        memset(y, 0, sizeof *y);
        return;
    }
    const float is = -128.f / max_scale;
    y->d = llm_f32_to_f16(1 / is);
    for (int j = 0; j < 16; j++) y->scales[j] = (int8_t)MINI(127, rne(is * sc[j]));
    for (int j = 0; j < 16; j++) {
        const float d = llm_f16_to_f32(y->d) * y->scales[j];
        if (!d) continue;
        for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(MAXI(-32, MINI(31, rne(x[16 * j + l] / d))) + 32);
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int8_t *g = L + 128 * h + l;
            y->ql[64 * h + l] = (uint8_t)((g[0] & 0xF) | (g[64] & 0xF) << 4);
            y->ql[64 * h + l + 32] = (uint8_t)((g[32] & 0xF) | (g[96] & 0xF) << 4);
            y->qh[32 * h + l] = (uint8_t)((g[0] >> 4) | (g[32] >> 4) << 2 | (g[64] >> 4) << 4 | (g[96] >> 4) << 6);
        }
}

#endif
