/* The CPU backend of the span seam (span.h): a span of layers run by a second CPU
 * model with its own copy of the span's weights, its own KV cache and scratch. It
 * stands in for a device where there is none (the split machinery is tested with
 * it: the logits must equal the unsplit run's, bit for bit), and it is the pattern
 * for other backends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

/* the stand-in device's memory: a span holding more fails as a full device would
 * (0: no limit). Tests use it for the allocation-fails-despite-the-plan path. */
static long long capacity;
void llm_cpu_span_set_capacity(long long bytes) { capacity = bytes > 0 ? bytes : 0; }

typedef struct {
    llm_model *m;
    void **copies;               /* the weights, copied into the span's own memory */
    int n_copies, cap;
    long long bytes;
    char msg[128];               /* why the last set_tensor or run failed */
} cpu_span;

static void cpu_free(void *p) {
    cpu_span *s = p;
    if (!s) return;
    for (int i = 0; i < s->n_copies; i++) free(s->copies[i]);
    free(s->copies);
    llm_model_free(s->m);
    free(s);
}

/* a second CPU model's scratch; no logits buffer: run writes the caller's */
static long long cpu_compute_bytes(const llm_config *cfg, int n_ctx, int n_batch, int head) {
    (void)head;
    return llm_scratch_bytes(cfg, n_ctx, n_batch);
}

static void *cpu_create(const llm_config *cfg, int n_ctx, int n_batch, int l0, int l1, int head,
                        long long weight_bytes, char *err, int errlen) {
    (void)weight_bytes;                      /* each weight is its own malloc'd copy */
    cpu_span *s = calloc(1, sizeof *s);
    if (s) s->m = llm_model_new_span(cfg, n_ctx, n_batch, l0, l1, head);
    if (!s || !s->m) {
        free(s);
        snprintf(err, errlen, "cpu span: out of memory or bad shape (layers %d-%d)", l0, l1 - 1);
        return NULL;
    }
    s->bytes = llm_model_kv_bytes(s->m) + cpu_compute_bytes(cfg, n_ctx, n_batch, head);
    if (capacity && s->bytes > capacity) {
        snprintf(err, errlen, "cpu span: out of memory for the KV cache and scratch of layers %d-%d", l0, l1 - 1);
        cpu_free(s);
        return NULL;
    }
    return s;
}

static int cpu_set_tensor(void *p, int layer, int slot, int type, const void *data, long long ne0, long long ne1) {
    cpu_span *s = p;
    s->msg[0] = 0;
    if (layer >= 0 && (layer < s->m->l0 || layer >= s->m->l1)) return -1;
    const long long rb = llm_row_bytes(type, ne0);
    if (rb < 0 || ne1 <= 0) return -1;
    const size_t n = (size_t)rb * (size_t)ne1;
    if (capacity && s->bytes + (long long)n > capacity) {
        snprintf(s->msg, sizeof s->msg, "cpu span: out of memory (capacity %lld bytes)", capacity);
        return -2;
    }
    if (s->n_copies == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        void **c = realloc(s->copies, cap * sizeof *c);
        if (!c) return -2;
        s->copies = c;
        s->cap = cap;
    }
    void *copy = malloc(n ? n : 1);
    if (!copy) return -2;
    memcpy(copy, data, n);
    if (llm_model_set_tensor(s->m, layer, slot, type, copy, ne0, ne1)) {
        free(copy);
        return -1;
    }
    s->copies[s->n_copies++] = copy;
    s->bytes += (long long)n;
    return 0;
}

static int cpu_run(void *p, float *x, int n, int pos, float *logits, int first_out, int n_out) {
    cpu_span *s = p;
    llm_model *m = s->m;
    s->msg[0] = 0;
    if (n > m->n_batch) return -1;
    const size_t bytes = (size_t)n * m->c.n_embd * sizeof(float);
    memcpy(m->x, x, bytes);                  /* the crossing in */
    if (llm_forward_from_x(m, n, pos, logits, first_out, m->head ? n_out : 0)) {
        snprintf(s->msg, sizeof s->msg, "cpu span: the forward pass of layers %d-%d failed", m->l0, m->l1 - 1);
        return -1;
    }
    if (!m->head) memcpy(x, m->x, bytes);    /* and back, when the head stays behind */
    return 0;
}

static long long cpu_mem_bytes(void *p) {
    return ((cpu_span *)p)->bytes;
}

static const char *cpu_error(void *p, int *dead) {
    if (dead) *dead = 0;                     /* a CPU span stays usable */
    return ((cpu_span *)p)->msg;
}

static const llm_span_ops CPU_OPS = {LLM_SPAN_ABI, "cpu", cpu_compute_bytes, cpu_create, cpu_set_tensor, cpu_run,
                                     cpu_mem_bytes, cpu_error, cpu_free};

const llm_span_ops *llm_cpu_span_ops(void) { return &CPU_OPS; }
