/* Qwen 3.5's gated delta-net (linear attention) layers, with llama.cpp's CPU numerics
 * (its fused ggml_gated_delta_net op, which runs the recurrence token by token at any
 * batch size, so a batch and a one-token decode give a token the same bits):
 *
 *   qkv = W_qkv x, z = W_gate x, b = W_beta x, a = W_alpha x        (one quantization)
 *   qkv <- silu(causal conv over the last d_conv inputs of each channel)
 *   q, k <- l2-normalised per head (rms_norm with eps / d, times 1/sqrt(d))
 *   beta = sigmoid(b), g = softplus(a + dt_bias) * A                (A = -exp(A_log) < 0)
 *   per value head h (key head h % n_group), per token:
 *     S *= exp(g); delta = (v - S^T k) * beta; S += k delta^T; o = S^T q / sqrt(d)
 *   y = W_out (rms_norm(o) * norm_w * silu(z))
 *
 * The layer's state: each channel's last d_conv - 1 inputs and each value head's d x d
 * matrix S, kept from one call to the next (the position they hold in `pos`), zeroed
 * when a sequence starts over at position 0. Allocated once at load with the batch's
 * buffers. Channels (the convolution) and heads (the recurrence) spread over the
 * pool; a token's arithmetic is the same whatever the batch.
 *
 * lfm2's short-convolution layers (shortconv.c) keep their state here too: the same
 * convolution over n_embd channels with no S (d_state 0), so that one copy, one reset
 * and one rewind serve both families. */
#include <math.h>
#include <stdlib.h>
#include "model.h"

struct llm_dn {
    int conv_dim, value_dim, d_state, n_v;
    int pos;               /* tokens the state holds */
    float *conv_state;     /* per layer: (d_conv - 1) rows of conv_dim, the oldest input first */
    float *ssm_state;      /* per layer: n_v x d x d, S[i][j] at [j * d + i] (column j contiguous) */
    float *saved;          /* LLM_DN_SLOTS copies of both (llm_dn_save; each: every conv slice,
                              then every S), and the position each holds (-1: none) */
    int saved_pos[LLM_DN_SLOTS];
    float *qkv, *z, *alpha, *beta, *out;   /* n_batch rows of conv_dim, value_dim, n_v, n_v, value_dim */
    float *delta;          /* n_v x d: each head's delta row */
    float *ones;           /* max(conv_dim, d) ones: silu as swiglu(x, 1) (the same bits) */
};

/* lfm2: no delta rule, its convolution over the n_embd channels of b * x */
static int is_shortconv(const llm_config *c) { return c->arch == LLM_ARCH_LFM2; }
/* n floats, at least one (lfm2 sizes the delta rule's buffers 0) */
static float *floats(size_t n) { return malloc((n ? n : 1) * 4); }

static size_t layer_conv(const llm_model *m) { return (size_t)m->dn->conv_dim * (m->c.ssm_d_conv - 1); }
static size_t layer_ssm(const llm_model *m) { return (size_t)m->dn->n_v * m->dn->d_state * m->dn->d_state; }

void llm_dn_free(llm_model *m) {
    struct llm_dn *s = m->dn;
    if (!s) return;
    free(s->conv_state); free(s->ssm_state); free(s->saved); free(s->qkv); free(s->z); free(s->alpha); free(s->beta);
    free(s->out); free(s->delta); free(s->ones);
    free(s);
    m->dn = NULL;
}

