/* The decode copies (repack.c) moved into 2 MiB pages while the model runs.
 *
 * Decode reads every copy once a token. Over 4 KiB pages each page costs a TLB miss
 * and the hardware prefetcher stops at every page's end; in 2 MiB pages the 1.5 B
 * shape decoded at 48-50 t/s against 39-40 in the same process (2 threads), and a
 * plain read of 4 KiB pages ran at 22 GB/s against 34 in 2 MiB ones (one thread).
 *
 * Asking for them when the copies are made (MADV_HUGEPAGE before they are filled)
 * cost the load 2 s a GB on this machine, a virtual machine whose host backs each
 * free 2 MiB block on its first touch (a bare machine fills 2 MiB pages faster than
 * 4 KiB ones). The kernel's own move (MADV_COLLAPSE) holds the process's mmap lock
 * for writing while it copies each range, so every page fault of the other threads
 * waited behind it: `run -p Hi -n 1` took 1 s longer on the 1.5 B shape.
 *
 * So the copies are made in 4 KiB pages, as fast as before, and then a thread of
 * its own builds a second arena that asks for huge pages, copy by copy: it maps the
 * pages the copy needs and copies it, 2 MiB at a time, each piece in a pause of the
 * model (after its first forward pass, none for 20 ms: a chat's reading and typing, a
 * server between requests; beside a `run -p Hi -n 1` it cost the 8 B shape's whole
 * process 0.5-0.8 s, its host faults and the process's mmap lock in the way), points
 * the tensor at the new copy, waits until no forward pass that may hold the old
 * pointer is running (llm_model.fwd_in, fwd_out) and lets the old pages go.
 * It runs at SCHED_IDLE, so a pass that starts meanwhile takes the core. The extra
 * memory at any moment is one copy (the head, the largest). Same bytes, same logits.
 * `llmlite bench` waits for it before timing decode (llmlite/bench.py). */
#define _GNU_SOURCE   /* SCHED_IDLE */
#include <stdlib.h>
#include <string.h>
#include "model.h"

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct llm_huge {
    pthread_t th;
    pid_t pid;              /* the process that started it (a forked child has no such thread) */
    llm_model *m;
    char *old, *p;          /* the 4 KiB arena, the huge one (same offsets) */
    size_t n;
    atomic_int stop;
    atomic_llong done;      /* bytes of copies moved */
    atomic_int finished;    /* the thread has gone through every copy, or stopped */
};

