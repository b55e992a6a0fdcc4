/* The grid i-quants' quantizers, shared part (iq_quant.h): the grid map and
 * neighbour lists, built once per process from iq_grids.h's dequantization grids
 * (a grid byte's level is its rank among the grid's distinct values, so no table
 * is typed twice), and the steps of llama.cpp's quantize_row_iq{1,2,3}_*_impl
 * that several types take, in the reference's float order (-ffp-contract=off). */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include "iq_quant.h"
#include "iq_grids.h"

#define NEVER_ASKED INT32_MIN   /* a code with a level no grid point has */

/* the levels of each point: ranks of its (signed) bytes among the grid's values */
static void grid_levels(iq_tables *t, const uint8_t *bytes) {
    int8_t vals[8];
    int nv = 0;
    for (int j = 0; j < t->size * t->dim; j++) {
        const int8_t b = (int8_t)bytes[j];
        int i = 0;
        while (i < nv && vals[i] != b) i++;
        if (i == nv) vals[nv++] = b;   /* at most 8 distinct values in every grid */
    }
    for (int a = 0; a < nv; a++)
        for (int b = a + 1; b < nv; b++)
            if (vals[b] < vals[a]) { const int8_t s = vals[a]; vals[a] = vals[b]; vals[b] = s; }
    t->nlev = nv;
    for (int j = 0; j < t->size * t->dim; j++) {
        int l = 0;
        while (vals[l] != (int8_t)bytes[j]) l++;
        t->lv[j] = (uint8_t)l;
    }
}

/* whether every level of code is one the grid has */
static int askable(const iq_tables *t, int code) {
    for (int k = 0; k < t->dim; k++)
        if (((code >> t->bits * k) & ((1 << t->bits) - 1)) >= t->nlev) return 0;
    return 1;
}

/* the points at the nwant smallest distances from code, by (distance, index),
 * into out (NULL: count only); d2: scratch of size ints. Returns how many. */
static int neighbours(const iq_tables *t, int code, int nwant, int *d2, uint16_t *out) {
    const int mask = (1 << t->bits) - 1;
    for (int j = 0; j < t->size; j++) {
        int d = 0;
        for (int k = 0; k < t->dim; k++) {
            const int e = 2 * ((int)t->lv[j * t->dim + k] - ((code >> t->bits * k) & mask));
            d += e * e;
        }
        d2[j] = d;
    }
    int level[4], nl = 0;
    for (; nl < nwant; nl++) {   /* the nwant smallest distinct distances */
        int best = INT32_MAX;
        for (int j = 0; j < t->size; j++)
            if (d2[j] < best && (nl == 0 || d2[j] > level[nl - 1])) best = d2[j];
        if (best == INT32_MAX) break;
        level[nl] = best;
    }
    int n = 0;
    for (int q = 0; q < nl; q++)
        for (int j = 0; j < t->size; j++)
            if (d2[j] == level[q]) {
                if (out) out[n] = (uint16_t)j;
                n++;
            }
    return n;
}

static void build(iq_tables *t, const void *grid, int size, int dim, int bits, int nwant) {
    const int ncodes = 1 << dim * bits;
    t->size = size;
    t->dim = dim;
    t->bits = bits;
    t->lv = malloc((size_t)size * dim);
    t->map = malloc((size_t)ncodes * sizeof *t->map);
    int *d2 = malloc((size_t)size * sizeof *d2);
    if (!t->lv || !t->map || !d2) abort();   /* under 300 KB, once */
    grid_levels(t, grid);
    for (int c = 0; c < ncodes; c++) t->map[c] = NEVER_ASKED;
    for (int j = 0; j < size; j++) {
        int8_t L[8];
        for (int k = 0; k < dim; k++) L[k] = (int8_t)t->lv[j * dim + k];
        t->map[iq_code(t, L)] = j;
    }
    size_t total = 0;
    for (int c = 0; c < ncodes; c++)
        if (t->map[c] == NEVER_ASKED && askable(t, c)) total += 1 + (size_t)neighbours(t, c, nwant, d2, NULL);
    t->nb = malloc(total * sizeof *t->nb);
    if (!t->nb) abort();
    size_t off = 0;
    for (int c = 0; c < ncodes; c++) {
        if (t->map[c] != NEVER_ASKED || !askable(t, c)) continue;
        const int n = neighbours(t, c, nwant, d2, t->nb + off + 1);
        t->nb[off] = (uint16_t)n;
        t->map[c] = -(int)off - 1;
        off += 1 + (size_t)n;
    }
    free(d2);
}

