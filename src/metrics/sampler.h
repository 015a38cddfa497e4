/*
 * The sampler: one thread that, every metrics_interval_seconds, records each running local
 * run's CPU percent and memory (from its cgroup where it has one, else summed over the
 * processes of its process group in /proc) and the readings of the GPUs it holds (NVML), and
 * that once a minute applies the log retention (logs_janitor) and drops samples as old.
 *
 * sampler_start() and sampler_stop() are called once each, from main, next to runs_init()
 * and runs_shutdown().
 */
#ifndef LYCEUMD_METRICS_SAMPLER_H
#define LYCEUMD_METRICS_SAMPLER_H

#include "core/config.h"

int sampler_start(const struct config *cfg);
/* A reload's log_retention_hours and log_retention_bytes, from the next sweep on. */
void sampler_reload(const struct config *cfg);
void sampler_stop(void);

#endif
