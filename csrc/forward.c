/* One forward step over all layers for a batch of tokens (decode is a batch of one).
 * Every per-token computation is the same whatever the batch size, so the logits of
 * a position are bit-identical whether it was computed alone or in a batch. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "model.h"

/* debugging aid: when set, called with the whole batch of each stage (llm_set_trace) */
static llm_trace_fn trace_fn;
void llm_set_trace(llm_trace_fn fn) { trace_fn = fn; }
void llm_trace(const char *name, int il, const float *data, long long n) { if (trace_fn) trace_fn(name, il, data, n); }
#define TRACE(name, il, ptr, count) do { if (trace_fn) trace_fn(name, il, ptr, (long long)(count)); } while (0)

static int is_swa(const llm_model *m, int il) { return llm_layer_swa(m, il); }

/* llm_pass_times: off unless a benchmark asks */
static int pass_on;
static double pass_sec[LLM_PASS_KINDS], pass_bytes[LLM_PASS_KINDS], pass_fwd, pass_tokens;
void llm_pass_times(int on, double *out) {
    if (out) {
        for (int i = 0; i < LLM_PASS_KINDS; i++) {
            out[i] = pass_sec[i];
            out[LLM_PASS_KINDS + i] = pass_bytes[i];
            pass_sec[i] = pass_bytes[i] = 0.0;
        }
        out[2 * LLM_PASS_KINDS] = pass_fwd;
        out[2 * LLM_PASS_KINDS + 1] = pass_tokens;
        pass_fwd = pass_tokens = 0.0;
    }
    pass_on = on;
}
static double weight_bytes(const llm_tensor *const *w, int nw) {
    double b = 0.0;
    for (int i = 0; i < nw; i++)
        if (w[i]->data) b += (double)llm_row_bytes(w[i]->type, w[i]->ne0) * (double)w[i]->ne1;
    return b;
}
/* stmt, a pass of the given kind over the nw weights w, timed when counting */
#define PASS(kind, w, nw, stmt) do {                                            \
        if (!pass_on) { stmt; break; }                                          \
        const double t0_ = llm_now();                                           \
        stmt;                                                                   \
        pass_sec[kind] += llm_now() - t0_;                                      \
        pass_bytes[kind] += weight_bytes(w, nw);                                \
    } while (0)

/* the weight's interleaved copy is read where it has one (repack.c) */
void llm_mm(const llm_tensor *w, const float *x, int n, float *y) {
    if (llm_x4_ok(w, 0) && llm_matmul_x4(w->type, 0, llm_x4_of(w), w->ne1, w->ne0, x, n, y) == 0) return;
    llm_matmul(w->type, w->data, w->ne1, w->ne0, x, n, y);
}
#define mm llm_mm

/* several weights over the same input (same k): one quantization, one pool of tiles */
void llm_mm_multi(const llm_tensor *const *w, int nw, const float *x, int n, float *const *y) {
    int types[4];
    const void *data[4];
    long long rows[4];
    const float *xs[4];
    unsigned char how[4];
    for (int i = 0; i < nw; i++) {
        if (w[i]->ne0 != w[0]->ne0) {
            for (int k = 0; k < nw; k++) mm(w[k], x, n, y[k]);
            return;
        }
        types[i] = w[i]->type; rows[i] = w[i]->ne1; xs[i] = x;
        const int x4 = llm_x4_ok(w[i], 0);
        data[i] = x4 ? llm_x4_of(w[i]) : w[i]->data;
        how[i] = x4 ? LLM_MV_X4 : 0;
    }
    if (n == 1) llm_matvec_group(nw, types, data, rows, w[0]->ne0, xs, y, how);   /* one column: one pool pass */
    else llm_matmul_multi(nw, types, data, rows, w[0]->ne0, x, n, y, how);
}
#define mm_multi llm_mm_multi

static void add_bias(float *y, const llm_tensor *b, int n, int dim) {
    if (!b->data) return;
    const float *bv = b->data;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < dim; i++) y[(size_t)t * dim + i] += bv[i];
}

