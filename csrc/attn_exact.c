/* Attention without flash attention, and SwiGLU, with the numerics of llama.cpp's
 * CPU backend as built for an AVX-512 machine (its prompt-batch path), so that
 * logits match llama.cpp's bit for bit:
 *
 *   scores   s = f16(q).K: a 16-lane fma chain over head_dim in chunks of 16,
 *            then the 16 lanes summed in the tree of _mm512_reduce_add_ps (as
 *            tinyBLAS's F16 gemm); head_dim not a multiple of 16 takes
 *            ggml_vec_dot_f16's order (4 x 16-lane chains over 64s, the rest in double)
 *   softmax  w = s*scale (masked: -inf), m = max, e = vexp(w - m) where vexp is
 *            ggml_v_expf (below); sum in double of each aligned group of 16
 *            positions' reduce_add; p = f16(e * (float)(1/sum))
 *   output   o[d] = reduce over lanes l of the chain over position groups g of
 *            fma(V[16g+l][d], p[16g+l], acc[l][d]) (tinyBLAS again, k = positions)
 *
 * Each step is written in plain C on elements (fmaf, fixed reduction trees): the
 * result is defined element by element, so the same bits come out whether the
 * compiler vectorises it or not. That body serves the scalar table (and any
 * head_dim not a multiple of 16); the AVX2 and AVX-512 tables run the same
 * arithmetic with intrinsics (attn_group_avx2, attn_group_avx512): all give the
 * same bits. */
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include "internal.h"

#define INL static inline __attribute__((always_inline))

/* _mm512_reduce_add_ps as GCC expands it: halves, quarters, then pairs */
INL float red16(const float *v) {
    float t3[8], t6[4];
    for (int i = 0; i < 8; i++) t3[i] = v[i + 8] + v[i];
    for (int i = 0; i < 4; i++) t6[i] = t3[i + 4] + t3[i];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

/* ggml_v_expf (after ARM's optimized-routines expf): n = round(x/ln2) by the
 * 1.5*2^23 shift, b = x - n*ln2 in two steps, a degree-5 polynomial in b, times
 * 2^n; |n| > 192 gives 0 (n <= 0) or inf. */
INL float vexp(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    if (n != n) return n;
    /* vscalefps: j * 2^n rounded once; |n| <= 192, so outside the normal
     * exponents an exact first step by 2^(n -+ 100), then 2^(+-100) */
    const int ni = (int)n;
    const int k = ni < -126 ? ni + 100 : ni > 127 ? ni - 100 : ni;
    const float s2 = ni < -126 ? 0x1p-100f : ni > 127 ? 0x1p100f : 1.0f;
    const uint32_t pb = (uint32_t)(k + 127) << 23;
    float p2; memcpy(&p2, &pb, 4);
    return (j * p2) * s2;
}

/* ggml_vec_swiglu_f32: groups of 16 through vexp, the tail through libm's expf */
INL void swiglu_body(float *g, const float *u, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) {
            const float x = g[i + l];
            g[i + l] = (x / (1.0f + vexp(0.0f - x))) * u[i + l];
        }
    for (; i < n; i++) g[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

/* ggml_vec_soft_max_f32 after the max (scale 1, no mask), as its AVX-512 build runs
 * it: groups of 16 through vexp, each group's red16 added to a double sum, the tail
 * through libm's expf; then every value times (float)(1/sum). The router of a
 * mixture of experts (moe.c). */
void llm_softmax_exact(float *y, const float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int l = 0; l < 16; l++) y[i + l] = vexp(x[i + l] - mx);
        sum += (double)red16(y + i);
    }
    for (; i < n; i++) {
        y[i] = expf(x[i] - mx);
        sum += (double)y[i];
    }
    const float inv = (float)(1.0 / sum);
    for (i = 0; i < n; i++) y[i] *= inv;
}

/* one output of llama.cpp's F32 x F32 matmul as its AVX-512 build computes it (a
 * mixture of experts' router): sgemm (tinyBLAS, taken when n % 16 == 0 and the rows
 * a multiple of 4) a 16-lane fma chain then red16; otherwise ggml_vec_dot_f32, four
 * 16-lane fma chains over steps of 64 folded (0+2, 1+3, then 0+1) into red16, the
 * leftover elements added in float */
