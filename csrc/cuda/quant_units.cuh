/* Weight decoding for the matmul kernels, one "unit" of 8 weights at a time.
 *
 * A row of k weights is k/QK blocks of BB bytes (the GGUF layouts, csrc/internal.h's
 * block_* structs; F32/F16/BF16 are cut into blocks of 8). Each
 * block is NU units; unit u of a block decodes to 8 floats w[0..7], which are the
 * block's elements run(u,0)+0..3 (w[0..3]) and run(u,1)+0..3 (w[4..7]): two runs
 * of 4, so the matching activations are two aligned float4 loads. A warp walks a
 * row unit by unit, lane l taking units l, l+32, ...: adjacent lanes read adjacent
 * bytes.
 *
 * The arithmetic of every value is that of csrc/quants.c's dequantizer (same
 * operations, same order, a*b+c never fused: mul_rn/add_rn), so decode() gives
 * its bits exactly, on the host (dequant_check.cu checks this) and on the device.
 *
 * Alignment: cudaMalloc'd rows start at multiples of BB, so a block start is
 * aligned to the largest power of two dividing BB: MXFP4 1 byte (byte loads only),
 * Q4_0/Q5_0/Q8_0/Q3_K/Q6_K/TQ1_0/TQ2_0/IQ4_NL/IQ2_XXS/IQ2_XS/IQ2_S/IQ3_XXS/IQ3_S/IQ1_S 2,
 * Q4_1/Q2_K/NVFP4 4, Q5_1/IQ4_XS/IQ1_M 8, Q4_K/Q5_K/F16/BF16 16, F32 32. Loads never
 * assume more. */
#ifndef LLMCUDA_QUANT_UNITS_CUH
#define LLMCUDA_QUANT_UNITS_CUH
#include "common.cuh"

/* the 8 bytes b[0..7] of two 32-bit words */
#define BYTE8(lo, hi, i) ((i) < 4 ? ((lo) >> (8 * (i))) & 0xffu : ((hi) >> (8 * ((i) - 4))) & 0xffu)

struct UF32 {
    static constexpr int type = CT_F32, QK = 8, BB = 32, NU = 1;
    static HD int run(int, int r) { return 4 * r; }
    static HD void decode(const uint8_t *b, int, float *w) {
        const float *f = (const float *)b;
UNROLL
        for (int i = 0; i < 8; i++) w[i] = f[i];
    }
};

/* F16 and BF16: 8 halves, converted by h2f or bf2f */
template <int TYPE, bool BF>
struct UHalf {
    static constexpr int type = TYPE, QK = 8, BB = 16, NU = 1;
    static HD float cv(uint16_t h) { return BF ? bf2f(h) : h2f(h); }
    static HD int run(int, int r) { return 4 * r; }
    static HD void decode(const uint8_t *b, int, float *w) {
#ifdef __CUDA_ARCH__
        const uint4 v = *(const uint4 *)b;
        const uint32_t p[4] = {v.x, v.y, v.z, v.w};
UNROLL
        for (int i = 0; i < 4; i++) {
            w[2 * i] = cv((uint16_t)(p[i] & 0xffffu));
            w[2 * i + 1] = cv((uint16_t)(p[i] >> 16));
        }
#else
        for (int i = 0; i < 8; i++) w[i] = cv((uint16_t)ld_u16(b + 2 * i));
#endif
    }
};
typedef UHalf<CT_F16, false> UF16;
typedef UHalf<CT_BF16, true> UBF16;

/* Q4_0: d f16 @0, qs[16] @2; qs[j] = element j (low nibble), j+16 (high); y = (q-8)*d.
 * Unit u: qs[4u..4u+3] -> elements 4u..4u+3 and 16+4u..16+4u+3. */
struct UQ4_0 {
    static constexpr int type = CT_Q4_0, QK = 32, BB = 18, NU = 4;
    static HD int run(int u, int r) { return 16 * r + 4 * u; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const float d = h2f((uint16_t)ld_u16(b));
        const uint32_t q = ld_u32_a2(b + 2 + 4 * u);
UNROLL
        for (int i = 0; i < 4; i++) {
            const int v = (int)((q >> (8 * i)) & 0xffu);
            w[i] = (float)((v & 15) - 8) * d;
            w[4 + i] = (float)((v >> 4) - 8) * d;
        }
    }
};

