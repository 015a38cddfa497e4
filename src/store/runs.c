/* See runs.h. */
#include "store/runs.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"
#include "store/rows.h"

#include <stdio.h>
#include <string.h>

#define TERMINAL "('completed','failed','system_failure','aborted','cancelled')"
#define RUN_COLS                                                                                   \
    "id, org_id, user_id, kind, profile, status, priority, spec, file_name, timeout_s, "           \
    "graceful_s, parent_id, stream_token, callback_urls, created_at, started_at, running_at, "     \
    "ended_at, finished_at, return_code, errors, reason, install_return_code, gpus, backend, "     \
    "pid, pid_start, stop_mode, deleted_at, metered_until, backend_ref, waiting_reason, bucket"

int runs_insert(const struct run_new *r)
{
    int n = q_exec("INSERT INTO runs (id, org_id, user_id, kind, profile, status, priority, spec, "
                   "file_name, timeout_s, graceful_s, parent_id, stream_token, callback_urls, "
                   "created_at, bucket) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, "
                   "?, ?)",
                   "sssisissiisssis", r->id, r->org_id, r->user_id, (int64_t)r->kind, r->profile,
                   (int64_t)r->priority, r->spec, r->file_name, (int64_t)r->timeout_s,
                   (int64_t)r->graceful_s, r->parent_id, r->stream_token_hash, r->callback_urls,
                   r->created_at, r->bucket);

    return n < 0 ? n : 0;
}

json_t *runs_get(const char *org_id, const char *id, int *err)
{
    return q_one_json(q_prepare("SELECT " RUN_COLS " FROM runs WHERE id = ? AND org_id = ? AND "
                                "deleted_at IS NULL",
                                "ss", id, org_id),
                      err);
}

json_t *runs_get_any(const char *id, int *err)
{
    return q_one_json(q_prepare("SELECT " RUN_COLS " FROM runs WHERE id = ?", "s", id), err);
}

int runs_next_pending(const char *profile, int limit, json_t *ids)
{
    return q_rows_json(q_prepare("SELECT id FROM runs WHERE status = 'pending' AND profile = ? "
                                 "ORDER BY priority DESC, created_at, id LIMIT ?",
                                 "si", profile, (int64_t)limit),
                       ids, 1);
}