INL float dot_f32_body(const float *w, const float *x, int n, int sgemm) {
    if (sgemm && (n & 15) == 0) {
        float acc[16] = {0};
        for (int c = 0; c < n; c += 16)
            for (int l = 0; l < 16; l++) acc[l] = fmaf(w[c + l], x[c + l], acc[l]);
        return red16(acc);
    }
    float s4[4][16] = {{0}};
    const int np = n & ~63;
    for (int c = 0; c < np; c += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++) s4[j][l] = fmaf(w[c + 16 * j + l], x[c + 16 * j + l], s4[j][l]);
    for (int l = 0; l < 16; l++) {
        s4[0][l] = s4[0][l] + s4[2][l];
        s4[1][l] = s4[1][l] + s4[3][l];
        s4[0][l] = s4[0][l] + s4[1][l];
    }
    float sum = red16(s4[0]);
    for (int i = np; i < n; i++) sum += w[i] * x[i];
    return sum;
}

/* one token of llama.cpp's ggml_gated_delta_net for one value head (delta_net.c): S
 * (d x d, column c contiguous) scaled by the decay, delta = (v - S^T k) * beta with
 * ggml_vec_dot_f32's dots, S += k delta^T as its vec_mad_f32 (one fma an element: its
 * vector steps, and its tail as compiled, contracted), out = (S^T q) * scale */
INL void delta_step_body(float *S, const float *q, const float *k, const float *v, float beta, float decay,
                         float *delta, float *out, int d, float scale) {
    /* one pass over S, a column at a time: column c's delta needs only that column
     * decayed, and its output only that column updated, so the four steps run on a
     * column while it is in L1 (S is a megabyte a layer at Qwen3.5-0.8B's sizes) */
    for (int c = 0; c < d; c++) {
        float *col = S + (size_t)c * d;
        for (int i = 0; i < d; i++) col[i] *= decay;
        delta[c] = (v[c] - dot_f32_body(col, k, d, 0)) * beta;
        for (int i = 0; i < d; i++) col[i] = fmaf(k[i], delta[c], col[i]);
        out[c] = dot_f32_body(col, q, d, 0) * scale;
    }
}

/* ggml_ssm_conv over n (<= 64) channels of one token: channel c's taps x[i][c] times
 * w[c * nc + i] summed oldest first, each product fused into the running sum (its
 * compiled loop), into y (which may be x[nc - 1]: read before written) */
INL void ssm_conv_body(float *y, const float *const *x, const float *w, int nc, int n) {
    float acc[64] = {0};
    for (int i = 0; i < nc; i++)
        for (int c = 0; c < n; c++) acc[c] = fmaf(x[i][c], w[(size_t)c * nc + i], acc[c]);
    memcpy(y, acc, (size_t)n * sizeof(float));
}

INL float kq_dot(const f16_t *q, const f16_t *k, int hd) {
    if ((hd & 15) == 0) {
        float acc[16] = {0};
        for (int c = 0; c < hd; c += 16)
            for (int l = 0; l < 16; l++) acc[l] = fmaf(llm_f16_to_f32(k[c + l]), llm_f16_to_f32(q[c + l]), acc[l]);
        return red16(acc);
    }
    /* ggml_vec_dot_f16 */
    float s4[4][16] = {{0}};
    const int np = hd & ~63;
    for (int c = 0; c < np; c += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++)
                s4[j][l] = fmaf(llm_f16_to_f32(q[c + 16 * j + l]), llm_f16_to_f32(k[c + 16 * j + l]), s4[j][l]);
    for (int l = 0; l < 16; l++) {
        s4[0][l] = s4[0][l] + s4[2][l];
        s4[1][l] = s4[1][l] + s4[3][l];
        s4[0][l] = s4[0][l] + s4[1][l];
    }
    double sum = (double)red16(s4[0]);
    for (int i = np; i < hd; i++) sum += (double)(llm_f16_to_f32(q[i]) * llm_f16_to_f32(k[i]));
    return (float)sum;
}