/* Q4_1: d @0, m @2, qs @4; y = q*d + m */
struct UQ4_1 {
    static constexpr int type = CT_Q4_1, QK = 32, BB = 20, NU = 4;
    static HD int run(int u, int r) { return 16 * r + 4 * u; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const float d = h2f((uint16_t)ld_u16(b)), m = h2f((uint16_t)ld_u16(b + 2));
        const uint32_t q = ld_u32(b + 4 + 4 * u);
UNROLL
        for (int i = 0; i < 4; i++) {
            const int v = (int)((q >> (8 * i)) & 0xffu);
            w[i] = add_rn(mul_rn((float)(v & 15), d), m);
            w[4 + i] = add_rn(mul_rn((float)(v >> 4), d), m);
        }
    }
};

/* Q5_0: d @0, qh u32 @2 (bit e = 5th bit of element e), qs @6; y = (q-16)*d */
struct UQ5_0 {
    static constexpr int type = CT_Q5_0, QK = 32, BB = 22, NU = 4;
    static HD int run(int u, int r) { return 16 * r + 4 * u; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const float d = h2f((uint16_t)ld_u16(b));
        const uint32_t qh = ld_u32_a2(b + 2);
        const uint32_t q = ld_u32_a2(b + 6 + 4 * u);
UNROLL
        for (int i = 0; i < 4; i++) {
            const int v = (int)((q >> (8 * i)) & 0xffu), e = 4 * u + i;
            const int lo = (v & 15) | (int)(((qh >> e) & 1u) << 4);
            const int hi = (v >> 4) | (int)(((qh >> (e + 16)) & 1u) << 4);
            w[i] = (float)(lo - 16) * d;
            w[4 + i] = (float)(hi - 16) * d;
        }
    }
};

/* Q5_1: d @0, m @2, qh @4, qs @8; y = q*d + m */
struct UQ5_1 {
    static constexpr int type = CT_Q5_1, QK = 32, BB = 24, NU = 4;
    static HD int run(int u, int r) { return 16 * r + 4 * u; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const float d = h2f((uint16_t)ld_u16(b)), m = h2f((uint16_t)ld_u16(b + 2));
        const uint32_t qh = ld_u32(b + 4);
        const uint32_t q = ld_u32(b + 8 + 4 * u);
UNROLL
        for (int i = 0; i < 4; i++) {
            const int v = (int)((q >> (8 * i)) & 0xffu), e = 4 * u + i;
            const int lo = (v & 15) | (int)(((qh >> e) & 1u) << 4);
            const int hi = (v >> 4) | (int)(((qh >> (e + 16)) & 1u) << 4);
            w[i] = add_rn(mul_rn((float)lo, d), m);
            w[4 + i] = add_rn(mul_rn((float)hi, d), m);
        }
    }
};

/* Q8_0: d @0, qs int8[32] @2; unit u = elements 8u..8u+7 */
struct UQ8_0 {
    static constexpr int type = CT_Q8_0, QK = 32, BB = 34, NU = 4;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const float d = h2f((uint16_t)ld_u16(b));
        const uint32_t lo = ld_u32_a2(b + 2 + 8 * u), hi = ld_u32_a2(b + 6 + 8 * u);
UNROLL
        for (int i = 0; i < 8; i++) w[i] = (float)(int8_t)BYTE8(lo, hi, i) * d;
    }
};

/* Q2_K: scales[16] @0, qs[64] @16, d @80, dmin @82. Element e: sub-block s = e/16,
 * 2-bit q = (qs[32(s/8) + 16(s&1) + e%16] >> 2((s%8)/2)) & 3, y = d*(sc&15)*q - dmin*(sc>>4).
 * Unit u = elements 8u..8u+7 (s = u/2). */
struct UQ2_K {
    static constexpr int type = CT_Q2_K, QK = 256, BB = 84, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const int s = u >> 1, l0 = 8 * (u & 1);
        const float d = h2f((uint16_t)ld_u16(b + 80)), dmin = h2f((uint16_t)ld_u16(b + 82));
        const uint32_t sc = ld_u8(b + s);
        const float dl = d * (float)(sc & 15u), ml = dmin * (float)(sc >> 4);
        const uint8_t *q = b + 16 + 32 * (s / 8) + 16 * (s & 1) + l0;
        const uint32_t lo = ld_u32(q), hi = ld_u32(q + 4);
        const int shift = 2 * ((s % 8) / 2);
UNROLL
        for (int i = 0; i < 8; i++) w[i] = sub_rn(mul_rn(dl, (float)((BYTE8(lo, hi, i) >> shift) & 3u)), ml);
    }
};

/* Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108. Sub-block s = e/16 has the
 * 6-bit scale (lo nibble | 2 high bits << 4) - 32; value = low2 - (hbit ? 0 : 4),
 * hbit = bit s/2 of hmask[16(s&1) + e%16]. */
struct UQ3_K {
    static constexpr int type = CT_Q3_K, QK = 256, BB = 110, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const int s = u >> 1, l0 = 8 * (u & 1);
        const uint8_t *ps = b + 96;
        const float d = h2f((uint16_t)ld_u16(b + 108));
        const int lo = (int)((s < 8 ? ld_u8(ps + s) : ld_u8(ps + s - 8) >> 4) & 15u);
        const int hi = (int)((ld_u8(ps + 8 + (s & 3)) >> (2 * (s >> 2))) & 3u);
        const float dl = d * (float)((lo | (hi << 4)) - 32);
        const uint8_t *q = b + 32 + 32 * (s / 8) + 16 * (s & 1) + l0;
        const uint8_t *h = b + 16 * (s & 1) + l0;
        const uint32_t qlo = ld_u32_a2(q), qhi = ld_u32_a2(q + 4);
        const uint32_t hlo = ld_u32_a2(h), hhi = ld_u32_a2(h + 4);
        const int shift = 2 * ((s % 8) / 2), hbit = s / 2;
UNROLL
        for (int i = 0; i < 8; i++) {
            const int v = (int)((BYTE8(qlo, qhi, i) >> shift) & 3u) - (((BYTE8(hlo, hhi, i) >> hbit) & 1u) ? 0 : 4);
            w[i] = dl * (float)v;
        }
    }
};

/* Q4_K / Q5_K 6-bit scale and min of sub-block j (get_scale_min_k4) */
HD void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = (int)(ld_u8(q + j) & 63u);
        *m = (int)(ld_u8(q + j + 4) & 63u);
    } else {
        *sc = (int)((ld_u8(q + j + 4) & 15u) | ((ld_u8(q + j - 4) >> 6) << 4));
        *m = (int)((ld_u8(q + j + 4) >> 4) | ((ld_u8(q + j) >> 6) << 4));
    }
}

/* Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16. Sub-block j = e/32 (8 of them):
 * nibble (j odd: high) of qs[32(j/2) + e%32]; y = d*sc*q - dmin*m.
 * Unit u = elements 8u..8u+7 (j = u/4). */
struct UQ4_K {
    static constexpr int type = CT_Q4_K, QK = 256, BB = 144, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const int j = u >> 2, l0 = 8 * (u & 3);
        const float d = h2f((uint16_t)ld_u16(b)), dmin = h2f((uint16_t)ld_u16(b + 2));
        int sc, m;
        scale_min_k4(j, b + 4, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        const uint8_t *q = b + 16 + 32 * (j / 2) + l0;                /* 8-aligned */
#ifdef __CUDA_ARCH__
        const uint2 qq = *(const uint2 *)q;
        const uint32_t lo = qq.x, hi = qq.y;
#else
        const uint32_t lo = ld_u32(q), hi = ld_u32(q + 4);
#endif
        const int shift = 4 * (j & 1);
UNROLL
        for (int i = 0; i < 8; i++) w[i] = sub_rn(mul_rn(d1, (float)((BYTE8(lo, hi, i) >> shift) & 15u)), m1);
    }
};

/* Q5_K: as Q4_K with qh[32] @16 (bit j of qh[e%32] = 5th bit), qs @48 */
struct UQ5_K {
    static constexpr int type = CT_Q5_K, QK = 256, BB = 176, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const int j = u >> 2, l0 = 8 * (u & 3);
        const float d = h2f((uint16_t)ld_u16(b)), dmin = h2f((uint16_t)ld_u16(b + 2));
        int sc, m;
        scale_min_k4(j, b + 4, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        const uint8_t *q = b + 48 + 32 * (j / 2) + l0, *h = b + 16 + l0;   /* both 8-aligned */
#ifdef __CUDA_ARCH__
        const uint2 qq = *(const uint2 *)q, hh = *(const uint2 *)h;
        const uint32_t lo = qq.x, hi = qq.y, hlo = hh.x, hhi = hh.y;
#else
        const uint32_t lo = ld_u32(q), hi = ld_u32(q + 4), hlo = ld_u32(h), hhi = ld_u32(h + 4);
#endif
        const int shift = 4 * (j & 1);
UNROLL
        for (int i = 0; i < 8; i++) {
            const int v = (int)((BYTE8(lo, hi, i) >> shift) & 15u) | (int)(((BYTE8(hlo, hhi, i) >> j) & 1u) << 4);
            w[i] = sub_rn(mul_rn(d1, (float)v), m1);
        }
    }
};

