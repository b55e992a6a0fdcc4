/* Host-only probe (not part of the library): dlopens libllmlite_cuda.so, checks its two
 * symbols and the span interface version, and prints what llmcuda_device_info says.
 * Exit 0 whether or not a GPU is there (the reason is printed); 1 if the library
 * cannot be loaded or is not an llmlite CUDA backend.
 *
 *   gcc -O2 -Icsrc -o /tmp/llmcuda_probe tools/gpu/probe_main.c -ldl
 *   /tmp/llmcuda_probe /tmp/libllmlite_cuda.so */
#include <dlfcn.h>
#include <stdio.h>
#include "span.h"

typedef const llm_span_ops *(*ops_fn)(void);
typedef int (*info_fn)(int *, long long *, long long *, char *, int, char *, int);

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "./libllmlite_cuda.so";
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("cannot load %s: %s\n", path, dlerror());
        return 1;
    }
    ops_fn get_ops = (ops_fn)dlsym(h, "llmcuda_span_ops");
    info_fn info = (info_fn)dlsym(h, "llmcuda_device_info");
    if (!get_ops || !info) {
        printf("%s: missing llmcuda_span_ops or llmcuda_device_info\n", path);
        return 1;
    }
    const llm_span_ops *ops = get_ops();
    printf("backend: %s, span ABI %d (this header: %d)\n", ops ? ops->name : "(null)", ops ? ops->abi : -1,
           LLM_SPAN_ABI);
    int count = -1;
    long long fb = -1, tb = -1;
    char name[256] = "", err[256] = "";
    const int rc = info(&count, &fb, &tb, name, sizeof name, err, sizeof err);
    if (rc == 0)
        printf("device_info: %d GPU(s); GPU 0: %s, %.2f GiB free of %.2f GiB\n", count, name, fb / 1073741824.0,
               tb / 1073741824.0);
    else
        printf("device_info: no GPU: %s (rc %d, count %d)\n", err, rc, count);
    return ops && ops->abi == LLM_SPAN_ABI ? 0 : 1;
}
