/* llmlite C API: the only header cffi reads (without its # lines: the guard only).
 * No other preprocessor tricks here.
 *
 * Type ids are ggml's (GGMLQuantizationType):
 *   F32 0, F16 1, Q4_0 2, Q4_1 3, Q5_0 6, Q5_1 7, Q8_0 8, Q8_1 9,
 *   Q2_K 10, Q3_K 11, Q4_K 12, Q5_K 13, Q6_K 14, Q8_K 15, BF16 30.
 * A weight matrix is `rows` rows of `k` elements (GGUF ne[0] = k, ne[1] = rows),
 * row-major, each row a whole number of blocks.
 * Activations X are `ncols` columns (tokens) of `k` floats each, one column
 * after the other; the result Y is `ncols` columns of `rows` floats.
 */
#ifndef LLMLITE_H
#define LLMLITE_H

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
 * blocks, with the numerics llama.cpp uses on x86 (Q8_0/Q8_1: q = x * 127/amax
 * rounded half to even, as its AVX2 build; Q8_K: its reference quantizer) */
int llm_quantize_act(int act_type, const float *x, void *dst, long long n);

/* ---- reference weight quantizers (quantize.c) ---- */
/* 1 if llm_quantize_rows writes this type (F32, F16, BF16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q2_K..Q6_K) */
int llm_quantize_type_supported(int type);
/* nrows rows of n floats (n a block multiple) to the type's blocks, bit for bit
 * llama.cpp's quantize_row_*_ref (no importance matrix), rows spread over the
 * threads. Returns 0, or -1 for an unsupported type or size. */
int llm_quantize_rows(int type, const float *x, void *out, long long nrows, long long n);
/* The same with an importance matrix (llama.cpp's quantize_<type>(..., quant_weights)):
 * imatrix holds n weights, one per column, shared by every row. Types with a
 * weighted quantizer use it (and run it with imatrix NULL when they have no
 * plain one, as llama.cpp's IQ3 types do); the others ignore it, as llama.cpp
 * does for Q8_0 and the float types. Returns 0, or -1 for an unsupported type
 * or size, or for a type that cannot be made without one (imatrix NULL). */
int llm_quantize_rows_w(int type, const float *x, void *out, long long nrows, long long n,
                        const float *imatrix);
/* 1 if llm_quantize_rows_w reads the importance matrix for this type */
int llm_quantize_type_weighted(int type);

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
/* the same; huge_pages 1: the buffer asks for 2 MiB pages (what llm_probe_read_bw does),
 * 0: 4 KiB pages, like weights mapped from a file */
double llm_probe_read_bw_pages(long long bytes, int threads, int reps, int huge_pages);
double llm_now(void);                        /* monotonic seconds */

/* ---- a model file that shrinks while mapped (sigbus.c) ---- */
/* While watched, a read of [addr, addr + len) that faults with SIGBUS (the file cut
 * under its mapping) writes `line` to stderr and exits the process with status 1;
 * other SIGBUS go to the handler set before. Returns the slot, or -1 (none free). */
int llm_sigbus_watch(const void *addr, long long len, const char *line);
void llm_sigbus_unwatch(int slot);

/* ---- GGUF helpers (gguf_scan.c) ---- */
/* Walk `count` GGUF strings (u64 length + bytes) starting at buf[off], never
 * past buf[size]. Writes each string's data offset and length (if the arrays
 * are non-NULL). Returns the offset just past the last string, or -1 if the
 * data runs past the end or a length exceeds max_len. */
long long llm_gguf_scan_strings(const unsigned char *buf, long long size, long long off,
                                long long count, long long max_len,
                                long long *offsets, long long *lengths);

/* ---- the forward pass (model.c, forward.c, ops.c) ---- */
/* architecture ids */
enum { LLM_ARCH_LLAMA = 0, LLM_ARCH_QWEN2 = 1, LLM_ARCH_QWEN3 = 2, LLM_ARCH_GEMMA3 = 3, LLM_ARCH_PHI3 = 4,
       LLM_ARCH_QWEN3MOE = 5, LLM_ARCH_QWEN2MOE = 6,
       LLM_ARCH_GPTOSS = 7, LLM_ARCH_GEMMA4 = 8, LLM_ARCH_QWEN35 = 9,
       LLM_ARCH_SMOLLM3 = 10, LLM_ARCH_MISTRAL3 = 11, LLM_ARCH_GRANITE = 12, LLM_ARCH_LFM2 = 13,
       LLM_ARCH_GRANITEMOE = 14 };
