/* The weights of the integer matmul kernels (mmq.cu) as int8 codes and per-group
 * scales: one group is G consecutive weights of a row (G = 32, or 16 for Q2_K, Q3_K
 * and Q6_K, whose scales cover 16), w = a*q + b with q an int8 code and a, b floats of the group
 * (b only where OFS: the types with a min, Q4_1, Q5_1, Q2_K, Q4_K, Q5_K; the others'
 * offsets, such as Q4_0's -8, are subtracted from the codes in integers).
 *
 * load(blk, j, t, q, &a, &b): group j of the block at blk, for the thread t (0..3) of
 * an mma fragment's row (mma.cuh): q[0] = its codes 4t..4t+3, q[1] = 16+4t..16+4t+3
 * (G = 32 only), 4 int8 to a register, lowest k in the lowest byte. a, b: the
 * decoder's own float products where it has them (Q4_K's d*sc, dmin*m), so the scales
 * are the dequantized weights' (quant_units.cuh) and only the activations are rounded.
 * Loads at the alignment each block layout guarantees (quant_units.cuh's header). */
#ifndef LLMCUDA_MMQ_UNITS_CUH
#define LLMCUDA_MMQ_UNITS_CUH
#include "quant_units.cuh"

#define NIB_LO 0x0f0f0f0fu
/* each byte (0..127) minus c, as int8 (no borrow crosses a byte: 128 + byte >= c) */
HD uint32_t bytes_sub(uint32_t v, uint32_t c) { return ((v | 0x80808080u) - c * 0x01010101u) ^ 0x80808080u; }
/* bits 0..3 of h to bit 0 of bytes 0..3 (the four shifted copies never overlap) */
HD uint32_t bits_to_bytes(uint32_t h) { return ((h & 15u) * 0x00204081u) & 0x01010101u; }

struct MQ4_0 {
    typedef UQ4_0 U;
    static constexpr int G = 32, NG = 1;
    static constexpr bool OFS = false;
    static HD void load(const uint8_t *b, int, int t, uint32_t *q, float *a, float *) {
        *a = h2f((uint16_t)ld_u16(b));
        const uint32_t v = ld_u32_a2(b + 2 + 4 * t);
        q[0] = bytes_sub(v & NIB_LO, 8);
        q[1] = bytes_sub((v >> 4) & NIB_LO, 8);
    }
};

struct MQ4_1 {
    typedef UQ4_1 U;
    static constexpr int G = 32, NG = 1;
    static constexpr bool OFS = true;
    static HD void load(const uint8_t *b, int, int t, uint32_t *q, float *a, float *m) {
        *a = h2f((uint16_t)ld_u16(b));
        *m = h2f((uint16_t)ld_u16(b + 2));
        const uint32_t v = ld_u32(b + 4 + 4 * t);
        q[0] = v & NIB_LO;
        q[1] = (v >> 4) & NIB_LO;
    }
};

struct MQ5_0 {
    typedef UQ5_0 U;
    static constexpr int G = 32, NG = 1;
    static constexpr bool OFS = false;
    static HD void load(const uint8_t *b, int, int t, uint32_t *q, float *a, float *) {
        *a = h2f((uint16_t)ld_u16(b));
        const uint32_t qh = ld_u32_a2(b + 2), v = ld_u32_a2(b + 6 + 4 * t);
        q[0] = bytes_sub((v & NIB_LO) | (bits_to_bytes(qh >> (4 * t)) << 4), 16);
        q[1] = bytes_sub(((v >> 4) & NIB_LO) | (bits_to_bytes(qh >> (16 + 4 * t)) << 4), 16);
    }
};

struct MQ5_1 {
    typedef UQ5_1 U;
    static constexpr int G = 32, NG = 1;
    static constexpr bool OFS = true;
    static HD void load(const uint8_t *b, int, int t, uint32_t *q, float *a, float *m) {
        *a = h2f((uint16_t)ld_u16(b));
        *m = h2f((uint16_t)ld_u16(b + 2));
        const uint32_t qh = ld_u32(b + 4), v = ld_u32(b + 8 + 4 * t);
        q[0] = (v & NIB_LO) | (bits_to_bytes(qh >> (4 * t)) << 4);
        q[1] = ((v >> 4) & NIB_LO) | (bits_to_bytes(qh >> (16 + 4 * t)) << 4);
    }
};

struct MQ8_0 {
    typedef UQ8_0 U;
    static constexpr int G = 32, NG = 1;
    static constexpr bool OFS = false;
    static HD void load(const uint8_t *b, int, int t, uint32_t *q, float *a, float *) {
        *a = h2f((uint16_t)ld_u16(b));
        q[0] = ld_u32_a2(b + 2 + 4 * t);
        q[1] = ld_u32_a2(b + 18 + 4 * t);
    }
};

