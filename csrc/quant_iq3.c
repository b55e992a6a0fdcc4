/* The IQ3 quantizers (IQ3_XXS, IQ3_S): one row of n floats (n % 256 == 0) and its
 * importance weights (NULL: x^2) to blocks, bit for bit what llama.cpp's
 * quantize_row_iq3_xxs_impl / quantize_row_iq3_s_impl (ggml-quants.c) write.
 *
 * Each element is coded as a level l in 0..7 (grid value 2l+1 in the search's
 * units); four levels make a 12-bit code, and only the grid's codes (256 for
 * IQ3_XXS, 512 for IQ3_S) can be stored. A code off the grid is replaced by the
 * best of its neighbours: the grid points at the 2 (IQ3_XXS) or 3 (IQ3_S)
 * smallest squared distances from it, in the order (distance, grid index).
 * Those tables (llama.cpp's iq3xs_init_impl) are built here once per process
 * (pthread_once) from the dequantization grids of iq_grids.h: the level of a
 * grid byte is its rank among the grid's 8 distinct bytes, so nothing is typed
 * twice.
 *
 * Float steps in the reference's operand order, no contraction (-ffp-contract=off). */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include "internal.h"
#include "iq_grids.h"

#define IQ3_CODES 4096   /* 4 levels of 3 bits */
#define IQ3_EPS_XXS 1e-8f /* GROUP_MAX_EPS_IQ3_XXS: below it a group of IQ3_XXS is zero */

typedef struct {
    int size;                 /* grid points: 256 or 512 */
    uint8_t lv[512][4];       /* each point's 4 levels */
    int map[IQ3_CODES];       /* code -> grid index, or -(offset + 1) into nb */
    uint16_t *nb;             /* per off-grid code: count, then grid indices */
} iq3_tables;

static iq3_tables tab_xxs, tab_s;
static pthread_once_t once_xxs = PTHREAD_ONCE_INIT, once_s = PTHREAD_ONCE_INIT;