/* Q6_K: ql[128] @0, qh[64] @128, scales int8[16] @192, d @208. Element e: h = e/128,
 * r = e%128, qq = r/32, l = r%32: low 4 bits in ql[64h + 32(qq&1) + l] (high nibble
 * if qq >= 2), high 2 bits (qh[32h + l] >> 2qq) & 3; y = d*sc[e/16]*(q - 32). */
struct UQ6_K {
    static constexpr int type = CT_Q6_K, QK = 256, BB = 210, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const int h = u >> 4, qq = (u >> 2) & 3, l0 = 8 * (u & 3);
        const float d = h2f((uint16_t)ld_u16(b + 208));
        const float dl = d * (float)(int8_t)ld_u8(b + 192 + (u >> 1));
        const uint8_t *ql = b + 64 * h + 32 * (qq & 1) + l0, *qh = b + 128 + 32 * h + l0;
        const uint32_t lo = ld_u32_a2(ql), hi = ld_u32_a2(ql + 4);
        const uint32_t hlo = ld_u32_a2(qh), hhi = ld_u32_a2(qh + 4);
        const int lshift = qq < 2 ? 0 : 4, hshift = 2 * qq;
UNROLL
        for (int i = 0; i < 8; i++) {
            const int v = (int)(((BYTE8(lo, hi, i) >> lshift) & 15u) | (((BYTE8(hlo, hhi, i) >> hshift) & 3u) << 4)) - 32;
            w[i] = dl * (float)v;
        }
    }
};

/* ---- FP4 (csrc/type_fp4.c): E2M1 codes, their values doubled as integers, times half
 * the block's (MXFP4) or sub-block's (NVFP4) scale; each value an exact float product */

/* the doubled E2M1 value of a 4-bit code: magnitudes 0 1 2 3 4 6 8 12 (nibbles of one
 * word, no table to place in device memory), sign bit 3 */
HD int fp4_value(uint32_t code) {
    const int m = (int)((0xC8643210u >> (4 * (code & 7u))) & 15u);
    return (code & 8u) ? -m : m;
}

/* half the E8M0 value, 2^(e - 128), from its bits: e < 2 the subnormals 2^-128, 2^-127,
 * e = 255 gives 2^127 (csrc/type_fp4.c's e8m0_half) */
HD float e8m0_half(uint32_t e) { return bits_f(e < 2 ? 0x00200000u << e : (e - 1) << 23); }

/* half the UE4M3 value (sign bit ignored; 0 and 0x7F give 0): (8 + man or man) * 2^(ex-11),
 * an exact product (csrc/type_fp4.c's ue4m3_half) */
HD float ue4m3_half(uint32_t x) {
    const uint32_t ex = (x >> 3) & 15u, man = x & 7u;
    const float p = bits_f(((ex ? ex : 1u) - 11u + 127u) << 23);
    return (x == 0 || x == 0x7Fu) ? 0.0f : (float)(ex ? 8u + man : man) * p;
}

/* 8 FP4 values: the low nibbles of bytes q0..q3 (w[0..3]) then their high nibbles (w[4..7]) */
HD void fp4_decode8(uint32_t q, float d, float *w) {
UNROLL
    for (int i = 0; i < 4; i++) {
        const uint32_t v = (q >> (8 * i)) & 0xffu;
        w[i] = (float)fp4_value(v & 15u) * d;
        w[4 + i] = (float)fp4_value(v >> 4) * d;
    }
}

/* MXFP4: E8M0 e @0, qs[16] @1; qs[j] = element j (low nibble), j+16 (high); y = value * e8m0_half(e).
 * Unit u: qs[4u..4u+3] -> elements 4u..4u+3 and 16+4u..16+4u+3. 17-byte blocks: bytes only. */
struct UMXFP4 {
    static constexpr int type = CT_MXFP4, QK = 32, BB = 17, NU = 4;
    static HD int run(int u, int r) { return 16 * r + 4 * u; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const uint8_t *q = b + 1 + 4 * u;
        fp4_decode8(ld_u8(q) | ld_u8(q + 1) << 8 | ld_u8(q + 2) << 16 | ld_u8(q + 3) << 24, e8m0_half(ld_u8(b)), w);
    }
};

