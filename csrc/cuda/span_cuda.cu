/* The CUDA backend of the span seam (csrc/span.h): layers [l0, l1) of a model, and
 * optionally its output norm and head, with weights, KV cache and scratch in device
 * memory. Built as its own library by `make cuda` (nvcc's flags: the Makefile), loaded
 * at run time by csrc/cuda_loader.c.
 *
 * `nm -D --defined-only` lists llmcuda_span_ops and llmcuda_device_info only (the
 * static cudart keeps its symbols hidden; --exclude-libs,ALL makes sure of it).
 *
 * Device memory of a span, two cudaMalloc's (a real driver rounds every allocation up
 * to its page, 2 MiB for large ones: two allocations keep the span within a few MiB of
 * the plan), counted by mem_bytes:
 *   weights   the caller's weight_bytes, each tensor at a multiple of
 *             LLM_SPAN_WEIGHT_ALIGN, the GGUF bytes as given (never repacked); a tensor
 *             past the reservation (weight_bytes 0, or too small) gets its own cudaMalloc
 *   the rest  one allocation laid out by span_layout.h:
 *   KV cache  kc, vc: F16 [l1-l0][n_head_kv][n_ctx][head_dim], as the CPU's
 *   scratch   n_batch rows each: x, xn (n_embd), q, att (q_dim), k, v (kv_dim),
 *             tmp (max(n_embd, q_dim+2kv_dim): fused QKV / attn_out / ffn_down
 *             results), gate (n_ff: the gated activation), up (n_ff: the up matmul
 *             where gate and up differ in type)
 *             (tmp holds 2n_ff too when LLMLITE_CUDA_FUSE=0: a fused ffn_up's rows)
 *   part      attention partials (ops.cuh), logits (head only: logit_rows x n_vocab)
 *   counts    the "last block done" counters (n_batch*n_head for attention, 1 for the
 *             matmul + residual launches), zeroed once at create, 0 between launches
 * Host memory: pinned staging for the position + x (one buffer, copied as one) and up
 * to 16 rows of logits, so that a step is one H2D copy in and one D2H copy out on the
 * span's stream (more than 16
 * logit rows, e.g. perplexity over a whole batch, are copied straight into the
 * caller's buffer, one copy per logit_rows rows).
 *
 * A layer's launches (enq_layer), n tokens:
 *   1  Q/K/V matmuls: one launch for the matrices of one weight type (cu_matmul_set);
 *      a fused attn_qkv is one matrix anyway
 *   1  Q/K stage (bias, q/k norm, RoPE, KV cache write); none in fused decode, where
 *      the attention computes it (cu_attention_folds)
 *   1  attention; its last block per (token tile, KV head) merges the partials
 *   1  attn_out matmul; for n <= RES_FUSE_MAX its last block does the residual (+ post
 *      norm) and ffn_norm (cu_matmul_residual), else + 1 residual launch
 *   1  gate + up + gated activation (cu_matmul_glu) where gate and up share a type
 *      (always for a fused ffn_up), else 3: gate, up, activation
 *   1  ffn_down matmul with the residual and the next layer's attn_norm, as attn_out
 * = 5 per layer for SmolLM2-135M (Q4_1 throughout) in decode, 9 for n > RES_FUSE_MAX;
 * Gemma 3 files with a Q8_0 attn_v beside Q5_0 attn_q/attn_k: 6 on those layers (+2
 * where ffn_gate and ffn_up differ in type). Before the fusions it was 13 per layer
 * (Q, K, V, qk, attention, combine, attn_out, residual, gate, up, activation, down,
 * residual) for both. Per step add the input copy, the first layer's attn_norm, and
 * with the head its norm, matmul (softcap) and the logits copy. The integer kernels
 * (mmq.cu) add one launch per matmul input (X's Q8_1 copy into xq) for batches of more
 * than 16 tokens or rows too long for a block's shared copy, none in decode. LLMLITE_CUDA_FUSE=0
 * enqueues the 13 separate launches (same bits: span_check compares them).
 *
 * Batch invariance: every kernel computes a token's values with the same operations
 * in the same order whatever the batch size (matmul: one column's fma chain and warp
 * reduction do not depend on how many columns share the pass, and the integer
 * kernels' group order and k split depend on k alone; attention: fixed
 * 128-key chunks merged in order; the fused and the separate forms share their
 * per-row device code, rowops.cuh), so the logits of a position are bit-identical
 * whether it ran alone (decode, graph or not) or inside a batch, as on the CPU.
 *
 * Decode (n == 1) runs as a CUDA graph captured on first use and replayed every step:
 * the kernels read the position from a device int that the graph's first node copies
 * from pinned memory (with x), and the attention grid is sized for n_ctx, so one graph serves
 * every position. Two graphs at most (with and without logits); set_tensor drops
 * them. The last-block counters need no graph node: every launch leaves them at 0.
 * LLMLITE_CUDA_GRAPH=0 runs decode without graphs; LLMLITE_CUDA_FUSE=0 without the
 * fused launches; LLMLITE_CUDA_DEBUG=1 prints the reason of a failure to stderr. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "span.h"
#include "common.cuh"
#include "matmul.cuh"
#include "mmq.cuh"
#include "ops.cuh"
#include "span_layout.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

#define IN_HEADER LLMCUDA_IN_HEADER /* bytes before x in the input buffers: the position (int) */
#define PINNED_LOGIT_ROWS 16
#define RES_FUSE_MAX 8              /* up to this many tokens: residual + norm fused into the matmul */

typedef struct {
    void *d;
    int type, own;               /* own: its own cudaMalloc (else a slice of the weights' reservation) */
    long long ne0, ne1;
    size_t bytes;
} dtensor;

