/* The IQ1 quantizers (IQ1_S, IQ1_M): one row of n floats (n % 256 == 0) and its
 * importance weights to blocks, bit for bit what llama.cpp's
 * quantize_row_iq1_s_impl / quantize_row_iq1_m_impl (ggml-quants.c) write. IQ1_S
 * needs the weights; IQ1_M takes x^2 without them.
 *
 * Every element is -1, 0 or 1 (level 0..2) plus a shared shift of +-1/8 per group;
 * with three values the best split of a group's sorted elements into three runs
 * is searched exhaustively (prefix sums of w x and w), then each point of 8 is
 * snapped onto the 2048-point grid (tables in quant_iq_common.c, shared by both
 * types). Float steps in the reference's operand order (-ffp-contract=off). */
#include <float.h>
#include <math.h>
#include "iq_quant.h"

#define DELTA 0.125f              /* IQ1S_DELTA = IQ1M_DELTA */
#define EPS_IQ1_S 1e-12f          /* GROUP_MAX_EPS_IQ1_S */
#define EPS_IQ1_M 1e-7f           /* GROUP_MAX_EPS_IQ1_M */

static const float X_P[3] = {-1 + DELTA, DELTA, 1 + DELTA};    /* the values with the shift +1/8 */
static const float X_M[3] = {-1 - DELTA, -DELTA, 1 - DELTA};   /* and with -1/8 */

/* the element indices of a group in increasing order of value, equal values in
 * their original order (the reference's qsort, glibc's merge sort: stable) */
static void sort_order(const float *xb, int n, int *idx) {
    for (int j = 0; j < n; j++) {
        int p = j;
        while (p > 0 && xb[idx[p - 1]] > xb[j]) { idx[p] = idx[p - 1]; p--; }
        idx[p] = j;
    }
}