/* An attention sink (gpt-oss: one learned logit per head) joins the softmax's
 * denominator only, as llama.cpp's soft_max with sinks: the max takes it, then
 * libm's expf(sink - max) is added to the double sum. No sink is -inf: the max
 * unchanged and 0.0 added, the same bits as without. */
INL float with_sink_max(float mx, float sink) { return mx > sink ? mx : sink; }
INL double with_sink_sum(double sum, float sink, float mx) { return sum + (double)expf(sink - mx); }
#define SINK(sink, g) ((sink) ? (sink)[g] : -INFINITY)

/* One query head over cache rows start..end (row s at K/V + s*stride).
 * sc: scratch of end/16*16 + 16 floats; acc: 16*hd floats; out: hd floats. */
INL void attn_head_body(const f16_t *q16, const f16_t *K, const f16_t *V, size_t stride, int start, int end,
                        int hd, float scale, float sink, float *sc, float *acc, float *out) {
    const int g0 = start & ~15, g1 = (end & ~15) + 16;
    float mx = -INFINITY;
    for (int s = g0; s < g1; s++) {
        float w = -INFINITY;
        if (s >= start && s <= end) w = kq_dot(q16, K + (size_t)s * stride, hd) * scale;
        sc[s] = w;
        mx = w > mx ? w : mx;
    }
    mx = with_sink_max(mx, sink);
    double sum = 0.0;
    for (int g = g0; g < g1; g += 16) {
        for (int l = 0; l < 16; l++) sc[g + l] = vexp(sc[g + l] - mx);
        sum += (double)red16(sc + g);
    }
    sum = with_sink_sum(sum, sink, mx);
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < 16 * hd; i++) acc[i] = 0.0f;
    for (int s = start; s <= end; s++) {
        const float p = llm_f16_to_f32(llm_f32_to_f16(sc[s] * inv));
        const f16_t *v = V + (size_t)s * stride;
        float *a = acc + (size_t)(s & 15) * hd;
        for (int d = 0; d < hd; d++) a[d] = fmaf(llm_f16_to_f32(v[d]), p, a[d]);
    }
    /* reduce the 16 lanes of every d in red16's tree, rows at a time */
    for (int i = 0; i < 8; i++)
        for (int d = 0; d < hd; d++) acc[i * hd + d] = acc[(i + 8) * hd + d] + acc[i * hd + d];
    for (int i = 0; i < 4; i++)
        for (int d = 0; d < hd; d++) acc[i * hd + d] = acc[(i + 4) * hd + d] + acc[i * hd + d];
    for (int d = 0; d < hd; d++) out[d] = (acc[d] + acc[2 * hd + d]) + (acc[hd + d] + acc[3 * hd + d]);
}

#if defined(__x86_64__)
/* ---- the same arithmetic with AVX-512 intrinsics (GCC's _mm512_reduce_add_ps is
 * red16's tree; vcvtph2ps widens F16 exactly; vscalefps is vexp's last step) ---- */
#define T512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,f16c")))
T512 static inline __m512 vexp16(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ),
                                            _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(big, res, alt);
}

T512 static void swiglu_avx512(float *g, const float *u, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 e = vexp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
        const __m512 si = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(si, _mm512_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

/* G query heads sharing one K/V head: every K and V row is loaded and widened
 * once for all of them; each head's arithmetic is attn_head_body's, unchanged
 * (the same bits as one head at a time). sc: G rows of scs floats; acc: G x 16
 * x hd floats; out: the G heads' outputs, hd apart. */
#define GMAX 8
/* dot_f32_body's four-chain sum (d % 64 == 0) over acc[0..3], as it folds them */
T512 static inline float fold4(const __m512 *a) {
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3])));
}

static void delta_step_avx512(float *S, const float *q, const float *k, const float *v, float beta, float decay,
                              float *delta, float *out, int d, float scale);

