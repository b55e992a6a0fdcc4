/* GGUF string-array scanning (stub, being written). */
#include "internal.h"

long long llm_gguf_scan_strings(const unsigned char *buf, long long size, long long off,
                                long long count, long long max_len,
                                long long *offsets, long long *lengths) {
    (void)buf; (void)size; (void)off; (void)count; (void)max_len; (void)offsets; (void)lengths; return -1;
}
