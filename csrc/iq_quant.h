/* What the grid i-quants' quantizers share (quant_iq_common.c), for quant_iq1.c,
 * quant_iq2.c and quant_iq3.c only.
 *
 * A grid point is dim (4 or 8) levels l (a rank among the grid's distinct values,
 * 2l+1 in the search's units); its code packs them, bits each (3 or 2). A code
 * off the grid is replaced by the best of its neighbours: the grid points at the
 * nwant smallest squared distances from it, in the order (distance, index), as
 * llama.cpp's iq2xs_init_impl / iq3xs_init_impl list them. */
#ifndef LLM_IQ_QUANT_H
#define LLM_IQ_QUANT_H
#include "quant_common.h"   /* rne, EPS_ZERO, llm_fit_scale_pos */

typedef struct {
    int size, dim, bits, nlev;   /* grid points, levels per point, bits per level, distinct levels */
    uint8_t *lv;                 /* size x dim levels */
    int *map;                    /* code -> grid index, or -(offset + 1) into nb; -1: never asked */
    uint16_t *nb;                /* per off-grid code: count, then grid indices */
} iq_tables;

/* the tables of a grid type (T_IQ3_XXS, T_IQ3_S, T_IQ2_XXS, T_IQ2_XS, T_IQ2_S,
 * T_IQ1_S / T_IQ1_M share one), built on first use, once per process */
const iq_tables *llm_iq_tables(int type);


static inline int iq_code(const iq_tables *t, const int8_t *L) {
    int c = 0;
    for (int i = 0; i < t->dim; i++) c |= L[i] << t->bits * i;
    return c;
}

/* the largest of n magnitudes (the reference's MAX chain) */
static inline float iq_max(const float *v, int n) {
    float m = v[0];
    for (int i = 1; i < n; i++) m = m > v[i] ? m : v[i];
    return m;
}

/* the neighbour of an off-grid code nearest xval at scale by sum w (scale q - x)^2
 * (the first of equals); its levels into L, its index returned */
int llm_iq_best_neighbour(const iq_tables *t, int code, const float *xval, const float *w, float scale, int8_t *L);

enum { REFIT_OFF, REFIT_ALL, REFIT_ALWAYS };

/* how a group's scale is searched (the reference's constants per type) */
typedef struct {
    int qmax;         /* 2 kMaxQ - 1: 15 (IQ3), 5 (IQ2) */
    int half;         /* trial scales is = -half..half */
    float step;       /* (qmax + is step) / max */
    int ongrid0;      /* what a point counts as before any trial is taken */
    int refit;        /* the final pass, when the scale is > 0: REFIT_OFF codes again the points
                       * off the grid, REFIT_ALL every point, both only when one is off the
                       * grid; REFIT_ALWAYS every point in any case */
} iq_search;

/* One group of npts points (npts * dim magnitudes xval, max their largest > 0,
 * scale0 the scale kept when no trial wins): the best trial scale by
 * sum(w x q)^2 / sum(w q^2), each code snapped onto the grid, then the final pass
 * and refit. Levels into L (npts * dim), grid indices into gi; returns the scale. */
float llm_iq_fit_group(const iq_tables *t, const iq_search *s, int npts, const float *xval, const float *w,
                       const float *waux, float max, float scale0, int8_t *L, int *gi);

/* A group of npts points from its values xb: signs (one byte per 8, 7 bits with
 * even, see llm_iq_signs8) into bs, then, unless its largest magnitude is below
 * eps (or 0), the fit of llm_iq_fit_group from max / qmax, a negative scale made
 * positive with the signs flipped. Grid indices into gi, the scale into *scale;
 * returns 0 for a group left empty. */
int llm_iq_fit_signed(const iq_tables *t, const iq_search *s, int npts, const float *xb, const float *w,
                      const float *waux, int even, float eps, uint8_t *bs, int *gi, float *scale);

/* w = qw sqrt(sigma2 + x^2) for n values, waux = sqrt(w) */
void llm_iq_imatrix_weights(const float *xb, int n, const float *qw, float sigma2, float *w, float *waux);
/* sum of x^2 over a super-block of 256 */
float llm_iq_sumx2(const float *x);
/* |x| of 8 values into xval, their sign bits returned; with even set, an odd
 * count of minus signs is made even by flipping the element of least w x^2
 * (its xval then negative) and only 7 bits are kept */
uint8_t llm_iq_signs8(const float *xb, const float *w, float *xval, int even);
/* the 4-bit scale code of a group scale: nearest(0.5 (s id - 1)) in 0..15 */
int llm_iq_scale_code(float id, float s);

#endif
