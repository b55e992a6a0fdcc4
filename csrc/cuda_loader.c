/* Loads the CUDA backend (libllmlite_cuda.so, built by `make cuda` where nvcc exists)
 * at run time, so the CPU build never links CUDA. Two steps: the library's table
 * (llm_cuda_table: any machine, for the planner's sizes), then a device to run it on
 * (llm_cuda_load). Every way it can fail (no library, no driver, no GPU, a different
 * interface version) is one line in err. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "span.h"

typedef const llm_span_ops *(*ops_fn)(void);
typedef int (*info_fn)(int *count, long long *free_b, long long *total_b, char *name, int namelen,
                       char *err, int errlen);

static const llm_span_ops *cuda_ops;
static info_fn cuda_info;

const llm_span_ops *llm_cuda_span_ops(void) { return cuda_ops; }

/* the library at path, checked (its two symbols, the span interface version): its
 * table and its device_info entry. The library stays loaded once this succeeds (the
 * table points into it); dlopen itself starts no CUDA runtime, so this runs anywhere. */
static const llm_span_ops *open_library(const char *path, info_fn *info, char *err, int errlen) {
    if (errlen > 0) err[0] = 0;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(err, errlen, "cannot load the CUDA backend %s: %s", path, e ? e : "unknown error");
        return NULL;
    }
    ops_fn get_ops = (ops_fn)dlsym(h, "llmcuda_span_ops");
    info_fn inf = (info_fn)dlsym(h, "llmcuda_device_info");
    if (!get_ops || !inf) {
        snprintf(err, errlen, "%s is not an llmlite CUDA backend (missing symbols)", path);
        dlclose(h);
        return NULL;
    }
    const llm_span_ops *ops = get_ops();
    if (!ops || ops->abi != LLM_SPAN_ABI) {
        snprintf(err, errlen, "%s: interface version %d, this build expects %d (rebuild it: make cuda)", path,
                 ops ? ops->abi : -1, LLM_SPAN_ABI);
        dlclose(h);
        return NULL;
    }
    *info = inf;
    return ops;
}

const llm_span_ops *llm_cuda_table(const char *path, char *err, int errlen) {
    info_fn info;
    return open_library(path, &info, err, errlen);
}

int llm_cuda_load(const char *path, char *err, int errlen) {
    if (errlen > 0) err[0] = 0;
    if (cuda_ops) return 0;
    info_fn info;
    const llm_span_ops *ops = open_library(path, &info, err, errlen);
    if (!ops) return -1;
    int count = 0;
    long long fb = 0, tb = 0;
    char name[128];
    /* from here the library's CUDA runtime may have started (threads, driver state): it
     * stays loaded even when there is no usable GPU */
    if (info(&count, &fb, &tb, name, sizeof name, err, errlen) != 0 || count <= 0) {
        if (count <= 0 && !err[0]) snprintf(err, errlen, "no CUDA GPU found");
        return -1;
    }
    cuda_ops = ops;              /* kept loaded for the life of the process */
    cuda_info = info;
    return 0;
}

int llm_cuda_info(long long *free_bytes, long long *total_bytes, char *name, int namelen) {
    char err[256];
    int count = 0;
    if (!cuda_info) return -1;
    return cuda_info(&count, free_bytes, total_bytes, name, namelen, err, sizeof err);
}
