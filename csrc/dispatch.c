/* Picks the kernel ISA once (cpuid); LLMLITE_ISA=scalar|avx2|avx512 forces one.
 * Each ISA's table (llm_kernel_table, internal.h) starts from the one below it and
 * overrides what its file has; what every entry is for: csrc/README.md. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

enum { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
static const char *isa_names[] = {"scalar", "avx2", "avx512"};

static llm_kernel_table tables[3];
static int tables_ready = 0;
static int active = -1;

#if defined(__x86_64__) || defined(__i386__)
static int cpu_ok(int isa) {
    __builtin_cpu_init();
    if (isa == ISA_SCALAR) return 1;
    if (isa == ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    if (isa == ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
               cpu_ok(ISA_AVX2);
    return 0;
}
#else
static int cpu_ok(int isa) { return isa == ISA_SCALAR; }
#endif

int llm_cpu_has(const char *name) {
    if (!strcmp(name, "avx512vnni") || !strcmp(name, "avx512")) return cpu_ok(ISA_AVX512);
    if (!strcmp(name, "avx2")) return cpu_ok(ISA_AVX2);
    if (!strcmp(name, "scalar")) return 1;
    return 0;
}

static void init_tables(void) {
    if (tables_ready) return;
    /* a table filler compiled under an ISA pragma may itself use that ISA's
     * instructions: call it only where the CPU has them */
    llm_kernels_scalar(&tables[ISA_SCALAR]);
    tables[ISA_AVX2] = tables[ISA_SCALAR];
    if (cpu_ok(ISA_AVX2)) llm_kernels_avx2(&tables[ISA_AVX2]);
    tables[ISA_AVX512] = tables[ISA_AVX2];
    if (cpu_ok(ISA_AVX512)) llm_kernels_avx512(&tables[ISA_AVX512]);
    for (int i = 0; i < 3; i++) llm_attn_kernels(&tables[i], cpu_ok(i) ? i : ISA_SCALAR);
    for (int i = 0; i < 3; i++) llm_exact_kernels(&tables[i], cpu_ok(i) ? i : ISA_SCALAR);
    /* the type families' files (type_*.c) */
    for (int i = 0; i < 3; i++) llm_kernels_iq_grid(&tables[i], cpu_ok(i) ? i : ISA_SCALAR);
    for (int i = 0; i < 3; i++) llm_kernels_fp4(&tables[i], cpu_ok(i) ? i : ISA_SCALAR);
    for (int i = 0; i < 3; i++) llm_kernels_ternary(&tables[i], cpu_ok(i) ? i : ISA_SCALAR);
    for (int i = 0; i < 3; i++) llm_kernels_iq4(&tables[i], cpu_ok(i) ? i : ISA_SCALAR);
    tables_ready = 1;
}

static int isa_index(const char *name) {
    for (int i = 0; i < 3; i++) if (!strcmp(name, isa_names[i])) return i;
    return -1;
}

static void pick(void) {
    init_tables();
    const char *env = getenv("LLMLITE_ISA");
    if (env && *env) {
        int i = isa_index(env);
        if (i >= 0 && cpu_ok(i)) { active = i; return; }
    }
    active = cpu_ok(ISA_AVX512) ? ISA_AVX512 : cpu_ok(ISA_AVX2) ? ISA_AVX2 : ISA_SCALAR;
}

const llm_kernel_table *llm_kernels(void) {
    if (active < 0) pick();
    return &tables[active];
}

const char *llm_isa_name(void) {
    if (active < 0) pick();
    return isa_names[active];
}

int llm_set_isa(const char *name) {
    if (active < 0) pick();
    int i = isa_index(name);
    if (i < 0 || !cpu_ok(i)) return -1;
    active = i;
    return 0;
}
