/* Attention inner loops over the F16 KV cache: a scalar version and AVX2/AVX-512
 * versions (F16C conversions, FMA), chosen with the matmul kernels (dispatch.c).
 * Each SIMD version only reorders the float sum of the dot product; the F16
 * roundings are the same round-to-nearest-even everywhere. */
#include <immintrin.h>
#include <math.h>
#include "internal.h"

/* ---- scalar ---- */
static float dot_f16_scalar(const f16_t *a, const f16_t *b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += llm_f16_to_f32(a[i]) * llm_f16_to_f32(b[i]);
        s1 += llm_f16_to_f32(a[i + 1]) * llm_f16_to_f32(b[i + 1]);
        s2 += llm_f16_to_f32(a[i + 2]) * llm_f16_to_f32(b[i + 2]);
        s3 += llm_f16_to_f32(a[i + 3]) * llm_f16_to_f32(b[i + 3]);
    }
    for (; i < n; i++) s0 += llm_f16_to_f32(a[i]) * llm_f16_to_f32(b[i]);
    return (s0 + s1) + (s2 + s3);
}
static void mad_f16_scalar(f16_t *y, const f16_t *x, float v, int n) {
    for (int i = 0; i < n; i++) y[i] = llm_f32_to_f16(llm_f16_to_f32(y[i]) + llm_f16_to_f32(x[i]) * v);
}
static void scale_f16_scalar(f16_t *y, float v, int n) {
    for (int i = 0; i < n; i++) y[i] = llm_f32_to_f16(llm_f16_to_f32(y[i]) * v);
}


/* the end of one row's flash attention: its sink (-inf: none, the same bits as
 * without) joins the running max and sum as llama.cpp's flash path adds it after
 * the positions (the accumulator widened, rescaled in F32 when the sink is the new
 * max), then out = acc / S */
static void fa_finish(const f16_t *a, float M, float S, float sink, int n, float *out) {
    float ms = 1.0f, vs = 1.0f;
    if (sink > M) {
        ms = expf(M - sink);
        M = sink;
    } else {
        vs = expf(sink - M);
    }
    S = S * ms + vs;
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int i = 0; i < n; i++) out[i] = (llm_f16_to_f32(a[i]) * ms) * inv;
}
#define FA_SINK(sink, g) ((sink) ? (sink)[g] : -INFINITY)

/* ---- flash attention over one K/V head (see llm_attn_fa_fn) ----
 * Any table: each query row alone, through the table's own row kernels. */
static void attn_fa_generic(const llm_kernel_table *kt, const f16_t *q16, int G, const f16_t *K, const f16_t *V,
                            size_t stride, int start, int end, int n, float scale, const float *sink, f16_t *acc,
                            float *out) {
    for (int g = 0; g < G; g++) {
        const f16_t *q = q16 + (size_t)g * n;
        f16_t *a = acc + (size_t)g * n;
        memset(a, 0, (size_t)n * sizeof *a);
        float M = -INFINITY, S = 0.0f;
        for (int s = start; s <= end; s++) {
            const float v = kt->dot_f16(q, K + s * stride, n) * scale;
            float ms = 1.0f, vs = 1.0f;
            if (v > M) {
                const float Mold = M;
                M = v;
                ms = expf(Mold - M);
                kt->scale_f16(a, ms, n);
            } else {
                vs = expf(v - M);
            }
            kt->mad_f16(a, V + s * stride, vs, n);
            S = S * ms + vs;
        }
        fa_finish(a, M, S, FA_SINK(sink, g), n, out + (size_t)g * n);
    }
}

#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#define LD8(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define ST8(p, v) _mm_storeu_si128((__m128i *)(p), _mm256_cvtps_ph((v), _MM_FROUND_TO_NEAREST_INT))

