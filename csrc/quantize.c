/* Reference weight quantizers: rows of floats to GGUF blocks, bit for bit what
 * llama.cpp's quantize_row_*_ref (ggml-quants.c) writes, as its x86 build runs them:
 * plain float arithmetic in the reference's operand order, no FMA contraction
 * (the build passes -ffp-contract=off), ties decided by the same strict
 * comparisons. Rows are spread over the thread pool; a row's bytes do not depend
 * on the split. */
#include "quant_common.h"

/* ------------------------------------------------------ 32-element types */

/* Q4_0 / Q5_0: d = max / -div (the first largest magnitude, signed), stored as
 * f16; returns 1/d (0 when d is 0) */
static inline float absmax_scale(const float *x, float div, f16_t *d16) {
    const float d = signed_absmax(x, QK) / -div;
    *d16 = llm_f32_to_f16(d);
    return d ? 1.0f / d : 0.0f;
}

static void q_q4_0(const float *x, uint8_t *out, long long nb) {
    block_q4_0 *y = (block_q4_0 *)out;
    for (long long i = 0; i < nb; i++, x += QK) {
        const float id = absmax_scale(x, 8, &y[i].d);
        for (int j = 0; j < 16; j++) {
            const uint8_t a = (uint8_t)MINI(15, (int8_t)(x[j] * id + 8.5f));
            const uint8_t b = (uint8_t)MINI(15, (int8_t)(x[j + 16] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(a | b << 4);
        }
    }
}

/* Q4_1 / Q5_1: d = (max - min) / nmax and m = min (both stored as f16), the
 * block's minimum in *mn and 1/d (0 when d is 0) in *id */
static inline void scale_min(const float *x, int nmax, f16_t *d16, f16_t *m16, float *mn, float *id) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    const float d = (hi - lo) / nmax;
    *id = d ? 1.0f / d : 0.0f;
    *d16 = llm_f32_to_f16(d);
    *m16 = llm_f32_to_f16(lo);
    *mn = lo;
}

static void q_q4_1(const float *x, uint8_t *out, long long nb) {
    block_q4_1 *y = (block_q4_1 *)out;
    for (long long i = 0; i < nb; i++, x += QK) {
        float mn, id;
        scale_min(x, 15, &y[i].d, &y[i].m, &mn, &id);
        for (int j = 0; j < 16; j++) {
            const uint8_t a = (uint8_t)MINI(15, (int8_t)((x[j] - mn) * id + 0.5f));
            const uint8_t b = (uint8_t)MINI(15, (int8_t)((x[j + 16] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(a | b << 4);
        }
    }
}

static void q_q5_0(const float *x, uint8_t *out, long long nb) {
    block_q5_0 *y = (block_q5_0 *)out;
    for (long long i = 0; i < nb; i++, x += QK) {
        const float id = absmax_scale(x, 16, &y[i].d);
        uint8_t q[QK];
        for (int j = 0; j < QK; j++) q[j] = (uint8_t)MINI(31, (int8_t)(x[j] * id + 16.5f));
        pack5(q, y[i].qs, y[i].qh);
    }
}

static void q_q5_1(const float *x, uint8_t *out, long long nb) {
    block_q5_1 *y = (block_q5_1 *)out;
    for (long long i = 0; i < nb; i++, x += QK) {
        float mn, id;
        scale_min(x, 31, &y[i].d, &y[i].m, &mn, &id);
        uint8_t q[QK];
        for (int j = 0; j < QK; j++) q[j] = (uint8_t)((x[j] - mn) * id + 0.5f);   /* no clamp, as the reference */
        pack5(q, y[i].qs, y[i].qh);
    }
}

static void q_q8_0(const float *x, uint8_t *out, long long nb) {
    block_q8_0 *y = (block_q8_0 *)out;
    for (long long i = 0; i < nb; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = MAXI(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = llm_f32_to_f16(d);
        for (int j = 0; j < QK; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);   /* half away from zero */
    }
}

/* Q3_K's symmetric fit of 16 values, codes 0..7 (offset 4): a first guess, then
 * up to 5 passes moving single codes while that raises sum(w x l)^2 / sum(w l^2)
 * (llama.cpp's make_q3_quants, not make_qx_quants) */
static float fit_scale_q3(const float *x, int8_t *L) {
    const int n = 16, nmax = 4;
    const float max = signed_absmax(x, n);
    if (fabsf(max) < EPS_ZERO) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = MAXI(-nmax, MINI(nmax - 1, rne(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int nl = MAXI(-nmax, MINI(nmax - 1, rne(x[i] * sl2 / slx)));
            if (nl == L[i]) continue;
            slx += w * x[i] * nl;
            sl2 += w * nl * nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ----------------------------------------------------------- K-quants */

static void q_q2_K(const float *x, uint8_t *out, long long nb) {
    block_q2_K *y = (block_q2_K *)out;
    for (long long i = 0; i < nb; i++, x += QKK) {
        uint8_t L[QKK], Laux[16];
        float w[16], sc[16], mn[16], max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            sc[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mn[j], Laux, -0.5f, 0.1f, 15, 1);
            if (sc[j] > max_scale) max_scale = sc[j];
            if (mn[j] > max_min) max_min = mn[j];
        }
        if (max_scale > 0) {
            const float is = 15.f / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)rne(is * sc[j]);
            y[i].d = llm_f32_to_f16(max_scale / 15.f);
        } else {
            for (int j = 0; j < 16; j++) y[i].scales[j] = 0;
            y[i].d = llm_f32_to_f16(0.f);
        }
        if (max_min > 0) {
            const float is = 15.f / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(rne(is * mn[j]) << 4);
            y[i].dmin = llm_f32_to_f16(max_min / 15.f);
        } else {
            y[i].dmin = llm_f32_to_f16(0.f);
        }
        q2K_requant_pack(x, &y[i], L);
    }
}

static void q_q3_K(const float *x, uint8_t *out, long long nb) {
    block_q3_K *y = (block_q3_K *)out;
    for (long long i = 0; i < nb; i++, x += QKK) {
        int8_t L[QKK];
        float sc[16], max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            sc[j] = fit_scale_q3(x + 16 * j, L + 16 * j);
            if (fabsf(sc[j]) > amax) { amax = fabsf(sc[j]); max_scale = sc[j]; }
        }
        if (max_scale) {
            const float is = -32.f / max_scale;
            int8_t ls[16];
            for (int j = 0; j < 16; j++) {
                const int8_t l = (int8_t)rne(is * sc[j]);
                ls[j] = (int8_t)(MAXI(-32, MINI(31, l)) + 32);
            }
            q3K_put_scales(y[i].scales, ls);
            y[i].d = llm_f32_to_f16(1 / is);
        } else {
            memset(y[i].scales, 0, 12);
            y[i].d = llm_f32_to_f16(0.f);
        }
        q3K_requant_pack(x, &y[i], L);
    }
}

/* Q4_K and Q5_K: 8 sub-blocks of 32 fitted with weights av + |x|, their scales
 * and minimums to 6 bits, then the codes again from the rounded values (llama.cpp's
 * quantize_row_q4_K_ref / quantize_row_q5_K_ref) */
static void q_q45_K(const float *x, block_q4_K *y4, block_q5_K *y5, long long nb) {
    for (long long i = 0; i < nb; i++, x += QKK) {
        uint8_t L[QKK], Laux[32];
        float w[32], sc[8], mn[8], max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            const float *xj = x + 32 * j;
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += xj[l] * xj[l];
            const float av = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) w[l] = av + fabsf(xj[l]);
            sc[j] = y5 ? fit_scale_min(32, 31, xj, w, L + 32 * j, &mn[j], Laux, -0.5f, 0.1f, 15, 0)
                       : fit_scale_min(32, 15, xj, w, L + 32 * j, &mn[j], Laux, -1.f, 0.1f, 20, 0);
            if (sc[j] > max_scale) max_scale = sc[j];
            if (mn[j] > max_min) max_min = mn[j];
        }
        uint8_t *scales = y5 ? y5[i].scales : y4[i].scales, ls[8], lm[8];
        const float inv_s = max_scale > 0 ? 63.f / max_scale : 0.f, inv_m = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < 8; j++) {
            ls[j] = (uint8_t)MINI(63, (uint8_t)rne(inv_s * sc[j]));
            lm[j] = (uint8_t)MINI(63, (uint8_t)rne(inv_m * mn[j]));
        }
        k4_put_scales(scales, ls, lm);
        k45_requant_pack(x, scales, llm_f32_to_f16(max_scale / 63.f), llm_f32_to_f16(max_min / 63.f), L,
                         y5 ? NULL : &y4[i], y5 ? &y5[i] : NULL);
    }
}
static void q_q4_K(const float *x, uint8_t *out, long long nb) { q_q45_K(x, (block_q4_K *)out, NULL, nb); }
static void q_q5_K(const float *x, uint8_t *out, long long nb) { q_q45_K(x, NULL, (block_q5_K *)out, nb); }

static void q_q6_K(const float *x, uint8_t *out, long long nb) {
    block_q6_K *y = (block_q6_K *)out;
    for (long long i = 0; i < nb; i++, x += QKK) {
        int8_t L[QKK];
        float sc[16];
        for (int j = 0; j < 16; j++) sc[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j, NULL);
        q6K_from_scales(x, sc, L, &y[i]);
    }
}

/* ------------------------------------------------------- float formats */

static void q_f32(const float *x, uint8_t *out, long long n) { memcpy(out, x, (size_t)n * 4); }
static void q_f16(const float *x, uint8_t *out, long long n) {
    for (long long i = 0; i < n; i++) { const f16_t h = llm_f32_to_f16(x[i]); memcpy(out + 2 * i, &h, 2); }
}
static void q_bf16(const float *x, uint8_t *out, long long n) {
    for (long long i = 0; i < n; i++) { const bf16_t h = llm_f32_to_bf16(x[i]); memcpy(out + 2 * i, &h, 2); }
}

/* ------------------------------------------------------------- entry */

typedef void (*qrow_fn)(const float *x, uint8_t *out, long long nblocks);

static qrow_fn quantizer(int type) {
    switch (type) {
    case T_F32: return q_f32;
    case T_F16: return q_f16;
    case T_BF16: return q_bf16;
    case T_Q4_0: return q_q4_0;
    case T_Q4_1: return q_q4_1;
    case T_Q5_0: return q_q5_0;
    case T_Q5_1: return q_q5_1;
    case T_Q8_0: return q_q8_0;
    case T_Q2_K: return q_q2_K;
    case T_Q3_K: return q_q3_K;
    case T_Q4_K: return q_q4_K;
    case T_Q5_K: return q_q5_K;
    case T_Q6_K: return q_q6_K;
    case T_MXFP4: return llm_quantize_mxfp4;
    case T_NVFP4: return llm_quantize_nvfp4;
    case T_TQ1_0: return llm_quantize_tq1_0;
    case T_TQ2_0: return llm_quantize_tq2_0;
    case T_IQ4_NL: return llm_q_iq4_nl;
    case T_IQ4_XS: return llm_q_iq4_xs;
    default: return NULL;
    }
}

/* Weighted quantizers (qrow_w_fn, internal.h) */
static qrow_w_fn weighted_quantizer(int type) {
    switch (type) {
    case T_Q4_0: case T_Q4_1: case T_Q5_0: case T_Q5_1:
    case T_Q2_K: case T_Q3_K: case T_Q4_K: case T_Q5_K: case T_Q6_K: return llm_weighted_qk(type);
    case T_IQ4_NL: return llm_qw_iq4_nl;
    case T_IQ4_XS: return llm_qw_iq4_xs;
    case T_IQ3_XXS: return llm_q_iq3_xxs;
    case T_IQ3_S: return llm_q_iq3_s;
    case T_IQ2_XXS: return llm_q_iq2_xxs;
    case T_IQ2_XS: return llm_q_iq2_xs;
    case T_IQ2_S: return llm_q_iq2_s;
    case T_IQ1_S: return llm_q_iq1_s;
    case T_IQ1_M: return llm_q_iq1_m;
    default: return NULL;
    }
}

typedef struct {
    qrow_fn fn;
    const float *x;
    uint8_t *out;
    long long nrows, n, row_bytes, blocks;
} qjob;

static void quant_rows_task(int ith, int nth, void *p) {
    const qjob *j = p;
    const long long r0 = j->nrows * ith / nth, r1 = j->nrows * (ith + 1) / nth;
    for (long long r = r0; r < r1; r++) j->fn(j->x + r * j->n, j->out + r * j->row_bytes, j->blocks);
}

int llm_quantize_type_supported(int type) { return quantizer(type) != NULL; }

int llm_quantize_rows(int type, const float *x, void *out, long long nrows, long long n) {
    const qrow_fn fn = quantizer(type);
    const long long rb = llm_row_bytes(type, n), be = llm_type_block_elems(type);
    if (!fn || rb < 0 || be <= 0 || nrows < 0) return -1;
    qjob j = {fn, x, out, nrows, n, rb, n / be};
    llm_parallel_all(quant_rows_task, &j);
    return 0;
}

typedef struct {
    qrow_w_fn fn;
    const float *x, *qw;
    uint8_t *out;
    long long nrows, n, row_bytes;
} qwjob;

static void quant_rows_w_task(int ith, int nth, void *p) {
    const qwjob *j = p;
    const long long r0 = j->nrows * ith / nth, r1 = j->nrows * (ith + 1) / nth;
    for (long long r = r0; r < r1; r++) j->fn(j->x + r * j->n, j->out + r * j->row_bytes, j->n, j->qw);
}

/* Types whose llama.cpp quantizer asserts it has an importance matrix
 * (ggml_quantize_requires_imatrix; IQ2_S and IQ1_M have defaults, though
 * llama-quantize refuses those file types without one: llmlite/quant_rules.py). */
static int needs_imatrix(int type) {
    switch (type) {
    case T_IQ2_XXS: case T_IQ2_XS: case T_IQ1_S: return 1;
    default: return 0;
    }
}

int llm_quantize_type_weighted(int type) { return weighted_quantizer(type) != NULL; }

int llm_quantize_rows_w(int type, const float *x, void *out, long long nrows, long long n,
                        const float *imatrix) {
    const qrow_w_fn fn = weighted_quantizer(type);
    if (!fn || (!imatrix && quantizer(type))) return llm_quantize_rows(type, x, out, nrows, n);
    if (!imatrix && needs_imatrix(type)) return -1;
    const long long rb = llm_row_bytes(type, n), be = llm_type_block_elems(type);
    if (rb < 0 || be <= 0 || nrows < 0 || n % be) return -1;
    qwjob j = {fn, x, imatrix, out, nrows, n, rb};
    llm_parallel_all(quant_rows_w_task, &j);
    return 0;
}
