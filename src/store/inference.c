/* See inference.h. */
#include "store/inference.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"
#include "store/ledger.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ok0(int n)
{
    return n < 0 ? n : 0;
}

/* Commits when err is 0, else rolls back; err, or LY_EDB when the commit fails. */
static int finish_tx(int err)
{
    if (err) {
        store_rollback();
        return err;
    }
    if (store_commit()) {
        store_rollback();
        return LY_EDB;
    }
    return 0;
}

int db_dep_insert(const char *id, const char *org_id, const char *user_id, const char *hf_model_id,
                  const char *profile, const char *js, int min_r, int max_r,
                  const char *hf_token_sealed)
{
    int n = q_exec("INSERT INTO deployments (id, org_id, user_id, hf_model_id, profile, spec, "
                   "status, min_replicas, max_replicas, created_at, hf_token_sealed) "
                   "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                   "ssssssiiis", id, org_id, user_id, hf_model_id, profile, js, (int64_t)min_r,
                   (int64_t)max_r, now_us(), hf_token_sealed);

    return ok0(n);
}

int db_dep_set_status(const char *id, const char *status, const char *errors)
{
    int stopped = strcmp(status, "stopped") == 0 || strcmp(status, "failed") == 0;

    return ok0(q_exec("UPDATE deployments SET status = ?, errors = coalesce(?, errors), "
                      "stopped_at = CASE WHEN ? THEN coalesce(stopped_at, ?) ELSE stopped_at END "
                      "WHERE id = ?",
                      "ssiis", status, errors, (int64_t)stopped, now_us(), id));
}

#define DEP_COLS                                                                                   \
    "id, org_id, hf_model_id, profile, spec, status, errors, min_replicas, max_replicas, "         \
    "created_at, stopped_at"

static char *dup_or_null(const char *v);
static int64_t int_or(sqlite3_stmt *st, int col, int64_t def);
static void *grow_rows(void **v, size_t *n, size_t *cap, size_t size);

void dep_row_release(struct dep_row *r)
{
    free(r->hf_model_id);
    free(r->spec);
    free(r->errors);
    free(r->hf_token_sealed);
    memset(r, 0, sizeof(*r));
}

void dep_rows_release(struct dep_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++)
        dep_row_release(&rows->v[i]);
    free(rows->v);
    rows->v = NULL;
    rows->n = 0;
}

static void dep_from(sqlite3_stmt *st, struct dep_row *r, int sealed)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", q_text(st, 0) ? q_text(st, 0) : "");
    snprintf(r->org_id, sizeof(r->org_id), "%s", q_text(st, 1) ? q_text(st, 1) : "");
    r->hf_model_id = xstrdup(q_text(st, 2) ? q_text(st, 2) : "");
    snprintf(r->profile, sizeof(r->profile), "%s", q_text(st, 3) ? q_text(st, 3) : "");
    r->spec = xstrdup(q_text(st, 4) ? q_text(st, 4) : "{}");
    snprintf(r->status, sizeof(r->status), "%s", q_text(st, 5) ? q_text(st, 5) : "");
    r->errors = dup_or_null(q_text(st, 6));
    r->min_replicas = sqlite3_column_int64(st, 7);
    r->max_replicas = sqlite3_column_int64(st, 8);
    r->created_at = sqlite3_column_int64(st, 9);
    r->stopped_at = int_or(st, 10, -1);
    r->hf_token_sealed = sealed ? dup_or_null(q_text(st, 11)) : NULL;
}

/* Steps st (then q_done): its first row into *one, or every row into *many. */
static int dep_rows_of(sqlite3_stmt *st, struct dep_row *one, struct dep_rows *many, int sealed)
{
    size_t cap = 0;
    int rc;

    if (one)
        memset(one, 0, sizeof(*one));
    if (many)
        memset(many, 0, sizeof(*many));
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (one) {
            dep_from(st, one, sealed);
            break;
        }
        dep_from(st, grow_rows((void **)&many->v, &many->n, &cap, sizeof(*many->v)), sealed);
    }
    q_done(st);
    if (one)
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int db_dep_get(const char *org_id, const char *id, struct dep_row *out)
{
    return dep_rows_of(q_prepare("SELECT " DEP_COLS " FROM deployments WHERE id = ? AND org_id = ?",
                                 "ss", id, org_id),
                       out, NULL, 0);
}

