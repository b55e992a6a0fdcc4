/* The mixture-of-experts FFN (qwen3moe, qwen2moe, gpt-oss), with llama.cpp's numerics
 * (build_moe_ffn in src/llama-graph.cpp, mul_mat_id in ggml-cpu):
 *
 *   router   p = softmax(ffn_gate_inp x): its F32 matmul (gate_matmul), its CPU
 *            softmax (llm_softmax_exact)
 *   top-k    the k largest p, largest first (ggml_argsort descending, then the first
 *            k); equal p: the lower expert first (what std::sort's insertion sort
 *            gives for the up to 16 experts it sorts that way; for more, ties between
 *            distinct experts of equal probability are left to its introsort, and a
 *            tie needs two bit-equal probabilities)
 *   weights  w_s = p[e_s]; qwen3moe divides them by max(sum in double, 2^-14)
 *   experts  y_s = down_e(silu(gate_e x) * up_e x): each expert a 2-D slice of the
 *            3-D tensors, computed like any matmul (the same bits whatever the batch),
 *            Q4_K experts in the order of the repacked gemv llama.cpp takes for them
 *   sum      ((w_0 y_0 + w_1 y_1) + w_2 y_2) + ..., each product rounded first
 *   shared   (qwen2moe) + ffn_shexp(x) * (silu(g)/g), g = ffn_gate_inp_shexp x;
 *            (granitemoe) + ffn_shexp(x), ungated
 *
 * gpt-oss (llama.cpp's openai_moe: build_moe_ffn with SOFTMAX_WEIGHT gating and
 * LLM_FFN_SWIGLU_OAI_MOE) differs in these steps:
 *   router   l = ffn_gate_inp x + ffn_gate_inp.bias (ggml_add, after the same matmul)
 *   top-k    the k largest l (the same order and ties), no softmax before
 *   weights  w = softmax of the k chosen l (llm_softmax_exact over k: libm's expf below 16)
 *   experts  g = gate_e x + gate_b[e], u = up_e x + up_b[e] (ggml_add_id), then
 *            swiglu_oai: x = min(g, 7), y = clamp(u, -7, 7), x / (1 + expf(1.702 * -x)) * (y + 1);
 *            y_s = down_e(...) + down_b[e]; the experts MXFP4, whose matmul has the same
 *            order whatever the batch (type_fp4.c)
 *   sum      as above
 * Around it (forward.c): attention with q/k/v and output biases, YaRN rope (ops.c),
 * per-head sinks in the softmax's denominator (attn_exact.c), sliding-window layers
 * every other one (il % 2 == 0), and the norm before the FFN named post_attention_norm
 * in the file (llmlite/model.py fills the ffn_norm slot with it).
 *
 * A batch is grouped by expert: the rows routed to expert e are gathered, and each
 * expert's matrices run once over its rows (its weights read once per batch); decode
 * reads only the k chosen experts. Each row's result is the same whatever else the
 * batch holds. */
#include <math.h>
#include <string.h>
#include "model.h"

/* ---- the F32 gates: the router (n_expert rows) and the shared expert's (1 row),
 * each output as llama.cpp's F32 matmul computes it (dot_f32_exact: its tinyBLAS
 * order where it takes tinyBLAS, k % 16 == 0 and rows % 4 == 0, else its vec_dot's);
 * a gate of another type through the common matmul ---- */
typedef struct { const llm_tensor *w; const float *x; float *y; } gate_job;

static void gate_one(void *p, int t) {
    const gate_job *j = p;
    const int k = (int)j->w->ne0, rows = (int)j->w->ne1, sgemm = k % 16 == 0 && rows % 4 == 0;
    const float *x = j->x + (size_t)t * k;
    float *y = j->y + (size_t)t * rows;
    float (*dot)(const float *, const float *, int, int) = llm_kernels()->dot_f32_exact;
    for (int r = 0; r < rows; r++) y[r] = dot((const float *)j->w->data + (size_t)r * k, x, k, sgemm);
}