/* ---- attention ----
 * One task per (token, KV head), the query heads that share the KV head together
 * (each K/V row read once for all of them; every head's arithmetic is its own,
 * unchanged), with or without flash attention. */
typedef struct {
    llm_model *m;
    int il, n, pos;
    atomic_int next;            /* tasks taken one at a time, latest tokens (costliest) first */
} attn_job;

/* where (layer il, KV head h, position p)'s row starts in the caches (the cache layer
 * il reads: its own, or gemma4's earlier layer's) */
static inline size_t kv_row(const llm_model *m, int il, int h, int p) {
    return m->kv_off[il] + ((size_t)h * m->n_ctx + p) * llm_layer_hd(m, il);
}

static int attn_start(const llm_model *m, int il, int p) {
    const int sw = m->c.sliding_window;
    return is_swa(m, il) && p - sw + 1 > 0 ? p - sw + 1 : 0;
}

/* one task per (token, KV head), the query heads that share the KV head together
 * (each K/V row read once for all of them), split into pieces when there are
 * fewer tasks than threads; taken one at a time, the latest tokens (costliest) first */
static void attn_task(int ith, int nth, void *p) {
    attn_job *j = p;
    llm_model *m = j->m;
    const llm_config *c = &m->c;
    const int hd = llm_layer_hd(m, j->il), qd = c->n_head * hd, hkv = llm_layer_hkv(m, j->il), group = c->n_head / hkv;
    const size_t scs = (size_t)m->n_ctx + 16;
    float *sc = m->scores + (size_t)ith * group * scs, *acc = m->acc32 + (size_t)ith * group * 16 * (m->q_dim / c->n_head);
    f16_t *q16 = m->q16 + (size_t)ith * m->q_dim, *acc16 = m->acc16 + (size_t)ith * m->q_dim;
    int pieces = 1;
    while (j->n * hkv * pieces < nth && pieces < group) pieces++;
    const int total = j->n * hkv * pieces;
    const llm_kernel_table *kt = llm_kernels();
    const float *sinks = LT(m, j->il, 0)[LLM_T_ATTN_SINKS].data;   /* per query head, or none */
    for (;;) {
        const int taken = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (taken >= total) break;
        const int w = total - 1 - taken;
        const int t = w / (hkv * pieces), kh = w / pieces % hkv, pc = w % pieces;
        const int h0 = group * pc / pieces, h1 = group * (pc + 1) / pieces;
        const int pp = j->pos + t;
        const size_t qo = (size_t)t * qd + ((size_t)kh * group + h0) * hd;
        const float *q = m->q + qo;
        for (int i = 0; i < (h1 - h0) * hd; i++) q16[i] = llm_f32_to_f16(q[i]);
        const size_t r0 = kv_row(m, j->il, kh, 0);
        if (c->flash_attn)
            kt->attn_fa(kt, q16, h1 - h0, m->kcache + r0, m->vcache + r0, (size_t)hd, attn_start(m, j->il, pp), pp,
                        hd, c->attn_scale, sinks ? sinks + kh * group + h0 : NULL, acc16, m->att + qo);
        else
            kt->attn_group(q16, h1 - h0, m->kcache + r0, m->vcache + r0, (size_t)hd, attn_start(m, j->il, pp), pp,
                           hd, c->attn_scale, sinks ? sinks + kh * group + h0 : NULL, sc, scs, acc, m->att + qo);
    }
}

/* ---- per-token stages, split over the thread pool by token (each token's
 * arithmetic is the same whatever the split) ---- */
enum { ST_ATTN_NORM, ST_QK, ST_POST_ATTN, ST_ACT, ST_POST_FFN, ST_OUT_SCALE, ST_Q_SPLIT, ST_ATTN_GATE };

/* a layer's FFN width: its gate's rows (gemma4's vary), or half its fused gate+up's */
static int layer_ff(const llm_tensor *L) {
    return (int)(L[LLM_T_FFN_GATE].data ? L[LLM_T_FFN_GATE].ne1 : L[LLM_T_FFN_UP].ne1 / 2);
}
typedef struct {
    llm_model *m;
    int il, n, pos, stage;
} tok_job;