/* delta_step_body with intrinsics where d % 64 == 0 (the generic body's four-chain dots
 * compile to scalar folds): per column, decayed and dotted with k in one pass, then
 * updated and dotted with q in a second, while the column is in L1 */
T512 static void delta_step_avx512_k(float *S, const float *q, const float *k, const float *v, float beta,
                                     float decay, float *delta, float *out, int d, float scale) {
    if (d & 63) {
        delta_step_avx512(S, q, k, v, beta, decay, delta, out, d, scale);
        return;
    }
    const __m512 dec = _mm512_set1_ps(decay);
    for (int c = 0; c < d; c++) {
        float *col = S + (size_t)c * d;
        __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int i = 0; i < d; i += 64)
            for (int j = 0; j < 4; j++) {
                const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(col + i + 16 * j), dec);
                _mm512_storeu_ps(col + i + 16 * j, x);
                a[j] = _mm512_fmadd_ps(x, _mm512_loadu_ps(k + i + 16 * j), a[j]);
            }
        delta[c] = (v[c] - fold4(a)) * beta;
        const __m512 dl = _mm512_set1_ps(delta[c]);
        __m512 b[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int i = 0; i < d; i += 64)
            for (int j = 0; j < 4; j++) {
                const __m512 x = _mm512_fmadd_ps(_mm512_loadu_ps(k + i + 16 * j), dl, _mm512_loadu_ps(col + i + 16 * j));
                _mm512_storeu_ps(col + i + 16 * j, x);
                b[j] = _mm512_fmadd_ps(x, _mm512_loadu_ps(q + i + 16 * j), b[j]);
            }
        out[c] = fold4(b) * scale;
    }
}

T512 static inline __attribute__((always_inline)) void attn_group_k(
        const f16_t *q16, const int G, const f16_t *K, const f16_t *V, size_t stride, int start, int end, int hd,
        float scale, const float *sink, float *sc, size_t scs, float *acc, float *out) {
    const int g0 = start & ~15, g1 = (end & ~15) + 16, nq = hd / 16;
    float mx[GMAX];
    for (int g = 0; g < G; g++) {
        mx[g] = -INFINITY;
        for (int s = g0; s < start; s++) sc[g * scs + s] = -INFINITY;
        for (int s = end + 1; s < g1; s++) sc[g * scs + s] = -INFINITY;
    }
    float qf[GMAX * LLM_MAX_HEAD_DIM] __attribute__((aligned(64)));   /* the queries widened once */
    for (int i = 0; i < G * hd; i += 16)
        _mm512_store_ps(qf + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q16 + i))));
    for (int s = start; s <= end; s++) {
        const f16_t *k = K + (size_t)s * stride;
        __m512 a[GMAX];
        const __m512 k0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)k));
        for (int g = 0; g < G; g++) a[g] = _mm512_fmadd_ps(k0, _mm512_load_ps(qf + g * hd), _mm512_setzero_ps());
        for (int c = 1; c < nq; c++) {
            const __m512 kc = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + 16 * c)));
            for (int g = 0; g < G; g++) a[g] = _mm512_fmadd_ps(kc, _mm512_load_ps(qf + g * hd + 16 * c), a[g]);
        }
        for (int g = 0; g < G; g++) {
            const float w = _mm512_reduce_add_ps(a[g]) * scale;
            sc[g * scs + s] = w;
            mx[g] = w > mx[g] ? w : mx[g];
        }
    }
    for (int g = 0; g < G; g++) {
        float *sg = sc + g * scs;
        mx[g] = with_sink_max(mx[g], SINK(sink, g));
        double sum = 0.0;
        const __m512 vmx = _mm512_set1_ps(mx[g]);
        for (int b = g0; b < g1; b += 16) {
            const __m512 e = vexp16(_mm512_sub_ps(_mm512_loadu_ps(sg + b), vmx));
            _mm512_storeu_ps(sg + b, e);
            sum += (double)_mm512_reduce_add_ps(e);
        }
        sum = with_sink_sum(sum, SINK(sink, g), mx[g]);
        /* each probability rounded to F16 and back (RNE both ways: vcvtps2ph imm 0), in place */
        const float iv = (float)(1.0 / sum);
        for (int s = start; s <= end; s++) sg[s] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(sg[s] * iv), 0)));
    }
    /* output: lane l of chunk c's 16 accumulators sums the positions s = l (mod 16)
     * in order, fma(V[s], p[s], acc[l]); then the lanes in red16's tree. The 16
     * accumulators of a (head, chunk) stay in registers over all positions. */
    for (int g = 0; g < G; g++) {
        const float *pg = sc + g * scs;
        for (int c = 0; c < nq; c++) {
            const f16_t *vc = V + 16 * c;
            __m512 a[16];
#pragma GCC unroll 16
            for (int l = 0; l < 16; l++) a[l] = _mm512_setzero_ps();
#define PV_STEP(l, s) a[l] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vc + (size_t)(s) * stride))), \
                                             _mm512_set1_ps(pg[s]), a[l])
            for (int b = g0; b < g1; b += 16) {
                if (b >= start && b + 15 <= end) {
#pragma GCC unroll 16
                    for (int l = 0; l < 16; l++) PV_STEP(l, b + l);
                } else {   /* the first and last groups: only the positions start..end */
#pragma GCC unroll 16
                    for (int l = 0; l < 16; l++)
                        if (b + l >= start && b + l <= end) PV_STEP(l, b + l);
                }
            }
#undef PV_STEP
            for (int i = 0; i < 8; i++) a[i] = _mm512_add_ps(a[i + 8], a[i]);
            for (int i = 0; i < 4; i++) a[i] = _mm512_add_ps(a[i + 4], a[i]);
            _mm512_storeu_ps(out + (size_t)g * hd + 16 * c, _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3])));
        }
    }
    (void)acc;
}