static void gate_matmul(const llm_tensor *w, const float *x, int n, float *y) {
    if (w->type != T_F32) {
        llm_mm(w, x, n, y);
        return;
    }
    gate_job j = {w, x, y};
    llm_for_rows(n, gate_one, &j);
}

/* ---- routing: one token's softmax, top-k and weights ---- */
typedef struct { llm_model *m; const float *bias; } route_job;

static void route_one(void *p, int t) {
    llm_model *m = ((route_job *)p)->m;
    const llm_config *c = &m->c;
    llm_moe_scratch *s = &m->moe;
    const int E = c->n_expert, k = c->n_expert_used;
    float *prob = s->logits + (size_t)t * E, *w = s->w + (size_t)t * k;
    int *id = s->id + (size_t)t * k;
    if (((route_job *)p)->bias) {                /* ggml_add: gpt-oss's router bias */
        const float *b = ((route_job *)p)->bias;
        for (int e = 0; e < E; e++) prob[e] = prob[e] + b[e];
    }
    /* softmax over all experts, or (expert_softmax_k) over the k chosen logits below */
    if (!c->expert_softmax_k) llm_softmax_exact(prob, prob, E);
    /* insertion into the k best so far: a later expert goes after an equal one */
    int have = 0;
    for (int e = 0; e < E; e++) {
        int at = have < k ? have : k;
        while (at > 0 && prob[e] > w[at - 1]) at--;
        if (at >= k) continue;
        for (int j = (have < k ? have : k - 1); j > at; j--) { w[j] = w[j - 1]; id[j] = id[j - 1]; }
        w[at] = prob[e];
        id[at] = e;
        if (have < k) have++;
    }
    if (c->expert_softmax_k) llm_softmax_exact(w, w, k);
    if (c->expert_norm_w) {
        double sum = 0.0;                       /* ggml_sum_rows: a double sum */
        for (int j = 0; j < k; j++) sum += (double)w[j];
        float fs = (float)sum;
        if (!(fs >= 6.103515625e-5f)) fs = 6.103515625e-5f;   /* clamped to F16's smallest normal */
        for (int j = 0; j < k; j++) w[j] = w[j] / fs;
    }
    if (c->expert_w_scale != 0.0f && c->expert_w_scale != 1.0f)
        for (int j = 0; j < k; j++) w[j] *= c->expert_w_scale;
}

/* each route's row in the expert-grouped buffers: expert 0's routes first, each
 * expert's in token order; start[e] .. start[e+1]-1 are expert e's rows */
static void group_routes(llm_moe_scratch *s, int E, int R) {
    memset(s->start, 0, (size_t)(E + 1) * sizeof(int));
    for (int r = 0; r < R; r++) s->start[s->id[r] + 1]++;
    for (int e = 0; e < E; e++) s->start[e + 1] += s->start[e];
    for (int r = 0; r < R; r++) s->row[r] = s->start[s->id[r]]++;
    for (int e = E; e > 0; e--) s->start[e] = s->start[e - 1];   /* back from each expert's end */
    s->start[0] = 0;
}

/* expert e's matrix of a 3-D expert tensor: rows ne1 / n_expert of it */
static llm_tensor expert_slice(const llm_tensor *t, int e, int n_expert) {
    const long long rows = t->ne1 / n_expert;
    const size_t off = (size_t)e * rows * llm_row_bytes(t->type, t->ne0);
    /* the copy's groups of 4 rows lie within an expert when its rows are whole groups */
    const char *tx = llm_x4_of(t);
    const void *x4 = tx && rows % LLM_R4 == 0 ? tx + off : NULL;
    llm_tensor v = {t->type, (const char *)t->data + off, t->ne0, rows, x4};
    return v;
}

/* expert e's gate (up 0) or up (up 1) matrix: of its own tensor, or of gemma4's fused
 * one (each expert's ff gate rows, then its ff up rows: each a contiguous block) */
