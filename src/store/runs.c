/* See runs.h. */
#include "store/runs.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"

#include <stdio.h>
#include <string.h>

#define TERMINAL "('completed','failed','system_failure','aborted','cancelled')"
#define RUN_COLS                                                                                   \
    "id, org_id, user_id, kind, profile, status, priority, spec, file_name, timeout_s, "           \
    "graceful_s, parent_id, stream_token, callback_urls, created_at, started_at, running_at, "     \
    "ended_at, finished_at, return_code, errors, reason, install_return_code, gpus, backend, "     \
    "pid, pid_start, stop_mode, deleted_at, metered_until, backend_ref, waiting_reason, bucket"

/* Text column col into the arena, NULL for NULL. */
static char *col_dup(struct arena *a, sqlite3_stmt *st, int col)
{
    const char *t = q_text(st, col);

    return t ? arena_strdup(a, t) : NULL;
}

static void col_copy(char *dst, size_t n, sqlite3_stmt *st, int col)
{
    const char *t = q_text(st, col);

    snprintf(dst, n, "%s", t ? t : "");
}

/* Integer column col, or 0 for NULL (and *has 0 when has is given). */
static int64_t col_int(sqlite3_stmt *st, int col, int *has)
{
    int null = sqlite3_column_type(st, col) == SQLITE_NULL;

    if (has)
        *has = !null;
    return null ? 0 : sqlite3_column_int64(st, col);
}

/* A row of RUN_COLS' shape. */
static void run_read(struct arena *a, sqlite3_stmt *st, struct run_row *r)
{
    memset(r, 0, sizeof(*r));
    col_copy(r->id, sizeof(r->id), st, 0);
    col_copy(r->org_id, sizeof(r->org_id), st, 1);
    col_copy(r->user_id, sizeof(r->user_id), st, 2);
    r->kind = (int)col_int(st, 3, NULL);
    r->profile = col_dup(a, st, 4);
    r->status = col_dup(a, st, 5);
    r->priority = col_int(st, 6, NULL);
    r->spec = col_dup(a, st, 7);
    r->file_name = col_dup(a, st, 8);
    r->timeout_s = col_int(st, 9, NULL);
    r->graceful_s = col_int(st, 10, NULL);
    r->parent_id = col_dup(a, st, 11);
    r->stream_token = col_dup(a, st, 12);
    r->callback_urls = col_dup(a, st, 13);
    r->created_at = col_int(st, 14, NULL);
    r->started_at = col_int(st, 15, NULL);
    r->running_at = col_int(st, 16, NULL);
    r->ended_at = col_int(st, 17, NULL);
    r->finished_at = col_int(st, 18, NULL);
    r->return_code = col_int(st, 19, &r->has_return_code);
    r->errors = col_dup(a, st, 20);
    r->reason = col_dup(a, st, 21);
    r->install_return_code = col_int(st, 22, &r->has_install_return_code);
    r->gpus = col_dup(a, st, 23);
    r->backend = col_dup(a, st, 24);
    r->pid = col_int(st, 25, NULL);
    r->pid_start = col_int(st, 26, NULL);
    r->stop_mode = col_int(st, 27, NULL);
    r->deleted_at = col_int(st, 28, NULL);
    r->metered_until = col_int(st, 29, NULL);
    r->backend_ref = col_dup(a, st, 30);
    r->waiting_reason = col_dup(a, st, 31);
    r->bucket = col_dup(a, st, 32);
}

/* Steps st once (then q_done) into *r: 0, LY_ENOTFOUND, or LY_EDB. */
static int run_one(struct arena *a, sqlite3_stmt *st, struct run_row *r)
{
    int rc, err = 0;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        run_read(a, st, r);
    else
        err = rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
    q_done(st);
    return err;
}