typedef struct {
    llm_config c;
    int n_ctx, n_batch, l0, l1, nl, head, dev;
    int qd, kvd, wide;
    dtensor *lt;                 /* nl * LLM_T_LAYER_COUNT */
    dtensor g[LLM_G_COUNT];
    char *wres;                  /* the weights' reservation: wcap bytes, wused taken */
    size_t wcap, wused;
    unsigned char *arena;        /* everything else (span_layout.h): the buffers below point into it */
    __half *kc, *vc;
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up, *xq, *part, *logits;
    unsigned *counts;            /* last-block counters, 0 between launches: attention [n_batch][n_head], */
    unsigned *res_count;         /* then one for the matmul + residual launches (= counts + n_batch*n_head) */
    /* a step's input, one copy: [position, padding to 16 bytes][x rows] on both sides */
    unsigned char *d_in, *h_in;  /* device; pinned host */
    int *d_pos, *h_pos;          /* = (int *)d_in, (int *)h_in */
    float *h_x, *h_logits;       /* h_x = h_in + IN_HEADER; h_logits pinned */
    int logit_rows, pinned_logit_rows;
    int max_chunks;              /* attention chunks of a token at n_ctx keys */
    long long part_slots;        /* partial slots (head_dim + 2 floats each) */
    cudaStream_t st;
    cudaGraphExec_t graph[2];    /* decode: [0] no logits, [1] logits of the token */
    int use_graph, fuse, ready;
    int actq;                    /* LLMLITE_CUDA_ACTQ=1: matmul inputs quantized as the CPU does (else exact F32) */
    int eager[2];                /* decode steps run before capturing graph[i] (see span_run) */
    int dead;                    /* a sticky CUDA error: the context is lost, nothing more can run */
    long long bytes;
    char msg[256];
} span;

/* errors after which the CUDA context cannot be used again (every later call returns
 * them): the process must start over to use the GPU */
static int sticky(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress: case cudaErrorLaunchFailure: case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction: case cudaErrorMisalignedAddress: case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc: case cudaErrorAssert: case cudaErrorECCUncorrectable: case cudaErrorLaunchTimeout:
        return 1;
    default:
        return 0;
    }
}

static void note(span *s, const char *what, cudaError_t e) {
    snprintf(s->msg, sizeof s->msg, "cuda span: %s: %s", what, e == cudaSuccess ? "failed" : cudaGetErrorString(e));
    if (sticky(e)) s->dead = 1;
    const char *dbg = getenv("LLMLITE_CUDA_DEBUG");
    if (dbg && dbg[0] && dbg[0] != '0') fprintf(stderr, "%s\n", s->msg);
}

static const char *span_error(void *p, int *dead) {
    const span *s = (const span *)p;
    if (dead) *dead = s->dead;
    return s->msg;
}

static dtensor *lt(span *s, int il, int slot) { return &s->lt[(size_t)(il - s->l0) * LLM_T_LAYER_COUNT + slot]; }

static int is_swa(const span *s, int il) {
    const int p = s->c.swa_pattern;
    return s->c.sliding_window > 0 && p > 1 && (il % p) < p - 1;
}

static long long row_bytes(int type, long long n) {
    int qk, bb;
    switch (type) {
    case CT_F32: qk = 1; bb = 4; break;
    case CT_F16: case CT_BF16: qk = 1; bb = 2; break;
    case CT_Q4_0: qk = 32; bb = 18; break;
    case CT_Q4_1: qk = 32; bb = 20; break;
    case CT_Q5_0: qk = 32; bb = 22; break;
    case CT_Q5_1: qk = 32; bb = 24; break;
    case CT_Q8_0: qk = 32; bb = 34; break;
    case CT_Q2_K: qk = 256; bb = 84; break;
    case CT_Q3_K: qk = 256; bb = 110; break;
    case CT_Q4_K: qk = 256; bb = 144; break;
    case CT_Q5_K: qk = 256; bb = 176; break;
    case CT_Q6_K: qk = 256; bb = 210; break;
    case CT_MXFP4: qk = 32; bb = 17; break;
    case CT_NVFP4: qk = 64; bb = 36; break;
    case CT_TQ1_0: qk = 256; bb = 54; break;
    case CT_TQ2_0: qk = 256; bb = 66; break;
    case CT_IQ4_NL: qk = 32; bb = 18; break;
    case CT_IQ4_XS: qk = 256; bb = 136; break;
    case CT_IQ2_XXS: qk = 256; bb = 66; break;
    case CT_IQ2_XS: qk = 256; bb = 74; break;
    case CT_IQ2_S: qk = 256; bb = 82; break;
    case CT_IQ3_XXS: qk = 256; bb = 98; break;
    case CT_IQ3_S: qk = 256; bb = 110; break;
    case CT_IQ1_S: qk = 256; bb = 50; break;
    case CT_IQ1_M: qk = 256; bb = 56; break;
    default: return -1;
    }
    return n > 0 && n % qk == 0 ? n / qk * bb : -1;
}

/* ---------------------------------------------------------------- lifetime */

static cudaError_t dalloc(span *s, void **p, size_t bytes) {
    *p = NULL;
    if (bytes == 0) return cudaSuccess;
    const cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();                  /* allocation errors are not sticky: clear */
        return e;
    }
    s->bytes += (long long)bytes;
    return cudaSuccess;
}

static void drop_graphs(span *s) {
    for (int i = 0; i < 2; i++)
        if (s->graph[i]) { cudaGraphExecDestroy(s->graph[i]); s->graph[i] = NULL; }
}

static void span_free(void *p) {
    span *s = (span *)p;
    if (!s) return;
    cudaSetDevice(s->dev);
    if (s->st) cudaStreamSynchronize(s->st);
    drop_graphs(s);
    if (s->lt)
        for (int i = 0; i < s->nl * LLM_T_LAYER_COUNT; i++)
            if (s->lt[i].own) cudaFree(s->lt[i].d);
    for (int i = 0; i < LLM_G_COUNT; i++)
        if (s->g[i].own) cudaFree(s->g[i].d);
    cudaFree(s->wres);
    cudaFree(s->arena);
    if (s->h_in) cudaFreeHost(s->h_in);
    if (s->h_logits) cudaFreeHost(s->h_logits);
    if (s->st) cudaStreamDestroy(s->st);
    free(s->lt);
    free(s);
}

