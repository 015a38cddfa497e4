/*
 * The runs' use cases and reads for the API: a run of an org (or by id alone, for capability
 * URLs), the active runs of a user, deletion, quotas, the org's webhook secret, and starting
 * runs with their idempotency key in one transaction. api/ calls these instead of the store,
 * so that transactions and store calls stay below the API layer.
 *
 * Rows are still JSON objects (column name -> value) that the caller owns; typed rows are a
 * later step. Thread-safety: every function may be called from any HTTP thread.
 */
#ifndef LYCEUMD_RUNS_QUERY_H
#define LYCEUMD_RUNS_QUERY_H

#include "runs/runs.h"
#include "runs/submit.h"

#include <jansson.h>
#include <stddef.h>

/* The run id of org (not deleted), or NULL when there is none (*err 0) or the store failed. */
json_t *runq_get(const char *org_id, const char *id, int *err);
/* A run by id alone (deleted ones included: the caller checks deleted_at), or NULL. For the
 * capability URLs (streaming token, port host names), where no org is known yet. */
json_t *runq_get_any(const char *id, int *err);
/* The org's active runs of user (pending, starting, running), oldest first, into out. */
int runq_active(const char *org_id, const char *user_id, json_t *out);
/* Marks a terminal run deleted. 1 done, 0 not found; LY_ECONFLICT when it is still going. */
int runq_delete(const char *org_id, const char *id);
/* The profiles user may use, into out (an empty array: every profile). */
int runq_quota(const char *user_id, json_t *out);
/* The org's webhook secret, created on first use. */
int runq_webhook_secret(const char *org_id, char *out, size_t n);
/* Whether user_id is a member of org_id: 0, LY_ENOTFOUND, or LY_EDB. */
int runq_member(const char *org_id, const char *user_id);

/* The answer stored with an Idempotency-Key of org: 0 with *answer NULL when the key is new
 * (or older than a day), 0 with the stored answer (the caller owns it; an empty object when
 * it cannot be read back), or LY_ECONFLICT when the key was used for another route. */
int runq_replay(const char *org_id, const char *key, const char *route, json_t **answer);

/* What runq_start() inserts and how it answers. */
struct runq_start {
    const char *org_id;
    const char *idem_key; /* NULL: no Idempotency-Key */
    const char *route;    /* the route's path, stored with the key */
    struct run_submit *subs;
    int n;
    /* Registry secrets (JSON text) stored sealed beside subs[0] (NULL: none). */
    const char *docker_creds;
    /* Builds the answer from the submitted runs (their ids and tokens filled in), inside the
     * transaction; NULL fails the start. */
    json_t *(*answer)(struct run_submit *subs, int n, void *arg);
    void *arg;
};

/* Starts the runs of st in one transaction with the idempotency key and its answer, then
 * wakes the scheduler: 0 and *answer (the caller owns it), or LY_E* with nothing inserted.
 * LY_ECONFLICT with an idem_key: another request may have taken the key first (ask
 * runq_replay()). */
int runq_start(const struct runq_start *st, json_t **answer);

#endif