/* Q4_K / Q5_K: group j = sub-block j (8 per block), a = d*sc, b = -dmin*m */
template <class UK, bool FIVE>
struct MQK45 {
    typedef UK U;
    static constexpr int G = 32, NG = 8;
    static constexpr bool OFS = true;
    static HD void load(const uint8_t *b, int j, int t, uint32_t *q, float *a, float *m) {
        const float d = h2f((uint16_t)ld_u16(b)), dmin = h2f((uint16_t)ld_u16(b + 2));
        int sc, mn;
        scale_min_k4(j, b + 4, &sc, &mn);
        *a = d * (float)sc;
        *m = -(dmin * (float)mn);
        const uint8_t *qs = b + (FIVE ? 48 : 16) + 32 * (j >> 1) + 4 * t;   /* 4-aligned */
        const int sh = 4 * (j & 1);
        q[0] = (ld_u32(qs) >> sh) & NIB_LO;
        q[1] = (ld_u32(qs + 16) >> sh) & NIB_LO;
        if (FIVE) {
            const uint8_t *qh = b + 16 + 4 * t;
            q[0] |= ((ld_u32(qh) >> j) & 0x01010101u) << 4;
            q[1] |= ((ld_u32(qh + 16) >> j) & 0x01010101u) << 4;
        }
    }
};
typedef MQK45<UQ4_K, false> MQ4_K;
typedef MQK45<UQ5_K, true> MQ5_K;

/* Q6_K: group j = elements 16j..16j+15 (scale sc[j]), a = d*sc, codes q - 32 */
struct MQ6_K {
    typedef UQ6_K U;
    static constexpr int G = 16, NG = 16;
    static constexpr bool OFS = false;
    static HD void load(const uint8_t *b, int j, int t, uint32_t *q, float *a, float *) {
        const int h = j >> 3, qq = (j >> 1) & 3, l = 16 * (j & 1) + 4 * t;
        *a = h2f((uint16_t)ld_u16(b + 208)) * (float)(int8_t)ld_u8(b + 192 + j);
        const uint32_t lo = ld_u32_a2(b + 64 * h + 32 * (qq & 1) + l), hi = ld_u32_a2(b + 128 + 32 * h + l);
        q[0] = bytes_sub(((lo >> (qq < 2 ? 0 : 4)) & NIB_LO) | (((hi >> (2 * qq)) & 0x03030303u) << 4), 32);
    }
};

/* Q2_K: group j = elements 16j..16j+15, a = d*(sc&15), b = -dmin*(sc>>4) (UQ2_K's),
 * 2-bit codes. Its offset multiplies the group's own 16 activations: mmq.cu takes their
 * code sum from a second mma (A all ones), Q8_1's s covering 32 */
struct MQ2_K {
    typedef UQ2_K U;
    static constexpr int G = 16, NG = 16;
    static constexpr bool OFS = true;
    static HD void load(const uint8_t *b, int j, int t, uint32_t *q, float *a, float *m) {
        const uint32_t sc = ld_u8(b + j);
        *a = h2f((uint16_t)ld_u16(b + 80)) * (float)(sc & 15u);
        *m = -(h2f((uint16_t)ld_u16(b + 82)) * (float)(sc >> 4));
        q[0] = (ld_u32(b + 16 + 32 * (j / 8) + 16 * (j & 1) + 4 * t) >> (2 * ((j % 8) / 2))) & 0x03030303u;
    }
};

/* Q3_K: group j = elements 16j..16j+15, a = d*(sc6 - 32) (quant_units.cuh's UQ3_K),
 * codes (2 low bits | hmask bit << 2) - 4 */
struct MQ3_K {
    typedef UQ3_K U;
    static constexpr int G = 16, NG = 16;
    static constexpr bool OFS = false;
    static HD void load(const uint8_t *b, int j, int t, uint32_t *q, float *a, float *) {
        const uint8_t *ps = b + 96;
        const int lo = (int)((j < 8 ? ld_u8(ps + j) : ld_u8(ps + j - 8) >> 4) & 15u);
        const int hi = (int)((ld_u8(ps + 8 + (j & 3)) >> (2 * (j >> 2))) & 3u);
        *a = h2f((uint16_t)ld_u16(b + 108)) * (float)((lo | (hi << 4)) - 32);
        const uint32_t ql = ld_u32_a2(b + 32 + 32 * (j / 8) + 16 * (j & 1) + 4 * t);
        const uint32_t hm = ld_u32_a2(b + 16 * (j & 1) + 4 * t);
        q[0] = bytes_sub(((ql >> (2 * ((j % 8) / 2))) & 0x03030303u) | (((hm >> (j / 2)) & 0x01010101u) << 2), 4);
    }
};

/* the types with integer kernels */
#define LLMCUDA_FOR_EACH_MQ(X) \
    X(MQ4_0) X(MQ4_1) X(MQ5_0) X(MQ5_1) X(MQ8_0) X(MQ2_K) X(MQ3_K) X(MQ4_K) X(MQ5_K) X(MQ6_K)

#endif
