/* Scalar vec-dot kernels: the portable reference twin of every SIMD kernel.
 *
 * s = dot(weight row, activation row) over n elements (a whole number of
 * blocks; matmul.c checks that). Activations arrive already converted to the
 * weight type's paired type (types.c):
 *   F32·F32, F16·F16, BF16·BF16        products and sums in float
 *   Q4_0, Q5_0, Q8_0 · Q8_0            per block: 8 exact int32 lane sums of q·q8 (4
 *                                      elements each), fmaf'd with f(dx)·f(dy) into 8
 *                                      float lanes (llama.cpp's x86 order, see below)
 *   Q4_1, Q5_1 · Q8_1                  the same, plus an fmaf chain of f(mx)·f(sy)
 *   Q2_K .. Q6_K · Q8_K                per super-block (Q4_K: per 64 elements):
 *                                      exact int32 sums (scales applied as
 *                                      integers, mins through the Q8_K bsums),
 *                                      then fmaf steps in llama.cpp's batched
 *                                      x86 order (see the K-quant section)
 * Blocks are accumulated in float, in block order. The float-type loops use
 * LANES independent partial sums so that the compiler can vectorise them
 * (no -ffast-math here); the lanes are reduced in a fixed order. */
#include <math.h>
#include "internal.h"

#define LANES 16

/* fp16 -> fp32, equal to llm_f16_to_f32 for every input but without branches,
 * so that loops over it vectorise. Normal numbers: rebias the exponent.
 * Subnormals: m·2^-24 from an exact int->float conversion (no float subnormal
 * is ever formed, so a DAZ/FTZ mode set by another library cannot change it). */
static inline float h2f(f16_t h) {
    uint32_t e = h & 0x7c00u, m = h & 0x3ffu;
    uint32_t inf = 0u - (uint32_t)(e == 0x7c00u), sub = 0u - (uint32_t)(e == 0); /* all-ones masks */
    uint32_t normal = ((uint32_t)(h & 0x7fffu) << 13) + (112u << 23);
    uint32_t special = 0x7f800000u | (m << 13);                      /* inf / NaN */
    float fsub = (float)(int)m * 0x1p-24f;                           /* zero / subnormal */
    uint32_t bsub;
    memcpy(&bsub, &fsub, 4);
    uint32_t bits = (normal & ~(inf | sub)) | (special & inf) | (bsub & sub);
    bits |= (uint32_t)(h & 0x8000u) << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float lanes_sum(const float acc[LANES]) {
    float t[LANES];
    for (int l = 0; l < LANES; l++) t[l] = acc[l];
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) t[l] += t[l + w];
    return t[0];
}

/* ---- float types ---- */

static void dot_f32(long long n, float *s, const void *w, const void *a) {
    const float *x = w, *y = a;
    float acc[LANES] = {0};
    long long i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[i + l] * y[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += x[i] * y[i];
    *s = lanes_sum(acc);
}

static void dot_f16(long long n, float *s, const void *w, const void *a) {
    const f16_t *x = w, *y = a;
    float acc[LANES] = {0};
    long long i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += h2f(x[i + l]) * h2f(y[i + l]);
    for (int l = 0; i < n; i++, l++) acc[l] += h2f(x[i]) * h2f(y[i]);
    *s = lanes_sum(acc);
}

static void dot_bf16(long long n, float *s, const void *w, const void *a) {
    const bf16_t *x = w, *y = a;
    float acc[LANES] = {0};
    long long i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += llm_bf16_to_f32(x[i + l]) * llm_bf16_to_f32(y[i + l]);
    for (int l = 0; i < n; i++, l++) acc[l] += llm_bf16_to_f32(x[i]) * llm_bf16_to_f32(y[i]);
    *s = lanes_sum(acc);
}

/* ---- 32-element blocks ----
 * In the order of llama.cpp's x86 kernels, bit for bit the AVX2 and AVX-512
 * kernels: 8 float lanes acc[l] = fmaf(dw*dx, lane_l, acc[l]) over the blocks in
 * order, lane_l the exact int32 sum of w_j*x_j over elements 4l..4l+3 of the
 * block and dw*dx the float product of the widened fp16 scales (one rounding);
 * then hsum8. Q4_1 / Q5_1 add the chain ms = fmaf(m_w, s_x, ms) at the end. */

/* lanes[l] = Σ_{j=4l..4l+3} w[j]·x[j], exact in int32 */
static inline void lanes8(const int8_t *w, const int8_t *x, int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int j = 4 * l; j < 4 * l + 4; j++) s += (int32_t)w[j] * (int32_t)x[j];
        lanes[l] = s;
    }
}