int db_dep_list(const char *org_id, int include_stopped, struct dep_rows *out)
{
    return dep_rows_of(q_prepare("SELECT " DEP_COLS " FROM deployments WHERE org_id = ? AND "
                                 "(? OR status NOT IN ('stopped', 'failed')) "
                                 "ORDER BY created_at DESC, id",
                                 "si", org_id, (int64_t)include_stopped),
                       NULL, out, 0);
}

int db_dep_live(struct dep_rows *out)
{
    return dep_rows_of(q_prepare("SELECT " DEP_COLS ", hf_token_sealed FROM deployments WHERE "
                                 "status NOT IN "
                                 "('stopped', 'failed') ORDER BY created_at",
                                 ""),
                       NULL, out, 1);
}

int db_rep_insert(const char *id, const char *dep_id, const char *org_id, const char *profile,
                  int64_t started_at)
{
    return ok0(q_exec("INSERT INTO inference_replicas (id, deployment_id, org_id, profile, "
                      "started_at, metered_until) VALUES (?, ?, ?, ?, ?, ?)",
                      "ssssii", id, dep_id, org_id, profile, started_at, started_at));
}

int db_rep_charge(const char *id, const char *org_id, const char *dep_id, int64_t amount,
                  int64_t start, int64_t end)
{
    int n, err = store_begin();

    if (err)
        return err;
    n = ledger_insert(&(struct ledger_entry){.org_id = org_id,
                                             .kind = "deployment",
                                             .amount = -amount,
                                             .description = dep_id,
                                             .ref = id,
                                             .window_start = start,
                                             .window_end = end,
                                             .once = 1});
    if (n >= 0 && q_exec("UPDATE inference_replicas SET metered_until = ? WHERE id = ? AND "
                         "metered_until < ?",
                         "isi", end, id, end) < 0)
        n = LY_EDB;
    err = finish_tx(n < 0 ? n : 0);
    return err ? err : n;
}

int db_rep_end(const char *id, int64_t ended_at)
{
    return ok0(q_exec("UPDATE inference_replicas SET ended_at = ? WHERE id = ? AND "
                      "ended_at IS NULL",
                      "is", ended_at, id));
}

int db_rep_open(struct rep_rows *out)
{
    sqlite3_stmt *st = q_prepare("SELECT id, deployment_id, org_id, profile, started_at, "
                                 "metered_until FROM inference_replicas WHERE ended_at IS NULL",
                                 "");
    size_t cap = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct rep_row *r = grow_rows((void **)&out->v, &out->n, &cap, sizeof(*out->v));

        memset(r, 0, sizeof(*r));
        snprintf(r->id, sizeof(r->id), "%s", q_text(st, 0) ? q_text(st, 0) : "");
        snprintf(r->dep_id, sizeof(r->dep_id), "%s", q_text(st, 1) ? q_text(st, 1) : "");
        snprintf(r->org_id, sizeof(r->org_id), "%s", q_text(st, 2) ? q_text(st, 2) : "");
        snprintf(r->profile, sizeof(r->profile), "%s", q_text(st, 3) ? q_text(st, 3) : "");
        r->started_at = sqlite3_column_int64(st, 4);
        r->metered_until = sqlite3_column_int64(st, 5);
    }
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

void rep_rows_release(struct rep_rows *rows)
{
    free(rows->v);
    rows->v = NULL;
    rows->n = 0;
}

int64_t db_dep_billed(const char *dep_id)
{
    int64_t v = 0;

    q_int(&v,
          "SELECT coalesce(-sum(amount), 0) FROM ledger WHERE kind = 'deployment' AND "
          "ref IN (SELECT id FROM inference_replicas WHERE deployment_id = ?)",
          "s", dep_id);
    return v;
}

