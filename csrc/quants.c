/* Block formats: dequantization (bit-exact with ggml's dequantize_row_* and
 * gguf-py's dequantize) and the activation quantizers paired with each weight
 * type (layouts: internal.h; pairing: types.c). Plain C: the inner loops are
 * simple enough for the compiler to vectorise. */
#include <math.h>
#include "internal.h"

/* ---------------------------------------------------------------- helpers */

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline float rdf16(const uint8_t *p) { return llm_f16_to_f32(rd16(p)); }

/* ggml's nearest_int: round half to even for |v| <= 4194303 (bit trick, as in
 * the reference; any input gives the same bits as the reference's). */
static inline int32_t nearest_int(float v) {
    float t = v + 12582912.f;
    int32_t i; memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ------------------------------------------------------- dequantization */

/* p + m, with the NaN of p (not m) when p is NaN: what x86 addss gives for
 * `p + m` as written (gguf-py computes d*q + m in that operand order); a
 * plain + may have its operands swapped by the compiler. */
static inline float add_nan_first(float p, float m) {
    float r = p + m;
    uint32_t pb, rb;
    memcpy(&pb, &p, 4); memcpy(&rb, &r, 4);
    uint32_t isnan_p = 0u - (uint32_t)((pb & 0x7fffffffu) > 0x7f800000u);
    rb = (pb & isnan_p) | (rb & ~isnan_p);
    memcpy(&r, &rb, 4);
    return r;
}

static void dq_f32(const uint8_t *restrict s, float *restrict y, long long n) { memcpy(y, s, (size_t)n * 4); }

static void dq_f16(const uint8_t *restrict s, float *restrict y, long long n) {
    for (long long i = 0; i < n; i++) y[i] = llm_f16_to_f32(rd16(s + 2 * i));
}

static void dq_bf16(const uint8_t *restrict s, float *restrict y, long long n) {
    for (long long i = 0; i < n; i++) {
        uint32_t b = (uint32_t)rd16(s + 2 * i) << 16;
        memcpy(y + i, &b, 4);
    }
}

/* the 32 4-bit (or 5-bit) values of a legacy block, element order */
static inline void unpack_q4(const uint8_t *restrict qs, int32_t *restrict q) {
    for (int j = 0; j < 16; j++) { q[j] = qs[j] & 0x0F; q[j + 16] = qs[j] >> 4; }
}
/* byte b -> 8 bytes (in little-endian memory order), byte k = 16 if bit k of b
 * is set: the 5th bits of Q5_0/Q5_1 */
#define HB1(x, k) ((uint64_t)(((x) >> (k)) & 1) << (8 * (k) + 4))
#define HB(x) (HB1(x, 0) | HB1(x, 1) | HB1(x, 2) | HB1(x, 3) | HB1(x, 4) | HB1(x, 5) | HB1(x, 6) | HB1(x, 7))
#define HB4(x) HB(x), HB(x + 1), HB(x + 2), HB(x + 3)
#define HB16(x) HB4(x), HB4(x + 4), HB4(x + 8), HB4(x + 12)
#define HB64(x) HB16(x), HB16(x + 16), HB16(x + 32), HB16(x + 48)
static const uint64_t high_bits16[256] = { HB64(0), HB64(64), HB64(128), HB64(192) };

static inline void unpack_q5(const uint8_t *restrict qs, const uint8_t *restrict qh, int32_t *restrict q) {
    uint8_t h[32];
    for (int k = 0; k < 4; k++) memcpy(h + 8 * k, &high_bits16[qh[k]], 8);
    unpack_q4(qs, q);
    for (int j = 0; j < 32; j++) q[j] |= h[j];
}

static void dq_q4_0(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 18, y += 32) {
        const float d = rdf16(b);
        int32_t q[32];
        unpack_q4(b + 2, q);
        for (int j = 0; j < 32; j++) y[j] = (float)(q[j] - 8) * d;
    }
}

static void dq_q4_1(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 20, y += 32) {
        const float d = rdf16(b), m = rdf16(b + 2);
        int32_t q[32];
        unpack_q4(b + 4, q);
        for (int j = 0; j < 32; j++) y[j] = add_nan_first((float)q[j] * d, m);
    }
}

static void dq_q5_0(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 22, y += 32) {
        const float d = rdf16(b);
        int32_t q[32];
        unpack_q5(b + 6, b + 2, q);
        for (int j = 0; j < 32; j++) y[j] = (float)(q[j] - 16) * d;
    }
}