static inline int nearest(float v) {   /* round half to even, llama.cpp's nearest_int */
    float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static int code_of(const uint8_t *l) { return l[0] | l[1] << 3 | l[2] << 6 | l[3] << 9; }

/* squared distance between a code's levels and a grid point's, in 2l+1 units */
static int dist2(int code, const uint8_t *lv) {
    int d = 0;
    for (int k = 0; k < 4; k++) {
        const int e = 2 * (int)lv[k] - 2 * ((code >> 3 * k) & 7);
        d += e * e;
    }
    return d;
}

/* the grid points at the nwant smallest distances from code, ordered by
 * (distance, index), into out (NULL: count only); returns how many */
static int neighbours(const iq3_tables *t, int code, int nwant, uint16_t *out) {
    int level[3], nl = 0;
    for (; nl < nwant; nl++) {   /* the nwant smallest distinct distances */
        int best = INT32_MAX;
        for (int j = 0; j < t->size; j++) {
            const int d = dist2(code, t->lv[j]);
            if (d < best && (nl == 0 || d > level[nl - 1])) best = d;
        }
        if (best == INT32_MAX) break;
        level[nl] = best;
    }
    int n = 0;
    for (int q = 0; q < nl; q++)
        for (int j = 0; j < t->size; j++)
            if (dist2(code, t->lv[j]) == level[q]) {
                if (out) out[n] = (uint16_t)j;
                n++;
            }
    return n;
}

/* levels of a grid whose bytes are 8 increasing magnitudes */
static void build(iq3_tables *t, const uint32_t *grid, int size, int nwant) {
    uint8_t vals[8];
    int nv = 0;
    t->size = size;
    for (int j = 0; j < size; j++)
        for (int k = 0; k < 4; k++) {
            const uint8_t b = (uint8_t)(grid[j] >> 8 * k);
            int i = 0;
            while (i < nv && vals[i] != b) i++;
            if (i == nv && nv < 8) vals[nv++] = b;
        }
    for (int a = 0; a < nv; a++)   /* sort the distinct bytes: rank = level */
        for (int b = a + 1; b < nv; b++)
            if (vals[b] < vals[a]) { const uint8_t s = vals[a]; vals[a] = vals[b]; vals[b] = s; }
    for (int c = 0; c < IQ3_CODES; c++) t->map[c] = -1;
    for (int j = 0; j < size; j++) {
        for (int k = 0; k < 4; k++) {
            const uint8_t b = (uint8_t)(grid[j] >> 8 * k);
            int l = 0;
            while (vals[l] != b) l++;
            t->lv[j][k] = (uint8_t)l;
        }
        t->map[code_of(t->lv[j])] = j;
    }
    size_t total = 0;
    for (int c = 0; c < IQ3_CODES; c++)
        if (t->map[c] < 0) total += 1 + (size_t)neighbours(t, c, nwant, NULL);
    t->nb = malloc(total * sizeof *t->nb);
    if (!t->nb) abort();   /* a few tens of KB at first use */
    size_t off = 0;
    for (int c = 0; c < IQ3_CODES; c++) {
        if (t->map[c] >= 0) continue;
        const int n = neighbours(t, c, nwant, t->nb + off + 1);
        t->nb[off] = (uint16_t)n;
        t->map[c] = -(int)off - 1;
        off += 1 + (size_t)n;
    }
}

static void init_xxs(void) { build(&tab_xxs, llm_iq3xxs_grid, 256, 2); }
static void init_s(void) { build(&tab_s, llm_iq3s_grid, 512, 3); }

/* the neighbour of an off-grid code nearest to xval at this scale, by the
 * weighted squared error (the first of equals); its levels into L */
static int best_neighbour(const iq3_tables *t, int code, const float *xval, const float *w, float scale, int8_t *L) {
    const uint16_t *nb = t->nb + (-t->map[code] - 1);
    float best = FLT_MAX;
    int gi = nb[1];
    for (int j = 1; j <= nb[0]; j++) {
        float d2 = 0;
        for (int i = 0; i < 4; i++) {
            const float q = (float)(2 * t->lv[nb[j]][i] + 1);
            const float diff = scale * q - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best) { best = d2; gi = nb[j]; }
    }
    for (int i = 0; i < 4; i++) L[i] = (int8_t)t->lv[gi][i];
    return gi;
}

/* levels of 4 values at inverse scale id, clamped to 0..7, into L; their code */
static int levels4(const float *xval, float id, int8_t *L) {
    for (int i = 0; i < 4; i++) {
        const int l = nearest(0.5f * (id * xval[i] - 1));
        L[i] = (int8_t)(l < 0 ? 0 : l > 7 ? 7 : l);
    }
    return code_of((const uint8_t *)L);
}

/* sum(w x q) and sum(w q^2) of 32 values at levels L (q = 2l+1) */
static void sums(const float *w, const float *xval, const int8_t *L, float *sqx, float *sq2) {
    float a = 0, b = 0;
    for (int i = 0; i < 32; i++) {
        const float q = (float)(2 * L[i] + 1);
        a += w[i] * xval[i] * q;
        b += w[i] * q * q;
    }
    *sqx = a;
    *sq2 = b;
}

/* One group of 32 magnitudes xval (max > 0): the best of 2*half+1 trial scales
 * by sum(w x q)^2 / sum(w q^2), each code snapped onto the grid; then the groups
 * still off the grid (every group: refit_all) coded again at the chosen scale
 * and the scale refitted. The levels in L, the grid indices in gi; returns the
 * scale. ongrid0: what a group counts as before any trial is taken. */
static float fit_group(const iq3_tables *t, const float *xval, const float *w, const float *waux, float max,
                       int half, int ongrid0, int refit_all, int8_t *L, int *gi) {
    int8_t Laux[32];
    int on[8], on_aux[8];
    float best = 0, scale = max / 15;
    memset(L, 0, 32);
    for (int k = 0; k < 8; k++) on[k] = ongrid0;
    for (int is = -half; is <= half; is++) {
        const float id = (15 + is * 0.2f) / max, this_scale = 1 / id;
        for (int k = 0; k < 8; k++) {
            const int c = levels4(xval + 4 * k, id, Laux + 4 * k);
            on_aux[k] = t->map[c] >= 0;
            if (!on_aux[k]) best_neighbour(t, c, xval + 4 * k, waux + 4 * k, this_scale, Laux + 4 * k);
        }
        float sqx, sq2;
        sums(w, xval, Laux, &sqx, &sq2);
        if (sq2 > 0 && sqx * sqx > best * sq2) {
            scale = sqx / sq2;
            best = scale * sqx;
            memcpy(L, Laux, 32);
            memcpy(on, on_aux, sizeof on);
        }
    }
    int off = 0;
    for (int k = 0; k < 8; k++) off += !on[k];
    if (off > 0 && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < 8; k++) {
            if (on[k] && !refit_all) continue;
            int8_t l4[4];
            const int c = levels4(xval + 4 * k, id, l4);
            if (t->map[c] >= 0) memcpy(L + 4 * k, t->lv[t->map[c]], 4);
            else best_neighbour(t, c, xval + 4 * k, waux + 4 * k, scale, L + 4 * k);
        }
        float sqx, sq2;
        sums(w, xval, L, &sqx, &sq2);
        if (sq2 > 0) scale = sqx / sq2;
    }
    for (int k = 0; k < 8; k++) gi[k] = t->map[code_of((const uint8_t *)(L + 4 * k))];
    return scale;
}

