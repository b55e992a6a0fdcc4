/* The device buffers of a CUDA span other than its weights, sized from the shape
 * alone and placed in one allocation: span_cuda.cu allocates exactly this, and reports
 * it through its table's compute_bytes (csrc/span.h), which the planner asks before
 * anything is loaded, so the plan counts what the span will take (one allocation, not
 * fourteen: a real driver rounds each up to its page size). Private to the CUDA
 * backend (the CPU extension never includes it).
 *
 *   kc, vc    F16 KV cache [layers][n_head_kv][n_ctx][head_dim]
 *   in        the position (IN_HEADER bytes) then x: n_batch rows of n_embd
 *   xn        n_batch x n_embd;  q, att: n_batch x q_dim;  k, v: n_batch x kv_dim
 *   tmp       n_batch x wide, wide = max(n_embd, q_dim + 2 kv_dim): fused QKV /
 *             attn_out / ffn_down results (and 2 n_ff, a fused ffn_up's rows, when the
 *             fused launches are off: LLMLITE_CUDA_FUSE=0)
 *   gate, up  n_batch x n_ff
 *   xq        n_batch x max(n_embd, q_dim, n_ff) x 5/4 bytes: the Q8_1 copy of a batch's
 *             matmul input for the integer kernels (mmq.cuh); x 4 bytes with
 *             LLMLITE_CUDA_ACTQ=1, which also keeps there a float matmul's input as the
 *             CPU's dot products see it (ops.cuh cu_act_as_cpu)
 *   part      attention partials: part_slots x (head_dim + 2) floats, part_slots =
 *             n_head x clamp(n_batch x chunks(n_ctx), chunks(n_ctx), PART_SLOTS_PER_HEAD)
 *   counts    the "last block done" counters: n_batch x n_head for attention, 1 for
 *             the matmul + residual launches (unsigned)
 *   logits    (head only) logit_rows x n_vocab, logit_rows = min(n_batch,
 *             max(16, LOGIT_BYTES_MAX / (4 n_vocab))) */
#ifndef LLMCUDA_SPAN_LAYOUT_H
#define LLMCUDA_SPAN_LAYOUT_H
#include <stddef.h>
#include <stdlib.h>
#include "llmlite.h"

/* the first three are also in llmlite/offload.py's cuda_compute_estimate (the plan
 * where no CUDA library is there to ask): tests/test_offload_plan.py fails when the
 * estimate no longer bounds this layout from above */
#define LLMCUDA_ATTN_CHUNK 128              /* keys per attention chunk */
#define LLMCUDA_PART_SLOTS_PER_HEAD 2048    /* attention partial slots per head in a batch */
#define LLMCUDA_LOGIT_BYTES_MAX (64LL << 20) /* device logits buffer (rows of n_vocab), at least 16 rows */
#define LLMCUDA_IN_HEADER 16                /* bytes before x in the input buffers: the position (int) */

enum { CS_KC, CS_VC, CS_IN, CS_XN, CS_Q, CS_ATT, CS_K, CS_V, CS_TMP, CS_GATE, CS_UP, CS_XQ, CS_PART,
       CS_COUNTS, CS_LOGITS, CS_COUNT };

#define LLMCUDA_ALIGN 256                   /* buffers start at multiples of this */

typedef struct {
    size_t bytes[CS_COUNT];
    size_t off[CS_COUNT];   /* where each buffer starts in the span's one allocation */
    size_t total;           /* that allocation: the buffers, aligned, then the KV cache */
    int qd, kvd, wide, max_chunks, logit_rows;
    long long part_slots;
} cuda_span_layout;

/* LLMLITE_CUDA_ACTQ=1: matmul inputs quantized as the CPU does (ops.cuh cu_act_as_cpu) */
static inline int cuda_span_actq_env(void) {
    const char *a = getenv("LLMLITE_CUDA_ACTQ");
    return a && a[0] == '1';
}

