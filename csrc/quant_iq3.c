/* The IQ3 quantizers (IQ3_XXS, IQ3_S): one row of n floats (n % 256 == 0) and its
 * importance weights (NULL: x^2) to blocks, bit for bit what llama.cpp's
 * quantize_row_iq3_xxs_impl / quantize_row_iq3_s_impl (ggml-quants.c) write.
 * Each group of 32 is 8 points of 4 levels 0..7 (the grid search and tables in
 * quant_iq_common.c); float steps in the reference's operand order. */
#include <math.h>
#include "iq_quant.h"

#define IQ3_EPS_XXS 1e-8f /* GROUP_MAX_EPS_IQ3_XXS: below it a group of IQ3_XXS is zero */

/* the weights of a group: with an imatrix qw sqrt(sigma2 + x^2), else x^2 */
static void group_weights(const float *xb, const float *qw, float sigma2, float *w, float *waux) {
    if (qw) { llm_iq_imatrix_weights(xb, 32, qw, sigma2, w, waux); return; }
    for (int i = 0; i < 32; i++) w[i] = xb[i] * xb[i];
    for (int i = 0; i < 32; i++) waux[i] = sqrtf(w[i]);
}

static const iq_search SEARCH_XXS = {15, 15, 0.2f, 1, REFIT_OFF}, SEARCH_S = {15, 9, 0.2f, 0, REFIT_ALL};

/* the weights of group ib of a super-block (its imatrix slice, or NULL) and
 * its fit; returns 0 for a group left empty */
static int fit32(const iq_tables *t, const iq_search *s, const float *xbl, const float *qw, int ib, float sigma2,
                 int even, float eps, uint8_t *bs, int *gi, float *scale) {
    float w[32], waux[32];
    group_weights(xbl + 32 * ib, qw ? qw + 32 * ib : NULL, sigma2, w, waux);
    return llm_iq_fit_signed(t, s, 8, xbl + 32 * ib, w, waux, even, eps, bs, gi, scale);
}

/* IQ3_XXS: per 32 elements 8 grid indices, then a u32 of 4 x 7 sign bits (the 8th
 * of each 8 implied: an even count of minus signs) and the scale code on top */
void llm_q_iq3_xxs(const float *x, uint8_t *out, long long n, const float *qw) {
    const iq_tables *t = llm_iq_tables(T_IQ3_XXS);
    block_iq3_xxs *y = (block_iq3_xxs *)out;
    for (long long ibl = 0; ibl < n / QKK; ibl++) {
        const float *xbl = x + QKK * ibl;
        uint8_t q3[64] = {0};
        uint32_t sas[8] = {0};
        float scales[8], max_scale = 0;
        const float sigma2 = 2 * llm_iq_sumx2(xbl) / QKK;
        for (int ib = 0; ib < 8; ib++) {
            int gi[8];
            uint8_t bs[4];
            if (!fit32(t, &SEARCH_XXS, xbl, qw ? qw + QKK * ibl : NULL, ib, sigma2, 1, IQ3_EPS_XXS, bs, gi, &scales[ib]))
                continue;
            for (int k = 0; k < 8; k++) q3[8 * ib + k] = (uint8_t)gi[k];
            sas[ib] = bs[0] | (uint32_t)bs[1] << 7 | (uint32_t)bs[2] << 14 | (uint32_t)bs[3] << 21;
            max_scale = max_scale > scales[ib] ? max_scale : scales[ib];
        }
        memset(&y[ibl], 0, sizeof y[ibl]);
        if (!max_scale) continue;
        const float d = max_scale / 31;
        y[ibl].d = llm_f32_to_f16(d * 1.0125f);
        const float id = 1 / d;
        for (int ib = 0; ib < 8; ib++) sas[ib] |= (uint32_t)llm_iq_scale_code(id, scales[ib]) << 28;
        memcpy(y[ibl].qs, q3, 64);
        memcpy(y[ibl].qs + 64, sas, 32);
    }
}

/* IQ3_S: per 32 elements 8 grid indices (low 8 bits in qs, the 9th in qh), 32
 * sign bits, a 4-bit scale code per group (two a byte). As in the reference, a
 * group of zeros writes no indices or signs: the next group's go where its
 * would have (their high bits in qh stay in place). */
void llm_q_iq3_s(const float *x, uint8_t *out, long long n, const float *qw) {
    const iq_tables *t = llm_iq_tables(T_IQ3_S);
    block_iq3_s *y = (block_iq3_s *)out;
    for (long long ibl = 0; ibl < n / QKK; ibl++) {
        const float *xbl = x + QKK * ibl;
        memset(&y[ibl], 0, sizeof y[ibl]);
        uint8_t *qs = y[ibl].qs, *signs = y[ibl].signs;
        float scales[8], max_scale = 0;
        const float sigma2 = 2 * llm_iq_sumx2(xbl) / QKK;
        for (int ib = 0; ib < 8; ib++) {
            int gi[8];
            uint8_t bs[4];
            if (!fit32(t, &SEARCH_S, xbl, qw ? qw + QKK * ibl : NULL, ib, sigma2, 0, 0, bs, gi, &scales[ib]))
                continue;
            memcpy(signs, bs, 4);
            for (int k = 0; k < 8; k++) {
                qs[k] = (uint8_t)(gi[k] & 255);
                y[ibl].qh[ib] |= (uint8_t)((gi[k] >> 8) << k);
            }
            qs += 8;
            signs += 4;
            max_scale = max_scale > scales[ib] ? max_scale : scales[ib];
        }
        if (!max_scale) continue;
        const float d = max_scale / 31;
        y[ibl].d = llm_f32_to_f16(d * 1.033f);
        const float id = 1 / d;
        for (int ib = 0; ib < 8; ib += 2)
            y[ibl].scales[ib / 2] = (uint8_t)(llm_iq_scale_code(id, scales[ib]) | llm_iq_scale_code(id, scales[ib + 1]) << 4);
    }
}