static void dq_q5_1(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 24, y += 32) {
        const float d = rdf16(b), m = rdf16(b + 2);
        int32_t q[32];
        unpack_q5(b + 8, b + 4, q);
        for (int j = 0; j < 32; j++) y[j] = add_nan_first((float)q[j] * d, m);
    }
}

static void dq_q8_0(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 34, y += 32) {
        const float d = rdf16(b);
        const int8_t *qs = (const int8_t *)(b + 2);
        for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
    }
}

static void dq_q8_1(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 36, y += 32) {
        const float d = rdf16(b);
        const int8_t *qs = (const int8_t *)(b + 4);
        for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
    }
}

static void dq_q2_K(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 84, y += 256) {
        const uint8_t *sc = b, *qs = b + 16;
        const float d = rdf16(b + 80), dmin = rdf16(b + 82);
        for (int s = 0; s < 16; s++) {               /* sub-block of 16 */
            const float dl = d * (float)(sc[s] & 0x0F), ml = dmin * (float)(sc[s] >> 4);
            const uint8_t *q = qs + 32 * (s / 8) + 16 * (s & 1);
            const int shift = 2 * ((s % 8) / 2);
            float *yy = y + 16 * s;
            for (int l = 0; l < 16; l++) yy[l] = dl * (float)((q[l] >> shift) & 3) - ml;
        }
    }
}

static void dq_q3_K(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 110, y += 256) {
        const uint8_t *hm = b, *qs = b + 32, *ps = b + 96;
        const float d = rdf16(b + 108);
        for (int s = 0; s < 16; s++) {
            int lo = (s < 8 ? ps[s] : ps[s - 8] >> 4) & 0x0F;
            int hi = (ps[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
            const float dl = d * (float)((lo | (hi << 4)) - 32);
            const uint8_t *q = qs + 32 * (s / 8) + 16 * (s & 1);
            const int shift = 2 * ((s % 8) / 2);
            const uint8_t *h = hm + 16 * (s & 1);
            const int hbit = s / 2;                  /* element e: bit e/32 of hmask[e%32] */
            float *yy = y + 16 * s;
            for (int l = 0; l < 16; l++) {
                int v = (int)((q[l] >> shift) & 3) - (((h[l] >> hbit) & 1) ? 0 : 4);
                yy[l] = dl * (float)v;
            }
        }
    }
}

static void dq_q4_K(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 144, y += 256) {
        const float d = rdf16(b), dmin = rdf16(b + 2);
        const uint8_t *scales = b + 4, *qs = b + 16;
        for (int j = 0; j < 8; j++) {               /* sub-block of 32 */
            uint8_t sc, m;
            llm_get_scale_min_k4(j, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = qs + 32 * (j / 2);
            const int shift = 4 * (j & 1);
            float *yy = y + 32 * j;
            for (int l = 0; l < 32; l++) yy[l] = d1 * (float)((q[l] >> shift) & 0x0F) - m1;
        }
    }
}

static void dq_q5_K(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 176, y += 256) {
        const float d = rdf16(b), dmin = rdf16(b + 2);
        const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + 48;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            llm_get_scale_min_k4(j, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = qs + 32 * (j / 2);
            const int shift = 4 * (j & 1);
            float *yy = y + 32 * j;
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 0x0F) | (((qh[l] >> j) & 1) << 4);
                yy[l] = d1 * (float)v - m1;
            }
        }
    }
}

static void dq_q6_K(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 210, y += 256) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = rdf16(b + 208);
        for (int s = 0; s < 16; s++) {               /* sub-block of 16 */
            const int e0 = 16 * s, h = e0 / 128, r = e0 % 128, qq = r / 32, l0 = r % 32;
            const uint8_t *lo = ql + 64 * h + 32 * (qq & 1) + l0;
            const uint8_t *hi = qh + 32 * h + l0;
            const int lshift = qq < 2 ? 0 : 4, hshift = 2 * qq;
            const float dl = d * (float)sc[s];
            float *yy = y + e0;
            for (int l = 0; l < 16; l++) {
                int v = (((lo[l] >> lshift) & 0x0F) | (((hi[l] >> hshift) & 3) << 4)) - 32;
                yy[l] = dl * (float)v;
            }
        }
    }
}

