/* Attention (ops.cuh attn_params): one kernel for decode, verify and prefill.
 *
 * A block takes one 128-key chunk of one KV head for a set of queries that share its
 * K/V rows: the query heads of that KV head (all of them, or AT_MAX_Q at a time) and,
 * in a batch, a tile of consecutive tokens. It loads the chunk's K rows, then its V
 * rows, into shared memory once for all those queries (16-byte loads, coalesced across
 * the block, the next sub-tile's loads in flight in registers while the block computes
 * on the current one), and writes one partial (max, sum, unnormalised output) per query.
 * The last block of a (token tile, KV head, head group) to finish merges each query's
 * partials in chunk order (attn_combine; LLMLITE_CUDA_FUSE=0: its own launch).
 *
 * Chunks are absolute: chunk c holds keys 128c..128c+127, and a query at position pos
 * (visible keys lo..pos, lo > 0 on sliding-window layers) takes chunks lo/128..pos/128,
 * each with the keys of [lo, pos] in it. So every query's arithmetic is a function of
 * its position and the shapes only, never of the batch, the tile, the grid or which
 * block finishes last (batch invariance, DESIGN.md #3):
 *   score(k)  q (rounded to F16) . K[k] over head_dim: two fma chains (even and odd
 *             elements, in order) added, times scale (key_dot)
 *   chunk     m = max of its scores; p(k) = expf(score - m); l = the sum of p by a fixed
 *             tree (lane j adds keys j, j+32, j+64, j+96 in order, then the warp's xor
 *             tree); o[i] = fma chain of p(k) * V[k][i] over the chunk's keys in order
 *   combine   M = max m; w = expf(m - M); L = sum of l w, O = sum of o w, in chunk
 *             order; out = O * (1/L)
 * The work split (which thread does which query, how many queries share a block, the
 * sub-tile size) changes only who computes each of those chains, not the chains. */
#include <math.h>
#include "qk_stage.cuh"

#define AT_THREADS 128
#define AT_MAX_Q 16                          /* queries (heads x tokens) a block holds */
#define AT_Q_FLOATS 2048                     /* their Q rows: queries x head_dim <= this */
#define AT_TILE_HALVES (128 * 72)            /* a K or V sub-tile: KT rows of head_dim + 8 halves */
#define AT_ACC (AT_Q_FLOATS / 2 / AT_THREADS) /* output pairs per thread: (query, i) pairs over 128 threads */
static_assert(AT_THREADS == QK_THREADS, "the decode form runs qk_stage.cuh's rows: the norm's tree is the block's");

__device__ __forceinline__ int attn_lo(const attn_params &p, int pos) {
    return p.window > 0 && pos - p.window + 1 > 0 ? pos - p.window + 1 : 0;
}

/* dot(q (float), k row (F16)) as two fma chains (even, odd elements), then added: the
 * 16-byte form and the 4-byte one (rows not 16-byte aligned) give the same bits */
