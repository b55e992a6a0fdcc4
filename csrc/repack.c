/* The decode copy of a weight (llm_tensor.x4): its rows in groups of LLM_R4 with
 * the groups' blocks interleaved, block ib of row 4g + r at block 4 (g nb + ib) + r
 * (nb blocks a row), so a 4-row decode kernel (vec_dot_x4) reads one sequential
 * stream (Q5_K: each block's qs in another order of its 16-byte pieces, QS_X4;
 * Q4_K: the 4 blocks of a super-block as one group of the same size, q4_K_group). A
 * group of 4 rows spans the bytes it spans in the file, so an expert's slice of a 3-D
 * tensor has the same offset in both. The copy serves one column (decode, and a
 * prompt's last position through the head); batches keep the file's layout, and its
 * bits are those of vec_dot either way.
 *
 * Measured (csrc/README, kernel table): the 4 rows' own streams lost to vec_dot on
 * weights streamed from memory, and prefetching them did not help; interleaved they
 * win. llama.cpp makes the same kind of copy at load (its CPU_REPACK buffer). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "model.h"

size_t llm_x4_size(const llm_tensor *t) {
    return (size_t)llm_row_bytes(t->type, t->ne0) * (size_t)t->ne1;
}

/* its place in the arena: each copy starts on a page */
static size_t x4_slot(const llm_tensor *t) { return (llm_x4_size(t) + 4095) / 4096 * 4096; }

/* 1: this table has the kernels that read w's copy (one column and row tiles; gemv:
 * in llama.cpp's repacked-gemv order) */
static int x4_kernels(int type, int gemv) {
    const llm_kernel_table *kt = llm_kernels();
    if (type < 0 || type >= T_COUNT) return 0;
    if (type == T_Q4_K && !kt->q8_K_x4) return 0;   /* its one-column kernels' activations */
    if (gemv) return type == T_Q4_K && kt->q4_K_gemv_x4 && kt->q4_K_gemv_r16x4;
    return kt->vec_dot_x4[type] && kt->vec_dot_r16x4[type];
}

int llm_x4_ok(const llm_tensor *w, int gemv) { return w->x4 && x4_kernels(w->type, gemv); }

int llm_repack_takes(int type) { return x4_kernels(type, 0) && (type != T_Q4_K || x4_kernels(type, 1)); }

static int x4_wanted(const llm_tensor *t) {
    return t->data && !t->x4 && t->ne1 % LLM_R4 == 0 && t->ne0 % QKK == 0 && llm_repack_takes(t->type);
}

/* the file's pages of n bytes at p out of this process's memory (read again from the
 * page cache if some kernel without a copy reads them): the whole pages only */
static void drop_pages(const void *p, size_t n) {
    const uintptr_t pg = 4096, a = (uintptr_t)p, e = a + n;
    const uintptr_t a0 = (a + pg - 1) & ~(pg - 1), e0 = e & ~(pg - 1);
    if (e0 > a0) madvise((void *)a0, e0 - a0, MADV_DONTNEED);
}

typedef struct {
    const char *src;
    char *dst;
    long long groups;
    size_t bb;       /* bytes of a block */
    long long nb;    /* blocks of a row */
    size_t qs;       /* Q5_K: the offset of qs in a block (its pieces reordered), else 0 */
    void (*q4k)(char *, const char *, size_t);   /* Q4_K: q4_K_group (or the table's), else NULL */
    int populate;    /* map each thread's share of both sides in one call first (x4_make) */
} x4_job;

/* Q5_K: the 8 16-byte pieces of qs stored in the order 0 2 4 6 1 3 5 7, so that each
 * of the two 64-byte loads of the 4-row kernel (tiles_avx512.c) holds in 128-bit lane
 * k the codes of sub-blocks 2k, 2k+1 (piece c holds those of c / 2): per row one
 * scale vector and no lane shuffle (the 16-row tiles read the copy through the same
 * order, qs_x4_piece) */
static const int QS_X4[8] = {0, 2, 4, 6, 1, 3, 5, 7};

static void x4_block(char *d, const char *s, const x4_job *j) {
    if (!j->qs) {
        memcpy(d, s, j->bb);
        return;
    }
    memcpy(d, s, j->qs);
    for (int i = 0; i < 8; i++) memcpy(d + j->qs + 16 * i, s + j->qs + 16 * QS_X4[i], 16);
}

