/* The grid i-quants: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M (256-element
 * super-blocks; ggml's layouts in internal.h, the grids in iq_grids.h, generated).
 *
 * Every element is a grid byte (a magnitude; IQ1's grid is -1, 0, 1) with a sign, in
 * groups of 8 elements that share an integer scale 2·ls+1 (ls: 3 or 4 bits per 16 or
 * 32 elements). Each type's decoder unpacks a super-block into that common form
 * (iq_dec); the dequantizer and the dot products then work on it alone.
 *
 * Dequantization: ggml's float steps per type (dequantize_row_iq*), see group_scale
 * and dequant_block.
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
        const int8_t v = (int8_t)(row >> (8 * j));   /* -1, 0 or 1 */
        o->mag[8 * g + j] = (uint8_t)(v & 1);
        o->neg[8 * g + j] = (uint8_t)((uint8_t)v >> 7);
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

/* v negated as int8 where neg is 1 (-128 stays -128), as _mm256_sign_epi8 does;
 * without a branch (the signs are random) */
static inline int32_t signed_q8(int8_t v, int neg) {
    const uint8_t m = (uint8_t)(0u - (unsigned)neg);
    return (int8_t)(uint8_t)(((uint8_t)v ^ m) - m);
}

/* lane l = Σ over the elements 4l..4l+3 of every 32 of (2·ls+1)·mag·(±q8); group g
 * (8 elements) feeds lanes 2·(g%4) and 2·(g%4)+1 */
static void grid_lanes(const iq_dec *o, const int8_t *q8, int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) lanes[l] = 0;
    for (int g = 0; g < 32; g++) {
        int32_t half[2] = {0, 0};
        for (int j = 0; j < 8; j++) half[j / 4] += o->mag[8 * g + j] * signed_q8(q8[8 * g + j], o->neg[8 * g + j]);
        lanes[2 * (g % 4)] += (2 * o->ls[g] + 1) * half[0];
        lanes[2 * (g % 4) + 1] += (2 * o->ls[g] + 1) * half[1];
    }
}

/* IQ1_M's delta lanes: Σ (2·ls+1)·(±q8), the group's delta sign on q8 */
static void delta_lanes(const iq_dec *o, const int8_t *q8, int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) lanes[l] = 0;
    for (int g = 0; g < 32; g++) {
        int32_t half[2] = {0, 0};
        for (int j = 0; j < 8; j++) half[j / 4] += signed_q8(q8[8 * g + j], o->dneg[g]);
        lanes[2 * (g % 4)] += (2 * o->ls[g] + 1) * half[0];
        lanes[2 * (g % 4) + 1] += (2 * o->ls[g] + 1) * half[1];
    }
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
static inline float hsum8_lanes(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    return (r0 + r2) + (r1 + r3);
}

/* the end of every kernel: the lanes' hsum h times the type's factor (1 for IQ3_S:
 * exact), plus for IQ1 its delta sum times 1/8 (a product then a sum, as ggml) */
