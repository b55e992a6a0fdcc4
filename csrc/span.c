/* The model's side of the backend seam (span.h): picks a backend's table by its id,
 * gives a model's last layers to a span on it, and passes the model's calls through.
 * It sits above the backends (span_cpu.c, cuda_loader.c), which sit above model.c and
 * forward.c: those two reach a span only through the table pointer it stores in the
 * model, so no file below calls one above (csrc/README.md, "Layers"). */
#include <stdio.h>
#include "model.h"

static const llm_span_ops *backend_ops(int backend) {
    if (backend == LLM_BACKEND_CPU) return llm_cpu_span_ops();
    if (backend == LLM_BACKEND_CUDA) return llm_cuda_span_ops();
    return NULL;
}

int llm_model_attach(llm_model *m, int backend, long long weight_bytes, char *err, int errlen) {
    const llm_span_ops *ops = backend_ops(backend);
    if (!ops) { snprintf(err, errlen, "backend %d is not available", backend); return -1; }
    if (ops->abi != LLM_SPAN_ABI) { snprintf(err, errlen, "%s backend: interface version %d, expected %d", ops->name, ops->abi, LLM_SPAN_ABI); return -1; }
    if (m->span || m->l0 != 0 || m->l1 >= m->c.n_layer) {
        snprintf(err, errlen, "a span needs a model that stops before the last layer, with no span yet");
        return -1;
    }
    void *s = ops->create(&m->c, m->n_ctx, m->n_batch, m->l1, m->c.n_layer, !m->head, weight_bytes, err, errlen);
    if (!s) return -1;
    m->span_ops = ops;
    m->span = s;
    return 0;
}

int llm_model_set_span_tensor(llm_model *m, int layer, int slot, int type, const void *data,
                              long long ne0, long long ne1) {
    if (!m->span) return -1;
    return m->span_ops->set_tensor(m->span, layer, slot, type, data, ne0, ne1);
}

long long llm_model_span_bytes(const llm_model *m) {
    return m->span ? m->span_ops->mem_bytes(m->span) : 0;
}

const char *llm_model_span_error(const llm_model *m, int *dead) {
    if (dead) *dead = 0;
    return m->span ? m->span_ops->error(m->span, dead) : "";
}

long long llm_span_compute_bytes(const llm_span_ops *ops, const llm_config *cfg, int n_ctx, int n_batch, int head) {
    if (!ops || ops->abi != LLM_SPAN_ABI || !cfg || cfg->n_head_kv <= 0 || cfg->n_head <= 0 || n_ctx <= 0 ||
        n_batch <= 0)
        return -1;
    return ops->compute_bytes(cfg, n_ctx, n_batch, head);
}
