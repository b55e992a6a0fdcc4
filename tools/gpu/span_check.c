/* End-to-end check of the CUDA span (not part of the library), for a machine with a GPU:
 * random small models of each architecture shape, run through the CUDA span and the
 * CPU span (span_cpu.c) with the same inputs, logits compared row by row.
 *
 *   exact   the CPU span gets the dequantized weights as F32 (a plain float dot), the
 *           CUDA span the quantized bytes (exact F32 activations for the float kernels'
 *           types, Q8_1 for the integer kernels', f32_tol): checks the device decoders,
 *           the forward pass and the attention to float tolerance (rel err < 5e-3, or
 *           5e-2 with Q8_1 activations; same top-1 but for near-ties)
 *   native  both get the quantized weights, and the CUDA span quantizes the activations
 *           as the CPU does (LLMLITE_CUDA_ACTQ=1 for the float kernels; the integer
 *           kernels' Q8_1 codes are the CPU's Q8_0/Q8_1 ones): the agreement is reported
 *           (a rounding flip anywhere moves the rest, so no tolerance); argument
 *           "native [NAME,NAME...]": of a llama model of each integer-kernel type
 *   invariance  the CUDA logits of a position computed alone (decode, with and without
 *           CUDA graphs) equal those computed inside a batch, bit for bit
 *   unfused the logits with the fused launches equal those with LLMLITE_CUDA_FUSE=0
 *           (Q/K/V, gate/up/activation and attention/combine as separate launches),
 *           bit for bit
 *   split   two CUDA spans [0,2) + [2,L) with head, against one CPU span
 *   long    1000 positions, sliding window 20, n_batch 256 (many attention chunks)
 *   bench   (argument "bench") decode and prefill timings of two larger shapes;
 *           "quick": a few of the checks (for compute-sanitizer); "all": check + bench
 *   types   (argument "types [NAME,NAME...]") the exact check of each weight type (of
 *           those named) alone
 *   attn    (argument "attn") the checks that set the attention's work split apart:
 *           every arch shape, head_dim 36, 16 query heads of 256 over one KV head,
 *           invariance, unfused and long (a narrow run while working on attention.cu)
 *   stress  (argument "stress") unfused + invariance repeated $STRESS_ROUNDS times (20):
 *           a race in the fused launches' last-block pattern would show as a difference
 *
 * Build and run: tools/gpu/gpu_check.sh (it also builds the library and the probe).
 * Exit 0: all passed (or no GPU: the reason is printed); 1: a check failed. */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "llmlite.h"
#include "span.h"

typedef int (*info_fn)(int *, long long *, long long *, char *, int, char *, int);
static const llm_span_ops *CUDA, *CPU;
static int failures;

enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8, T_Q2_K = 10,
       T_Q3_K = 11, T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_IQ2_XXS = 16, T_IQ2_XS = 17, T_IQ3_XXS = 18,
       T_IQ1_S = 19, T_IQ4_NL = 20, T_IQ3_S = 21, T_IQ2_S = 22, T_IQ4_XS = 23, T_IQ1_M = 29, T_BF16 = 30,
       T_TQ1_0 = 34, T_TQ2_0 = 35, T_MXFP4 = 39, T_NVFP4 = 40 };