int db_infres_insert(const char *id, const char *org_id, const char *dep_id)
{
    /* OR IGNORE: the call runs already and may have ended first. */
    return ok0(q_exec("INSERT OR IGNORE INTO inference_results (id, org_id, deployment_id, "
                      "status, created_at) VALUES (?, ?, ?, 'queued', ?)",
                      "sssi", id, org_id, dep_id, now_us()));
}

int db_infres_end(const char *id, const char *org_id, const char *dep_id, const char *status,
                  const char *event)
{
    int64_t now = now_us();

    return ok0(q_exec("INSERT INTO inference_results (id, org_id, deployment_id, status, event, "
                      "created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                      "event = excluded.event, finished_at = excluded.finished_at "
                      "WHERE inference_results.status = 'queued'",
                      "sssssii", id, org_id, dep_id, status, event, now, now));
}

void infres_row_release(struct infres_row *r)
{
    free(r->event);
    r->event = NULL;
}

int db_infres_get(const char *org_id, const char *id, struct infres_row *out)
{
    sqlite3_stmt *st = q_prepare("SELECT status, event FROM inference_results "
                                 "WHERE id = ? AND org_id = ?",
                                 "ss", id, org_id);
    int rc;

    memset(out, 0, sizeof(*out));
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(out->status, sizeof(out->status), "%s", q_text(st, 0) ? q_text(st, 0) : "");
        out->event = q_text(st, 1) ? xstrdup(q_text(st, 1)) : NULL;
    }
    q_done(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

int db_infres_fail_open(const char *why)
{
    json_t *ids = json_array(), *v;
    sqlite3_stmt *st = q_prepare("SELECT id FROM inference_results WHERE status = 'queued'", "");
    size_t i;
    int err = 0;

    if (!st) {
        json_decref(ids);
        return LY_EDB;
    }
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(ids, json_string(q_text(st, 0)));
    q_done(st);
    json_array_foreach(ids, i, v)
    {
        json_t *ev = json_pack("{s:s,s:s,s:s}", "inference_id", json_string_value(v), "status",
                               "failed", "error", why);
        char *js = json_dumps(ev, JSON_COMPACT);

        if (q_exec("UPDATE inference_results SET status = 'failed', event = ?, "
                   "finished_at = ? WHERE id = ? AND status = 'queued'",
                   "sis", js, now_us(), json_string_value(v)) < 0)
            err = LY_EDB;
        free(js);
        json_decref(ev);
    }
    json_decref(ids);
    return err;
}

int db_usage_add(const char *org_id, const char *dep_id, int64_t prompt, int64_t completion)
{
    return ok0(q_exec("INSERT INTO inference_usage (org_id, deployment_id, prompt_tokens, "
                      "completion_tokens, created_at) VALUES (?, ?, ?, ?, ?)",
                      "ssiii", org_id, dep_id, prompt, completion, now_us()));
}

int db_file_insert(const char *id, const char *org_id, const char *filename, const char *purpose,
                   int64_t bytes)
{
    return ok0(q_exec("INSERT INTO files (id, org_id, filename, purpose, bytes, created_at) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      "ssssii", id, org_id, filename, purpose, bytes, now_us()));
}

static char *dup_or_null(const char *v)
{
    return v ? xstrdup(v) : NULL;
}

static int64_t int_or(sqlite3_stmt *st, int col, int64_t def)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? def : sqlite3_column_int64(st, col);
}

void file_row_release(struct file_row *r)
{
    free(r->filename);
    r->filename = NULL;
}

#define FILE_COLS "id, filename, purpose, bytes, created_at"

static void file_from(sqlite3_stmt *st, struct file_row *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", q_text(st, 0) ? q_text(st, 0) : "");
    r->filename = xstrdup(q_text(st, 1) ? q_text(st, 1) : "");
    snprintf(r->purpose, sizeof(r->purpose), "%s", q_text(st, 2) ? q_text(st, 2) : "");
    r->bytes = sqlite3_column_int64(st, 3);
    r->created_at = sqlite3_column_int64(st, 4);
}

int db_file_get(const char *org_id, const char *id, struct file_row *out)
{
    sqlite3_stmt *st = q_prepare("SELECT " FILE_COLS " FROM files "
                                 "WHERE id = ? AND org_id = ? AND deleted_at IS NULL",
                                 "ss", id, org_id);
    int rc;

    memset(out, 0, sizeof(*out));
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        file_from(st, out);
    q_done(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

void file_rows_release(struct file_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++)
        file_row_release(&rows->v[i]);
    free(rows->v);
    rows->v = NULL;
    rows->n = 0;
}

/* Appends the next slot of a growing array of rows. */
static void *grow_rows(void **v, size_t *n, size_t *cap, size_t size)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = realloc(*v, *cap * size);
        if (!*v)
            abort();
    }
    return (char *)*v + (*n)++ * size;
}

int db_file_list(const char *org_id, const char *purpose, struct file_rows *out)
{
    sqlite3_stmt *st = q_prepare("SELECT " FILE_COLS " FROM files "
                                 "WHERE org_id = ? AND deleted_at IS NULL AND "
                                 "(? IS NULL OR purpose = ?) ORDER BY created_at DESC, id",
                                 "sss", org_id, purpose, purpose);
    size_t cap = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        file_from(st, grow_rows((void **)&out->v, &out->n, &cap, sizeof(*out->v)));
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int db_file_delete(const char *org_id, const char *id)
{
    return q_exec("UPDATE files SET deleted_at = ? WHERE id = ? AND org_id = ? AND "
                  "deleted_at IS NULL",
                  "iss", now_us(), id, org_id);
}

int db_batch_insert(const char *id, const char *org_id, const char *endpoint, const char *file_id,
                    const char *model, const char *window, const char *md, int64_t expires_at)
{
    int n =
        q_exec("INSERT INTO batches (id, org_id, seq, endpoint, input_file_id, model, "
               "completion_window, metadata, status, created_at, expires_at) VALUES (?, ?, "
               "(SELECT coalesce(max(seq), 0) + 1 FROM batches), ?, ?, ?, ?, ?, "
               "'validating', ?, ?)",
               "sssssssii", id, org_id, endpoint, file_id, model, window, md, now_us(), expires_at);

    return ok0(n);
}

#define BATCH_COLS                                                                                 \
    "id, org_id, seq, endpoint, input_file_id, model, completion_window, metadata, status, "       \
    "errors, output_file_id, error_file_id, total, created_at, in_progress_at, expires_at, "       \
    "finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at"

void batch_row_release(struct batch_row *r)
{
    free(r->endpoint);
    free(r->input_file_id);
    free(r->model);
    free(r->completion_window);
    free(r->metadata);
    free(r->errors);
    free(r->output_file_id);
    free(r->error_file_id);
    memset(r, 0, sizeof(*r));
}

void batch_rows_release(struct batch_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++)
        batch_row_release(&rows->v[i]);
    free(rows->v);
    rows->v = NULL;
    rows->n = 0;
}

static void batch_from(sqlite3_stmt *st, struct batch_row *r)
{
    int64_t *stamps[] = {&r->in_progress_at, &r->expires_at, &r->finalizing_at, &r->completed_at,
                         &r->failed_at,      &r->expired_at, &r->cancelling_at, &r->cancelled_at};

    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", q_text(st, 0) ? q_text(st, 0) : "");
    snprintf(r->org_id, sizeof(r->org_id), "%s", q_text(st, 1) ? q_text(st, 1) : "");
    r->seq = sqlite3_column_int64(st, 2);
    r->endpoint = xstrdup(q_text(st, 3) ? q_text(st, 3) : "");
    r->input_file_id = xstrdup(q_text(st, 4) ? q_text(st, 4) : "");
    r->model = dup_or_null(q_text(st, 5));
    r->completion_window = xstrdup(q_text(st, 6) ? q_text(st, 6) : "");
    r->metadata = dup_or_null(q_text(st, 7));
    snprintf(r->status, sizeof(r->status), "%s", q_text(st, 8) ? q_text(st, 8) : "");
    r->errors = dup_or_null(q_text(st, 9));
    r->output_file_id = dup_or_null(q_text(st, 10));
    r->error_file_id = dup_or_null(q_text(st, 11));
    r->total = sqlite3_column_int64(st, 12);
    r->created_at = sqlite3_column_int64(st, 13);
    for (int i = 0; i < 8; i++)
        *stamps[i] = int_or(st, 14 + i, -1);
}

/* Steps st (then q_done): its first row into *one, or every row into *many. */
static int batch_rows_of(sqlite3_stmt *st, struct batch_row *one, struct batch_rows *many)
{
    size_t cap = 0;
    int rc;

    if (one)
        memset(one, 0, sizeof(*one));
    if (many)
        memset(many, 0, sizeof(*many));
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (one) {
            batch_from(st, one);
            break;
        }
        batch_from(st, grow_rows((void **)&many->v, &many->n, &cap, sizeof(*many->v)));
    }
    q_done(st);
    if (one)
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int db_batch_get(const char *org_id, const char *id, struct batch_row *out)
{
    return batch_rows_of(q_prepare("SELECT " BATCH_COLS " FROM batches WHERE id = ? AND org_id = ?",
                                   "ss", id, org_id),
                         out, NULL);
}

int db_batch_get_any(const char *id, struct batch_row *out)
{
    return batch_rows_of(q_prepare("SELECT " BATCH_COLS " FROM batches WHERE id = ?", "s", id), out,
                         NULL);
}

int db_batch_list(const char *org_id, const char *after, int64_t limit, struct batch_rows *out)
{
    return batch_rows_of(
        q_prepare("SELECT " BATCH_COLS " FROM batches WHERE org_id = ? AND "
                  "(? IS NULL OR seq < (SELECT seq FROM batches WHERE id = ? AND org_id = ?)) "
                  "ORDER BY seq DESC LIMIT ?",
                  "ssssi", org_id, after, after, org_id, limit),
        NULL, out);
}

int db_batch_pending(struct batch_rows *out)
{
    return batch_rows_of(q_prepare("SELECT " BATCH_COLS " FROM batches WHERE status IN "
                                   "('validating', 'in_progress', 'finalizing', 'cancelling') "
                                   "ORDER BY seq",
                                   ""),
                         NULL, out);
}

static const char *stamp_col(const char *status)
{
    static const char *const cols[] = {"in_progress", "finalizing", "completed", "failed",
                                       "expired",     "cancelling", "cancelled"};

    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
        if (strcmp(cols[i], status) == 0)
            return cols[i];
    return NULL;
}

int db_batch_set_status(const char *id, const char *status)
{
    return db_batch_move(id, NULL, status) < 0 ? LY_EDB : 0;
}

int db_batch_move(const char *id, const char *from, const char *status)
{
    /* The column name comes from a fixed list, never from input; one statement per column
     * keeps the SQL literal (and so cached per thread). */
    static const char *const sqls[] = {
        "UPDATE batches SET status = ?, in_progress_at = ? WHERE id = ? AND "
        "(? IS NULL OR instr(',' || ? || ',', ',' || status || ',') > 0)",
        "UPDATE batches SET status = ?, finalizing_at = ? WHERE id = ? AND "
        "(? IS NULL OR instr(',' || ? || ',', ',' || status || ',') > 0)",
        "UPDATE batches SET status = ?, completed_at = ? WHERE id = ? AND "
        "(? IS NULL OR instr(',' || ? || ',', ',' || status || ',') > 0)",
        "UPDATE batches SET status = ?, failed_at = ? WHERE id = ? AND "
        "(? IS NULL OR instr(',' || ? || ',', ',' || status || ',') > 0)",
        "UPDATE batches SET status = ?, expired_at = ? WHERE id = ? AND "
        "(? IS NULL OR instr(',' || ? || ',', ',' || status || ',') > 0)",
        "UPDATE batches SET status = ?, cancelling_at = ? WHERE id = ? AND "
        "(? IS NULL OR instr(',' || ? || ',', ',' || status || ',') > 0)",
        "UPDATE batches SET status = ?, cancelled_at = ? WHERE id = ? AND "
        "(? IS NULL OR instr(',' || ? || ',', ',' || status || ',') > 0)",
    };
    static const char *const names[] = {"in_progress", "finalizing", "completed", "failed",
                                        "expired",     "cancelling", "cancelled"};
    const char *col = stamp_col(status);

    for (size_t i = 0; col && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i], status) == 0)
            return q_exec(sqls[i], "sisss", status, now_us() / MICRO, id, from, from);
    return q_exec("UPDATE batches SET status = ? WHERE id = ? AND "
                  "(? IS NULL OR instr(',' || ? || ',', ',' || status || ',') > 0)",
                  "ssss", status, id, from, from);
}