/* NVFP4: UE4M3 d[4] @0, qs[32] @4; sub-block s (16 elements) has scale d[s] and bytes
 * qs[8s..8s+7]: element 16s+j (low nibble of qs[8s+j]) and 16s+8+j (high).
 * Unit u: sub-block u/2, bytes qs[8s+4(u&1)..+3]. */
struct UNVFP4 {
    static constexpr int type = CT_NVFP4, QK = 64, BB = 36, NU = 8;
    static HD int run(int u, int r) { return 16 * (u >> 1) + 8 * r + 4 * (u & 1); }
    static HD void decode(const uint8_t *b, int u, float *w) {
        fp4_decode8(ld_u32(b + 4 + 4 * u), ue4m3_half(ld_u8(b + (u >> 1))), w);
    }
};

/* ---- ternary (csrc/type_ternary.c): 256 codes t in 0..2, y = (t - 1) * d */

/* 8 values from their codes t[i] in 0..2: y = (float)(t - 1) * d, as the CPU */
HD void ternary_decode8(const uint32_t *t, float d, float *w) {
UNROLL
    for (int i = 0; i < 8; i++) w[i] = (float)((int)t[i] - 1) * d;
}

/* TQ2_0: qs[64] @0, d @64; element 128j + 32l + m: bits 2l, 2l+1 of qs[32j + m].
 * Unit u = elements 8u..8u+7: j = u/16, l = (u/4)%4, bytes qs[32j + 8(u%4)..+7]. */
struct UTQ2_0 {
    static constexpr int type = CT_TQ2_0, QK = 256, BB = 66, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const uint8_t *q = b + 32 * (u >> 4) + 8 * (u & 3);
        const uint32_t lo = ld_u32_a2(q), hi = ld_u32_a2(q + 4);
        const int shift = 2 * ((u >> 2) & 3);
        uint32_t t[8];
UNROLL
        for (int i = 0; i < 8; i++) t[i] = (BYTE8(lo, hi, i) >> shift) & 3u;
        ternary_decode8(t, h2f((uint16_t)ld_u16(b + 64)), w);
    }
};

/* TQ1_0: qs[48] @0, qh[4] @48, d @52; 5 trits a byte as a base-3 fraction of 256:
 * trit n of byte q is ((uint8_t)(q * 3^n) * 3) >> 8. Elements 32n + m: trit n of qs[m]
 * (m < 32); 160 + 16n + m: trit n of qs[32 + m] (m < 16); 240 + 4n + j: trit n of qh[j].
 * Unit u = elements 8u..8u+7: u < 20 bytes qs[8(u%4)..+7], trit u/4; u < 30 (v = u - 20)
 * bytes qs[32 + 8(v%2)..+7], trit v/2; u = 30, 31 qh[0..3] twice, trits 2(u-30) for
 * w[0..3] and 2(u-30)+1 for w[4..7]. */
struct UTQ1_0 {
    static constexpr int type = CT_TQ1_0, QK = 256, BB = 54, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD uint32_t pow3(int n) { return (uint32_t)(0x511B090301ull >> (8 * n)) & 0xffu; }   /* 3^n, n < 5 */
    static HD uint32_t trit(uint32_t q, uint32_t p) { return (((q * p) & 0xffu) * 3u) >> 8; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const uint8_t *q;
        uint32_t p0, p1;
        if (u < 20) { q = b + 8 * (u & 3); p0 = p1 = pow3(u >> 2); }
        else if (u < 30) { q = b + 32 + 8 * ((u - 20) & 1); p0 = p1 = pow3((u - 20) >> 1); }
        else { q = b + 48; p0 = pow3(2 * (u - 30)); p1 = 3u * p0; }
        const uint32_t lo = ld_u32_a2(q), hi = u < 30 ? ld_u32_a2(q + 4) : lo;
        uint32_t t[8];
UNROLL
        for (int i = 0; i < 8; i++) t[i] = trit(BYTE8(lo, hi, i), i < 4 ? p0 : p1);
        ternary_decode8(t, h2f((uint16_t)ld_u16(b + 52)), w);
    }
};

/* ---- the i-quants (csrc/type_iq4.c, csrc/type_iq_grid.c): their tables are csrc/iq_grids.h's
 * (generated from gguf-py's), included twice: the host copies (static const), which host decode
 * reads (dequant_check), then the same tables as device globals (name_dev).
 *
 * Device memory, not __constant__ (their 34,960 bytes would fit its 64 KB): the constant cache
 * serves one address per pass and serializes a warp's distinct addresses, and these
 * lookups are gathers, each lane's index its own data (lane l decodes unit l of the
 * row): up to 32 passes a lookup, several lookups a unit. Global memory read through
 * the read-only cache (__ldg, ld.global.nc) serves a gather by the cache lines it
 * touches: a 16-byte table is one line, a 1-16 KB grid can stay in L1 while an SM runs
 * the type's matmul. (Not timed on a GPU yet.) */