T512 static void attn_group_avx512(const f16_t *q16, int G, const f16_t *K, const f16_t *V, size_t stride, int start,
                                   int end, int hd, float scale, const float *sink, float *sc, size_t scs, float *acc, float *out) {
    if ((hd & 15) != 0) {   /* ggml_vec_dot_f16's order: the portable body */
        for (int g = 0; g < G; g++)
            attn_head_body(q16 + (size_t)g * hd, K, V, stride, start, end, hd, scale, SINK(sink, g), sc + g * scs,
                           acc + (size_t)g * 16 * hd, out + (size_t)g * hd);
        return;
    }
    for (; G > 0; G -= GMAX, q16 += (size_t)GMAX * hd, sc += GMAX * scs, sink = sink ? sink + GMAX : NULL, acc += (size_t)GMAX * 16 * hd,
                  out += (size_t)GMAX * hd) {
        switch (G < GMAX ? G : GMAX) {   /* a constant G per body: the accumulators stay in registers */
        case 1: attn_group_k(q16, 1, K, V, stride, start, end, hd, scale, sink, sc, scs, acc, out); break;
        case 2: attn_group_k(q16, 2, K, V, stride, start, end, hd, scale, sink, sc, scs, acc, out); break;
        case 3: attn_group_k(q16, 3, K, V, stride, start, end, hd, scale, sink, sc, scs, acc, out); break;
        case 4: attn_group_k(q16, 4, K, V, stride, start, end, hd, scale, sink, sc, scs, acc, out); break;
        case 5: attn_group_k(q16, 5, K, V, stride, start, end, hd, scale, sink, sc, scs, acc, out); break;
        case 6: attn_group_k(q16, 6, K, V, stride, start, end, hd, scale, sink, sc, scs, acc, out); break;
        case 7: attn_group_k(q16, 7, K, V, stride, start, end, hd, scale, sink, sc, scs, acc, out); break;
        default: attn_group_k(q16, 8, K, V, stride, start, end, hd, scale, sink, sc, scs, acc, out); break;
        }
    }
}
#endif

#if defined(__x86_64__)
/* ---- the same arithmetic with AVX2 intrinsics: a 16-lane vector as two ymm
 * halves (every lane's operations unchanged), red16's tree on them, vexp's
 * 2^n scaling built from exponent bits as the portable body does ---- */
