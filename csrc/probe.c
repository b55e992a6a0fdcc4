/* Machine probes: a monotonic clock and a memory read-bandwidth measurement.
 *
 * llm_probe_read_bw reads a buffer with the thread pool, each thread summing its
 * contiguous share with the widest loads the CPU has (AVX-512, AVX2, or plain
 * 64-bit words), and reports GB/s (1e9 bytes/s), best of `reps` passes (per
 * chunk, see below).
 * It is the ceiling a memory-bound matvec can reach on this machine.
 *
 * The buffer asks for 2 MiB pages by default (as numpy does for big arrays); on a
 * virtual machine 4 KiB pages can cost a good part of the bandwidth in TLB misses.
 * llm_probe_read_bw_pages(..., 0) measures with 4 KiB pages, which is what a
 * matvec over weights mapped from a file (page cache) gets. */
#include <stdlib.h>
#include <time.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PROBE_X86 1
#endif

double llm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef unsigned long long (*sum_fn)(const unsigned char *p, size_t n);

/* n is a multiple of 64 and p is 64-byte aligned in every reader below */
static unsigned long long sum_scalar(const unsigned char *p, size_t n) {
    const unsigned long long *q = (const unsigned long long *)p;
    unsigned long long a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < n / 8; i += 8) {
        a0 += q[i] + q[i + 4];
        a1 += q[i + 1] + q[i + 5];
        a2 += q[i + 2] + q[i + 6];
        a3 += q[i + 3] + q[i + 7];
    }
    return a0 + a1 + a2 + a3;
}

#ifdef PROBE_X86
__attribute__((target("avx2")))
static unsigned long long sum_avx2(const unsigned char *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    for (; i < n; i += 32) a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    unsigned long long out[4];
    _mm256_storeu_si256((__m256i *)out, s);
    return out[0] + out[1] + out[2] + out[3];
}

__attribute__((target("avx512f")))
static unsigned long long sum_avx512(const unsigned char *p, size_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 256 <= n; i += 256) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    for (; i < n; i += 64) a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)(p + i)));
    return (unsigned long long)_mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}
#endif

static sum_fn pick_sum(void) {
#ifdef PROBE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return sum_avx512;
    if (__builtin_cpu_supports("avx2")) return sum_avx2;
#endif
    return sum_scalar;
}

typedef struct {
    unsigned char *buf;    /* the chunk being read */
    size_t lines;          /* 64-byte lines in it */
    sum_fn sum;
    int touch;             /* 1: write the pages (first touch), 0: read */
    unsigned long long sink[256];
} probe_job;

static void probe_task(int ith, int nth, void *arg) {
    probe_job *j = arg;
    size_t l0 = j->lines * ith / nth, l1 = j->lines * (ith + 1) / nth;
    unsigned char *p = j->buf + l0 * 64;
    size_t n = (l1 - l0) * 64;
    if (j->touch) {   /* distinct contents everywhere: no page can be shared or compressed */
        unsigned long long *q = (unsigned long long *)p, x = (unsigned long long)(uintptr_t)p;
        for (size_t i = 0; i < n / 8; i++) q[i] = (x + i) * 0x9E3779B97F4A7C15ull;
        return;
    }
    unsigned long long s = n ? j->sum(p, n) : 0;
    if (ith < 256) j->sink[ith] += s;
}

#define HUGE_PAGE (2u << 20)
#define CHUNK_LINES ((8u << 20) / 64)   /* 8 MiB per timed pool call */

/* The buffer is read in 8 MiB chunks, one pool call each, like a matvec over one
 * weight; each chunk keeps its best time over the passes and the figure is the
 * size over the sum. On a shared machine a whole 512 MiB pass is nearly always
 * preempted somewhere, a sub-millisecond chunk mostly is not. Between two reads
 * of a chunk the whole buffer goes by, so the chunks come from memory. */
double llm_probe_read_bw_pages(long long bytes, int threads, int reps, int huge_pages) {
    if (bytes < 4096) bytes = 4096;
    if (reps < 1) reps = 1;
    size_t lines = (size_t)bytes / 64;
    size_t size = lines * 64;
    size_t alloc = (size + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    size_t nchunks = (lines + CHUNK_LINES - 1) / CHUNK_LINES;
    probe_job *j = calloc(1, sizeof *j);
    double *best = malloc(nchunks * sizeof *best);
    unsigned char *buf = aligned_alloc(HUGE_PAGE, alloc);
    if (!j || !best || !buf) { free(j); free(best); free(buf); return 0.0; }
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
    madvise(buf, alloc, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);  /* advice only */
#else
    (void)huge_pages;
#endif
    j->sum = pick_sum();

    int prev = llm_get_threads();
    llm_set_threads(threads);

    /* pass -2 first-touches each thread's share of each chunk, pass -1 warms up
     * (TLB, pool threads awake), then `reps` timed passes */
    for (int r = -2; r < reps; r++) {
        j->touch = r == -2;
        for (size_t c = 0; c < nchunks; c++) {
            size_t l0 = c * CHUNK_LINES, l1 = l0 + CHUNK_LINES < lines ? l0 + CHUNK_LINES : lines;
            j->buf = buf + l0 * 64;
            j->lines = l1 - l0;
            double t0 = llm_now();
            llm_parallel_all(probe_task, j);
            double dt = llm_now() - t0;
            if (r == 0 || (r > 0 && dt < best[c])) best[c] = dt;
        }
    }
    double total = 0.0;
    for (size_t c = 0; c < nchunks; c++) total += best[c];

    /* keep the sums observable so the reads cannot be dropped */
    volatile unsigned long long keep = 0;
    for (int i = 0; i < 256; i++) keep += j->sink[i];
    (void)keep;

    llm_set_threads(prev);
    free(buf);
    free(best);
    free(j);
    return total > 0 ? size / total * 1e-9 : 0.0;
}

double llm_probe_read_bw(long long bytes, int threads, int reps) {
    return llm_probe_read_bw_pages(bytes, threads, reps, 1);
}