#include "iq_grids.h"
#define LLM_IQ_TABLE(type, name) static __device__ const type name##_dev
#include "iq_grids.h"

#ifdef __CUDA_ARCH__
__device__ __forceinline__ uint64_t iq_ld(const uint64_t *p) { return __ldg((const unsigned long long *)p); }
__device__ __forceinline__ uint32_t iq_ld(const uint32_t *p) { return __ldg((const unsigned int *)p); }
__device__ __forceinline__ uint32_t iq_ld(const uint8_t *p) { return __ldg((const unsigned char *)p); }
__device__ __forceinline__ int iq_ld(const int8_t *p) { return __ldg((const signed char *)p); }
/* entry i of table `name` of iq_grids.h: the device copy on the device, the host copy on the host */
#define IQ_TAB(name, i) iq_ld(&name##_dev[i])
#else
#define IQ_TAB(name, i) name[i]
#endif

/* 8 IQ4 values times d: codes are the low nibbles of bytes q0..q3 (w[0..3]) then their
 * high nibbles (w[4..7]); a value is d * kvalues[code] (type_iq4.c's dequantizers) */
HD void iq4_decode8(uint32_t q, float d, float *w) {
UNROLL
    for (int i = 0; i < 4; i++) {
        const uint32_t v = (q >> (8 * i)) & 0xffu;
        w[i] = mul_rn(d, (float)IQ_TAB(llm_kvalues_iq4nl, v & 15u));
        w[4 + i] = mul_rn(d, (float)IQ_TAB(llm_kvalues_iq4nl, v >> 4));
    }
}

/* IQ4_NL: d @0, qs[16] @2, Q4_0's layout with the non-linear values.
 * Unit u: qs[4u..4u+3] -> elements 4u..4u+3 and 16+4u..16+4u+3. */
struct UIQ4_NL {
    static constexpr int type = CT_IQ4_NL, QK = 32, BB = 18, NU = 4;
    static HD int run(int u, int r) { return 16 * r + 4 * u; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        iq4_decode8(ld_u32_a2(b + 2 + 4 * u), h2f((uint16_t)ld_u16(b)), w);
    }
};

/* IQ4_XS: d @0, scales_h u16 @2, scales_l[4] @4, qs[128] @8. Sub-block ib (32 elements):
 * codes qs[16ib..16ib+15] as IQ4_NL's block, scale d * (ls - 32) rounded once, ls = the
 * nibble ib%2 of scales_l[ib/2] | bits 2ib, 2ib+1 of scales_h << 4.
 * Unit u: ib = u/4, bytes qs[16ib + 4(u%4)..+3]. */
struct UIQ4_XS {
    static constexpr int type = CT_IQ4_XS, QK = 256, BB = 136, NU = 32;
    static HD int run(int u, int r) { return 32 * (u >> 2) + 16 * r + 4 * (u & 3); }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const int ib = u >> 2;
        const int ls = (int)(((ld_u8(b + 4 + ib / 2) >> (4 * (ib & 1))) & 15u) | (((ld_u16(b + 2) >> (2 * ib)) & 3u) << 4));
        iq4_decode8(ld_u32(b + 8 + 4 * u), mul_rn(h2f((uint16_t)ld_u16(b)), (float)(ls - 32)), w);
    }
};

/* ---- the grid i-quants: 256-element blocks of 32 groups of 8, unit u = group u (elements
 * 8u..8u+7). A group is a grid row (8 magnitude bytes, or two rows of 4 for IQ3) with 8
 * sign bits (ksigns: 7 stored, the 8th making the count even; or a whole byte), or an IQ1
 * row of -1/0/1 with a +-1/8 delta; its scale code ls. Values as type_iq_grid.c's
 * dequant_block: db * mag * (+-1) (db = d*(0.5+ls)*0.25 IQ2, d*(0.5+ls)*0.5 IQ3_XXS,
 * d*(2ls+1) IQ3_S), or IQ1's db * (v + delta) (db = d*(2ls+1)); each product rounded. */

