/* Model lifetime: config, weight slots, KV cache and batch scratch (allocated once). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "model.h"

/* Zeroed, 64-byte aligned buffers from fresh anonymous pages: they read as zero and
   cost nothing until first touched, so a 4096-token KV cache (~100 MB on SmolLM2)
   no longer costs ~60 ms of memset at load. A 64-byte header keeps the mapping size. */
static void *zalloc(size_t n) {
    size_t total = 64 + (n + 63) / 64 * 64;
    unsigned char *b = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) return NULL;
    *(size_t *)b = total;
    return b + 64;
}

static void zfree(void *p) {
    if (p) {
        unsigned char *b = (unsigned char *)p - 64;
        munmap(b, *(size_t *)b);
    }
}

void llm_model_free(llm_model *m) {
    if (!m) return;
    if (m->span_ops && m->span) m->span_ops->free(m->span);
    llm_model_repack_free(m);
    llm_dn_free(m);
    free(m->layers); free(m->kv_off); zfree(m->kcache); zfree(m->vcache); zfree(m->ple_in);
    zfree(m->x); zfree(m->xn); zfree(m->q); zfree(m->k); zfree(m->v); zfree(m->att);
    zfree(m->tmp); zfree(m->gate); zfree(m->up); zfree(m->scores); zfree(m->q16); zfree(m->acc16); zfree(m->acc32);
    llm_moe_scratch *e = &m->moe;
    zfree(e->logits); zfree(e->w); zfree(e->id); zfree(e->row); zfree(e->start); zfree(e->x); zfree(e->gate);
    zfree(e->up); zfree(e->y);
    free(m);
}

/* the batch scratch, in bytes, in the order of the fields: x, xn (n_embd per token),
 * q, k, v, att, tmp (the widest of a fused output), gate, up (the dense FFN's or the
 * shared expert's width, or gemma4's per-layer embedding width); the per-thread slots
 * scores, acc32 (F32), q16, acc16 (F16); then the expert FFN's (llm_moe_scratch, in its
 * order; 0 bytes for a dense model); then gemma4's per-layer inputs (ple_in) */
enum { SCRATCH_N = 23, MOE_FIRST = 13, MOE_N = 9, THREAD_SLOTS = 256 };
static int max_head_dim(const llm_config *c) { return c->head_dim_swa > c->head_dim ? c->head_dim_swa : c->head_dim; }
static int max_hkv(const llm_config *c) { return c->n_head_kv_swa > c->n_head_kv ? c->n_head_kv_swa : c->n_head_kv; }
static void scratch_sizes(const llm_config *c, int n_ctx, int n_batch, size_t sz[SCRATCH_N]) {
    const int hdm = max_head_dim(c);
    const size_t B = (size_t)n_batch, q_dim = (size_t)c->n_head * hdm, kv_dim = (size_t)max_hkv(c) * hdm;
    const size_t qkv = q_dim + 2 * kv_dim;
    size_t ff = (size_t)(c->n_ff_shexp > c->n_ff ? c->n_ff_shexp : c->n_ff);
    if ((size_t)c->n_embd_ple > ff) ff = (size_t)c->n_embd_ple;
    size_t wide = ff > q_dim ? ff : q_dim;
    if (qkv > wide) wide = qkv;
    if ((size_t)2 * c->n_ff > wide) wide = (size_t)2 * c->n_ff; /* fused gate+up (phi3) */
    if (c->attn_q_gate && 2 * q_dim > wide) wide = 2 * q_dim;   /* queries with their gates (qwen35) */
    if (c->arch == LLM_ARCH_LFM2 && 3 * (size_t)c->n_embd > wide) wide = 3 * (size_t)c->n_embd;   /* its in_proj's b|c|x */
    const int hkv_min = c->n_head_kv_swa > 0 && c->n_head_kv_swa < c->n_head_kv ? c->n_head_kv_swa : c->n_head_kv;
    const size_t group = (size_t)(c->n_head / hkv_min);   /* query heads per KV head (the most of any layer) */
    const size_t att = q_dim > (size_t)c->n_embd ? q_dim : (size_t)c->n_embd;   /* gemma4's experts keep n_embd there */
    const size_t f32[] = {B * c->n_embd, B * c->n_embd, B * q_dim, B * kv_dim, B * kv_dim, B * att, B * wide,
                          B * ff, B * ff, (size_t)THREAD_SLOTS * group * ((size_t)n_ctx + 16),
                          (size_t)THREAD_SLOTS * group * 16 * hdm};
    for (int i = 0; i < 11; i++) sz[i] = f32[i] * 4;
    sz[11] = sz[12] = (size_t)THREAD_SLOTS * q_dim * 2;
    const size_t E = c->n_expert > 0 ? (size_t)c->n_expert : 0, R = E ? B * c->n_expert_used : 0;
    /* logits, w, id, row, start, x, gate, up, y (ints and floats are both 4 bytes) */
    const size_t moe[] = {B * E, R, R, R, E ? E + 1 : 0, R * c->n_embd, R * c->n_ff_exp, R * c->n_ff_exp,
                          R * c->n_embd};
    for (int i = 0; i < MOE_N; i++) sz[MOE_FIRST + i] = moe[i] * 4;
    sz[MOE_FIRST + MOE_N] = B * c->n_layer * (size_t)c->n_embd_ple * 4;
}