static inline float grid_finish(int type, float tail, float h, float delta) {
    if (type == T_IQ1_S || type == T_IQ1_M) {
        const float dt = IQ1_DELTA * delta;
        return h + dt;
    }
    return tail * h;
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
    *s = grid_finish(type, t->tail, hsum8_lanes(acc), type == T_IQ1_M ? hsum8_lanes(acc2) : acc1);
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

/* ---- AVX2 (and, built again below, AVX-512) ----
 * Per 32 elements: the grid bytes gathered from the tables (4 rows of 8 or 8 of 4),
 * the signs as ±1 bytes put on q8 (_mm256_sign_epi8), maddubs, then madd by the
 * 16-bit scales (one per 128-bit half: 16 elements): the scalar kernel's lanes.
 * vec_dot_nc decodes each chunk once for up to 4 columns (prefill: 2-2.5x faster per
 * column than vec_dot, llama.cpp's batch path for these types); every column's
 * integers and float steps are vec_dot's. */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
#include "x86_steps.h"   /* h2f, hsum8 */

#define AVX2_BODY static inline __attribute__((always_inline))

/* lanes += madd(maddubs(grid, ±q8), scales) */
AVX2_BODY __m256i grid_step(__m256i lanes, __m256i grid, __m256i q8, __m256i sign, __m256i sc) {
    const __m256i p = _mm256_maddubs_epi16(grid, _mm256_sign_epi8(q8, sign));
    return _mm256_add_epi32(lanes, _mm256_madd_epi16(p, sc));
}

/* A super-block's 16 scales 2·ls+1 (one per 16 elements) as bytes, both 128-bit
 * halves; scales16(v, ib) picks chunk ib's two as 16-bit words: the first for its
 * low 128-bit half (elements 0..15), the second for the high half. */
AVX2_BODY __m256i scale_bytes(__m128i ls) {
    const __m128i b = _mm_add_epi8(_mm_add_epi8(ls, ls), _mm_set1_epi8(1));
    return _mm256_broadcastsi128_si256(b);
}
AVX2_BODY __m256i scales16(__m256i bytes, int ib) {
    /* byte 2ib (2ib+1) zero-extended: index bytes (2ib, 0x80) repeated (0x80 gives 0) */
    const __m256i base = _mm256_setr_epi64x(0x8000800080008000LL, 0x8000800080008000LL,
                                            0x8001800180018001LL, 0x8001800180018001LL);
    return _mm256_shuffle_epi8(bytes, _mm256_add_epi16(base, _mm256_set1_epi16((short)(2 * ib))));
}

/* IQ2_XS / IQ2_S: per 32 elements a byte, the low nibble for its first 16 */
AVX2_BODY __m256i nibble_scales(const uint8_t sc[8]) {
    const __m128i v = _mm_loadl_epi64((const __m128i *)sc), m = _mm_set1_epi8(15);
    return scale_bytes(_mm_unpacklo_epi8(_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m)));
}

/* IQ3_XXS / IQ3_S: one scale per 32 elements, the same in both halves */
AVX2_BODY __m256i scale32(int ls) { return _mm256_set1_epi16((short)(2 * ls + 1)); }

/* 4 bytes of 8 sign bits each (bit j: element j of the byte's group) as ±1 bytes */
AVX2_BODY __m256i sign_bytes(uint32_t bits) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread), bit);
    return _mm256_or_si256(_mm256_cmpeq_epi8(b, bit), _mm256_set1_epi8(1));
}

AVX2_BODY long long ks64(uint32_t i) { return (long long)llm_ksigns64_iq2xs[i]; }

/* 4 ksigns entries (7-bit fields of v from bit 0) as ±1 bytes */
AVX2_BODY __m256i ksign_bytes(uint32_t v) {
    return _mm256_set_epi64x(ks64((v >> 21) & 127), ks64((v >> 14) & 127), ks64((v >> 7) & 127), ks64(v & 127));
}

AVX2_BODY __m256i rows8(const uint64_t *g, int i0, int i1, int i2, int i3) {
    return _mm256_set_epi64x((long long)g[i3], (long long)g[i2], (long long)g[i1], (long long)g[i0]);
}

AVX2_BODY __m256i rows4(const uint32_t *g, const uint16_t *i) {
    return _mm256_set_epi32((int)g[i[7]], (int)g[i[6]], (int)g[i[5]], (int)g[i[4]],
                            (int)g[i[3]], (int)g[i[2]], (int)g[i[1]], (int)g[i[0]]);
}

/* a block's fma into 8 float lanes with d = f16(x.d)·y.d */
AVX2_BODY __m256 fma_block(__m256 acc, float d, __m256i lanes) {
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
}

/* IQ3_S's 64 grid indices at once: index j's ninth bit is bit j of the 8 qh bytes
 * (little-endian), spread to a byte of 0/1 and interleaved (as the high byte) with qs */
AVX2_BODY void iq3_s_indices(const block_iq3_s *x, uint16_t idx[64]) {
    const __m128i spread = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m128i bit = _mm_set1_epi64x((long long)0x8040201008040201ULL), one = _mm_set1_epi8(1);
    for (int k = 0; k < 4; k++) {
        const __m128i b = _mm_and_si128(_mm_shuffle_epi8(_mm_set1_epi16((short)rd16(x->qh + 2 * k)), spread), bit);
        const __m128i hb = _mm_and_si128(_mm_cmpeq_epi8(b, bit), one);
        const __m128i q = _mm_loadu_si128((const __m128i *)(x->qs + 16 * k));
        _mm_storeu_si128((__m128i *)(idx + 16 * k), _mm_unpacklo_epi8(q, hb));
        _mm_storeu_si128((__m128i *)(idx + 16 * k + 8), _mm_unpackhi_epi8(q, hb));
    }
}

