/* A model file that shrinks under the process (truncated, or rewritten in place)
 * takes the pages past its new end out of every mapping of it: the next read of one
 * raises SIGBUS inside the forward pass, whose default action kills the process
 * without a word. Python's signal module cannot help: its handlers run between
 * bytecodes, after the faulting C code has faulted again.
 *
 * llm_sigbus_watch registers a mapping and the line to print when a read inside it
 * faults. The handler only does async-signal-safe things: it compares the fault's
 * address with the watched ranges, write(2)s the line preformatted at load time, and
 * _exit(1)s (status 1: the CLI's for an error of the engine, not 128 + SIGBUS). A
 * fault elsewhere, or a SIGBUS sent by kill, goes to the handler there was before
 * (the default, or faulthandler's): it is put back, and the faulting read runs again.
 * Those paths end the process anyway; until the next watch call the watched ranges
 * then have no line. A handler someone installs after ours (faulthandler enabled
 * later) takes the fault first, and the process ends its way, without our line. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "llmlite.h"

enum { WATCH_SLOTS = 32, LINE_BYTES = 1024 };

typedef struct {
    volatile sig_atomic_t used;
    uintptr_t lo, hi;
    size_t len;
    char line[LINE_BYTES];
} watch;

static watch watches[WATCH_SLOTS];
static struct sigaction previous;   /* the handler before ours, put back for faults not ours */
static volatile sig_atomic_t installed;
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;   /* two loads at once (the handler never takes it) */

static void on_sigbus(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    uintptr_t a = (uintptr_t)si->si_addr;
    if (si->si_code > 0) /* a fault, not kill/raise: si_addr is the address read */
        for (int i = 0; i < WATCH_SLOTS; i++)
            if (__atomic_load_n(&watches[i].used, __ATOMIC_ACQUIRE) && a >= watches[i].lo && a < watches[i].hi) {
                ssize_t w = write(STDERR_FILENO, watches[i].line, watches[i].len);
                (void)w;
                _exit(1);
            }
    sigaction(SIGBUS, &previous, NULL);
    installed = 0;
    if (si->si_code <= 0) raise(sig);   /* pending until we return, then the previous handler's */
}

static int watch_locked(const void *addr, long long len, const char *line);

int llm_sigbus_watch(const void *addr, long long len, const char *line) {
    if (!addr || len <= 0 || !line) return -1;
    pthread_mutex_lock(&watch_lock);
    const int slot = watch_locked(addr, len, line);
    pthread_mutex_unlock(&watch_lock);
    return slot;
}

static int watch_locked(const void *addr, long long len, const char *line) {
    for (int i = 0; i < WATCH_SLOTS; i++) {
        watch *w = &watches[i];
        if (w->used) continue;
        size_t n = strlen(line);
        if (n > LINE_BYTES - 1) n = LINE_BYTES - 1;
        memcpy(w->line, line, n);
        if (n == 0 || w->line[n - 1] != '\n') {   /* a line cut to fit still ends one */
            if (n == LINE_BYTES - 1) n--;
            w->line[n++] = '\n';
        }
        w->len = n;
        w->lo = (uintptr_t)addr;
        w->hi = w->lo + (uintptr_t)len;
        __atomic_store_n(&w->used, 1, __ATOMIC_RELEASE);   /* the handler sees a slot only when filled */
        if (!installed) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_sigaction = on_sigbus;
            sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
            sigemptyset(&sa.sa_mask);
            if (sigaction(SIGBUS, &sa, &previous) != 0) {
                w->used = 0;
                return -1;
            }
            installed = 1;
        }
        return i;
    }
    return -1;
}

void llm_sigbus_unwatch(int slot) {
    if (slot >= 0 && slot < WATCH_SLOTS) watches[slot].used = 0;
}