long long llm_scratch_bytes(const llm_config *cfg, int n_ctx, int n_batch) {
    if (cfg->n_head_kv <= 0 || n_ctx <= 0 || n_batch <= 0) return -1;
    size_t sz[SCRATCH_N], total = 0;
    scratch_sizes(cfg, n_ctx, n_batch, sz);
    for (int i = 0; i < SCRATCH_N; i++) total += sz[i];
    return (long long)total;
}

/* a dense model has no experts; a mixture of experts picks 1..n_expert of them */
static int moe_shape_ok(const llm_config *c) {
    if (c->n_expert == 0) return c->n_expert_used == 0 && c->n_ff_shexp >= 0;
    return c->n_expert > 0 && c->n_expert_used > 0 && c->n_expert_used <= c->n_expert && c->n_expert <= LLM_MAX_EXPERTS &&
           c->n_ff_exp > 0 && c->n_ff_shexp >= 0;
}

/* gemma4's shapes: the sliding layers' head and rotary dims; the layers that read
 * another's K/V need the two layers they read (and every layer in one model: their
 * sources are not in a span's cache) */
static int gemma4_shape_ok(const llm_config *c, int l0, int l1) {
    if (c->n_head_kv_swa < 0 || (c->n_head_kv_swa > 0 && c->n_head % c->n_head_kv_swa) ||
        c->head_dim_swa < 0 || c->head_dim_swa > LLM_MAX_HEAD_DIM || c->n_rot_swa < 0 || c->n_rot_swa % 2 ||
        c->n_rot_swa > (c->head_dim_swa ? c->head_dim_swa : c->head_dim) || c->n_embd_ple < 0 || c->n_embd_ple > LLM_PLE_MAX || c->n_layer_kv < 0)
        return 0;
    if (c->n_layer_kv > 0 && c->n_layer_kv < c->n_layer && (c->n_layer_kv < 2 || l0 != 0 || l1 != c->n_layer)) return 0;
    return c->n_embd_ple == 0 || (l0 == 0 && l1 == c->n_layer);
}

/* where each layer's K/V cache starts: the layers l0..l1-1 with their own one after
 * another, each [its KV heads][n_ctx][its head size]; a layer reading another's (gemma4)
 * the last sliding (or full) layer's before n_layer_kv, as llama.cpp's reuse maps it.
 * Returns the elements of all. */
static size_t kv_layout(llm_model *m) {
    const llm_config *c = &m->c;
    size_t total = 0;
    for (int il = m->l0; il < m->l1; il++) {
        if (!llm_layer_own_kv(m, il)) continue;
        m->kv_off[il] = total;
        total += (size_t)llm_layer_hkv(m, il) * m->n_ctx * llm_layer_hd(m, il);
    }
    for (int il = m->l0; il < m->l1; il++)
        if (!llm_layer_own_kv(m, il)) m->kv_off[il] = m->kv_off[c->n_layer_kv - (llm_layer_swa(m, il) ? 2 : 1)];
    return total;
}