/* with imatrix qw sqrt(sigma2 + x^2), else x^2 */
static void weights(const float *xb, int n, const float *qw, float sigma2, float *w) {
    for (int i = 0; i < n; i++) w[i] = qw ? qw[i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
}

static float abs_max(const float *xb, int n) {
    float m = fabsf(xb[0]);
    for (int i = 1; i < n; i++) m = m > fabsf(xb[i]) ? m : fabsf(xb[i]);
    return m;
}

/* levels of the split: the first i1 sorted elements 0, up to i2 1, the rest 2 */
static void split_levels(const int *idx, int n, int i1, int i2, int8_t *L) {
    for (int j = 0; j < n; j++) L[idx[j]] = (int8_t)(j < i1 ? 0 : j < i2 ? 1 : 2);
}

/* the neighbour of an off-grid code nearest xb at scale, the values xx[level]
 * (llama.cpp's iq1_find_best_neighbour2); its levels into L, its index returned */
static int neighbour_iq1(const iq_tables *t, int code, const float *xb, const float *w, float scale,
                         const float *xx, int8_t *L) {
    const uint16_t *nb = t->nb + (-t->map[code] - 1);
    float best = FLT_MAX;
    int gi = nb[1];
    for (int j = 1; j <= nb[0]; j++) {
        const uint8_t *lv = t->lv + nb[j] * 8;
        float d2 = 0;
        for (int i = 0; i < 8; i++) {
            const float diff = scale * xx[lv[i]] - xb[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best) { best = d2; gi = nb[j]; }
    }
    for (int i = 0; i < 8; i++) L[i] = (int8_t)t->lv[gi * 8 + i];
    return gi;
}

/* grid indices of npts points of levels L, off-grid ones replaced by their best
 * neighbour at scale (xx(k): the values of point k); returns 1 if all were on it */
static int snap(const iq_tables *t, int npts, const float *xb, const float *w, float scale,
                const float *const *xx, int8_t *L, int *index) {
    int all = 1;
    for (int k = 0; k < npts; k++) {
        const int c = iq_code(t, L + 8 * k);
        index[k] = t->map[c];
        if (index[k] < 0) {
            all = 0;
            index[k] = neighbour_iq1(t, c, xb + 8 * k, w + 8 * k, scale, xx[k], L + 8 * k);
        }
    }
    return all;
}

/* the least-squares scale of the snapped points, kept when sum(w q x) and
 * sum(w q^2) are both positive */
static float refit(const iq_tables *t, int npts, const float *xb, const float *w, const float *const *xx,
                   const int *index, float scale) {
    float sqx = 0, sq2 = 0;
    for (int k = 0; k < npts; k++)
        for (int j = 0; j < 8; j++) {
            const float q = xx[k][t->lv[index[k] * 8 + j]];
            sqx += w[8 * k + j] * q * xb[8 * k + j];
            sq2 += w[8 * k + j] * q * q;
        }
    return sqx > 0 && sq2 > 0 ? sqx / sq2 : scale;
}

/* IQ1_S: groups of 32, one shift each; 8 low index bytes per group in qs, the
 * top 3 bits of its 4 indices, 3 scale bits and the shift's sign in qh */
void llm_q_iq1_s(const float *x, uint8_t *out, long long n, const float *qw) {
    const iq_tables *t = llm_iq_tables(T_IQ1_S);
    block_iq1_s *y = (block_iq1_s *)out;
    for (long long ibl = 0; ibl < n / QKK; ibl++) {
        const float *xbl = x + QKK * ibl;
        float scales[8], max_scale = 0;
        int shifts[8];
        memset(&y[ibl], 0, sizeof y[ibl]);
        const float sigma2 = 2 * llm_iq_sumx2(xbl) / QKK;
        for (int ib = 0; ib < 8; ib++) {
            const float *xb = xbl + 32 * ib;
            float w[32], sumx[33], sumw[33];
            int idx[32], index[4];
            int8_t L[32];
            weights(xb, 32, qw + QKK * ibl + 32 * ib, sigma2, w);
            scales[ib] = 0;
            shifts[ib] = 1;
            const float max = abs_max(xb, 32);
            if (max < EPS_IQ1_S) continue;
            sort_order(xb, 32, idx);
            sumx[0] = sumw[0] = 0;
            for (int j = 0; j < 32; j++) {
                sumx[j + 1] = sumx[j] + w[idx[j]] * xb[idx[j]];
                sumw[j + 1] = sumw[j] + w[idx[j]];
            }
            float best = -FLT_MAX, scale = max;
            int b1 = -1, b2 = -1, shift = 0;
            for (int i1 = 0; i1 <= 32; i1++)
                for (int i2 = i1; i2 <= 32; i2++)
                    for (int sgn = 1; sgn >= -1; sgn -= 2) {
                        const float *v = sgn == 1 ? X_P : X_M;
                        const float sqx = (sumx[i1] - sumx[0]) * v[0] + (sumx[i2] - sumx[i1]) * v[1] + (sumx[32] - sumx[i2]) * v[2];
                        const float sq2 = (sumw[i1] - sumw[0]) * v[0] * v[0] + (sumw[i2] - sumw[i1]) * v[1] * v[1] +
                                          (sumw[32] - sumw[i2]) * v[2] * v[2];
                        if (sq2 > 0 && sqx * sqx > best * sq2) {
                            scale = sqx / sq2;
                            best = scale * sqx;
                            b1 = i1; b2 = i2; shift = sgn;
                        }
                    }
            if (b1 < 0 || b2 < 0 || shift == 0) continue;
            split_levels(idx, 32, b1, b2, L);
            if (scale < 0) {
                for (int j = 0; j < 32; j++) L[j] = (int8_t)(2 - L[j]);
                scale = -scale;
                shift = -shift;
            }
            const float *xx = shift == 1 ? X_P : X_M;
            const float *const xs[4] = {xx, xx, xx, xx};
            if (!snap(t, 4, xb, w, scale, xs, L, index)) scale = refit(t, 4, xb, w, xs, index, scale);
            uint16_t h = 0;
            for (int k = 0; k < 4; k++) {
                y[ibl].qs[4 * ib + k] = (uint8_t)(index[k] & 255);
                h |= (uint16_t)((index[k] >> 8) << 3 * k);
            }
            y[ibl].qh[ib] = h;
            scales[ib] = scale;
            shifts[ib] = shift;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!max_scale) continue;
        const float d = max_scale / 15;
        y[ibl].d = llm_f32_to_f16(d * 1.125f);
        const float id = 1 / d;
        for (int ib = 0; ib < 8; ib++) {
            int l = rne(0.5f * (id * scales[ib] - 1));
            l = l < 0 ? 0 : l > 7 ? 7 : l;
            if (shifts[ib] == -1) l |= 8;
            y[ibl].qh[ib] |= (uint16_t)(l << 12);
        }
    }
}

/* IQ1_M's shift pattern k (0: ++, 1: +-, 2: -+, 3: --, first half then second):
 * the values of point p (0..1) */
static const float *iq1m_values(int k, int p) { return (p == 0 ? k < 2 : k % 2 == 0) ? X_P : X_M; }

/* IQ1_M's exhaustive split of a group of 16 with a shift per half: the best
 * pattern into *best_k, the split into *b1, *b2; returns the scale */
static float iq1m_split(const float *xb, const float *w, const int *idx, float max, int *b1, int *b2, int *best_k) {
    float px[2][17], pw[2][17];
    px[0][0] = px[1][0] = pw[0][0] = pw[1][0] = 0;
    for (int j = 0; j < 16; j++) {
        const int i = idx[j], h = i < 8 ? 0 : 1;
        px[h][j + 1] = px[h][j] + w[i] * xb[i];
        px[1 - h][j + 1] = px[1 - h][j];
        pw[h][j + 1] = pw[h][j] + w[i];
        pw[1 - h][j + 1] = pw[1 - h][j];
    }
    /* v0 - v1 = v1 - v2 = -1 for both value sets: a split's sum(w q x) is T v2 - px[i1] - px[i2] */
    const float txs[2] = {px[0][16], px[1][16]}, tws[2] = {pw[0][16], pw[1][16]};
    const float p2 = X_P[2], m2 = X_M[2];
    const float cp1 = X_P[0] * X_P[0] - X_P[1] * X_P[1], cp2 = X_P[1] * X_P[1] - X_P[2] * X_P[2];
    const float cm1 = X_M[0] * X_M[0] - X_M[1] * X_M[1], cm2 = X_M[1] * X_M[1] - X_M[2] * X_M[2];
    float best = -FLT_MAX, scale = max;
    *b1 = *b2 = *best_k = -1;
    for (int i1 = 0; i1 <= 16; i1++)
        for (int i2 = i1; i2 <= 16; i2++) {
            float qxp[2], qxm[2], q2p[2], q2m[2];
            for (int h = 0; h < 2; h++) {
                const float sx = px[h][i1] + px[h][i2];
                qxp[h] = txs[h] * p2 - sx;
                qxm[h] = txs[h] * m2 - sx;
                q2p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                q2m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
            }
            const float sqx[4] = {qxp[0] + qxp[1], qxp[0] + qxm[1], qxm[0] + qxp[1], qxm[0] + qxm[1]};
            const float sq2[4] = {q2p[0] + q2p[1], q2p[0] + q2m[1], q2m[0] + q2p[1], q2m[0] + q2m[1]};
            for (int k = 0; k < 4; k++)
                if (sq2[k] > 0 && sqx[k] * sqx[k] > best * sq2[k]) {
                    scale = sqx[k] / sq2[k];
                    best = scale * sqx[k];
                    *b1 = i1; *b2 = i2; *best_k = k;
                }
        }
    return scale;
}

/* IQ1_M: groups of 16, a shift per 8; per group 2 low index bytes (qs), the top 3
 * bits of both indices and the 2 shift signs (qh), 3 scale bits (scales); the
 * super-block's f16 scale, refitted over every group, in the scales' top nibbles */
void llm_q_iq1_m(const float *x, uint8_t *out, long long n, const float *qw) {
    static const uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};
    const iq_tables *t = llm_iq_tables(T_IQ1_M);
    block_iq1_m *y = (block_iq1_m *)out;
    for (long long ibl = 0; ibl < n / QKK; ibl++) {
        const float *xbl = x + QKK * ibl;
        float scales[16], max_scale = 0;
        int shifts[16];
        memset(&y[ibl], 0, sizeof y[ibl]);
        const float sigma2 = 2 * llm_iq_sumx2(xbl) / QKK;
        for (int ib = 0; ib < 16; ib++) {
            const float *xb = xbl + 16 * ib;
            float w[16];
            int idx[16], index[2], b1, b2, k;
            int8_t L[16];
            weights(xb, 16, qw ? qw + QKK * ibl + 16 * ib : NULL, sigma2, w);
            scales[ib] = 0;
            shifts[ib] = 0;
            const float max = abs_max(xb, 16);
            if (max < EPS_IQ1_M) continue;
            sort_order(xb, 16, idx);
            float scale = iq1m_split(xb, w, idx, max, &b1, &b2, &k);
            if (b1 < 0 || b2 < 0 || k < 0) continue;
            split_levels(idx, 16, b1, b2, L);
            if (scale < 0) {
                for (int j = 0; j < 16; j++) L[j] = (int8_t)(2 - L[j]);
                scale = -scale;
                k = 3 - k;
            }
            const float *const xs[2] = {iq1m_values(k, 0), iq1m_values(k, 1)};
            if (!snap(t, 2, xb, w, scale, xs, L, index)) scale = refit(t, 2, xb, w, xs, index, scale);
            y[ibl].qs[2 * ib] = (uint8_t)(index[0] & 255);
            y[ibl].qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
            y[ibl].qh[ib] = (uint8_t)((index[0] >> 8) | (index[1] >> 8) << 4);
            scales[ib] = scale;
            shifts[ib] = k;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!max_scale) continue;
        uint16_t sc[4] = {0};
        float d = max_scale / 15;
        const float id = 1 / d;
        float sqx = 0, sq2 = 0;
        for (int ib = 0; ib < 16; ib++) {   /* every group, the empty ones too (index 0, scale 1) */
            int l = rne(0.5f * (id * scales[ib] - 1));
            l = l < 0 ? 0 : l > 7 ? 7 : l;
            sc[ib / 4] |= (uint16_t)(l << 3 * (ib % 4));
            y[ibl].qh[ib] |= masks[shifts[ib]];
            const float *xb = xbl + 16 * ib;
            float w[16];
            weights(xb, 16, qw ? qw + QKK * ibl + 16 * ib : NULL, sigma2, w);
            for (int p = 0; p < 2; p++) {
                const float *xx = iq1m_values(shifts[ib], p);
                const int gi = y[ibl].qs[2 * ib + p] + ((y[ibl].qh[ib] << (8 - 4 * p)) & 0x700);
                for (int j = 0; j < 8; j++) {
                    const float q = xx[t->lv[gi * 8 + j]] * (float)(2 * l + 1);
                    sqx += w[8 * p + j] * q * xb[8 * p + j];
                    sq2 += w[8 * p + j] * q * q;
                }
            }
        }
        if (sq2 > 0) d = sqx / sq2;
        const f16_t h = llm_f32_to_f16(d * 1.1125f);
        sc[0] |= (uint16_t)((h & 0x000f) << 12);
        sc[1] |= (uint16_t)((h & 0x00f0) << 8);
        sc[2] |= (uint16_t)((h & 0x0f00) << 4);
        sc[3] |= (uint16_t)(h & 0xf000);
        memcpy(y[ibl].scales, sc, 8);
    }
}