static void *span_create(const llm_config *cfg, int n_ctx, int n_batch, int l0, int l1, int head,
                         long long weight_bytes, char *err, int errlen) {
    const llm_config *c = cfg;
    if (!c || c->n_layer <= 0 || c->n_embd <= 0 || c->n_head <= 0 || c->n_head_kv <= 0 || c->head_dim <= 0 ||
        c->n_ff <= 0 || c->n_vocab <= 0 || c->n_head % c->n_head_kv || c->n_rot < 0 || c->n_rot > c->head_dim ||
        c->n_rot % 2 || c->head_dim % 2 || c->head_dim > 512 || n_ctx <= 0 || n_batch <= 0 || n_batch > 65535 ||
        l0 < 0 || l1 <= l0 || l1 > c->n_layer || weight_bytes < 0) {
        snprintf(err, errlen, "cuda span: unsupported shape (layers %d-%d, n_ctx %d, n_batch %d, head_dim %d)", l0,
                 l1 - 1, n_ctx, n_batch, c ? c->head_dim : 0);
        return NULL;
    }
    /* smollm3's NoPE layers and mistral3's query temperature have no kernels here yet (the
     * planner keeps those models on the CPU: ModelConfig.gpu_missing) */
    if (c->attn_temp_scale != 0.0f || memchr(c->rope_skip, 1, sizeof c->rope_skip)) {
        snprintf(err, errlen, "cuda span: no layers without rope or query temperature yet");
        return NULL;
    }
    /* nor granite's residual and logit scales (0 or 1: none; the planner keeps granite on the CPU) */
    if ((c->residual_scale != 0.0f && c->residual_scale != 1.0f) || (c->logit_mul != 0.0f && c->logit_mul != 1.0f)) {
        snprintf(err, errlen, "cuda span: no residual or logit scales (granite) yet");
        return NULL;
    }
    cudaError_t e = cudaSetDevice(0);
    if (e != cudaSuccess) {
        snprintf(err, errlen, "cuda span: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return NULL;
    }
    span *s = (span *)calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "cuda span: out of host memory"); return NULL; }
    s->c = *cfg;
    if (s->c.swa_pattern <= 0) s->c.swa_pattern = 1;
    s->n_ctx = n_ctx; s->n_batch = n_batch; s->l0 = l0; s->l1 = l1; s->nl = l1 - l0; s->head = head ? 1 : 0;
    s->dev = 0;
    s->fuse = cuda_span_fuse_env();
    s->actq = cuda_span_actq_env();
    cuda_span_layout L;                      /* every buffer's size: the planner counts the same */
    cuda_span_layout_of(c, n_ctx, n_batch, s->nl, s->head, s->fuse, s->actq, &L);
    s->qd = L.qd;
    s->kvd = L.kvd;
    s->wide = L.wide;
    const char *g = getenv("LLMLITE_CUDA_GRAPH");
    s->use_graph = !(g && g[0] == '0');
    s->lt = (dtensor *)calloc((size_t)s->nl * LLM_T_LAYER_COUNT, sizeof(dtensor));
    if (!s->lt) { free(s); snprintf(err, errlen, "cuda span: out of host memory"); return NULL; }

    const size_t B = (size_t)n_batch, F = sizeof(float);
    s->max_chunks = L.max_chunks;
    s->part_slots = L.part_slots;
    s->logit_rows = L.logit_rows;
    s->pinned_logit_rows = s->logit_rows < PINNED_LOGIT_ROWS ? s->logit_rows : PINNED_LOGIT_ROWS;
    /* the weights' reservation, then one allocation for everything else */
    e = dalloc(s, (void **)&s->wres, (size_t)weight_bytes);
    if (e == cudaSuccess) s->wcap = (size_t)weight_bytes;
    const char *what = "weights";
    double mib = weight_bytes / 1048576.0;
    if (e == cudaSuccess) {
        e = dalloc(s, (void **)&s->arena, L.total);
        what = "KV cache and scratch";
        mib = L.total / 1048576.0;
    }
    if (e != cudaSuccess) {
        snprintf(err, errlen, "cuda span: cannot allocate the %s (%.1f MiB, layers %d-%d): %s", what, mib, l0, l1 - 1,
                 cudaGetErrorString(e));
        span_free(s);
        return NULL;
    }
    unsigned char *A = s->arena;
    s->kc = (__half *)(A + L.off[CS_KC]); s->vc = (__half *)(A + L.off[CS_VC]);
    s->d_in = A + L.off[CS_IN];
    s->xn = (float *)(A + L.off[CS_XN]); s->q = (float *)(A + L.off[CS_Q]); s->att = (float *)(A + L.off[CS_ATT]);
    s->k = (float *)(A + L.off[CS_K]); s->v = (float *)(A + L.off[CS_V]); s->tmp = (float *)(A + L.off[CS_TMP]);
    s->gate = (float *)(A + L.off[CS_GATE]); s->up = (float *)(A + L.off[CS_UP]);
    s->xq = (float *)(A + L.off[CS_XQ]);
    s->part = (float *)(A + L.off[CS_PART]); s->counts = (unsigned *)(A + L.off[CS_COUNTS]);
    s->logits = L.bytes[CS_LOGITS] ? (float *)(A + L.off[CS_LOGITS]) : NULL;
    s->x = (float *)(s->d_in + IN_HEADER);
    s->d_pos = (int *)s->d_in;
    e = cudaHostAlloc((void **)&s->h_in, IN_HEADER + B * c->n_embd * F, cudaHostAllocDefault);
    if (e == cudaSuccess) {
        s->h_x = (float *)(s->h_in + IN_HEADER);
        s->h_pos = (int *)s->h_in;
    }
    if (e == cudaSuccess && s->head)
        e = cudaHostAlloc((void **)&s->h_logits, (size_t)s->pinned_logit_rows * c->n_vocab * F, cudaHostAllocDefault);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking);
    /* the last-block counters start at 0 (each launch leaves them so); on the span's own
     * stream: a plain cudaMemset runs on the legacy stream, unordered with this one */
    s->res_count = s->counts + B * c->n_head;
    if (e == cudaSuccess) e = cudaMemsetAsync(s->counts, 0, L.bytes[CS_COUNTS], s->st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s->st);
    /* the KV cache is left as allocated: a position is always written (by the step that
     * computes it) before any query can see it */
    if (e != cudaSuccess) {
        snprintf(err, errlen, "cuda span: setup failed: %s", cudaGetErrorString(e));
        cudaGetLastError();
        span_free(s);
        return NULL;
    }
    return s;
}