static llm_tensor expert_gate_up(const llm_tensor *L, int up, int e, int n_expert) {
    const llm_tensor *f = &L[LLM_T_FFN_GATE_UP_EXPS];
    if (!f->data) return expert_slice(&L[up ? LLM_T_FFN_UP_EXPS : LLM_T_FFN_GATE_EXPS], e, n_expert);
    llm_tensor both = expert_slice(f, e, n_expert), half = both;
    half.ne1 = both.ne1 / 2;
    const size_t off = (size_t)(up ? half.ne1 : 0) * llm_row_bytes(f->type, f->ne0);
    half.data = (const char *)both.data + off;
    half.x4 = both.x4 && half.ne1 % LLM_R4 == 0 ? (const char *)both.x4 + off : NULL;
    return half;
}

typedef struct { llm_model *m; int n; } rows_ctx;

static void gather_one(void *p, int r) {
    const rows_ctx *j = p;
    const llm_moe_scratch *s = &j->m->moe;
    const int d = j->m->c.n_embd;
    memcpy(s->x + (size_t)s->row[r] * d, j->m->xn + (size_t)(r / j->m->c.n_expert_used) * d, (size_t)d * sizeof(float));
}

/* gpt-oss's clamped SwiGLU (ggml's swiglu_oai, element by element in libm's expf) */
static void swiglu_oai(float *g, const float *u, int n, float alpha, float limit) {
    for (int i = 0; i < n; i++) {
        const float x = g[i] < limit ? g[i] : limit;
        const float y = u[i] < -limit ? -limit : u[i] > limit ? limit : u[i];
        g[i] = (x / (1.f + expf(alpha * (-x)))) * (y + 1.f);
    }
}

/* ggml_add_id: route r's row plus its expert's bias row (n wide), or nothing */
static void add_expert_bias(const llm_model *m, const llm_tensor *b, float *y, int r, int n) {
    if (!b->data) return;
    const float *bv = (const float *)b->data + (size_t)m->moe.id[r] * n;
    for (int i = 0; i < n; i++) y[i] = y[i] + bv[i];
}

typedef struct { llm_model *m; int n; const llm_tensor *L; } act_ctx;

/* route r (its row in the grouped buffers: row[r]): the biases, then the activation */
static void swiglu_one(void *p, int r) {
    const act_ctx *j = p;
    const llm_config *c = &j->m->c;
    const size_t ff = (size_t)j->n, row = (size_t)j->m->moe.row[r];
    float *g = j->m->moe.gate + row * ff, *u = j->m->moe.up + row * ff;
    add_expert_bias(j->m, &j->L[LLM_T_FFN_UP_EXPS_B], u, r, (int)ff);
    add_expert_bias(j->m, &j->L[LLM_T_FFN_GATE_EXPS_B], g, r, (int)ff);
    if (c->swiglu_limit > 0.0f) swiglu_oai(g, u, (int)ff, c->swiglu_alpha, c->swiglu_limit);
    else if (c->ffn_gelu) llm_geglu(g, u, (int)ff);     /* gemma4's experts: GEGLU */
    else llm_kernels()->swiglu(g, u, (int)ff);
}

/* route r's expert output: its bias (gpt-oss) or its expert's scale (gemma4) */
static void down_bias_one(void *p, int r) {
    const act_ctx *j = p;
    const int d = j->m->c.n_embd;
    float *y = j->m->moe.y + (size_t)j->m->moe.row[r] * d;
    add_expert_bias(j->m, &j->L[LLM_T_FFN_DOWN_EXPS_B], y, r, d);
    if (j->L[LLM_T_FFN_DOWN_EXPS_S].data) {
        const float s = ((const float *)j->L[LLM_T_FFN_DOWN_EXPS_S].data)[j->m->moe.id[r]];
        for (int i = 0; i < d; i++) y[i] *= s;
    }
}

/* token t's output: its routes' weighted outputs summed in rank order */
static void combine_one(void *p, int t) {
    const rows_ctx *j = p;
    const llm_model *m = j->m;
    const llm_moe_scratch *s = &m->moe;
    const int d = m->c.n_embd, k = m->c.n_expert_used;
    float *o = m->tmp + (size_t)t * d;
    for (int q = 0; q < k; q++) {
        const float *y = s->y + (size_t)s->row[t * k + q] * d, w = s->w[t * k + q];
        if (q == 0)
            for (int i = 0; i < d; i++) o[i] = y[i] * w;
        else
            for (int i = 0; i < d; i++) o[i] = o[i] + y[i] * w;
    }
}

