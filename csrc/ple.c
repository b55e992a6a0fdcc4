/* Gemma 4's per-layer token embeddings (E2B/E4B): each token gets, for every layer, a
 * small vector (n_embd_ple) from a second embedding table plus a projection of its
 * ordinary embedding; each layer gates its output by that vector and adds the result
 * back. Float order as llama.cpp's graph (gemma4.cpp): every step its own rounding,
 * products by precomputed float reciprocals where it scales. Per token and per layer,
 * so a token's bits never depend on the batch. */
#include <math.h>
#include "model.h"

typedef struct {
    llm_model *m;
    const int *tokens;
    int il;
} ple_job;

/* token t's per-layer inputs, in place over the projection of its embedding in
 * m->ple_in: (rmsnorm(proj / sqrt(n_embd)) * norm + table row * sqrt(n_embd_ple)) / sqrt(2) */
static void inputs_row(void *ctx, int t) {
    const ple_job *j = ctx;
    llm_model *m = j->m;
    const llm_config *c = &m->c;
    const int p = c->n_embd_ple, all = p * c->n_layer;
    const float proj_scale = 1.0f / sqrtf((float)c->n_embd), tok_scale = sqrtf((float)p);
    const float mix_scale = 1.0f / sqrtf(2.0f);
    const llm_tensor *E = &m->g[LLM_G_PLE_TOKEN_EMBD];
    const float *norm = m->g[LLM_G_PLE_PROJ_NORM].data;
    float *row = m->ple_in + (size_t)t * all;
    float emb[LLM_PLE_MAX];
    const char *erow = (const char *)E->data + (size_t)j->tokens[t] * llm_row_bytes(E->type, all);
    const long long slice = llm_row_bytes(E->type, p);   /* a layer's slice: whole blocks (model check) */
    for (int i = 0; i < all; i++) row[i] *= proj_scale;
    for (int il = 0; il < c->n_layer; il++) {
        float *r = row + il * p;
        llm_rmsnorm(r, r, norm, p, c->rms_eps);
        llm_dequantize(E->type, erow + il * slice, emb, p);
        for (int i = 0; i < p; i++) {
            const float e = emb[i] * tok_scale;   /* each product and sum rounded, as the graph's ops */
            r[i] = (r[i] + e) * mix_scale;
        }
    }
}

void llm_ple_inputs(llm_model *m, const int *tokens, int n) {
    const llm_config *c = &m->c;
    llm_mm(&m->g[LLM_G_PLE_MODEL_PROJ], m->x, n, m->ple_in);
    ple_job j = {m, tokens, -1};
    llm_for_rows(n, inputs_row, &j);
    llm_trace("inp_per_layer", -1, m->ple_in, (long long)n * c->n_layer * c->n_embd_ple);
}

/* token t's gate through GELU times its input for layer il (m->gate, in place) */
static void gate_row(void *ctx, int t) {
    const ple_job *j = ctx;
    const llm_config *c = &j->m->c;
    const int p = c->n_embd_ple;
    llm_geglu(j->m->gate + (size_t)t * p, j->m->ple_in + ((size_t)t * c->n_layer + j->il) * p, p);
}

/* token t's projection (m->tmp) normed and added into its hidden state */
static void add_row(void *ctx, int t) {
    const ple_job *j = ctx;
    llm_model *m = j->m;
    const int d = m->c.n_embd;
    float *o = m->tmp + (size_t)t * d, *x = m->x + (size_t)t * d;
    llm_rmsnorm(o, o, LT(m, j->il, LLM_T_PLE_POST_NORM)->data, d, m->c.rms_eps);
    for (int i = 0; i < d; i++) x[i] += o[i];
}

void llm_ple_layer(llm_model *m, int il, int n) {
    ple_job j = {m, NULL, il};
    llm_mm(LT(m, il, LLM_T_PLE_INP_GATE), m->x, n, m->gate);
    llm_for_rows(n, gate_row, &j);
    llm_mm(LT(m, il, LLM_T_PLE_PROJ), m->gate, n, m->tmp);
    llm_for_rows(n, add_row, &j);
    llm_trace("per_layer_embd_out", il, m->tmp, (long long)n * m->c.n_embd);
}