/* IQ1_S's 32 grid indices at once: group 4ib+l's high 3 bits are bits 3l..3l+2 of
 * qh[ib]; each word repeated 4 times, multiplied to put field l at bits 9..11 */
AVX2_BODY void iq1_s_indices(const block_iq1_s *x, uint16_t idx[32]) {
    const __m128i h = _mm_loadu_si128((const __m128i *)x->qh);
    const __m128i mul = _mm_setr_epi16(512, 64, 8, 1, 512, 64, 8, 1), seven = _mm_set1_epi16(7);
    for (int k = 0; k < 4; k++) {   /* words 2k, 2k+1: groups 8k..8k+7 */
        const char a = (char)(4 * k), b = (char)(4 * k + 2);
        const __m128i rep = _mm_shuffle_epi8(h, _mm_setr_epi8(a, a + 1, a, a + 1, a, a + 1, a, a + 1,
                                                              b, b + 1, b, b + 1, b, b + 1, b, b + 1));
        const __m128i f = _mm_and_si128(_mm_srli_epi16(_mm_mullo_epi16(rep, mul), 9), seven);
        const __m128i q = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(x->qs + 8 * k)));
        _mm_storeu_si128((__m128i *)(idx + 8 * k), _mm_or_si128(q, _mm_slli_epi16(f, 8)));
    }
}

/* IQ1_S: Σ over 32-element groups of (2·ls+1)·(±(its two bsums)): the words' ±(2·ls+1),
 * each twice, madd'ed with the 16 bsums, then summed (exact integers) */