/* 8 values db * row byte j * (sign bit j of s ? -1 : 1) */
HD void grid_decode8(uint64_t row, uint32_t s, float db, float *w) {
UNROLL
    for (int j = 0; j < 8; j++)
        w[j] = mul_rn(mul_rn(db, (float)((row >> (8 * j)) & 0xffu)), (s >> j) & 1u ? -1.0f : 1.0f);
}

/* IQ2's group scale, d * (0.5 + ls) * 0.25 (IQ3_XXS: * 0.5), rounded in that order */
HD float grid_scale_half(float d, uint32_t ls, float f) { return mul_rn(mul_rn(d, 0.5f + (float)ls), f); }

/* the 7 stored sign bits of group l of a 32-element run, as 8 (ksigns) */
HD uint32_t grid_signs7(uint32_t sg, int l) { return IQ_TAB(llm_ksigns_iq2xs, (sg >> (7 * l)) & 127u); }

/* IQ2_XXS: d @0, then per 32 elements (ib = u/4) 8 bytes @2+8ib: 4 grid indices (group
 * l = u%4: byte l), a u32 of 4 x 7 sign bits and ls in its top 4 */
struct UIQ2_XXS {
    static constexpr int type = CT_IQ2_XXS, QK = 256, BB = 66, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const uint8_t *q = b + 2 + 8 * (u >> 2);
        const uint32_t sg = ld_u32_a2(q + 4);
        grid_decode8(IQ_TAB(llm_iq2xxs_grid, ld_u8(q + (u & 3))), grid_signs7(sg, u & 3),
                     grid_scale_half(h2f((uint16_t)ld_u16(b)), sg >> 28, 0.25f), w);
    }
};

/* IQ2_XS: d @0, qs u16[32] @2 (group u: 9-bit grid index, 7 sign bits), scales[8] @66
 * (nibble (u%4)/2 of byte u/4) */
struct UIQ2_XS {
    static constexpr int type = CT_IQ2_XS, QK = 256, BB = 74, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const uint32_t q = ld_u16(b + 2 + 2 * u);
        const uint32_t ls = (ld_u8(b + 66 + (u >> 2)) >> (4 * ((u & 3) >> 1))) & 15u;
        grid_decode8(IQ_TAB(llm_iq2xs_grid, q & 511u), IQ_TAB(llm_ksigns_iq2xs, q >> 9),
                     grid_scale_half(h2f((uint16_t)ld_u16(b)), ls, 0.25f), w);
    }
};

/* IQ2_S: d @0, qs[64] @2 (group u: index byte u, sign byte 32+u), qh[8] @66 (2 more index
 * bits per group: bits 2l, 2l+1 of qh[u/4], l = u%4), scales[8] @74 as IQ2_XS's */
struct UIQ2_S {
    static constexpr int type = CT_IQ2_S, QK = 256, BB = 82, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const int ib = u >> 2, l = u & 3;
        const uint32_t idx = ld_u8(b + 2 + u) | ((ld_u8(b + 66 + ib) << (8 - 2 * l)) & 0x300u);
        const uint32_t ls = (ld_u8(b + 74 + ib) >> (4 * (l >> 1))) & 15u;
        grid_decode8(IQ_TAB(llm_iq2s_grid, idx), ld_u8(b + 34 + u), grid_scale_half(h2f((uint16_t)ld_u16(b)), ls, 0.25f), w);
    }
};

/* IQ3_XXS: d @0, qs[96] @2: index bytes (group u: 2u, 2u+1, two rows of 4), then per
 * 32 elements a u32 @66+4ib as IQ2_XXS's */
struct UIQ3_XXS {
    static constexpr int type = CT_IQ3_XXS, QK = 256, BB = 98, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const uint32_t sg = ld_u32_a2(b + 66 + 4 * (u >> 2));
        const uint64_t row = (uint64_t)IQ_TAB(llm_iq3xxs_grid, ld_u8(b + 2 + 2 * u))
                           | (uint64_t)IQ_TAB(llm_iq3xxs_grid, ld_u8(b + 3 + 2 * u)) << 32;
        grid_decode8(row, grid_signs7(sg, u & 3), grid_scale_half(h2f((uint16_t)ld_u16(b)), sg >> 28, 0.5f), w);
    }
};

/* IQ3_S: d @0, qs[64] @2 (group u: bytes 2u, 2u+1), qh[8] @66 (their ninth bits: bits
 * 2l, 2l+1 of qh[u/4]), signs[32] @74 (a byte per group), scales[4] @106 (nibble ib%2
 * of byte ib/2 per 32 elements); db = d * (2ls + 1) */
