/* Host-only check (not part of the library; needs no GPU): the unit decoders of
 * quant_units.cuh, run on the host, against the CPU's llm_dequantize, bit for bit,
 * for every type, on rows quantized from random floats, on random bytes, and on a sweep
 * where each byte of a block takes every value 0..255 over the blocks (every exponent or
 * scale byte, every code).
 *
 * Built and run by tools/gpu/gpu_check.sh (nvcc's flags: the Makefile's, with -Icsrc/cuda,
 * linked with the CPU objects of csrc/*.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
#include "quant_units.cuh"

extern "C" {
#include "llmlite.h"
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd() { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)rng; }
static float rndf() { return ((rnd() >> 8) * (1.0f / 16777216.0f)) * 2.0f - 1.0f; }

/* the byte offsets of a block's f16 scale fields (forced finite in the random-bytes pass) */
static int scale_fields(int type, int *off) {
    switch (type) {
    case CT_Q4_0: case CT_Q5_0: case CT_Q8_0: off[0] = 0; return 1;
    case CT_Q4_1: case CT_Q5_1: case CT_Q4_K: case CT_Q5_K: off[0] = 0; off[1] = 2; return 2;
    case CT_Q2_K: off[0] = 80; off[1] = 82; return 2;
    case CT_Q3_K: off[0] = 108; return 1;
    case CT_Q6_K: off[0] = 208; return 1;
    case CT_TQ1_0: off[0] = 52; return 1;
    case CT_TQ2_0: off[0] = 64; return 1;
    case CT_IQ4_NL: case CT_IQ4_XS: case CT_IQ2_XXS: case CT_IQ2_XS: case CT_IQ2_S: case CT_IQ3_XXS:
    case CT_IQ3_S: case CT_IQ1_S: off[0] = 0; return 1;
    default: return 0;
    }
}

static int same(float a, float b) {
    uint32_t x, y;
    memcpy(&x, &a, 4); memcpy(&y, &b, 4);
    return x == y || (a != a && b != b);
}

template <class T> static int check(const char *name) {
    /* at least 256 blocks, for the sweep below */
    const long long rows = 16, k = 256 * T::QK / rows > 1024 ? 256 * T::QK / rows : 1024, n = k * rows;
    const long long rb = (long long)k / T::QK * T::BB;
    std::vector<float> x(n), ref(n), got(n);
    std::vector<uint8_t> q(rows * rb);
    int bad = 0;
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 0) {
            if (!llm_quantize_type_supported(T::type)) {    /* the grid i-quants: read, not written */
                printf("%-7s quantized   : no quantizer (bytes only)\n", name);
                continue;
            }
            for (long long i = 0; i < n; i++) x[i] = rndf() * (1.0f + (float)(i % 7)) * (i % 97 == 0 ? 30.0f : 1.0f);
            if (llm_quantize_rows(T::type, x.data(), q.data(), rows, k)) { printf("%s: quantize failed\n", name); return 1; }
        } else {
            /* random bytes, or the sweep: byte j of block b is b + 37 j (mod 256), so over
             * the (256 or more) blocks every byte of a block takes each of the 256 values */
            for (long long b = 0; b < n / T::QK; b++)
                for (int j = 0; j < T::BB; j++) q[b * T::BB + j] = (uint8_t)(pass == 1 ? rnd() : b + 37 * j);
            int off[2];
            const int nf = scale_fields(T::type, off);
            for (long long b = 0; b < n / T::QK; b++)
                for (int f = 0; f < nf; f++) {      /* a finite f16 of modest size */
                    const uint16_t h = (uint16_t)((rnd() & 0x83ffu) | ((10u + rnd() % 12u) << 10));
                    memcpy(q.data() + b * T::BB + off[f], &h, 2);
                }
            if (T::type == CT_F32)                      /* finite floats */
                for (long long i = 0; i < n; i++) { float f = rndf() * 100.0f; memcpy(q.data() + 4 * i, &f, 4); }
        }
        if (llm_dequantize(T::type, q.data(), ref.data(), n)) { printf("%s: dequantize failed\n", name); return 1; }
        for (long long r = 0; r < rows; r++)
            for (long long b = 0; b < k / T::QK; b++)
                for (int u = 0; u < T::NU; u++) {
                    float w[8];
                    T::decode(q.data() + r * rb + b * T::BB, u, w);
                    for (int i = 0; i < 8; i++)
                        got[r * k + b * T::QK + T::run(u, i / 4) + i % 4] = w[i];
                }
        long long nbad = 0, first = -1;
        for (long long i = 0; i < n; i++)
            if (!same(ref[i], got[i])) { if (first < 0) first = i; nbad++; }
        static const char *const what[3] = {"quantized   ", "random bytes", "every byte  "};
        printf("%-7s %s: %s", name, what[pass], nbad ? "MISMATCH" : "ok");
        if (nbad) printf(" (%lld of %lld, first at %lld: cpu %g, cuda %g)", nbad, n, first, ref[first], got[first]);
        printf("\n");
        bad += nbad != 0;
    }
    return bad;
}

int main(void) {
    int bad = 0;
#define X(T) bad += check<T>(#T + 1);
    LLMCUDA_FOR_EACH_UNIT(X)
#undef X
    printf(bad ? "FAILED\n" : "all decoders match the CPU bit for bit\n");
    return bad ? 1 : 0;
}