/* xr += o, o first multiplied by granite's residual scale (0: none): the product rounded
 * to a float, then the add, as llama.cpp's ggml_scale then ggml_add */
static void residual_add(float *xr, const float *o, int d, float scale) {
    if (scale == 0.0f || scale == 1.0f) {
        for (int i = 0; i < d; i++) xr[i] += o[i];
        return;
    }
    for (int i = 0; i < d; i++) {
        const float so = o[i] * scale;
        xr[i] += so;
    }
}

static void tok_one(const tok_job *j, int t) {
    llm_model *m = j->m;
    const llm_config *c = &m->c;
    const int il = j->il, d = c->n_embd, hd = llm_layer_hd(m, il), hkv = llm_layer_hkv(m, il);
    const int qd = c->n_head * hd, kvd = hkv * hd;
    const llm_tensor *L = LT(m, il, 0);
    float *xr = m->x + (size_t)t * d, *xn = m->xn + (size_t)t * d;
    switch (j->stage) {
    case ST_ATTN_NORM:
        llm_rmsnorm(xn, xr, L[LLM_T_ATTN_NORM].data, d, c->rms_eps);
        break;
    case ST_QK: {
        const int swa = is_swa(m, il);
        const float base = swa ? c->rope_base_swa : c->rope_base;
        const float scale = swa ? c->rope_scale_swa : c->rope_scale;
        /* gemma4's sliding layers rotate their own dims, without rope_freqs (its
         * proportional rope is the full layers'); no other model has both */
        const int n_rot = swa && c->n_rot_swa > 0 ? c->n_rot_swa : c->n_rot;
        const float *ff = swa ? NULL : m->g[LLM_G_ROPE_FREQS].data;
        const int own_kv = llm_layer_own_kv(m, il);
        float cs[1024];
        float *q = m->q + (size_t)t * qd, *k = m->k + (size_t)t * kvd, *v = m->v + (size_t)t * kvd;
        if (L[LLM_T_ATTN_Q_NORM].data)
            for (int h = 0; h < c->n_head; h++) llm_rmsnorm(q + h * hd, q + h * hd, L[LLM_T_ATTN_Q_NORM].data, hd, c->rms_eps);
        if (own_kv && L[LLM_T_ATTN_K_NORM].data)
            for (int h = 0; h < hkv; h++) llm_rmsnorm(k + h * hd, k + h * hd, L[LLM_T_ATTN_K_NORM].data, hd, c->rms_eps);
        if (own_kv && c->v_norm)
            for (int h = 0; h < hkv; h++) llm_rmsnorm(v + h * hd, v + h * hd, NULL, hd, c->rms_eps);
        if (n_rot > 0 && !c->rope_skip[il]) {   /* smollm3's NoPE layers rotate nothing */
            llm_yarn y;
            if (c->rope_ext_factor != 0.0f) llm_yarn_init(&y, c, base, scale);
            llm_rope_cache(cs, n_rot, j->pos + t, base, scale, ff, c->rope_ext_factor != 0.0f ? &y : NULL);
            if (c->rope_sections[0] + c->rope_sections[1] + c->rope_sections[2] + c->rope_sections[3] > 0)
                llm_rope_imrope(cs, n_rot, c->rope_sections);
            for (int h = 0; h < c->n_head; h++) llm_rope_apply(q + h * hd, cs, n_rot, c->rope_neox);
            for (int h = 0; own_kv && h < hkv; h++) llm_rope_apply(k + h * hd, cs, n_rot, c->rope_neox);
        }
        if (c->attn_temp_scale != 0.0f) {   /* mistral3: the query's temperature at its position */
            const float s = llm_attn_temp(c, j->pos + t);
            for (int i = 0; i < qd; i++) q[i] *= s;
        }
        if (c->q_prescale != 1.0f)
            for (int i = 0; i < qd; i++) q[i] *= c->q_prescale;
        if (!own_kv) break;
        /* K and V into the F16 cache (head-major: each head's rows contiguous) */
        for (int h = 0; h < hkv; h++) {
            const size_t off = kv_row(m, il, h, j->pos + t);
            for (int i = 0; i < hd; i++) {
                m->kcache[off + i] = llm_f32_to_f16(k[h * hd + i]);
                m->vcache[off + i] = llm_f32_to_f16(v[h * hd + i]);
            }
        }
        break;
    }
    case ST_POST_ATTN: {
        float *o = m->tmp + (size_t)t * d;
        if (L[LLM_T_POST_ATTN_NORM].data) llm_rmsnorm(o, o, L[LLM_T_POST_ATTN_NORM].data, d, c->rms_eps);
        residual_add(xr, o, d, c->residual_scale);
        llm_rmsnorm(xn, xr, L[LLM_T_FFN_NORM].data, d, c->rms_eps);
        break;
    }
    case ST_ACT: {
        const int ff_n = layer_ff(L);
        if (c->ffn_gelu) llm_geglu(m->gate + (size_t)t * ff_n, m->up + (size_t)t * ff_n, ff_n);
        else llm_kernels()->swiglu(m->gate + (size_t)t * ff_n, m->up + (size_t)t * ff_n, ff_n);
        break;
    }
    case ST_POST_FFN: {
        float *o = m->tmp + (size_t)t * d;
        if (L[LLM_T_POST_FFW_NORM].data) llm_rmsnorm(o, o, L[LLM_T_POST_FFW_NORM].data, d, c->rms_eps);
        residual_add(xr, o, d, c->residual_scale);
        break;
    }
    case ST_OUT_SCALE: {
        const float s = *(const float *)L[LLM_T_LAYER_OUT_SCALE].data;
        for (int i = 0; i < d; i++) xr[i] *= s;
        break;
    }
    case ST_Q_SPLIT:    /* qwen35: each head's query, then its gate, in m->tmp */
        for (int h = 0; h < c->n_head; h++)
            memcpy(m->q + (size_t)t * qd + h * hd, m->tmp + (size_t)t * 2 * qd + (size_t)h * 2 * hd, hd * 4);
        break;
    case ST_ATTN_GATE: {   /* the attention's output times sigmoid(gate) (ggml's sigmoid, then mul) */
        float *o = m->att + (size_t)t * qd;
        for (int h = 0; h < c->n_head; h++) {
            const float *g = m->tmp + (size_t)t * 2 * qd + (size_t)h * 2 * hd + hd;
            for (int i = 0; i < hd; i++) o[h * hd + i] = o[h * hd + i] * (1.0f / (1.0f + expf(-g[i])));
        }
        break;
    }
    }
}