int runs_pending_counts(json_t *out)
{
    sqlite3_stmt *st = q_prepare("SELECT profile, count(*) FROM runs WHERE status = 'pending' "
                                 "GROUP BY profile",
                                 "");
    int rc;

    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(out, q_text(st, 0), json_integer(sqlite3_column_int64(st, 1)));
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int runs_mark_starting(const char *id, int64_t at, const char *gpus, const char *backend)
{
    return q_exec("UPDATE runs SET status = 'starting', started_at = ?, gpus = ?, backend = ? "
                  "WHERE id = ? AND status = 'pending'",
                  "isss", at, gpus, backend, id);
}

int runs_mark_running(const char *id, int64_t at)
{
    int n = q_exec("UPDATE runs SET status = 'running', running_at = ?, waiting_reason = NULL "
                   "WHERE id = ? AND status IN ('starting', 'queued')",
                   "is", at, id);

    return n < 0 ? n : 0;
}

int runs_mark_queued(const char *id)
{
    int n = q_exec("UPDATE runs SET status = 'queued', waiting_reason = NULL WHERE id = ? AND "
                   "status = 'starting'",
                   "s", id);

    return n < 0 ? n : 0;
}

int runs_set_backend_ref(const char *id, const char *ref)
{
    int n = q_exec("UPDATE runs SET backend_ref = ? WHERE id = ?", "ss", ref, id);

    return n < 0 ? n : 0;
}

int runs_set_waiting_reason(const char *id, const char *why)
{
    int n = q_exec("UPDATE runs SET waiting_reason = ? WHERE id = ?", "ss", why, id);

    return n < 0 ? n : 0;
}

int runs_set_pid(const char *id, int64_t pid, int64_t pid_start)
{
    int n =
        q_exec("UPDATE runs SET pid = ?, pid_start = ? WHERE id = ?", "iis", pid, pid_start, id);

    return n < 0 ? n : 0;
}

int runs_set_install_rc(const char *id, int rc)
{
    int n = q_exec("UPDATE runs SET install_return_code = ? WHERE id = ?", "is", (int64_t)rc, id);

    return n < 0 ? n : 0;
}

int runs_finish(const char *id, const char *status, const int *return_code, const char *errors,
                const char *reason, int64_t ended_at, int64_t finished_at)
{
    if (return_code)
        return q_exec("UPDATE runs SET status = ?, return_code = ?, errors = ?, reason = ?, "
                      "ended_at = ?, finished_at = ?, stop_mode = 0 WHERE id = ? AND "
                      "status NOT IN " TERMINAL,
                      "sissiis", status, (int64_t)*return_code, errors, reason, ended_at,
                      finished_at, id);
    return q_exec("UPDATE runs SET status = ?, errors = ?, reason = ?, ended_at = ?, "
                  "finished_at = ?, stop_mode = 0 WHERE id = ? AND status NOT IN " TERMINAL,
                  "sssiis", status, errors, reason, ended_at, finished_at, id);
}

int runs_end_pending(const char *org_id, const char *id, const char *status, const char *errors,
                     const char *reason, int64_t at)
{
    return q_exec("UPDATE runs SET status = ?, errors = ?, reason = ?, finished_at = ? "
                  "WHERE id = ? AND org_id = ? AND status = 'pending'",
                  "sssiss", status, errors, reason, at, id, org_id);
}

int runs_end_pending_of_user(const char *user_id, const char *why, int64_t at, json_t *ids)
{
    int err = q_rows_json(
        q_prepare("SELECT id FROM runs WHERE user_id = ? AND status = 'pending'", "s", user_id),
        ids, 1);

    if (err)
        return err;
    return q_exec("UPDATE runs SET status = 'aborted', errors = ?, reason = 'deleted', "
                  "finished_at = ? WHERE user_id = ? AND status = 'pending'",
                  "sis", why, at, user_id) < 0
               ? LY_EDB
               : 0;
}

int runs_going_of_user(const char *user_id, json_t *ids)
{
    return q_rows_json(q_prepare("SELECT id FROM runs WHERE user_id = ? AND status IN "
                                 "('starting', 'queued', 'running')",
                                 "s", user_id),
                       ids, 1);
}

int runs_set_stop_mode(const char *id, int mode)
{
    int n = q_exec("UPDATE runs SET stop_mode = ? WHERE id = ?", "is", (int64_t)mode, id);

    return n < 0 ? n : 0;
}

int runs_unfinished(json_t *out)
{
    return q_rows_json(q_prepare("SELECT " RUN_COLS " FROM runs WHERE status IN "
                                 "('starting', 'queued', 'running') ORDER BY created_at",
                                 ""),
                       out, 0);
}

int runs_list_active(const char *org_id, const char *user_id, json_t *out)
{
    return q_rows_json(q_prepare("SELECT " RUN_COLS " FROM runs WHERE org_id = ? AND user_id = ? "
                                 "AND status IN ('pending', 'starting', 'queued', 'running') AND "
                                 "deleted_at IS NULL ORDER BY created_at, id",
                                 "ss", org_id, user_id),
                       out, 0);
}

int runs_delete(const char *org_id, const char *id)
{
    int64_t active = 0;
    int n;

    if (q_int(&active,
              "SELECT count(*) FROM runs WHERE id = ? AND org_id = ? AND deleted_at IS NULL "
              "AND status NOT IN " TERMINAL,
              "ss", id, org_id))
        return LY_EDB;
    if (active)
        return LY_ECONFLICT;
    n = q_exec("UPDATE runs SET deleted_at = ? WHERE id = ? AND org_id = ? AND deleted_at IS "
               "NULL AND status IN " TERMINAL,
               "iss", now_us(), id, org_id);
    return n;
}

int runs_children(const char *org_id, const char *parent_id, json_t *out)
{
    return q_rows_json(q_prepare("SELECT " RUN_COLS " FROM runs WHERE org_id = ? AND parent_id = ? "
                                 "AND deleted_at IS NULL ORDER BY created_at, id",
                                 "ss", org_id, parent_id),
                       out, 0);
}

json_t *idem_get(const char *org_id, const char *key, int64_t max_age_us, int *err)
{
    return q_one_json(
        q_prepare("SELECT route, answer FROM idempotency WHERE org_id = ? AND key = ? "
                  "AND created_at > ?",
                  "ssi", org_id, key, now_us() - max_age_us),
        err);
}

int idem_put(const char *org_id, const char *key, const char *route, const char *answer)
{
    int n;

    /* An expired key may be reused: its old row goes first. */
    n = q_exec("DELETE FROM idempotency WHERE org_id = ? AND key = ? AND created_at <= ?", "ssi",
               org_id, key, now_us() - 24LL * 3600 * 1000000);
    if (n < 0)
        return n;
    n = q_exec("INSERT INTO idempotency (org_id, key, route, answer, created_at) VALUES "
               "(?, ?, ?, ?, ?)",
               "ssssi", org_id, key, route, answer, now_us());
    return n < 0 ? n : 0;
}

int quota_list(const char *user_id, json_t *out)
{
    return q_rows_json(
        q_prepare("SELECT profile FROM user_quotas WHERE user_id = ? ORDER BY profile", "s",
                  user_id),
        out, 1);
}

int quota_set(const char *user_id, json_t *profiles)
{
    size_t i;
    json_t *p;
    int err = store_begin();

    if (err)
        return err;
    if (q_exec("DELETE FROM user_quotas WHERE user_id = ?", "s", user_id) < 0)
        goto fail;
    json_array_foreach(profiles, i, p)
    {
        if (q_exec("INSERT OR IGNORE INTO user_quotas (user_id, profile) VALUES (?, ?)", "ss",
                   user_id, json_string_value(p)) < 0)
            goto fail;
    }
    return store_commit();
fail:
    store_rollback();
    return LY_EDB;
}

int callback_add(const char *run_id, const char *org_id, const char *url, const char *body,
                 int64_t at)
{
    int n = q_exec("INSERT INTO callbacks (run_id, org_id, url, body, next_at) VALUES "
                   "(?, ?, ?, ?, ?)",
                   "ssssi", run_id, org_id, url, body, at);

    return n < 0 ? n : 0;
}

int callback_due(int64_t now, int limit, json_t *out)
{
    return q_rows_json(q_prepare("SELECT id, org_id, run_id, url, body, tries FROM callbacks WHERE "
                                 "done_at IS NULL AND next_at <= ? ORDER BY next_at LIMIT ?",
                                 "ii", now, (int64_t)limit),
                       out, 0);
}

int callback_result(int64_t id, int ok, const char *error, int64_t next_at, int give_up)
{
    int n;

    if (ok || give_up)
        n = q_exec("UPDATE callbacks SET tries = tries + 1, done_at = ?, last_error = ? "
                   "WHERE id = ?",
                   "isi", now_us(), ok ? NULL : error, id);
    else
        n = q_exec("UPDATE callbacks SET tries = tries + 1, next_at = ?, last_error = ? "
                   "WHERE id = ?",
                   "isi", next_at, error, id);
    return n < 0 ? n : 0;
}

int org_webhook_secret(const char *org_id, char *out, size_t n)
{
    char fresh[48];
    sqlite3_stmt *st;
    int err = 0;

    random_base62(fresh, 40);
    if (q_exec("UPDATE orgs SET webhook_secret = ? WHERE id = ? AND webhook_secret IS NULL", "ss",
               fresh, org_id) < 0)
        return LY_EDB;
    st = q_prepare("SELECT webhook_secret FROM orgs WHERE id = ?", "s", org_id);
    if (!st)
        return LY_EDB;
    if (sqlite3_step(st) == SQLITE_ROW && q_text(st, 0))
        snprintf(out, n, "%s", q_text(st, 0));
    else
        err = LY_ENOTFOUND;
    q_done(st);
    return err;
}

int runs_requeue(const char *id)
{
    return q_exec("UPDATE runs SET status = 'pending', started_at = NULL WHERE id = ?", "s", id);
}
