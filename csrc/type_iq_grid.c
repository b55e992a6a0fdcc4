/* The grid i-quants: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M (256-element
 * super-blocks; ggml's layouts in internal.h, the grids in iq_grids.h, generated).
 *
 * Every element is a grid byte (a magnitude; IQ1's grid is -1, 0, 1) with a sign, in
 * groups of 8 elements that share an integer scale 2·ls+1 (ls: 3 or 4 bits per 16 or
 * 32 elements). Each type's decoder unpacks a super-block into that common form
 * (iq_dec); the dequantizer and the dot products then work on it alone.
 *
 * Dequantization: ggml's float steps per type (dequantize_row_iq*), see iq_value.
 *
 * vec_dot against Q8_K, in the order of llama.cpp's x86 (AVX2) kernels, which are
 * also its batch path (these types have no repacked gemm and no tinyBLAS kernel):
 * per super-block, 8 exact int32 lanes, lane l = Σ scale · mag · (±q8) over the
 * elements 4l..4l+3 of every 32 (maddubs then madd by the scales), then
 * acc[l] = fmaf(d, (float)lane, acc[l]) with d = f16(x.d) · y.d rounded once; at the
 * end hsum8 times the type's factor (IQ2: 1/8, IQ3_XXS: 1/4, IQ3_S: 1). The sign
 * is put on q8 as an int8 negation, so q8 = -128 stays -128 (as _mm256_sign_epi8).
 * IQ1_S adds d · Σ ls·(±bsums) as a scalar fmaf chain, times 1/8 at the end; IQ1_M
 * a second set of 8 lanes (the ±1/8 deltas' sums), hsum8'd and times 1/8.
 * The AVX2 and AVX-512 kernels compute the same integers and float steps. */
#include "internal.h"
#include <math.h>
#include "iq_grids.h"

_Static_assert(sizeof(block_iq2_xxs) == 66, "iq2_xxs");
_Static_assert(sizeof(block_iq2_xs) == 74, "iq2_xs");
_Static_assert(sizeof(block_iq2_s) == 82, "iq2_s");
_Static_assert(sizeof(block_iq3_xxs) == 98, "iq3_xxs");
_Static_assert(sizeof(block_iq3_s) == 110, "iq3_s");
_Static_assert(sizeof(block_iq1_s) == 50, "iq1_s");
_Static_assert(sizeof(block_iq1_m) == 56, "iq1_m");

#define IQ1_DELTA 0.125f   /* IQ1S_DELTA = IQ1M_DELTA */

/* one super-block in the common form */
typedef struct {
    uint8_t mag[QKK];      /* |grid value| of each element */
    uint8_t neg[QKK];      /* 1: its sign is minus */
    uint8_t ls[QKK / 8];   /* the scale code of each group of 8 (integer scale 2·ls+1) */
    uint8_t dneg[QKK / 8]; /* IQ1: 1 where the group's delta is -1/8 */
} iq_dec;

static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* group g (8 elements) from a grid row of 8 unsigned bytes and 8 sign bits */
static inline void put8(iq_dec *o, int g, uint64_t row, unsigned signs, int ls) {
    for (int j = 0; j < 8; j++) {
        o->mag[8 * g + j] = (uint8_t)(row >> (8 * j));
        o->neg[8 * g + j] = (signs >> j) & 1;
    }
    o->ls[g] = (uint8_t)ls;
}

/* the same from two rows of 4 (the IQ3 grids) */
static inline void put4x2(iq_dec *o, int g, uint32_t lo, uint32_t hi, unsigned signs, int ls) {
    put8(o, g, (uint64_t)lo | (uint64_t)hi << 32, signs, ls);
}

/* an IQ1 group: grid bytes are -1, 0, 1 (signed) */
static inline void put_iq1(iq_dec *o, int g, uint64_t row, int ls, int dneg) {
    for (int j = 0; j < 8; j++) {
        const int8_t v = (int8_t)(row >> (8 * j));
        o->mag[8 * g + j] = (uint8_t)(v < 0 ? -v : v);
        o->neg[8 * g + j] = v < 0;
    }
    o->ls[g] = (uint8_t)ls;
    o->dneg[g] = (uint8_t)dneg;
}

/* ---- decoders: fill o, return the block's fp16 scale as float ---- */