struct UIQ3_S {
    static constexpr int type = CT_IQ3_S, QK = 256, BB = 110, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const int ib = u >> 2, l = u & 3;
        const uint32_t h = ld_u8(b + 66 + ib);
        const uint32_t i0 = ld_u8(b + 2 + 2 * u) | ((h << (8 - 2 * l)) & 256u), i1 = ld_u8(b + 3 + 2 * u) | ((h << (7 - 2 * l)) & 256u);
        const uint32_t ls = (ld_u8(b + 106 + (ib >> 1)) >> (4 * (ib & 1))) & 15u;
        const uint64_t row = (uint64_t)IQ_TAB(llm_iq3s_grid, i0) | (uint64_t)IQ_TAB(llm_iq3s_grid, i1) << 32;
        grid_decode8(row, ld_u8(b + 74 + u), mul_rn(h2f((uint16_t)ld_u16(b)), (float)(2 * ls + 1)), w);
    }
};

/* 8 IQ1 values: db * (row byte j as -1/0/1 + delta), delta -1/8 where dneg, else +1/8 */
HD void iq1_decode8(uint64_t row, float db, uint32_t dneg, float *w) {
    const float delta = dneg ? -0.125f : 0.125f;
UNROLL
    for (int j = 0; j < 8; j++) w[j] = mul_rn(db, add_rn((float)(int8_t)((row >> (8 * j)) & 0xffu), delta));
}

/* IQ1_S: d @0, qs[32] @2 (group u: low 8 index bits), qh u16[8] @34 (per 32 elements:
 * 3 more index bits per group at 3l, ls at bits 12-14, the delta's sign at 15) */
struct UIQ1_S {
    static constexpr int type = CT_IQ1_S, QK = 256, BB = 50, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const uint32_t h = ld_u16(b + 34 + 2 * (u >> 2));
        const uint32_t idx = ld_u8(b + 2 + u) | (((h >> (3 * (u & 3))) & 7u) << 8);
        iq1_decode8(IQ_TAB(llm_iq1s_grid, idx), mul_rn(h2f((uint16_t)ld_u16(b)), (float)(2 * ((h >> 12) & 7u) + 1)),
                    h >> 15, w);
    }
};

/* IQ1_M: qs[32] @0 (group u: low 8 index bits), qh[16] @32 (nibble u%2 of byte u/2: 3
 * more index bits, the delta's sign), scales u16[4] @48: 3-bit ls per 16 elements (word
 * ib/2, bits 6(ib%2) + 3((u%4)/2)), and d's 16 bits in the words' top nibbles */
struct UIQ1_M {
    static constexpr int type = CT_IQ1_M, QK = 256, BB = 56, NU = 32;
    static HD int run(int u, int r) { return 8 * u + 4 * r; }
    static HD void decode(const uint8_t *b, int u, float *w) {
        const int ib = u >> 2;
        const uint32_t s0 = ld_u16(b + 48), s1 = ld_u16(b + 50), s2 = ld_u16(b + 52), s3 = ld_u16(b + 54);
        const float d = h2f((uint16_t)((s0 >> 12) | ((s1 >> 8) & 0x00f0u) | ((s2 >> 4) & 0x0f00u) | (s3 & 0xf000u)));
        const uint32_t nib = (ld_u8(b + 32 + (u >> 1)) >> (4 * (u & 1))) & 15u;
        const uint32_t ls = (ld_u16(b + 48 + 2 * (ib >> 1)) >> (6 * (ib & 1) + 3 * ((u & 3) >> 1))) & 7u;
        iq1_decode8(IQ_TAB(llm_iq1s_grid, ld_u8(b + u) | ((nib & 7u) << 8)), mul_rn(d, (float)(2 * ls + 1)), nib >> 3, w);
    }
};

/* the list the matmul dispatch and the host check walk */
#define LLMCUDA_FOR_EACH_UNIT(X) \
    X(UF32) X(UF16) X(UBF16) X(UQ4_0) X(UQ4_1) X(UQ5_0) X(UQ5_1) X(UQ8_0) \
    X(UQ2_K) X(UQ3_K) X(UQ4_K) X(UQ5_K) X(UQ6_K) X(UMXFP4) X(UNVFP4) X(UTQ1_0) X(UTQ2_0) \
    X(UIQ4_NL) X(UIQ4_XS) X(UIQ2_XXS) X(UIQ2_XS) X(UIQ2_S) X(UIQ3_XXS) X(UIQ3_S) X(UIQ1_S) X(UIQ1_M)

#endif