/* fn(ctx, t) for t < n over the pool, in chunks taken one at a time (a row's
 * arithmetic is the same whatever the split); a few rows on the calling thread */
typedef struct {
    void (*fn)(void *ctx, int t);
    void *ctx;
    int n;
    atomic_int next;
} rows_job;

static void rows_task(int ith, int nth, void *p) {
    (void)ith;
    rows_job *j = p;
    const int chunk = j->n / (4 * nth) > 0 ? j->n / (4 * nth) : 1;
    for (int t0; (t0 = atomic_fetch_add_explicit(&j->next, chunk, memory_order_relaxed)) < j->n;)
        for (int t = t0; t < t0 + chunk && t < j->n; t++) j->fn(j->ctx, t);
}

void llm_for_rows(int n, void (*fn)(void *ctx, int t), void *ctx) {
    rows_job j = {fn, ctx, n, 0};
    if (n < 4) rows_task(0, 1, &j);
    else llm_parallel(rows_task, &j);
}

static void tok_row(void *j, int t) { tok_one(j, t); }

static void per_token(llm_model *m, int il, int n, int pos, int stage) {
    tok_job j = {m, il, n, pos, stage};
    llm_for_rows(n, tok_row, &j);
}

static void dense_ffn(llm_model *m, int il, int n, int pos);

