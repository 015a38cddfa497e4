/*
 * The runs' SQL: the runs table, idempotency keys of start requests, per-user hardware
 * quotas and queued completion callbacks. Every read and write a tenant can cause is scoped
 * by org_id in the SQL itself; the scheduler's own queries (by run id alone) are marked.
 *
 * Rows come back as JSON objects (column name -> integer, text or null) that the caller owns.
 */
#ifndef LYCEUMD_STORE_RUNS_H
#define LYCEUMD_STORE_RUNS_H

#include <jansson.h>
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

int runs_insert(const struct run_new *r);
/* The run id of org (not deleted), or NULL when there is none (*err 0) or the store failed. */
json_t *runs_get(const char *org_id, const char *id, int *err);
/* Scheduler: a run by id alone. */
json_t *runs_get_any(const char *id, int *err);
/* Scheduler: the ids of up to limit pending runs of profile, by priority then age. */
int runs_next_pending(const char *profile, int limit, json_t *ids);
/* Scheduler: how many runs are pending per profile: an object profile -> count. */
int runs_pending_counts(json_t *out);
/* pending -> starting; returns 1 when this call moved it, 0 when it was no longer pending. */
int runs_mark_starting(const char *id, int64_t at, const char *gpus, const char *backend);
int runs_mark_running(const char *id, int64_t at);
/* starting -> queued: handed to a backend that queues it (Slurm's PENDING). */
int runs_mark_queued(const char *id);
int runs_set_backend_ref(const char *id, const char *ref);
/* Why a run still waits for its backend (NULL clears it). */
int runs_set_waiting_reason(const char *id, const char *why);
int runs_set_pid(const char *id, int64_t pid, int64_t pid_start);
int runs_set_install_rc(const char *id, int rc);
/* Records the end of a run that is not yet terminal; 1 when recorded, 0 when it already was. */
int runs_finish(const char *id, const char *status, const int *return_code, const char *errors,
                const char *reason, int64_t ended_at, int64_t finished_at);
/* Ends a run that is still pending (abort or stop before it started). 1 when it was. */
int runs_end_pending(const char *org_id, const char *id, const char *status, const char *errors,
                     const char *reason, int64_t at);
int runs_set_stop_mode(const char *id, int mode);
/* Ends user_id's pending runs as aborted (errors why, reason "deleted"); their ids into ids. */
int runs_end_pending_of_user(const char *user_id, const char *why, int64_t at, json_t *ids);
/* The ids of user_id's runs that are going (starting, queued, running). */
int runs_going_of_user(const char *user_id, json_t *ids);
/* Scheduler, at start-up: runs that were starting or running (JSON rows). */
int runs_unfinished(json_t *out);
/* The org's active runs of user (pending, starting, running), oldest first. */
int runs_list_active(const char *org_id, const char *user_id, json_t *out);
/* Marks a terminal run deleted. 1 done, 0 not found; LY_ECONFLICT when it is still going. */
int runs_delete(const char *org_id, const char *id);
/* Children of a GPU-selection parent, for the org. */
int runs_children(const char *org_id, const char *parent_id, json_t *out);

/* Idempotency: the stored answer of (org, key) younger than max_age_us, or NULL. */
json_t *idem_get(const char *org_id, const char *key, int64_t max_age_us, int *err);
/* Stores an answer; LY_ECONFLICT when the key is already taken. */
int idem_put(const char *org_id, const char *key, const char *route, const char *answer);

/* Quotas: the profiles user may use (an empty array: every profile). */
int quota_list(const char *user_id, json_t *out);
/* Replaces user's allowed profiles (empty: allow all). */
int quota_set(const char *user_id, json_t *profiles);

/* Callbacks. */
int callback_add(const char *run_id, const char *org_id, const char *url, const char *body,
                 int64_t at);
/* Up to limit due callbacks (rows with id, org_id, url, body, tries). */
int callback_due(int64_t now, int limit, json_t *out);
int callback_result(int64_t id, int ok, const char *error, int64_t next_at, int give_up);
/* The org's webhook secret, created on first use. */
int org_webhook_secret(const char *org_id, char *out, size_t n);

/* Puts a run that never began (found starting after a restart) back in the queue. Returns the
 * rows changed, or LY_EDB. */
int runs_requeue(const char *id);

#endif
