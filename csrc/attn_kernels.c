/* Attention inner loops over the F16 KV cache: a scalar version and AVX2/AVX-512
 * versions (F16C conversions, FMA), chosen with the matmul kernels (dispatch.c).
 * Each SIMD version only reorders the float sum of the dot product; the F16
 * roundings are the same round-to-nearest-even everywhere. */
#include <immintrin.h>
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
static void axpy_f16_scalar(float *y, const f16_t *x, float v, int n) {
    for (int i = 0; i < n; i++) y[i] += v * llm_f16_to_f32(x[i]);
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
AVX2 static void axpy_f16_avx2(float *y, const f16_t *x, float v, int n) {
    const __m256 vv = _mm256_set1_ps(v);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(LD8(x + i), vv, _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += v * llm_f16_to_f32(x[i]);
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
AVX512 static void axpy_f16_avx512(float *y, const f16_t *x, float v, int n) {
    const __m512 vv = _mm512_set1_ps(v);
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(LD16(x + i), vv, _mm512_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += v * llm_f16_to_f32(x[i]);
}
#endif

void llm_attn_kernels(llm_kernel_table *t, int isa) {
    t->dot_f16 = dot_f16_scalar;
    t->mad_f16 = mad_f16_scalar;
    t->scale_f16 = scale_f16_scalar;
    t->axpy_f16 = axpy_f16_scalar;
#if defined(__x86_64__)
    if (isa == 1) {
        t->dot_f16 = dot_f16_avx2; t->mad_f16 = mad_f16_avx2;
        t->scale_f16 = scale_f16_avx2; t->axpy_f16 = axpy_f16_avx2;
    } else if (isa == 2) {
        t->dot_f16 = dot_f16_avx512; t->mad_f16 = mad_f16_avx512;
        t->scale_f16 = scale_f16_avx512; t->axpy_f16 = axpy_f16_avx512;
    }
#else
    (void)isa;
#endif
}
