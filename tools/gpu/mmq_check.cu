/* Matmul-level check of the integer kernels (csrc/cuda/mmq.cu), not part of the library:
 * for each type with integer kernels, random rows quantized by the CPU, random
 * activations, cu_matmul at 1 to 40 columns (k 512 and 4096: both places of X's Q8_1
 * copy, mmq.cu) against a double-precision
 * reference (the CPU-dequantized weights times the Q8_1 activations, q * d, that the
 * kernels multiply), and the structure, bit for bit: every column of every batch equals
 * the one-column run of that column (batch invariance), the Q/K/V set and gate + up +
 * activation equal their separate launches.
 *
 * Built with the library's sources: by tools/gpu/emu/emu_build.sh (emulated, no GPU) or
 * tools/gpu/gpu_check.sh (nvcc). Exit 0: all passed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
extern "C" {
#include "llmlite.h"
}
#include "matmul.cuh"
#include "mmq.cuh"
#include "ops.cuh"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd() { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)rng; }
static float rndf() { return ((rnd() >> 8) * (1.0f / 16777216.0f)) * 2.0f - 1.0f; }
static int fails;

/* x as the kernels multiply it: blocks of 32, q = rne(x*127/amax), d = amax/127 as F16 */
static void q8_ref(const float *x, double *y, long long n) {
    for (long long b = 0; b < n; b += 32) {
        float amax = 0.f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b + i]));
        const float id = amax != 0.f ? 127.f / amax : 0.f, d = __half2float(__float2half_rn(amax / 127.f));
        for (int i = 0; i < 32; i++) y[b + i] = (double)(int)fminf(fmaxf(rintf(x[b + i] * id), -128.f), 127.f) * d;
    }
}

template <class T> static T *dev(const std::vector<T> &h) {
    T *p = NULL;
    cudaMalloc((void **)&p, h.size() * sizeof(T));
    cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
    return p;
}
static std::vector<float> host(const float *d, size_t n) {
    std::vector<float> h(n);
    cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return h;
}
static void ok(int cond, const char *what, const char *name, int n) {
    if (!cond) { printf("  %-5s %-44s ncols %2d  FAIL\n", name, what, n); fails++; }
}