/* per-layer tensor slots */
enum {
    LLM_T_ATTN_NORM = 0, LLM_T_ATTN_Q = 1, LLM_T_ATTN_K = 2, LLM_T_ATTN_V = 3, LLM_T_ATTN_QKV = 4,
    LLM_T_ATTN_OUT = 5, LLM_T_ATTN_Q_B = 6, LLM_T_ATTN_K_B = 7, LLM_T_ATTN_V_B = 8,
    LLM_T_ATTN_Q_NORM = 9, LLM_T_ATTN_K_NORM = 10, LLM_T_POST_ATTN_NORM = 11, LLM_T_FFN_NORM = 12,
    LLM_T_FFN_GATE = 13, LLM_T_FFN_UP = 14, LLM_T_FFN_DOWN = 15, LLM_T_POST_FFW_NORM = 16,
    /* mixture of experts: the router (n_embd x n_expert, F32), the experts' matrices
     * (3-D in the file: n_expert matrices one after the other, given as one tensor of
     * n_expert * rows rows), and qwen2moe's shared expert with its 1-row gate */
    LLM_T_FFN_GATE_INP = 17, LLM_T_FFN_GATE_EXPS = 18, LLM_T_FFN_UP_EXPS = 19, LLM_T_FFN_DOWN_EXPS = 20,
    LLM_T_FFN_GATE_INP_SHEXP = 21, LLM_T_FFN_GATE_SHEXP = 22, LLM_T_FFN_UP_SHEXP = 23, LLM_T_FFN_DOWN_SHEXP = 24,
    /* gpt-oss: the attention output's bias, each head's attention sink (n_head F32),
     * the router's bias (n_expert) and the experts' biases (n_expert rows of each
     * expert's output width) */
    LLM_T_ATTN_OUT_B = 25, LLM_T_ATTN_SINKS = 26, LLM_T_FFN_GATE_INP_B = 27,
    LLM_T_FFN_GATE_EXPS_B = 28, LLM_T_FFN_UP_EXPS_B = 29, LLM_T_FFN_DOWN_EXPS_B = 30,
    /* gemma4: the layer's output scale (1 F32), and its per-layer embedding term: the
     * gate (n_embd -> n_embd_ple), the projection back (n_embd_ple -> n_embd), its norm */
    LLM_T_LAYER_OUT_SCALE = 31, LLM_T_PLE_INP_GATE = 32, LLM_T_PLE_PROJ = 33, LLM_T_PLE_POST_NORM = 34,
    /* gemma4's expert layers (26B-A4B): the router input's scale (n_embd), the experts'
     * gate and up fused (each expert's gate rows then its up rows), each expert's
     * output scale (n_expert), the experts' input norm, and the norms after the dense
     * FFN and after the experts */
    LLM_T_FFN_GATE_INP_S = 35, LLM_T_FFN_GATE_UP_EXPS = 36, LLM_T_FFN_DOWN_EXPS_S = 37,
    LLM_T_FFN_PRE_NORM_2 = 38, LLM_T_FFN_POST_NORM_1 = 39, LLM_T_FFN_POST_NORM_2 = 40,
    /* qwen35's gated delta-net (linear attention) layers (delta_net.c): a layer with
     * ssm_out is one; attn_qkv is then its q|k|v projection (2 key_dim + value_dim rows),
     * attn_gate its z, ssm_conv1d the causal convolution (d_conv taps a channel, F32),
     * ssm_dt the alpha bias and ssm_a the decay (n_v_head F32 each), ssm_beta and
     * ssm_alpha their projections, ssm_norm the gated RMSNorm's weight (d_state F32) */
    LLM_T_ATTN_GATE = 41, LLM_T_SSM_CONV1D = 42, LLM_T_SSM_DT_B = 43, LLM_T_SSM_A = 44,
    LLM_T_SSM_BETA = 45, LLM_T_SSM_ALPHA = 46, LLM_T_SSM_NORM = 47, LLM_T_SSM_OUT = 48,
    /* lfm2's short-convolution layers (shortconv.c): a layer with shortconv.out_proj is
     * one; in_proj gives b|c|x (3 n_embd rows), its kernel (shortconv.conv, l_cache taps
     * a channel, F32) fills LLM_T_SSM_CONV1D */
    LLM_T_SHORTCONV_IN = 49, LLM_T_SHORTCONV_OUT = 50,
    LLM_T_LAYER_COUNT = 51
};
/* global tensor slots (layer = -1); gemma4's per-layer embeddings: the table (n_layer *
 * n_embd_ple per token), the projection of the embedding to it, that projection's norm */
