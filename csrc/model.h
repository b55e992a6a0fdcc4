/* The in-memory model: config, weight views (GGUF memory, never copied),
 * KV cache and the scratch buffers of one batch. Internal to the C side. */
#ifndef LLM_MODEL_H
#define LLM_MODEL_H
#include "internal.h"
#include "span.h"

/* x4: the weight's interleaved copy (repack.c), or NULL */
typedef struct {
    int type;
    const void *data;
    long long ne0, ne1;
    const void *x4;
} llm_tensor;

#define LLM_MAX_EXPERTS 512      /* llama.cpp's LLAMA_MAX_EXPERTS */
#define LLM_MAX_LAYERS 512       /* llama.cpp's LLAMA_MAX_LAYERS (llm_config's rope_skip) */
#define LLM_PLE_MAX 4096         /* gemma4's per-layer embedding width at most (ple.c's stack row; E2B's 256) */

/* moe.c's buffers for a batch of B tokens routed to k experts each (B*k "routes"),
 * sized once at load by n_batch */
typedef struct {
    float *logits;               /* B x n_expert: the router's output, then its softmax */
    float *w;                    /* B x k: each route's weight */
    int *id;                     /* B x k: each route's expert, most probable first */
    int *row;                    /* B x k: each route's row in the expert-grouped buffers */
    int *start;                  /* n_expert + 1: expert e's routes are rows start[e]..start[e+1]-1 */
    float *x;                    /* B*k x n_embd: the routes' inputs, grouped by expert */
    float *gate, *up;            /* B*k x n_ff_exp */
    float *y;                    /* B*k x n_embd: the experts' outputs */
} llm_moe_scratch;

struct llm_model {
    llm_config c;
    llm_tensor g[LLM_G_COUNT];
    llm_tensor *layers;          /* n_layer * LLM_T_LAYER_COUNT */
    int n_ctx, n_batch;
    int l0, l1;                  /* the layers this model runs (its KV cache holds only these) */
    int head;                    /* 1: it applies the output norm and head after layer l1-1 */
    const llm_span_ops *span_ops;/* the span of layers after l1 (another backend), or NULL */
    void *span;
    int q_dim, kv_dim;           /* n_head*head_dim, n_head_kv*head_dim (the widest layer's) */
    f16_t *kcache, *vcache;      /* per layer with a cache of its own: [n_head_kv][n_ctx][its head_dim] */
    size_t *kv_off;              /* per layer: where the cache it reads starts (elements) */
    long long kv_elems;          /* the caches' elements (each of K and V) */
    float *ple_in;               /* gemma4: n_batch x n_layer x n_embd_ple per-layer inputs (ple.c) */
    /* batch scratch, n_batch rows each */
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up;
    float *scores;               /* per thread: (n_head / n_head_kv) x (n_ctx + 16) floats */
    float *acc32;                /* per thread: (n_head / n_head_kv) x 16 x head_dim floats (attention's lanes) */
    f16_t *q16;                  /* per thread: q_dim (flash attention: the query heads of one KV head) */
    f16_t *acc16;                /* per thread: q_dim (flash attention's F16 accumulators) */
    llm_moe_scratch moe;         /* the expert FFN's buffers (all NULL for a dense model) */
    struct llm_dn *dn;           /* delta_net.c's recurrent state and buffers (NULL: no such layers) */
    int n_threads_alloc;
    char *x4_arena;              /* the decode copies (repack.c), from a 2 MiB boundary */
    size_t x4_arena_bytes;
    struct llm_huge *huge;       /* huge_pages.c's thread, or NULL */
    unsigned long fwd_in, fwd_out; /* llm_forward_from_x's entries and exits (__atomic; huge_pages.c waits on them) */
};

/* a weight's copy, read once per matmul (huge_pages.c may repoint it between passes) */
static inline const void *llm_x4_of(const llm_tensor *t) { return __atomic_load_n(&t->x4, __ATOMIC_ACQUIRE); }

static inline const llm_tensor *LT(const llm_model *m, int il, int slot) {
    return &m->layers[(long long)il * LLM_T_LAYER_COUNT + slot];
}

/* forward.c: layers l0..l1-1 over the hidden state in m->x (n rows at positions
 * pos..), then the attached span, or the head when this model holds it */
int llm_forward_from_x(llm_model *m, int n, int pos, float *logits, int first_out, int n_out);