llm_model *llm_model_new(const llm_config *cfg, int n_ctx, int n_batch) {
    return llm_model_new_span(cfg, n_ctx, n_batch, 0, cfg->n_layer, 1);
}

llm_model *llm_model_new_span(const llm_config *cfg, int n_ctx, int n_batch, int l0, int l1, int head) {
    const llm_config *c = cfg;
    if (l0 < 0 || l1 < l0 || l1 > c->n_layer || c->n_layer <= 0 || c->n_embd <= 0 || c->n_head <= 0 || c->n_head_kv <= 0 || c->head_dim <= 0 ||
        c->n_ff <= 0 || c->n_vocab <= 0 || c->n_head % c->n_head_kv || n_ctx <= 0 || n_batch <= 0 ||
        c->n_rot > c->head_dim || c->n_rot % 2 ||
        c->head_dim > LLM_MAX_HEAD_DIM || !moe_shape_ok(c) || !gemma4_shape_ok(c, l0, l1) ||
        c->n_layer > LLM_MAX_LAYERS || (c->attn_temp_scale != 0.0f && c->attn_temp_floor <= 0))
        return NULL;
    llm_ops_init();
    llm_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->c = *cfg;
    if (m->c.swa_pattern <= 0) m->c.swa_pattern = 1;
    m->n_ctx = n_ctx;
    m->n_batch = n_batch;
    m->l0 = l0;
    m->l1 = l1;
    m->head = head != 0;
    m->q_dim = c->n_head * max_head_dim(c);
    m->kv_dim = max_hkv(c) * max_head_dim(c);
    size_t sz[SCRATCH_N];
    scratch_sizes(c, n_ctx, n_batch, sz);
    m->n_threads_alloc = THREAD_SLOTS;
    m->layers = calloc((size_t)c->n_layer * LLM_T_LAYER_COUNT, sizeof(llm_tensor));
    m->kv_off = calloc((size_t)c->n_layer, sizeof(size_t));
    size_t kvn = m->kv_off ? kv_layout(m) : 0;
    m->kv_elems = (long long)kvn;
    if (!kvn) kvn = (size_t)n_ctx * c->n_head_kv * c->head_dim;   /* no layers: one layer's, as before */
    m->kcache = zalloc(kvn * sizeof(f16_t));
    m->vcache = zalloc(kvn * sizeof(f16_t));
    float **f32[] = {&m->x, &m->xn, &m->q, &m->k, &m->v, &m->att, &m->tmp, &m->gate, &m->up, &m->scores, &m->acc32};
    for (int i = 0; i < 11; i++) *f32[i] = zalloc(sz[i]);
    m->q16 = zalloc(sz[11]);
    m->acc16 = zalloc(sz[12]);
    int moe_ok = 1;
    if (c->n_expert > 0) {
        llm_moe_scratch *e = &m->moe;
        void **moe[] = {(void **)&e->logits, (void **)&e->w, (void **)&e->id, (void **)&e->row, (void **)&e->start,
                        (void **)&e->x, (void **)&e->gate, (void **)&e->up, (void **)&e->y};
        for (int i = 0; i < MOE_N; i++) moe_ok &= (*moe[i] = zalloc(sz[MOE_FIRST + i])) != NULL;
    }
    if (c->n_embd_ple > 0) moe_ok &= (m->ple_in = zalloc(sz[MOE_FIRST + MOE_N])) != NULL;
    if (!m->layers || !m->kv_off || !m->kcache || !m->vcache || !m->x || !m->xn || !m->q || !m->k || !m->v ||
        !m->att || !m->tmp || !m->gate || !m->up || !m->scores || !m->q16 || !m->acc16 || !m->acc32 || !moe_ok ||
        llm_dn_alloc(m)) {
        llm_model_free(m);
        return NULL;
    }
    return m;
}

long long llm_model_kv_bytes(const llm_model *m) {
    return 2LL * m->kv_elems * (long long)sizeof(f16_t);
}

