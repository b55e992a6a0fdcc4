/* The allowed-token mask of constrained decoding applied to one row of logits: a word
 * at a time, so a mostly-allowed or mostly-forbidden mask (the usual cases) costs a
 * compare per 32 ids. */
#include <math.h>
#include "llmlite.h"

void llm_mask_logits(float *logits, long long n, const unsigned int *mask, long long nwords) {
    for (long long w = 0; w * 32 < n; w++) {
        const unsigned int m = w < nwords ? mask[w] : 0u;
        if (m == 0xffffffffu) continue;
        const long long base = w * 32, end = base + 32 < n ? base + 32 : n;
        for (long long i = base; i < end; i++)
            if (!((m >> (i - base)) & 1u)) logits[i] = -INFINITY;
    }
}