AVX2 static float dot_f16_avx2(const f16_t *a, const f16_t *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(LD8(a + i), LD8(b + i), s0);
        s1 = _mm256_fmadd_ps(LD8(a + i + 8), LD8(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(LD8(a + i), LD8(b + i), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += llm_f16_to_f32(a[i]) * llm_f16_to_f32(b[i]);
    return s;
}
AVX2 static void mad_f16_avx2(f16_t *y, const f16_t *x, float v, int n) {
    const __m256 vv = _mm256_set1_ps(v);
    int i = 0;
    for (; i + 8 <= n; i += 8) ST8(y + i, _mm256_fmadd_ps(LD8(x + i), vv, LD8(y + i)));
    for (; i < n; i++) y[i] = llm_f32_to_f16(llm_f16_to_f32(y[i]) + llm_f16_to_f32(x[i]) * v);
}
AVX2 static void scale_f16_avx2(f16_t *y, float v, int n) {
    const __m256 vv = _mm256_set1_ps(v);
    int i = 0;
    for (; i + 8 <= n; i += 8) ST8(y + i, _mm256_mul_ps(LD8(y + i), vv));
    for (; i < n; i++) y[i] = llm_f32_to_f16(llm_f16_to_f32(y[i]) * v);
}

#define LD16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define ST16(p, v) _mm256_storeu_si256((__m256i *)(p), _mm512_cvtps_ph((v), _MM_FROUND_TO_NEAREST_INT))

AVX512 static float dot_f16_avx512(const f16_t *a, const f16_t *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(LD16(a + i), LD16(b + i), s0);
        s1 = _mm512_fmadd_ps(LD16(a + i + 16), LD16(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(LD16(a + i), LD16(b + i), s0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    for (; i < n; i++) s += llm_f16_to_f32(a[i]) * llm_f16_to_f32(b[i]);
    return s;
}
AVX512 static void mad_f16_avx512(f16_t *y, const f16_t *x, float v, int n) {
    const __m512 vv = _mm512_set1_ps(v);
    int i = 0;
    for (; i + 16 <= n; i += 16) ST16(y + i, _mm512_fmadd_ps(LD16(x + i), vv, LD16(y + i)));
    for (; i < n; i++) y[i] = llm_f32_to_f16(llm_f16_to_f32(y[i]) + llm_f16_to_f32(x[i]) * v);
}
AVX512 static void scale_f16_avx512(f16_t *y, float v, int n) {
    const __m512 vv = _mm512_set1_ps(v);
    int i = 0;
    for (; i + 16 <= n; i += 16) ST16(y + i, _mm512_mul_ps(LD16(y + i), vv));
    for (; i < n; i++) y[i] = llm_f32_to_f16(llm_f16_to_f32(y[i]) * v);
}

/* Up to 4 query rows together: each K row and V row is loaded and widened once
 * for all of them; per row, the float operations (and their order) are exactly
 * those of dot_f16_avx512, scale_f16_avx512 and mad_f16_avx512 on that row
 * alone (the F16 -> F32 widening of q is exact, so it is done once). */
#define FA_GMAX 4
#define FA_NMAX 512
AVX512 static inline __attribute__((always_inline)) void
fa512_body(const f16_t *q16, const f16_t *K, const f16_t *V, size_t stride, int start, int end, int n,
           float scale, const float *sink, f16_t *acc, float *out, const int NG) {
    float qf[FA_GMAX * FA_NMAX] __attribute__((aligned(64)));
    for (int i = 0; i < NG * n; i++) qf[i] = llm_f16_to_f32(q16[i]);
    memset(acc, 0, (size_t)NG * n * sizeof *acc);
    float M[FA_GMAX], S[FA_GMAX];
    for (int g = 0; g < NG; g++) { M[g] = -INFINITY; S[g] = 0.0f; }
    for (int s = start; s <= end; s++) {
        const f16_t *kr = K + s * stride, *vr = V + s * stride;
        __m512 s0[FA_GMAX], s1[FA_GMAX];
        for (int g = 0; g < NG; g++) { s0[g] = _mm512_setzero_ps(); s1[g] = _mm512_setzero_ps(); }
        int i = 0;
        for (; i + 32 <= n; i += 32) {
            const __m512 k0 = LD16(kr + i), k1 = LD16(kr + i + 16);
            for (int g = 0; g < NG; g++) {
                s0[g] = _mm512_fmadd_ps(_mm512_load_ps(qf + g * n + i), k0, s0[g]);
                s1[g] = _mm512_fmadd_ps(_mm512_load_ps(qf + g * n + i + 16), k1, s1[g]);
            }
        }
        for (; i + 16 <= n; i += 16) {
            const __m512 k0 = LD16(kr + i);
            for (int g = 0; g < NG; g++) s0[g] = _mm512_fmadd_ps(_mm512_load_ps(qf + g * n + i), k0, s0[g]);
        }
        float vs[FA_GMAX];
        for (int g = 0; g < NG; g++) {
            float d = _mm512_reduce_add_ps(_mm512_add_ps(s0[g], s1[g]));
            for (int j = i; j < n; j++) d += llm_f16_to_f32(q16[g * n + j]) * llm_f16_to_f32(kr[j]);
            const float v = d * scale;
            float ms = 1.0f;
            vs[g] = 1.0f;
            if (v > M[g]) {
                const float Mold = M[g];
                M[g] = v;
                ms = expf(Mold - M[g]);
                scale_f16_avx512(acc + (size_t)g * n, ms, n);
            } else {
                vs[g] = expf(v - M[g]);
            }
            S[g] = S[g] * ms + vs[g];
        }
        __m512 vv[FA_GMAX];
        for (int g = 0; g < NG; g++) vv[g] = _mm512_set1_ps(vs[g]);
        i = 0;
        for (; i + 16 <= n; i += 16) {
            const __m512 x = LD16(vr + i);
            for (int g = 0; g < NG; g++) {
                f16_t *y = acc + (size_t)g * n + i;
                ST16(y, _mm512_fmadd_ps(x, vv[g], LD16(y)));
            }
        }
        for (; i < n; i++)
            for (int g = 0; g < NG; g++) {
                f16_t *y = acc + (size_t)g * n + i;
                *y = llm_f32_to_f16(llm_f16_to_f32(*y) + llm_f16_to_f32(vr[i]) * vs[g]);
            }
    }
    for (int g = 0; g < NG; g++) fa_finish(acc + (size_t)g * n, M[g], S[g], FA_SINK(sink, g), n, out + (size_t)g * n);
}
AVX512 static void attn_fa_avx512(const llm_kernel_table *kt, const f16_t *q16, int G, const f16_t *K, const f16_t *V,
                                  size_t stride, int start, int end, int n, float scale, const float *sink, f16_t *acc,
                                  float *out) {
    if (n > FA_NMAX || (n & 15)) { attn_fa_generic(kt, q16, G, K, V, stride, start, end, n, scale, sink, acc, out); return; }
    for (int g = 0; g < G; g += FA_GMAX) {
        const size_t o = (size_t)g * n;
        switch (G - g < FA_GMAX ? G - g : FA_GMAX) {
        case 4: fa512_body(q16 + o, K, V, stride, start, end, n, scale, sink ? sink + g : NULL, acc + o, out + o, 4); break;
        case 3: fa512_body(q16 + o, K, V, stride, start, end, n, scale, sink ? sink + g : NULL, acc + o, out + o, 3); break;
        case 2: fa512_body(q16 + o, K, V, stride, start, end, n, scale, sink ? sink + g : NULL, acc + o, out + o, 2); break;
        default: fa512_body(q16 + o, K, V, stride, start, end, n, scale, sink ? sink + g : NULL, acc + o, out + o, 1); break;
        }
    }
}
#endif

void llm_attn_kernels(llm_kernel_table *t, int isa) {
    t->dot_f16 = dot_f16_scalar;
    t->mad_f16 = mad_f16_scalar;
    t->scale_f16 = scale_f16_scalar;
    t->attn_fa = attn_fa_generic;
#if defined(__x86_64__)
    if (isa == 1) {
        t->dot_f16 = dot_f16_avx2; t->mad_f16 = mad_f16_avx2;
        t->scale_f16 = scale_f16_avx2;
    } else if (isa == 2) {
        t->dot_f16 = dot_f16_avx512; t->mad_f16 = mad_f16_avx512;
        t->scale_f16 = scale_f16_avx512;
        t->attn_fa = attn_fa_avx512;
    }
#else
    (void)isa;
#endif
}
