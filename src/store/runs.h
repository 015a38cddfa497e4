/*
 * The runs' SQL: the runs table, idempotency keys of start requests, per-user hardware
 * quotas and queued completion callbacks. Every read and write a tenant can cause is scoped
 * by org_id in the SQL itself; the scheduler's own queries (by run id alone) are marked.
 *
 * Rows come back as structs; their strings, and the arrays of rows that lists return, are
 * allocated from the arena given. Lists return their number of rows, or LY_EDB.
 */
#ifndef LYCEUMD_STORE_RUNS_H
#define LYCEUMD_STORE_RUNS_H

#include "core/arena.h"

#include <stddef.h>
#include <stdint.h>

struct run_new {
    const char *id, *org_id, *user_id;
    int kind;
    const char *profile;
    int priority;
    const char *spec; /* JSON text */
    const char *file_name;
    int timeout_s, graceful_s;
    const char *parent_id;
    const char *stream_token_hash;
    const char *callback_urls; /* JSON text or NULL */
    const char *bucket;        /* the owner id of its bucket at /mnt/s3; NULL: user_id's */
    int64_t created_at;
};

/* A run as the runs table holds it. Strings are NULL where the column is NULL; times are µs
 * since the epoch, 0 where the column is NULL (not yet). */
struct run_row {
    char id[40], org_id[40], user_id[40];
    int kind; /* 1 python, 2 image, 3 compose */
    char *profile;
    char *status;
    int64_t priority;
    char *spec; /* the start request's body (JSON text) */
    char *file_name;
    int64_t timeout_s, graceful_s;
    char *parent_id;
    char *stream_token;  /* SHA-256 hex of the streaming_url's token */
    char *callback_urls; /* JSON text */
    int64_t created_at, started_at, running_at, ended_at, finished_at;
    int has_return_code;
    int64_t return_code;
    char *errors;
    char *reason;
    int has_install_return_code;
    int64_t install_return_code;
    char *gpus; /* "0,1" */
    char *backend;
    int64_t pid, pid_start; /* 0 when unset */
    int64_t stop_mode;
    int64_t deleted_at, metered_until;
    char *backend_ref;
    char *waiting_reason;
    char *bucket;
};

/* A run's id alone, as lists of ids hold it. */
struct run_id {
    char id[40];
};

int db_runs_insert(const struct run_new *r);
/* The run id of org (not deleted): 0, LY_ENOTFOUND, or LY_EDB. */
int db_runs_get(struct arena *a, const char *org_id, const char *id, struct run_row *r);
/* Scheduler: a run by id alone (deleted ones included), likewise. */
int db_runs_get_any(struct arena *a, const char *id, struct run_row *r);
/* Scheduler: the ids of up to limit pending runs of profile, by priority then age. */
int db_runs_next_pending(struct arena *a, const char *profile, int limit, struct run_id **ids);
/* Scheduler: how many runs are pending, per profile (only profiles with some). */
struct run_pending_count {
    char *profile;
    int64_t count;
};
int db_runs_pending_counts(struct arena *a, struct run_pending_count **rows);
/* pending -> starting; returns 1 when this call moved it, 0 when it was no longer pending. */
int db_runs_mark_starting(const char *id, int64_t at, const char *gpus, const char *backend);
int db_runs_mark_running(const char *id, int64_t at);
/* starting -> queued: handed to a backend that queues it (Slurm's PENDING). */
int db_runs_mark_queued(const char *id);
int db_runs_set_backend_ref(const char *id, const char *ref);
/* Why a run still waits for its backend (NULL clears it). */
int db_runs_set_waiting_reason(const char *id, const char *why);
int db_runs_set_pid(const char *id, int64_t pid, int64_t pid_start);
int db_runs_set_install_rc(const char *id, int rc);
/* Records the end of a run that is not yet terminal; 1 when recorded, 0 when it already was. */
int db_runs_finish(const char *id, const char *status, const int *return_code, const char *errors,
                   const char *reason, int64_t ended_at, int64_t finished_at);
/* Ends a run that is still pending (abort or stop before it started). 1 when it was. */
int db_runs_end_pending(const char *org_id, const char *id, const char *status, const char *errors,
                        const char *reason, int64_t at);
int db_runs_set_stop_mode(const char *id, int mode);
/* Ends user_id's pending runs as aborted (errors why, reason "deleted"); their ids into *ids. */
int db_runs_end_pending_of_user(struct arena *a, const char *user_id, const char *why, int64_t at,
                                struct run_id **ids);
/* The ids of user_id's runs that are going (starting, queued, running). */
int db_runs_going_of_user(struct arena *a, const char *user_id, struct run_id **ids);
/* Scheduler, at start-up: runs that were starting, queued or running, oldest first. */
int db_runs_unfinished(struct arena *a, struct run_row **rows);
/* The org's active runs of user (pending, starting, queued, running), oldest first. */
int db_runs_list_active(struct arena *a, const char *org_id, const char *user_id,
                        struct run_row **rows);
/* Marks a terminal run deleted. 1 done, 0 not found; LY_ECONFLICT when it is still going. */
int db_runs_delete(const char *org_id, const char *id);
/* Puts a run that never began (found starting after a restart) back in the queue. Returns the
 * rows changed, or LY_EDB. */
int db_runs_requeue(const char *id);

/* Idempotency: the stored answer of (org, key) younger than max_age_us: 0, LY_ENOTFOUND, or
 * LY_EDB. */
struct idem_row {
    char *route;
    char *answer; /* JSON text */
};
int db_idem_get(struct arena *a, const char *org_id, const char *key, int64_t max_age_us,
                struct idem_row *r);
/* Stores an answer; LY_ECONFLICT when the key is already taken. */
int db_idem_put(const char *org_id, const char *key, const char *route, const char *answer);

/* Quotas: the profiles user may use, by name, into *profiles (none: every profile). */
int db_quota_list(struct arena *a, const char *user_id, char ***profiles);
/* Replaces user's allowed profiles (n 0: allow all). */
int db_quota_set(const char *user_id, const char *const *profiles, size_t n);

/* Callbacks. */
int db_callback_add(const char *run_id, const char *org_id, const char *url, const char *body,
                    int64_t at);
/* A queued callback. */
struct callback_row {
    int64_t id;
    char org_id[40], run_id[40];
    char *url;
    char *body;
    int64_t tries;
};
/* Up to limit due callbacks, the longest due first. */
int db_callback_due(struct arena *a, int64_t now, int limit, struct callback_row **rows);
int db_callback_result(int64_t id, int ok, const char *error, int64_t next_at, int give_up);
/* The org's webhook secret (the key of its callbacks' signatures), created on first use. */
int db_callback_secret(const char *org_id, char *out, size_t n);

#endif