static long long span_mem_bytes(void *p) { return ((span *)p)->bytes; }

/* ---------------------------------------------------------------- weights */

/* expected shape of a slot: *ne0, *ne1; *vec = 1 for F32-only vectors. 0 if unknown */
static int slot_shape(const span *s, int layer, int slot, long long *ne0, long long *ne1, int *vec) {
    const llm_config *c = &s->c;
    const long long d = c->n_embd, hd = c->head_dim;
    *vec = 0; *ne1 = 1;
    if (layer < 0) {
        switch (slot) {
        case LLM_G_TOKEN_EMBD: case LLM_G_OUTPUT: *ne0 = d; *ne1 = c->n_vocab; return 1;
        case LLM_G_OUTPUT_NORM: *ne0 = d; *vec = 1; return 1;
        case LLM_G_ROPE_FREQS: *ne0 = c->n_rot / 2; *vec = 1; return 1;
        default: return 0;
        }
    }
    switch (slot) {
    case LLM_T_ATTN_NORM: case LLM_T_FFN_NORM: case LLM_T_POST_ATTN_NORM: case LLM_T_POST_FFW_NORM:
        *ne0 = d; *vec = 1; return 1;
    case LLM_T_ATTN_Q_NORM: case LLM_T_ATTN_K_NORM: *ne0 = hd; *vec = 1; return 1;
    case LLM_T_ATTN_Q_B: *ne0 = s->qd; *vec = 1; return 1;
    case LLM_T_ATTN_K_B: case LLM_T_ATTN_V_B: *ne0 = s->kvd; *vec = 1; return 1;
    case LLM_T_ATTN_Q: *ne0 = d; *ne1 = s->qd; return 1;
    case LLM_T_ATTN_K: case LLM_T_ATTN_V: *ne0 = d; *ne1 = s->kvd; return 1;
    case LLM_T_ATTN_QKV: *ne0 = d; *ne1 = s->qd + 2LL * s->kvd; return 1;
    case LLM_T_ATTN_OUT: *ne0 = s->qd; *ne1 = d; return 1;
    case LLM_T_FFN_GATE: case LLM_T_FFN_UP: *ne0 = d; *ne1 = c->n_ff; return 1;   /* up: or 2*n_ff (fused) */
    case LLM_T_FFN_DOWN: *ne0 = c->n_ff; *ne1 = d; return 1;
    default: return 0;
    }
}

/* a tensor's home: the next slice of the weights' reservation, or its own allocation */
static cudaError_t weight_alloc(span *s, void **d, size_t bytes, int *own) {
    const size_t a = LLM_SPAN_WEIGHT_ALIGN, slice = (bytes + a - 1) / a * a;
    if (s->wres && slice <= s->wcap - s->wused) {
        *d = s->wres + s->wused;
        s->wused += slice;
        *own = 0;
        return cudaSuccess;
    }
    *own = 1;
    return dalloc(s, d, bytes);
}

static void weight_drop(span *s, dtensor *t) {          /* a slice of the reservation is not reused */
    if (t->own) { cudaFree(t->d); s->bytes -= (long long)t->bytes; }
    memset(t, 0, sizeof *t);
}

static int span_set_tensor(void *p, int layer, int slot, int type, const void *data, long long ne0, long long ne1) {
    span *s = (span *)p;
    if (s->dead) return -3;
    s->msg[0] = 0;
    if (!data || ne0 <= 0 || ne1 <= 0) return -1;
    if (layer >= 0 && (layer < s->l0 || layer >= s->l1 || slot < 0 || slot >= LLM_T_LAYER_COUNT)) return -1;
    if (layer < 0 && (slot < 0 || slot >= LLM_G_COUNT)) return -1;
    long long e0, e1;
    int vec;
    if (!slot_shape(s, layer, slot, &e0, &e1, &vec)) return -1;
    const int fused_up = layer >= 0 && slot == LLM_T_FFN_UP && ne1 == 2LL * s->c.n_ff;
    if (ne0 != e0 || (ne1 != e1 && !fused_up)) return -1;
    if (vec ? type != CT_F32 : (!cu_matmul_ok(type, ne0) || ne1 > 0x7fffffffLL)) return -1;
    /* a span without the head keeps no head tensors (accepted, not copied); token_embd
     * only stands in for a missing output (the caller normally passes a tied matrix
     * as output), so it is not kept beside one */
    if (layer < 0 && !s->head && slot != LLM_G_ROPE_FREQS) return 0;
    if (layer < 0 && slot == LLM_G_TOKEN_EMBD && s->g[LLM_G_OUTPUT].d) return 0;
    const long long rb = row_bytes(type, ne0);
    if (rb < 0) return -1;
    const size_t bytes = (size_t)rb * (size_t)ne1;
    cudaError_t e = cudaSetDevice(s->dev);
    if (e != cudaSuccess) { note(s, "set device", e); cudaGetLastError(); return -3; }
    void *d = NULL;
    int own = 0;
    e = weight_alloc(s, &d, bytes, &own);
    if (e != cudaSuccess) {
        note(s, "weight allocation", e);
        return e == cudaErrorMemoryAllocation ? -2 : -3;
    }
    /* on the span's own stream (non-blocking: a legacy-stream cudaMemcpy would not be
     * ordered before its kernels), waited for, so the caller may free data at once */
    e = cudaMemcpyAsync(d, data, bytes, cudaMemcpyHostToDevice, s->st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s->st);
    if (e != cudaSuccess) {
        note(s, "weight upload", e);
        cudaGetLastError();
        if (own) { cudaFree(d); s->bytes -= (long long)bytes; }
        return -3;
    }
    dtensor *t = layer < 0 ? &s->g[slot] : lt(s, layer, slot);
    weight_drop(s, t);
    t->d = d; t->own = own; t->type = type; t->ne0 = ne0; t->ne1 = ne1; t->bytes = bytes;
    if (layer < 0 && slot == LLM_G_OUTPUT && s->g[LLM_G_TOKEN_EMBD].d) weight_drop(s, &s->g[LLM_G_TOKEN_EMBD]);
    drop_graphs(s);                          /* captured graphs hold the old pointers */
    s->ready = 0;
    return 0;
}