enum { LLM_G_TOKEN_EMBD = 0, LLM_G_OUTPUT_NORM = 1, LLM_G_OUTPUT = 2, LLM_G_ROPE_FREQS = 3,
       LLM_G_PLE_TOKEN_EMBD = 4, LLM_G_PLE_MODEL_PROJ = 5, LLM_G_PLE_PROJ_NORM = 6, LLM_G_COUNT = 7 };

typedef struct {
    int arch;
    int n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab;
    int n_rot;              /* rotary dims (<= head_dim) */
    int rope_neox;          /* 1: NEOX pairs (i, i + n_rot/2); 0: NORM adjacent pairs */
    float rms_eps;
    float rope_base, rope_scale;          /* freq_base, freq_scale (1/factor) */
    float rope_base_swa, rope_scale_swa;  /* sliding-window layers */
    int sliding_window;     /* 0: none */
    int swa_pattern;        /* layer il is sliding when il % swa_pattern < swa_pattern - 1 */
    float attn_scale;       /* kq scale */
    float q_prescale;       /* Q multiplied by this before attention (gemma3), else 1 */
    float embd_scale;       /* token embeddings multiplied by this (gemma3 sqrt(n_embd)), else 1 */
    float logit_softcap;    /* 0: none */
    int ffn_gelu;           /* 1: GELU-tanh gated (gemma3), 0: SiLU (SwiGLU) */
    int flash_attn;         /* 1: llama.cpp's CPU flash-attention numerics (online softmax,
                               F16 V accumulator; its default), 0: its plain softmax path */
    /* mixture of experts (0 experts: a dense FFN): each token's router softmax picks
     * its n_expert_used most probable experts of n_ff_exp rows each */
    int n_expert, n_expert_used, n_ff_exp;
    int n_ff_shexp;         /* the shared expert's width (qwen2moe), 0: none */
    int shexp_ungated;      /* 1: the shared expert's output added as is (granitemoe); 0: times
                               silu(g)/g, g its 1-row gate's (qwen2moe's ffn_gate_inp_shexp) */
    int shexp_sigmoid;      /* 1: times 1/(1+exp(-g)) instead (qwen35moe's ggml_sigmoid) */
    int expert_norm_w;      /* 1: the chosen experts' weights divided by their sum (qwen3moe) */
    float expert_w_scale;   /* the weights multiplied by this when not 0 or 1 */
    int expert_softmax_k;   /* 1: the k largest router logits chosen, their weights the softmax
                               of those k (gpt-oss, llama.cpp's SOFTMAX_WEIGHT); 0: softmax first */
    float swiglu_alpha, swiglu_limit;   /* > 0: the experts' clamped SwiGLU (gpt-oss's
                               swiglu_oai): g = min(g, limit), u = clamp(u, +-limit),
                               g / (1 + exp(-alpha g)) * (u + 1) */
    /* YaRN rope (ext_factor 0: none): each pair's angle mixes the interpolated and the
     * original by a ramp over the correction dims (from n_ctx_orig, beta_fast, beta_slow),
     * cos and sin scaled by YaRN's magnitude correction (llm_yarn_init) and the file's
     * rope.scaling.attn_factor (rope_attn_factor, default 1) */
    float rope_ext_factor, rope_attn_factor, yarn_beta_fast, yarn_beta_slow;
    int n_ctx_orig;
    /* gemma4: sliding-window layers' own head size and rotary dims (0: head_dim, n_rot;
     * rope_freqs then applies to the full layers only); layers from n_layer_kv on read
     * an earlier layer's K/V (the last sliding / full layer before n_layer_kv, as
     * llama.cpp maps them) and have no cache (0: every layer has its own); V rms-normed
     * without weight (v_norm); per-layer token embeddings of n_embd_ple (0: none) */
    int head_dim_swa, n_rot_swa, n_layer_kv, v_norm, n_embd_ple;
    int n_head_kv_swa;      /* gemma4: the sliding layers' KV heads (0: n_head_kv, the full layers') */
    /* qwen35: the gated delta-net's sizes (0 d_state: none): the conv taps (lfm2: its
     * short convolution's, shortconv.l_cache, with d_state 0), the head
     * width (keys and values), the key heads and the value heads (a multiple of them;
     * value head h reads key head h % n_group) */
    int ssm_d_conv, ssm_d_state, ssm_n_group, ssm_n_v_head;
    int attn_q_gate;        /* 1: attn_q gives each head's query then its output gate
                               (sigmoid, times the attention's output) */
    int rope_sections[4];   /* interleaved multi-section rope (llama.cpp's IMROPE) for text:
                               pairs in the t, h, w sections turn by the position, the
                               others (e) not at all; all 0: plain rope */
    /* smollm3: 1 where layer il rotates nothing (a NoPE layer); 512 is LLM_MAX_LAYERS */
    unsigned char rope_skip[512];
    /* mistral3: llama 4's query temperature, Q times log(floor(pos / attn_temp_floor) + 1)
     * * attn_temp_scale + 1 after the rope (0: none); YaRN's mscale_all_dim (llama.cpp's
     * rope.scaling.yarn_log_multiplier, 0: none), which divides out its magnitude correction */
    float attn_temp_scale;
    int attn_temp_floor;
    float yarn_log_mul;
    /* granite's multipliers (0: none, as llama.cpp reads them): the attention's and the
     * FFN's outputs multiplied by residual_scale before each residual add; the logits by
     * logit_mul (1 / the file's logit_scale, as a float) */
    float residual_scale, logit_mul;
} llm_config;