/* the attention block over the n rows of m->xn, its output into m->tmp */
static void attention(llm_model *m, int il, int n, int pos) {
    const llm_config *c = &m->c;
    const int qd = c->n_head * llm_layer_hd(m, il), kvd = llm_layer_hkv(m, il) * llm_layer_hd(m, il);
    const llm_tensor *L = LT(m, il, 0);
    float *xn = m->xn;

    if (!llm_layer_own_kv(m, il)) {      /* gemma4: K/V already in an earlier layer's cache */
        const llm_tensor *wq = &L[LLM_T_ATTN_Q];
        PASS(LLM_PASS_QKV, &wq, 1, mm(wq, xn, n, m->q));
    } else if (L[LLM_T_ATTN_QKV].data) {
        const int w = qd + 2 * kvd;
        const llm_tensor *wqkv = &L[LLM_T_ATTN_QKV];
        PASS(LLM_PASS_QKV, &wqkv, 1, mm(wqkv, xn, n, m->tmp));
        for (int t = 0; t < n; t++) {
            const float *r = m->tmp + (size_t)t * w;
            memcpy(m->q + (size_t)t * qd, r, qd * 4);
            memcpy(m->k + (size_t)t * kvd, r + qd, kvd * 4);
            memcpy(m->v + (size_t)t * kvd, r + qd + kvd, kvd * 4);
        }
    } else {
        const llm_tensor *w3[3] = {&L[LLM_T_ATTN_Q], &L[LLM_T_ATTN_K], &L[LLM_T_ATTN_V]};
        float *y3[3] = {c->attn_q_gate ? m->tmp : m->q, m->k, m->v};
        const int has_v = L[LLM_T_ATTN_V].data != NULL;
        PASS(LLM_PASS_QKV, w3, has_v ? 3 : 2, mm_multi(w3, has_v ? 3 : 2, xn, n, y3));
        if (!has_v) memcpy(m->v, m->k, (size_t)n * kvd * sizeof(float));   /* gemma4's K-as-V layers */
        if (c->attn_q_gate) per_token(m, il, n, pos, ST_Q_SPLIT);
    }
    add_bias(m->q, &L[LLM_T_ATTN_Q_B], n, qd);
    add_bias(m->k, &L[LLM_T_ATTN_K_B], n, kvd);
    add_bias(m->v, &L[LLM_T_ATTN_V_B], n, kvd);

    TRACE("Qraw", il, m->q, (size_t)n * qd);
    TRACE("Kraw", il, m->k, (size_t)n * kvd);
    TRACE("Vcur", il, m->v, (size_t)n * kvd);
    per_token(m, il, n, pos, ST_QK);
    TRACE("Qcur", il, m->q, (size_t)n * qd);
    TRACE("Kcur", il, m->k, (size_t)n * kvd);

    attn_job aj = {m, il, n, pos, 0};
    llm_parallel(attn_task, &aj);

    TRACE("kqv_out", il, m->att, (size_t)n * qd);
    if (c->attn_q_gate) {
        per_token(m, il, n, pos, ST_ATTN_GATE);
        TRACE("attn_gated", il, m->att, (size_t)n * qd);
    }
    const llm_tensor *wo = &L[LLM_T_ATTN_OUT];
    PASS(LLM_PASS_ATTN_OUT, &wo, 1, mm(wo, m->att, n, m->tmp));
    add_bias(m->tmp, &L[LLM_T_ATTN_OUT_B], n, c->n_embd);
    TRACE("attn_out", il, m->tmp, (size_t)n * c->n_embd);
}