/* every tensor the span needs is present and consistent (llm_model_check's rules) */
static int check_ready(span *s) {
    if (s->ready) return 1;
    for (int il = s->l0; il < s->l1; il++) {
        const char *miss = NULL;
        if (!lt(s, il, LLM_T_ATTN_NORM)->d) miss = "attn_norm";
        else if (!lt(s, il, LLM_T_ATTN_QKV)->d &&
                 (!lt(s, il, LLM_T_ATTN_Q)->d || !lt(s, il, LLM_T_ATTN_K)->d || !lt(s, il, LLM_T_ATTN_V)->d))
            miss = "attn_q/attn_k/attn_v";
        else if (!lt(s, il, LLM_T_ATTN_OUT)->d) miss = "attn_output";
        else if (!lt(s, il, LLM_T_FFN_NORM)->d) miss = "ffn_norm";
        else if (!lt(s, il, LLM_T_FFN_UP)->d) miss = "ffn_up";
        else if (!lt(s, il, LLM_T_FFN_DOWN)->d) miss = "ffn_down";
        else if (lt(s, il, LLM_T_FFN_GATE)->d ? lt(s, il, LLM_T_FFN_UP)->ne1 != s->c.n_ff
                                                : lt(s, il, LLM_T_FFN_UP)->ne1 != 2LL * s->c.n_ff)
            miss = "ffn_gate (or a fused ffn_up of 2*n_ff rows)";
        if (miss) {
            snprintf(s->msg, sizeof s->msg, "cuda span: missing tensor blk.%d.%s", il, miss);
            return 0;
        }
    }
    if (s->head && (!s->g[LLM_G_OUTPUT_NORM].d || (!s->g[LLM_G_OUTPUT].d && !s->g[LLM_G_TOKEN_EMBD].d))) {
        snprintf(s->msg, sizeof s->msg, "cuda span: missing output_norm or output");
        return 0;
    }
    s->ready = 1;
    return 1;
}

/* ---------------------------------------------------------------- the step */

#define CK(call) do { const cudaError_t ck_e = (call); if (ck_e != cudaSuccess) { note(s, #call, ck_e); return -1; } } while (0)

/* the rows a matmul with weights of `type` multiplies: x itself (the default: exact F32
 * activations for the float kernels; the integer kernels' own Q8_1 copy, mmq.cuh), or
 * with LLMLITE_CUDA_ACTQ=1 and a float kernel, x as the CPU's dot products see it
 * (cu_act_as_cpu, into s->xq; not for F32 weights) */
static cudaError_t act_in(span *s, int type, const float *x, int n, int k, const float **xin) {
    cudaError_t e = cudaSuccess;
    *xin = s->actq && !cu_mmq_type(type) && cu_act_as_cpu(s->xq, x, n, k, type, s->st, &e) ? s->xq : x;
    return e;
}

static cudaError_t mm(span *s, const dtensor *w, const float *x, int n, float *y) {
    const float *xin;
    const cudaError_t e = act_in(s, w->type, x, n, (int)w->ne0, &xin);
    return e != cudaSuccess ? e : cu_matmul(w->type, w->d, (int)w->ne1, (int)w->ne0, xin, n, y, s->xq, s->st);
}

/* y[i] = w[i] x for cnt matrices that read x (same row length): one launch per weight
 * type, in order of first appearance (attn_q/k/v: one launch, or two where V's type
 * differs, as on some Gemma 3 layers) */
static int mm_group(span *s, const dtensor *const *w, float *const *y, int cnt, const float *x, int n) {
    int done[MM_MAX] = {0}, fam = -1;
    const float *xin = x;
    for (int i = 0; i < cnt; i++) {
        if (done[i]) continue;
        mm_set set;
        memset(&set, 0, sizeof set);
        for (int j = i, m = 0; j < cnt; j++)
            if (!done[j] && (j == i || (s->fuse && w[j]->type == w[i]->type && w[j]->ne0 == w[i]->ne0))) {
                set.W[m] = w[j]->d; set.Y[m] = y[j]; set.rows[m] = (int)w[j]->ne1;
                m++;
                done[j] = 1;
            }
        if (cu_mmq_type(w[i]->type)) {             /* x itself; its Q8_1 copy may take xq: convert again */
            fam = -1;
            CK(cu_matmul_set(w[i]->type, &set, (int)w[i]->ne0, x, n, s->xq, s->st));
            continue;
        }
        if (act_family(w[i]->type) != fam) {       /* the input as this type's CPU dot sees it, once */
            CK(act_in(s, w[i]->type, x, n, (int)w[i]->ne0, &xin));
            fam = act_family(w[i]->type);
        }
        CK(cu_matmul_set(w[i]->type, &set, (int)w[i]->ne0, xin, n, s->xq, s->st));
    }
    return 0;
}

