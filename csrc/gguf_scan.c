/* GGUF string-array scanning: walks u64-length-prefixed strings with every
 * length checked against the buffer before it is used. */
#include "internal.h"

static inline uint64_t rd_u64le(const unsigned char *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

long long llm_gguf_scan_strings(const unsigned char *buf, long long size, long long off,
                                long long count, long long max_len,
                                long long *offsets, long long *lengths) {
    if (!buf || size < 0 || off < 0 || off > size || count < 0 || max_len < 0) return -1;
    uint64_t pos = (uint64_t)off, end = (uint64_t)size, lim = (uint64_t)max_len;
    for (long long i = 0; i < count; i++) {
        if (end - pos < 8) return -1;
        uint64_t len = rd_u64le(buf + pos);
        pos += 8;
        if (len > lim || len > end - pos) return -1;
        if (offsets) offsets[i] = (long long)pos;
        if (lengths) lengths[i] = (long long)len;
        pos += len;
    }
    return (long long)pos;
}