int llm_dn_alloc(llm_model *m) {
    const llm_config *c = &m->c;
    const int sc = is_shortconv(c);
    if (c->ssm_d_state <= 0 && !sc) return 0;
    if (c->ssm_d_conv < 1 || c->ssm_d_conv > 64) return -1;
    if (!sc && (c->ssm_n_group <= 0 || c->ssm_n_v_head <= 0 || c->ssm_n_v_head % c->ssm_n_group)) return -1;
    struct llm_dn *s = calloc(1, sizeof *s);
    if (!s) return -1;
    m->dn = s;
    s->d_state = sc ? 0 : c->ssm_d_state;
    s->n_v = sc ? 0 : c->ssm_n_v_head;
    s->value_dim = s->d_state * s->n_v;
    s->conv_dim = sc ? c->n_embd : 2 * s->d_state * c->ssm_n_group + s->value_dim;
    const size_t B = (size_t)m->n_batch, nl = (size_t)(m->l1 > m->l0 ? m->l1 - m->l0 : 1);
    const size_t n_ones = (size_t)(s->conv_dim > s->d_state ? s->conv_dim : s->d_state);
    s->conv_state = calloc(nl * layer_conv(m) + 1, 4);   /* + 1: d_conv 1 has no conv state */
    s->ssm_state = calloc(nl * layer_ssm(m), 4);
    s->saved = malloc((LLM_DN_SLOTS * nl * (layer_conv(m) + layer_ssm(m)) + 1) * 4);
    for (int i = 0; i < LLM_DN_SLOTS; i++) s->saved_pos[i] = -1;
    s->qkv = floats(B * s->conv_dim);
    s->z = floats(B * s->value_dim);
    s->out = floats(B * s->value_dim);
    s->alpha = floats(B * s->n_v);
    s->beta = floats(B * s->n_v);
    s->delta = floats((size_t)s->value_dim);
    s->ones = floats(n_ones);
    if (!s->conv_state || !s->ssm_state || !s->saved || !s->qkv || !s->z || !s->out || !s->alpha || !s->beta || !s->delta || !s->ones) {
        llm_dn_free(m);
        return -1;
    }
    for (size_t i = 0; i < n_ones; i++) s->ones[i] = 1.0f;
    return 0;
}

/* each linear-attention layer's slices of the state (conv, then S) and of its copy:
 * the other layers' slices are never touched, so their pages (fresh, calloc'd or
 * malloc'd whole) cost no memory */
static int layer_slices(const llm_model *m, int il, float **conv, float **ssm, float **saved) {
    const struct llm_dn *s = m->dn;
    if (!llm_layer_recurrent(m, il)) return 0;
    const size_t k = (size_t)(il - m->l0), nl = (size_t)(m->l1 > m->l0 ? m->l1 - m->l0 : 1);
    *conv = s->conv_state + k * layer_conv(m);
    *ssm = s->ssm_state + k * layer_ssm(m);
    *saved = s->saved + k * layer_conv(m);          /* slot 0's copy: every conv slice, then every S */
    saved[1] = s->saved + nl * layer_conv(m) + k * layer_ssm(m);
    return 1;
}

void llm_dn_reset(llm_model *m) {
    struct llm_dn *s = m->dn;
    if (!s) return;
    float *conv, *ssm, *saved[2];
    for (int il = m->l0; il < m->l1; il++)
        if (layer_slices(m, il, &conv, &ssm, saved)) {
            memset(conv, 0, layer_conv(m) * 4);
            memset(ssm, 0, layer_ssm(m) * 4);
        }
    s->pos = 0;
}

int llm_dn_begin(llm_model *m, int pos, int n) {
    struct llm_dn *s = m->dn;
    if (!s) return 0;
    if (pos == 0) llm_dn_reset(m);
    else if (pos != s->pos) return -1;   /* the state holds another position: no rewind */
    s->pos = pos + n;
    return 0;
}

int llm_dn_pos(const llm_model *m) { return m->dn ? m->dn->pos : -1; }

/* the state copied aside into a slot, or back: a rewind restores a copy and runs the
 * tokens after it again (the same bits: a token's arithmetic does not depend on its batch) */
static void state_copy(llm_model *m, int slot, int back) {
    const size_t nl = (size_t)(m->l1 > m->l0 ? m->l1 - m->l0 : 1), off = slot * nl * (layer_conv(m) + layer_ssm(m));
    float *conv, *ssm, *saved[2];
    for (int il = m->l0; il < m->l1; il++) {
        if (!layer_slices(m, il, &conv, &ssm, saved)) continue;
        memcpy(back ? conv : saved[0] + off, back ? saved[0] + off : conv, layer_conv(m) * 4);
        memcpy(back ? ssm : saved[1] + off, back ? saved[1] + off : ssm, layer_ssm(m) * 4);
    }
}