static void dq_q8_K(const uint8_t *restrict b, float *restrict y, long long nb) {
    for (long long i = 0; i < nb; i++, b += 292, y += 256) {
        float d; memcpy(&d, b, 4);
        const int8_t *qs = (const int8_t *)(b + 4);
        for (int j = 0; j < 256; j++) y[j] = (float)qs[j] * d;
    }
}

static int dequantize_one(int type, const uint8_t *s, float *dst, long long n, long long nb);

typedef struct { int type; const uint8_t *src; float *dst; long long nb, be, bb; } dq_job;

static void dq_task(int ith, int nth, void *p) {
    const dq_job *j = p;
    const long long b0 = j->nb * ith / nth, b1 = j->nb * (ith + 1) / nth;
    if (b1 > b0) dequantize_one(j->type, j->src + b0 * j->bb, j->dst + b0 * j->be, (b1 - b0) * j->be, b1 - b0);
}

/* the types dequantize_one has a case for */
static int has_dequantizer(int type) {
    switch (type) {
    case T_F32: case T_F16: case T_BF16: case T_MXFP4: case T_NVFP4: case T_TQ1_0: case T_TQ2_0:
    case T_IQ4_NL: case T_IQ4_XS: return 1;
    default: return (type >= T_Q4_0 && type <= T_Q8_K) || llm_iq_grid_type(type);
    }
}

int llm_dequantize(int type, const void *src, float *dst, long long n) {
    long long be = llm_type_block_elems(type);
    if (be <= 0 || n < 0 || n % be) return -1;
    if (!has_dequantizer(type)) return -1;
    const long long nb = n / be;
    if (n >= (1LL << 20)) {   /* large tensors: blocks spread over the threads (each block's values are its own) */
        dq_job j = {type, src, dst, nb, be, llm_type_block_bytes(type)};
        llm_parallel_all(dq_task, &j);
        return 0;
    }
    return dequantize_one(type, src, dst, n, nb);
}

static int dequantize_one(int type, const uint8_t *s, float *dst, long long n, long long nb) {
    switch (type) {
    case T_F32:  dq_f32(s, dst, n); return 0;
    case T_F16:  dq_f16(s, dst, n); return 0;
    case T_BF16: dq_bf16(s, dst, n); return 0;
    case T_Q4_0: dq_q4_0(s, dst, nb); return 0;
    case T_Q4_1: dq_q4_1(s, dst, nb); return 0;
    case T_Q5_0: dq_q5_0(s, dst, nb); return 0;
    case T_Q5_1: dq_q5_1(s, dst, nb); return 0;
    case T_Q8_0: dq_q8_0(s, dst, nb); return 0;
    case T_Q8_1: dq_q8_1(s, dst, nb); return 0;
    case T_Q2_K: dq_q2_K(s, dst, nb); return 0;
    case T_Q3_K: dq_q3_K(s, dst, nb); return 0;
    case T_Q4_K: dq_q4_K(s, dst, nb); return 0;
    case T_Q5_K: dq_q5_K(s, dst, nb); return 0;
    case T_Q6_K: dq_q6_K(s, dst, nb); return 0;
    case T_Q8_K: dq_q8_K(s, dst, nb); return 0;
    case T_MXFP4: llm_dequant_mxfp4(s, dst, nb); return 0;
    case T_NVFP4: llm_dequant_nvfp4(s, dst, nb); return 0;
    case T_TQ1_0: llm_dequant_tq1_0(s, dst, nb); return 0;
    case T_TQ2_0: llm_dequant_tq2_0(s, dst, nb); return 0;
    case T_IQ2_XXS: case T_IQ2_XS: case T_IQ2_S: case T_IQ3_XXS: case T_IQ3_S: case T_IQ1_S: case T_IQ1_M:
        return llm_iq_grid_dequantize(type, s, dst, nb);
    case T_IQ4_NL: llm_dq_iq4_nl(s, dst, nb); return 0;
    case T_IQ4_XS: llm_dq_iq4_xs(s, dst, nb); return 0;
    default: return -1;
    }
}

/* ------------------------------------------------ activation quantizers */

/* x86 SIMD q8_0 / q8_1 numerics (llama.cpp arch/x86/quants.c): amax = max|x|,
 * id = 127/amax (not 1/d), round half to even (_mm256_round_ps), convert
 * (cvtps2dq: NaN or |v| >= 2^31 gives INT_MIN) and saturate to int8 (packs).
 * For finite activations this is just q = rne(x * id). Written on the bit
 * patterns so that the compiler vectorises it. */