#define T256 __attribute__((target("avx2,fma,f16c")))
typedef struct { __m256 lo, hi; } v16;

T256 static inline float red16_v(v16 v) {
    const __m256 t3 = _mm256_add_ps(v.hi, v.lo);                                     /* v[i+8] + v[i] */
    const __m128 t6 = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));   /* t3[i+4] + t3[i] */
    const __m128 u = _mm_add_ps(t6, _mm_movehl_ps(t6, t6));                          /* t6[0]+t6[2], t6[1]+t6[3] */
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

/* vexp on 8 lanes, bit for bit the scalar vexp above */
T256 static inline __m256 vexp8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    /* (j * 2^k) * s2: k = n, or n -+ 100 outside the normal exponents, s2 = 2^(+-100) */
    const __m256i ni = _mm256_cvttps_epi32(n);
    const __m256i lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(-126), ni), hi = _mm256_cmpgt_epi32(ni, _mm256_set1_epi32(127));
    const __m256i k = _mm256_add_epi32(ni, _mm256_sub_epi32(_mm256_and_si256(lo, _mm256_set1_epi32(100)),
                                                            _mm256_and_si256(hi, _mm256_set1_epi32(100))));
    const __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_blendv_ps(_mm256_blendv_ps(_mm256_set1_ps(1.0f), _mm256_set1_ps(0x1p100f), _mm256_castsi256_ps(hi)),
                                       _mm256_set1_ps(0x1p-100f), _mm256_castsi256_ps(lo));
    const __m256 res = _mm256_mul_ps(_mm256_mul_ps(j, p2), s2);
    /* |n| > 192: 0 (n <= 0) or inf; n NaN: n */
    const __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n), _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 alt = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(),
                                        _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
    const __m256 out = _mm256_blendv_ps(res, alt, big);
    return _mm256_blendv_ps(out, n, _mm256_cmp_ps(n, n, _CMP_UNORD_Q));
}