/* per 32 elements two u32: 4 grid indices (bytes); 4 × 7 sign bits (ksigns) and ls in the top 4 */
static float dec_iq2_xxs(const uint8_t *b, iq_dec *o) {
    const block_iq2_xxs *x = (const void *)b;
    const uint8_t *qs = (const uint8_t *)x->qs;
    for (int ib = 0; ib < 8; ib++) {
        const uint32_t idx = rd32(qs + 8 * ib), sg = rd32(qs + 8 * ib + 4);
        for (int l = 0; l < 4; l++)
            put8(o, 4 * ib + l, llm_iq2xxs_grid[(idx >> 8 * l) & 255], llm_ksigns_iq2xs[(sg >> 7 * l) & 127], sg >> 28);
    }
    return FP16_TO_F32(x->d);
}

/* per group a u16: 9-bit grid index, 7 sign bits; a 4-bit scale per 16 elements */
static float dec_iq2_xs(const uint8_t *b, iq_dec *o) {
    const block_iq2_xs *x = (const void *)b;
    for (int g = 0; g < 32; g++) {
        const uint16_t q = rd16((const uint8_t *)x->qs + 2 * g);
        const int ls = (x->scales[g / 4] >> (4 * ((g % 4) / 2))) & 15;
        put8(o, g, llm_iq2xs_grid[q & 511], llm_ksigns_iq2xs[q >> 9], ls);
    }
    return FP16_TO_F32(x->d);
}

/* per group an index byte plus 2 bits of qh, a sign byte (qs + 32); scales as IQ2_XS */
static float dec_iq2_s(const uint8_t *b, iq_dec *o) {
    const block_iq2_s *x = (const void *)b;
    for (int g = 0; g < 32; g++) {
        const int ib = g / 4, l = g % 4;
        const int idx = x->qs[g] | ((x->qh[ib] << (8 - 2 * l)) & 0x300);
        const int ls = (x->scales[ib] >> (4 * (l / 2))) & 15;
        put8(o, g, llm_iq2s_grid[idx], x->qs[32 + g], ls);
    }
    return FP16_TO_F32(x->d);
}

/* 64 index bytes (4 elements each), then per 32 elements a u32 as IQ2_XXS's second */
static float dec_iq3_xxs(const uint8_t *b, iq_dec *o) {
    const block_iq3_xxs *x = (const void *)b;
    const uint8_t *qs = x->qs;
    for (int ib = 0; ib < 8; ib++) {
        const uint32_t sg = rd32(qs + 64 + 4 * ib);
        for (int l = 0; l < 4; l++)
            put4x2(o, 4 * ib + l, llm_iq3xxs_grid[qs[8 * ib + 2 * l]], llm_iq3xxs_grid[qs[8 * ib + 2 * l + 1]],
                   llm_ksigns_iq2xs[(sg >> 7 * l) & 127], sg >> 28);
    }
    return FP16_TO_F32(x->d);
}

/* 64 index bytes plus a ninth bit each (qh), a sign byte per group, a nibble scale per 32 */
static float dec_iq3_s(const uint8_t *b, iq_dec *o) {
    const block_iq3_s *x = (const void *)b;
    for (int g = 0; g < 32; g++) {
        const int ib = g / 4, l = g % 4, h = x->qh[ib];
        const int i0 = x->qs[2 * g] | ((h << (8 - 2 * l)) & 256), i1 = x->qs[2 * g + 1] | ((h << (7 - 2 * l)) & 256);
        const int ls = (x->scales[ib / 2] >> (4 * (ib % 2))) & 15;
        put4x2(o, g, llm_iq3s_grid[i0], llm_iq3s_grid[i1], x->signs[g], ls);
    }
    return FP16_TO_F32(x->d);
}

/* per 32 elements a u16: 3 high index bits per group, ls (bits 12-14), the delta's sign (15) */
static float dec_iq1_s(const uint8_t *b, iq_dec *o) {
    const block_iq1_s *x = (const void *)b;
    for (int ib = 0; ib < 8; ib++) {
        const uint16_t h = rd16((const uint8_t *)x->qh + 2 * ib);
        for (int l = 0; l < 4; l++)
            put_iq1(o, 4 * ib + l, llm_iq1s_grid[x->qs[4 * ib + l] | (((h >> 3 * l) & 7) << 8)], (h >> 12) & 7, h >> 15);
    }
    return FP16_TO_F32(x->d);
}