static const char *tname(int t) {
    switch (t) {
    case T_F32: return "F32"; case T_F16: return "F16"; case T_BF16: return "BF16"; case T_Q4_0: return "Q4_0";
    case T_Q4_1: return "Q4_1"; case T_Q5_0: return "Q5_0"; case T_Q5_1: return "Q5_1"; case T_Q8_0: return "Q8_0";
    case T_Q2_K: return "Q2_K"; case T_Q3_K: return "Q3_K"; case T_Q4_K: return "Q4_K"; case T_Q5_K: return "Q5_K";
    case T_Q6_K: return "Q6_K"; case T_TQ1_0: return "TQ1_0"; case T_TQ2_0: return "TQ2_0";
    case T_MXFP4: return "MXFP4"; case T_NVFP4: return "NVFP4"; case T_IQ4_NL: return "IQ4_NL";
    case T_IQ4_XS: return "IQ4_XS"; case T_IQ2_XXS: return "IQ2_XXS"; case T_IQ2_XS: return "IQ2_XS";
    case T_IQ2_S: return "IQ2_S"; case T_IQ3_XXS: return "IQ3_XXS"; case T_IQ3_S: return "IQ3_S";
    case T_IQ1_S: return "IQ1_S"; case T_IQ1_M: return "IQ1_M"; default: return "?";
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- deterministic random numbers ---- */
static uint64_t rs = 0x9E3779B97F4A7C15ull;
static void seed(uint64_t s) { rs = s * 0x9E3779B97F4A7C15ull + 1; }
static uint64_t rnd64(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static float uni(void) {    /* (-1, 1) */
    return (float)((rnd64() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* the fp16 scale of a 256-element block of a type without a quantizer (the grid i-quants):
 * at byte 0, or IQ1_M's, in the top nibbles of its four 16-bit scale words (bytes 48..55) */
static void set_block_scale(int type, uint8_t *b, uint16_t h) {
    if (type != T_IQ1_M) { memcpy(b, &h, 2); return; }
    for (int i = 0; i < 4; i++) {
        uint16_t w;
        memcpy(&w, b + 48 + 2 * i, 2);
        w = (uint16_t)((w & 0x0fffu) | (((h >> (4 * i)) & 15u) << 12));
        memcpy(b + 48 + 2 * i, &w, 2);
    }
}

/* weights of a type that is read but not written (no quantizer): random codes, every
 * block's scale one power of two chosen so the weights' RMS is the floats' (f's, which
 * are then replaced by the weights' values) */
static int random_codes(int type, uint8_t *q, float *f, long long ne0, long long ne1) {
    const long long n = ne0 * ne1, bb = llm_row_bytes(type, 256), nb = n / 256;
    if (bb <= 0 || ne0 % 256) return -1;
    double want = 0, got = 0;
    for (long long i = 0; i < n; i++) want += (double)f[i] * f[i];
    for (long long i = 0; i < nb * bb; i++) q[i] = (uint8_t)(rnd64() >> 32);
    for (long long b = 0; b < nb; b++) set_block_scale(type, q + b * bb, 0x3c00);       /* 1.0 */
    if (llm_dequantize(type, q, f, n)) return -1;
    for (long long i = 0; i < n; i++) got += (double)f[i] * f[i];
    if (!(got > 0 && want > 0)) return -1;
    const long e = lround(0.5 * log2(want / got));                                   /* d = 2^e */
    if (e < -14 || e > 15) return -1;
    for (long long b = 0; b < nb; b++) set_block_scale(type, q + b * bb, (uint16_t)((e + 15) << 10));
    return llm_dequantize(type, q, f, n);
}

/* ---- a model: weights in the test's type, and the same dequantized to F32 ---- */
typedef struct { int layer, slot, type; long long ne0, ne1; void *q; float *f; } wt;
typedef struct { llm_config c; wt w[512]; int nw; } model;

enum { MAT, NORM, BIAS, FREQ };
static void add(model *m, int layer, int slot, int type, long long ne0, long long ne1, int kind) {
    wt *w = &m->w[m->nw++];
    const size_t n = (size_t)ne0 * ne1;
    w->layer = layer; w->slot = slot; w->ne0 = ne0; w->ne1 = ne1;
    w->f = malloc(n * sizeof(float));
    const float a = kind == MAT ? sqrtf(3.0f / (float)ne0) : 0.1f;
    for (size_t i = 0; i < n; i++)
        w->f[i] = kind == MAT ? a * uni() : kind == NORM ? 1.0f + 0.2f * uni() : kind == BIAS ? 0.3f * uni()
                                                                        : 1.0f + 3.0f * (float)(i % 5) / 4.0f;
    if (kind != MAT) type = T_F32;
    w->type = type;
    if (type == T_F32) { w->q = w->f; return; }
    const long long rb = llm_row_bytes(type, ne0);
    w->q = malloc((size_t)rb * ne1);
    if (!llm_quantize_type_supported(type) ? random_codes(type, w->q, w->f, ne0, ne1)
        : llm_quantize_rows(type, w->f, w->q, ne1, ne0) || llm_dequantize(type, w->q, w->f, (long long)n)) {
        printf("cannot quantize %s [%lld, %lld]\n", tname(type), ne0, ne1);
        exit(1);
    }
}

static void free_model(model *m) {
    for (int i = 0; i < m->nw; i++) {
        if (m->w[i].q != m->w[i].f) free(m->w[i].q);
        free(m->w[i].f);
    }
    m->nw = 0;
}

/* mixed: layer 1's attn_v and ffn_up in Q8_0 (the others in the model's type), as
 * Gemma 3 files mix types: the CUDA span groups matrices by type */
typedef struct { int qkv_fused, up_fused, bias, qk_norm, post_norms, rope_freqs, mixed; } shape_opts;

/* every tensor of the config, matrices in type t (the head in type th) */
static void build(model *m, const llm_config *c, int t, int th, const shape_opts *o, uint64_t sd) {
    seed(sd);
    m->c = *c; m->nw = 0;
    const long long d = c->n_embd, qd = (long long)c->n_head * c->head_dim, kvd = (long long)c->n_head_kv * c->head_dim;
    add(m, -1, LLM_G_OUTPUT_NORM, T_F32, d, 1, NORM);
    add(m, -1, LLM_G_OUTPUT, th, d, c->n_vocab, MAT);
    if (o->rope_freqs) add(m, -1, LLM_G_ROPE_FREQS, T_F32, c->n_rot / 2, 1, FREQ);
    for (int il = 0; il < c->n_layer; il++) {
        const int tx = o->mixed && il == 1 ? T_Q8_0 : t;
        add(m, il, LLM_T_ATTN_NORM, T_F32, d, 1, NORM);
        if (o->qkv_fused) add(m, il, LLM_T_ATTN_QKV, t, d, qd + 2 * kvd, MAT);
        else {
            add(m, il, LLM_T_ATTN_Q, t, d, qd, MAT);
            add(m, il, LLM_T_ATTN_K, t, d, kvd, MAT);
            add(m, il, LLM_T_ATTN_V, tx, d, kvd, MAT);
        }
        if (o->bias) {
            add(m, il, LLM_T_ATTN_Q_B, T_F32, qd, 1, BIAS);
            add(m, il, LLM_T_ATTN_K_B, T_F32, kvd, 1, BIAS);
            add(m, il, LLM_T_ATTN_V_B, T_F32, kvd, 1, BIAS);
        }
        if (o->qk_norm) {
            add(m, il, LLM_T_ATTN_Q_NORM, T_F32, c->head_dim, 1, NORM);
            add(m, il, LLM_T_ATTN_K_NORM, T_F32, c->head_dim, 1, NORM);
        }
        add(m, il, LLM_T_ATTN_OUT, t, qd, d, MAT);
        if (o->post_norms) {
            add(m, il, LLM_T_POST_ATTN_NORM, T_F32, d, 1, NORM);
            add(m, il, LLM_T_POST_FFW_NORM, T_F32, d, 1, NORM);
        }
        add(m, il, LLM_T_FFN_NORM, T_F32, d, 1, NORM);
        if (o->up_fused) add(m, il, LLM_T_FFN_UP, t, d, 2LL * c->n_ff, MAT);
        else {
            add(m, il, LLM_T_FFN_GATE, t, d, c->n_ff, MAT);
            add(m, il, LLM_T_FFN_UP, tx, d, c->n_ff, MAT);
        }
        add(m, il, LLM_T_FFN_DOWN, t, c->n_ff, d, MAT);
    }
}

static int given(const wt *w, int l0, int l1, int head) {
    return w->layer >= 0 ? w->layer >= l0 && w->layer < l1 : head || w->slot == LLM_G_ROPE_FREQS;
}

static long long slice_bytes(long long b) { return (b + LLM_SPAN_WEIGHT_ALIGN - 1) / LLM_SPAN_WEIGHT_ALIGN * LLM_SPAN_WEIGHT_ALIGN; }

/* the weights' reservation make_span asks for: 2 = all of them (as llmlite/model.py
 * does), 1 = half (the rest take the path of a tensor past it: its own allocation) */
static int reserve_halves = 2;
/* CUDA spans quantize matmul inputs as the CPU does (LLMLITE_CUDA_ACTQ=1), or not */
static int cuda_actq = 0;

/* a span of m's layers [l0, l1) on ops; f32: give the dequantized weights */
static void *make_span(const llm_span_ops *ops, const model *m, int n_ctx, int n_batch, int l0, int l1, int f32) {
    char err[256] = "";
    const int head = l1 == m->c.n_layer;
    long long reserve = 0;
    for (int i = 0; i < m->nw; i++)
        if (given(&m->w[i], l0, l1, head)) {
            const wt *w = &m->w[i];
            reserve += slice_bytes(llm_row_bytes(f32 ? T_F32 : w->type, w->ne0) * w->ne1);
        }
    reserve = reserve * reserve_halves / 2;
    if (ops == CUDA) setenv("LLMLITE_CUDA_ACTQ", cuda_actq ? "1" : "0", 1);
    void *s = ops->create(&m->c, n_ctx, n_batch, l0, l1, head, reserve, err, sizeof err);
    if (!s) { printf("  %s create failed: %s\n", ops->name, err); failures++; return NULL; }
    for (int i = 0; i < m->nw; i++) {
        const wt *w = &m->w[i];
        if (!given(w, l0, l1, head)) continue;
        const int rc = ops->set_tensor(s, w->layer, w->slot, f32 ? T_F32 : w->type, f32 ? (void *)w->f : w->q, w->ne0, w->ne1);
        if (rc) {
            printf("  %s set_tensor(layer %d, slot %d, %s) = %d\n", ops->name, w->layer, w->slot, tname(w->type), rc);
            failures++;
            ops->free(s);
            return NULL;
        }
    }
    return s;
}

/* the hidden state entering layer 0 at position p (a stand-in for the embeddings) */
static void fill_x(float *x, int d, int p0, int n) {
    for (int t = 0; t < n; t++) {
        seed(1000003ull * (p0 + t) + 7);
        for (int i = 0; i < d; i++) x[(size_t)t * d + i] = uni();
    }
}

typedef struct { double max_rel; long long rows, top1, ties; } stats;

static int argmax(const float *v, int n, float *gap) {
    int b = 0;
    for (int i = 1; i < n; i++) if (v[i] > v[b]) b = i;
    float second = -INFINITY;
    for (int i = 0; i < n; i++) if (i != b && v[i] > second) second = v[i];
    *gap = v[b] - second;
    return b;
}

static void compare(stats *st, const float *ref, const float *got, int rows, int nv) {
    for (int r = 0; r < rows; r++) {
        const float *a = ref + (size_t)r * nv, *b = got + (size_t)r * nv;
        double amax = 0, dmax = 0;
        for (int i = 0; i < nv; i++) {
            amax = fmax(amax, fabs(a[i]));
            dmax = fmax(dmax, fabs((double)a[i] - b[i]));
            if (b[i] != b[i]) dmax = INFINITY;
        }
        const double rel = dmax / (amax > 0 ? amax : 1);
        if (rel > st->max_rel) st->max_rel = rel;
        float ga, gb;
        const int ia = argmax(a, nv, &ga), ib = argmax(b, nv, &gb);
        st->rows++;
        if (ia == ib) st->top1++;
        else if (ga < 2 * dmax) st->ties++;     /* the reference's top two closer than the error */
    }
}

/* one step on a list of spans chained in order (the last holds the head) */
static int run_chain(const llm_span_ops *ops, void **sp, int ns, float *x, int n, int pos, float *logits, int first,
                     int n_out) {
    for (int i = 0; i < ns; i++)
        if (ops->run(sp[i], x, n, pos, i == ns - 1 ? logits : NULL, first, i == ns - 1 ? n_out : 0)) return -1;
    return 0;
}

/* a sequence of steps (n, with logits?) run on both chains; returns GPU logits of every
 * position in all (n_pos x nv) when all != NULL */
typedef struct { int n; int logits; } step;

static int run_seq(const model *m, void **gs, int ngs, void **cs, int ncs, const step *steps, int nsteps, stats *st,
                   float *all) {
    const int d = m->c.n_embd, nv = m->c.n_vocab;
    int maxn = 0;
    for (int i = 0; i < nsteps; i++) if (steps[i].n > maxn) maxn = steps[i].n;
    float *xg = malloc((size_t)maxn * d * 4), *xc = malloc((size_t)maxn * d * 4);
    float *lg = malloc((size_t)maxn * nv * 4), *lc = malloc((size_t)maxn * nv * 4);
    int pos = 0, rc = 0;
    for (int i = 0; i < nsteps && !rc; i++) {
        const int n = steps[i].n, no = steps[i].logits ? n : 0;
        fill_x(xg, d, pos, n);
        memcpy(xc, xg, (size_t)n * d * 4);
        memset(lg, 0xff, (size_t)n * nv * 4);
        if (run_chain(CUDA, gs, ngs, xg, n, pos, lg, 0, no)) { printf("  cuda run failed at pos %d n %d\n", pos, n); rc = -1; break; }
        if (cs && run_chain(CPU, cs, ncs, xc, n, pos, lc, 0, no)) { printf("  cpu run failed at pos %d\n", pos); rc = -1; break; }
        if (no && cs) compare(st, lc, lg, n, nv);
        if (no && all) memcpy(all + (size_t)pos * nv, lg, (size_t)n * nv * 4);
        pos += n;
    }
    free(xg); free(xc); free(lg); free(lc);
    return rc;
}

/* the tolerance of a comparison with the CPU on the dequantized F32 weights: 5e-3 (float
 * rounding), or 5e-2 where a matrix of the model has a type whose CUDA kernels quantize
 * the activations to Q8_1 (csrc/cuda/mmq.cuh: Q4_0..Q8_0, Q2_K..Q6_K; their error
 * against a double reference of the same Q8_1 product is tools/gpu/mmq_check's, < 1e-5
 * of sum |w x|): the rounding of the activations moves these random models' logits by
 * 2-3% of the largest (the CPU's own Q8 run is as far from its F32 run) */
static double f32_tol(const model *m) {
    for (int i = 0; i < m->nw; i++)
        switch (m->w[i].type) {
        case T_Q4_0: case T_Q4_1: case T_Q5_0: case T_Q5_1: case T_Q8_0: case T_Q2_K: case T_Q3_K: case T_Q4_K:
        case T_Q5_K: case T_Q6_K:
            return 5e-2;
        default: break;
        }
    return 5e-3;
}

static void report(const char *name, const stats *st, double tol, int need_top1) {
    const int ok = st->rows > 0 && st->max_rel <= tol && (!need_top1 || st->top1 + st->ties == st->rows);
    printf("  %-34s rows %4lld  max rel err %.2e  top-1 %lld/%lld (+%lld near-ties)  %s\n", name, st->rows,
           st->max_rel, st->top1, st->rows, st->ties, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

/* ---- configs ---- */
static llm_config base_cfg(void) {
    llm_config c;
    memset(&c, 0, sizeof c);
    c.arch = LLM_ARCH_LLAMA; c.n_layer = 3; c.n_embd = 256; c.n_ff = 512; c.n_head = 4; c.n_head_kv = 2;
    c.head_dim = 64; c.n_vocab = 512; c.n_rot = 64; c.rope_neox = 0; c.rms_eps = 1e-5f;
    c.rope_base = 10000.0f; c.rope_scale = 1.0f; c.rope_base_swa = 10000.0f; c.rope_scale_swa = 1.0f;
    c.swa_pattern = 1; c.attn_scale = 1.0f / 8.0f; c.q_prescale = 1.0f; c.embd_scale = 1.0f;
    return c;
}

/* head_dim 36: rows not 16-byte aligned (the attention's 4-byte path) */
static llm_config hd36_cfg(void) {
    llm_config c = base_cfg();
    c.head_dim = 36; c.n_rot = 36; c.n_embd = 160; c.attn_scale = 1.0f / 6.0f;
    return c;
}

typedef struct { const char *name; llm_config c; shape_opts o; } arch_case;

static int n_arch_cases(arch_case *a) {
    int k = 0;
    llm_config c = base_cfg();
    a[k++] = (arch_case){"llama (NORM rope, rope_freqs)", c, {0, 0, 0, 0, 0, 1}};
    c = base_cfg(); c.arch = LLM_ARCH_QWEN2; c.rope_neox = 1; c.n_head = 8; c.n_head_kv = 2; c.head_dim = 32;
    c.n_rot = 32; c.attn_scale = 1.0f / sqrtf(32.0f); c.rope_base = 1000000.0f;
    a[k++] = (arch_case){"qwen2 (NEOX, biases, GQA 4)", c, {0, 0, 1, 0, 0, 0}};
    c = base_cfg(); c.arch = LLM_ARCH_GEMMA3; c.rope_neox = 1; c.n_head = 2; c.n_head_kv = 1; c.head_dim = 256;
    c.n_rot = 256; c.attn_scale = 1.0f; c.q_prescale = 1.0f / 16.0f; c.ffn_gelu = 1; c.sliding_window = 20;
    c.swa_pattern = 3; c.rope_base = 1000000.0f; c.rope_scale = 0.125f; c.logit_softcap = 30.0f; c.rms_eps = 1e-6f;
    a[k++] = (arch_case){"gemma3 (qk/post norms, GELU, SWA 20)", c, {0, 0, 0, 1, 1, 0}};
    c = base_cfg(); c.arch = LLM_ARCH_PHI3; c.rope_neox = 1; c.n_rot = 32; c.n_head_kv = 4;
    a[k++] = (arch_case){"phi3 (fused QKV/up, n_rot 32/64)", c, {1, 1, 0, 0, 0, 0}};
    return k;
}

static const step SEQ[] = {{32, 1}, {32, 1}, {6, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 0}, {1, 0}, {1, 1}, {5, 1},
                           {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1},
                           {40, 1}, {1, 1}, {1, 1}, {2, 1}, {1, 1}};
#define NSEQ ((int)(sizeof SEQ / sizeof SEQ[0]))

static int seq_positions(void) {
    int p = 0;
    for (int i = 0; i < NSEQ; i++) p += SEQ[i].n;
    return p;
}

/* exact and native comparisons of one model on one span each */
static void check_model(const char *label, const model *m, int exact) {
    cuda_actq = !exact;
    void *g = make_span(CUDA, m, 256, 64, 0, m->c.n_layer, 0);
    cuda_actq = 0;
    void *c = make_span(CPU, m, 256, 64, 0, m->c.n_layer, exact);
    if (g && c) {
        stats st = {0};
        if (run_seq(m, &g, 1, &c, 1, SEQ, NSEQ, &st, NULL)) failures++;
        else report(label, &st, exact ? f32_tol(m) : 1e9, exact);
    }
    if (g) CUDA->free(g);
    if (c) CPU->free(c);
}

/* the logits of every position: batched vs one token at a time (graphs on / off) */
/* g1's logits over steps s1 against g2's over s2 (the same positions cut differently):
 * how many differ in any bit, or -1 when a run failed */
static long long bit_diff(const model *m, void *g1, const step *s1, int n1, void *g2, const step *s2, int n2) {
    const long long cnt = (long long)seq_positions() * m->c.n_vocab;
    float *a = malloc((size_t)cnt * 4), *b = malloc((size_t)cnt * 4);
    stats st = {0};
    long long diff = -1;
    if (!run_seq(m, &g1, 1, NULL, 0, s1, n1, &st, a) && !run_seq(m, &g2, 1, NULL, 0, s2, n2, &st, b)) {
        diff = 0;
        for (long long i = 0; i < cnt; i++) diff += memcmp(&a[i], &b[i], 4) != 0;
    }
    free(a); free(b);
    return diff;
}

static void diff_report(const char *what, long long diff) {
    printf("  %-36.36s %d positions: %lld logits differ  %s\n", what, seq_positions(), diff, diff == 0 ? "ok" : "FAIL");
    if (diff != 0) failures++;
}

/* a position's logits alone (decode, graphs on and off) equal those inside a batch */
static void check_invariance(const model *m) {
    const int np = seq_positions();
    step one[400], batched[NSEQ];
    for (int i = 0; i < np; i++) one[i] = (step){1, 1};
    for (int i = 0; i < NSEQ; i++) batched[i] = (step){SEQ[i].n, 1};
    for (int graphs = 1; graphs >= 0; graphs--) {
        setenv("LLMLITE_CUDA_GRAPH", graphs ? "1" : "0", 1);
        void *g1 = make_span(CUDA, m, 256, 64, 0, m->c.n_layer, 0);
        void *g2 = make_span(CUDA, m, 256, 64, 0, m->c.n_layer, 0);
        unsetenv("LLMLITE_CUDA_GRAPH");
        if (g1 && g2)
            diff_report(graphs ? "batch invariance, graphs on" : "batch invariance, graphs off",
                        bit_diff(m, g1, batched, NSEQ, g2, one, np));
        if (g1) CUDA->free(g1);
        if (g2) CUDA->free(g2);
    }
}

/* the fused launches (one matmul for Q/K/V, gate+up+activation, attention with its
 * combine) against LLMLITE_CUDA_FUSE=0: the same bits */
static void check_unfused(const char *label, const model *m) {
    void *g1 = make_span(CUDA, m, 256, 64, 0, m->c.n_layer, 0);
    setenv("LLMLITE_CUDA_FUSE", "0", 1);
    void *g2 = make_span(CUDA, m, 256, 64, 0, m->c.n_layer, 0);
    unsetenv("LLMLITE_CUDA_FUSE");
    if (g1 && g2) {
        step batched[NSEQ];
        for (int i = 0; i < NSEQ; i++) batched[i] = (step){SEQ[i].n, 1};
        char what[64];
        snprintf(what, sizeof what, "fused = unfused, %s", label);
        diff_report(what, bit_diff(m, g1, batched, NSEQ, g2, batched, NSEQ));
    }
    if (g1) CUDA->free(g1);
    if (g2) CUDA->free(g2);
}

static void check_split(const model *m) {
    void *g[2] = {make_span(CUDA, m, 256, 64, 0, 2, 0), make_span(CUDA, m, 256, 64, 2, m->c.n_layer, 0)};
    void *c = make_span(CPU, m, 256, 64, 0, m->c.n_layer, 1);
    if (g[0] && g[1] && c) {
        stats st = {0};
        if (run_seq(m, g, 2, &c, 1, SEQ, NSEQ, &st, NULL)) failures++;
        else report("split [0,2) + [2,3) vs one CPU span", &st, f32_tol(m), 1);
        /* what the planner counts (the table's compute_bytes + weights + KV) is what each span took */
        const int lo[2] = {0, 2}, hi[2] = {2, m->c.n_layer};
        for (int k = 0; k < 2; k++) {
            const int head = hi[k] == m->c.n_layer;
            long long want = CUDA->compute_bytes(&m->c, 256, 64, head);
            want += 2LL * 2 * (hi[k] - lo[k]) * m->c.n_head_kv * 256 * m->c.head_dim;    /* F16 K and V */
            for (int i = 0; i < m->nw; i++)
                if (given(&m->w[i], lo[k], hi[k], head))
                    want += slice_bytes(llm_row_bytes(m->w[i].type, m->w[i].ne0) * m->w[i].ne1);
            const long long got = CUDA->mem_bytes(g[k]);
            printf("  mem_bytes: cuda span [%d,%d) %lld B, the plan's figure %lld B  %s\n", lo[k], hi[k], got, want,
                   got == want ? "ok" : "FAIL");
            if (got != want) failures++;
        }
    }
    for (int i = 0; i < 2; i++) if (g[i]) CUDA->free(g[i]);
    if (c) CPU->free(c);
}

static void check_long(const model *m) {
    void *g = make_span(CUDA, m, 1100, 256, 0, m->c.n_layer, 0);
    void *c = make_span(CPU, m, 1100, 256, 0, m->c.n_layer, 1);
    if (g && c) {
        step s[32];
        int k = 0;
        for (int i = 0; i < 3; i++) s[k++] = (step){256, 0};
        s[k++] = (step){232, 1};
        for (int i = 0; i < 20; i++) s[k++] = (step){1, 1};
        stats st = {0};
        if (run_seq(m, &g, 1, &c, 1, s, k, &st, NULL)) failures++;
        else report("long: 1020 positions, n_batch 256", &st, f32_tol(m), 1);
    }
    if (g) CUDA->free(g);
    if (c) CPU->free(c);
}

static void check_errors(const model *m) {
    char err[256] = "";
    int ok = 1;
    void *s = CUDA->create(&m->c, 64, 8, 0, m->c.n_layer, 1, 0, err, sizeof err);
    if (!s) { printf("  create failed: %s\n", err); failures++; return; }
    float x[256 * 8] = {0}, lg[512];
    ok &= CUDA->run(s, x, 1, 0, lg, 0, 1) == -1;                          /* no weights yet */
    ok &= CUDA->set_tensor(s, 0, LLM_T_ATTN_NORM, T_F16, m->w[0].f, 256, 1) == -1;   /* norms must be F32 */
    ok &= CUDA->set_tensor(s, 0, LLM_T_ATTN_Q, T_Q4_K, m->w[0].f, 100, 256) == -1;   /* bad shape */
    ok &= CUDA->set_tensor(s, 7, LLM_T_ATTN_Q, T_F32, m->w[0].f, 256, 256) == -1;    /* layer out of range */
    CUDA->free(s);
    s = make_span(CUDA, m, 64, 8, 0, m->c.n_layer, 0);
    if (s) {
        ok &= CUDA->run(s, x, 9, 0, lg, 0, 1) == -1;                      /* n > n_batch */
        ok &= CUDA->run(s, x, 1, 64, lg, 0, 1) == -1;                     /* past n_ctx */
        ok &= CUDA->run(s, x, 2, 0, lg, 1, 2) == -1;                      /* rows out of range */
        ok &= CUDA->run(s, x, 1, 63, lg, 0, 1) == 0;                      /* the last position */
        /* half the weights past the reservation, in their own allocations: the same logits */
        reserve_halves = 1;
        void *h = make_span(CUDA, m, 64, 8, 0, m->c.n_layer, 0);
        reserve_halves = 2;
        if (h) {
            static float lg2[512];
            fill_x(x, m->c.n_embd, 0, 1);
            ok &= CUDA->run(s, x, 1, 0, lg, 0, 1) == 0;
            fill_x(x, m->c.n_embd, 0, 1);
            ok &= CUDA->run(h, x, 1, 0, lg2, 0, 1) == 0;
            ok &= memcmp(lg, lg2, (size_t)m->c.n_vocab * sizeof(float)) == 0 && m->c.n_vocab <= 512;
            CUDA->free(h);
        } else ok = 0;
        CUDA->free(s);
    }
    printf("  argument checks                                                      %s\n", ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

/* ---- timings ---- */
static void bench_shape(const char *name, llm_config c, int t, int th, int n_ctx) {
    model *m = calloc(1, sizeof *m);
    const shape_opts o = {0};
    /* every layer gets the same weights: build one layer (after the 2 head tensors),
     * then entries for layers 1.. that share its buffers */
    const int L = c.n_layer;
    c.n_layer = 1;
    double t0 = now();
    build(m, &c, t, th, &o, 5);
    c.n_layer = L;
    m->c = c;
    const int own = m->nw, per_layer = m->nw - 2;
    for (int il = 1; il < L; il++)
        for (int i = 0; i < per_layer; i++) {
            m->w[m->nw] = m->w[2 + i];
            m->w[m->nw].layer = il;
            m->nw++;
        }
    printf("  %s: built in %.1f s\n", name, now() - t0);
    void *s = make_span(CUDA, m, n_ctx, 512, 0, L, 0);
    setenv("LLMLITE_CUDA_GRAPH", "0", 1);
    void *s_ng = make_span(CUDA, m, n_ctx, 512, 0, L, 0);
    unsetenv("LLMLITE_CUDA_GRAPH");
    if (s && s_ng) {
        float *x = calloc((size_t)512 * c.n_embd, 4), *lg = malloc((size_t)c.n_vocab * 4);
        printf("  %s: %d layers, d %d, ff %d, heads %d/%d x %d, vocab %d, %s (head %s), %.0f MiB on the GPU\n", name,
               L, c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.head_dim, c.n_vocab, tname(t), tname(th),
               CUDA->mem_bytes(s) / 1048576.0);
        fill_x(x, c.n_embd, 0, 512);
        t0 = now();
        CUDA->run(s, x, 512, 0, lg, 511, 1);
        const double pf = now() - t0;
        fill_x(x, c.n_embd, 0, 512);
        t0 = now();
        CUDA->run(s_ng, x, 512, 0, lg, 511, 1);
        printf("    prefill 512: %.1f ms (%.0f tok/s); again on a fresh span: %.1f ms\n", pf * 1e3, 512 / pf,
               (now() - t0) * 1e3);
        const int at[2] = {512, n_ctx - 64};
        for (int a = 0; a < 2; a++)
            for (int gr = 1; gr >= 0; gr--) {
                void *sp = gr ? s : s_ng;
                for (int w = 0; w < 3; w++) CUDA->run(sp, x, 1, at[a] + w, lg, 0, 1);     /* warm (and capture) */
                const int reps = 50;
                t0 = now();
                for (int r = 0; r < reps; r++) CUDA->run(sp, x, 1, at[a] + 3 + r, lg, 0, 1);
                const double dt = (now() - t0) / reps;
                printf("    decode at pos %5d, graphs %-3s: %.3f ms/token (%.0f tok/s)\n", at[a], gr ? "on" : "off",
                       dt * 1e3, 1 / dt);
            }
        free(x); free(lg);
    }
    if (s) CUDA->free(s);
    if (s_ng) CUDA->free(s_ng);
    m->nw = own;                     /* the shared entries own nothing */
    free_model(m);
    free(m);
}

/* quick: a few cases only (for compute-sanitizer runs) */
/* stress (a GPU's check of the "last block done" ordering, which no sanitizer sees):
 * rounds x (the fused span against LLMLITE_CUDA_FUSE=0 over the batched sequence, then
 * one-token graph replays against the batched run), on a llama and a gemma3 shape;
 * any differing logit is a race */
static void checks_stress(model *m, int rounds) {
    arch_case ac[8];
    n_arch_cases(ac);
    printf("stress, %d rounds each:\n", rounds);
    const int which[] = {0, 2};
    for (int w = 0; w < 2; w++) {
        const arch_case *a = &ac[which[w]];
        build(m, &a->c, T_Q4_K, T_Q6_K, &a->o, 600 + w);
        const int f0 = failures;
        for (int r = 0; r < rounds && failures == f0; r++) {
            check_unfused(a->name, m);
            check_invariance(m);
        }
        printf("  %-36.36s %s\n", a->name, failures == f0 ? "no difference in any round  ok" : "FAIL");
        free_model(m);
    }
}

/* attention's shapes: GQA groups of 1..16 (16 heads of 256: more than a block holds,
 * split), head_dim 32..256 and 36 (unaligned rows), sliding windows, chunk edges */
static void checks_attn(model *m) {
    arch_case ac[8];
    const int na = n_arch_cases(ac);
    printf("attention:\n");
    for (int a = 0; a < na; a++) {
        build(m, &ac[a].c, T_Q8_0, T_Q8_0, &ac[a].o, 700 + a);
        check_model(ac[a].name, m, 1);
        if (a == 1 || a == 2) {
            check_invariance(m);
            check_unfused(ac[a].name, m);
        }
        if (a == 2) check_long(m);
        free_model(m);
    }
    llm_config c = hd36_cfg();
    const shape_opts o = {0};
    build(m, &c, T_F16, T_Q8_0, &o, 300);
    check_model("head_dim 36 (F16)", m, 1);
    check_invariance(m);
    free_model(m);
    c = base_cfg();
    c.n_head = 16; c.n_head_kv = 1; c.head_dim = 256; c.n_rot = 256; c.attn_scale = 1.0f / 16.0f;
    c.sliding_window = 100; c.swa_pattern = 2;
    build(m, &c, T_Q8_0, T_Q8_0, &o, 310);
    check_model("16 heads of 256 over 1, SWA 100", m, 1);
    check_invariance(m);
    check_unfused("16 heads over 1", m);
    free_model(m);
}

/* is type t's name in the comma-separated list? */
static int listed(const char *list, int t) {
    const char *name = tname(t);
    const size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

/* the exact (or native) check of a llama model whose matrices are all of one type, for
 * each type; quick: two old types and the newest (their kernels the least run); only:
 * the types of this list of names (argument "types NAME,NAME...", "native NAME,...") */
static void checks_types(model *m, int quick, const char *only, int exact) {
    const int types[] = {T_F32, T_F16, T_BF16, T_Q4_0, T_Q4_1, T_Q5_0, T_Q5_1, T_Q8_0,
                         T_Q2_K, T_Q3_K, T_Q4_K, T_Q5_K, T_Q6_K, T_MXFP4, T_NVFP4, T_TQ1_0, T_TQ2_0,
                         T_IQ4_NL, T_IQ4_XS, T_IQ2_XXS, T_IQ2_XS, T_IQ2_S, T_IQ3_XXS, T_IQ3_S, T_IQ1_S, T_IQ1_M};
    const int quick_from = 17;      /* the i-quants */
    arch_case ac[8];
    n_arch_cases(ac);
    printf(exact ? "exact (CPU span on the dequantized weights as F32):\n" : "native (both on the quantized weights):\n");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (quick && types[i] != T_Q4_0 && types[i] != T_Q6_K && (int)i < quick_from) continue;
        if (only && !listed(only, types[i])) continue;
        char label[64];
        snprintf(label, sizeof label, "llama, %s", tname(types[i]));
        build(m, &ac[0].c, types[i], types[i], &ac[0].o, 11 + i);
        check_model(label, m, exact);
        free_model(m);
    }
}

static void checks_all(model *m, int quick) {
    arch_case ac[8];
    const int na = n_arch_cases(ac);
    checks_types(m, quick, NULL, 1);
    for (int a = 0; a < na; a++) {
        if (quick && a != 2) continue;
        build(m, &ac[a].c, T_Q4_K, T_Q6_K, &ac[a].o, 100 + a);
        check_model(ac[a].name, m, 1);
        if (a == 0 || a == 3) check_unfused(a ? "phi3 fused up" : "llama SiLU", m);
        free_model(m);
    }
    {   /* Gemma 3's type mix: Q5_0 Q/K with a Q8_0 V, gate and up of two types */
        arch_case g = ac[2];
        g.o.mixed = 1;
        build(m, &g.c, T_Q5_0, T_Q8_0, &g.o, 150);
        check_model("gemma3 Q5_0 + Q8_0 V/up, layer 1", m, 1);
        check_unfused("gemma3 mixed", m);
        free_model(m);
    }
    {   /* head_dim 36: the attention's unaligned-row path; F16 weights (k = 144) */
        const llm_config c = hd36_cfg();
        const shape_opts o = {0};
        build(m, &c, T_F16, T_Q8_0, &o, 300);
        check_model("head_dim 36 (F16)", m, 1);
        free_model(m);
    }
    {
        printf("native (both on the quantized weights; LLMLITE_CUDA_ACTQ=1: activations quantized as the CPU does):\n");
        for (int a = 0; a < na; a++) {
            if (quick && a != 2) continue;
            const int t = a == 2 ? T_Q8_0 : T_Q4_K;
            char label[96];
            snprintf(label, sizeof label, "%.24s, %s", ac[a].name, tname(t));
            build(m, &ac[a].c, t, T_Q6_K, &ac[a].o, 200 + a);
            check_model(label, m, 0);
            free_model(m);
        }
        build(m, &ac[0].c, T_Q4_1, T_Q4_1, &ac[0].o, 250);     /* SmolLM2's type: Q8_1 activations */
        check_model("llama, Q4_1", m, 0);
        free_model(m);
    }
    printf("structure:\n");
    build(m, &ac[2].c, T_Q5_K, T_Q8_0, &ac[2].o, 400);
    check_invariance(m);
    check_unfused("gemma3 Q5_K", m);
    cuda_actq = 1;
    check_unfused("gemma3 Q5_K, ACTQ", m);
    cuda_actq = 0;
    check_split(m);
    if (!quick) check_long(m);
    free_model(m);
    build(m, &ac[0].c, T_Q8_0, T_Q8_0, &ac[0].o, 500);
    check_errors(m);
    free_model(m);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "./libllmlite_cuda.so";
    const char *what = argc > 2 ? argv[2] : "check";
    CPU = llm_cpu_span_ops();
    if (!strcmp(path, "cpu")) {      /* self-test of this program: the CPU span stands in for the GPU */
        CUDA = CPU;
        printf("self-test: the CPU span in the CUDA span's place\n");
        goto checks;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("cannot load %s: %s\n", path, dlerror()); return 1; }
    const llm_span_ops *(*get)(void) = (const llm_span_ops *(*)(void))dlsym(h, "llmcuda_span_ops");
    info_fn info = (info_fn)dlsym(h, "llmcuda_device_info");
    if (!get || !info) { printf("%s: missing symbols\n", path); return 1; }
    int count = 0;
    long long fb = 0, tb = 0;
    char name[256], err[256];
    if (info(&count, &fb, &tb, name, sizeof name, err, sizeof err)) {
        printf("no GPU, nothing checked: %s\n", err);
        return 0;
    }
    printf("GPU: %s (%d found), %.1f of %.1f GiB free\n", name, count, fb / 1073741824.0, tb / 1073741824.0);
    CUDA = get();
checks:;
    model *m = calloc(1, sizeof *m);

    const int quick = !strcmp(what, "quick");
    if (quick || !strcmp(what, "check") || !strcmp(what, "all")) checks_all(m, quick);
    if (!strcmp(what, "types")) checks_types(m, 0, argc > 3 ? argv[3] : NULL, 1);
    if (!strcmp(what, "native"))     /* default: the integer kernels' types */
        checks_types(m, 0, argc > 3 ? argv[3] : "Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K", 0);
    if (!strcmp(what, "attn")) checks_attn(m);
    if (!strcmp(what, "stress")) checks_stress(m, getenv("STRESS_ROUNDS") ? atoi(getenv("STRESS_ROUNDS")) : 20);
    if (!strcmp(what, "bench") || !strcmp(what, "all")) {
        printf("timings:\n");
        llm_config c = base_cfg();      /* SmolLM2-135M's shape */
        c.n_layer = 30; c.n_embd = 576; c.n_ff = 1536; c.n_head = 9; c.n_head_kv = 3; c.head_dim = 64; c.n_rot = 64;
        c.n_vocab = 49152;
        bench_shape("smollm2-135m shape", c, T_Q8_0, T_Q8_0, 2048);
        c = base_cfg();                 /* Llama-3.2-1B's shape (vocab cut to 32000) */
        c.n_layer = 16; c.n_embd = 2048; c.n_ff = 8192; c.n_head = 32; c.n_head_kv = 8; c.head_dim = 64; c.n_rot = 64;
        c.n_vocab = 32000; c.rope_base = 500000.0f;
        bench_shape("llama-1b shape", c, T_Q4_K, T_Q6_K, 4096);
    }
    free(m);
    printf(failures ? "%d check(s) FAILED\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
