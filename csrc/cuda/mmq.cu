/* Integer matmul kernels: weights as int8 codes and group scales (mmq_units.cuh),
 * activations as Q8_1, int8 mma on the tensor cores (mma.cuh), one kernel family for
 * decode (1 column), verify (2-9) and prefill (hundreds).
 *
 * A block is MQ_WARPS warps and MQ_ROWS = 16 rows (one mma tile), and NT n-tiles of 8
 * columns. The k groups of a row are split over the warps by k alone: warp w takes
 * groups w, w + MQ_WARPS, ... (a group: 32 weights, 16 for Q2_K, Q3_K, Q6_K), and for each it
 * unpacks the group of its 16 rows into the A fragment once, then per n-tile loads the
 * Q8_1 codes of 8 columns (B), one mma gives the exact int32 sums, and each output
 * element takes  acc = fma(a*d_x, isum, acc)  (then  acc = fma(b, s_x, acc)  for the
 * types with a min), a the group's scale and b its offset (w = a*q + b), d_x and s_x the
 * activation block's scale and scaled code sum (Q2_K: d_x times the 16-group's own code
 * sum, from a second mma with A all ones). The warps' partials are summed in warp
 * order (((p0 + p1) + p2) + p3) by warp 0, which writes Y. So each output element's
 * float operations and their order depend on k only, never on the number of columns,
 * the n-tile, the grid or which block finishes first: decode, verify and prefill give
 * the same bits (batch invariance, DESIGN.md #3), and the fused forms (Q/K/V set, gate
 * + up + activation, + residual) the same as the separate launches.
 *
 * X's Q8_1 copy: a launch of at most 16 columns whose copy fits MQ_XSMEM (decode,
 * verify: NT = 1 or 2, every column in one pass) quantizes its columns in each block's
 * shared memory (no launch of its own; 8 lanes per block of 32); a larger one
 * (prefill, or a long row: SmolLM2's fit up to 16 columns, Llama-1B's ffn_down's
 * 8192 one column) quantizes X once into the caller's
 * scratch (q8_1_kernel) and reads it from there, NT = MQ_NT_BATCH n-tiles (32 columns)
 * per block, so a weight tile is unpacked once for 32 columns. Both compute the same
 * codes (q8_1_quant). */
#include "mmq.cuh"
#include "mma.cuh"
#include "mmq_units.cuh"
#include "mm_epilogue.cuh"

#define MQ_WARPS 4          /* k slices, warps per block */
#define MQ_ROWS 16          /* rows per block: one mma tile */
#define MQ_XSMEM 20480      /* bytes of a block's own Q8_1 copy of X (codes + (d, s)) */
#define MQ_NT_BATCH 4       /* n-tiles of 8 columns per block when X's copy is global */
static_assert(MQ_WARPS * 32 == RES_THREADS, "the residual epilogue runs residual_row on one matmul block");

enum { EP_SET, EP_RES, EP_GLU };

/* Q8_1 blocks first, first+step, ... (< nblocks) of X (32 floats each, contiguous: X's
 * columns of k follow each other), each by 8 lanes of a warp, 4 blocks per warp at a
 * time: codes to q (32 bytes a block), (d, s) to ds. Every lane of the calling warps
 * runs it (first and step multiples of 4, the same over a warp). The codes are the
 * CPU's Q8_0/Q8_1 (csrc/quants.c, ops.cu's act_q8_kernel): amax over the bit patterns,
 * q = rne(x * 127/amax), d = amax/127 rounded to F16; s = d * sum(q) */
