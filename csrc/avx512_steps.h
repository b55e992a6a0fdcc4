/* Inline steps shared by the AVX-512 kernel files (dot_avx512.c: one row at a
 * time; tiles_avx512.c: the 16-row prefill tiles and the 4-row decode kernel),
 * included by each after its target pragma and <immintrin.h>, so each copy is
 * built for AVX-512. Not read by cffi. */
#ifndef LLM_AVX512_STEPS_H
#define LLM_AVX512_STEPS_H

#define INL static inline __attribute__((always_inline))

INL uint32_t ld32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }

INL float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

/* multi-column bodies: NC columns (a literal 1..LLM_NC_MAX), column c at va + c*as */
#define NCM LLM_NC_MAX
#define NCM2 LLM_NC2_MAX
#define FORC for (int c = 0; c < NC; c++)
#define XCOL(T, c) ((const T *)((const char *)va + (long long)(c) * as))

/* ------------------------------------------------------------ K-quants
 * Codes (unsigned) times q8 with vpmaddubsw (pairs into int16; no saturation:
 * at most 2*63*128), then vpdpwssd with the sub-block scales as int16 words:
 * scale and sum in one step, into an int32 accumulator per super-block. */

/* 32 bytes in both halves of a zmm */
INL __m512i bcast32(const void *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }
INL __m512i ld64(const void *p) { return _mm512_loadu_si512(p); }
/* per-16-bit shift counts: a in the low 32 bytes, b in the high 32 */
#define CNT2(a, b) _mm512_set_epi64((b) * 0x0001000100010001LL, (b) * 0x0001000100010001LL, \
                                    (b) * 0x0001000100010001LL, (b) * 0x0001000100010001LL, \
                                    (a) * 0x0001000100010001LL, (a) * 0x0001000100010001LL, \
                                    (a) * 0x0001000100010001LL, (a) * 0x0001000100010001LL)
/* bytes: a in the low 32, b in the high 32 */
#define BYTES2(a, b) _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi8((char)(a)), _mm512_set1_epi8((char)(b)))
/* vpshufb control: every word of 128-bit lane L <- word wL of the same lane */
#define WSELW(w) ((2 * (w) + 1) << 8 | 2 * (w))
#define WSELD(w) ((int)((unsigned)WSELW(w) << 16 | WSELW(w)))
#define WSEL4(a, b, c, d) _mm512_set_epi32(WSELD(d), WSELD(d), WSELD(d), WSELD(d), WSELD(c), WSELD(c), WSELD(c), WSELD(c), \
                                           WSELD(b), WSELD(b), WSELD(b), WSELD(b), WSELD(a), WSELD(a), WSELD(a), WSELD(a))
/* scale words of 32-element sub-blocks a (lanes 0-1) and b (lanes 2-3), from 8 words in every lane */
#define SC32(v, a, b) _mm512_shuffle_epi8(v, WSEL4(a, a, b, b))
/* scale words of 16-element sub-blocks f..f+3 (one per lane), from 8 words in every lane */
#define SC16(v, f) _mm512_shuffle_epi8(v, WSEL4(f, f + 1, f + 2, f + 3))

INL __m512i bcast_words(__m128i w) { return _mm512_broadcast_i32x4(w); }
/* sum += codes * q8 * scale words */
INL __m512i kdot(__m512i sum, __m512i codes, const int8_t *q8, __m512i scw) {
    return _mm512_dpwssd_epi32(sum, _mm512_maddubs_epi16(codes, ld64(q8)), scw);
}

/* Q4_K / Q5_K 6-bit scales and mins: 8 scale bytes then 8 min bytes */
INL __m128i k4_scales(const uint8_t *p) {
    uint32_t a0 = ld32(p), a1 = ld32(p + 4), a2 = ld32(p + 8);
    uint32_t sc_lo = a0 & 0x3f3f3f3fu;
    uint32_t m_lo = a1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (a2 & 0x0f0f0f0fu) | ((a0 >> 6) & 0x03030303u) << 4;
    uint32_t m_hi = ((a2 >> 4) & 0x0f0f0f0fu) | ((a1 >> 6) & 0x03030303u) << 4;
    return _mm_set_epi32((int)m_hi, (int)m_lo, (int)sc_hi, (int)sc_lo);
}

/* Q3_K: 16 6-bit scales, minus 32, as int8 */
INL __m128i k3_scales(const uint8_t *p) {
    uint32_t a0 = ld32(p), a1 = ld32(p + 4), a2 = ld32(p + 8);
    uint32_t s0 = (a0 & 0x0f0f0f0fu) | (a2 & 0x03030303u) << 4;
    uint32_t s1 = (a1 & 0x0f0f0f0fu) | ((a2 >> 2) & 0x03030303u) << 4;
    uint32_t s2 = ((a0 >> 4) & 0x0f0f0f0fu) | ((a2 >> 4) & 0x03030303u) << 4;
    uint32_t s3 = ((a1 >> 4) & 0x0f0f0f0fu) | ((a2 >> 6) & 0x03030303u) << 4;
    return _mm_sub_epi8(_mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0), _mm_set1_epi8(32));
}

/* the 8 sums of adjacent bsums (one per 32-element sub-block; |.| <= 32*127) */
INL __m128i bsums_pairs(const int16_t *b) {
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)b), _mm_loadu_si128((const __m128i *)(b + 8)));
}

#endif
