/*
 * GPU readings through NVML, loaded with dlopen at run time (no NVIDIA driver: no readings,
 * never an error). nvml_open() is called once by the sampler thread; nvml_read() only from
 * that thread afterwards.
 */
#ifndef LYCEUMD_METRICS_NVML_H
#define LYCEUMD_METRICS_NVML_H

#include <stddef.h>
#include <stdint.h>

enum {
    GPU_UTIL = 0,  /* percent */
    GPU_MEM_UTIL,  /* percent of memory in use */
    GPU_TEMP,      /* degrees Celsius */
    GPU_POWER,     /* watts */
    GPU_POWER_LIM, /* watts */
    GPU_CLOCK_SM,  /* MHz */
    GPU_CLOCK_MEM, /* MHz */
    GPU_PCIE_RX,   /* bytes/s */
    GPU_PCIE_TX,   /* bytes/s */
    GPU_NREAD
};

struct gpu_reading {
    double v[GPU_NREAD];
    unsigned have; /* bit i: v[i] was read */
};

/* 1 when NVML is loaded and initialised, else 0. The one loader of NVML in lyceumd (the
 * GPU list of runs/gpu.c reads it too); thread-safe, loads once. */
int nvml_open(void);
/* The devices NVML sees (0 without NVML). */
int nvml_count(void);
/* Device index's name (into name[n]) and memory. 0, or -1 when NVML cannot read it. */
int nvml_device(int index, char *name, size_t n, int64_t *mem_bytes);
/* Reads GPU index (NVML's numbering). Returns 0, or -1 when nothing could be read. */
int nvml_read(int index, struct gpu_reading *r);

#endif
