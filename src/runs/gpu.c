/*
 * See gpu.h. Only the few NVML entry points needed to list the devices are resolved; the
 * metrics sampler resolves its own. NVML's handle type is opaque, so it is a void pointer here.
 */
#include "runs/gpu.h"
#include "core/log.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

struct nvml_memory {
    unsigned long long total, free, used;
};

int gpu_detect(struct gpu_info *gpus, int max)
{
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    int (*init)(void), (*count)(unsigned *), (*handle)(unsigned, void **);
    int (*name)(void *, char *, unsigned), (*mem)(void *, struct nvml_memory *);
    unsigned n = 0;
    int found = 0;

    if (!lib)
        return 0;
    *(void **)&init = dlsym(lib, "nvmlInit_v2");
    *(void **)&count = dlsym(lib, "nvmlDeviceGetCount_v2");
    *(void **)&handle = dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&name = dlsym(lib, "nvmlDeviceGetName");
    *(void **)&mem = dlsym(lib, "nvmlDeviceGetMemoryInfo");
    if (!init || !count || !handle || !name || init() != 0 || count(&n) != 0) {
        log_info("NVML present but not usable: no GPUs");
        return 0; /* the library stays loaded: NVML does not like being unloaded mid-way */
    }
    for (unsigned i = 0; i < n && found < max; i++) {
        void *h;
        struct nvml_memory m = {0};
        struct gpu_info *g = &gpus[found];

        if (handle(i, &h) != 0)
            continue;
        memset(g, 0, sizeof(*g));
        g->index = (int)i;
        if (name(h, g->name, sizeof(g->name)) != 0)
            snprintf(g->name, sizeof(g->name), "NVIDIA GPU");
        if (mem && mem(h, &m) == 0)
            g->mem_bytes = (int64_t)m.total;
        gpu_family(g->name, g->family, sizeof(g->family));
        log_info("GPU %d: %s (%lld MiB) -> gpu.%s", g->index, g->name,
                 (long long)(g->mem_bytes >> 20), g->family);
        found++;
    }
    return found;
}

void gpu_family(const char *name, char *out, int n)
{
    /* The first word with a digit in it, lower-cased, up to a dash: "NVIDIA H100 80GB HBM3"
     * -> "h100", "NVIDIA A100-SXM4-80GB" -> "a100", "Tesla T4" -> "t4". */
    const char *p = name;
    int k = 0;

    while (*p) {
        const char *w = p;
        int digit = 0;

        while (*p && *p != ' ') {
            if (isdigit((unsigned char)*p))
                digit = 1;
            p++;
        }
        if (digit) {
            for (; w < p && *w != '-' && k < n - 1; w++)
                if (isalnum((unsigned char)*w))
                    out[k++] = (char)tolower((unsigned char)*w);
            break;
        }
        while (*p == ' ')
            p++;
    }
    if (!k)
        k = snprintf(out, (size_t)n, "gpu");
    out[k < n ? k : n - 1] = '\0';
}