__device__ __forceinline__ float key_dot(const float *qs, const __half *k, int hd) {
    float s0 = 0.0f, s1 = 0.0f;
    if ((hd & 7) == 0) {
        const uint4 *kr = (const uint4 *)k;
        const float4 *q4 = (const float4 *)qs;                  /* 16-byte aligned: qs and hd % 8 == 0 */
        for (int c = 0; c < hd / 8; c++) {
            const uint4 v = kr[c];
            const float4 qa = q4[2 * c], qb = q4[2 * c + 1];
            const uint32_t w[4] = {v.x, v.y, v.z, v.w};
            const float qc[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
UNROLL
            for (int j = 0; j < 4; j++) {
                __half2 h;
                memcpy(&h, &w[j], 4);
                const float2 a = __half22float2(h);
                s0 = fmaf(qc[2 * j], a.x, s0);
                s1 = fmaf(qc[2 * j + 1], a.y, s1);
            }
        }
    } else {
        const __half2 *kr = (const __half2 *)k;
        for (int c = 0; c < hd / 2; c++) {
            const float2 a = __half22float2(kr[c]);
            s0 = fmaf(qs[2 * c], a.x, s0);
            s1 = fmaf(qs[2 * c + 1], a.y, s1);
        }
    }
    return s0 + s1;
}

/* the work split of a launch (attn_geometry): heads per block (gh, of the G a KV head
 * has; nsplit blocks cover them), tokens per block (tt) */
typedef struct { int gh, nsplit, tt; } attn_geom;

/* which queries a block holds: heads h0..h0+gh-1 (of KV head kvh) x tokens tl0..tl0+tt-1
 * of the launch; query q is token tl0 + q/gh, head h0 + q%gh */
struct at_block {
    int kvh, h0, gh, tl0, tt, nq;
};
__device__ __forceinline__ at_block block_queries(const attn_params &p, const attn_geom &g, int n, int y, int z) {
    at_block b;
    const int G = p.n_head / p.n_head_kv, hs = y % g.nsplit;
    b.kvh = y / g.nsplit;
    b.h0 = b.kvh * G + hs * g.gh;
    b.gh = min(g.gh, G - hs * g.gh);
    b.tl0 = z * g.tt;
    b.tt = min(g.tt, n - b.tl0);
    b.nq = b.gh * b.tt;
    return b;
}

/* the partial slot of (token tl of the launch, head h, chunk c): max, sum, hd outputs */
__device__ __forceinline__ float *part_at(const attn_params &p, int tl, int h, int c) {
    return p.part + (((size_t)tl * p.n_head + h) * p.pstride + c) * (p.hd + 2);
}

/* each query's partials merged in chunk order, divided by the total sum. The partials
 * were written by other blocks of this launch: read through L2 (__ldcg), never from a
 * stale L1 line */
__device__ __forceinline__ void attn_combine(const attn_params &p, const at_block &b, int t0) {
    const int hd = p.hd;
    for (int j = threadIdx.x; j < b.nq * hd; j += AT_THREADS) {
        const int q = j / hd, i = j - q * hd, tl = b.tl0 + q / b.gh, h = b.h0 + q % b.gh;
        const int pos = *p.pos0 + t0 + tl, c0 = attn_lo(p, pos) / ATTN_CHUNK, c1 = pos / ATTN_CHUNK;
        float M = -INFINITY;
        for (int c = c0; c <= c1; c++) M = fmaxf(M, __ldcg(part_at(p, tl, h, c)));
        float L = 0.0f, o = 0.0f;
        for (int c = c0; c <= c1; c++) {
            const float *pc = part_at(p, tl, h, c);
            const float w = expf(__ldcg(pc) - M);
            L += __ldcg(pc + 1) * w;
            o += __ldcg(pc + 2 + i) * w;
        }
        p.out[((size_t)(t0 + tl) * p.n_head + h) * hd + i] = o * (L > 0.0f ? 1.0f / L : 0.0f);
    }
}

/* sub-tiles of W-byte pieces (W = 16: head_dim % 8 == 0, rows 16-byte aligned; else 4):
 * a sub-tile is KT rows of a row stride RS halves in shared memory, loaded by the block
 * into registers (NPER pieces a thread) and then stored, so that the next sub-tile's
 * loads are in flight while the block computes on this one */
template <int W> struct at_piece;
template <> struct at_piece<16> { typedef uint4 T; };
template <> struct at_piece<4> { typedef uint32_t T; };
#define AT_NPER(W) (AT_TILE_HALVES * 2 / (W) / AT_THREADS)

/* f(r, row, piece) for each piece a thread moves: register r holds piece
 * threadIdx.x + r*AT_THREADS of the rows, ppr pieces a row */
template <int W, class F> __device__ __forceinline__ void tile_pieces(int ppr, int nrows, F f) {
    const int total = nrows * ppr;
UNROLL
    for (int r = 0; r < AT_NPER(W); r++) {
        const int i = threadIdx.x + r * AT_THREADS;
        if (i < total) {
            const int row = i / ppr;
            f(r, row, i - row * ppr);
        }
    }
}

/* rows k0..k0+nrows-1 of X (rows of hd halves) into the registers. Plain loads, on
 * purpose: in the folded decode this block wrote the token's K/V row into the cache just
 * before (qk_store_kv); an __ldg or a __restrict__ K/V pointer (the read-only cache)
 * could return the stale row on a GPU, which the emulator would not show */
template <int W>
__device__ __forceinline__ void tile_load(typename at_piece<W>::T (&reg)[AT_NPER(W)], const __half *X, int hd,
                                          int k0, int nrows) {
    typedef typename at_piece<W>::T T;
    tile_pieces<W>(hd * 2 / W, nrows, [&](int r, int row, int pc) { reg[r] = ((const T *)(X + (size_t)(k0 + row) * hd))[pc]; });
}

/* and from the registers into rows row0.. of the shared tile S (stride rs halves) */
template <int W>
__device__ __forceinline__ void tile_store(const typename at_piece<W>::T (&reg)[AT_NPER(W)], __half *S, int rs, int hd,
                                           int row0, int nrows) {
    typedef typename at_piece<W>::T T;
    tile_pieces<W>(hd * 2 / W, nrows, [&](int r, int row, int pc) { ((T *)(S + (size_t)(row0 + row) * rs))[pc] = reg[r]; });
}

/* fold (decode, one token; attn_folds): the block computes its Q rows from the raw
 * Q/K/V (qk_stage.cuh, the bits of qk_kernel), and the block of the last chunk also
 * the token's K and V rows, which it writes into the cache before it reads the chunk */
template <int W>
__global__ void __launch_bounds__(AT_THREADS, 4) attn_kernel(attn_params p, attn_geom g, int t0, int n, qk_params qp,
                                                            int fold) {
    typedef typename at_piece<W>::T T;
    __shared__ float4 qs_raw[AT_Q_FLOATS / 4];            /* float4: key_dot's 16-byte reads */
    __shared__ float sc[AT_MAX_Q][ATTN_CHUNK];          /* scores, then p */
    __shared__ uint4 tile_raw[AT_TILE_HALVES / 8];
    __shared__ int qlo[AT_MAX_Q], qhi[AT_MAX_Q];         /* a query's keys in this chunk (chunk-relative) */
    __half *tile = (__half *)tile_raw;
    float *qs = (float *)qs_raw;
    const int hd = p.hd, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const at_block b = block_queries(p, g, n, blockIdx.y, blockIdx.z);
    const int pos_first = *p.pos0 + t0 + b.tl0, pos_last = pos_first + b.tt - 1;
    const int c_first = attn_lo(p, pos_first) / ATTN_CHUNK, c_last = pos_last / ATTN_CHUNK;
    const int c = c_first + blockIdx.x, cb = c * ATTN_CHUNK;
    if (c > c_last) return;                              /* the whole block, before any barrier */

    if (fold) {                                          /* b.nq == b.gh: one token */
        __shared__ double sh[32];
        const int with_kv = c == c_last;                 /* uniform over the block */
        for (int r = 0; r < b.gh; r++) qk_load(qp, 1, b.h0 + r, t0, qs + r * hd);
        if (with_kv) qk_load(qp, 0, b.kvh, t0, qs + b.gh * hd);
        qk_finish(qp, qs, b.gh + with_kv, b.gh, pos_first, sh);
        if (with_kv) qk_store_kv(qp, b.kvh, t0, pos_first, qs + b.gh * hd);
        for (int j = threadIdx.x; j < b.nq * hd; j += AT_THREADS) qs[j] = round_f16(q_final(qp, qs[j]));
        __syncthreads();                                 /* the new K/V row in the cache before the loads */
    } else {
        for (int j = threadIdx.x; j < b.nq * hd; j += AT_THREADS) {
            const int q = j / hd, i = j - q * hd;
            qs[j] = round_f16(p.q[((size_t)(t0 + b.tl0 + q / b.gh) * p.n_head + b.h0 + q % b.gh) * hd + i]);
        }
    }
    if ((int)threadIdx.x < b.nq) {
        const int pos = pos_first + (int)threadIdx.x / b.gh;
        qlo[threadIdx.x] = max(attn_lo(p, pos), cb) - cb;
        qhi[threadIdx.x] = min(pos, cb + ATTN_CHUNK - 1) - cb;  /* < qlo: no key of this chunk */
    }
    /* rows r0..r1 of the chunk: every key some query of the block sees here */
    const int r0 = max(attn_lo(p, pos_first), cb) - cb, r1 = min(pos_last, cb + ATTN_CHUNK - 1) - cb;
    const int rs = W == 16 ? hd + 8 : hd + 2;            /* row stride: 16-byte rows off the same banks */
    int kt = ATTN_CHUNK;
    while (kt * rs > AT_TILE_HALVES) kt >>= 1;
    const int s0 = r0 / kt, ns = r1 / kt - s0 + 1;
    const size_t kvoff = (size_t)b.kvh * p.n_ctx * hd + (size_t)cb * hd;
    const __half *K = p.kc + kvoff, *V = p.vc + kvoff;

    T reg[AT_NPER(W)];
    float2 acc[AT_ACC];
UNROLL
    for (int r = 0; r < AT_ACC; r++) acc[r] = make_float2(0.0f, 0.0f);
    const int npairs = b.nq * (hd / 2);
    {
        const int a = max(s0 * kt, r0), e = min(s0 * kt + kt - 1, r1);
        tile_load<W>(reg, K, hd, a, e - a + 1);
    }
    for (int it = 0; it < 2 * ns; it++) {
        const bool is_v = it >= ns;
        const int kb = (s0 + (is_v ? it - ns : it)) * kt;
        const int a = max(kb, r0), e = min(kb + kt - 1, r1);
        tile_store<W>(reg, tile, rs, hd, a - kb, e - a + 1);
        __syncthreads();
        if (it + 1 < 2 * ns) {                           /* the next sub-tile's loads, in flight meanwhile */
            const int nv = it + 1 >= ns, nb = (s0 + (nv ? it + 1 - ns : it + 1)) * kt;
            const int na = max(nb, r0), ne = min(nb + kt - 1, r1);
            tile_load<W>(reg, nv ? V : K, hd, na, ne - na + 1);
        }
        if (!is_v) {                                     /* scores of keys a..e, each by one thread */
            const int nk = e - a + 1;
            for (int j = threadIdx.x; j < b.nq * nk; j += AT_THREADS) {
                const int q = j / nk, k = a + (j - q * nk);
                if (k >= qlo[q] && k <= qhi[q])
                    sc[q][k] = key_dot(qs + q * hd, tile + (size_t)(k - kb) * rs, hd) * p.scale;
            }
        } else {                                         /* o += p V over keys a..e, in order */
UNROLL
            for (int r = 0; r < AT_ACC; r++) {
                const int j = threadIdx.x + r * AT_THREADS;
                if (j < npairs) {
                    const int q = j / (hd / 2), pi = j - q * (hd / 2);
                    const int ka = max(a, qlo[q]), ke = min(e, qhi[q]);
                    const float *pq = sc[q];
                    float2 o = acc[r];
                    for (int k = ka; k <= ke; k++) {
                        const float pk = pq[k];
                        const float2 v = __half22float2(*(const __half2 *)(tile + (size_t)(k - kb) * rs + 2 * pi));
                        o.x = fmaf(pk, v.x, o.x);
                        o.y = fmaf(pk, v.y, o.y);
                    }
                    acc[r] = o;
                }
            }
        }
        __syncthreads();                                 /* before the next store reuses the tile */
        if (it == ns - 1) {                              /* every score in: each query's softmax, a warp each */
            for (int q = warp; q < b.nq; q += AT_THREADS / 32) {
                const int lo = qlo[q], hi = qhi[q];
                if (lo > hi) continue;                   /* uniform over the warp */
                float m = -INFINITY;
UNROLL
                for (int j = 0; j < ATTN_CHUNK / 32; j++) {
                    const int k = lane + 32 * j;
                    if (k >= lo && k <= hi) m = fmaxf(m, sc[q][k]);
                }
                m = warp_max(m);
                float l = 0.0f;
UNROLL
                for (int j = 0; j < ATTN_CHUNK / 32; j++) {
                    const int k = lane + 32 * j;
                    if (k >= lo && k <= hi) {
                        const float e2 = expf(sc[q][k] - m);
                        sc[q][k] = e2;
                        l += e2;
                    }
                }
                l = warp_sum(l);
                if (lane == 0) {
                    float *pp = part_at(p, b.tl0 + q / b.gh, b.h0 + q % b.gh, c);
                    pp[0] = m;
                    pp[1] = l;
                }
            }
            __syncthreads();
        }
    }
UNROLL
    for (int r = 0; r < AT_ACC; r++) {
        const int j = threadIdx.x + r * AT_THREADS;
        if (j < npairs) {
            const int q = j / (hd / 2), pi = j - q * (hd / 2);
            if (qlo[q] <= qhi[q]) *(float2 *)(part_at(p, b.tl0 + q / b.gh, b.h0 + q % b.gh, c) + 2 + 2 * pi) = acc[r];
        }
    }
    /* last block done: the c_last - c_first + 1 blocks with a chunk (every block
     * computes the same range from the same *pos0) each count after their partials; the
     * one that sees count-1 merges and sets the counter back to 0 for the next launch
     * (graph replays included). Blocks past c_last returned above and never count. */
    if (!p.count) return;                                /* attn_combine_kernel merges */
    __shared__ int last;
    if (last_block(p.count + (size_t)blockIdx.z * gridDim.y + blockIdx.y, (unsigned)(c_last - c_first + 1), &last))
        attn_combine(p, b, t0);
}

/* the merge as a launch of its own (count == NULL: LLMLITE_CUDA_FUSE=0) */
__global__ void __launch_bounds__(AT_THREADS) attn_combine_kernel(attn_params p, attn_geom g, int t0, int n) {
    attn_combine(p, block_queries(p, g, n, blockIdx.x, blockIdx.y), t0);
}

static attn_geom attn_geometry(int n_head, int n_head_kv, int hd, int n) {
    attn_geom g;
    const int G = n_head / n_head_kv;
    const int qmax = AT_Q_FLOATS / hd < AT_MAX_Q ? AT_Q_FLOATS / hd : AT_MAX_Q;    /* >= 4: hd <= 512 */
    g.gh = G < qmax ? G : qmax;
    g.nsplit = (G + g.gh - 1) / g.gh;
    g.tt = qmax / g.gh < n ? qmax / g.gh : n;
    if (g.tt < 1) g.tt = 1;
    return g;
}

int cu_attention_folds(const attn_params *p, int n) {
    const attn_geom g = attn_geometry(p->n_head, p->n_head_kv, p->hd, n);
    return n == 1 && g.nsplit == 1 && (g.gh + 1) * p->hd <= AT_Q_FLOATS;   /* the K row beside the Q rows */
}

cudaError_t cu_attention(const attn_params *p, const qk_params *qk, int t0, int n, cudaStream_t st) {
    const attn_geom g = attn_geometry(p->n_head, p->n_head_kv, p->hd, n);
    qk_params qp;
    memset(&qp, 0, sizeof qp);
    const int fold = qk && cu_attention_folds(p, n);
    if (fold) qp = *qk;
    /* chunks of a block's tile: at most pstride (the slots cover every token's chunks),
     * and on sliding-window layers at most those of window + tt - 1 keys */
    int nx = p->pstride;
    if (p->window > 0) {
        const int w = (p->window + g.tt - 1 + ATTN_CHUNK - 1) / ATTN_CHUNK + 1;
        if (w < nx) nx = w;
    }
    const dim3 grid(nx, p->n_head_kv * g.nsplit, (n + g.tt - 1) / g.tt);
    if (p->hd % 8 == 0) attn_kernel<16><<<grid, AT_THREADS, 0, st>>>(*p, g, t0, n, qp, fold);
    else attn_kernel<4><<<grid, AT_THREADS, 0, st>>>(*p, g, t0, n, qp, fold);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || p->count) return e;
    attn_combine_kernel<<<dim3(grid.y, grid.z), AT_THREADS, 0, st>>>(*p, g, t0, n);
    return cudaGetLastError();
}