static inline void fma8(float acc[8], float d, const int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lanes[l], acc[l]);
}


/* Q4_0 / Q4_1 low nibble = element j, high nibble = element j+16, as 0..15 */
static inline void unpack_nibbles32(const uint8_t *qs, int8_t *q) {
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (int8_t)(qs[j] & 15);
        q[j + 16] = (int8_t)(qs[j] >> 4);
    }
}

/* Q5_0 / Q5_1: the nibbles plus bit e of qh (little-endian u32) as value 16 */
static inline void unpack_q5(const uint8_t *qs, const uint8_t *qh, int8_t *q) {
    unpack_nibbles32(qs, q);
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 8; b++) q[8 * i + b] |= (int8_t)(((qh[i] >> b) & 1) << 4);
}

/* the integer weights of block b of a d-only type (Q4_0: q-8, Q5_0: q-16, Q8_0: q) */
static inline void wq_q4_0(const block_q4_0 *x, int8_t *q) {
    unpack_nibbles32(x->qs, q);
    for (int j = 0; j < QK; j++) q[j] -= 8;
}
static inline void wq_q5_0(const block_q5_0 *x, int8_t *q) {
    unpack_q5(x->qs, x->qh, q);
    for (int j = 0; j < QK; j++) q[j] -= 16;
}
static inline void wq_q8_0(const block_q8_0 *x, int8_t *q) { memcpy(q, x->qs, QK); }

/* Q4_1 / Q5_1: the unsigned codes q (the minimum rides on Q8_1's s) */
static inline void wq_q4_1(const block_q4_1 *x, int8_t *q) { unpack_nibbles32(x->qs, q); }
static inline void wq_q5_1(const block_q5_1 *x, int8_t *q) { unpack_q5(x->qs, x->qh, q); }

/* One 8-lane chain over the blocks against YT (Q8_0 or Q8_1) activations; the
 * d+m types also run the m*s chain (MIN_STEP) and add it at the end (FINISH). */
#define DOT32(NAME, WT, YT, WQ, MIN_STEP, FINISH)                                             \
    static void NAME(long long n, float *s, const void *w, const void *a) {                 \
        const WT *x = w;                                                                     \
        const YT *y = a;                                                                     \
        float acc[8] = {0}, ms = 0;                                                          \
        (void)ms;                                                                            \
        for (long long b = 0; b < n / QK; b++) {                                             \
            int8_t q[QK];                                                                    \
            int32_t lanes[8];                                                                \
            WQ(&x[b], q);                                                                    \
            lanes8(q, y[b].qs, lanes);                                                       \
            fma8(acc, h2f(x[b].d) * h2f(y[b].d), lanes);                                     \
            MIN_STEP;                                                                        \
        }                                                                                    \
        *s = FINISH;                                                                         \
    }
#define NO_MIN ((void)0)
#define MS_STEP (ms = fmaf(h2f(x[b].m), h2f(y[b].s), ms))

DOT32(dot_q4_0, block_q4_0, block_q8_0, wq_q4_0, NO_MIN, llm_hsum8(acc))
DOT32(dot_q5_0, block_q5_0, block_q8_0, wq_q5_0, NO_MIN, llm_hsum8(acc))
DOT32(dot_q8_0, block_q8_0, block_q8_0, wq_q8_0, NO_MIN, llm_hsum8(acc))
DOT32(dot_q4_1, block_q4_1, block_q8_1, wq_q4_1, MS_STEP, llm_hsum8(acc) + ms)
DOT32(dot_q5_1, block_q5_1, block_q8_1, wq_q5_1, MS_STEP, llm_hsum8(acc) + ms)

/* ---- 256-element super-blocks against Q8_K ----
 * In the orders of llama.cpp's batched x86 paths, bit for bit the AVX2 and
 * AVX-512 kernels. Per super-block, I (Σ scale·q·x) and M (Σ min·bsums) are
 * exact int32; dw, dmin are the widened fp16 scales and dx the Q8_K d:
 *   Q4_K (repacked gemm): per 64 elements k, I_k and M_k,
 *        acc = fmaf(I_k, dw·dx, acc), accm = fmaf(M_k, dmin·dx, accm); acc − accm
 *   Q6_K, Q3_K (tiled, no min): acc = fmaf(I·dw, dx, acc)
 *   Q5_K, Q2_K (tiled, with min): acc = fmaf(fmaf(−dmin, M, I·dw), dx, acc)
 * (every product of two floats written here is rounded once, to float). */

