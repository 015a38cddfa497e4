/*
 * Runs: what users submit, from the start request to the recorded result. The API layer
 * (src/api/runs.c) validates requests and submits them (submit.h); the scheduler (sched.h)
 * gives runs their slots and executors (src/exec/) run them; control.h ends them. This header
 * (runs.c) starts and stops the whole machinery and says what a run's status means.
 *
 * Thread-safety: every function may be called from any HTTP thread.
 */
#ifndef LYCEUMD_RUNS_RUNS_H
#define LYCEUMD_RUNS_RUNS_H

#include "core/config.h"
#include "exec/exec.h" /* enum run_kind */

#include <jansson.h>
#include <stdint.h>

/* Starts the runs machinery: profiles, the output registry, the backends, recovery of runs a
 * previous process left behind, the scheduler and the callback sender. Returns 0 or LY_E*. */
int runs_init(const struct config *cfg);
/* Stops the threads; runs still going are ended as system_failure (but those of a backend
 * whose jobs outlive lyceumd, which the next start follows again). */
void runs_shutdown(void);
/* A reload (SIGHUP): the config's machine_types take effect in place (profiles_apply: prices,
 * capacity and limits; new types added; what needs a restart kept and logged), and its run
 * limits. 0, or LY_EINVAL with why when machine_types do not parse (nothing changed). */
int runs_reload(const struct config *cfg, char *why, size_t n);

/* The start time (clock ticks since boot) of a process, or -1 when it does not exist
 * (exec_proc_start). */
int64_t runs_proc_start(int64_t pid);

/* The run's status string as API.md's clients know it. */
int run_is_terminal(const char *status);

extern const struct config *runs_cfg;

#endif