static void layer_forward(llm_model *m, int il, int n, int pos) {
    const llm_config *c = &m->c;
    const llm_tensor *L = LT(m, il, 0);
    float *xn = m->xn;

    per_token(m, il, n, pos, ST_ATTN_NORM);
    TRACE("attn_norm", il, xn, (size_t)n * c->n_embd);

    if (L[LLM_T_SSM_OUT].data) llm_delta_net(m, il, n);   /* qwen35's linear attention */
    else if (L[LLM_T_SHORTCONV_OUT].data) llm_shortconv(m, il, n);   /* lfm2's short convolution */
    else attention(m, il, n, pos);
    per_token(m, il, n, pos, ST_POST_ATTN);
    TRACE("ffn_inp", il, m->x, (size_t)n * c->n_embd);
    TRACE("ffn_norm", il, xn, (size_t)n * c->n_embd);

    if (L[LLM_T_FFN_PRE_NORM_2].data) dense_ffn(m, il, n, pos);   /* gemma4: a dense FFN beside the experts */
    if (L[LLM_T_FFN_GATE_INP].data) llm_moe_ffn(m, il, n);   /* a mixture of experts */
    else dense_ffn(m, il, n, pos);
    TRACE("ffn_out", il, m->tmp, (size_t)n * c->n_embd);
    per_token(m, il, n, pos, ST_POST_FFN);
    if (c->n_embd_ple > 0) llm_ple_layer(m, il, n);
    if (L[LLM_T_LAYER_OUT_SCALE].data) per_token(m, il, n, pos, ST_OUT_SCALE);
    TRACE("l_out", il, m->x, (size_t)n * c->n_embd);
}

/* the dense FFN over m->xn into m->tmp */
static void dense_ffn(llm_model *m, int il, int n, int pos) {
    const llm_tensor *L = LT(m, il, 0);
    float *xn = m->xn;
    const int ff_n = layer_ff(L);
    if (L[LLM_T_FFN_GATE].data) {
        const llm_tensor *w2[2] = {&L[LLM_T_FFN_GATE], &L[LLM_T_FFN_UP]};
        float *y2[2] = {m->gate, m->up};
        PASS(LLM_PASS_FFN_UP, w2, 2, mm_multi(w2, 2, xn, n, y2));
    } else { /* fused gate+up: rows gate then up */
        const llm_tensor *wu = &L[LLM_T_FFN_UP];
        PASS(LLM_PASS_FFN_UP, &wu, 1, mm(wu, xn, n, m->tmp));
        for (int t = 0; t < n; t++) {
            memcpy(m->gate + (size_t)t * ff_n, m->tmp + (size_t)t * 2 * ff_n, ff_n * 4);
            memcpy(m->up + (size_t)t * ff_n, m->tmp + (size_t)t * 2 * ff_n + ff_n, ff_n * 4);
        }
    }
    TRACE("ffn_gate", il, m->gate, (size_t)n * ff_n);
    TRACE("ffn_up", il, m->up, (size_t)n * ff_n);
    per_token(m, il, n, pos, ST_ACT);
    TRACE("ffn_act", il, m->gate, (size_t)n * ff_n);
    const llm_tensor *wd = &L[LLM_T_FFN_DOWN];
    PASS(LLM_PASS_FFN_DOWN, &wd, 1, mm(wd, m->gate, n, m->tmp));
}

/* rows first..first+n-1 of the hidden state after the last layer, through the output
 * norm into dst (n x n_embd): what the head reads, and llama.cpp's result_norm, the
 * per-token embedding it pools */
static void output_norm(llm_model *m, int first, int n, float *dst) {
    const int d = m->c.n_embd;
    for (int t = 0; t < n; t++)
        llm_rmsnorm(dst + (size_t)t * d, m->x + (size_t)(first + t) * d, m->g[LLM_G_OUTPUT_NORM].data, d, m->c.rms_eps);
    TRACE("result_norm", -1, dst, (size_t)n * d);
}