typedef struct llm_model llm_model;

llm_model *llm_model_new(const llm_config *cfg, int n_ctx, int n_batch);
void llm_model_free(llm_model *m);
/* attach a weight (not copied: the memory must outlive the model). layer -1 = global slot.
 * ne0 = elements per row, ne1 = rows. returns 0 or -1 (bad slot, type or shape) */
int llm_model_set_tensor(llm_model *m, int layer, int slot, int type, const void *data,
                         long long ne0, long long ne1);
/* checks that every tensor the architecture needs is present; returns 0 or -1 and
 * writes a message to err (size errlen) */
int llm_model_check(llm_model *m, char *err, int errlen);
long long llm_model_kv_bytes(const llm_model *m);   /* this model's own cache (its layers) */
/* after the tensors are set: a copy of each weight that this machine's kernels read
 * faster with its rows interleaved in groups of 4 (csrc/repack.c), read instead of
 * the file from then on (the logits' bits are unchanged). drop 1: the file's pages
 * of what is copied are let go (the weights must be a file mapping). Returns the
 * bytes copied, or -1 when out of memory (none copied; the copies are made once, a
 * second call copies nothing). llm_model_repack_bytes: what the copies hold. */
long long llm_model_repack(llm_model *m, int drop);
/* llm_matmul for Q4_K weights in llama.cpp's repacked-gemv order (the table's
 * q4_K_gemv; moe.c's Q4_K experts), the same bits for a column whatever ncols */
int llm_matmul_q4_K_gemv(const void *W, long long rows, long long k, const float *X, long long ncols, float *Y);
/* 1: this machine's kernels take copies of weights of this type (the weights with
 * rows % 4 == 0 and k % 256 == 0 get one) */
int llm_repack_takes(int type);
/* whether a layer slot's weight gets a copy (llm_model_repack): 1, 2 for an expert
 * tensor (each expert's rows in whole groups), 0 never */
int llm_repack_slot(int slot);
/* the copy's layout: rows (a multiple of 4) of a super-block type, k wide, from w into
 * out (as many bytes); 0, or -1 where refused */
int llm_repack_x4(int type, const void *w, void *out, long long rows, long long k);
/* llm_matmul over such a copy W4 of a weight (gemv 1: a Q4_K weight in llama.cpp's
 * repacked-gemv order, its mixture-of-experts matmul's): the bits of the matmul on the
 * weight itself; -1 where this machine's kernels take no copy of that type (nothing
 * computed) */