int llm_dn_save(llm_model *m, int slot) {
    if (!m->dn || m->span || slot < 0 || slot >= LLM_DN_SLOTS) return -1;   /* a span holds part of the state */
    state_copy(m, slot, 0);
    return m->dn->saved_pos[slot] = m->dn->pos;
}

int llm_dn_restore(llm_model *m, int slot) {
    if (!m->dn || slot < 0 || slot >= LLM_DN_SLOTS || m->dn->saved_pos[slot] < 0) return -1;
    state_copy(m, slot, 1);
    return m->dn->pos = m->dn->saved_pos[slot];
}

/* ---- the causal convolution, a block of 64 channels over the batch (the table's
 * ssm_conv: ggml_ssm_conv's sums), in place, the last token first (each reads its own
 * and earlier inputs, still unwritten); the block's last d_conv - 1 inputs become its
 * state (a row per input, the oldest first) ---- */
typedef struct { llm_model *m; int il, n; } dn_job;
enum { CONV_BLOCK = 64 };

static void conv_block(void *p, int b) {
    const dn_job *j = p;
    struct llm_dn *s = j->m->dn;
    const int nc = j->m->c.ssm_d_conv, cd = s->conv_dim, n = j->n;
    const int c0 = b * CONV_BLOCK, nb = cd - c0 < CONV_BLOCK ? cd - c0 : CONV_BLOCK;
    const float *w = (const float *)LT(j->m, j->il, LLM_T_SSM_CONV1D)->data + (size_t)c0 * nc;
    float *st = s->conv_state + (size_t)(j->il - j->m->l0) * layer_conv(j->m) + c0;
    float keep[63 * CONV_BLOCK];           /* the new state, kept until the old one is read */
    const float *x[64];
    /* input at step u (0 .. n-1 this batch, -(nc-1) .. -1 the state's) */
#define INPUT(u) ((u) >= 0 ? s->qkv + (size_t)(u) * cd + c0 : st + (size_t)((u) + nc - 1) * cd)
    for (int i = 0; i < nc - 1; i++) memcpy(keep + (size_t)i * nb, INPUT(n - (nc - 1) + i), (size_t)nb * 4);
    for (int t = n - 1; t >= 0; t--) {
        for (int i = 0; i < nc; i++) x[i] = INPUT(t - (nc - 1) + i);
        llm_kernels()->ssm_conv(s->qkv + (size_t)t * cd + c0, x, w, nc, nb);
    }
#undef INPUT
    for (int i = 0; i < nc - 1; i++) memcpy(st + (size_t)i * cd, keep + (size_t)i * nb, (size_t)nb * 4);
}

/* the buffer the convolution reads and writes: n_batch rows of its channels */
float *llm_dn_conv_rows(llm_model *m) { return m->dn->qkv; }

void llm_dn_conv(llm_model *m, int il, int n) {
    dn_job j = {m, il, n};
    llm_for_rows((m->dn->conv_dim + CONV_BLOCK - 1) / CONV_BLOCK, conv_block, &j);
}

/* ---- per token: silu of the convolution's row (ggml_silu: groups of 16 from the row's
 * start, so a channel's bits depend on its place in the row); then q and k
 * l2-normalised, beta and the gate ---- */
static void silu_token(void *p, int t) {
    const struct llm_dn *s = ((const dn_job *)p)->m->dn;
    llm_kernels()->swiglu(s->qkv + (size_t)t * s->conv_dim, s->ones, s->conv_dim);
}

static void l2_norm(float *x, int n, float eps) {
    /* build_gdn_l2_norm: rms_norm with eps / n (its double sum of float squares), then
     * ggml_scale by 1/sqrt(n) */
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps / (float)n), post = 1.0f / sqrtf((float)n);
    for (int i = 0; i < n; i++) x[i] = (x[i] * scale) * post;
}