/* the fused launches are on unless LLMLITE_CUDA_FUSE=0 */
static inline int cuda_span_fuse_env(void) {
    const char *f = getenv("LLMLITE_CUDA_FUSE");
    return !(f && f[0] == '0');
}

/* the buffers of a span of n_layers layers (0: all but the KV cache); fuse: the fused
 * launches are on (the default); actq: LLMLITE_CUDA_ACTQ=1's larger xq buffer */
static inline void cuda_span_layout_of(const llm_config *c, int n_ctx, int n_batch, int n_layers, int head,
                                       int fuse, int actq, cuda_span_layout *L) {
    const size_t B = (size_t)n_batch, F = sizeof(float);
    L->qd = c->n_head * c->head_dim;
    L->kvd = c->n_head_kv * c->head_dim;
    long long wide = c->n_embd;
    if (L->qd + 2LL * L->kvd > wide) wide = L->qd + 2LL * L->kvd;
    if (!fuse && 2LL * c->n_ff > wide) wide = 2LL * c->n_ff;
    L->wide = (int)wide;
    L->max_chunks = (n_ctx + LLMCUDA_ATTN_CHUNK - 1) / LLMCUDA_ATTN_CHUNK;
    long long per_head = (long long)n_batch * L->max_chunks;
    if (per_head > LLMCUDA_PART_SLOTS_PER_HEAD) per_head = LLMCUDA_PART_SLOTS_PER_HEAD;
    if (per_head < L->max_chunks) per_head = L->max_chunks;
    L->part_slots = per_head * c->n_head;
    L->logit_rows = 0;
    if (head) {
        long long rows = LLMCUDA_LOGIT_BYTES_MAX / ((long long)c->n_vocab * 4);
        if (rows < 16) rows = 16;
        L->logit_rows = (int)(rows < n_batch ? rows : n_batch);
    }
    const size_t kvn = (size_t)n_layers * c->n_head_kv * n_ctx * c->head_dim;
    size_t *b = L->bytes;
    b[CS_KC] = b[CS_VC] = kvn * 2;
    b[CS_IN] = LLMCUDA_IN_HEADER + B * c->n_embd * F;
    b[CS_XN] = B * c->n_embd * F;
    b[CS_Q] = b[CS_ATT] = B * L->qd * F;
    b[CS_K] = b[CS_V] = B * L->kvd * F;
    b[CS_TMP] = B * (size_t)L->wide * F;
    b[CS_GATE] = b[CS_UP] = B * c->n_ff * F;
    size_t maxk = (size_t)c->n_embd;
    if ((size_t)L->qd > maxk) maxk = (size_t)L->qd;
    if ((size_t)c->n_ff > maxk) maxk = (size_t)c->n_ff;
    b[CS_XQ] = actq ? B * maxk * F : B * maxk + (B * maxk + 3) / 4;
    b[CS_PART] = (size_t)L->part_slots * (c->head_dim + 2) * F;
    b[CS_COUNTS] = ((size_t)B * c->n_head + 1) * sizeof(unsigned);
    b[CS_LOGITS] = (size_t)L->logit_rows * c->n_vocab * F;
    /* one allocation: the scratch buffers at multiples of LLMCUDA_ALIGN, then K and V
     * (kc's bytes are a multiple of 4, of 16 when head_dim % 8 == 0: all vc's loads need) */
    size_t o = 0;
    for (int i = 0; i < CS_COUNT; i++) {
        if (i == CS_KC || i == CS_VC) continue;
        o = (o + LLMCUDA_ALIGN - 1) / LLMCUDA_ALIGN * LLMCUDA_ALIGN;
        L->off[i] = o;
        o += b[i];
    }
    o = (o + LLMCUDA_ALIGN - 1) / LLMCUDA_ALIGN * LLMCUDA_ALIGN;
    L->off[CS_KC] = o;
    L->off[CS_VC] = o + b[CS_KC];
    L->total = o + b[CS_KC] + b[CS_VC];
}

#endif