int llm_matmul_x4(int wtype, int gemv, const void *W4, long long rows, long long k, const float *X, long long ncols,
                  float *Y);
long long llm_model_repack_bytes(const llm_model *m);
/* huge_pages.c: a thread that moves the copies into 2 MiB pages in the model's pauses:
 * 0, or -1 where none was started (no copies, huge pages off, or not Linux);
 * llm_model_huge_bytes: the copies' bytes in 2 MiB pages so far; llm_model_huge_busy:
 * 1 while that thread is still at work */
int llm_model_huge_start(llm_model *m);
long long llm_model_huge_bytes(const llm_model *m);
int llm_model_huge_busy(const llm_model *m);
/* qwen35: the tokens the gated delta-net layers' recurrent state holds (-1: none kept):
 * a forward pass must start at 0 (the state zeroed) or there */
int llm_dn_pos(const llm_model *m);
/* copies of the state kept aside, in LLM_DN_SLOTS slots (made at load; Model uses one
 * for the end of a prompt, one for the start of a speculative verify): save returns
 * the position the slot holds, restore makes it the state again and returns that
 * position (-1: no state, a bad slot, nothing saved there, or a model with a span,
 * whose layers hold part of the state) */
enum { LLM_DN_SLOTS = 2 };
int llm_dn_save(llm_model *m, int slot);
int llm_dn_restore(llm_model *m, int slot);
/* the batch scratch a model (or a span) of this config allocates, in bytes */
long long llm_scratch_bytes(const llm_config *cfg, int n_ctx, int n_batch);

/* ---- partial offload: the backend seam (span.h) ----
 * A model that runs layers [l0, l1) only (its KV cache holds those), with the head
 * (output norm + output) when head is 1. llm_model_new is (0, n_layer, 1). */
llm_model *llm_model_new_span(const llm_config *cfg, int n_ctx, int n_batch, int l0, int l1, int head);
enum { LLM_BACKEND_CPU = 0, LLM_BACKEND_CUDA = 1 };
enum { LLM_SPAN_WEIGHT_ALIGN = 256 };   /* a device span places each weight at a multiple of this */
/* give the layers after m's (l1..n_layer-1), and the head unless m holds it, to a
 * span on `backend`, with its own weights (llm_model_set_span_tensor copies them
 * there) and KV cache. The CPU backend stands in for a device (tests). weight_bytes:
 * the sum of what llm_model_set_span_tensor will be given, each tensor rounded up to
 * LLM_SPAN_WEIGHT_ALIGN (256) bytes, reserved at once (0: unknown). 0 ok, or -1
 * with a message in err. */
int llm_model_attach(llm_model *m, int backend, long long weight_bytes, char *err, int errlen);
/* 0 ok, -1 bad slot/type/shape (or no span), -2 out of the backend's memory, -3 a
 * device error (llm_model_span_error says which) */
int llm_model_set_span_tensor(llm_model *m, int layer, int slot, int type, const void *data,
                              long long ne0, long long ne1);
long long llm_model_span_bytes(const llm_model *m);   /* what the span holds, 0 without one */
/* why the span's last set_tensor or run failed ("" if it did not, or no span);
 * *dead = 1 when its device cannot be used any more (a sticky CUDA error) */
const char *llm_model_span_error(const llm_model *m, int *dead);
/* a backend's table of span functions (span.h; opaque here) */
typedef struct llm_span_ops llm_span_ops;
const llm_span_ops *llm_cpu_span_ops(void);   /* the CPU stand-in's (span_cpu.c) */
/* the CUDA backend's, from the library at path, opened but not started: no device or
 * driver needed (the planner asks it for its sizes). NULL with the reason in err. */
const llm_span_ops *llm_cuda_table(const char *path, char *err, int errlen);
/* what a span on that backend allocates besides its weights and KV cache (scratch, and
 * a logits buffer when it holds the head and the backend keeps one), from the shape
 * alone: the planner's figure, the backend's own (span.h compute_bytes); -1 bad shape */
long long llm_span_compute_bytes(const llm_span_ops *ops, const llm_config *cfg, int n_ctx, int n_batch, int head);
/* the CPU stand-in's memory size in bytes (0: no limit): a span needing more fails as
 * a full device would */