/* Steps st to its end (then q_done): every row into *rows. Their number, or LY_EDB. */
static int run_list(struct arena *a, sqlite3_stmt *st, struct run_row **rows)
{
    int n = 0, cap = 0, rc;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        run_read(a, st, &(*rows)[n++]);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

/* Steps st to its end (then q_done): the first column of every row into *ids. */
static int id_list(struct arena *a, sqlite3_stmt *st, struct run_id **ids)
{
    int n = 0, cap = 0, rc;

    *ids = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *ids = arena_grow(a, *ids, n, &cap, sizeof(**ids));
        col_copy((*ids)[n++].id, sizeof((*ids)->id), st, 0);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int db_runs_insert(const struct run_new *r)
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

int db_runs_get(struct arena *a, const char *org_id, const char *id, struct run_row *r)
{
    return run_one(a,
                   q_prepare("SELECT " RUN_COLS " FROM runs WHERE id = ? AND org_id = ? AND "
                             "deleted_at IS NULL",
                             "ss", id, org_id),
                   r);
}

int db_runs_get_any(struct arena *a, const char *id, struct run_row *r)
{
    return run_one(a, q_prepare("SELECT " RUN_COLS " FROM runs WHERE id = ?", "s", id), r);
}

int db_runs_next_pending(struct arena *a, const char *profile, int limit, struct run_id **ids)
{
    return id_list(a,
                   q_prepare("SELECT id FROM runs WHERE status = 'pending' AND profile = ? "
                             "ORDER BY priority DESC, created_at, id LIMIT ?",
                             "si", profile, (int64_t)limit),
                   ids);
}

int db_runs_pending_counts(struct arena *a, struct run_pending_count **rows)
{
    sqlite3_stmt *st = q_prepare("SELECT profile, count(*) FROM runs WHERE status = 'pending' "
                                 "GROUP BY profile",
                                 "");
    int n = 0, cap = 0, rc;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        (*rows)[n].profile = arena_strdup(a, q_text(st, 0) ? q_text(st, 0) : "");
        (*rows)[n++].count = sqlite3_column_int64(st, 1);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int db_runs_mark_starting(const char *id, int64_t at, const char *gpus, const char *backend)
{
    return q_exec("UPDATE runs SET status = 'starting', started_at = ?, gpus = ?, backend = ? "
                  "WHERE id = ? AND status = 'pending'",
                  "isss", at, gpus, backend, id);
}

int db_runs_mark_running(const char *id, int64_t at)
{
    int n = q_exec("UPDATE runs SET status = 'running', running_at = ?, waiting_reason = NULL "
                   "WHERE id = ? AND status IN ('starting', 'queued')",
                   "is", at, id);

    return n < 0 ? n : 0;
}

int db_runs_mark_queued(const char *id)
{
    int n = q_exec("UPDATE runs SET status = 'queued', waiting_reason = NULL WHERE id = ? AND "
                   "status = 'starting'",
                   "s", id);

    return n < 0 ? n : 0;
}

int db_runs_set_backend_ref(const char *id, const char *ref)
{
    int n = q_exec("UPDATE runs SET backend_ref = ? WHERE id = ?", "ss", ref, id);

    return n < 0 ? n : 0;
}

int db_runs_set_waiting_reason(const char *id, const char *why)
{
    int n = q_exec("UPDATE runs SET waiting_reason = ? WHERE id = ?", "ss", why, id);

    return n < 0 ? n : 0;
}

int db_runs_set_pid(const char *id, int64_t pid, int64_t pid_start)
{
    int n =
        q_exec("UPDATE runs SET pid = ?, pid_start = ? WHERE id = ?", "iis", pid, pid_start, id);

    return n < 0 ? n : 0;
}

int db_runs_set_install_rc(const char *id, int rc)
{
    int n = q_exec("UPDATE runs SET install_return_code = ? WHERE id = ?", "is", (int64_t)rc, id);

    return n < 0 ? n : 0;
}

int db_runs_finish(const char *id, const char *status, const int *return_code, const char *errors,
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

int db_runs_end_pending(const char *org_id, const char *id, const char *status, const char *errors,
                        const char *reason, int64_t at)
{
    return q_exec("UPDATE runs SET status = ?, errors = ?, reason = ?, finished_at = ? "
                  "WHERE id = ? AND org_id = ? AND status = 'pending'",
                  "sssiss", status, errors, reason, at, id, org_id);
}

int db_runs_end_pending_of_user(struct arena *a, const char *user_id, const char *why, int64_t at,
                                struct run_id **ids)
{
    int n = id_list(
        a, q_prepare("SELECT id FROM runs WHERE user_id = ? AND status = 'pending'", "s", user_id),
        ids);

    if (n < 0)
        return n;
    return q_exec("UPDATE runs SET status = 'aborted', errors = ?, reason = 'deleted', "
                  "finished_at = ? WHERE user_id = ? AND status = 'pending'",
                  "sis", why, at, user_id) < 0
               ? LY_EDB
               : n;
}

int db_runs_going_of_user(struct arena *a, const char *user_id, struct run_id **ids)
{
    return id_list(a,
                   q_prepare("SELECT id FROM runs WHERE user_id = ? AND status IN "
                             "('starting', 'queued', 'running')",
                             "s", user_id),
                   ids);
}

int db_runs_set_stop_mode(const char *id, int mode)
{
    int n = q_exec("UPDATE runs SET stop_mode = ? WHERE id = ?", "is", (int64_t)mode, id);

    return n < 0 ? n : 0;
}

int db_runs_unfinished(struct arena *a, struct run_row **rows)
{
    return run_list(a,
                    q_prepare("SELECT " RUN_COLS " FROM runs WHERE status IN "
                              "('starting', 'queued', 'running') ORDER BY created_at",
                              ""),
                    rows);
}

int db_runs_list_active(struct arena *a, const char *org_id, const char *user_id,
                        struct run_row **rows)
{
    return run_list(a,
                    q_prepare("SELECT " RUN_COLS " FROM runs WHERE org_id = ? AND user_id = ? "
                              "AND status IN ('pending', 'starting', 'queued', 'running') AND "
                              "deleted_at IS NULL ORDER BY created_at, id",
                              "ss", org_id, user_id),
                    rows);
}

int db_runs_delete(const char *org_id, const char *id)
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

int db_idem_get(struct arena *a, const char *org_id, const char *key, int64_t max_age_us,
                struct idem_row *r)
{
    sqlite3_stmt *st = q_prepare("SELECT route, answer FROM idempotency WHERE org_id = ? AND "
                                 "key = ? AND created_at > ?",
                                 "ssi", org_id, key, now_us() - max_age_us);
    int rc, err = 0;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->route = arena_strdup(a, q_text(st, 0) ? q_text(st, 0) : "");
        r->answer = arena_strdup(a, q_text(st, 1) ? q_text(st, 1) : "");
    } else {
        err = rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
    }
    q_done(st);
    return err;
}

int db_idem_put(const char *org_id, const char *key, const char *route, const char *answer)
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

int db_quota_list(struct arena *a, const char *user_id, char ***profiles)
{
    sqlite3_stmt *st = q_prepare(
        "SELECT profile FROM user_quotas WHERE user_id = ? ORDER BY profile", "s", user_id);
    int n = 0, cap = 0, rc;

    *profiles = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *profiles = arena_grow(a, *profiles, n, &cap, sizeof(**profiles));
        (*profiles)[n++] = arena_strdup(a, q_text(st, 0) ? q_text(st, 0) : "");
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int db_quota_set(const char *user_id, const char *const *profiles, size_t n)
{
    int err = store_begin();

    if (err)
        return err;
    if (q_exec("DELETE FROM user_quotas WHERE user_id = ?", "s", user_id) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (q_exec("INSERT OR IGNORE INTO user_quotas (user_id, profile) VALUES (?, ?)", "ss",
                   user_id, profiles[i]) < 0)
            goto fail;
    }
    return store_commit();
fail:
    store_rollback();
    return LY_EDB;
}

int db_callback_add(const char *run_id, const char *org_id, const char *url, const char *body,
                    int64_t at)
{
    int n = q_exec("INSERT INTO callbacks (run_id, org_id, url, body, next_at) VALUES "
                   "(?, ?, ?, ?, ?)",
                   "ssssi", run_id, org_id, url, body, at);

    return n < 0 ? n : 0;
}

int db_callback_due(struct arena *a, int64_t now, int limit, struct callback_row **rows)
{
    sqlite3_stmt *st = q_prepare("SELECT id, org_id, run_id, url, body, tries FROM callbacks "
                                 "WHERE done_at IS NULL AND next_at <= ? ORDER BY next_at LIMIT ?",
                                 "ii", now, (int64_t)limit);
    int n = 0, cap = 0, rc;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct callback_row *c;

        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        c = &(*rows)[n++];
        c->id = sqlite3_column_int64(st, 0);
        col_copy(c->org_id, sizeof(c->org_id), st, 1);
        col_copy(c->run_id, sizeof(c->run_id), st, 2);
        c->url = arena_strdup(a, q_text(st, 3) ? q_text(st, 3) : "");
        c->body = arena_strdup(a, q_text(st, 4) ? q_text(st, 4) : "");
        c->tries = sqlite3_column_int64(st, 5);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int db_callback_result(int64_t id, int ok, const char *error, int64_t next_at, int give_up)
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

int db_callback_secret(const char *org_id, char *out, size_t n)
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

int db_runs_requeue(const char *id)
{
    return q_exec("UPDATE runs SET status = 'pending', started_at = NULL WHERE id = ?", "s", id);
}