/* forward.c's steps that moe.c shares: y = W x over n columns; several weights over
 * the same x (one quantization); fn(ctx, t) for every row t < n over the thread pool */
void llm_mm(const llm_tensor *w, const float *x, int n, float *y);
void llm_mm_multi(const llm_tensor *const *w, int nw, const float *x, int n, float *const *y);
void llm_for_rows(int n, void (*fn)(void *ctx, int t), void *ctx);
/* the trace hook (llm_set_trace), NULL when off */
void llm_trace(const char *name, int il, const float *data, long long n);

/* a layer's head size and KV heads (gemma4's sliding layers have their own) */
static inline int llm_layer_swa(const llm_model *m, int il) {
    const int p = m->c.swa_pattern;
    return m->c.sliding_window > 0 && p > 1 && (il % p) < p - 1;
}
static inline int llm_layer_hd(const llm_model *m, int il) {
    return llm_layer_swa(m, il) && m->c.head_dim_swa > 0 ? m->c.head_dim_swa : m->c.head_dim;
}
static inline int llm_layer_hkv(const llm_model *m, int il) {
    return llm_layer_swa(m, il) && m->c.n_head_kv_swa > 0 ? m->c.n_head_kv_swa : m->c.n_head_kv;
}
/* 1 where layer il writes a K/V cache of its own (gemma4's last layers read another's) */
static inline int llm_layer_own_kv(const llm_model *m, int il) {
    return m->c.n_layer_kv <= 0 || il < m->c.n_layer_kv;
}

/* ple.c (gemma4): the per-layer inputs of the n tokens from their scaled embeddings in
 * m->x; layer il's per-layer embedding term added into m->x */
void llm_ple_inputs(llm_model *m, const int *tokens, int n);
void llm_ple_layer(llm_model *m, int il, int n);

/* moe.c: layer il's expert FFN over the n rows of m->xn (the FFN-normed input), its
 * output (the routed experts' weighted sum, plus the shared expert where there is
 * one) into m->tmp */
void llm_moe_ffn(llm_model *m, int il, int n);

/* delta_net.c: the gated delta-net layers (qwen35). alloc: the state and buffers, once
 * at load (0, or -1 out of memory / bad sizes); begin: before a batch at pos of n
 * tokens, the state zeroed at pos 0, -1 unless it holds pos (no rewind); the layer
 * over the n rows of m->xn, its output into m->tmp */
int llm_dn_alloc(llm_model *m);
void llm_dn_free(llm_model *m);
void llm_dn_reset(llm_model *m);
int llm_dn_begin(llm_model *m, int pos, int n);
void llm_delta_net(llm_model *m, int il, int n);
/* the causal convolution both families run (ggml_ssm_conv): layer il's kernel
 * (LLM_T_SSM_CONV1D) over the n rows of llm_dn_conv_rows, in place, with its state */
float *llm_dn_conv_rows(llm_model *m);
void llm_dn_conv(llm_model *m, int il, int n);

/* shortconv.c (lfm2): a short-convolution layer over the n rows of m->xn, its output
 * into m->tmp */
void llm_shortconv(llm_model *m, int il, int n);
/* 1 where layer il keeps a recurrent state (qwen35's delta-net, lfm2's short conv) */
static inline int llm_layer_recurrent(const llm_model *m, int il) {
    return LT(m, il, LLM_T_SSM_OUT)->data || LT(m, il, LLM_T_SHORTCONV_OUT)->data;
}

/* repack.c: the copies' memory, freed with the model; 1 where w has a copy that this
 * table's kernels read (gemv: in llama.cpp's repacked-gemv order) */
void llm_model_repack_free(llm_model *m);
#define LLM_HUGE_PAGE (2u << 20)
typedef struct llm_huge llm_huge;
/* huge_pages.c: its thread stopped and joined; returns the arena of 2 MiB pages it
 * made (x4_arena_bytes, some copies may point into it), or NULL without one */
char *llm_huge_stop(llm_model *m);
/* repack.c: the i-th weight that may have a copy (NULL past the last); a copy's bytes */
const llm_tensor *llm_x4_tensor(llm_model *m, int i);
size_t llm_x4_size(const llm_tensor *t);
int llm_x4_ok(const llm_tensor *w, int gemv);

#endif