/* the weights of a group: qw * sqrt(sigma2 + x^2) with an imatrix, else x^2; and their square roots */
static void group_weights(const float *xb, const float *qw, float sigma2, float *w, float *waux) {
    for (int i = 0; i < 32; i++) w[i] = qw ? qw[i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
    for (int i = 0; i < 32; i++) waux[i] = sqrtf(w[i]);
}

/* 2 * mean of x^2 over a super-block */
static float sigma2_of(const float *x) {
    float s = 0;
    for (int i = 0; i < QKK; i++) s += x[i] * x[i];
    return 2 * s / QKK;
}

/* the 4-bit scale code of a group scale: nearest(0.5 (s/d - 1)) in 0..15 */
static int scale_code(float id, float s) {
    const int l = nearest(0.5f * (id * s - 1));
    return l < 0 ? 0 : l > 15 ? 15 : l;
}

/* IQ3_XXS: per 32 elements 8 grid indices, then a u32 of 4 x 7 sign bits (the 8th
 * of each 8 implied: an even count of minus signs) and the scale code on top */
void llm_q_iq3_xxs(const float *x, uint8_t *out, long long n, const float *qw) {
    pthread_once(&once_xxs, init_xxs);
    const iq3_tables *t = &tab_xxs;
    block_iq3_xxs *y = (block_iq3_xxs *)out;
    for (long long ibl = 0; ibl < n / QKK; ibl++) {
        const float *xbl = x + QKK * ibl;
        uint8_t q3[96] = {0};
        uint32_t sas[8] = {0};
        float scales[8], max_scale = 0;
        const float sigma2 = sigma2_of(xbl);
        for (int ib = 0; ib < 8; ib++) {
            const float *xb = xbl + 32 * ib;
            float w[32], waux[32], xval[32];
            int8_t L[32];
            int gi[8];
            uint8_t bs[4];
            group_weights(xb, qw ? qw + QKK * ibl + 32 * ib : NULL, sigma2, w, waux);
            for (int k = 0; k < 4; k++) {
                int nflip = 0;
                uint8_t s = 0;
                for (int i = 0; i < 8; i++) {
                    const float v = xb[8 * k + i];
                    if (v >= 0) xval[8 * k + i] = v;
                    else { xval[8 * k + i] = -v; nflip++; s |= (uint8_t)(1u << i); }
                }
                if (nflip % 2) {   /* odd: flip the element that costs least, w x^2 */
                    int imin = 0;
                    float mn = w[8 * k] * xb[8 * k] * xb[8 * k];
                    for (int i = 1; i < 8; i++) {
                        const float a = w[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                        if (a < mn) { mn = a; imin = i; }
                    }
                    xval[8 * k + imin] = -xval[8 * k + imin];
                    s ^= (uint8_t)(1u << imin);
                }
                bs[k] = s & 127;
            }
            float max = xval[0];
            for (int i = 1; i < 32; i++) max = max > xval[i] ? max : xval[i];
            if (max < IQ3_EPS_XXS) { scales[ib] = 0; continue; }
            float scale = fit_group(t, xval, w, waux, max, 15, 1, 0, L, gi);
            if (scale < 0) {   /* never expected; kept as the reference has it */
                scale = -scale;
                for (int k = 0; k < 4; k++) bs[k] = (uint8_t)(~bs[k] & 127);
            }
            for (int k = 0; k < 8; k++) q3[8 * ib + k] = (uint8_t)gi[k];
            sas[ib] = bs[0] | (uint32_t)bs[1] << 7 | (uint32_t)bs[2] << 14 | (uint32_t)bs[3] << 21;
            scales[ib] = scale;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        memset(&y[ibl], 0, sizeof y[ibl]);
        if (!max_scale) continue;
        const float d = max_scale / 31;
        y[ibl].d = llm_f32_to_f16(d * 1.0125f);
        const float id = 1 / d;
        for (int ib = 0; ib < 8; ib++) sas[ib] |= (uint32_t)scale_code(id, scales[ib]) << 28;
        memcpy(y[ibl].qs, q3, 64);
        memcpy(y[ibl].qs + 64, sas, 32);
    }
}

/* IQ3_S: per 32 elements 8 grid indices (low 8 bits in qs, the 9th in qh), 32
 * sign bits, a 4-bit scale code per group (two a byte). As in the reference, a
 * group of zeros writes no indices or signs: the next group's go where its
 * would have (their high bits in qh stay in place). */
void llm_q_iq3_s(const float *x, uint8_t *out, long long n, const float *qw) {
    pthread_once(&once_s, init_s);
    const iq3_tables *t = &tab_s;
    block_iq3_s *y = (block_iq3_s *)out;
    for (long long ibl = 0; ibl < n / QKK; ibl++) {
        const float *xbl = x + QKK * ibl;
        memset(&y[ibl], 0, sizeof y[ibl]);
        uint8_t *qs = y[ibl].qs, *signs = y[ibl].signs;
        float scales[8], max_scale = 0;
        const float sigma2 = sigma2_of(xbl);
        for (int ib = 0; ib < 8; ib++) {
            const float *xb = xbl + 32 * ib;
            float w[32], waux[32], xval[32];
            int8_t L[32];
            int gi[8];
            uint8_t bs[4];
            group_weights(xb, qw ? qw + QKK * ibl + 32 * ib : NULL, sigma2, w, waux);
            for (int k = 0; k < 4; k++) {
                uint8_t s = 0;
                for (int i = 0; i < 8; i++) {
                    const float v = xb[8 * k + i];
                    if (v >= 0) xval[8 * k + i] = v;
                    else { xval[8 * k + i] = -v; s |= (uint8_t)(1u << i); }
                }
                bs[k] = s;
            }
            float max = xval[0];
            for (int i = 1; i < 32; i++) max = max > xval[i] ? max : xval[i];
            if (!max) { scales[ib] = 0; continue; }
            float scale = fit_group(t, xval, w, waux, max, 9, 0, 1, L, gi);
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 4; k++) bs[k] = (uint8_t)~bs[k];
            }
            for (int k = 0; k < 8; k++) {
                qs[k] = (uint8_t)(gi[k] & 255);
                y[ibl].qh[ib] |= (uint8_t)((gi[k] >> 8) << k);
            }
            qs += 8;
            memcpy(signs, bs, 4);
            signs += 4;
            scales[ib] = scale;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!max_scale) continue;
        const float d = max_scale / 31;
        y[ibl].d = llm_f32_to_f16(d * 1.033f);
        const float id = 1 / d;
        for (int ib = 0; ib < 8; ib += 2)
            y[ibl].scales[ib / 2] = (uint8_t)(scale_code(id, scales[ib]) | scale_code(id, scales[ib + 1]) << 4);
    }
}
