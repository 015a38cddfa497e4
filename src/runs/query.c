/*
 * See query.h. The reads pass through to the store; runq_start() is the use case "start
 * runs with their idempotency": the runs' rows, the registry secrets of a Docker run and the
 * Idempotency-Key with its answer commit together or not at all, and the scheduler is woken
 * only after the commit, so it never looks for a run that is not there yet.
 */
#include "runs/query.h"
#include "runs/sched.h"
#include "core/err.h"
#include "core/json.h"
#include "exec/docker.h"
#include "store/db.h"
#include "store/orgs.h"
#include "store/runs.h"

#include <stdlib.h>
#include <string.h>

#define IDEM_MAX_AGE_US (24LL * 3600 * 1000000)

int runq_get(struct arena *a, const char *org_id, const char *id, struct run_row *r)
{
    return db_runs_get(a, org_id, id, r);
}

int runq_get_any(struct arena *a, const char *id, struct run_row *r)
{
    return db_runs_get_any(a, id, r);
}

int runq_active(struct arena *a, const char *org_id, const char *user_id, struct run_row **rows)
{
    return db_runs_list_active(a, org_id, user_id, rows);
}

int runq_delete(const char *org_id, const char *id)
{
    return db_runs_delete(org_id, id);
}

int runq_quota(struct arena *a, const char *user_id, char ***profiles)
{
    return db_quota_list(a, user_id, profiles);
}

int runq_webhook_secret(const char *org_id, char *out, size_t n)
{
    return db_callback_secret(org_id, out, n);
}

int runq_member(const char *org_id, const char *user_id)
{
    char role[8];
    int is_default;

    return members_get(org_id, user_id, role, &is_default);
}

int runq_replay(const char *org_id, const char *key, const char *route, json_t **answer)
{
    struct arena a;
    struct idem_row row;
    int err;

    *answer = NULL;
    arena_init(&a);
    err = db_idem_get(&a, org_id, key, IDEM_MAX_AGE_US, &row);
    if (err == LY_ENOTFOUND)
        err = 0;
    else if (!err && strcmp(row.route, route) != 0)
        err = LY_ECONFLICT;
    else if (!err && !(*answer = json_loads(row.answer, 0, NULL)))
        *answer = json_object();
    arena_release(&a);
    return err;
}

int runq_start(const struct runq_start *st, json_t **answer)
{
    json_t *a = NULL;
    char *text;
    int err = store_begin();

    *answer = NULL;
    if (err)
        return err;
    for (int i = 0; i < st->n && !err; i++)
        err = runs_submit(&st->subs[i], 1);
    /* A secret that cannot be stored fails the start as an answer that cannot be made. */
    if (!err && st->docker_creds && docker_creds_save(st->subs[0].id, st->docker_creds))
        err = LY_EINTERNAL;
    if (!err) {
        a = st->answer(st->subs, st->n, st->arg);
        if (!a)
            err = LY_EINTERNAL;
    }
    if (!err && st->idem_key) {
        text = json_dumps(a, JSON_WIRE);
        err = db_idem_put(st->org_id, st->idem_key, st->route, text);
        free(text);
    }
    if (!err)
        err = store_commit();
    if (err) {
        store_rollback();
        json_decref(a);
        return err;
    }
    runs_kick();
    *answer = a;
    return 0;
}
