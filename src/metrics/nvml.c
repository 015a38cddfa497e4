/*
 * See nvml.h. NVML's types are mirrored here (nvml.h is not needed to build): a device handle
 * is opaque, enums are ints, every call returns an nvmlReturn_t where 0 is NVML_SUCCESS. A
 * function the loaded library lacks, or a call that fails, leaves that reading out; the
 * sample keeps the rest.
 */
#include "metrics/nvml.h"
#include "core/log.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

struct nvml_utilization {
    unsigned gpu, memory;
};
struct nvml_mem {
    unsigned long long total, free, used;
};

enum { NVML_TEMPERATURE_GPU = 0 };
enum { NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };
enum { NVML_PCIE_UTIL_TX_BYTES = 0, NVML_PCIE_UTIL_RX_BYTES = 1 };

static int loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int (*f_count)(unsigned *);
static int (*f_name)(void *, char *, unsigned);
static int (*f_handle)(unsigned, void **);
static int (*f_util)(void *, struct nvml_utilization *);
static int (*f_mem)(void *, struct nvml_mem *);
static int (*f_temp)(void *, int, unsigned *);
static int (*f_power)(void *, unsigned *);
static int (*f_power_limit)(void *, unsigned *);
static int (*f_clock)(void *, int, unsigned *);
static int (*f_pcie)(void *, int, unsigned *);

static void load(void)
{
    void *lib;
    int (*init)(void);
    int rc;

    loaded = -1;
    lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
    *(void **)&init = dlsym(lib, "nvmlInit_v2");
    *(void **)&f_count = dlsym(lib, "nvmlDeviceGetCount_v2");
    *(void **)&f_name = dlsym(lib, "nvmlDeviceGetName");
    *(void **)&f_handle = dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&f_util = dlsym(lib, "nvmlDeviceGetUtilizationRates");
    *(void **)&f_mem = dlsym(lib, "nvmlDeviceGetMemoryInfo");
    *(void **)&f_temp = dlsym(lib, "nvmlDeviceGetTemperature");
    *(void **)&f_power = dlsym(lib, "nvmlDeviceGetPowerUsage");
    *(void **)&f_power_limit = dlsym(lib, "nvmlDeviceGetEnforcedPowerLimit");
    *(void **)&f_clock = dlsym(lib, "nvmlDeviceGetClockInfo");
    *(void **)&f_pcie = dlsym(lib, "nvmlDeviceGetPcieThroughput");
    if (!init || !f_handle) {
        log_info("NVML lacks nvmlInit_v2 or nvmlDeviceGetHandleByIndex_v2: no GPUs, no GPU "
                 "metrics");
        return; /* stays loaded: NVML does not like being unloaded */
    }
    rc = init();
    if (rc != 0) {
        log_info("NVML did not initialise (error %d): no GPUs, no GPU metrics", rc);
        return;
    }
    loaded = 1;
}

int nvml_open(void)
{
    pthread_once(&once, load);
    return loaded > 0;
}

int nvml_count(void)
{
    unsigned n = 0;

    if (!nvml_open() || !f_count || f_count(&n) != 0)
        return 0;
    return (int)n;
}

int nvml_device(int index, char *name, size_t n, int64_t *mem_bytes)
{
    struct nvml_mem m = {0};
    void *h = NULL;

    if (!nvml_open() || index < 0 || f_handle((unsigned)index, &h) != 0 || !h)
        return -1;
    if (!f_name || f_name(h, name, (unsigned)n) != 0)
        snprintf(name, n, "NVIDIA GPU");
    *mem_bytes = f_mem && f_mem(h, &m) == 0 ? (int64_t)m.total : 0;
    return 0;
}

static void put(struct gpu_reading *r, int k, double v)
{
    r->v[k] = v;
    r->have |= 1u << k;
}

int nvml_read(int index, struct gpu_reading *r)
{
    struct nvml_utilization u;
    struct nvml_mem m;
    unsigned v;
    void *h = NULL;

    r->have = 0;
    if (loaded <= 0 || index < 0 || f_handle((unsigned)index, &h) != 0 || !h)
        return -1;
    if (f_util && f_util(h, &u) == 0)
        put(r, GPU_UTIL, u.gpu);
    if (f_mem && f_mem(h, &m) == 0 && m.total)
        put(r, GPU_MEM_UTIL, 100.0 * (double)m.used / (double)m.total);
    if (f_temp && f_temp(h, NVML_TEMPERATURE_GPU, &v) == 0)
        put(r, GPU_TEMP, v);
    if (f_power && f_power(h, &v) == 0)
        put(r, GPU_POWER, v / 1000.0); /* milliwatts */
    if (f_power_limit && f_power_limit(h, &v) == 0)
        put(r, GPU_POWER_LIM, v / 1000.0);
    if (f_clock && f_clock(h, NVML_CLOCK_SM, &v) == 0)
        put(r, GPU_CLOCK_SM, v);
    if (f_clock && f_clock(h, NVML_CLOCK_MEM, &v) == 0)
        put(r, GPU_CLOCK_MEM, v);
    if (f_pcie && f_pcie(h, NVML_PCIE_UTIL_RX_BYTES, &v) == 0)
        put(r, GPU_PCIE_RX, v * 1024.0); /* KB/s */
    if (f_pcie && f_pcie(h, NVML_PCIE_UTIL_TX_BYTES, &v) == 0)
        put(r, GPU_PCIE_TX, v * 1024.0);
    return r->have ? 0 : -1;
}
