/* llmlite C API: the only header cffi reads. No preprocessor tricks here.
 *
 * Type ids are ggml's (GGMLQuantizationType):
 *   F32 0, F16 1, Q4_0 2, Q4_1 3, Q5_0 6, Q5_1 7, Q8_0 8, Q8_1 9,
 *   Q2_K 10, Q3_K 11, Q4_K 12, Q5_K 13, Q6_K 14, Q8_K 15, BF16 30.
 * A weight matrix is `rows` rows of `k` elements (GGUF ne[0] = k, ne[1] = rows),
 * row-major, each row a whole number of blocks.
 * Activations X are `ncols` columns (tokens) of `k` floats each, one column
 * after the other; the result Y is `ncols` columns of `rows` floats.
 */

/* ---- types (types.c) ---- */
int llm_type_supported(int type);            /* 1 if dequantize + matmul exist */
int llm_type_block_elems(int type);          /* elements per block, 0 if unknown */
int llm_type_block_bytes(int type);          /* bytes per block, 0 if unknown */
int llm_type_act_type(int type);             /* activation (vec_dot) type paired with a weight type */
long long llm_row_bytes(int type, long long n); /* bytes of n elements, -1 if n is not a block multiple */

/* ---- dequantization and activation quantizers (quants.c) ---- */
/* returns 0, or -1 for an unknown type or n not a block multiple */
int llm_dequantize(int type, const void *src, float *dst, long long n);
/* quantize n floats (a block multiple) to Q8_0 / Q8_1 / Q8_K activation
 * blocks, with the numerics llama.cpp uses on x86 (spec section 4) */
int llm_quantize_act(int act_type, const float *x, void *dst, long long n);

/* ---- ISA dispatch (dispatch.c) ---- */
const char *llm_isa_name(void);              /* "scalar", "avx2" or "avx512" */
int llm_set_isa(const char *name);           /* 0 ok, -1 unknown or not supported by this CPU */
int llm_cpu_has(const char *name);           /* 1 if the CPU supports "avx2" / "avx512" / "avx512vnni" */

/* ---- threads (threads.c) ---- */
int llm_set_threads(int n);                  /* n <= 0: physical cores; returns the count in use */
int llm_get_threads(void);
int llm_physical_cores(void);

/* ---- matmul (matmul.c) ---- */
/* Y[c*rows + r] = dot(W row r, X column c) for r < rows, c < ncols.
 * X is quantized to the paired activation type inside (into a reused scratch buffer).
 * Each column's result is bit-identical to the ncols == 1 product of that column.
 * Returns 0, or -1 on a bad type/size. */
int llm_matmul(int wtype, const void *W, long long rows, long long k,
               const float *X, long long ncols, float *Y);
/* the same with activations already converted: Xq holds ncols columns, each
 * llm_row_bytes(llm_type_act_type(wtype), k) bytes */
int llm_matmul_q(int wtype, const void *W, long long rows, long long k,
                 const void *Xq, long long ncols, float *Y);

/* ---- machine probes (probe.c) ---- */
/* read bandwidth in GB/s over `bytes` of memory with `threads` threads, best of `reps` */
double llm_probe_read_bw(long long bytes, int threads, int reps);
double llm_now(void);                        /* monotonic seconds */

/* ---- GGUF helpers (gguf_scan.c) ---- */
/* Walk `count` GGUF strings (u64 length + bytes) starting at buf[off], never
 * past buf[size]. Writes each string's data offset and length (if the arrays
 * are non-NULL). Returns the offset just past the last string, or -1 if the
 * data runs past the end or a length exceeds max_len. */
long long llm_gguf_scan_strings(const unsigned char *buf, long long size, long long off,
                                long long count, long long max_len,
                                long long *offsets, long long *lengths);
