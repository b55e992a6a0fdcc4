/* Liquid LFM2's short-convolution layers, with llama.cpp's CPU numerics:
 *
 *   b | c | x = W_in x                  (3 n_embd rows, one matmul)
 *   u = b * x
 *   u <- causal depthwise convolution of each channel over its last l_cache inputs
 *        (ggml_ssm_conv: the taps oldest first, no bias, no activation)
 *   y = W_out (c * u)
 *
 * The convolution and its state (each channel's last l_cache - 1 inputs, kept from one
 * call to the next, zeroed at position 0, copied aside for rewinds) are delta_net.c's,
 * the ones qwen35 runs over its own channels: one state, one reset, one rewind for both
 * families. The products are exact and the convolution is per token, so a token's
 * bits do not depend on its batch. */
#include "model.h"

typedef struct { llm_model *m; } sc_job;

/* the convolution's input: u = b * x (ggml_mul) */
static void gate_in(void *p, int t) {
    llm_model *m = ((const sc_job *)p)->m;
    const int d = m->c.n_embd;
    const float *r = m->tmp + (size_t)t * 3 * d;
    float *u = llm_dn_conv_rows(m) + (size_t)t * d;
    for (int i = 0; i < d; i++) u[i] = r[i] * r[2 * d + i];
}

/* the output projection's input: c * the convolution's output, into m->att */
static void gate_out(void *p, int t) {
    llm_model *m = ((const sc_job *)p)->m;
    const int d = m->c.n_embd;
    const float *c = m->tmp + (size_t)t * 3 * d + d, *u = llm_dn_conv_rows(m) + (size_t)t * d;
    float *y = m->att + (size_t)t * d;
    for (int i = 0; i < d; i++) y[i] = c[i] * u[i];
}

void llm_shortconv(llm_model *m, int il, int n) {
    const llm_tensor *L = LT(m, il, 0);
    const long long d = m->c.n_embd;
    sc_job j = {m};
    llm_mm(&L[LLM_T_SHORTCONV_IN], m->xn, n, m->tmp);    /* m->tmp holds 3 n_embd a token (model.c) */
    llm_trace("conv_in_proj", il, m->tmp, n * 3 * d);
    llm_for_rows(n, gate_in, &j);
    llm_dn_conv(m, il, n);
    llm_trace("conv_conv", il, llm_dn_conv_rows(m), n * d);
    llm_for_rows(n, gate_out, &j);
    llm_mm(&L[LLM_T_SHORTCONV_OUT], m->att, n, m->tmp);
    llm_trace("conv_out_proj", il, m->tmp, n * d);
}