/* one table per grid; nwant as the reference's init has it per type */
static iq_tables tabs[6];
static pthread_once_t onces[6] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                  PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};
static void init_iq3_xxs(void) { build(&tabs[0], llm_iq3xxs_grid, 256, 4, 3, 2); }
static void init_iq3_s(void) { build(&tabs[1], llm_iq3s_grid, 512, 4, 3, 3); }
static void init_iq2_xxs(void) { build(&tabs[2], llm_iq2xxs_grid, 256, 8, 2, 2); }
static void init_iq2_xs(void) { build(&tabs[3], llm_iq2xs_grid, 512, 8, 2, 2); }
static void init_iq2_s(void) { build(&tabs[4], llm_iq2s_grid, 1024, 8, 2, 1); }
static void init_iq1(void) { build(&tabs[5], llm_iq1s_grid, 2048, 8, 2, 3); }

const iq_tables *llm_iq_tables(int type) {
    static void (*const init[6])(void) = {init_iq3_xxs, init_iq3_s, init_iq2_xxs, init_iq2_xs, init_iq2_s, init_iq1};
    int i;
    switch (type) {
    case T_IQ3_XXS: i = 0; break;
    case T_IQ3_S: i = 1; break;
    case T_IQ2_XXS: i = 2; break;
    case T_IQ2_XS: i = 3; break;
    case T_IQ2_S: i = 4; break;
    case T_IQ1_S: case T_IQ1_M: i = 5; break;
    default: return NULL;
    }
    pthread_once(&onces[i], init[i]);
    return &tabs[i];
}

int llm_iq_best_neighbour(const iq_tables *t, int code, const float *xval, const float *w, float scale, int8_t *L) {
    const uint16_t *nb = t->nb + (-t->map[code] - 1);
    float best = FLT_MAX;
    int gi = nb[1];
    for (int j = 1; j <= nb[0]; j++) {
        const uint8_t *lv = t->lv + nb[j] * t->dim;
        float d2 = 0;
        for (int i = 0; i < t->dim; i++) {
            const float q = (float)(2 * lv[i] + 1);
            const float diff = scale * q - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best) { best = d2; gi = nb[j]; }
    }
    for (int i = 0; i < t->dim; i++) L[i] = (int8_t)t->lv[gi * t->dim + i];
    return gi;
}

/* the levels of one point at inverse scale id, clamped to the grid's; its code */
static int point_levels(const iq_tables *t, const float *xval, float id, int8_t *L) {
    for (int i = 0; i < t->dim; i++) {
        const int l = rne(0.5f * (id * xval[i] - 1));
        L[i] = (int8_t)(l < 0 ? 0 : l > t->nlev - 1 ? t->nlev - 1 : l);
    }
    return iq_code(t, L);
}

/* sum(w x q) and sum(w q^2) at levels L (q = 2l+1) */
static void qsums(int n, const float *w, const float *xval, const int8_t *L, float *sqx, float *sq2) {
    float a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        const float q = (float)(2 * L[i] + 1);
        a += w[i] * xval[i] * q;
        b += w[i] * q * q;
    }
    *sqx = a;
    *sq2 = b;
}

