/* Float steps shared by the AVX2 and AVX-512 kernel files (included by each after
 * its target pragma and <immintrin.h>, so each copy is built for that file's ISA):
 * llama.cpp's x86 reductions and K-quant float steps, which both tables must run
 * identically for their results to be the same bits. Not read by cffi. */
#ifndef LLM_X86_STEPS_H
#define LLM_X86_STEPS_H

/* fp16 -> fp32. Not _cvtsh_ss: GCC merges its vpinsrw into whatever xmm is at
 * hand, a false dependency that chained the loop iterations (2x slower
 * multi-column kernels). */
static inline __attribute__((always_inline)) float h2f(f16_t h) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* high half + low half, then + movehl, then add_ss of movehdup (llama.cpp's hsum_float_8) */
static inline __attribute__((always_inline)) float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* the tiled K-quant matmul's float steps for one super-block (Q3_K, Q6_K: no
 * min; Q2_K, Q5_K: with the min term), from the exact integers I (lane 0 of IM)
 * and M (lane 1), in xmm lane 0: fnmadd(M, dmin, I*dw) is fma(-dmin, M, I*dw) */
static inline __attribute__((always_inline)) float tiled_step(float acc, __m128i IM, float dw, float dx) {
    const __m128 r = _mm_mul_ss(_mm_cvtepi32_ps(IM), _mm_set_ss(dw));
    return _mm_cvtss_f32(_mm_fmadd_ss(r, _mm_set_ss(dx), _mm_set_ss(acc)));
}
static inline __attribute__((always_inline)) float tiled_step_m(float acc, __m128i IM, float dw, float dmin, float dx) {
    const __m128 f = _mm_cvtepi32_ps(IM);
    const __m128 r = _mm_fnmadd_ss(_mm_movehdup_ps(f), _mm_set_ss(dmin), _mm_mul_ss(f, _mm_set_ss(dw)));
    return _mm_cvtss_f32(_mm_fmadd_ss(r, _mm_set_ss(dx), _mm_set_ss(acc)));
}

#endif