T256 static inline __m256 ld8_f16(const f16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* attn_group_k with 8-lane vectors (see the AVX-512 version for the plan); the
 * output's lanes in two passes of 8 (positions l and l + 8 mod 16), their 8
 * accumulators in registers, the first pass kept for red16's first step */
T256 static inline __attribute__((always_inline)) void attn_group_k2(
        const f16_t *q16, const int G, const f16_t *K, const f16_t *V, size_t stride, int start, int end, int hd,
        float scale, const float *sink, float *sc, size_t scs, float *out) {
    const int g0 = start & ~15, g1 = (end & ~15) + 16, nq = hd / 16;
    float mx[GMAX];
    for (int g = 0; g < G; g++) {
        mx[g] = -INFINITY;
        for (int s = g0; s < start; s++) sc[g * scs + s] = -INFINITY;
        for (int s = end + 1; s < g1; s++) sc[g * scs + s] = -INFINITY;
    }
    float qf[GMAX * LLM_MAX_HEAD_DIM] __attribute__((aligned(32)));
    for (int i = 0; i < G * hd; i += 8) _mm256_store_ps(qf + i, ld8_f16(q16 + i));
    for (int s = start; s <= end; s++) {
        const f16_t *k = K + (size_t)s * stride;
        v16 a[GMAX];
        const __m256 k0 = ld8_f16(k), k1 = ld8_f16(k + 8);
        for (int g = 0; g < G; g++) {
            a[g].lo = _mm256_fmadd_ps(k0, _mm256_load_ps(qf + g * hd), _mm256_setzero_ps());
            a[g].hi = _mm256_fmadd_ps(k1, _mm256_load_ps(qf + g * hd + 8), _mm256_setzero_ps());
        }
        for (int c = 1; c < nq; c++) {
            const __m256 ka = ld8_f16(k + 16 * c), kb = ld8_f16(k + 16 * c + 8);
            for (int g = 0; g < G; g++) {
                a[g].lo = _mm256_fmadd_ps(ka, _mm256_load_ps(qf + g * hd + 16 * c), a[g].lo);
                a[g].hi = _mm256_fmadd_ps(kb, _mm256_load_ps(qf + g * hd + 16 * c + 8), a[g].hi);
            }
        }
        for (int g = 0; g < G; g++) {
            const float w = red16_v(a[g]) * scale;
            sc[g * scs + s] = w;
            mx[g] = w > mx[g] ? w : mx[g];
        }
    }
    for (int g = 0; g < G; g++) {
        float *sg = sc + g * scs;
        mx[g] = with_sink_max(mx[g], SINK(sink, g));
        double sum = 0.0;
        const __m256 vmx = _mm256_set1_ps(mx[g]);
        for (int b = g0; b < g1; b += 16) {
            v16 e = {vexp8(_mm256_sub_ps(_mm256_loadu_ps(sg + b), vmx)), vexp8(_mm256_sub_ps(_mm256_loadu_ps(sg + b + 8), vmx))};
            _mm256_storeu_ps(sg + b, e.lo);
            _mm256_storeu_ps(sg + b + 8, e.hi);
            sum += (double)red16_v(e);
        }
        sum = with_sink_sum(sum, SINK(sink, g), mx[g]);
        const float iv = (float)(1.0 / sum);
        for (int s = start; s <= end; s++) sg[s] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(sg[s] * iv), 0)));
    }
    for (int g = 0; g < G; g++) {
        const float *pg = sc + g * scs;
        for (int c = 0; c < hd; c += 8) {
            const f16_t *vc = V + c;
            float first[8][8] __attribute__((aligned(32)));
            __m256 a[8];
            for (int pass = 0; pass < 2; pass++) {
#pragma GCC unroll 8
                for (int l = 0; l < 8; l++) a[l] = _mm256_setzero_ps();
#define PV8(l, s) a[l] = _mm256_fmadd_ps(ld8_f16(vc + (size_t)(s) * stride), _mm256_set1_ps(pg[s]), a[l])
                for (int b = g0 + 8 * pass; b < g1; b += 16) {
                    if (b >= start && b + 7 <= end) {
#pragma GCC unroll 8
                        for (int l = 0; l < 8; l++) PV8(l, b + l);
                    } else {
#pragma GCC unroll 8
                        for (int l = 0; l < 8; l++)
                            if (b + l >= start && b + l <= end) PV8(l, b + l);
                    }
                }
#undef PV8
                if (pass == 0)
#pragma GCC unroll 8
                    for (int l = 0; l < 8; l++) _mm256_store_ps(first[l], a[l]);
            }
            __m256 t[8];
            for (int i = 0; i < 8; i++) t[i] = _mm256_add_ps(a[i], _mm256_load_ps(first[i]));   /* lanes i+8, i */
            for (int i = 0; i < 4; i++) t[i] = _mm256_add_ps(t[i + 4], t[i]);
            _mm256_storeu_ps(out + (size_t)g * hd + c, _mm256_add_ps(_mm256_add_ps(t[0], t[2]), _mm256_add_ps(t[1], t[3])));
        }
    }
}

T256 static void attn_group_avx2(const f16_t *q16, int G, const f16_t *K, const f16_t *V, size_t stride, int start,
                                 int end, int hd, float scale, const float *sink, float *sc, size_t scs, float *acc, float *out) {
    if ((hd & 15) != 0) {   /* ggml_vec_dot_f16's order: the portable body */
        for (int g = 0; g < G; g++)
            attn_head_body(q16 + (size_t)g * hd, K, V, stride, start, end, hd, scale, SINK(sink, g), sc + g * scs,
                           acc + (size_t)g * 16 * hd, out + (size_t)g * hd);
        return;
    }
    for (; G > 0; G -= GMAX, q16 += (size_t)GMAX * hd, sc += GMAX * scs, sink = sink ? sink + GMAX : NULL, out += (size_t)GMAX * hd) {
        switch (G < GMAX ? G : GMAX) {
        case 1: attn_group_k2(q16, 1, K, V, stride, start, end, hd, scale, sink, sc, scs, out); break;
        case 2: attn_group_k2(q16, 2, K, V, stride, start, end, hd, scale, sink, sc, scs, out); break;
        case 3: attn_group_k2(q16, 3, K, V, stride, start, end, hd, scale, sink, sc, scs, out); break;
        case 4: attn_group_k2(q16, 4, K, V, stride, start, end, hd, scale, sink, sc, scs, out); break;
        case 5: attn_group_k2(q16, 5, K, V, stride, start, end, hd, scale, sink, sc, scs, out); break;
        case 6: attn_group_k2(q16, 6, K, V, stride, start, end, hd, scale, sink, sc, scs, out); break;
        case 7: attn_group_k2(q16, 7, K, V, stride, start, end, hd, scale, sink, sc, scs, out); break;
        default: attn_group_k2(q16, 8, K, V, stride, start, end, hd, scale, sink, sc, scs, out); break;
        }
    }
}
#endif