int llm_model_set_tensor(llm_model *m, int layer, int slot, int type, const void *data,
                         long long ne0, long long ne1) {
    if (!data || ne0 <= 0 || ne1 <= 0 || llm_row_bytes(type, ne0) < 0 || !llm_type_supported(type)) return -1;
    if (m->huge) return -1;   /* huge_pages.c is repointing the copies */
    llm_tensor t = {type, data, ne0, ne1, NULL}, *at;
    if (layer < 0) {
        if (slot < 0 || slot >= LLM_G_COUNT) return -1;
        at = &m->g[slot];
    } else {
        if (layer >= m->c.n_layer || slot < 0 || slot >= LLM_T_LAYER_COUNT) return -1;
        at = &m->layers[(long long)layer * LLM_T_LAYER_COUNT + slot];
    }
    *at = t;   /* the copy of the weight it replaces, if any, stays in the arena (repack.c) */
    return 0;
}

static int need(const llm_tensor *t, long long ne0, long long ne1, int f32, const char *name, int il,
                char *err, int errlen) {
    char full[96];  /* the GGUF name: blk.N.attn_q, or output_norm for a global tensor */
    if (il >= 0) snprintf(full, sizeof full, "blk.%d.%s", il, name);
    else snprintf(full, sizeof full, "%s", name);
    if (!t->data) { snprintf(err, errlen, "missing tensor %s", full); return -1; }
    if (t->ne0 != ne0 || t->ne1 != ne1) {
        snprintf(err, errlen, "tensor %s has shape [%lld, %lld], expected [%lld, %lld]",
                 full, t->ne0, t->ne1, ne0, ne1);
        return -1;
    }
    if (f32 && t->type != T_F32) { snprintf(err, errlen, "tensor %s must be F32", full); return -1; }
    return 0;
}

/* a mixture-of-experts layer's tensors: the router, the experts (n_expert matrices
 * each, as one tensor of n_expert times their rows) and the shared expert if any */
static int moe_check(const llm_model *m, const llm_tensor *L, int il, char *err, int errlen) {
    const llm_config *c = &m->c;
    const long long d = c->n_embd, E = c->n_expert, ff = c->n_ff_exp, sh = c->n_ff_shexp;
    if (need(&L[LLM_T_FFN_GATE_INP], d, E, 0, "ffn_gate_inp", il, err, errlen)) return -1;
    if (L[LLM_T_FFN_GATE_UP_EXPS].data) {   /* gemma4's fused gate and up */
        if (need(&L[LLM_T_FFN_GATE_UP_EXPS], d, 2 * ff * E, 0, "ffn_gate_up_exps", il, err, errlen)) return -1;
    } else {
        if (need(&L[LLM_T_FFN_GATE_EXPS], d, ff * E, 0, "ffn_gate_exps", il, err, errlen)) return -1;
        if (need(&L[LLM_T_FFN_UP_EXPS], d, ff * E, 0, "ffn_up_exps", il, err, errlen)) return -1;
    }
    if (need(&L[LLM_T_FFN_DOWN_EXPS], ff, d * E, 0, "ffn_down_exps", il, err, errlen)) return -1;
    /* gpt-oss's biases, each optional */
    if (L[LLM_T_FFN_GATE_INP_B].data && need(&L[LLM_T_FFN_GATE_INP_B], E, 1, 1, "ffn_gate_inp.bias", il, err, errlen)) return -1;
    if (L[LLM_T_FFN_GATE_EXPS_B].data && need(&L[LLM_T_FFN_GATE_EXPS_B], ff, E, 1, "ffn_gate_exps.bias", il, err, errlen)) return -1;
    if (L[LLM_T_FFN_UP_EXPS_B].data && need(&L[LLM_T_FFN_UP_EXPS_B], ff, E, 1, "ffn_up_exps.bias", il, err, errlen)) return -1;
    if (L[LLM_T_FFN_DOWN_EXPS_B].data && need(&L[LLM_T_FFN_DOWN_EXPS_B], d, E, 1, "ffn_down_exps.bias", il, err, errlen)) return -1;
    if (L[LLM_T_FFN_DOWN_EXPS_S].data && need(&L[LLM_T_FFN_DOWN_EXPS_S], E, 1, 1, "ffn_down_exps.scale", il, err, errlen)) return -1;
    if (L[LLM_T_FFN_PRE_NORM_2].data) {   /* gemma4: the router's input scale and the norms around the experts */
        if (need(&L[LLM_T_FFN_GATE_INP_S], d, 1, 1, "ffn_gate_inp.scale", il, err, errlen)) return -1;
        if (need(&L[LLM_T_FFN_POST_NORM_1], d, 1, 1, "post_ffw_norm_1", il, err, errlen)) return -1;
        if (need(&L[LLM_T_FFN_POST_NORM_2], d, 1, 1, "post_ffw_norm_2", il, err, errlen)) return -1;
    }
    if (!sh) return 0;
    if (!c->shexp_ungated && need(&L[LLM_T_FFN_GATE_INP_SHEXP], d, 1, 0, "ffn_gate_inp_shexp", il, err, errlen))
        return -1;
    if (need(&L[LLM_T_FFN_GATE_SHEXP], d, sh, 0, "ffn_gate_shexp", il, err, errlen)) return -1;
    if (need(&L[LLM_T_FFN_UP_SHEXP], d, sh, 0, "ffn_up_shexp", il, err, errlen)) return -1;
    return need(&L[LLM_T_FFN_DOWN_SHEXP], sh, d, 0, "ffn_down_shexp", il, err, errlen);
}

