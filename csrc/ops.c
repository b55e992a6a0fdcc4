/* Per-token operations: RMSNorm, RoPE, GEGLU (SwiGLU is in attn_exact.c, beside the exp it shares).
 * Numerics follow llama.cpp's CPU backend where it is cheap to do so. */
#include <math.h>
#include "internal.h"

/* y = (x / rms(x)) * w, sum of squares in double as ggml does */
void llm_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    if (w) for (int i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
    else for (int i = 0; i < n; i++) y[i] = x[i] * scale;
}

/* ggml_rope_yarn_corr_dims: the pair indices where the ramp between interpolation
 * and extrapolation starts and ends, from the original context and the betas */
static float yarn_corr_dim(int n_dims, int n_ctx_orig, float beta, float base) {
    return n_dims * logf(n_ctx_orig / (beta * 2 * (float)3.14159265358979323846)) / (2 * logf(base));
}

void llm_yarn_init(llm_yarn *y, const llm_config *c, float base, float scale) {
    const float lo = floorf(yarn_corr_dim(c->n_rot, c->n_ctx_orig, c->yarn_beta_fast, base));
    const float hi = ceilf(yarn_corr_dim(c->n_rot, c->n_ctx_orig, c->yarn_beta_slow, base));
    y->corr[0] = lo > 0.0f ? lo : 0.0f;
    y->corr[1] = hi < (float)(c->n_rot - 1) ? hi : (float)(c->n_rot - 1);
    y->ext_factor = c->rope_ext_factor;
    /* llama_context's attn_factor: YaRN's magnitude correction for the factor, times
     * its inverse (ggml's rope applies it again), times the file's attn_factor; then
     * ggml-cpu's rope multiplies the correction in, its product fused as compiled */
    const float factor = 1.0f / scale;
    float af = 0.1f * logf(factor) + 1.0f;
    /* a file's yarn_log_multiplier (mscale_all_dim): the correction over its own at that
     * multiplier instead (llama.cpp assumes mscale 1 for these; both are 1 where factor <= 1) */
    if (c->yarn_log_mul != 0.0f)
        af = factor <= 1.0f ? 1.0f : af / (0.1f * c->yarn_log_mul * logf(factor) + 1.0f);
    af *= 1.0f / (1.0f + 0.1f * logf(factor));
    af *= c->rope_attn_factor;
    y->mscale = af * fmaf(0.1f, logf(1.0f / scale), 1.0f);
}

float llm_attn_temp(const llm_config *c, int pos) {
    const float f = floorf((float)pos / (float)c->attn_temp_floor);   /* float, as llama.cpp's pos */
    return (float)(log((double)f + 1.0) * (double)c->attn_temp_scale + 1.0);
}

/* cos/sin per rotary pair for one position: theta = pos * base^(-2i/n_rot)
 * by repeated multiplication, divided by freq_factors[i], times scale; with YaRN
 * (llama.cpp's rope_yarn) the angle mixed with the unscaled one by the ramp, and
 * cos and sin times its mscale */
void llm_rope_cache(float *cs, int n_rot, int pos, float base, float scale, const float *ff, const llm_yarn *y) {
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        const float te = theta / (ff ? ff[i] : 1.0f);
        float t = scale * te;
        if (y) {
            const float r = (i - y->corr[0]) / fmaxf(0.001f, y->corr[1] - y->corr[0]);
            const float mix = (1 - fminf(1, fmaxf(0, r))) * y->ext_factor;
            t = fmaf(t, 1 - mix, te * mix);
            cs[2 * i] = cosf(t) * y->mscale;
            cs[2 * i + 1] = sinf(t) * y->mscale;
        } else {
            cs[2 * i] = cosf(t);
            cs[2 * i + 1] = sinf(t);
        }
        theta *= theta_scale;
    }
}

/* llama.cpp's interleaved multi-section rope (IMROPE) for text tokens, whose t, h and w
 * positions are the token's and e's 0: pair i's sector i % (the sections' sum) turns by
 * the position when it is a t, h or w one (sector % 3 == 0, 1, 2 below 3 x that
 * section), else by angle 0 (cos 1, sin 0) */
void llm_rope_imrope(float *cs, int n_rot, const int *sections) {
    const int dims = sections[0] + sections[1] + sections[2] + sections[3];
    for (int i = 0; i < n_rot / 2; i++) {
        const int sec = i % dims, kind = sec % 3;
        if (sec < 3 * sections[kind]) continue;
        cs[2 * i] = 1.0f;
        cs[2 * i + 1] = 0.0f;
    }
}

void llm_rope_apply(float *x, const float *cs, int n_rot, int neox) {
    const int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        float *a = neox ? &x[i] : &x[2 * i];
        float *b = neox ? &x[i + half] : &x[2 * i + 1];
        const float x0 = *a, x1 = *b;
        /* the fused forms llama.cpp's compiled rotate_pairs computes */
        *a = fmaf(x0, c, -(x1 * s));
        *b = fmaf(x0, s, x1 * c);
    }
}

/* g = gelu_tanh(g) * u, with llama.cpp's fp16 rounding of GELU's input and output */
#define GELU_COEF_A 0.044715f
#define SQRT_2_OVER_PI 0.79788456080286535587989211986876f
static inline float gelu_f32(float x) {
    /* 1 + a*x*x fused, as llama.cpp's compiled table init computes it */
    return 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * x * fmaf(GELU_COEF_A * x, x, 1.0f)));
}
/* gelu of every F16 input, rounded to F16 and widened: llama.cpp's table */
static float gelu_table[65536];
static int gelu_ready = 0;

void llm_ops_init(void) {
    if (gelu_ready) return;
    for (int h = 0; h < 65536; h++)
        gelu_table[h] = llm_f16_to_f32(llm_f32_to_f16(gelu_f32(llm_f16_to_f32((f16_t)h))));
    gelu_ready = 1;
}

void llm_geglu(float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) {
        const float x = g[i];
        float y;
        if (x <= -10.0f) y = 0.0f;
        else if (x >= 10.0f) y = x;
        else y = gelu_table[llm_f32_to_f16(x)];
        g[i] = y * u[i];
    }
}
