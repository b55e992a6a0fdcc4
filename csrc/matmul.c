/* y = W x for every weight type: activations converted once to the paired type,
 * rows split across the thread pool. Several columns go through the multi-column
 * kernel (the weight row decoded once for up to LLM_NC_MAX columns), whose result
 * for each column is bit-identical to the one-column kernel's, so results are
 * batch invariant (and independent of the thread count and tiling). */
#include <stdatomic.h>
#include <limits.h>
#include <stdlib.h>
#include "internal.h"

#define ROW_TILE LLM_R16   /* vec_dot_r16 takes one whole tile */

typedef struct { void *p; size_t size; } scratch_buf;
static scratch_buf scratch, scratch_w;

static void *get_scratch(scratch_buf *b, size_t n) {
    if (n > b->size) {
        free(b->p);
        b->p = aligned_alloc(64, (n + 63) / 64 * 64);
        b->size = b->p ? n : 0;
    }
    return b->p;
}

typedef struct {
    atomic_llong next;           /* the next column to take */
    int at;
    const float *X;
    void *Xq;
    long long k, ncols, xq_stride;
    char *Xw;                    /* non-NULL: also the wide layout (vec_dot_ncw) */
} quant_job;

/* llm_quantize_act, through the table's Q8_K quantizer where it has one */
static void quant_act(int at, const float *x, void *dst, long long k) {
    const llm_kernel_table *kt = llm_kernels();
    if (at == T_Q8_K && kt->quant_q8_K) kt->quant_q8_K(x, dst, k);
    else llm_quantize_act(at, x, dst, k);
}