/* gemma4's per-layer embeddings: the table, its projection and norm, and each layer's
 * gate, projection back and norm */
static int ple_check(const llm_model *m, char *err, int errlen) {
    const llm_config *c = &m->c;
    const long long d = c->n_embd, p = c->n_embd_ple, all = p * c->n_layer;
    if (need(&m->g[LLM_G_PLE_TOKEN_EMBD], all, c->n_vocab, 0, "per_layer_token_embd", -1, err, errlen)) return -1;
    if (llm_row_bytes(m->g[LLM_G_PLE_TOKEN_EMBD].type, p) < 0) {   /* ple.c reads a layer's slice alone */
        snprintf(err, errlen, "tensor per_layer_token_embd: a layer's %lld values are not whole blocks of its type", p);
        return -1;
    }
    if (need(&m->g[LLM_G_PLE_MODEL_PROJ], d, all, 0, "per_layer_model_proj", -1, err, errlen)) return -1;
    if (need(&m->g[LLM_G_PLE_PROJ_NORM], p, 1, 1, "per_layer_proj_norm", -1, err, errlen)) return -1;
    for (int il = 0; il < c->n_layer; il++) {
        const llm_tensor *L = LT(m, il, 0);
        if (need(&L[LLM_T_PLE_INP_GATE], d, p, 0, "inp_gate", il, err, errlen)) return -1;
        if (need(&L[LLM_T_PLE_PROJ], p, d, 0, "proj", il, err, errlen)) return -1;
        if (need(&L[LLM_T_PLE_POST_NORM], d, 1, 1, "post_norm", il, err, errlen)) return -1;
    }
    return 0;
}