static void prep_token(void *p, int t) {
    const dn_job *j = p;
    const llm_model *m = j->m;
    struct llm_dn *s = m->dn;
    const llm_tensor *L = LT(m, j->il, 0);
    const int d = s->d_state, nk = m->c.ssm_n_group, nv = s->n_v;
    float *x = s->qkv + (size_t)t * s->conv_dim;
    for (int h = 0; h < 2 * nk; h++) l2_norm(x + (size_t)h * d, d, m->c.rms_eps);   /* q heads, then k */
    const float *dt = L[LLM_T_SSM_DT_B].data, *A = L[LLM_T_SSM_A].data;
    float *a = s->alpha + (size_t)t * nv, *b = s->beta + (size_t)t * nv;
    for (int h = 0; h < nv; h++) {
        const float ab = a[h] + dt[h];
        const float sp = ab > 20.0f ? ab : logf(1.0f + expf(ab));   /* ggml's softplus */
        a[h] = sp * A[h];
        b[h] = 1.0f / (1.0f + expf(-b[h]));                         /* ggml's sigmoid */
    }
}

/* ---- the recurrence, one value head over the batch, token after token (the kernel
 * table's delta_step: ggml_gated_delta_net's step) ---- */
static void delta_head(void *p, int h) {
    const dn_job *j = p;
    const llm_model *m = j->m;
    struct llm_dn *s = m->dn;
    const int d = s->d_state, nk = m->c.ssm_n_group, kh = h % nk;
    const llm_kernel_table *kt = llm_kernels();
    float *S = s->ssm_state + (size_t)(j->il - m->l0) * layer_ssm(m) + (size_t)h * d * d;
    float *delta = s->delta + (size_t)h * d;
    const float scale = 1.0f / sqrtf((float)d);
    for (int t = 0; t < j->n; t++) {
        const float *x = s->qkv + (size_t)t * s->conv_dim;
        const float *q = x + (size_t)kh * d, *k = x + (size_t)(nk + kh) * d, *v = x + (size_t)(2 * nk + h) * d;
        const float beta = s->beta[(size_t)t * s->n_v + h], decay = expf(s->alpha[(size_t)t * s->n_v + h]);
        kt->delta_step(S, q, k, v, beta, decay, delta, s->out + (size_t)t * s->value_dim + (size_t)h * d, d, scale);
    }
}

/* ---- per (token, head): the gated RMSNorm, rms_norm(o) * norm_w * silu(z) ---- */
static void gated_norm(void *p, int r) {
    const dn_job *j = p;
    const llm_model *m = j->m;
    struct llm_dn *s = m->dn;
    const int d = s->d_state;
    float *o = s->out + (size_t)r * d, *z = s->z + (size_t)r * d;
    llm_rmsnorm(o, o, LT(m, j->il, LLM_T_SSM_NORM)->data, d, m->c.rms_eps);
    llm_kernels()->swiglu(z, s->ones, d);
    for (int i = 0; i < d; i++) o[i] = o[i] * z[i];
}

void llm_delta_net(llm_model *m, int il, int n) {
    struct llm_dn *s = m->dn;
    const llm_tensor *L = LT(m, il, 0);
    const llm_tensor *w[4] = {&L[LLM_T_ATTN_QKV], &L[LLM_T_ATTN_GATE], &L[LLM_T_SSM_BETA], &L[LLM_T_SSM_ALPHA]};
    float *y[4] = {s->qkv, s->z, s->beta, s->alpha};
    llm_mm_multi(w, 4, m->xn, n, y);
    llm_trace("linear_attn_qkv_mixed", il, s->qkv, (long long)n * s->conv_dim);
    llm_dn_conv(m, il, n);
    dn_job j = {m, il, n};
    llm_for_rows(n, silu_token, &j);
    llm_trace("conv_output_silu", il, s->qkv, (long long)n * s->conv_dim);
    llm_for_rows(n, prep_token, &j);
    llm_for_rows(s->n_v, delta_head, &j);
    llm_trace("attn_output", il, s->out, (long long)n * s->value_dim);
    llm_for_rows(n * s->n_v, gated_norm, &j);
    llm_trace("final_output", il, s->out, (long long)n * s->value_dim);
    llm_mm(&L[LLM_T_SSM_OUT], s->out, n, m->tmp);
    llm_trace("linear_attn_out", il, m->tmp, (long long)n * m->c.n_embd);
}