/* llama.cpp repacks a Q4_K expert tensor whose experts have a multiple of 8 rows
 * (on AVX2 and up) and its mixture-of-experts matmul then takes the repacked gemv,
 * whatever the batch: those experts in the gemv's order, the others as any matmul */
static int gemv_order(const llm_tensor *w) { return w->type == T_Q4_K && w->ne1 % 8 == 0; }

static void expert_mm(const llm_tensor *w, const float *x, int n, float *y) {
    if (!gemv_order(w)) llm_mm(w, x, n, y);
    else if (!llm_x4_ok(w, 1) || llm_matmul_x4(w->type, 1, llm_x4_of(w), w->ne1, w->ne0, x, n, y))
        llm_matmul_q4_K_gemv(w->data, w->ne1, w->ne0, x, n, y);
}

/* how llm_matvec_group reads expert slice w (one column) */
static unsigned char expert_how(const llm_tensor *w) {
    const int gv = gemv_order(w);
    return (unsigned char)((gv ? LLM_MV_GEMV : 0) | (llm_x4_ok(w, gv) ? LLM_MV_X4 : 0));
}

/* one token's k routed experts (one row each, distinct experts) in one pool pass:
 * every gate and up matrix over xn, or (down) every down matrix over its expert's
 * activation; each output the bits of its own matmul (llm_matvec_group); -1 where
 * the group is refused (the caller then runs them one by one) */
#define MOE_DECODE_MAX 16   /* routed experts a token may have for this path (2 jobs each) */
static int group_experts(llm_model *m, const llm_tensor *L, int R, int down) {
    const llm_config *c = &m->c;
    llm_moe_scratch *s = &m->moe;
    const int E = c->n_expert, d = c->n_embd, ff = c->n_ff_exp;
    if (R > MOE_DECODE_MAX) return -1;
    int type[2 * MOE_DECODE_MAX];
    const void *W[2 * MOE_DECODE_MAX];
    long long rows[2 * MOE_DECODE_MAX];
    const float *X[2 * MOE_DECODE_MAX];
    float *Y[2 * MOE_DECODE_MAX];
    unsigned char gv[2 * MOE_DECODE_MAX];
    int nj = 0;
    for (int e = 0; e < E; e++) {
        const size_t r0 = (size_t)s->start[e];
        if (s->start[e + 1] == (int)r0) continue;
        llm_tensor w[2];
        float *x[2], *y[2];
        int nw = 0;
        if (down) {
            w[nw] = expert_slice(&L[LLM_T_FFN_DOWN_EXPS], e, E); x[nw] = s->gate + r0 * ff; y[nw++] = s->y + r0 * d;
        } else {
            w[nw] = expert_gate_up(L, 0, e, E); x[nw] = m->xn; y[nw++] = s->gate + r0 * ff;
            w[nw] = expert_gate_up(L, 1, e, E); x[nw] = m->xn; y[nw++] = s->up + r0 * ff;
        }
        for (int h = 0; h < nw; h++, nj++) {
            gv[nj] = expert_how(&w[h]);
            type[nj] = w[h].type; W[nj] = (gv[nj] & LLM_MV_X4) ? llm_x4_of(&w[h]) : w[h].data; rows[nj] = w[h].ne1;
            X[nj] = x[h]; Y[nj] = y[h];
        }
    }
    return llm_matvec_group(nj, type, W, rows, down ? ff : d, X, Y, gv);
}

