/* The IQ2 quantizers (IQ2_XXS, IQ2_XS, IQ2_S): one row of n floats (n % 256 == 0)
 * and its importance weights to blocks, bit for bit what llama.cpp's
 * quantize_row_iq2_xxs_impl / _iq2_xs_impl / quantize_row_iq2_s_impl
 * (ggml-quants.c) write. IQ2_XXS and IQ2_XS need the weights (qw not NULL);
 * IQ2_S takes sigma2/4 + x^2 without them. A point is 8 levels 0..2 (the grid
 * search and tables in quant_iq_common.c); float steps in the reference's order. */
#include <math.h>
#include "iq_quant.h"

#define EPS_IQ2_S 1e-8f      /* GROUP_MAX_EPS_IQ2_S */

static const iq_search SEARCH_XXS = {5, 6, 0.1f, 0, REFIT_ALWAYS}, SEARCH_16 = {5, 9, 0.1f, 1, REFIT_OFF};

/* IQ2_XXS: per 32 elements a u32 of 4 grid indices, then a u32 of 4 x 7 sign bits
 * (even count of minus signs) and the scale code on top. The first scale is
 * make_qp_quants' fit of the magnitudes to 0..3; the trials search around 3x it. */
void llm_q_iq2_xxs(const float *x, uint8_t *out, long long n, const float *qw) {
    const iq_tables *t = llm_iq_tables(T_IQ2_XXS);
    block_iq2_xxs *y = (block_iq2_xxs *)out;
    for (long long ibl = 0; ibl < n / QKK; ibl++) {
        const float *xbl = x + QKK * ibl;
        uint32_t q2[16] = {0};
        float scales[8], max_scale = 0;
        const float sigma2 = llm_iq_sumx2(xbl) / QKK;
        for (int ib = 0; ib < 8; ib++) {
            const float *xb = xbl + 32 * ib;
            float w[32], waux[32], xval[32];
            int8_t L[32];
            int gi[4];
            uint8_t bs[4];
            llm_iq_imatrix_weights(xb, 32, qw + QKK * ibl + 32 * ib, sigma2, w, waux);
            for (int k = 0; k < 4; k++) bs[k] = llm_iq_signs8(xb + 8 * k, w + 8 * k, xval + 8 * k, 1);
            const float max = iq_max(xval, 32);
            if (max < EPS_ZERO) { scales[ib] = 0; continue; }
            uint8_t Lqp[32];
            float scale = llm_fit_scale_pos(32, 4, xval, Lqp, w);
            const float eff_max = scale * 3;
            if (eff_max <= 0) { scales[ib] = 0; continue; }
            scale = llm_iq_fit_group(t, &SEARCH_XXS, 4, xval, w, waux, eff_max, scale, L, gi);
            if (scale < 0) {   /* never expected; kept as the reference has it */
                scale = -scale;
                for (int k = 0; k < 4; k++) bs[k] = (uint8_t)(~bs[k] & 127);
            }
            for (int k = 0; k < 4; k++) {
                q2[2 * ib] |= (uint32_t)gi[k] << 8 * k;
                q2[2 * ib + 1] |= (uint32_t)bs[k] << 7 * k;
            }
            scales[ib] = scale;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        memset(&y[ibl], 0, sizeof y[ibl]);
        if (!max_scale) continue;
        const float d = max_scale / 31;
        y[ibl].d = llm_f32_to_f16(d);
        const float id = 1 / d;
        for (int ib = 0; ib < 8; ib++) q2[2 * ib + 1] |= (uint32_t)llm_iq_scale_code(id, scales[ib]) << 28;
        memcpy(y[ibl].qs, q2, 64);
    }
}

/* the 16 scale codes of d = max_scale / 31 into 8 bytes (low nibble first) */
static void scale_nibbles(const float *scales, float max_scale, uint8_t *dst) {
    const float id = 1 / (max_scale / 31);
    for (int ib = 0; ib < 16; ib += 2)
        dst[ib / 2] = (uint8_t)(llm_iq_scale_code(id, scales[ib]) | llm_iq_scale_code(id, scales[ib + 1]) << 4);
}

/* IQ2_XS: per 8 elements a u16 of a 9-bit grid index and 7 sign bits */
void llm_q_iq2_xs(const float *x, uint8_t *out, long long n, const float *qw) {
    const iq_tables *t = llm_iq_tables(T_IQ2_XS);
    block_iq2_xs *y = (block_iq2_xs *)out;
    for (long long ibl = 0; ibl < n / QKK; ibl++) {
        const float *xbl = x + QKK * ibl;
        float scales[16], max_scale = 0;
        const float sigma2 = llm_iq_sumx2(xbl) / QKK;
        memset(&y[ibl], 0, sizeof y[ibl]);
        for (int ib = 0; ib < 16; ib++) {
            float w[16], waux[16];
            int gi[2];
            uint8_t bs[2];
            llm_iq_imatrix_weights(xbl + 16 * ib, 16, qw + QKK * ibl + 16 * ib, sigma2, w, waux);
            if (!llm_iq_fit_signed(t, &SEARCH_16, 2, xbl + 16 * ib, w, waux, 1, EPS_ZERO, bs, gi, &scales[ib])) continue;
            for (int k = 0; k < 2; k++) y[ibl].qs[2 * ib + k] = (uint16_t)(gi[k] | bs[k] << 9);
            max_scale = max_scale > scales[ib] ? max_scale : scales[ib];
        }
        if (!max_scale) { memset(y[ibl].qs, 0, sizeof y[ibl].qs); continue; }
        y[ibl].d = llm_f32_to_f16(max_scale / 31);
        scale_nibbles(scales, max_scale, y[ibl].scales);
    }
}

/* IQ2_S: per 8 elements the low 8 bits of a 10-bit grid index (qs), its top 2
 * bits (qh), 8 sign bits (the second half of qs) */
void llm_q_iq2_s(const float *x, uint8_t *out, long long n, const float *qw) {
    const iq_tables *t = llm_iq_tables(T_IQ2_S);
    block_iq2_s *y = (block_iq2_s *)out;
    for (long long ibl = 0; ibl < n / QKK; ibl++) {
        const float *xbl = x + QKK * ibl;
        float scales[16], max_scale = 0;
        const float sigma2 = 2 * llm_iq_sumx2(xbl) / QKK;
        memset(&y[ibl], 0, sizeof y[ibl]);
        for (int ib = 0; ib < 16; ib++) {
            const float *xb = xbl + 16 * ib;
            float w[16], waux[16];
            int gi[2];
            uint8_t bs[2];
            if (qw) llm_iq_imatrix_weights(xb, 16, qw + QKK * ibl + 16 * ib, sigma2, w, waux);
            else {
                for (int i = 0; i < 16; i++) w[i] = 0.25f * sigma2 + xb[i] * xb[i];
                for (int i = 0; i < 16; i++) waux[i] = sqrtf(w[i]);
            }
            if (!llm_iq_fit_signed(t, &SEARCH_16, 2, xb, w, waux, 0, EPS_IQ2_S, bs, gi, &scales[ib])) continue;
            for (int k = 0; k < 2; k++) {
                const int i8 = 2 * ib + k;
                y[ibl].qs[i8] = (uint8_t)(gi[k] & 255);
                y[ibl].qh[i8 / 4] |= (uint8_t)((gi[k] >> 8) << 2 * (i8 % 4));
                y[ibl].qs[QKK / 8 + i8] = bs[k];
            }
            max_scale = max_scale > scales[ib] ? max_scale : scales[ib];
        }
        if (!max_scale) continue;
        y[ibl].d = llm_f32_to_f16(max_scale / 31 * 0.9875f);
        scale_nibbles(scales, max_scale, y[ibl].scales);
    }
}