static inline int8_t q8_x86(float v) {
    uint32_t u; memcpy(&u, &v, 4);
    const uint32_t a = u & 0x7fffffffu, neg = u >> 31;
    int32_t r = nearest_int(v);                         /* exact for |v| < 2^22 */
    const int32_t hi = (int32_t)((neg ^ 1u) & (a > 0x42fe0000u));   /* v > 127 */
    const int32_t lo = (int32_t)((neg & (a > 0x43000000u)) | (a >= 0x4f000000u)); /* v < -128, |v| >= 2^31, NaN */
    r = (r & ~(-hi)) | (127 & -hi);
    r = (r & ~(-lo)) | (-128 & -lo);
    return (int8_t)r;
}

static float q8_block_x86(const float *restrict x, int8_t *restrict qs) {
    uint32_t abits = 0;                                 /* max |x| on the bit patterns */
    for (int j = 0; j < 32; j++) {
        uint32_t u; memcpy(&u, x + j, 4);
        u &= 0x7fffffffu;
        abits = u > abits ? u : abits;
    }
    float amax; memcpy(&amax, &abits, 4);
    const float d = amax / 127.f;
    const float id = amax != 0.f ? 127.f / amax : 0.f;
    for (int j = 0; j < 32; j++) qs[j] = q8_x86(x[j] * id);
    return d;
}

static void qa_q8_0(const float *x, uint8_t *b, long long nb) {
    for (long long i = 0; i < nb; i++, x += 32, b += 34) {
        int8_t qs[32];
        const float d = q8_block_x86(x, qs);
        f16_t h = llm_f32_to_f16(d);
        memcpy(b, &h, 2);
        memcpy(b + 2, qs, 32);
    }
}

static void qa_q8_1(const float *x, uint8_t *b, long long nb) {
    for (long long i = 0; i < nb; i++, x += 32, b += 36) {
        int8_t qs[32];
        const float d = q8_block_x86(x, qs);
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += qs[j];
        f16_t h = llm_f32_to_f16(d), s = llm_f32_to_f16(d * (float)sum);
        memcpy(b, &h, 2);
        memcpy(b + 2, &s, 2);
        memcpy(b + 4, qs, 32);
    }
}

/* quantize_row_q8_K_ref; an all-zero block also gets zero bsums */
static void qa_q8_K(const float *x, uint8_t *b, long long nb) {
    for (long long i = 0; i < nb; i++, x += 256, b += 292) {
        float amax = 0.f, max = 0.f;
        for (int j = 0; j < 256; j++) {
            float a = fabsf(x[j]);
            if (a > amax) { amax = a; max = x[j]; }
        }
        int8_t qs[256];
        int16_t bsums[16];
        float d;
        if (amax == 0.f) {
            d = 0.f;
            memset(qs, 0, sizeof qs);
            memset(bsums, 0, sizeof bsums);
        } else {
            const float iscale = -127.f / max;
            for (int j = 0; j < 256; j++) {
                int32_t v = nearest_int(iscale * x[j]);
                qs[j] = (int8_t)(v < 127 ? v : 127);
            }
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++) s += qs[16 * g + l];
                bsums[g] = (int16_t)s;
            }
            d = 1.f / iscale;
        }
        memcpy(b, &d, 4);
        memcpy(b + 4, qs, 256);
        memcpy(b + 260, bsums, 32);
    }
}

int llm_quantize_act(int act_type, const float *x, void *dst, long long n) {
    long long be = llm_type_block_elems(act_type);
    if (be <= 0 || n < 0 || n % be) return -1;
    uint8_t *b = dst;
    switch (act_type) {
    case T_F32: memcpy(dst, x, (size_t)n * 4); return 0;
    case T_F16:
        for (long long i = 0; i < n; i++) { f16_t h = llm_f32_to_f16(x[i]); memcpy(b + 2 * i, &h, 2); }
        return 0;
    case T_BF16:
        for (long long i = 0; i < n; i++) { bf16_t h = llm_f32_to_bf16(x[i]); memcpy(b + 2 * i, &h, 2); }
        return 0;
    case T_Q8_0: qa_q8_0(x, b, n / 32); return 0;
    case T_Q8_1: qa_q8_1(x, b, n / 32); return 0;
    case T_Q8_K: qa_q8_K(x, b, n / 256); return 0;
    default: return -1;
    }
}