/* the routed experts over the grouped rows: gate and up, SwiGLU, down */
static void run_experts(llm_model *m, const llm_tensor *L, int R) {
    const llm_config *c = &m->c;
    llm_moe_scratch *s = &m->moe;
    const int E = c->n_expert, d = c->n_embd, ff = c->n_ff_exp;
    /* a single token's routes need no gather: each expert reads its row of xn */
    const int one_token = R == c->n_expert_used;
    if (!one_token) {
        rows_ctx g = {m, 0};
        llm_for_rows(R, gather_one, &g);
    }
    /* one token: its experts' gate/up in one pool pass, then their downs in another */
    const int grouped = one_token && group_experts(m, L, R, 0) == 0;
    for (int e = 0; !grouped && e < E; e++) {
        const int r0 = s->start[e], cnt = s->start[e + 1] - r0;
        if (!cnt) continue;
        const llm_tensor G = expert_gate_up(L, 0, e, E), U = expert_gate_up(L, 1, e, E);
        const llm_tensor *w2[2] = {&G, &U};
        float *y2[2] = {s->gate + (size_t)r0 * ff, s->up + (size_t)r0 * ff};
        const float *xe = one_token ? m->xn : s->x + (size_t)r0 * d;
        if (gemv_order(&G) || gemv_order(&U)) {
            expert_mm(&G, xe, cnt, y2[0]);
            expert_mm(&U, xe, cnt, y2[1]);
        } else {
            llm_mm_multi(w2, 2, xe, cnt, y2);
        }
    }
    act_ctx a = {m, ff, L};
    llm_for_rows(R, swiglu_one, &a);
    const int grouped_down = one_token && group_experts(m, L, R, 1) == 0;
    for (int e = 0; !grouped_down && e < E; e++) {
        const int r0 = s->start[e], cnt = s->start[e + 1] - r0;
        if (!cnt) continue;
        const llm_tensor D = expert_slice(&L[LLM_T_FFN_DOWN_EXPS], e, E);
        expert_mm(&D, s->gate + (size_t)r0 * ff, cnt, s->y + (size_t)r0 * d);
    }
    if (L[LLM_T_FFN_DOWN_EXPS_B].data || L[LLM_T_FFN_DOWN_EXPS_S].data) llm_for_rows(R, down_bias_one, &a);
}

/* ---- qwen2moe's shared expert: a dense SwiGLU FFN gated per token by
 * silu(g)/g (llama.cpp's sigmoid), g = ffn_gate_inp_shexp x ---- */
static void shexp_swiglu_one(void *p, int t) {
    const rows_ctx *j = p;
    const size_t ff = (size_t)j->m->c.n_ff_shexp;
    llm_kernels()->swiglu(j->m->gate + t * ff, j->m->up + t * ff, (int)ff);
}

static void shexp_add_one(void *p, int t) {
    const rows_ctx *j = p;
    const llm_model *m = j->m;
    const int d = m->c.n_embd;
    const float g = m->moe.logits[t];
    /* qwen35moe's graph takes ggml_sigmoid; qwen2moe's ggml_silu on one value, then ggml_div:
     * the same function, not the same bits */
    const float gate = m->c.shexp_sigmoid ? 1.0f / (1.0f + expf(-g)) : (g / (1.0f + expf(-g))) / g;
    const float *y = m->moe.x + (size_t)t * d;
    float *o = m->tmp + (size_t)t * d;
    for (int i = 0; i < d; i++) o[i] = o[i] + y[i] * gate;
}

/* granitemoe's: the experts' sum plus the shared expert's output (ggml_add) */
static void shexp_add_ungated_one(void *p, int t) {
    const rows_ctx *j = p;
    const int d = j->m->c.n_embd;
    const float *y = j->m->moe.x + (size_t)t * d;
    float *o = j->m->tmp + (size_t)t * d;
    for (int i = 0; i < d; i++) o[i] = o[i] + y[i];
}

static void shared_expert(llm_model *m, const llm_tensor *L, int il, int n) {
    rows_ctx j = {m, n};
    const int gated = !m->c.shexp_ungated;
    if (gated)   /* the router's buffer is free now */
        gate_matmul(&L[LLM_T_FFN_GATE_INP_SHEXP], m->xn, n, m->moe.logits);
    const llm_tensor *w2[2] = {&L[LLM_T_FFN_GATE_SHEXP], &L[LLM_T_FFN_UP_SHEXP]};
    float *y2[2] = {m->gate, m->up};
    llm_mm_multi(w2, 2, m->xn, n, y2);
    llm_for_rows(n, shexp_swiglu_one, &j);
    llm_mm(&L[LLM_T_FFN_DOWN_SHEXP], m->gate, n, m->moe.x);          /* so are the gathered inputs */
    llm_trace("ffn_shexp", il, m->moe.x, (long long)n * m->c.n_embd);
    llm_for_rows(n, gated ? shexp_add_one : shexp_add_ungated_one, &j);
}

