/* What a span on each backend allocates besides its weights and KV cache, from the
 * shape alone: the planner (llmlite/offload.py) counts it before loading. */
#include "model.h"
#include "cuda/span_layout.h"

long long llm_span_compute_bytes(int backend, const llm_config *cfg, int n_ctx, int n_batch, int head) {
    if (!cfg || cfg->n_head_kv <= 0 || cfg->n_head <= 0 || n_ctx <= 0 || n_batch <= 0) return -1;
    if (backend == LLM_BACKEND_CPU) return llm_scratch_bytes(cfg, n_ctx, n_batch);   /* the stand-in: no logits */
    if (backend != LLM_BACKEND_CUDA) return -1;
    cuda_span_layout L;
    cuda_span_layout_of(cfg, n_ctx, n_batch, 0, head, cuda_span_fuse_env(), &L);
    return (long long)L.total;               /* n_layers 0: the scratch, no KV cache */
}