AVX2_BODY int32_t iq1_s_delta(const block_iq1_s *x, const block_q8_K *y) {
    const __m128i h = _mm_loadu_si128((const __m128i *)x->qh);
    const __m128i sc = _mm_add_epi16(_mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(h, 12), _mm_set1_epi16(7)), 1),
                                     _mm_set1_epi16(1));
    const __m128i neg = _mm_srai_epi16(h, 15);                       /* -1 where bit 15 is set */
    const __m128i w = _mm_sub_epi16(_mm_xor_si128(sc, neg), neg);
    const __m128i b0 = _mm_loadu_si128((const __m128i *)y->bsums), b1 = _mm_loadu_si128((const __m128i *)(y->bsums + 8));
    __m128i s = _mm_add_epi32(_mm_madd_epi16(b0, _mm_unpacklo_epi16(w, w)), _mm_madd_epi16(b1, _mm_unpackhi_epi16(w, w)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* IQ1_M: the 32 groups' delta signs as bytes (0x80: negative), in group order: group
 * 2i's is bit 3 of qh[i], group 2i+1's bit 7 */
AVX2_BODY void iq1_m_delta_flags(const block_iq1_m *x, uint8_t flags[32]) {
    const __m128i h = _mm_loadu_si128((const __m128i *)x->qh), top = _mm_set1_epi8((char)0x80);
    const __m128i even = _mm_and_si128(_mm_slli_epi16(h, 4), top), odd = _mm_and_si128(h, top);
    _mm_storeu_si128((__m128i *)flags, _mm_unpacklo_epi8(even, odd));
    _mm_storeu_si128((__m128i *)(flags + 16), _mm_unpackhi_epi8(even, odd));
}

/* chunk ib's delta signs as ±1 bytes: each flag byte sign-extended over its group's 8
 * bytes (0x80 -> 0x80 then 0xff: negative), or'ed with +1 */
AVX2_BODY __m256i delta_signs(const uint8_t flags[32], int ib) {
    const __m256i f = _mm256_cvtepi8_epi64(_mm_cvtsi32_si128((int)rd32(flags + 4 * ib)));
    return _mm256_or_si256(f, _mm256_set1_epi8(1));
}

/* IQ1_M's 16 3-bit scale codes: 4 per 16-bit word from bit 0 (its top nibble is d's) */
AVX2_BODY __m256i iq1_m_scales(const uint16_t sc[4]) {
    uint8_t ls[16];
    for (int k = 0; k < 16; k++) ls[k] = (sc[k / 4] >> (3 * (k % 4))) & 7;
    return scale_bytes(_mm_loadu_si128((const __m128i *)ls));
}

/* IQ1_M's 32 grid indices at once: group g's is qs[g] | (its qh nibble & 7) << 8, the
 * nibbles in group order interleaved (as the high bytes) with the qs bytes */
AVX2_BODY void iq1_m_indices(const block_iq1_m *x, uint16_t idx[32]) {
    const __m128i h = _mm_loadu_si128((const __m128i *)x->qh), m = _mm_set1_epi8(7);
    const __m128i lo = _mm_and_si128(h, m), hi = _mm_and_si128(_mm_srli_epi16(h, 4), m);
    const __m128i na = _mm_unpacklo_epi8(lo, hi), nb = _mm_unpackhi_epi8(lo, hi);
    const __m128i q0 = _mm_loadu_si128((const __m128i *)x->qs), q1 = _mm_loadu_si128((const __m128i *)(x->qs + 16));
    _mm_storeu_si128((__m128i *)idx, _mm_unpacklo_epi8(q0, na));
    _mm_storeu_si128((__m128i *)(idx + 8), _mm_unpackhi_epi8(q0, na));
    _mm_storeu_si128((__m128i *)(idx + 16), _mm_unpacklo_epi8(q1, nb));
    _mm_storeu_si128((__m128i *)(idx + 24), _mm_unpackhi_epi8(q1, nb));
}

/* What a super-block's chunks share, made once per block: the grid indices (IQ3_S,
 * IQ1_S, IQ1_M), the 16 scale bytes (IQ2_XS, IQ2_S, IQ1_M), IQ1_M's delta flags. */
typedef struct { uint16_t idx[64]; __m256i scb; uint8_t dflags[32]; } grid_prep;

AVX2_BODY float prep_block(int type, const uint8_t *b, grid_prep *p) {
    switch (type) {
    case T_IQ2_XS: p->scb = nibble_scales(((const block_iq2_xs *)b)->scales); break;
    case T_IQ2_S:  p->scb = nibble_scales(((const block_iq2_s *)b)->scales); break;
    case T_IQ3_S:  iq3_s_indices((const block_iq3_s *)b, p->idx); break;
    case T_IQ1_S:  iq1_s_indices((const block_iq1_s *)b, p->idx); break;
    case T_IQ1_M: {
        uint16_t sc[4];
        memcpy(sc, ((const block_iq1_m *)b)->scales, 8);
        p->scb = iq1_m_scales(sc);
        iq1_m_indices((const block_iq1_m *)b, p->idx);
        iq1_m_delta_flags((const block_iq1_m *)b, p->dflags);
        return h2f(iq1_m_scale(sc));
    }
    }
    return h2f(rd16(b));   /* the others' d: their first field */
}

/* chunk ib (32 elements): the grid magnitudes, the signs (±1 bytes; IQ1: the grid
 * itself, its zeros meet zero magnitudes), the 16-bit scales */
AVX2_BODY void chunk(int type, const uint8_t *b, const grid_prep *p, int ib, __m256i *g, __m256i *sg, __m256i *sc) {
    switch (type) {
    case T_IQ2_XXS: {
        const uint8_t *qs = (const uint8_t *)((const block_iq2_xxs *)b)->qs + 8 * ib;
        const uint32_t idx = rd32(qs), sgn = rd32(qs + 4);
        *g = rows8(llm_iq2xxs_grid, idx & 255, (idx >> 8) & 255, (idx >> 16) & 255, idx >> 24);
        *sg = ksign_bytes(sgn);
        *sc = scale32(sgn >> 28);
        return;
    }
    case T_IQ2_XS: {
        uint16_t q[4];
        memcpy(q, ((const block_iq2_xs *)b)->qs + 4 * ib, 8);
        *g = rows8(llm_iq2xs_grid, q[0] & 511, q[1] & 511, q[2] & 511, q[3] & 511);
        *sg = _mm256_set_epi64x(ks64(q[3] >> 9), ks64(q[2] >> 9), ks64(q[1] >> 9), ks64(q[0] >> 9));
        *sc = scales16(p->scb, ib);
        return;
    }
    case T_IQ2_S: {
        const block_iq2_s *x = (const void *)b;
        const uint8_t *qs = x->qs + 4 * ib;
        const int h = x->qh[ib];
        *g = rows8(llm_iq2s_grid, qs[0] | ((h << 8) & 0x300), qs[1] | ((h << 6) & 0x300),
                   qs[2] | ((h << 4) & 0x300), qs[3] | ((h << 2) & 0x300));
        *sg = sign_bytes(rd32(x->qs + 32 + 4 * ib));
        *sc = scales16(p->scb, ib);
        return;
    }
    case T_IQ3_XXS: {
        const uint8_t *qs = ((const block_iq3_xxs *)b)->qs;
        const uint32_t sgn = rd32(qs + 64 + 4 * ib);
        const uint16_t i[8] = {qs[8 * ib], qs[8 * ib + 1], qs[8 * ib + 2], qs[8 * ib + 3],
                               qs[8 * ib + 4], qs[8 * ib + 5], qs[8 * ib + 6], qs[8 * ib + 7]};
        *g = rows4(llm_iq3xxs_grid, i);
        *sg = ksign_bytes(sgn);
        *sc = scale32(sgn >> 28);
        return;
    }
    case T_IQ3_S: {
        const block_iq3_s *x = (const void *)b;
        *g = rows4(llm_iq3s_grid, p->idx + 8 * ib);
        *sg = sign_bytes(rd32(x->signs + 4 * ib));
        *sc = scale32((x->scales[ib / 2] >> (4 * (ib % 2))) & 15);
        return;
    }
    case T_IQ1_S: case T_IQ1_M: {
        const uint16_t *i = p->idx + 4 * ib;
        const __m256i v = rows8(llm_iq1s_grid, i[0], i[1], i[2], i[3]);
        *g = _mm256_sign_epi8(v, v);
        *sg = v;
        *sc = type == T_IQ1_S ? scale32((((const block_iq1_s *)b)->qh[ib] >> 12) & 7) : scales16(p->scb, ib);
        return;
    }
    }
}

/* The kernel of every type: one weight row against nc (1..NC, a constant after
 * inlining) columns, the row's chunks decoded once for all of them; per column,
 * vec_dot's integers and float steps (so each column's bits are vec_dot's). */
#define NC 4
AVX2_BODY void grid_dot(int type, long long n, float *s, long long ss, const uint8_t *w, const uint8_t *a,
                        long long as, int nc) {
    __m256 acc[NC], acc2[NC];
    float acc1[NC];
    for (int c = 0; c < nc; c++) acc[c] = acc2[c] = _mm256_setzero_ps(), acc1[c] = 0.f;
    const iq_type *t = iq_type_of(type);
    for (long long i = 0; i < n / QKK; i++) {
        const uint8_t *b = w + i * t->bytes;
        const block_q8_K *y[NC];
        __m256i L[NC], D[NC];
        for (int c = 0; c < nc; c++) y[c] = (const block_q8_K *)(a + c * as) + i, L[c] = D[c] = _mm256_setzero_si256();
        grid_prep p;
        const float dx = prep_block(type, b, &p);
#pragma GCC unroll 8   /* the 8 chunks unrolled: 10-15% faster on IQ2_XXS, IQ2_S, IQ3_* */
        for (int ib = 0; ib < 8; ib++) {
            __m256i g, sg, sc;
            chunk(type, b, &p, ib, &g, &sg, &sc);
            const __m256i ds = type == T_IQ1_M ? delta_signs(p.dflags, ib) : sg;
            for (int c = 0; c < nc; c++) {
                const __m256i q8 = _mm256_loadu_si256((const __m256i *)(y[c]->qs + 32 * ib));
                L[c] = grid_step(L[c], g, q8, sg, sc);
                if (type == T_IQ1_M) D[c] = grid_step(D[c], _mm256_set1_epi8(1), q8, ds, sc);
            }
        }
        for (int c = 0; c < nc; c++) {
            const float d = dx * y[c]->d;
            acc[c] = fma_block(acc[c], d, L[c]);
            if (type == T_IQ1_S) acc1[c] = fmaf(d, (float)iq1_s_delta((const block_iq1_s *)b, y[c]), acc1[c]);
            if (type == T_IQ1_M) acc2[c] = fma_block(acc2[c], d, D[c]);
        }
    }
    for (int c = 0; c < nc; c++)
        s[c * ss] = grid_finish(type, t->tail, hsum8(acc[c]), type == T_IQ1_M ? hsum8(acc2[c]) : acc1[c]);
}

/* vec_dot and vec_dot_nc (any nc: passes of NC columns, nc a constant in each call) */
AVX2_BODY void grid_dot_nc(int type, long long n, float *s, long long ss, const void *w, const void *a,
                           long long as, int nc) {
    const uint8_t *ac = a;
    for (; nc >= NC; nc -= NC, s += NC * ss, ac += NC * as) grid_dot(type, n, s, ss, w, ac, as, NC);
    switch (nc) {
    case 3: grid_dot(type, n, s, ss, w, ac, as, 3); break;
    case 2: grid_dot(type, n, s, ss, w, ac, as, 2); break;
    case 1: grid_dot(type, n, s, ss, w, ac, as, 1); break;
    }
}

#define ISA_DOT(sfx, name, T)                                                                       \
    static void dot_##name##_##sfx(long long n, float *s, const void *w, const void *a) {           \
        grid_dot(T, n, s, 0, w, a, 0, 1);                                                           \
    }                                                                                               \
    static void dot_##name##_nc_##sfx(long long n, float *s, long long ss, const void *w, const void *a, \
                                      long long as, int nc) {                                       \
        grid_dot_nc(T, n, s, ss, w, a, as, nc);                                                     \
    }