/* the pages of [p, p+n) mapped in one call (MADV_POPULATE_*: Linux 5.14) instead of one
 * fault per 4 KiB page during the copy; an older kernel refuses it, and the copy then
 * faults them in as before */
static void populate(const void *p, size_t n, int write) {
#ifdef MADV_POPULATE_WRITE
    const uintptr_t pg = 4096, a = (uintptr_t)p & ~(pg - 1);
    madvise((void *)a, (uintptr_t)p + n - a, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
#else
    (void)p; (void)n; (void)write;
#endif
}

/* Q4_K: the super-block's 4 blocks (row r's at s + r rb) as one group of 576 bytes,
 * laid out for its 4-row kernel (tiles_avx512.c), which then needs no lane shuffle of
 * weights, scales or sums:
 *   0: d of rows 0..3, then dmin of rows 0..3 (f16: one vcvtph2ps);
 *  16: A[8r + s] = sc | (m >> 4) << 6, sub-block s of row r (6-bit scale sc, min m);
 *  48: the mins' low 4 bits, m of index i = 8r + s in byte i % 16, nibble i / 16;
 *  64: qs in 8 chunks of 64 bytes: chunk j holds in dword 4r + k row r's qs dword
 *      8k + j (the codes of sub-blocks 2k (low nibbles) and 2k+1 (high), 4 each), so
 *      one load holds the same 4 positions of every (row, pair of sub-blocks) */
static void q4_K_group(char *o, const char *s, size_t rb) {
    uint8_t sc[32], m[32];
    for (int r = 0; r < LLM_R4; r++) {
        const block_q4_K *b = (const block_q4_K *)(s + r * rb);
        memcpy(o + 2 * r, &b->d, 2);
        memcpy(o + 8 + 2 * r, &b->dmin, 2);
        const uint8_t *q = b->scales;   /* llama.cpp's get_scale_min_k4 */
        for (int j = 0; j < 4; j++) {
            sc[8 * r + j] = q[j] & 63;
            m[8 * r + j] = q[j + 4] & 63;
            sc[8 * r + 4 + j] = (uint8_t)((q[j + 8] & 0xF) | (q[j] >> 6) << 4);
            m[8 * r + 4 + j] = (uint8_t)((q[j + 8] >> 4) | (q[j + 4] >> 6) << 4);
        }
        for (int j = 0; j < 8; j++)
            for (int k = 0; k < 4; k++) memcpy(o + 64 + 64 * j + 16 * r + 4 * k, b->qs + 32 * k + 4 * j, 4);
    }
    for (int i = 0; i < 32; i++) o[16 + i] = (char)(sc[i] | (m[i] >> 4) << 6);
    for (int i = 0; i < 16; i++) o[48 + i] = (char)((m[i] & 15) | (m[i + 16] & 15) << 4);
}

static void x4_task(int ith, int nth, void *p) {
    const x4_job *j = p;
    const size_t rb = j->bb * (size_t)j->nb;
    const long long g0 = j->groups * ith / nth, g1 = j->groups * (ith + 1) / nth;   /* this thread's share */
    if (j->populate) {
        const size_t off = (size_t)g0 * LLM_R4 * rb, n = (size_t)(g1 - g0) * LLM_R4 * rb;
        populate(j->src + off, n, 0);
        populate(j->dst + off, n, 1);
    }
    for (long long g = g0; g < g1; g++) {
        const char *s = j->src + (size_t)g * LLM_R4 * rb;
        char *d = j->dst + (size_t)g * LLM_R4 * rb;
        for (long long ib = 0; ib < j->nb; ib++) {
            if (j->q4k) {
                j->q4k(d, s + (size_t)ib * j->bb, rb);
                d += LLM_R4 * j->bb;
                continue;
            }
            for (int r = 0; r < LLM_R4; r++, d += j->bb) x4_block(d, s + r * rb + (size_t)ib * j->bb, j);
        }
    }
}

static int repack_x4(int type, const void *w, void *out, long long rows, long long k, int pop) {
    /* the super-block types only (256 elements a block) */
    if (!llm_type_supported(type) || llm_type_block_elems(type) != QKK || rows < 0 || rows % LLM_R4 || k <= 0 ||
        k % QKK)
        return -1;
    const size_t qs = type == T_Q5_K ? offsetof(block_q5_K, qs) : 0;
    /* Q4_K's groups through the table's writer where it has one: with the one here the
     * 8 B shape's load took 2.00-2.10 s against 1.28-1.37 on the former layout's
     * memcpy; with AVX-512's, 1.33-1.37 against 1.29-1.50 (4 alternated runs each) */
    void (*q4k)(char *, const char *, size_t) = llm_kernels()->q4_K_group ? llm_kernels()->q4_K_group : q4_K_group;
    x4_job j = {w, out, rows / LLM_R4, (size_t)llm_type_block_bytes(type), k / QKK, qs, type == T_Q4_K ? q4k : NULL, pop};
    llm_parallel_all(x4_task, &j);   /* static shares */
    return 0;
}

int llm_repack_x4(int type, const void *w, void *out, long long rows, long long k) {
    return repack_x4(type, w, out, rows, k, 0);
}

/* t's copy into d (llm_x4_size(t) bytes of the model's arena). In 4 KiB pages: asked for
 * transparent huge pages here, the load took 2 s more a GB on this machine (a virtual
 * machine whose host backs each fresh 2 MiB block on its first touch), so huge_pages.c
 * moves the copies into them after the load instead. An expert tensor is copied whole
 * at load too: copied at each expert's first use instead (so that resident memory
 * followed the experts routed to), the first reply's 128 tokens ran at 82-85 t/s
 * against 94-107 on the MoE shape, the page faults and copies landing in the decode; a
 * model whose copies do not fit in memory gets none (model.py) */
static void x4_make(llm_tensor *t, char *d, int drop) {
    const size_t n = llm_x4_size(t);
    /* in slices of about 16 MiB, each slice's file pages let go once copied, so the
     * process never holds a large weight (a tied 250k-token head) twice */
    const size_t group = n / (size_t)(t->ne1 / LLM_R4);
    const long long per = group >= (16u << 20) ? 1 : (long long)((16u << 20) / group);
    for (long long g = 0; g < t->ne1 / LLM_R4; g += per) {
        const long long ng = g + per <= t->ne1 / LLM_R4 ? per : t->ne1 / LLM_R4 - g;
        const size_t off = (size_t)g * group;
        if (repack_x4(t->type, (const char *)t->data + off, d + off, ng * LLM_R4, t->ne0, 1))
            return;   /* not a layout x4_wanted lets through: no copy, the file is read */
        if (drop) drop_pages((const char *)t->data + off, (size_t)ng * group);
    }
    t->x4 = d;
}

/* the matmul weights each layer this model runs on the CPU holds, and the head; every
 * one is read through llm_mm / llm_mm_multi (forward.c) or moe.c, which take the copy
 * (gemma4's fused gate_up experts are not: moe.c reads them from the file) */
static const int X4_SLOTS[] = {LLM_T_ATTN_Q, LLM_T_ATTN_K, LLM_T_ATTN_V, LLM_T_ATTN_QKV, LLM_T_ATTN_OUT,
                               LLM_T_FFN_GATE, LLM_T_FFN_UP, LLM_T_FFN_DOWN, LLM_T_FFN_GATE_EXPS,
                               LLM_T_FFN_UP_EXPS, LLM_T_FFN_DOWN_EXPS, LLM_T_FFN_GATE_SHEXP, LLM_T_FFN_UP_SHEXP,
                               LLM_T_FFN_DOWN_SHEXP, LLM_T_ATTN_GATE, LLM_T_SSM_BETA, LLM_T_SSM_ALPHA,
                               LLM_T_SSM_OUT, LLM_T_PLE_INP_GATE, LLM_T_PLE_PROJ, LLM_T_SHORTCONV_IN,
                               LLM_T_SHORTCONV_OUT};
enum { N_X4_SLOTS = (int)(sizeof X4_SLOTS / sizeof X4_SLOTS[0]) };

static int is_expert_slot(int slot) {
    return slot == LLM_T_FFN_GATE_EXPS || slot == LLM_T_FFN_UP_EXPS || slot == LLM_T_FFN_DOWN_EXPS;
}

int llm_repack_slot(int slot) {
    for (int i = 0; i < N_X4_SLOTS; i++)
        if (X4_SLOTS[i] == slot) return is_expert_slot(slot) ? 2 : 1;
    return 0;
}

/* the i-th weight to copy, or NULL past the last; *n_expert: its expert count (0: not
 * an expert tensor) */
static llm_tensor *x4_next(llm_model *m, int i, int *n_expert) {
    const int ns = N_X4_SLOTS;
    const int nl = (m->l1 - m->l0) * ns;
    *n_expert = 0;
    if (i < nl) {
        const int slot = X4_SLOTS[i % ns];
        if (is_expert_slot(slot)) *n_expert = m->c.n_expert;
        return &m->layers[(long long)(m->l0 + i / ns) * LLM_T_LAYER_COUNT + slot];
    }
    if (i == nl && m->head) return m->g[LLM_G_OUTPUT].data ? &m->g[LLM_G_OUTPUT] : &m->g[LLM_G_TOKEN_EMBD];
    return NULL;
}

/* whether x4_next's t (of ne experts) gets a copy: an expert's slice holds whole groups */
static int x4_gets(const llm_tensor *t, int ne) {
    return x4_wanted(t) && !(ne > 0 && (t->ne1 % ne || (t->ne1 / ne) % LLM_R4));
}

/* the arena's bytes: the copies' slots */
static size_t arena_bytes(llm_model *m) {
    size_t total = 0;
    llm_tensor *t;
    int ne;
    for (int i = 0; (t = x4_next(m, i, &ne)); i++)
        if (x4_gets(t, ne)) total += x4_slot(t);
    return (total + LLM_HUGE_PAGE - 1) / LLM_HUGE_PAGE * LLM_HUGE_PAGE;   /* whole 2 MiB pages (the tail unused) */
}

/* One arena holds every copy, starting on a 2 MiB boundary, so that huge_pages.c can
 * move all of it into 2 MiB pages (copies allocated one by one left a 1.3 MB weight
 * and the last part of every other in 4 KiB pages). */
long long llm_model_repack(llm_model *m, int drop) {
    if (m->x4_arena) return 0;   /* made once */
    const size_t n = arena_bytes(m), huge = LLM_HUGE_PAGE;
    if (!n) return 0;
    char *raw = mmap(NULL, n + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return -1;
    char *a = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    if (a > raw) munmap(raw, (size_t)(a - raw));
    if (raw + huge > a) munmap(a + n, (size_t)(raw + huge - a));
    m->x4_arena = a;
    m->x4_arena_bytes = n;
    long long bytes = 0;
    size_t off = 0;
    llm_tensor *t;
    int ne;
    for (int i = 0; (t = x4_next(m, i, &ne)); i++) {
        if (!x4_gets(t, ne)) continue;
        /* a tied head's pages too: the embedding lookup still reads the file, but only
         * the rows of the tokens a prompt has, which fault back in one page each */
        x4_make(t, a + off, drop);
        off += x4_slot(t);
        bytes += (long long)llm_x4_size(t);
    }
    return bytes;
}

long long llm_model_repack_bytes(const llm_model *m) {
    long long bytes = 0;
    const llm_tensor *t;
    int ne;
    for (int i = 0; (t = x4_next((llm_model *)m, i, &ne)); i++)
        if (t->x4) bytes += (long long)llm_x4_size(t);
    return bytes;
}

const llm_tensor *llm_x4_tensor(llm_model *m, int i) {
    int ne;
    return m->layers ? x4_next(m, i, &ne) : NULL;
}

void llm_model_repack_free(llm_model *m) {
    char *huge = llm_huge_stop(m);   /* before any pages go */
    llm_tensor *t;
    int ne;
    for (int i = 0; m->layers && (t = x4_next(m, i, &ne)); i++) t->x4 = NULL;
    if (m->x4_arena) munmap(m->x4_arena, m->x4_arena_bytes);
    if (huge) munmap(huge, m->x4_arena_bytes);
    m->x4_arena = NULL;
    m->x4_arena_bytes = 0;
}
