/*
 * Hardware profiles (machine types): what a run asks for with execution_type. Declared by the
 * operator's config ("machine_types") or, without one, derived from this machine: "cpu"
 * always, and "gpu.<family>" for each model of NVIDIA GPU that NVML finds.
 *
 * profiles_init() runs once at start-up. Afterwards only the scheduler's counters change (the
 * scheduler's thread writes them), and a reload's profiles_apply(), under the scheduler's
 * lock, which changes prices, capacity and limits in place and appends new types.
 */
#ifndef LYCEUMD_RUNS_PROFILES_H
#define LYCEUMD_RUNS_PROFILES_H

#include "runs/gpu.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PROFILE_MAX 32

struct profile {
    char name[64];       /* hardware_profile: "cpu", "gpu.a100" */
    char gpu_model[96];  /* "NVIDIA A100", "" for CPU profiles */
    int gpu_count;       /* GPUs per run */
    int vcpus;           /* per run; 0 = no limit */
    int64_t mem_bytes;   /* per run; 0 = no limit */
    int64_t pids_max;    /* processes per run; 0 = no limit */
    int64_t price_micro; /* micro-credits per hour */
    char backend[16];    /* a registered backend that runs Python (exec_lookup): "local",
                            "slurm" */
    char partition[64];  /* slurm: the partition ("" = the cluster's default) */
    char gres[64];       /* slurm: e.g. "gpu:a100:1" */
    int max_concurrent;  /* runs at once; 0 = the profile is listed but has no capacity */
    int ngpus;
    int gpu_idx[GPU_MAX]; /* the GPU indices runs of this profile draw from */

    int running; /* scheduler thread only */
};

/* Builds the table from the config's machine_types (NULL: the defaults). Returns 0, or
 * LY_EINVAL with a message in why. */
int profiles_init(json_t *machine_types, char *why, size_t n);
/* A reload: parses machine_types into tab (PROFILE_MAX entries) without touching the table in
 * use; 0, or LY_EINVAL with why. */
int profiles_parse(json_t *machine_types, struct profile *tab, int *cnt, char *why, size_t n);
/* Applies a parsed table in place (the scheduler's lock held: runs_reload): existing machine
 * types take their new price, capacity and limits (runs going keep their slot and, billed by
 * the price book, their price), new ones are added; what only a restart may change (backend,
 * GPUs) and removed types stay as they are, each said in the log. Entries never move, so a
 * pointer to one stays valid. */
void profiles_apply(const struct profile *tab, int cnt);
int profiles_count(void);
struct profile *profile_at(int i);
struct profile *profile_find(const char *name);
/* "cpu, gpu.a100": the names, for error messages. */
const char *profiles_names(void);
/* The machine-types entry of p (GET /machine-types). */
json_t *profile_json(const struct profile *p);

#endif