void llm_cpu_span_set_capacity(long long bytes);

/* the CUDA backend: libllmlite_cuda.so, loaded at run time (cuda_loader.c). 0 ok, or
 * -1 with the reason (no library, no driver, no GPU) in err. */
int llm_cuda_load(const char *path, char *err, int errlen);
/* after a successful load: device 0's free and total memory, and its name */
int llm_cuda_info(long long *free_bytes, long long *total_bytes, char *name, int namelen);
/* Run n tokens at positions pos..pos+n-1 (the KV cache must hold 0..pos-1).
 * logits_mode: 0 none, 1 last token only (logits: n_vocab floats), 2 all (n * n_vocab),
 * 3 no head: each token's hidden state after the output norm (n * n_embd floats, the
 * per-token embeddings; -1 where a span holds the head).
 * n may exceed n_batch: it is processed in chunks. Returns 0, -1 (context full, bad token), or
 * -2 when the span of another backend failed (llm_model_span_error says why). */
/* debugging: called after each stage of the forward pass with that stage's whole batch (NULL: off) */
typedef void (*llm_trace_fn)(const char *name, int layer, const float *data, long long n);
void llm_set_trace(llm_trace_fn fn);
/* benchmarks (decode_passes.py): the forward passes' seconds by kind (the attention's
 * q/k/v pass, its output, the FFN's gate/up pass, its down pass, the head) and the
 * weight bytes each read, summed over the calls since the last read, one model at a
 * time. on 1 counts (a flag tested per pass), 0 stops; out (or NULL) gets the seconds,
 * then the bytes, of each kind (index LLM_PASS_*), then the forward calls' seconds and
 * their tokens, and the sums restart */
enum { LLM_PASS_QKV, LLM_PASS_ATTN_OUT, LLM_PASS_FFN_UP, LLM_PASS_FFN_DOWN, LLM_PASS_HEAD, LLM_PASS_KINDS };
void llm_pass_times(int on, double *out);
int llm_forward(llm_model *m, const int *tokens, int n, int pos, float *logits, int logits_mode);

/* ---- tokenizer merge loops (bpe.c) ---- */
/* A handle over n token texts (token i = buf[offsets[i] .. + lengths[i]]) and
 * their scores (NULL: all 0). Texts are copied. NULL on bad input or no memory. */
void *llm_tok_new(long long n, const unsigned char *buf, const long long *offsets,
                  const long long *lengths, const float *scores);
/* BPE merges "left right" (rank = index); 0 ok, -1 bad input, -2 no memory */
int llm_tok_set_merges(void *tok, long long n, const unsigned char *buf, const long long *offsets,
                       const long long *lengths);
void llm_tok_free(void *tok);
int llm_tok_find(const void *tok, const unsigned char *s, long long n);   /* id or -1 */
/* Item i is buf[offs[i] .. offs[i+1]). BPE: raw-byte words (byte-encoded, then
 * merged by rank; out needs room for 2 ids per byte); SPM: fragments with
 * spaces already escaped (merged by score, byte fallback; 1 id per byte).
 * counts[i] = ids of item i. Returns the total, or -1 bad input / out too
 * small, -2 no memory, -3 SPM: a byte with no token. */
long long llm_tok_bpe(const void *tok, const unsigned char *buf, const long long *offs, long long nwords,
                      int ignore_merges, int *out, long long cap, long long *counts);
/* BPE over raw UTF-8 words (Gemma 4's tokenizer: no byte encoding; a symbol that is no
 * token gives its bytes' <0xXX> tokens, those that exist; out: 1 id per byte) */
long long llm_tok_bpe_raw(const void *tok, const unsigned char *buf, const long long *offs, long long nwords,
                          int *out, long long cap, long long *counts);
long long llm_tok_spm(const void *tok, const unsigned char *buf, const long long *offs, long long nfrags,
                      int *out, long long cap, long long *counts);
/* Constrained decoding (llmlite/constrain.py): logits[i] = -inf where bit i of the
 * allowed-token bitmask (32 ids per word, lowest bit first) is clear; ids past the
 * mask's words are disallowed too. n: logits; nwords: mask words. */
void llm_mask_logits(float *logits, long long n, const unsigned int *mask, long long nwords);
#endif
