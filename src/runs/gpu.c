/*
 * See gpu.h. NVML is loaded once, by metrics/nvml.c, for both the GPU list and the metrics.
 */
#include "runs/gpu.h"
#include "core/log.h"
#include "metrics/nvml.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int gpu_detect(struct gpu_info *gpus, int max)
{
    int n = nvml_count(), found = 0;

    for (int i = 0; i < n && found < max; i++) {
        struct gpu_info *g = &gpus[found];

        memset(g, 0, sizeof(*g));
        g->index = i;
        if (nvml_device(i, g->name, sizeof(g->name), &g->mem_bytes) != 0)
            continue;
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