template <class I>          /* the index type: int in a block's own copy, long long in the global one */
__device__ __forceinline__ void q8_1_quant(const float *X, I nblocks, uint8_t *q, float2 *ds, I first, I step) {
    const int lane = threadIdx.x & 31, l8 = lane & 7;
#pragma unroll 4
    for (I b0 = first; b0 < nblocks; b0 += step) {              /* unrolled: the loads go out together */
        const I i = b0 + (lane >> 3);
        const bool ok = i < nblocks;
        const float4 v = __ldg((const float4 *)(X + (ok ? i : b0) * 32 + 4 * l8));
        unsigned a = max(max(__float_as_uint(v.x) & 0x7fffffffu, __float_as_uint(v.y) & 0x7fffffffu),
                         max(__float_as_uint(v.z) & 0x7fffffffu, __float_as_uint(v.w) & 0x7fffffffu));
UNROLL
        for (int o = 1; o < 8; o <<= 1) a = max(a, __shfl_xor_sync(FULL_MASK, a, o));
        const float amax = __uint_as_float(a);
        const float id = amax != 0.f ? 127.f / amax : 0.f;
        const float f[4] = {v.x, v.y, v.z, v.w};
        uint32_t packed = 0;
        int sum = 0;
UNROLL
        for (int e = 0; e < 4; e++) {
            const int c = (int)fminf(fmaxf(rintf(__fmul_rn(f[e], id)), -128.f), 127.f);
            packed |= (uint32_t)(c & 0xff) << (8 * e);
            sum += c;
        }
UNROLL
        for (int o = 1; o < 8; o <<= 1) sum += __shfl_xor_sync(FULL_MASK, sum, o);
        if (ok) {
            *(uint32_t *)(q + i * 32 + 4 * l8) = packed;
            if (l8 == 0) {
                const float d = round_f16(amax / 127.f);
                ds[i] = make_float2(d, __fmul_rn(d, (float)sum));
            }
        }
    }
}

__global__ void __launch_bounds__(128) q8_1_kernel(const float *__restrict__ X, long long nblocks, uint8_t *q,
                                                   float2 *ds) {
    const long long warp = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    q8_1_quant<long long>(X, nblocks, q, ds, warp * 4, (long long)gridDim.x * (blockDim.x >> 5) * 4);
}

/* one group's contribution to an output element (every kernel instance the same ops) */
template <bool OFS>
__device__ __forceinline__ float mq_term(float acc, float a, float b, float2 x, int isum) {
    acc = fmaf(__fmul_rn(a, x.x), (float)isum, acc);
    return OFS ? fmaf(b, x.y, acc) : acc;
}

/* the A fragment of the group at blk (row g: r0, row g+8: r1), its scales */
template <class M>
__device__ __forceinline__ void mq_frag(const uint8_t *r0, const uint8_t *r1, int j, int t, uint32_t *A, float *s) {
    uint32_t q0[2] = {0, 0}, q1[2] = {0, 0};
    s[2] = s[3] = 0.f;
    M::load(r0, j, t, q0, &s[0], &s[2]);
    M::load(r1, j, t, q1, &s[1], &s[3]);
    A[0] = q0[0]; A[1] = q1[0]; A[2] = q0[1]; A[3] = q1[1];
}

/* acc[nt][e] += the group's terms for the n-tiles of this block (the B codes at xq,
 * column c at xq + c*k, its (d, s) at xds[c*nxb]) */
template <class M, int NT>
__device__ __forceinline__ void mq_group(float (*acc)[4], const uint32_t *A, const float *s, const uint8_t *xq,
                                         const float2 *xds, int k, int nxb, int gi, int nc, int g, int t) {
    const int xb = (gi * M::G) >> 5, xo = (gi * M::G) & 31;
UNROLL
    for (int nt = 0; nt < NT; nt++) {
        if (nt * 8 >= nc) break;                   /* the same for the whole block */
        const int cb = nt * 8 + g, ca = nt * 8 + 2 * t;
        uint32_t B[2] = {0, 0};
        if (cb < nc) {
            const uint8_t *p = xq + (size_t)cb * k + xb * 32 + xo + 4 * t;
            B[0] = *(const uint32_t *)p;
            if (M::G == 32) B[1] = *(const uint32_t *)(p + 16);
        }
        int c[4];
        if (M::G == 32) mma_s8_k32(A, B, c);
        else {
            const uint32_t A2[2] = {A[0], A[1]};
            mma_s8_k16(A2, B[0], c);
        }
        const float2 z = make_float2(0.f, 0.f);
        float2 x0 = ca < nc ? xds[(size_t)ca * nxb + xb] : z, x1 = ca + 1 < nc ? xds[(size_t)(ca + 1) * nxb + xb] : z;
        if (M::G == 16 && M::OFS) {                /* Q2_K: the 16-group's own code sums, d * sum */
            const uint32_t ones[2] = {0x01010101u, 0x01010101u};
            int cs[4];
            mma_s8_k16(ones, B[0], cs);            /* every row: the sums of columns 2t, 2t+1 */
            x0.y = __fmul_rn(x0.x, (float)cs[0]);
            x1.y = __fmul_rn(x1.x, (float)cs[1]);
        }
        acc[nt][0] = mq_term<M::OFS>(acc[nt][0], s[0], s[2], x0, c[0]);
        acc[nt][1] = mq_term<M::OFS>(acc[nt][1], s[0], s[2], x1, c[1]);
        acc[nt][2] = mq_term<M::OFS>(acc[nt][2], s[1], s[3], x0, c[2]);
        acc[nt][3] = mq_term<M::OFS>(acc[nt][3], s[1], s[3], x1, c[3]);
    }
}