/* an attention layer's tensors (qwen35's Q with its gates: twice the rows) */
static int attn_check(const llm_model *m, const llm_tensor *L, int il, char *err, int errlen) {
    const llm_config *c = &m->c;
    const long long d = c->n_embd, hd = llm_layer_hd(m, il), q_dim = c->n_head * hd, kv_dim = llm_layer_hkv(m, il) * hd;
    if (!llm_layer_own_kv(m, il)) {   /* gemma4: Q only, K/V from another layer's cache */
        if (need(&L[LLM_T_ATTN_Q], d, q_dim, 0, "attn_q", il, err, errlen)) return -1;
    } else if (L[LLM_T_ATTN_QKV].data) {
        if (need(&L[LLM_T_ATTN_QKV], d, q_dim + 2 * kv_dim, 0, "attn_qkv", il, err, errlen)) return -1;
    } else {
        if (need(&L[LLM_T_ATTN_Q], d, (c->attn_q_gate ? 2 : 1) * q_dim, 0, "attn_q", il, err, errlen)) return -1;
        if (need(&L[LLM_T_ATTN_K], d, kv_dim, 0, "attn_k", il, err, errlen)) return -1;
        /* gemma4's layers may take K for V (v_norm: its family; V is K before K's norm) */
        if ((L[LLM_T_ATTN_V].data || !c->v_norm) && need(&L[LLM_T_ATTN_V], d, kv_dim, 0, "attn_v", il, err, errlen))
            return -1;
    }
    if (need(&L[LLM_T_ATTN_OUT], q_dim, d, 0, "attn_output", il, err, errlen)) return -1;
    if (L[LLM_T_ATTN_Q_B].data && need(&L[LLM_T_ATTN_Q_B], q_dim, 1, 1, "attn_q.bias", il, err, errlen)) return -1;
    if (L[LLM_T_ATTN_K_B].data && need(&L[LLM_T_ATTN_K_B], kv_dim, 1, 1, "attn_k.bias", il, err, errlen)) return -1;
    if (L[LLM_T_ATTN_V_B].data && need(&L[LLM_T_ATTN_V_B], kv_dim, 1, 1, "attn_v.bias", il, err, errlen)) return -1;
    if (L[LLM_T_ATTN_OUT_B].data && need(&L[LLM_T_ATTN_OUT_B], d, 1, 1, "attn_output.bias", il, err, errlen)) return -1;
    if (L[LLM_T_ATTN_SINKS].data && need(&L[LLM_T_ATTN_SINKS], c->n_head, 1, 1, "attn_sinks", il, err, errlen)) return -1;
    if (L[LLM_T_ATTN_Q_NORM].data && need(&L[LLM_T_ATTN_Q_NORM], hd, 1, 1, "attn_q_norm", il, err, errlen)) return -1;
    if (L[LLM_T_ATTN_K_NORM].data && need(&L[LLM_T_ATTN_K_NORM], hd, 1, 1, "attn_k_norm", il, err, errlen)) return -1;
    return 0;
}

/* a gated delta-net layer's tensors (delta_net.c) */
static int dn_check(const llm_model *m, const llm_tensor *L, int il, char *err, int errlen) {
    const llm_config *c = &m->c;
    const long long d = c->n_embd, ds = c->ssm_d_state, nv = c->ssm_n_v_head, vd = ds * nv;
    const long long cd = 2 * ds * c->ssm_n_group + vd;
    if (!m->dn) { snprintf(err, errlen, "blk.%d.ssm_out: a linear-attention layer in a model without ssm sizes", il); return -1; }
    if (need(&L[LLM_T_ATTN_QKV], d, cd, 0, "attn_qkv", il, err, errlen)) return -1;
    if (need(&L[LLM_T_ATTN_GATE], d, vd, 0, "attn_gate", il, err, errlen)) return -1;
    if (need(&L[LLM_T_SSM_CONV1D], c->ssm_d_conv, cd, 1, "ssm_conv1d", il, err, errlen)) return -1;
    if (need(&L[LLM_T_SSM_DT_B], nv, 1, 1, "ssm_dt.bias", il, err, errlen)) return -1;
    if (need(&L[LLM_T_SSM_A], nv, 1, 1, "ssm_a", il, err, errlen)) return -1;
    if (need(&L[LLM_T_SSM_BETA], d, nv, 0, "ssm_beta", il, err, errlen)) return -1;
    if (need(&L[LLM_T_SSM_ALPHA], d, nv, 0, "ssm_alpha", il, err, errlen)) return -1;
    if (need(&L[LLM_T_SSM_NORM], ds, 1, 1, "ssm_norm", il, err, errlen)) return -1;
    return need(&L[LLM_T_SSM_OUT], vd, d, 0, "ssm_out", il, err, errlen);
}

