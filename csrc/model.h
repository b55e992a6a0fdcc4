/* The in-memory model: config, weight views (GGUF memory, never copied),
 * KV cache and the scratch buffers of one batch. Internal to the C side. */
#ifndef LLM_MODEL_H
#define LLM_MODEL_H
#include "internal.h"
#include "span.h"

typedef struct { int type; const void *data; long long ne0, ne1; } llm_tensor;

struct llm_model {
    llm_config c;
    llm_tensor g[LLM_G_COUNT];
    llm_tensor *layers;          /* n_layer * LLM_T_LAYER_COUNT */
    int n_ctx, n_batch;
    int l0, l1;                  /* the layers this model runs (its KV cache holds only these) */
    int head;                    /* 1: it applies the output norm and head after layer l1-1 */
    const llm_span_ops *span_ops;/* the span of layers after l1 (another backend), or NULL */
    void *span;
    int q_dim, kv_dim;           /* n_head*head_dim, n_head_kv*head_dim */
    f16_t *kcache, *vcache;      /* [l1 - l0][n_head_kv][n_ctx][head_dim] */
    /* batch scratch, n_batch rows each */
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up;
    float *scores;               /* per thread: (n_head / n_head_kv) x (n_ctx + 16) floats */
    float *acc32;                /* per thread: (n_head / n_head_kv) x 16 x head_dim floats (attention's lanes) */
    f16_t *q16;                  /* per thread: q_dim (flash attention: the query heads of one KV head) */
    f16_t *acc16;                /* per thread: q_dim (flash attention's F16 accumulators) */
    int n_threads_alloc;
};

static inline const llm_tensor *LT(const llm_model *m, int il, int slot) {
    return &m->layers[(long long)il * LLM_T_LAYER_COUNT + slot];
}

/* forward.c: layers l0..l1-1 over the hidden state in m->x (n rows at positions
 * pos..), then the attached span, or the head when this model holds it */
int llm_forward_from_x(llm_model *m, int n, int pos, float *logits, int first_out, int n_out);

#endif