float llm_iq_fit_group(const iq_tables *t, const iq_search *s, int npts, const float *xval, const float *w,
                       const float *waux, float max, float scale0, int8_t *L, int *gi) {
    const int n = npts * t->dim;
    int8_t Laux[32];
    int on[8], on_aux[8];
    float best = 0, scale = scale0, sqx, sq2;
    memset(L, 0, (size_t)n);
    for (int k = 0; k < npts; k++) on[k] = s->ongrid0;
    for (int is = -s->half; is <= s->half; is++) {
        const float id = (s->qmax + is * s->step) / max, this_scale = 1 / id;
        for (int k = 0; k < npts; k++) {
            const int c = point_levels(t, xval + t->dim * k, id, Laux + t->dim * k);
            on_aux[k] = t->map[c] >= 0;
            if (!on_aux[k])
                llm_iq_best_neighbour(t, c, xval + t->dim * k, waux + t->dim * k, this_scale, Laux + t->dim * k);
        }
        qsums(n, w, xval, Laux, &sqx, &sq2);
        if (sq2 > 0 && sqx * sqx > best * sq2) {
            scale = sqx / sq2;
            best = scale * sqx;
            memcpy(L, Laux, (size_t)n);
            memcpy(on, on_aux, sizeof on);
        }
    }
    int off = 0;
    for (int k = 0; k < npts; k++) off += !on[k];
    if ((off > 0 || s->refit == REFIT_ALWAYS) && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < npts; k++) {
            if (on[k] && s->refit == REFIT_OFF) continue;
            const int c = point_levels(t, xval + t->dim * k, id, L + t->dim * k);
            if (t->map[c] < 0) llm_iq_best_neighbour(t, c, xval + t->dim * k, waux + t->dim * k, scale, L + t->dim * k);
        }
        qsums(n, w, xval, L, &sqx, &sq2);
        if (sq2 > 0) scale = sqx / sq2;
    }
    for (int k = 0; k < npts; k++) gi[k] = t->map[iq_code(t, L + t->dim * k)];
    return scale;
}

int llm_iq_fit_signed(const iq_tables *t, const iq_search *s, int npts, const float *xb, const float *w,
                      const float *waux, int even, float eps, uint8_t *bs, int *gi, float *scale) {
    const int n = npts * t->dim;
    float xval[32] = {0};   /* n of them set below (the compiler cannot see it) */
    int8_t L[32];
    for (int k = 0; k < n / 8; k++) bs[k] = llm_iq_signs8(xb + 8 * k, w + 8 * k, xval + 8 * k, even);
    const float max = iq_max(xval, n);
    *scale = 0;
    if (max < eps || !max) return 0;
    float d = llm_iq_fit_group(t, s, npts, xval, w, waux, max, max / s->qmax, L, gi);
    if (d < 0) {   /* never expected; kept as the reference has it */
        d = -d;
        for (int k = 0; k < n / 8; k++) bs[k] = (uint8_t)(~bs[k] & (even ? 127 : 255));
    }
    *scale = d;
    return 1;
}

void llm_iq_imatrix_weights(const float *xb, int n, const float *qw, float sigma2, float *w, float *waux) {
    for (int i = 0; i < n; i++) w[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
    for (int i = 0; i < n; i++) waux[i] = sqrtf(w[i]);
}

float llm_iq_sumx2(const float *x) {
    float s = 0;
    for (int i = 0; i < QKK; i++) s += x[i] * x[i];
    return s;
}

uint8_t llm_iq_signs8(const float *xb, const float *w, float *xval, int even) {
    int nflip = 0;
    uint8_t s = 0;
    for (int i = 0; i < 8; i++) {
        if (xb[i] >= 0) xval[i] = xb[i];
        else { xval[i] = -xb[i]; nflip++; s |= (uint8_t)(1u << i); }
    }
    if (!even) return s;
    if (nflip % 2) {
        int imin = 0;
        float mn = w[0] * xb[0] * xb[0];
        for (int i = 1; i < 8; i++) {
            const float a = w[i] * xb[i] * xb[i];
            if (a < mn) { mn = a; imin = i; }
        }
        xval[imin] = -xval[imin];
        s ^= (uint8_t)(1u << imin);
    }
    return s & 127;
}

int llm_iq_scale_code(float id, float s) {
    const int l = rne(0.5f * (id * s - 1));
    return l < 0 ? 0 : l > 15 ? 15 : l;
}