static void sleep_ms(int ms) {
    const struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

static unsigned long n_in(const llm_huge *h) { return __atomic_load_n(&h->m->fwd_in, __ATOMIC_SEQ_CST); }
static unsigned long n_out(const llm_huge *h) { return __atomic_load_n(&h->m->fwd_out, __ATOMIC_SEQ_CST); }

/* until every forward pass that started before now has ended */
static void wait_quiet(llm_huge *h) {
    const unsigned long in = n_in(h);
    while (n_out(h) < in && !atomic_load(&h->stop)) sleep_ms(1);
}

/* until the model has run a forward pass and then none for IDLE_MS: the work is done
 * in the pauses of a session (a chat's reading and typing, a server between requests),
 * never beside a load, a prefill or a decode; returns the pass count it saw */
#define IDLE_MS 20
static unsigned long wait_idle(llm_huge *h) {
    for (;;) {
        const unsigned long in = n_in(h);
        if (atomic_load(&h->stop)) return in;
        sleep_ms(IDLE_MS);
        if (in >= 1 && n_out(h) == in && n_in(h) == in) return in;
    }
}

/* one copy into the new arena, 2 MiB at a time, each piece in a pause */
static int move_one(llm_huge *h, const llm_tensor *t, size_t *mapped, unsigned long *quiet) {
    const char *old = t->x4;
    const size_t off = (size_t)(old - h->old), size = llm_x4_size(t);
    for (size_t a = off; a < off + size;) {
        if (n_in(h) != *quiet || n_out(h) != *quiet) *quiet = wait_idle(h);
        if (atomic_load(&h->stop)) return -1;
        const size_t b = off + size - a < LLM_HUGE_PAGE ? off + size : a + LLM_HUGE_PAGE;
        while (*mapped < b) {   /* the new arena's pages, 2 MiB-aligned pieces from its start */
            const size_t step = h->n - *mapped < LLM_HUGE_PAGE ? h->n - *mapped : LLM_HUGE_PAGE;
#ifdef MADV_POPULATE_WRITE
            madvise(h->p + *mapped, step, MADV_POPULATE_WRITE);   /* refused before Linux 5.14: memcpy faults them */
#endif
            *mapped += step;
        }
        memcpy(h->p + a, old + (a - off), b - a);
        a = b;
    }
    /* the new copy's bytes before its address; a forward pass entering after the
     * fwd_in read in wait_quiet sees the new address */
    __atomic_store_n(&((llm_tensor *)t)->x4, (const void *)(h->p + off), __ATOMIC_SEQ_CST);
    wait_quiet(h);
    /* the old pages let go 2 MiB at a time in pauses too (each call flushes the other
     * cores' TLBs and holds the mmap lock) */
    const size_t pages = (size + 4095) / 4096 * 4096;   /* a copy starts on a page */
    for (size_t a = 0; a < pages; a += LLM_HUGE_PAGE) {
        if (n_in(h) != *quiet || n_out(h) != *quiet) *quiet = wait_idle(h);
        if (atomic_load(&h->stop)) return -1;   /* the model is being freed: both arenas go */
        madvise((void *)(old + a), pages - a < LLM_HUGE_PAGE ? pages - a : LLM_HUGE_PAGE, MADV_DONTNEED);
    }
    atomic_fetch_add(&h->done, (long long)size);
    return 0;
}

static void *move_all(void *arg) {
    llm_huge *h = arg;
    const struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    size_t mapped = 0;        /* the new arena's bytes mapped so far, from its start */
    unsigned long quiet = ~0ul;   /* the pass count at the last pause seen (none yet) */
    const llm_tensor *t;
    for (int i = 0; (t = llm_x4_tensor(h->m, i)) && !atomic_load(&h->stop); i++) {
        const char *old = t->x4;
        if (old && old >= h->old && old < h->old + h->n && move_one(h, t, &mapped, &quiet)) break;
    }
    atomic_store(&h->finished, 1);
    return NULL;
}

/* transparent huge pages not off (MADV_HUGEPAGE succeeds whatever the setting) */
static int thp_on(void) {
    char buf[128] = {0};
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return 0;
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return n > 0 && !strstr(buf, "[never]");
}

int llm_model_huge_start(llm_model *m) {
    if (m->huge || !m->x4_arena || m->x4_arena_bytes < LLM_HUGE_PAGE || !thp_on()) return -1;
    llm_huge *h = calloc(1, sizeof *h);
    if (!h) return -1;
    h->n = m->x4_arena_bytes;
    char *raw = mmap(NULL, h->n + LLM_HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        free(h);
        return -1;
    }
    h->p = (char *)(((uintptr_t)raw + LLM_HUGE_PAGE - 1) & ~(uintptr_t)(LLM_HUGE_PAGE - 1));   /* n: whole 2 MiB pages */
    if (h->p > raw) munmap(raw, (size_t)(h->p - raw));
    munmap(h->p + h->n, (size_t)(raw + LLM_HUGE_PAGE - h->p));
    if (madvise(h->p, h->n, MADV_HUGEPAGE)) {   /* a kernel without them */
        munmap(h->p, h->n);
        free(h);
        return -1;
    }
    h->m = m;
    h->old = m->x4_arena;
    h->pid = getpid();
    if (pthread_create(&h->th, NULL, move_all, h)) {
        munmap(h->p, h->n);
        free(h);
        return -1;
    }
    m->huge = h;
    return 0;
}

char *llm_huge_stop(llm_model *m) {
    llm_huge *h = m->huge;
    if (!h) return NULL;
    m->huge = NULL;
    char *p = h->p;
    if (h->pid == getpid()) {   /* a forked child: the thread is its parent's */
        atomic_store(&h->stop, 1);
        pthread_join(h->th, NULL);
    }
    free(h);
    return p;
}

long long llm_model_huge_bytes(const llm_model *m) {
    return m->huge ? atomic_load(&m->huge->done) : 0;
}

int llm_model_huge_busy(const llm_model *m) {
    return m->huge && m->huge->pid == getpid() && !atomic_load(&m->huge->finished);
}

#else   /* the copies stay in the pages they have */

int llm_model_huge_start(llm_model *m) {
    (void)m;
    return -1;
}
char *llm_huge_stop(llm_model *m) {
    (void)m;
    return NULL;
}
long long llm_model_huge_bytes(const llm_model *m) {
    (void)m;
    return 0;
}
int llm_model_huge_busy(const llm_model *m) {
    (void)m;
    return 0;
}

#endif