/* Σ_{l<len} q[l]·y[l] (exact) */
static inline int32_t dot_i8(const int8_t *q, const int8_t *y, int len) {
    int32_t sum = 0;
    for (int l = 0; l < len; l++) sum += (int32_t)q[l] * (int32_t)y[l];
    return sum;
}

/* the tiled order's last steps for one super-block */
static inline float tiled_step(float acc, int32_t I, float dw, float dx) {
    return fmaf((float)I * dw, dx, acc);
}
static inline float tiled_step_m(float acc, int32_t I, int32_t M, float dw, float dmin, float dx) {
    return fmaf(fmaf(-dmin, (float)M, (float)I * dw), dx, acc);
}

/* the 2-bit field shared by Q2_K and Q3_K: element e of a super-block is
 * (qs[32·(e/128) + e%32] >> 2·((e%128)/32)) & 3 */
static inline void unpack_2bit(const uint8_t *qs, int8_t *q) {
    for (int h = 0; h < 2; h++)
        for (int shift = 0; shift < 4; shift++)
            for (int l = 0; l < 32; l++)
                q[128 * h + 32 * shift + l] = (int8_t)((qs[32 * h + l] >> (2 * shift)) & 3);
}

static void dot_q2_K(long long n, float *s, const void *w, const void *a) {
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    float acc = 0;
    for (long long b = 0; b < n / QKK; b++) {
        int8_t q[QKK];
        unpack_2bit(x[b].qs, q);
        int32_t I = 0, M = 0;
        for (int j = 0; j < 16; j++) {
            I += (x[b].scales[j] & 15) * dot_i8(q + 16 * j, y[b].qs + 16 * j, 16);
            M += (x[b].scales[j] >> 4) * y[b].bsums[j];
        }
        acc = tiled_step_m(acc, I, M, h2f(x[b].d), h2f(x[b].dmin), y[b].d);
    }
    *s = acc;
}

/* Q3_K's 16 6-bit scales (0..63, stored +32 biased) in 12 bytes: byte j (j < 8) holds
 * the low 4 bits of scale j (low nibble) and of scale j+8 (high nibble); byte 8 + j%4
 * holds the top 2 bits of scale j at bits 2(j/4)..2(j/4)+1 */