static void quant_task(int ith, int nth, void *p) {
    (void)ith; (void)nth;
    quant_job *j = p;
    for (long long c; (c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->ncols;) {
        char *xq = (char *)j->Xq + c * j->xq_stride;
        quant_act(j->at, j->X + c * j->k, xq, j->k);
        if (!j->Xw) continue;
        const long long nb = j->k / QK;
        char *w = j->Xw + c * LLM_WIDE_BYTES(j->at, j->k);
        float *d = (float *)(w + nb * QK);
        if (j->at == T_Q8_1) {
            const block_q8_1 *b = (const block_q8_1 *)xq;
            for (long long i = 0; i < nb; i++) {
                memcpy(w + i * QK, b[i].qs, QK);
                d[i] = llm_f16_to_f32(b[i].d);
                d[nb + i] = llm_f16_to_f32(b[i].s);
            }
            continue;
        }
        const block_q8_0 *b = (const block_q8_0 *)xq;
        const int xu = llm_kernels()->wide_xu;
        for (long long i = 0; i < nb; i++) {
            if (xu)
                for (int e = 0; e < QK; e++) w[i * QK + e] = (char)((uint8_t)b[i].qs[e] ^ 0x80u);
            else
                memcpy(w + i * QK, b[i].qs, QK);
            d[i] = llm_f16_to_f32(b[i].d);
        }
    }
}

/* Row tiles for several columns: each thread takes the tiles of its own
 * contiguous share in order (a sequential stream the prefetcher follows: tiles
 * dealt out alternately ran 2x slower on weights streamed from memory), then
 * helps the others from the front of what they have left, so a slower thread
 * does less. A tile's results do not depend on which thread computes it. */
#define SCHED_SLOTS 64
typedef struct { _Alignas(64) atomic_llong next; long long end; } tile_slot;
typedef struct { tile_slot s[SCHED_SLOTS]; int n; } tile_sched;

static void sched_init(tile_sched *t, long long ntiles) {
    int n = llm_get_threads();
    t->n = n < 1 ? 1 : n > SCHED_SLOTS ? SCHED_SLOTS : n;
    for (int i = 0; i < t->n; i++) {
        atomic_init(&t->s[i].next, ntiles * i / t->n);
        t->s[i].end = ntiles * (i + 1) / t->n;
    }
}

/* the next tile for thread ith, or -1 when none is left */
static long long sched_take(tile_sched *t, int ith) {
    for (int k = 0; k < t->n; k++) {
        tile_slot *sl = &t->s[(ith + k) % t->n];
        if (atomic_load_explicit(&sl->next, memory_order_relaxed) >= sl->end) continue;
        const long long v = atomic_fetch_add_explicit(&sl->next, 1, memory_order_relaxed);
        if (v < sl->end) return v;
    }
    return -1;
}

typedef void (*dot_nc2_fn)(long long, float *, long long, const void *, long long, const void *, long long, int);
typedef struct {
    llm_vec_dot_fn dot;
    llm_vec_dot_nc_fn dot_nc;
    dot_nc2_fn dot_nc2;          /* two rows at once (wide layout only), or NULL */
    const char *W;
    long long rows, k, ncols;
    size_t w_stride, xq_stride;
    const char *Xq;
    float *Y;
    tile_sched *sched;           /* several columns: the row tiles still to take */
    llm_vec_dot_r16_fn dot_r16;  /* a whole row tile against every column at once, or NULL */
    void (*dot_r4)(long long, float *, const void *, long long, const void *);  /* one column: LLM_R4 rows at once, or NULL */
    void (*xprep)(long long, void *);   /* dot_r4's activations from the quantized ones, in place (kt->q8_K_x4), or NULL */
} mm_job;

/* one row tile (ROW_TILE rows) against every column */
static void mm_tile(const mm_job *j, long long tile) {
    const long long rt = tile * ROW_TILE;
    const long long re = rt + ROW_TILE < j->rows ? rt + ROW_TILE : j->rows;
    if (j->ncols == 1 && !j->dot_r16) {   /* decode: groups of LLM_R4 rows, the last few one by one */
        long long r = rt;
        if (j->dot_r4)
            for (; r + LLM_R4 <= re; r += LLM_R4)
                j->dot_r4(j->k, j->Y + r, j->W + r * j->w_stride, (long long)j->w_stride, j->Xq);
        for (; r < re; r++)
            j->dot(j->k, j->Y + r, j->W + r * j->w_stride, j->Xq);
        return;
    }
    if (j->dot_r16) {
        j->dot_r16(j->k, j->Y + rt, j->rows, j->W + rt * j->w_stride, (long long)j->w_stride, (int)(re - rt), j->Xq,
                   (long long)j->xq_stride, (int)j->ncols);
        return;
    }
    if (j->dot_nc2) {   /* row pairs over LLM_NC2_MAX columns, a last odd row one-row */
        for (long long c = 0; c < j->ncols; c += LLM_NC2_MAX) {
            int nc = j->ncols - c < LLM_NC2_MAX ? (int)(j->ncols - c) : LLM_NC2_MAX;
            const char *xq = j->Xq + c * j->xq_stride;
            float *y = j->Y + c * j->rows;
            long long r = rt;
            for (; r + 2 <= re; r += 2)
                j->dot_nc2(j->k, y + r, j->rows, j->W + r * j->w_stride, (long long)j->w_stride, xq,
                           (long long)j->xq_stride, nc);
            for (; r < re; r++)
                for (int c0 = 0; c0 < nc; c0 += LLM_NC_MAX)
                    j->dot_nc(j->k, y + r + c0 * j->rows, j->rows, j->W + r * j->w_stride, xq + c0 * j->xq_stride,
                              (long long)j->xq_stride, nc - c0 < LLM_NC_MAX ? nc - c0 : LLM_NC_MAX);
        }
        return;
    }
    if (j->dot_nc) {
        for (long long c = 0; c < j->ncols; c += LLM_NC_MAX) {
            int nc = j->ncols - c < LLM_NC_MAX ? (int)(j->ncols - c) : LLM_NC_MAX;
            const char *xq = j->Xq + c * j->xq_stride;
            float *y = j->Y + c * j->rows;
            for (long long r = rt; r < re; r++)
                j->dot_nc(j->k, y + r, j->rows, j->W + r * j->w_stride, xq, (long long)j->xq_stride, nc);
        }
        return;
    }
    for (long long c = 0; c < j->ncols; c++) {
        const char *xq = j->Xq + c * j->xq_stride;
        float *y = j->Y + c * j->rows;
        for (long long r = rt; r < re; r++) j->dot(j->k, y + r, j->W + r * j->w_stride, xq);
    }
}

static void mm_task(int ith, int nth, void *p) {
    (void)nth;
    mm_job *j = p;
    for (long long tile; (tile = sched_take(j->sched, ith)) >= 0;) mm_tile(j, tile);
}

/* several weights (over the same activations, or one column each over its own: the
 * routed experts of a token), their row tiles in one pool */
#define MM_MULTI_MAX 32
#define MM_SAME_X_MAX 4    /* llm_matmul_multi's weights (internal.h) */
typedef struct {
    mm_job sub[MM_MULTI_MAX];
    long long end[MM_MULTI_MAX];   /* cumulative tile counts */
    int nsub;
    tile_sched sched;
} mm_multi_job;

static void mm_multi_task(int ith, int nth, void *p) {
    (void)nth;
    mm_multi_job *j = p;
    for (long long tile; (tile = sched_take(&j->sched, ith)) >= 0;) {
        int s = 0;
        while (s < j->nsub && tile >= j->end[s]) s++;
        if (s == j->nsub) break;
        mm_tile(&j->sub[s], tile - (s ? j->end[s - 1] : 0));
    }
}

/* 1: this weight takes llama.cpp's repacked-Q4_0 order (Q4_0 with rows % 8 == 0,
 * as ggml's repack decides it per weight; the other Q4_0 weights keep vec_dot's) */
static int q4_0_repacked(int wtype, long long rows) {
    return wtype == T_Q4_0 && rows % 8 == 0 && llm_kernels()->q4_0_rp;
}

/* the job of one weight over activations already quantized (its own blocks):
 * the kernels llm_matmul_q takes; 0, or -1 where the type or size is refused */
static int mm_job_q(mm_job *j, int wtype, const void *W, long long rows, long long k, const void *Xq,
                    long long ncols, float *Y) {
    if (!llm_type_supported(wtype) || rows < 0 || ncols < 0) return -1;
    long long wb = llm_row_bytes(wtype, k), xb = llm_row_bytes(llm_type_act_type(wtype), k);
    if (wb < 0 || xb < 0) return -1;
    const llm_kernel_table *kt = llm_kernels();
    if (!kt->vec_dot[wtype]) return -1;
    mm_job r = {kt->vec_dot[wtype], kt->vec_dot_nc[wtype], ncols >= 8 ? kt->vec_dot_nc2[wtype] : NULL,   /* 2-row kernel: prefill-sized batches */
                W, rows, k, ncols, (size_t)wb, (size_t)xb, Xq, Y, NULL, NULL, ncols == 1 ? kt->vec_dot_r4[wtype] : NULL, NULL};
    /* the 16-row tile kernel: prefill-sized batches (its row offsets are int32) */
    if (ncols >= kt->r16_min[wtype] && ncols <= INT_MAX && wb <= INT32_MAX / ROW_TILE)
        r.dot_r16 = kt->vec_dot_r16[wtype];
    if (q4_0_repacked(wtype, rows)) {
        r.dot = kt->q4_0_rp;
        r.dot_nc = kt->q4_0_rp_nc;
        r.dot_nc2 = NULL;
        r.dot_r16 = ncols <= INT_MAX && wb <= INT32_MAX / ROW_TILE ? kt->q4_0_rp_r16 : NULL;   /* one column too */
        r.dot_r4 = NULL;   /* the SIMD tables' row tile takes one column; the scalar table has neither */
    }
    *j = r;
    return 0;
}

int llm_matmul_q(int wtype, const void *W, long long rows, long long k,
                 const void *Xq, long long ncols, float *Y) {
    mm_job j;
    if (mm_job_q(&j, wtype, W, rows, k, Xq, ncols, Y)) return -1;
    tile_sched ts;
    sched_init(&ts, (rows + ROW_TILE - 1) / ROW_TILE);
    j.sched = &ts;
    llm_parallel(mm_task, &j);
    return 0;
}

int llm_matmul(int wtype, const void *W, long long rows, long long k,
               const float *X, long long ncols, float *Y) {
    if (!llm_type_supported(wtype) || ncols < 0) return -1;
    int at = llm_type_act_type(wtype);
    long long xb = llm_row_bytes(at, k);
    if (xb < 0 || llm_row_bytes(wtype, k) < 0) return -1;
    void *Xq = get_scratch(&scratch, (size_t)(xb * (ncols > 0 ? ncols : 1)));
    if (!Xq) return -1;
    quant_job q = {0, at, X, Xq, k, ncols, xb, NULL};
    if (ncols == 1) {
        quant_task(0, 1, &q);
        return llm_matmul_q(wtype, W, rows, k, Xq, ncols, Y);
    }
    /* several columns: a kernel over the wide layout where the table has one */
    llm_vec_dot_nc_fn ncw = q4_0_repacked(wtype, rows) ? NULL : llm_kernels()->vec_dot_ncw[wtype];
    if (ncw && (at == T_Q8_0 || at == T_Q8_1) && k % QK == 0)
        q.Xw = get_scratch(&scratch_w, (size_t)(LLM_WIDE_BYTES(at, k) * ncols));
    llm_parallel(quant_task, &q);
    if (!q.Xw) return llm_matmul_q(wtype, W, rows, k, Xq, ncols, Y);
    tile_sched ts;
    sched_init(&ts, (rows + ROW_TILE - 1) / ROW_TILE);
    const llm_kernel_table *kt = llm_kernels();
    mm_job j = {kt->vec_dot[wtype], ncw, ncols >= kt->ncw2_min[wtype] ? kt->vec_dot_ncw2[wtype] : NULL, W, rows, k, ncols,
                (size_t)llm_row_bytes(wtype, k),
                (size_t)LLM_WIDE_BYTES(at, k), q.Xw, Y, &ts, NULL, NULL, NULL};
    llm_parallel(mm_task, &j);
    return 0;
}

/* the job of a Q4_K weight in llama.cpp's repacked-gemv order (its mixture-of-experts
 * matmul's) over activations already quantized; 0, or -1 where refused */
static int mm_job_gemv(mm_job *j, const void *W, long long rows, long long k, const void *Xq, long long ncols, float *Y) {
    const llm_kernel_table *kt = llm_kernels();
    const long long xb = llm_row_bytes(T_Q8_K, k), wb = llm_row_bytes(T_Q4_K, k);
    if (xb < 0 || wb < 0 || rows < 0 || ncols < 0 || !kt->q4_K_gemv) return -1;
    mm_job r = {kt->q4_K_gemv, kt->q4_K_gemv_nc, NULL, W, rows, k, ncols, (size_t)wb, (size_t)xb, Xq, Y, NULL, NULL,
                ncols == 1 ? kt->q4_K_gemv_r4 : NULL, NULL};
    if (ncols >= kt->r16_min[T_Q4_K] && ncols <= INT_MAX && wb <= INT32_MAX / ROW_TILE)   /* as mm_job_q */
        r.dot_r16 = kt->q4_K_gemv_r16;
    *j = r;
    return 0;
}

/* a job made over activations not yet quantized: X quantized into activation type
 * at (its own blocks), then the job's row tiles over the pool */
static int run_job(mm_job *j, int at, const float *X) {
    const long long ncols = j->ncols, k = j->k;
    void *Xq = get_scratch(&scratch, j->xq_stride * (size_t)(ncols > 0 ? ncols : 1));
    if (!Xq) return -1;
    quant_job q = {0, at, X, Xq, k, ncols, (long long)j->xq_stride, NULL};
    if (ncols == 1) quant_task(0, 1, &q);
    else llm_parallel(quant_task, &q);
    if (j->xprep) j->xprep(k, Xq);   /* one column (mm_job_x4) */
    tile_sched ts;
    sched_init(&ts, (j->rows + ROW_TILE - 1) / ROW_TILE);
    j->Xq = Xq;
    j->sched = &ts;
    llm_parallel(mm_task, j);
    return 0;
}

int llm_matmul_q4_K_gemv(const void *W, long long rows, long long k, const float *X, long long ncols, float *Y) {
    mm_job j;
    if (mm_job_gemv(&j, W, rows, k, NULL, ncols, Y)) return -1;
    return run_job(&j, T_Q8_K, X);
}

/* the job of a weight's decode copy W4 (repack.c: its rows' blocks interleaved by
 * 4; Q4_K's as groups of 4 rows, and its one-column kernel's activations rewritten:
 * xprep) over ncols columns, gemv 1: in llama.cpp's repacked-gemv order (as mm_job_gemv):
 * the 4-row kernel for one column, the row tiles for more; -1 where this table lacks
 * either (the caller then takes the file's layout) */
static int mm_job_x4(mm_job *j, int wtype, int gemv, const void *W4, long long rows, long long k, const void *Xq,
                     long long ncols, float *Y) {
    const llm_kernel_table *kt = llm_kernels();
    if (!llm_type_supported(wtype) || (gemv && wtype != T_Q4_K)) return -1;
    void (*x4)(long long, float *, const void *, long long, const void *) = gemv ? kt->q4_K_gemv_x4 : kt->vec_dot_x4[wtype];
    llm_vec_dot_r16_fn r16 = gemv ? kt->q4_K_gemv_r16x4 : kt->vec_dot_r16x4[wtype];
    const long long wb = llm_row_bytes(wtype, k);
    /* a row tile holds whole groups (ROW_TILE % LLM_R4 == 0); the tiles' offsets are int32 */
    if (!x4 || !r16 || rows % LLM_R4 || wb < 0 || wb > INT32_MAX / ROW_TILE || ncols > INT_MAX) return -1;
    if (gemv ? mm_job_gemv(j, W4, rows, k, Xq, ncols, Y) : mm_job_q(j, wtype, W4, rows, k, Xq, ncols, Y)) return -1;
    j->dot_nc = NULL;
    j->dot_nc2 = NULL;
    j->dot_r4 = ncols == 1 ? x4 : NULL;
    j->dot_r16 = ncols == 1 ? NULL : r16;
    /* Q4_K's one-column kernel on the copy reads its activations rewritten (tiles_avx512.c) */
    j->xprep = ncols == 1 && wtype == T_Q4_K ? kt->q8_K_x4 : NULL;
    if (j->dot_r4 && wtype == T_Q4_K && !j->xprep) return -1;
    return 0;
}

int llm_matmul_x4(int wtype, int gemv, const void *W4, long long rows, long long k, const float *X, long long ncols,
                  float *Y) {
    mm_job j;
    if (mm_job_x4(&j, wtype, gemv, W4, rows, k, NULL, ncols, Y)) return -1;
    return run_job(&j, gemv ? T_Q8_K : llm_type_act_type(wtype), X);
}

static void mm_multi_run(mm_multi_job *j) {
    long long end = 0;
    for (int i = 0; i < j->nsub; i++) {
        end += (j->sub[i].rows + ROW_TILE - 1) / ROW_TILE;
        j->end[i] = end;
    }
    sched_init(&j->sched, end);
    llm_parallel(mm_multi_task, j);
}

/* llm_matmul_multi without the wide layout: the weights sharing an activation type
 * (the K-quants: Q8_K) take the activations quantized once and their row tiles in
 * one pool, with the kernels llm_matmul_q takes; otherwise one llm_matmul each */
static int matmul_multi_q(int nw, const int *wtype, const void *const *W, const long long *rows, long long k,
                          const float *X, long long ncols, float *const *Y, const unsigned char *how) {
    const int at = nw >= 1 && llm_type_supported(wtype[0]) ? llm_type_act_type(wtype[0]) : -1;
    mm_multi_job j;
    j.nsub = nw;
    /* the jobs first (mm_job_q makes every check), the activations after */
    int same = nw >= 1 && nw <= MM_SAME_X_MAX && ncols > 1 && at >= 0 && llm_row_bytes(at, k) >= 0;
    for (int i = 0; same && i < nw; i++)
        same = llm_type_supported(wtype[i]) && llm_type_act_type(wtype[i]) == at &&
               ((how && (how[i] & LLM_MV_X4)) ? mm_job_x4(&j.sub[i], wtype[i], 0, W[i], rows[i], k, NULL, ncols, Y[i])
                                              : mm_job_q(&j.sub[i], wtype[i], W[i], rows[i], k, NULL, ncols, Y[i])) == 0;
    if (!same) {
        for (int i = 0; i < nw; i++)
            if ((how && (how[i] & LLM_MV_X4)) ? llm_matmul_x4(wtype[i], 0, W[i], rows[i], k, X, ncols, Y[i])
                                              : llm_matmul(wtype[i], W[i], rows[i], k, X, ncols, Y[i])) return -1;
        return 0;
    }
    const long long xb = llm_row_bytes(at, k);
    void *Xq = get_scratch(&scratch, (size_t)(xb * ncols));
    if (!Xq) return -1;
    quant_job q = {0, at, X, Xq, k, ncols, xb, NULL};
    llm_parallel(quant_task, &q);
    for (int i = 0; i < nw; i++) j.sub[i].Xq = Xq;
    mm_multi_run(&j);
    return 0;
}

int llm_matmul_multi(int nw, const int *wtype, const void *const *W, const long long *rows, long long k,
                     const float *X, long long ncols, float *const *Y, const unsigned char *how) {
    int same = nw >= 1 && nw <= MM_SAME_X_MAX && ncols > 1 && k % QK == 0;
    for (int i = 0; same && how && i < nw; i++) same = !(how[i] & LLM_MV_X4);
    const int at = nw >= 1 ? llm_type_act_type(wtype[0]) : -1;
    same = same && (at == T_Q8_0 || at == T_Q8_1);
    for (int i = 0; same && i < nw; i++)
        same = llm_type_supported(wtype[i]) && llm_type_act_type(wtype[i]) == at &&
               llm_kernels()->vec_dot_ncw[wtype[i]] && !q4_0_repacked(wtype[i], rows[i]) && llm_row_bytes(wtype[i], k) >= 0 &&
               rows[i] >= 0;
    if (!same) return matmul_multi_q(nw, wtype, W, rows, k, X, ncols, Y, how);
    long long xb = llm_row_bytes(at, k);
    void *Xq = get_scratch(&scratch, (size_t)(xb * ncols));
    if (!Xq) return -1;
    quant_job q = {0, at, X, Xq, k, ncols, xb, get_scratch(&scratch_w, (size_t)(LLM_WIDE_BYTES(at, k) * ncols))};
    if (!q.Xw) return -1;
    llm_parallel(quant_task, &q);
    mm_multi_job j;
    j.nsub = nw;
    for (int i = 0; i < nw; i++) {
        mm_job *s = &j.sub[i];
        s->dot = llm_kernels()->vec_dot[wtype[i]];
        s->dot_nc = llm_kernels()->vec_dot_ncw[wtype[i]];
        s->dot_nc2 = ncols >= llm_kernels()->ncw2_min[wtype[i]] ? llm_kernels()->vec_dot_ncw2[wtype[i]] : NULL;
        s->W = W[i]; s->rows = rows[i]; s->k = k; s->ncols = ncols;
        s->w_stride = (size_t)llm_row_bytes(wtype[i], k);
        s->xq_stride = (size_t)LLM_WIDE_BYTES(at, k);
        s->Xq = q.Xw; s->Y = Y[i];
        s->sched = NULL;
        s->dot_r16 = NULL;
        s->dot_r4 = NULL;
        s->xprep = NULL;
    }
    mm_multi_run(&j);
    return 0;
}

int llm_matvec_group(int nj, const int *wtype, const void *const *W, const long long *rows, long long k,
                     const float *const *X, float *const *Y, const unsigned char *gemv) {
    mm_multi_job j;
    size_t need = 0, xb[MM_MULTI_MAX];
    int ok = nj >= 1 && nj <= MM_MULTI_MAX;
    for (int i = 0; ok && i < nj; i++) {   /* the jobs first (every check), the activations after */
        ok = ((gemv[i] & LLM_MV_X4) ? mm_job_x4(&j.sub[i], wtype[i], gemv[i] & LLM_MV_GEMV, W[i], rows[i], k, NULL, 1, Y[i])
              : gemv[i] ? mm_job_gemv(&j.sub[i], W[i], rows[i], k, NULL, 1, Y[i])
                        : mm_job_q(&j.sub[i], wtype[i], W[i], rows[i], k, NULL, 1, Y[i])) == 0;
        xb[i] = ok ? j.sub[i].xq_stride : 0;
        need += xb[i];
    }
    if (!ok) {
        for (int i = 0; i < nj; i++)
            if (((gemv[i] & LLM_MV_X4) ? llm_matmul_x4(wtype[i], gemv[i] & LLM_MV_GEMV, W[i], rows[i], k, X[i], 1, Y[i])
                 : gemv[i] ? llm_matmul_q4_K_gemv(W[i], rows[i], k, X[i], 1, Y[i])
                           : llm_matmul(wtype[i], W[i], rows[i], k, X[i], 1, Y[i])) != 0) return -1;
        return 0;
    }
    char *Xq = get_scratch(&scratch, need);
    if (!Xq) return -1;
    /* each input quantized once into each activation type it meets (a token's gate and
     * up share theirs) */
    for (int i = 0; i < nj; i++) {
        const int at = (gemv[i] & LLM_MV_GEMV) ? T_Q8_K : llm_type_act_type(wtype[i]);
        int same = -1;
        for (int p = 0; p < i && same < 0; p++)
            if (X[p] == X[i] && ((gemv[p] & LLM_MV_GEMV) ? T_Q8_K : llm_type_act_type(wtype[p])) == at &&
                j.sub[p].xprep == j.sub[i].xprep)
                same = p;
        if (same >= 0) {
            j.sub[i].Xq = j.sub[same].Xq;
            continue;
        }
        quant_act(at, X[i], Xq, k);
        if (j.sub[i].xprep) j.sub[i].xprep(k, Xq);
        j.sub[i].Xq = Xq;
        Xq += xb[i];
    }
    j.nsub = nj;
    mm_multi_run(&j);
    return 0;
}