/* o = w in (into s->tmp), then the residual x += post ? rmsnorm(o)*post : o and, if
 * norm, xn = rmsnorm(x)*norm: one launch for a few tokens (the matmul's last block does
 * the residual), two for more; the same bits either way (residual_row, rowops.cuh) */
static int mm_residual_step(span *s, const dtensor *w, const float *in, const float *post, const float *norm, int n) {
    if (s->fuse && n <= RES_FUSE_MAX) {
        mm_residual r;
        r.x = s->x; r.xn = s->xn; r.post = post; r.norm = norm; r.eps = s->c.rms_eps; r.count = s->res_count;
        const float *xin;
        CK(act_in(s, w->type, in, n, (int)w->ne0, &xin));
        CK(cu_matmul_residual(w->type, w->d, (int)w->ne1, (int)w->ne0, xin, n, s->tmp, &r, s->xq, s->st));
    } else {
        CK(mm(s, w, in, n, s->tmp));
        CK(cu_residual(s->x, s->tmp, post, norm, s->xn, n, s->c.n_embd, s->c.rms_eps, s->st));
    }
    return 0;
}

/* the ffn up to its gated activation, into s->gate (n rows of n_ff): one launch where
 * gate and up share a type (always for a fused 2*n_ff ffn_up), else three */
static int ffn_glu(span *s, const dtensor *L, int n) {
    const int ff = s->c.n_ff, gelu = s->c.ffn_gelu;
    const dtensor *G = &L[LLM_T_FFN_GATE], *U = &L[LLM_T_FFN_UP];
    if (s->fuse && (!G->d || G->type == U->type)) {   /* one launch; a fused ffn_up: rows 0..ff-1 gate, ff.. up */
        const dtensor *W = G->d ? G : U;
        const char *u = (const char *)U->d + (G->d ? 0 : (size_t)row_bytes(U->type, U->ne0) * ff);
        const float *xin;
        CK(act_in(s, W->type, s->xn, n, (int)W->ne0, &xin));
        CK(cu_matmul_glu(W->type, W->d, u, ff, (int)W->ne0, xin, n, gelu, s->gate, s->xq, s->st));
    } else if (!G->d) {                      /* a fused ffn_up, LLMLITE_CUDA_FUSE=0: the matmul, then the activation */
        CK(mm(s, U, s->xn, n, s->tmp));
        CK(cu_gated_act(s->gate, s->tmp, s->tmp + ff, 2 * ff, n, ff, gelu, s->st));
    } else {                                 /* gate and up apart (types differ, or LLMLITE_CUDA_FUSE=0) */
        const dtensor *w[2] = {G, U};
        float *const y[2] = {s->gate, s->up};
        if (mm_group(s, w, y, 2, s->xn, n)) return -1;     /* one input conversion for both */
        CK(cu_gated_act(s->gate, s->gate, s->up, ff, n, ff, gelu, s->st));
    }
    return 0;
}

/* attention launch geometry: chunks = partial slots per (token, head); tokens per launch */
typedef struct { int pstride, group; } attn_plan;

static attn_plan plan_attention(const span *s, int n, int pos, int graph) {
    attn_plan a;
    a.pstride = graph ? s->max_chunks : (pos + n + ATTN_CHUNK - 1) / ATTN_CHUNK;
    if (a.pstride > s->max_chunks) a.pstride = s->max_chunks;
    long long g = s->part_slots / ((long long)s->c.n_head * a.pstride);
    a.group = (int)(g < 1 ? 1 : g > n ? n : g);
    return a;
}