/* the fp16 scale in the top nibbles of the four scale words */
static inline f16_t iq1_m_scale(const uint16_t sc[4]) {
    return (f16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}

/* per group a nibble of qh: 3 high index bits and the delta's sign; 3-bit scales per 16 */
static float dec_iq1_m(const uint8_t *b, iq_dec *o) {
    const block_iq1_m *x = (const void *)b;
    uint16_t sc[4];
    memcpy(sc, x->scales, 8);
    for (int g = 0; g < 32; g++) {
        const int ib = g / 4, nib = (x->qh[g / 2] >> (4 * (g % 2))) & 15;
        const int ls = (sc[ib / 2] >> (6 * (ib % 2) + 3 * ((g % 4) / 2))) & 7;
        put_iq1(o, g, llm_iq1s_grid[x->qs[g] | ((nib & 7) << 8)], ls, nib >> 3);
    }
    return FP16_TO_F32(iq1_m_scale(sc));
}

/* how a type's dequantized values are formed from d, ls and the element (ggml's steps) */
enum { DQ_QUARTER, DQ_HALF, DQ_ODD, DQ_DELTA };

typedef struct {
    float (*decode)(const uint8_t *b, iq_dec *o);
    int bytes, form;
    float tail;   /* the dot product's final factor */
} iq_type;

static const iq_type *iq_type_of(int type) {
    static const iq_type types[] = {
        {dec_iq2_xxs, 66, DQ_QUARTER, 0.125f}, {dec_iq2_xs, 74, DQ_QUARTER, 0.125f},
        {dec_iq2_s, 82, DQ_QUARTER, 0.125f},   {dec_iq3_xxs, 98, DQ_HALF, 0.25f},
        {dec_iq3_s, 110, DQ_ODD, 1.f},          {dec_iq1_s, 50, DQ_DELTA, 1.f},
        {dec_iq1_m, 56, DQ_DELTA, 1.f},
    };
    switch (type) {
    case T_IQ2_XXS: return &types[0];
    case T_IQ2_XS:  return &types[1];
    case T_IQ2_S:   return &types[2];
    case T_IQ3_XXS: return &types[3];
    case T_IQ3_S:   return &types[4];
    case T_IQ1_S:   return &types[5];
    case T_IQ1_M:   return &types[6];
    default:        return NULL;
    }
}

/* ---- dequantization ---- */

/* the group's float scale: ggml's d·(0.5+ls)·0.25 (IQ2), d·(0.5+ls)·0.5 (IQ3_XXS),
 * d·(1+2ls) (IQ3_S, IQ1), each product rounded in that order */
static inline float group_scale(int form, float d, int ls) {
    switch (form) {
    case DQ_QUARTER: return d * (0.5f + (float)ls) * 0.25f;
    case DQ_HALF:    return d * (0.5f + (float)ls) * 0.5f;
    default:         return d * (float)(2 * ls + 1);
    }
}

static void dequant_block(const iq_type *t, const uint8_t *b, float *y) {
    iq_dec o;
    const float d = t->decode(b, &o);
    for (int g = 0; g < 32; g++) {
        const float db = group_scale(t->form, d, o.ls[g]);
        for (int j = 8 * g; j < 8 * g + 8; j++) {
            if (t->form == DQ_DELTA) {   /* dl · (grid + delta) */
                const float v = (float)(o.neg[j] ? -(int)o.mag[j] : (int)o.mag[j]);
                y[j] = db * (v + (o.dneg[g] ? -IQ1_DELTA : IQ1_DELTA));
            } else {                     /* db · grid, times ±1 (a NaN keeps its sign, as in ggml) */
                y[j] = db * (float)o.mag[j] * (o.neg[j] ? -1.f : 1.f);
            }
        }
    }
}

int llm_iq_grid_dequantize(int type, const uint8_t *src, float *dst, long long nb) {
    const iq_type *t = iq_type_of(type);
    if (!t) return -1;
    for (long long i = 0; i < nb; i++) dequant_block(t, src + i * t->bytes, dst + i * QKK);
    return 0;
}

int llm_iq_grid_type(int type) { return iq_type_of(type) != NULL; }

/* ---- scalar vec_dot ---- */

/* v negated as int8 (-128 stays -128), as _mm256_sign_epi8 does */
static inline int32_t signed_q8(int8_t v, int neg) { return neg ? (int8_t)(uint8_t)(0u - (uint8_t)v) : v; }

/* lane l = Σ over the elements 4l..4l+3 of every 32 of (2·ls+1)·mag·(±q8) */
static void grid_lanes(const iq_dec *o, const int8_t *q8, int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) lanes[l] = 0;
    for (int e = 0; e < QKK; e++)
        lanes[(e % 32) / 4] += (2 * o->ls[e / 8] + 1) * o->mag[e] * signed_q8(q8[e], o->neg[e]);
}

