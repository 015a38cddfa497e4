/*
 * Runs: what users submit, from the start request to the recorded result. The API layer
 * (src/api/runs.c) validates requests and calls these; the scheduler (sched.c) gives runs
 * their slots and executors (src/exec/) run them.
 *
 * Thread-safety: every function may be called from any HTTP thread.
 */
#ifndef LYCEUMD_RUNS_RUNS_H
#define LYCEUMD_RUNS_RUNS_H

#include "core/config.h"

#include <jansson.h>
#include <stdint.h>

enum run_kind { RUN_PYTHON = 1, RUN_IMAGE = 2, RUN_COMPOSE = 3 };
enum stop_mode {
    STOP_NONE = 0,
    STOP_ABORT = 1,
    STOP_STOP = 2,
    STOP_TIMEOUT = 3,
    STOP_CREDITS = 4,
    STOP_POLICY = 5 /* ended by lyceumd with a reason of its own (runs_end_for) */
};

/* Starts the runs machinery: profiles, the output registry, recovery of runs a previous
 * process left behind, the scheduler and the callback sender. Returns 0 or LY_E*. */
int runs_init(const struct config *cfg);
/* Stops the threads; runs still going are ended as system_failure. */
void runs_shutdown(void);

struct run_submit {
    const char *org_id, *user_id;
    int kind;
    const char *profile;
    json_t *spec; /* the body, stored as the run's spec */
    const char *file_name;
    int timeout_s, graceful_s;
    const char *parent_id;
    json_t *callback_urls; /* array or NULL */
    int priority;
    const char *bucket; /* the owner id of the bucket it sees at /mnt/s3 (NULL: user_id's) */

    char id[40];    /* out: the execution id */
    char token[48]; /* out: the streaming_url's capability token */
};

/* Inserts a pending run and wakes the scheduler. in_tx: the caller holds a transaction. */
int runs_submit(struct run_submit *s, int in_tx);

/* Wakes the scheduler after the transaction that inserted runs committed. */
void runs_kick(void);

/* The start time (clock ticks since boot) of a process, or -1 when it does not exist. */
int64_t runs_proc_start(int64_t pid);

/* Aborts (SIGKILL, "aborted") or stops (SIGTERM then SIGKILL after graceful_s, "completed")
 * a run of org. A pending run ends at once ("aborted" / "cancelled"). Returns 0, or
 * LY_ENOTFOUND, or LY_ECONFLICT when it had already ended (*status then says how). */
int runs_control(const char *org_id, const char *id, int mode, char *status, size_t n);

/* Ends live run id now (SIGKILL, "aborted") for a reason of lyceumd's own: reason is the
 * stored code ("limit", "deleted"), why the text put in its errors and output. 0, or
 * LY_ENOTFOUND when it is not going (or is ending already). */
int runs_end_for(const char *id, const char *reason, const char *why);
/* Ends every run user_id started: pending_ids (an array, may be NULL) are runs already ended
 * in the store while pending (their followers and callbacks are told now); the live ones are
 * ended as runs_end_for(id, "deleted", why). */
void runs_end_user(const char *user_id, json_t *pending_ids, const char *why);

/* True when profile has a free slot right now (GPU selection's first_available). */
int runs_profile_free(const char *profile);

/* A slot of profile taken outside the run queue (an inference replica): it counts against
 * max_concurrent and holds GPUs of the profile as a run would, the indices into gpus ("0,1";
 * "" without GPUs). 0, LY_EUNAVAIL when the profile is full now, LY_ENOTFOUND. */
int runs_slot_take(const char *profile, char gpus[64]);
/* Gives the slot back, with its GPUs; queued runs may start. */
void runs_slot_release(const char *profile, const char *gpus);

/* The run's status string as API.md's clients know it. */
int run_is_terminal(const char *status);

/* The capability token's hash as stored. */
void run_token_hash(const char *token, char out[65]);

/* Scheduler figures for /metrics and tests: running per profile, pending per profile. */
json_t *runs_capacity_json(void);

extern const struct config *runs_cfg;

#endif
