/* Machine probes (stub, being written). */
#include <time.h>
#include "internal.h"

double llm_now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
double llm_probe_read_bw(long long bytes, int threads, int reps) { (void)bytes; (void)threads; (void)reps; return 0.0; }
