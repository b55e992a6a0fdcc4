/* The thread pool: the calling thread is worker 0; the others spin briefly on a
 * generation counter, then sleep on a condition variable.
 *
 * Two kinds of job. llm_parallel_all: every thread runs fn once with its own ith
 * (static shares, the bandwidth probe). llm_parallel: fn hands out its work
 * dynamically (tiles taken from a shared counter), so it is done by whichever
 * threads come: a worker joins only while the job is open, and when worker 0 has
 * run out of work it closes the job and waits only for the workers that joined.
 * A worker the OS has descheduled (another program busy on its core) then costs
 * nothing, instead of a scheduler time slice at every one of the ~300 jobs of a
 * token. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_THREADS 256
#define SPIN_LIMIT 20000
#define DOOR_CLOSED (1ull << 31)
#define DOOR_ALL (1ull << 30)           /* every thread runs it (llm_parallel_all) */
#define DOOR_COUNT (DOOR_ALL - 1)

static struct {
    int n;                          /* threads in use, the caller included */
    pthread_t th[MAX_THREADS];
    atomic_uint gen;
    unsigned start_gen;             /* gen when the workers were created (see worker) */
    atomic_int pending;             /* llm_parallel_all: workers still running */
    atomic_ullong door;             /* the job: gen << 32 | CLOSED | ALL | workers inside */
    atomic_int sleeping;
    atomic_int stop;
    llm_task_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} P = {.n = 0, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *worker(void *p) {
    int ith = (int)(intptr_t)p;
    /* the generation at creation, not at thread start: a thread that starts late
     * must still see a job (or a stop) posted right after llm_set_threads */
    unsigned seen = P.start_gen;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen) {
            if (++spins < SPIN_LIMIT) { CPU_RELAX(); continue; }
            pthread_mutex_lock(&P.mu);
            atomic_fetch_add(&P.sleeping, 1);
            while (atomic_load(&P.gen) == seen) pthread_cond_wait(&P.cv, &P.mu);
            atomic_fetch_sub(&P.sleeping, 1);
            pthread_mutex_unlock(&P.mu);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&P.stop)) return NULL;
        unsigned long long d = atomic_load_explicit(&P.door, memory_order_acquire);
        if ((unsigned)(d >> 32) != g) continue;      /* job g is over and a newer one posted */
        if (d & DOOR_ALL) {          /* worker 0 waits for us: fn, P.fn and P.arg stay job g's */
            P.fn(ith, P.n, P.arg);
            atomic_fetch_sub_explicit(&P.pending, 1, memory_order_release);
            continue;
        }
        /* come in only while this job is open; what is left of it is ours to help with */
        int in = 0;
        while ((unsigned)(d >> 32) == g && !(d & DOOR_CLOSED))
            if (atomic_compare_exchange_weak_explicit(&P.door, &d, d + 1, memory_order_acq_rel,
                                                      memory_order_acquire)) { in = 1; break; }
        if (!in) continue;
        P.fn(ith, P.n, P.arg);
        atomic_fetch_sub_explicit(&P.door, 1, memory_order_release);
    }
}

static void wake(void) {
    atomic_fetch_add(&P.gen, 1);
    if (atomic_load(&P.sleeping) > 0) {
        pthread_mutex_lock(&P.mu);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
    }
}

static void stop_workers(void) {
    if (P.n <= 1) { P.n = 0; return; }
    atomic_store(&P.stop, 1);
    wake();
    for (int i = 1; i < P.n; i++) pthread_join(P.th[i], NULL);
    atomic_store(&P.stop, 0);
    P.n = 0;
}

int llm_physical_cores(void) {
    /* count distinct (physical id, core id) pairs; fall back to online CPUs */
    FILE *f = fopen("/proc/cpuinfo", "r");
    int n = 0;
    if (f) {
        char line[256];
        int phys = 0, ids[1024], nids = 0;
        while (fgets(line, sizeof line, f)) {
            int v;
            if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
            else if (sscanf(line, "core id : %d", &v) == 1) {
                int key = phys * 4096 + v, seen = 0;
                for (int i = 0; i < nids; i++) if (ids[i] == key) { seen = 1; break; }
                if (!seen && nids < 1024) ids[nids++] = key;
            }
        }
        fclose(f);
        n = nids;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0 || n > online) n = (int)(online > 0 ? online : 1);
    return n;
}

int llm_set_threads(int n) {
    if (n <= 0) n = llm_physical_cores();
    if (n > MAX_THREADS) n = MAX_THREADS;
    if (n == P.n) return n;
    stop_workers();
    P.n = n;
    P.start_gen = atomic_load(&P.gen);
    for (int i = 1; i < n; i++) {
        if (pthread_create(&P.th[i], NULL, worker, (void *)(intptr_t)i) != 0) { P.n = i; break; }
    }
    return P.n;
}

int llm_get_threads(void) {
    if (P.n == 0) llm_set_threads(0);
    return P.n;
}

void llm_parallel_all(llm_task_fn fn, void *arg) {
    if (P.n == 0) llm_set_threads(0);
    if (P.n == 1) { fn(0, 1, arg); return; }
    P.fn = fn;
    P.arg = arg;
    atomic_store(&P.pending, P.n - 1);
    const unsigned g = atomic_load(&P.gen) + 1;     /* the generation wake() is about to post */
    atomic_store_explicit(&P.door, (unsigned long long)g << 32 | DOOR_ALL, memory_order_release);
    wake();
    fn(0, P.n, arg);
    while (atomic_load_explicit(&P.pending, memory_order_acquire) > 0) CPU_RELAX();
}

void llm_parallel(llm_task_fn fn, void *arg) {
    if (P.n == 0) llm_set_threads(0);
    if (P.n == 1) { fn(0, 1, arg); return; }
    P.fn = fn;
    P.arg = arg;
    const unsigned g = atomic_load(&P.gen) + 1;     /* the generation wake() is about to post */
    atomic_store_explicit(&P.door, (unsigned long long)g << 32, memory_order_release);
    wake();
    fn(0, P.n, arg);
    /* no work left: shut the door, then wait for those inside */
    unsigned long long d = atomic_load_explicit(&P.door, memory_order_acquire);
    while (!atomic_compare_exchange_weak_explicit(&P.door, &d, d | DOOR_CLOSED, memory_order_acq_rel,
                                                  memory_order_acquire)) {}
    while (atomic_load_explicit(&P.door, memory_order_acquire) & DOOR_COUNT) CPU_RELAX();
}