int db_batch_set_errors(const char *id, const char *errors)
{
    return ok0(q_exec("UPDATE batches SET errors = ? WHERE id = ?", "ss", errors, id));
}

int db_batch_set_files(const char *id, const char *output_file_id, const char *error_file_id)
{
    return ok0(q_exec("UPDATE batches SET output_file_id = ?, error_file_id = ? WHERE id = ?",
                      "sss", output_file_id, error_file_id, id));
}

int db_batch_add_lines(const char *id, const struct batch_line *lines, size_t n)
{
    int err = store_begin();

    if (err)
        return err;
    for (size_t i = 0; i < n; i++) {
        int k = q_exec("INSERT OR IGNORE INTO batch_lines (batch_id, line, custom_id, body) "
                       "VALUES (?, ?, ?, ?)",
                       "siss", id, lines[i].line, lines[i].custom_id, lines[i].body);

        if (k < 0) {
            err = k;
            break;
        }
    }
    if (!err && q_exec("UPDATE batches SET total = ? WHERE id = ?", "is", (int64_t)n, id) < 0)
        err = LY_EDB;
    return finish_tx(err);
}

void batch_lines_release(struct batch_lines *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->v[i].custom_id);
        free(rows->v[i].body);
    }
    free(rows->v);
    rows->v = NULL;
    rows->n = 0;
}