template <class M, int NT, bool SX, int EP>
__global__ void __launch_bounds__(MQ_WARPS * 32)
mmq_kernel(const uint8_t *__restrict__ W0, const uint8_t *__restrict__ W1, const uint8_t *__restrict__ W2, mm_set m,
           int k, const float *__restrict__ X, const uint8_t *__restrict__ xq_all, int ncols, int gelu, mm_residual r) {
    typedef typename M::U U;
    constexpr int NA = EP == EP_GLU ? 2 : 1;       /* accumulator sets: gate and up */
    __shared__ float4 xs[SX ? MQ_XSMEM / 16 : 1];
    __shared__ float red[MQ_WARPS - 1][NA * NT * 4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int nblk = k / U::QK, nxb = k >> 5;
    const int c0 = blockIdx.y * NT * 8, nc = min(NT * 8, ncols - c0);

    const uint8_t *xq;
    const float2 *xds;
    if (SX) {                                      /* this block's columns, quantized here */
        uint8_t *q = (uint8_t *)xs;
        float2 *ds = (float2 *)(q + (size_t)nc * k);
        q8_1_quant<int>(X + (size_t)c0 * k, nc * nxb, q, ds, warp * 4, MQ_WARPS * 4);
        __syncthreads();
        xq = q; xds = ds;
    } else {
        xq = xq_all + (size_t)c0 * k;
        xds = (const float2 *)(xq_all + (size_t)ncols * k) + (size_t)c0 * nxb;
    }

    /* the block's tile: matrix i's tiles follow matrix i-1's */
    int tile = blockIdx.x;
    const uint8_t *W = W0;
    float *Y = m.Y[0];
    int rows = m.rows[0];
    if (EP != EP_GLU) {
#pragma unroll
        for (int i = 1; i < MM_MAX; i++) {         /* constant indices: the set stays in parameter space */
            const int tiles = (rows + MQ_ROWS - 1) / MQ_ROWS;
            if (tile >= tiles) { tile -= tiles; W = i == 1 ? W1 : W2; Y = m.Y[i]; rows = m.rows[i]; }
        }
    }
    const int r0 = tile * MQ_ROWS + g, r1 = r0 + 8;
    const size_t rb = (size_t)nblk * U::BB;
    const uint8_t *w0 = W + (size_t)min(r0, rows - 1) * rb, *w1 = W + (size_t)min(r1, rows - 1) * rb;
    const uint8_t *u0 = EP == EP_GLU ? W1 + (size_t)min(r0, rows - 1) * rb : w0;   /* up's rows */
    const uint8_t *u1 = EP == EP_GLU ? W1 + (size_t)min(r1, rows - 1) * rb : w1;

    float acc[NA * NT][4];
#pragma unroll
    for (int i = 0; i < NA * NT; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    const int ng = nblk * M::NG;
#pragma unroll(NT == 1 && EP != EP_GLU ? 4 : 2)
    for (int gi = warp; gi < ng; gi += MQ_WARPS) {             /* unrolled: the next groups' loads overlap */
        const int b = gi / M::NG, j = gi % M::NG;
        uint32_t A[4];
        float s[4];
        mq_frag<M>(w0 + (size_t)b * U::BB, w1 + (size_t)b * U::BB, j, t, A, s);
        mq_group<M, NT>(acc, A, s, xq, xds, k, nxb, gi, nc, g, t);
        if (EP == EP_GLU) {
            mq_frag<M>(u0 + (size_t)b * U::BB, u1 + (size_t)b * U::BB, j, t, A, s);
            mq_group<M, NT>(acc + NT, A, s, xq, xds, k, nxb, gi, nc, g, t);
        }
    }

    /* the warps' partials, in warp order */
    if (warp > 0) {
#pragma unroll
        for (int i = 0; i < NA * NT; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) red[warp - 1][i * 4 + e][lane] = acc[i][e];
    }
    __syncthreads();
    if (warp == 0) {
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if (nt * 8 >= nc) break;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float v = acc[nt][e], vu = acc[NA * NT - NT + nt][e];
#pragma unroll
                for (int w = 0; w < MQ_WARPS - 1; w++) {
                    v += red[w][nt * 4 + e][lane];
                    if (EP == EP_GLU) vu += red[w][(NT + nt) * 4 + e][lane];
                }
                const int row = e < 2 ? r0 : r1, col = nt * 8 + 2 * t + (e & 1);
                if (row < rows && col < nc)
                    Y[(size_t)(c0 + col) * rows + row] = EP == EP_GLU ? glu_act(v, vu, gelu) : v;
            }
        }
    }
    if (EP == EP_RES) residual_epilogue(r, m.Y[0], m.rows[0], ncols);
}

