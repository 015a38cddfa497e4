/*
 * What a run may put on disk: its bucket (mounted at /mnt/s3) stays within the storage quota,
 * its own directory within run_dir_max_bytes, its output within run_output_max_bytes. Runs
 * write the first two directly, so they are measured while runs go and the runs over a limit
 * are ended with the reason (see limits.c); the output is cut by runs/output.c.
 *
 * Thread-safe. The scheduler calls limits_watch() when a run starts and limits_unwatch() when
 * it ends; the watching thread ends runs through runs_end_for().
 */
#ifndef LYCEUMD_RUNS_LIMITS_H
#define LYCEUMD_RUNS_LIMITS_H

#include "core/config.h"

/* Sets the output cap and starts the thread that measures. 0 or LY_EINTERNAL. */
int limits_init(const struct config *cfg);
/* A reload's run_output_max_bytes and run_dir_max_bytes, for the runs that follow and the next
 * checks of those going. */
void limits_reload(const struct config *cfg);
/* Stops the thread (runs are no longer watched). */
void limits_stop(void);

/* Watches run_id: bucket (an owner id, "" for none) against the quota, dir against
 * run_dir_max_bytes. Both are measured within about a second. */
void limits_watch(const char *run_id, const char *bucket, const char *dir);
void limits_unwatch(const char *run_id);

#endif