int db_batch_todo(const char *id, int64_t limit, struct batch_lines *out)
{
    sqlite3_stmt *st = q_prepare("SELECT line, custom_id, body FROM batch_lines WHERE "
                                 "batch_id = ? AND done_at IS NULL ORDER BY line LIMIT ?",
                                 "si", id, limit);
    size_t cap = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct batch_line *l = grow_rows((void **)&out->v, &out->n, &cap, sizeof(*out->v));

        l->line = sqlite3_column_int64(st, 0);
        l->custom_id = xstrdup(q_text(st, 1) ? q_text(st, 1) : "");
        l->body = xstrdup(q_text(st, 2) ? q_text(st, 2) : "");
    }
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int db_batch_line_done(const char *id, int64_t line, int ok, const char *result)
{
    return q_exec("UPDATE batch_lines SET ok = ?, result = ?, done_at = ? WHERE batch_id = ? "
                  "AND line = ? AND done_at IS NULL",
                  "isisi", (int64_t)ok, result, now_us(), id, line);
}

int db_batch_results(const char *id, int ok, void (*fn)(void *arg, const char *result), void *arg)
{
    sqlite3_stmt *st = q_prepare("SELECT result FROM batch_lines WHERE batch_id = ? AND ok = ? "
                                 "ORDER BY line",
                                 "si", id, (int64_t)ok);
    int rc;

    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(arg, q_text(st, 0) ? q_text(st, 0) : "");
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int db_batch_counts(const char *id, int64_t *completed, int64_t *failed)
{
    if (q_int(completed, "SELECT count(*) FROM batch_lines WHERE batch_id = ? AND ok = 1", "s",
              id) ||
        q_int(failed, "SELECT count(*) FROM batch_lines WHERE batch_id = ? AND ok = 0", "s", id))
        return LY_EDB;
    return 0;
}