#define ISA_DOTS(sfx)                        \
    ISA_DOT(sfx, iq2_xxs, T_IQ2_XXS)         \
    ISA_DOT(sfx, iq2_xs, T_IQ2_XS)           \
    ISA_DOT(sfx, iq2_s, T_IQ2_S)             \
    ISA_DOT(sfx, iq3_xxs, T_IQ3_XXS)         \
    ISA_DOT(sfx, iq3_s, T_IQ3_S)             \
    ISA_DOT(sfx, iq1_s, T_IQ1_S)             \
    ISA_DOT(sfx, iq1_m, T_IQ1_M)
ISA_DOTS(avx2)
#pragma GCC pop_options

/* the same bodies built for AVX-512 (VL: EVEX forms and 32 registers; the same bits) */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq")
ISA_DOTS(avx512)
#pragma GCC pop_options

#define SET_DOT(t, T, name, sfx) ((t)->vec_dot[T] = dot_##name##_##sfx, (t)->vec_dot_nc[T] = dot_##name##_nc_##sfx)
#define FILL_DOTS(t, sfx)                          \
    do {                                           \
        SET_DOT(t, T_IQ2_XXS, iq2_xxs, sfx);       \
        SET_DOT(t, T_IQ2_XS, iq2_xs, sfx);         \
        SET_DOT(t, T_IQ2_S, iq2_s, sfx);           \
        SET_DOT(t, T_IQ3_XXS, iq3_xxs, sfx);       \
        SET_DOT(t, T_IQ3_S, iq3_s, sfx);           \
        SET_DOT(t, T_IQ1_S, iq1_s, sfx);           \
        SET_DOT(t, T_IQ1_M, iq1_m, sfx);           \
    } while (0)
#endif

/* a baseline function (dispatch calls it on every CPU): it only stores pointers */
void llm_kernels_iq_grid(llm_kernel_table *t, int isa) {
    (void)isa;   /* scalar only off x86 */
    fill_scalar(t);
#if defined(__x86_64__) || defined(__i386__)
    if (isa == 1) FILL_DOTS(t, avx2);
    if (isa == 2) FILL_DOTS(t, avx512);
#endif
}