/* ---- gemma4's expert layers: a dense GEGLU FFN (forward.c's, over the ffn_norm'd
 * input, its output in m->tmp) beside the experts, each with its own norms:
 *   mlp     post_norm_1(dense)                                  (kept in m->att)
 *   router  ((rmsnorm(h) * 1/sqrt(n_embd)) * gate_inp_s) . ffn_gate_inp   (h: the
 *           residual stream after attention; each product rounded, as its graph)
 *   experts over pre_norm_2(h), GEGLU, each output times its expert's scale
 *   out     mlp + post_norm_2(the experts' weighted sum) ---- */
static void gemma4_inputs_one(void *p, int t) {
    const rows_ctx *j = p;
    llm_model *m = j->m;
    const llm_tensor *L = LT(m, j->n, 0);    /* n: the layer */
    const int d = m->c.n_embd;
    const float eps = m->c.rms_eps, inv = 1.0f / sqrtf((float)d);
    const float *h = m->x + (size_t)t * d, *sc = L[LLM_T_FFN_GATE_INP_S].data;
    float *mlp = m->att + (size_t)t * d, *r = m->moe.x + (size_t)t * d;
    llm_rmsnorm(mlp, m->tmp + (size_t)t * d, L[LLM_T_FFN_POST_NORM_1].data, d, eps);
    llm_rmsnorm(r, h, NULL, d, eps);
    for (int i = 0; i < d; i++) r[i] = (r[i] * inv) * sc[i];
    llm_rmsnorm(m->xn + (size_t)t * d, h, L[LLM_T_FFN_PRE_NORM_2].data, d, eps);
}

static void gemma4_out_one(void *p, int t) {
    const rows_ctx *j = p;
    llm_model *m = j->m;
    const int d = m->c.n_embd;
    float *o = m->tmp + (size_t)t * d;
    const float *mlp = m->att + (size_t)t * d;
    llm_rmsnorm(o, o, LT(m, j->n, LLM_T_FFN_POST_NORM_2)->data, d, m->c.rms_eps);
    for (int i = 0; i < d; i++) o[i] = mlp[i] + o[i];
}

void llm_moe_ffn(llm_model *m, int il, int n) {
    const llm_config *c = &m->c;
    const llm_tensor *L = LT(m, il, 0);
    llm_moe_scratch *s = &m->moe;
    const int R = n * c->n_expert_used;
    const int gemma4 = L[LLM_T_FFN_PRE_NORM_2].data != NULL;
    rows_ctx lj = {m, il};
    if (gemma4) llm_for_rows(n, gemma4_inputs_one, &lj);   /* the router's input in s->x: free until the gather */
    gate_matmul(&L[LLM_T_FFN_GATE_INP], gemma4 ? s->x : m->xn, n, s->logits);
    llm_trace("ffn_moe_logits", il, s->logits, (long long)n * c->n_expert);
    route_job rj = {m, L[LLM_T_FFN_GATE_INP_B].data};
    llm_for_rows(n, route_one, &rj);
    /* llama.cpp's names for the weights in the same [n_tokens][k] layout (its expert
     * matmuls' outputs are laid out by token, ours by expert: not traced) */
    llm_trace(c->expert_norm_w ? "ffn_moe_weights_norm" : "ffn_moe_weights", il, s->w, R);
    group_routes(s, c->n_expert, R);
    run_experts(m, L, R);
    rows_ctx j = {m, n};
    llm_for_rows(n, combine_one, &j);
    llm_trace("ffn_moe_out", il, m->tmp, (long long)n * c->n_embd);
    if (c->n_ff_shexp > 0) shared_expert(m, L, il, n);
    if (gemma4) llm_for_rows(n, gemma4_out_one, &lj);
}