static int forward_from_x(llm_model *m, int n, int pos, float *logits, int first_out, int n_out) {
    const llm_config *c = &m->c;
    if (llm_dn_begin(m, pos, n)) return -1;       /* a recurrent state holds one position only */
    for (int il = m->l0; il < m->l1; il++) layer_forward(m, il, n, pos);
    if (m->span) {            /* the hidden state crosses to the next backend's layers */
        const int span_head = !m->head;
        if (m->span_ops->run(m->span, m->x, n, pos, span_head ? logits : NULL, first_out,
                             span_head ? n_out : 0))
            return -2;                                   /* the span says why: llm_model_span_error */
        if (span_head) return 0;
    }
    if (n_out <= 0 || !m->head) return 0;
    output_norm(m, first_out, n_out, m->xn);
    const llm_tensor *O = m->g[LLM_G_OUTPUT].data ? &m->g[LLM_G_OUTPUT] : &m->g[LLM_G_TOKEN_EMBD];
    PASS(LLM_PASS_HEAD, &O, 1, mm(O, m->xn, n_out, logits));
    if (c->logit_mul != 0.0f && c->logit_mul != 1.0f)    /* granite: ggml_scale by 1 / logit_scale */
        for (size_t i = 0; i < (size_t)n_out * c->n_vocab; i++) logits[i] *= c->logit_mul;
    if (c->logit_softcap > 0.0f) {
        const float cap = c->logit_softcap;
        const float inv = 1.0f / cap;   /* llama.cpp scales by the reciprocal (ggml_scale), not divides */
        for (size_t i = 0; i < (size_t)n_out * c->n_vocab; i++) logits[i] = tanhf(logits[i] * inv) * cap;
    }
    return 0;
}

/* counted in and out: huge_pages.c lets a copy's old pages go only after every pass
 * that may have read its old address has ended */
int llm_forward_from_x(llm_model *m, int n, int pos, float *logits, int first_out, int n_out) {
    __atomic_fetch_add(&m->fwd_in, 1, __ATOMIC_SEQ_CST);
    const int timed = pass_on;   /* read once: the flag may change meanwhile */
    const double t0 = timed ? llm_now() : 0.0;
    const int rc = forward_from_x(m, n, pos, logits, first_out, n_out);
    if (timed) {
        pass_fwd += llm_now() - t0;
        pass_tokens += n;
    }
    __atomic_fetch_add(&m->fwd_out, 1, __ATOMIC_SEQ_CST);
    return rc;
}

static int forward_chunk(llm_model *m, const int *tokens, int n, int pos, float *logits, int first_out, int n_out) {
    const llm_config *c = &m->c;
    const int d = c->n_embd;
    const llm_tensor *E = &m->g[LLM_G_TOKEN_EMBD];
    const long long rb = llm_row_bytes(E->type, d);
    for (int t = 0; t < n; t++) {
        float *x = m->x + (size_t)t * d;
        llm_dequantize(E->type, (const char *)E->data + (size_t)tokens[t] * rb, x, d);
        if (c->embd_scale != 1.0f)
            for (int i = 0; i < d; i++) x[i] *= c->embd_scale;
    }
    TRACE("embd", -1, m->x, (size_t)n * d);
    if (c->n_embd_ple > 0) llm_ple_inputs(m, tokens, n);
    return llm_forward_from_x(m, n, pos, logits, first_out, n_out);
}

int llm_forward(llm_model *m, const int *tokens, int n, int pos, float *logits, int logits_mode) {
    if (n <= 0 || pos < 0 || pos + n > m->n_ctx || m->l0 != 0) return -1;
    if (!m->span && (m->l1 != m->c.n_layer || !m->head)) return -1;   /* layers or the head missing */
    /* mode 3 without the head: the span holds the output norm, and it hands back logits only */
    if (logits_mode == 3 && (!m->head || !logits)) return -1;
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= m->c.n_vocab) return -1;
    for (int done = 0; done < n;) {
        int b = n - done < m->n_batch ? n - done : m->n_batch;
        int last = done + b == n;
        float *out = NULL;
        int first_out = 0, n_out = 0;
        if (logits_mode == 2) { out = logits + (size_t)done * m->c.n_vocab; n_out = b; }
        else if (logits_mode == 1 && last) { out = logits; first_out = b - 1; n_out = 1; }
        const int rc = forward_chunk(m, tokens + done, b, pos + done, out, first_out, n_out);
        if (rc) return rc;
        if (logits_mode == 3) output_norm(m, 0, b, logits + (size_t)done * m->c.n_embd);
        done += b;
    }
    return 0;
}