static int enq_layer(span *s, int il, int n, const attn_plan *ap) {
    const llm_config *c = &s->c;
    const int d = c->n_embd, qd = s->qd, kvd = s->kvd, hd = c->head_dim;
    const float eps = c->rms_eps;
    const dtensor *L = lt(s, il, 0);
    if (il == s->l0) CK(cu_rmsnorm(s->xn, s->x, (const float *)L[LLM_T_ATTN_NORM].d, n, d, eps, s->st));

    qk_params qp;
    memset(&qp, 0, sizeof qp);
    if (L[LLM_T_ATTN_QKV].d) {
        CK(mm(s, &L[LLM_T_ATTN_QKV], s->xn, n, s->tmp));
        qp.q_in = s->tmp; qp.k_in = s->tmp + qd; qp.v_in = s->tmp + qd + kvd;
        qp.q_stride = qp.kv_stride = qd + 2 * kvd;
    } else {
        const dtensor *w[3] = {&L[LLM_T_ATTN_Q], &L[LLM_T_ATTN_K], &L[LLM_T_ATTN_V]};
        float *const y[3] = {s->q, s->k, s->v};
        if (mm_group(s, w, y, 3, s->xn, n)) return -1;
        qp.q_in = s->q; qp.k_in = s->k; qp.v_in = s->v;
        qp.q_stride = qd; qp.kv_stride = kvd;
    }
    const int swa = is_swa(s, il);
    const size_t layer_kv = (size_t)(il - s->l0) * c->n_head_kv * s->n_ctx * hd;
    qp.bq = (const float *)L[LLM_T_ATTN_Q_B].d;
    qp.bk = (const float *)L[LLM_T_ATTN_K_B].d;
    qp.bv = (const float *)L[LLM_T_ATTN_V_B].d;
    qp.qn = (const float *)L[LLM_T_ATTN_Q_NORM].d;
    qp.kn = (const float *)L[LLM_T_ATTN_K_NORM].d;
    qp.freq = (const float *)s->g[LLM_G_ROPE_FREQS].d;
    qp.q_out = s->q;                         /* in place when Q came from its own matmul: a block owns its slice */
    qp.kc = s->kc + layer_kv;
    qp.vc = s->vc + layer_kv;
    qp.pos0 = s->d_pos;
    qp.n_head = c->n_head; qp.n_head_kv = c->n_head_kv; qp.hd = hd; qp.n_ctx = s->n_ctx;
    qp.n_rot = c->n_rot; qp.neox = c->rope_neox;
    qp.eps = eps;
    qp.theta_scale = c->n_rot > 0 ? powf(swa ? c->rope_base_swa : c->rope_base, -2.0f / (float)c->n_rot) : 1.0f;
    qp.rope_scale = swa ? c->rope_scale_swa : c->rope_scale;
    qp.q_prescale = c->q_prescale;

    attn_params at;
    memset(&at, 0, sizeof at);
    at.q = s->q; at.kc = qp.kc; at.vc = qp.vc; at.out = s->att; at.part = s->part;
    at.count = s->fuse ? s->counts : NULL;
    at.pos0 = s->d_pos;
    at.n_head = c->n_head; at.n_head_kv = c->n_head_kv; at.hd = hd; at.n_ctx = s->n_ctx;
    at.window = swa ? c->sliding_window : 0;
    at.scale = c->attn_scale;
    at.pstride = ap->pstride;
    /* decode, fused: the attention computes the Q/K stage itself (one launch less) */
    const int fold = s->fuse && cu_attention_folds(&at, n);
    if (!fold) CK(cu_qk_stage(&qp, n, s->st));
    for (int t0 = 0; t0 < n; t0 += ap->group)
        CK(cu_attention(&at, fold ? &qp : NULL, t0, n - t0 < ap->group ? n - t0 : ap->group, s->st));

    if (mm_residual_step(s, &L[LLM_T_ATTN_OUT], s->att, (const float *)L[LLM_T_POST_ATTN_NORM].d,
                         (const float *)L[LLM_T_FFN_NORM].d, n))
        return -1;
    if (ffn_glu(s, L, n)) return -1;
    /* the residual also computes the next layer's attn_norm (none after the last) */
    const float *next = il + 1 < s->l1 ? (const float *)lt(s, il + 1, LLM_T_ATTN_NORM)->d : NULL;
    return mm_residual_step(s, &L[LLM_T_FFN_DOWN], s->gate, (const float *)L[LLM_T_POST_FFW_NORM].d, next, n);
}

/* output norm + head (+ softcap) of rows first..first+cnt-1 into logits rows 0..cnt-1 */
static int enq_head(span *s, int first, int cnt) {
    const llm_config *c = &s->c;
    const dtensor *O = s->g[LLM_G_OUTPUT].d ? &s->g[LLM_G_OUTPUT] : &s->g[LLM_G_TOKEN_EMBD];
    CK(cu_rmsnorm(s->xn, s->x + (size_t)first * c->n_embd, (const float *)s->g[LLM_G_OUTPUT_NORM].d, cnt, c->n_embd,
                  c->rms_eps, s->st));
    CK(mm(s, O, s->xn, cnt, s->logits));
    if (c->logit_softcap > 0.0f) CK(cu_softcap(s->logits, (long long)cnt * c->n_vocab, c->logit_softcap, s->st));
    return 0;
}

/* the input crossing, the layers, and (graph == 1: a decode step) its output crossing */
static int enq_step(span *s, int n, int pos, int graph, int with_logits) {
    const size_t xb = (size_t)n * s->c.n_embd * sizeof(float);
    CK(cudaMemcpyAsync(s->d_in, s->h_in, IN_HEADER + xb, cudaMemcpyHostToDevice, s->st));   /* position + x */
    const attn_plan ap = plan_attention(s, n, pos, graph);
    for (int il = s->l0; il < s->l1; il++)
        if (enq_layer(s, il, n, &ap)) return -1;
    if (!graph) return 0;
    if (with_logits) {
        if (enq_head(s, 0, 1)) return -1;
        CK(cudaMemcpyAsync(s->h_logits, s->logits, (size_t)s->c.n_vocab * sizeof(float), cudaMemcpyDeviceToHost, s->st));
    } else if (!s->head) {
        CK(cudaMemcpyAsync(s->h_x, s->x, xb, cudaMemcpyDeviceToHost, s->st));
    }
    return 0;
}

static int capture(span *s, int gi) {
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamBeginCapture(s->st, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) { note(s, "graph capture", e); return -1; }
    const int rc = enq_step(s, 1, 0, 1, gi);
    e = cudaStreamEndCapture(s->st, &g);
    if (rc || e != cudaSuccess || !g) {
        if (e != cudaSuccess) note(s, "graph capture", e);
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();
        return -1;
    }
    e = cudaGraphInstantiate(&s->graph[gi], g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        note(s, "graph instantiate", e);
        s->graph[gi] = NULL;
        cudaGetLastError();
        return -1;
    }
    return 0;
}