static inline void q3_scales(const uint8_t *p, int sc[16]) {
    for (int j = 0; j < 8; j++) {
        sc[j] = p[j] & 15;
        sc[j + 8] = p[j] >> 4;
    }
    for (int j = 0; j < 16; j++) sc[j] |= ((p[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
}

static void dot_q3_K(long long n, float *s, const void *w, const void *a) {
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    float acc = 0;
    for (long long b = 0; b < n / QKK; b++) {
        int8_t q[QKK];
        int sc[16];
        unpack_2bit(x[b].qs, q);
        for (int g = 0; g < 8; g++)      /* high bit of element 32g+l: bit g of hmask[l]; clear: -4 */
            for (int l = 0; l < 32; l++) q[32 * g + l] += (int8_t)((((x[b].hmask[l] >> g) & 1) << 2) - 4);
        q3_scales(x[b].scales, sc);
        int32_t I = 0;
        for (int j = 0; j < 16; j++) I += (sc[j] - 32) * dot_i8(q + 16 * j, y[b].qs + 16 * j, 16);
        acc = tiled_step(acc, I, h2f(x[b].d), y[b].d);
    }
    *s = acc;
}

/* Q4_K / Q5_K low 4 bits: sub-blocks 2k and 2k+1 share qs[32k..32k+31]
 * (low nibble, high nibble) */
static inline void unpack_q4_K(const uint8_t *qs, int8_t *q) {
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++) {
            q[64 * k + l] = (int8_t)(qs[32 * k + l] & 15);
            q[64 * k + 32 + l] = (int8_t)(qs[32 * k + l] >> 4);
        }
}

static inline void k4_scales_mins(const uint8_t *scales, int sc[8], int m[8]) {
    for (int j = 0; j < 8; j++) {
        uint8_t a, b;
        llm_get_scale_min_k4(j, scales, &a, &b);
        sc[j] = a;
        m[j] = b;
    }
}

/* gemv 0: the repacked gemm's steps, one per 64 elements; 1: the repacked gemv's,
 * one per super-block (the four I and M summed first, exactly) */
static inline void q4_K_body(long long n, float *s, const void *w, const void *a, int gemv) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    float acc = 0, accm = 0;
    for (long long b = 0; b < n / QKK; b++) {
        int8_t q[QKK];
        int sc[8], m[8];
        unpack_q4_K(x[b].qs, q);
        k4_scales_mins(x[b].scales, sc, m);
        const float d = h2f(x[b].d) * y[b].d, dm = h2f(x[b].dmin) * y[b].d;
        const int16_t *bs = y[b].bsums;
        int32_t Ib = 0, Mb = 0;
        for (int k = 0; k < 4; k++) {   /* 64 elements: sub-blocks 2k, 2k+1 */
            const int32_t I = sc[2 * k] * dot_i8(q + 64 * k, y[b].qs + 64 * k, 32)
                            + sc[2 * k + 1] * dot_i8(q + 64 * k + 32, y[b].qs + 64 * k + 32, 32);
            const int32_t M = m[2 * k] * (bs[4 * k] + bs[4 * k + 1]) + m[2 * k + 1] * (bs[4 * k + 2] + bs[4 * k + 3]);
            if (gemv) { Ib += I; Mb += M; continue; }
            acc = fmaf((float)I, d, acc);
            accm = fmaf((float)M, dm, accm);
        }
        if (gemv) {
            acc = fmaf((float)Ib, d, acc);
            accm = fmaf((float)Mb, dm, accm);
        }
    }
    *s = acc - accm;
}
static void dot_q4_K(long long n, float *s, const void *w, const void *a) { q4_K_body(n, s, w, a, 0); }
static void dot_q4_K_gemv(long long n, float *s, const void *w, const void *a) { q4_K_body(n, s, w, a, 1); }

static void dot_q5_K(long long n, float *s, const void *w, const void *a) {
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    float acc = 0;
    for (long long b = 0; b < n / QKK; b++) {
        int8_t q[QKK];
        int sc[8], m[8];
        unpack_q4_K(x[b].qs, q);
        for (int g = 0; g < 8; g++)      /* 5th bit of element 32g+l: bit g of qh[l] */
            for (int l = 0; l < 32; l++) q[32 * g + l] |= (int8_t)(((x[b].qh[l] >> g) & 1) << 4);
        k4_scales_mins(x[b].scales, sc, m);
        int32_t I = 0, M = 0;
        for (int j = 0; j < 8; j++) {
            I += sc[j] * dot_i8(q + 32 * j, y[b].qs + 32 * j, 32);
            M += m[j] * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
        }
        acc = tiled_step_m(acc, I, M, h2f(x[b].d), h2f(x[b].dmin), y[b].d);
    }
    *s = acc;
}

static void dot_q6_K(long long n, float *s, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    float acc = 0;
    for (long long b = 0; b < n / QKK; b++) {
        int8_t q[QKK];
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
            int8_t *o = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                o[l]      = (int8_t)(((ql[l] & 15)      | (((qh[l] >> 0) & 3) << 4)) - 32);
                o[l + 32] = (int8_t)(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
                o[l + 64] = (int8_t)(((ql[l] >> 4)      | (((qh[l] >> 4) & 3) << 4)) - 32);
                o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        int32_t I = 0;
        for (int j = 0; j < 16; j++) I += x[b].scales[j] * dot_i8(q + 16 * j, y[b].qs + 16 * j, 16);
        acc = tiled_step(acc, I, h2f(x[b].d), y[b].d);
    }
    *s = acc;
}

void llm_kernels_scalar(llm_kernel_table *t) {
    memset(t, 0, sizeof *t);
    t->vec_dot[T_F32] = dot_f32;
    t->vec_dot[T_F16] = dot_f16;
    t->vec_dot[T_BF16] = dot_bf16;
    t->vec_dot[T_Q4_0] = dot_q4_0;
    t->vec_dot[T_Q4_1] = dot_q4_1;
    t->vec_dot[T_Q5_0] = dot_q5_0;
    t->vec_dot[T_Q5_1] = dot_q5_1;
    t->vec_dot[T_Q8_0] = dot_q8_0;
    t->vec_dot[T_Q2_K] = dot_q2_K;
    t->vec_dot[T_Q3_K] = dot_q3_K;
    t->vec_dot[T_Q4_K] = dot_q4_K;
    t->vec_dot[T_Q5_K] = dot_q5_K;
    t->vec_dot[T_Q6_K] = dot_q6_K;
    t->q4_K_gemv = dot_q4_K_gemv;
    t->q4_K_gemv_nc = NULL;
    t->q4_K_gemv_r4 = NULL;
    t->q4_K_gemv_r16 = NULL;
}