static void check_type(int type, const char *name, int k) {
    const int rows = 40, ncs[] = {1, 2, 8, 9, 16, 17, 40}, NMAX = 40;
    const long long rb = llm_row_bytes(type, k);
    /* three matrices (a set: rows, 16, 24 rows), each quantized from random floats */
    const int mr[3] = {rows, 16, 24};
    std::vector<uint8_t> wq[3];
    std::vector<float> wf[3];
    for (int i = 0; i < 3; i++) {
        std::vector<float> f((size_t)mr[i] * k);
        for (auto &v : f) v = rndf() * (1.0f + (float)(rnd() % 4));
        wq[i].resize((size_t)mr[i] * rb);
        wf[i].resize(f.size());
        if (llm_quantize_rows(type, f.data(), wq[i].data(), mr[i], k) || llm_dequantize(type, wq[i].data(), wf[i].data(), (long long)f.size())) {
            printf("  %s: cannot quantize\n", name);
            fails++;
            return;
        }
    }
    std::vector<float> x((size_t)NMAX * k);
    for (size_t i = 0; i < x.size(); i++) x[i] = rndf() * (i % 61 == 0 ? 8.f : 1.f);
    std::vector<double> xq(x.size());
    q8_ref(x.data(), xq.data(), (long long)x.size());
    uint8_t *W[3];
    for (int i = 0; i < 3; i++) W[i] = dev(wq[i]);
    float *X = dev(x), *Y = NULL, *Y1 = NULL, *Y2 = NULL, *Y3 = NULL;
    void *q8 = NULL;
    cudaMalloc((void **)&Y, (size_t)NMAX * rows * 4 * 4);
    cudaMalloc((void **)&Y1, (size_t)NMAX * rows * 4);
    cudaMalloc((void **)&Y2, (size_t)NMAX * rows * 4);
    cudaMalloc((void **)&Y3, (size_t)NMAX * rows * 4);
    cudaMalloc(&q8, (size_t)NMAX * k * 5 / 4);
    /* one column at a time: the reference of every batch below */
    std::vector<float> one((size_t)NMAX * rows);
    double worst = 0;
    for (int c = 0; c < NMAX; c++) {
        ok(cu_matmul(type, W[0], rows, k, X + (size_t)c * k, 1, Y, q8, 0) == cudaSuccess, "launch", name, 1);
        const std::vector<float> y = host(Y, rows);
        memcpy(&one[(size_t)c * rows], y.data(), rows * 4);
        for (int r = 0; r < rows; r++) {
            double ref = 0, mag = 0;
            for (int i = 0; i < k; i++) {
                ref += (double)wf[0][(size_t)r * k + i] * xq[(size_t)c * k + i];
                mag += fabs((double)wf[0][(size_t)r * k + i] * xq[(size_t)c * k + i]);
            }
            worst = fmax(worst, fabs(y[r] - ref) / mag);
        }
    }
    ok(worst < 1e-5, "one column against the double reference", name, 1);
    for (int n : ncs) {
        ok(cu_matmul(type, W[0], rows, k, X, n, Y, q8, 0) == cudaSuccess, "launch", name, n);
        const std::vector<float> y = host(Y, (size_t)n * rows);
        ok(!memcmp(y.data(), one.data(), y.size() * 4), "batch = one column at a time, bit for bit", name, n);
        /* the set: three matrices in one launch = three launches */
        mm_set m = {};
        float *ys[3] = {Y1, Y2, Y3};
        for (int i = 0; i < 3; i++) { m.W[i] = W[i]; m.Y[i] = ys[i]; m.rows[i] = mr[i]; }
        ok(cu_matmul_set(type, &m, k, X, n, q8, 0) == cudaSuccess, "launch set", name, n);
        for (int i = 0; i < 3; i++) {
            const std::vector<float> a = host(ys[i], (size_t)n * mr[i]);
            ok(cu_matmul(type, W[i], mr[i], k, X, n, Y, q8, 0) == cudaSuccess, "launch", name, n);
            const std::vector<float> b = host(Y, (size_t)n * mr[i]);
            ok(!memcmp(a.data(), b.data(), a.size() * 4), "Q/K/V set = separate launches", name, n);
        }
        /* gate + up + activation = two matmuls and cu_gated_act */
        for (int gelu = 0; gelu < 2; gelu++) {
            ok(cu_matmul_glu(type, W[0], W[2], 16, k, X, n, gelu, Y1, q8, 0) == cudaSuccess, "launch glu", name, n);
            ok(cu_matmul(type, W[0], 16, k, X, n, Y2, q8, 0) == cudaSuccess, "launch", name, n);
            ok(cu_matmul(type, W[2], 16, k, X, n, Y3, q8, 0) == cudaSuccess, "launch", name, n);
            ok(cu_gated_act(Y2, Y2, Y3, 16, n, 16, gelu, 0) == cudaSuccess, "launch act", name, n);
            const std::vector<float> a = host(Y1, (size_t)n * 16), b = host(Y2, (size_t)n * 16);
            ok(!memcmp(a.data(), b.data(), a.size() * 4), gelu ? "gate + up + GELU = separate" : "gate + up + SiLU = separate", name, n);
        }
    }
    printf("  %-5s k %4d: max error %.2e of sum |w x|; batches of 1, 2, 8, 9, 16, 17, 40 columns, set, glu  %s\n",
           name, k, worst, fails ? "" : "ok");
    for (int i = 0; i < 3; i++) cudaFree(W[i]);
    cudaFree(X); cudaFree(Y); cudaFree(Y1); cudaFree(Y2); cudaFree(Y3); cudaFree(q8);
}

int main() {
    cudaStreamSynchronize(0);
    printf("mmq_check: the integer matmul kernels against a double reference and themselves\n");
    const struct { int t; const char *n; } T[] = {{CT_Q4_0, "Q4_0"}, {CT_Q4_1, "Q4_1"}, {CT_Q5_0, "Q5_0"}, {CT_Q5_1, "Q5_1"},
                                              {CT_Q8_0, "Q8_0"}, {CT_Q2_K, "Q2_K"}, {CT_Q3_K, "Q3_K"}, {CT_Q4_K, "Q4_K"}, {CT_Q5_K, "Q5_K"}, {CT_Q6_K, "Q6_K"}};
    for (auto &t : T) {
        if (!cu_mmq_type(t.t)) { printf("  %s: no integer kernel\n", t.n); fails++; continue; }
        check_type(t.t, t.n, 512);       /* X's Q8_1 copy in shared memory up to 16 columns */
        check_type(t.t, t.n, 4096);      /* in global memory from 4 columns (a long row) */
    }
    printf(fails ? "mmq_check: %d FAILED\n" : "mmq_check: all passed\n", fails);
    return fails != 0;
}