#define ATTN_WRAPPER(SUF, ATTR)                                                                      \
    ATTR static void attn_group_##SUF(const f16_t *q16, int G, const f16_t *K, const f16_t *V, size_t stride, \
                                      int start, int end, int hd, float scale, const float *sink,      \
                                      float *sc, size_t scs, float *acc, float *out) {                 \
        for (int g = 0; g < G; g++)                                                                   \
            attn_head_body(q16 + (size_t)g * hd, K, V, stride, start, end, hd, scale, SINK(sink, g),   \
                           sc + g * scs,                                                              \
                           acc + (size_t)g * 16 * hd, out + (size_t)g * hd);                         \
    }
#define SWIGLU_WRAPPER(SUF, ATTR) \
    ATTR static void swiglu_##SUF(float *g, const float *u, int n) { swiglu_body(g, u, n); }
#define DOT_F32_WRAPPER(SUF, ATTR) \
    ATTR static float dot_f32_##SUF(const float *w, const float *x, int n, int sgemm) { return dot_f32_body(w, x, n, sgemm); }

#define DELTA_WRAPPER(SUF, ATTR) \
    ATTR static void delta_step_##SUF(float *S, const float *q, const float *k, const float *v, float beta, \
                                      float decay, float *delta, float *out, int d, float scale) { \
        delta_step_body(S, q, k, v, beta, decay, delta, out, d, scale); } \
    ATTR static void ssm_conv_##SUF(float *y, const float *const *x, const float *w, int nc, int n) { \
        ssm_conv_body(y, x, w, nc, n); }

ATTN_WRAPPER(scalar, )
SWIGLU_WRAPPER(scalar, )
DOT_F32_WRAPPER(scalar, )
DELTA_WRAPPER(scalar, )
#if defined(__x86_64__)
SWIGLU_WRAPPER(avx2, __attribute__((target("avx2,fma,f16c"))))
DOT_F32_WRAPPER(avx2, __attribute__((target("avx2,fma,f16c"))))
DOT_F32_WRAPPER(avx512, T512)
DELTA_WRAPPER(avx2, __attribute__((target("avx2,fma,f16c"))))
DELTA_WRAPPER(avx512, T512)
#endif

void llm_exact_kernels(llm_kernel_table *t, int isa) {
    t->attn_group = attn_group_scalar;
    t->swiglu = swiglu_scalar;
    t->dot_f32_exact = dot_f32_scalar;
    t->delta_step = delta_step_scalar;
    t->ssm_conv = ssm_conv_scalar;
#if defined(__x86_64__)
    if (isa == 1) { t->attn_group = attn_group_avx2; t->swiglu = swiglu_avx2; t->dot_f32_exact = dot_f32_avx2; }
    else if (isa == 2) { t->attn_group = attn_group_avx512; t->swiglu = swiglu_avx512; t->dot_f32_exact = dot_f32_avx512; }
    if (isa == 1) { t->delta_step = delta_step_avx2; t->ssm_conv = ssm_conv_avx2; }
    else if (isa == 2) { t->delta_step = delta_step_avx512_k; t->ssm_conv = ssm_conv_avx512; }
#else
    (void)isa;
#endif
}