template <class M, int NT, bool SX, int EP>
static cudaError_t mq_launch(const mm_set &m, int tiles, int k, const float *X, const uint8_t *xq, int ncols, int gelu,
                             const mm_residual &r, cudaStream_t st) {
    static_assert(MM_MAX == 3, "one __restrict__ weight parameter per matrix of the set");
    const dim3 grid((unsigned)tiles, (unsigned)((ncols + NT * 8 - 1) / (NT * 8)));
    const uint8_t *w0 = (const uint8_t *)m.W[0], *w1 = (const uint8_t *)m.W[1], *w2 = (const uint8_t *)m.W[2];
    mmq_kernel<M, NT, SX, EP><<<grid, MQ_WARPS * 32, 0, st>>>(w0, w1, w2, m, k, X, xq, ncols, gelu, r);
    return cudaGetLastError();
}

/* a launch of at most 16 columns (decode, verify) whose copy fits a block's shared memory */
static int x_in_smem(int k, int ncols) { return ncols <= 16 && (long long)ncols * k * 5 / 4 <= MQ_XSMEM; }

template <class M, int EP>
static cudaError_t mq_run(const mm_set &m, int k, const float *X, int ncols, int gelu, const mm_residual &r, void *q8,
                          cudaStream_t st) {
    if (k % M::U::QK) return cudaErrorInvalidValue;
    long long tiles = 0;
    for (int i = 0; i < (EP == EP_GLU ? 1 : MM_MAX); i++) tiles += (m.rows[i] + MQ_ROWS - 1) / MQ_ROWS;
    if (tiles <= 0 || tiles > 0x7fffffffLL) return cudaErrorInvalidValue;
    if (x_in_smem(k, ncols))                       /* one n-tile, or two: all the columns in one pass */
        return ncols <= 8 ? mq_launch<M, 1, true, EP>(m, (int)tiles, k, X, NULL, ncols, gelu, r, st)
                          : mq_launch<M, 2, true, EP>(m, (int)tiles, k, X, NULL, ncols, gelu, r, st);
    if (!q8 || (ncols + MQ_NT_BATCH * 8 - 1) / (MQ_NT_BATCH * 8) > 65535) return cudaErrorInvalidValue;
    const long long nblocks = (long long)ncols * (k / 32), grid = (nblocks + 15) / 16;
    uint8_t *q = (uint8_t *)q8;
    q8_1_kernel<<<(unsigned)(grid < 65535 ? grid : 65535), 128, 0, st>>>(X, nblocks, q, (float2 *)(q + (size_t)ncols * k));
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    return mq_launch<M, MQ_NT_BATCH, false, EP>(m, (int)tiles, k, X, q, ncols, gelu, r, st);
}

int cu_mmq_type(int type) {
    switch (type) {
#define MQ_CASE(M) case M::U::type: return 1;
        LLMCUDA_FOR_EACH_MQ(MQ_CASE)
#undef MQ_CASE
    default: return 0;
    }
}

cudaError_t cu_mmq(int type, const mm_set *m, int k, const float *X, int ncols, const mm_residual *r, int glu,
                   int gelu, void *q8, cudaStream_t st) {
    const mm_residual none = {};
    switch (type) {
#define MQ_CASE(M) case M::U::type: \
        return glu ? mq_run<M, EP_GLU>(*m, k, X, ncols, gelu, none, q8, st) \
             : r ? mq_run<M, EP_RES>(*m, k, X, ncols, 0, *r, q8, st) : mq_run<M, EP_SET>(*m, k, X, ncols, 0, none, q8, st);
        LLMCUDA_FOR_EACH_MQ(MQ_CASE)
#undef MQ_CASE
    default: return cudaErrorInvalidValue;
    }
}
