/* The decode copies (repack.c) moved into 2 MiB pages while the model runs.
 *
 * Decode reads every copy once a token. Over 4 KiB pages each page costs a TLB miss
 * and the hardware prefetcher stops at every page's end; in 2 MiB pages the 1.5 B
 * shape decoded at 50-51 t/s against 30-38 (2 threads, 3 alternated runs), and a
 * plain read of 4 KiB pages ran at 22 GB/s against 34 in 2 MiB ones (one thread).
 *
 * Asking for them when the copies are made (MADV_HUGEPAGE before they are filled)
 * cost the load 2 s a GB on this machine, a virtual machine whose host backs each
 * free 2 MiB block on its first touch (a bare machine fills 2 MiB pages faster than
 * 4 KiB ones). So the copies are made in 4 KiB pages, as fast as before, and then one
 * thread asks the kernel to move the arena, 2 MiB at a time from its start (the first
 * layers), into huge pages (MADV_COLLAPSE, Linux 6.1): the kernel copies each range
 * into a 2 MiB page and swaps the page table entry, while decode goes on reading
 * (same bytes, same logits). A kernel without MADV_COLLAPSE, or with transparent huge
 * pages off, refuses the first call and the copies stay where they are. The thread
 * stops when the model is freed (after the range it is on: milliseconds). */
#include <stdlib.h>
#include "model.h"

#ifdef __linux__
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define MAX_MISSES 8   /* ranges refused in a row (no free 2 MiB block): give up */

struct llm_huge {
    pthread_t th;
    pid_t pid;              /* the process that started it (a forked child has no such thread) */
    char *p;
    size_t n;
    atomic_int stop;
    atomic_llong done;      /* bytes moved */
    atomic_int finished;    /* the thread has gone through the arena, or given up */
};

static void *collapse_all(void *arg) {
    struct llm_huge *h = arg;
    int misses = 0;
    for (size_t o = 0; o + LLM_HUGE_PAGE <= h->n && !atomic_load(&h->stop); o += LLM_HUGE_PAGE) {
        if (madvise(h->p + o, LLM_HUGE_PAGE, MADV_COLLAPSE) == 0) {
            atomic_fetch_add(&h->done, LLM_HUGE_PAGE);
            misses = 0;
        } else if (errno == EINVAL || errno == EPERM || ++misses >= MAX_MISSES) {
            break;   /* not on this kernel, or off */
        }
    }
    atomic_store(&h->finished, 1);
    return NULL;
}

int llm_model_huge_start(llm_model *m) {
    if (m->huge || !m->x4_arena || m->x4_arena_bytes < LLM_HUGE_PAGE) return -1;
    struct llm_huge *h = calloc(1, sizeof *h);
    if (!h) return -1;
    h->p = m->x4_arena;
    h->n = m->x4_arena_bytes;
    h->pid = getpid();
    if (pthread_create(&h->th, NULL, collapse_all, h)) {
        free(h);
        return -1;
    }
    m->huge = h;
    return 0;
}

void llm_huge_stop(llm_model *m) {
    struct llm_huge *h = m->huge;
    if (!h) return;
    m->huge = NULL;
    if (h->pid != getpid()) return;   /* a forked child: the thread is its parent's */
    atomic_store(&h->stop, 1);
    pthread_join(h->th, NULL);
    free(h);
}

long long llm_model_huge_bytes(const llm_model *m) {
    return m->huge ? atomic_load(&m->huge->done) : 0;
}

int llm_model_huge_busy(const llm_model *m) {
    return m->huge && !atomic_load(&m->huge->finished);
}

#else   /* no MADV_COLLAPSE: the copies stay in the pages they have */

int llm_model_huge_start(llm_model *m) {
    (void)m;
    return -1;
}
void llm_huge_stop(llm_model *m) { (void)m; }
long long llm_model_huge_bytes(const llm_model *m) {
    (void)m;
    return 0;
}
int llm_model_huge_busy(const llm_model *m) {
    (void)m;
    return 0;
}

#endif