/* a short-convolution layer's tensors (shortconv.c) */
static int shortconv_check(const llm_model *m, const llm_tensor *L, int il, char *err, int errlen) {
    const long long d = m->c.n_embd;
    if (!m->dn) { snprintf(err, errlen, "blk.%d.shortconv: a short-convolution layer in a model without l_cache", il); return -1; }
    if (need(&L[LLM_T_SHORTCONV_IN], d, 3 * d, 0, "shortconv.in_proj", il, err, errlen)) return -1;
    if (need(&L[LLM_T_SSM_CONV1D], m->c.ssm_d_conv, d, 1, "shortconv.conv", il, err, errlen)) return -1;
    return need(&L[LLM_T_SHORTCONV_OUT], d, d, 0, "shortconv.out_proj", il, err, errlen);
}

int llm_model_check(llm_model *m, char *err, int errlen) {
    const llm_config *c = &m->c;
    const long long d = c->n_embd;
    if (need(&m->g[LLM_G_TOKEN_EMBD], d, c->n_vocab, 0, "token_embd", -1, err, errlen)) return -1;
    if (need(&m->g[LLM_G_OUTPUT_NORM], d, 1, 1, "output_norm", -1, err, errlen)) return -1;
    if (m->g[LLM_G_OUTPUT].data && need(&m->g[LLM_G_OUTPUT], d, c->n_vocab, 0, "output", -1, err, errlen)) return -1;
    if (m->g[LLM_G_ROPE_FREQS].data && need(&m->g[LLM_G_ROPE_FREQS], c->n_rot / 2, 1, 1, "rope_freqs", -1, err, errlen)) return -1;
    if (c->n_embd_ple > 0 && ple_check(m, err, errlen)) return -1;
    for (int il = 0; il < c->n_layer; il++) {
        const llm_tensor *L = LT(m, il, 0);
        if (need(&L[LLM_T_ATTN_NORM], d, 1, 1, "attn_norm", il, err, errlen)) return -1;
        if (L[LLM_T_SSM_OUT].data ? dn_check(m, L, il, err, errlen)
            : L[LLM_T_SHORTCONV_OUT].data ? shortconv_check(m, L, il, err, errlen) : attn_check(m, L, il, err, errlen))
            return -1;
        if (L[LLM_T_POST_ATTN_NORM].data && need(&L[LLM_T_POST_ATTN_NORM], d, 1, 1, "post_attention_norm", il, err, errlen)) return -1;
        if (L[LLM_T_POST_FFW_NORM].data && need(&L[LLM_T_POST_FFW_NORM], d, 1, 1, "post_ffw_norm", il, err, errlen)) return -1;
        if (need(&L[LLM_T_FFN_NORM], d, 1, 1, "ffn_norm", il, err, errlen)) return -1;
        if (L[LLM_T_LAYER_OUT_SCALE].data && need(&L[LLM_T_LAYER_OUT_SCALE], 1, 1, 1, "layer_output_scale", il, err, errlen))
            return -1;
        if (c->n_expert > 0) {
            if (moe_check(m, L, il, err, errlen)) return -1;
            if (!L[LLM_T_FFN_PRE_NORM_2].data) continue;   /* gemma4's have a dense FFN too */
        }
        /* the layer's FFN width: its gate's rows, up to n_ff (the widest; gemma4's
         * layers that read another's K/V have twice the others') */
        const long long ff = L[LLM_T_FFN_GATE].data && L[LLM_T_FFN_GATE].ne1 <= c->n_ff ? L[LLM_T_FFN_GATE].ne1 : c->n_ff;
        if (L[LLM_T_FFN_GATE].data) {
            if (need(&L[LLM_T_FFN_GATE], d, ff, 0, "ffn_gate", il, err, errlen)) return -1;
            if (need(&L[LLM_T_FFN_UP], d, ff, 0, "ffn_up", il, err, errlen)) return -1;
        } else if (need(&L[LLM_T_FFN_UP], d, 2LL * c->n_ff, 0, "ffn_up (fused gate+up)", il, err, errlen)) return -1;
        if (need(&L[LLM_T_FFN_DOWN], ff, d, 0, "ffn_down", il, err, errlen)) return -1;
    }
    return 0;
}