/* IQ1_M's delta lanes: Σ (2·ls+1)·(±q8), the group's delta sign on q8 */
static void delta_lanes(const iq_dec *o, const int8_t *q8, int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) lanes[l] = 0;
    for (int e = 0; e < QKK; e++) lanes[(e % 32) / 4] += (2 * o->ls[e / 8] + 1) * signed_q8(q8[e], o->dneg[e / 8]);
}

/* IQ1_S's delta term: Σ over 32-element groups of (2·ls+1)·(±(bsums of its two 16s)) */
static int32_t delta_bsums(const iq_dec *o, const int16_t *bsums) {
    int32_t s = 0;
    for (int ib = 0; ib < 8; ib++) {
        const int32_t b = bsums[2 * ib] + bsums[2 * ib + 1], ls = 2 * o->ls[4 * ib] + 1;
        s += (o->dneg[4 * ib] ? -b : b) * ls;
    }
    return s;
}

static inline void fma8(float acc[8], float d, const int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lanes[l], acc[l]);
}

/* llama.cpp's hsum_float_8: high half + low half, + movehl, + movehdup */
static inline float hsum8(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    return (r0 + r2) + (r1 + r3);
}

static void dot_grid(int type, long long n, float *s, const void *w, const void *a) {
    const iq_type *t = iq_type_of(type);
    const uint8_t *x = w;
    const block_q8_K *y = a;
    float acc[8] = {0}, acc2[8] = {0}, acc1 = 0.f;
    for (long long i = 0; i < n / QKK; i++) {
        iq_dec o;
        int32_t lanes[8];
        const float d = t->decode(x + i * t->bytes, &o) * y[i].d;
        grid_lanes(&o, y[i].qs, lanes);
        fma8(acc, d, lanes);
        if (type == T_IQ1_S) acc1 = fmaf(d, (float)delta_bsums(&o, y[i].bsums), acc1);
        if (type == T_IQ1_M) {
            delta_lanes(&o, y[i].qs, lanes);
            fma8(acc2, d, lanes);
        }
    }
    const float h = hsum8(acc);
    if (type == T_IQ1_S) { const float dt = IQ1_DELTA * acc1; *s = h + dt; }
    else if (type == T_IQ1_M) { const float dt = IQ1_DELTA * hsum8(acc2); *s = h + dt; }
    else *s = t->tail == 1.f ? h : t->tail * h;
}

#define SCALAR_DOT(name, T) \
    static void name(long long n, float *s, const void *w, const void *a) { dot_grid(T, n, s, w, a); }
SCALAR_DOT(dot_iq2_xxs, T_IQ2_XXS)
SCALAR_DOT(dot_iq2_xs, T_IQ2_XS)
SCALAR_DOT(dot_iq2_s, T_IQ2_S)
SCALAR_DOT(dot_iq3_xxs, T_IQ3_XXS)
SCALAR_DOT(dot_iq3_s, T_IQ3_S)
SCALAR_DOT(dot_iq1_s, T_IQ1_S)
SCALAR_DOT(dot_iq1_m, T_IQ1_M)

static void fill_scalar(llm_kernel_table *t) {
    t->vec_dot[T_IQ2_XXS] = dot_iq2_xxs;
    t->vec_dot[T_IQ2_XS] = dot_iq2_xs;
    t->vec_dot[T_IQ2_S] = dot_iq2_s;
    t->vec_dot[T_IQ3_XXS] = dot_iq3_xxs;
    t->vec_dot[T_IQ3_S] = dot_iq3_s;
    t->vec_dot[T_IQ1_S] = dot_iq1_s;
    t->vec_dot[T_IQ1_M] = dot_iq1_m;
}

void llm_kernels_iq_grid(llm_kernel_table *t, int isa) {
    (void)isa;
    fill_scalar(t);
}
