/*
 * The local node's NVIDIA GPUs, found through NVML loaded with dlopen at run time: a machine
 * without the driver has no GPUs, which is never an error. gpu_detect() runs once at
 * start-up; the list is read-only afterwards.
 */
#ifndef LYCEUMD_RUNS_GPU_H
#define LYCEUMD_RUNS_GPU_H

#include <stdint.h>

#define GPU_MAX 16

struct gpu_info {
    int index;
    char name[96];   /* "NVIDIA H200" */
    char family[32]; /* "h200": the profile suffix of gpu.<family> */
    int64_t mem_bytes;
};

/* Fills gpus (up to GPU_MAX) and returns how many were found; 0 without NVML. */
int gpu_detect(struct gpu_info *gpus, int max);

/* Derives the profile family of a GPU name: "NVIDIA A100-SXM4-80GB" -> "a100". */
void gpu_family(const char *name, char *out, int n);

#endif