static int run_step(span *s, float *x, int n, int pos, float *logits, int first_out, int n_out) {
    const llm_config *c = &s->c;
    if (!x || n <= 0 || n > s->n_batch || pos < 0 || pos + n > s->n_ctx) {
        snprintf(s->msg, sizeof s->msg, "cuda span: bad step (%d tokens at position %d)", n, pos);
        return -1;
    }
    const int with_logits = s->head && n_out > 0;
    if (with_logits && (!logits || first_out < 0 || first_out + n_out > n)) {
        snprintf(s->msg, sizeof s->msg, "cuda span: bad logit rows %d..%d of %d", first_out, first_out + n_out - 1, n);
        return -1;
    }
    if (!check_ready(s)) return -1;
    CK(cudaSetDevice(s->dev));
    const size_t d = (size_t)c->n_embd, nv = (size_t)c->n_vocab;
    memcpy(s->h_x, x, (size_t)n * d * sizeof(float));
    *s->h_pos = pos;

    /* a decode step's graph is captured at its second use: the first runs the kernels
     * as plain launches, which loads them (a driver loads modules lazily, and one older
     * than CUDA 12.3's cannot do so inside a capture) */
    if (n == 1 && s->use_graph && (s->graph[with_logits] || s->eager[with_logits]++ > 0)) {
        const int gi = with_logits;
        if (!s->graph[gi] && capture(s, gi) && !s->dead) {
            s->use_graph = 0;                /* then run without graphs from now on */
            s->msg[0] = 0;                   /* not a failure of this step (LLMLITE_CUDA_DEBUG printed it) */
        }
        if (s->graph[gi]) {
            CK(cudaGraphLaunch(s->graph[gi], s->st));
            CK(cudaStreamSynchronize(s->st));
            if (with_logits) memcpy(logits, s->h_logits, nv * sizeof(float));
            else if (!s->head) memcpy(x, s->h_x, d * sizeof(float));
            return 0;
        }
    }

    if (enq_step(s, n, pos, 0, 0)) return -1;
    if (with_logits) {
        const int pinned = n_out <= s->pinned_logit_rows;
        for (int done = 0; done < n_out;) {
            const int cnt = n_out - done < s->logit_rows ? n_out - done : s->logit_rows;
            if (enq_head(s, first_out + done, cnt)) return -1;
            float *dst = (pinned ? s->h_logits : logits) + (size_t)done * nv;
            CK(cudaMemcpyAsync(dst, s->logits, (size_t)cnt * nv * sizeof(float), cudaMemcpyDeviceToHost, s->st));
            done += cnt;
        }
        CK(cudaStreamSynchronize(s->st));
        if (pinned) memcpy(logits, s->h_logits, (size_t)n_out * nv * sizeof(float));
    } else if (!s->head) {
        CK(cudaMemcpyAsync(s->h_x, s->x, (size_t)n * d * sizeof(float), cudaMemcpyDeviceToHost, s->st));
        CK(cudaStreamSynchronize(s->st));
        memcpy(x, s->h_x, (size_t)n * d * sizeof(float));
    } else {
        CK(cudaStreamSynchronize(s->st));
    }
    return 0;
}

static int span_run(void *p, float *x, int n, int pos, float *logits, int first_out, int n_out) {
    span *s = (span *)p;
    if (s->dead) return -1;                  /* its message stays */
    s->msg[0] = 0;
    const int rc = run_step(s, x, n, pos, logits, first_out, n_out);
    if (rc && !s->dead) {                    /* copies may still be queued: let them finish before */
        cudaStreamSynchronize(s->st);        /* the caller reuses x or the pinned buffers */
        cudaGetLastError();
    }
    return rc;
}

/* the planner's figure (span.h): the one allocation besides the weights, less the KV
 * cache (n_layers 0), with the settings a span made now would read */
static long long span_compute_bytes(const llm_config *cfg, int n_ctx, int n_batch, int head) {
    cuda_span_layout L;
    cuda_span_layout_of(cfg, n_ctx, n_batch, 0, head, cuda_span_fuse_env(), cuda_span_actq_env(), &L);
    return (long long)L.total;
}

static const llm_span_ops CUDA_OPS = {LLM_SPAN_ABI, "cuda", span_compute_bytes, span_create, span_set_tensor, span_run,
                                      span_mem_bytes, span_error, span_free};

EXPORT const llm_span_ops *llmcuda_span_ops(void) { return &CUDA_OPS; }

/* ---------------------------------------------------------------- device info */

EXPORT int llmcuda_device_info(int *count, long long *free_bytes, long long *total_bytes, char *name, int namelen,
                               char *err, int errlen) {
    if (count) *count = 0;
    if (free_bytes) *free_bytes = 0;
    if (total_bytes) *total_bytes = 0;
    if (name && namelen > 0) name[0] = 0;
    if (err && errlen > 0) err[0] = 0;
    char buf[256];
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess && n <= 0) e = cudaErrorNoDevice;
    if (e == cudaErrorInsufficientDriver) {
        int drv = 0;
        if (cudaDriverGetVersion(&drv) == cudaSuccess && drv > 0)
            snprintf(buf, sizeof buf, "the NVIDIA driver supports CUDA %d.%d, older than the CUDA %d.%d this backend "
                     "was built with: update the driver, or rebuild with an older toolkit (make cuda)",
                     drv / 1000, drv % 1000 / 10, CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
        else
            snprintf(buf, sizeof buf, "no NVIDIA driver (or one older than this CUDA %d.%d build needs): %s",
                     CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10, cudaGetErrorString(e));
    }
    else if (e == cudaErrorNoDevice)
        snprintf(buf, sizeof buf, "no CUDA GPU found (the NVIDIA driver sees no device)");
    else if (e != cudaSuccess)
        snprintf(buf, sizeof buf, "CUDA unavailable: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    if (e == cudaSuccess) {
        cudaDeviceProp prop;
        size_t fb = 0, tb = 0;
        e = cudaGetDeviceProperties(&prop, 0);
        if (e == cudaSuccess && prop.major < 8) {
            if (err && errlen > 0)
                snprintf(err, errlen, "GPU 0 (%.64s) has compute capability %d.%d; this build needs 8.0 or newer",
                         prop.name, prop.major, prop.minor);
            return -1;
        }
        if (e == cudaSuccess) e = cudaSetDevice(0);
        if (e == cudaSuccess) e = cudaMemGetInfo(&fb, &tb);
        if (e != cudaSuccess) {
            snprintf(buf, sizeof buf, "CUDA error on GPU 0: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
        } else {
            if (count) *count = n;
            if (free_bytes) *free_bytes = (long long)fb;
            if (total_bytes) *total_bytes = (long long)tb;
            if (name && namelen > 0) snprintf(name, namelen, "%s", prop.name);
            return 0;
        }
    }
    cudaGetLastError();
    if (err && errlen > 0) snprintf(err, errlen, "%s", buf);
    return -1;
}
