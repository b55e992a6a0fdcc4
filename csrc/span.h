/* The backend seam: a span of layers [l0, l1) run by one backend, with that span's
 * weights, KV cache and scratch in the backend's own memory. The CPU model runs the
 * embeddings and the layers before the first span; the last span also holds the
 * output head. The hidden state crosses into a span once per step (once per batch
 * chunk in prefill), and the logits come back.
 *
 * A backend is a table of functions. The CPU one (span_cpu.c) stands in for a device
 * in tests; the CUDA one lives in csrc/cuda/ and is built as a separate library
 * (libllmlite_cuda.so) that the extension loads at run time (cuda_loader.c), so the
 * CPU build never needs nvcc. A Metal backend would be one more directory with the
 * same table. Shared by C and CUDA (C++) code: plain C declarations only. */
#ifndef LLM_SPAN_H
#define LLM_SPAN_H
#include "llmlite.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 3: compute_bytes, each backend's own buffer sizes */
#define LLM_SPAN_ABI 3

typedef struct llm_span_ops {
    int abi;                    /* LLM_SPAN_ABI */
    const char *name;           /* "cpu", "cuda" */
    /* what create(cfg, n_ctx, n_batch, .., head, ..) allocates besides the weights and
     * the KV cache (scratch; with head, a logits buffer if the backend keeps one), from
     * the shape alone, without a device: the planner's figure (llmlite/offload.py asks
     * the backend's own table, so the CPU build never holds a device's buffer layout).
     * -1 for a shape the backend refuses. */
    long long (*compute_bytes)(const llm_config *cfg, int n_ctx, int n_batch, int head);
    /* a span of layers [l0, l1) of a model with config cfg, a KV cache of n_ctx
     * positions and scratch for n_batch tokens; head: 1 if it also holds the output
     * norm and head. weight_bytes: what set_tensor will be given, each tensor's bytes
     * rounded up to LLM_SPAN_WEIGHT_ALIGN (a device backend reserves it in one
     * allocation; 0: unknown, each tensor is allocated on its own). NULL on failure,
     * with a message in err. */
    void *(*create)(const llm_config *cfg, int n_ctx, int n_batch, int l0, int l1, int head,
                    long long weight_bytes, char *err, int errlen);
    /* a weight, from host memory (the backend keeps its own copy): the same slots and
     * shapes as llm_model_set_tensor; layer -1 = a global slot (output, output_norm,
     * rope_freqs). 0 ok, -1 bad slot/type/shape, -2 out of device memory, -3 any other
     * device error (the reason: error()). */
    int (*set_tensor)(void *s, int layer, int slot, int type, const void *data, long long ne0, long long ne1);
    /* x: n rows of n_embd floats (host), the hidden state entering layer l0 at positions
     * pos..pos+n-1 (n <= n_batch). Runs layers l0..l1-1; with the head, writes the
     * logits of rows first_out..first_out+n_out-1 to logits (host, n_out x n_vocab).
     * Without the head, writes the hidden state leaving layer l1-1 back into x.
     * n_out may be 0 (a prefill chunk whose logits nobody wants): the layers still
     * run and fill the KV cache. 0 ok, -1 on failure (the reason: error()). */
    int (*run)(void *s, float *x, int n, int pos, float *logits, int first_out, int n_out);
    long long (*mem_bytes)(void *s);       /* memory the span holds (weights + KV + scratch + logits) */
    /* why the last set_tensor or run failed ("" if it did not); dead: 1 when the
     * device can no longer be used at all (a CUDA error that poisons the context) */
    const char *(*error)(void *s, int *dead);
    void (*free)(void *s);
} llm_span_ops;

/* the CPU backend's table, llm_cpu_span_ops (span_cpu.c), and the CUDA library's,
 * llm_cuda_table (cuda_loader.c), are in llmlite.h: the planner reads them too */
/* the CUDA backend's table once llm_cuda_load succeeded (a device is there), else NULL */
const llm_span_ops *llm_cuda_span_ops(void);

#ifdef __cplusplus
}
#endif
#endif
