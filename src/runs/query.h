/*
 * The runs' use cases and reads for the API: a run of an org (or by id alone, for capability
 * URLs), the active runs of a user, deletion, quotas, the org's webhook secret, and starting
 * runs with their idempotency key in one transaction. api/ calls these instead of the store,
 * so that transactions and store calls stay below the API layer.
 *
 * Rows are store/runs.h's structs, allocated (with their lists) from the arena given.
 * Thread-safety: every function may be called from any HTTP thread.
 */
#ifndef LYCEUMD_RUNS_QUERY_H
#define LYCEUMD_RUNS_QUERY_H

#include "core/arena.h"
#include "runs/runs.h"
#include "runs/submit.h"
#include "store/runs.h"

#include <jansson.h>
#include <stddef.h>

/* The run id of org (not deleted): 0, LY_ENOTFOUND, or LY_EDB. */
int runq_get(struct arena *a, const char *org_id, const char *id, struct run_row *r);
/* A run by id alone (deleted ones included: the caller checks deleted_at), likewise. For the
 * capability URLs (streaming token, port host names), where no org is known yet. */
int runq_get_any(struct arena *a, const char *id, struct run_row *r);
/* The org's active runs of user (pending, starting, running), oldest first, into *rows:
 * their number, or LY_EDB. */
int runq_active(struct arena *a, const char *org_id, const char *user_id, struct run_row **rows);
/* Marks a terminal run deleted. 1 done, 0 not found; LY_ECONFLICT when it is still going. */
int runq_delete(const char *org_id, const char *id);
/* The profiles user may use, into *profiles: their number (0: every profile), or LY_EDB. */
int runq_quota(struct arena *a, const char *user_id, char ***profiles);
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
