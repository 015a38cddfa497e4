/* See inference.h. */
#include "store/inference.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"
#include "store/ledger.h"
#include "store/rows.h"

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

int dep_insert(const char *id, const char *org_id, const char *user_id, const char *hf_model_id,
               const char *profile, json_t *spec, int min_r, int max_r, const char *hf_token_sealed)
{
    char *js = json_dumps(spec, JSON_COMPACT);
    int n = q_exec("INSERT INTO deployments (id, org_id, user_id, hf_model_id, profile, spec, "
                   "status, min_replicas, max_replicas, created_at, hf_token_sealed) "
                   "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                   "ssssssiiis", id, org_id, user_id, hf_model_id, profile, js, (int64_t)min_r,
                   (int64_t)max_r, now_us(), hf_token_sealed);

    free(js);
    return ok0(n);
}

int dep_set_status(const char *id, const char *status, const char *errors)
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

json_t *dep_get(const char *org_id, const char *id, int *err)
{
    return q_one_json(q_prepare("SELECT " DEP_COLS " FROM deployments WHERE id = ? AND org_id = ?",
                                "ss", id, org_id),
                      err);
}

int dep_list(const char *org_id, int include_stopped, json_t *out)
{
    return q_rows_json(q_prepare("SELECT " DEP_COLS " FROM deployments WHERE org_id = ? AND "
                                 "(? OR status NOT IN ('stopped', 'failed')) "
                                 "ORDER BY created_at DESC, id",
                                 "si", org_id, (int64_t)include_stopped),
                       out, 0);
}

int dep_live(json_t *out)
{
    return q_rows_json(q_prepare("SELECT " DEP_COLS ", hf_token_sealed FROM deployments WHERE "
                                 "status NOT IN "
                                 "('stopped', 'failed') ORDER BY created_at",
                                 ""),
                       out, 0);
}

int rep_insert(const char *id, const char *dep_id, const char *org_id, const char *profile,
               int64_t started_at)
{
    return ok0(q_exec("INSERT INTO inference_replicas (id, deployment_id, org_id, profile, "
                      "started_at, metered_until) VALUES (?, ?, ?, ?, ?, ?)",
                      "ssssii", id, dep_id, org_id, profile, started_at, started_at));
}

int rep_charge(const char *id, const char *org_id, const char *dep_id, int64_t amount,
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

int rep_end(const char *id, int64_t ended_at)
{
    return ok0(q_exec("UPDATE inference_replicas SET ended_at = ? WHERE id = ? AND "
                      "ended_at IS NULL",
                      "is", ended_at, id));
}

int rep_open(json_t *out)
{
    return q_rows_json(q_prepare("SELECT id, deployment_id, org_id, profile, started_at, "
                                 "metered_until FROM inference_replicas WHERE ended_at IS NULL",
                                 ""),
                       out, 0);
}

int64_t dep_billed(const char *dep_id)
{
    int64_t v = 0;

    q_int(&v,
          "SELECT coalesce(-sum(amount), 0) FROM ledger WHERE kind = 'deployment' AND "
          "ref IN (SELECT id FROM inference_replicas WHERE deployment_id = ?)",
          "s", dep_id);
    return v;
}

int infres_insert(const char *id, const char *org_id, const char *dep_id)
{
    /* OR IGNORE: the call runs already and may have ended first. */
    return ok0(q_exec("INSERT OR IGNORE INTO inference_results (id, org_id, deployment_id, "
                      "status, created_at) VALUES (?, ?, ?, 'queued', ?)",
                      "sssi", id, org_id, dep_id, now_us()));
}

int infres_end(const char *id, const char *org_id, const char *dep_id, const char *status,
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

json_t *infres_get(const char *org_id, const char *id, int *err)
{
    sqlite3_stmt *st = q_prepare("SELECT status, event FROM inference_results "
                                 "WHERE id = ? AND org_id = ?",
                                 "ss", id, org_id);
    json_t *o = NULL;
    int rc;

    if (!st) {
        *err = LY_EDB;
        return NULL;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *ev = q_text(st, 1);

        o = json_pack("{s:s,s:o}", "status", q_text(st, 0), "event",
                      ev ? json_loads(ev, 0, NULL) : json_null());
        if (!json_object_get(o, "event"))
            json_object_set_new(o, "event", json_null());
    }
    q_done(st);
    *err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
    return o;
}

int infres_fail_open(const char *why)
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

int usage_add(const char *org_id, const char *dep_id, int64_t prompt, int64_t completion)
{
    return ok0(q_exec("INSERT INTO inference_usage (org_id, deployment_id, prompt_tokens, "
                      "completion_tokens, created_at) VALUES (?, ?, ?, ?, ?)",
                      "ssiii", org_id, dep_id, prompt, completion, now_us()));
}

int file_insert(const char *id, const char *org_id, const char *filename, const char *purpose,
                int64_t bytes)
{
    return ok0(q_exec("INSERT INTO files (id, org_id, filename, purpose, bytes, created_at) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      "ssssii", id, org_id, filename, purpose, bytes, now_us()));
}

json_t *file_get(const char *org_id, const char *id, int *err)
{
    return q_one_json(q_prepare("SELECT id, filename, purpose, bytes, created_at FROM files "
                                "WHERE id = ? AND org_id = ? AND deleted_at IS NULL",
                                "ss", id, org_id),
                      err);
}

int file_list(const char *org_id, const char *purpose, json_t *out)
{
    return q_rows_json(q_prepare("SELECT id, filename, purpose, bytes, created_at FROM files "
                                 "WHERE org_id = ? AND deleted_at IS NULL AND "
                                 "(? IS NULL OR purpose = ?) ORDER BY created_at DESC, id",
                                 "sss", org_id, purpose, purpose),
                       out, 0);
}

int file_delete(const char *org_id, const char *id)
{
    return q_exec("UPDATE files SET deleted_at = ? WHERE id = ? AND org_id = ? AND "
                  "deleted_at IS NULL",
                  "iss", now_us(), id, org_id);
}

int batch_insert(const char *id, const char *org_id, const char *endpoint, const char *file_id,
                 const char *model, const char *window, json_t *metadata, int64_t expires_at)
{
    char *md = metadata ? json_dumps(metadata, JSON_COMPACT) : NULL;
    int n =
        q_exec("INSERT INTO batches (id, org_id, seq, endpoint, input_file_id, model, "
               "completion_window, metadata, status, created_at, expires_at) VALUES (?, ?, "
               "(SELECT coalesce(max(seq), 0) + 1 FROM batches), ?, ?, ?, ?, ?, "
               "'validating', ?, ?)",
               "sssssssii", id, org_id, endpoint, file_id, model, window, md, now_us(), expires_at);

    free(md);
    return ok0(n);
}

#define BATCH_COLS                                                                                 \
    "id, org_id, seq, endpoint, input_file_id, model, completion_window, metadata, status, "       \
    "errors, output_file_id, error_file_id, total, created_at, in_progress_at, expires_at, "       \
    "finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at"

json_t *batch_get(const char *org_id, const char *id, int *err)
{
    return q_one_json(q_prepare("SELECT " BATCH_COLS " FROM batches WHERE id = ? AND org_id = ?",
                                "ss", id, org_id),
                      err);
}

json_t *batch_get_any(const char *id, int *err)
{
    return q_one_json(q_prepare("SELECT " BATCH_COLS " FROM batches WHERE id = ?", "s", id), err);
}

int batch_list(const char *org_id, const char *after, int64_t limit, json_t *out)
{
    return q_rows_json(
        q_prepare("SELECT " BATCH_COLS " FROM batches WHERE org_id = ? AND "
                  "(? IS NULL OR seq < (SELECT seq FROM batches WHERE id = ? AND org_id = ?)) "
                  "ORDER BY seq DESC LIMIT ?",
                  "ssssi", org_id, after, after, org_id, limit),
        out, 0);
}

int batch_pending(json_t *out)
{
    return q_rows_json(q_prepare("SELECT " BATCH_COLS " FROM batches WHERE status IN "
                                 "('validating', 'in_progress', 'finalizing', 'cancelling') "
                                 "ORDER BY seq",
                                 ""),
                       out, 0);
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

int batch_set_status(const char *id, const char *status)
{
    return batch_move(id, NULL, status) < 0 ? LY_EDB : 0;
}

int batch_move(const char *id, const char *from, const char *status)
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

int batch_set_errors(const char *id, json_t *errors)
{
    char *js = json_dumps(errors, JSON_COMPACT);
    int n = q_exec("UPDATE batches SET errors = ? WHERE id = ?", "ss", js, id);

    free(js);
    return ok0(n);
}

int batch_set_files(const char *id, const char *output_file_id, const char *error_file_id)
{
    return ok0(q_exec("UPDATE batches SET output_file_id = ?, error_file_id = ? WHERE id = ?",
                      "sss", output_file_id, error_file_id, id));
}

int batch_add_lines(const char *id, json_t *lines)
{
    size_t i;
    json_t *l;
    int err = store_begin();

    if (err)
        return err;
    json_array_foreach(lines, i, l)
    {
        char *body = json_dumps(json_object_get(l, "body"), JSON_COMPACT);
        int n = q_exec("INSERT OR IGNORE INTO batch_lines (batch_id, line, custom_id, body) "
                       "VALUES (?, ?, ?, ?)",
                       "siss", id, json_integer_value(json_object_get(l, "line")),
                       json_string_value(json_object_get(l, "custom_id")), body);

        free(body);
        if (n < 0) {
            err = n;
            break;
        }
    }
    if (!err && q_exec("UPDATE batches SET total = ? WHERE id = ?", "is",
                       (int64_t)json_array_size(lines), id) < 0)
        err = LY_EDB;
    return finish_tx(err);
}

int batch_todo(const char *id, int64_t limit, json_t *out)
{
    return q_rows_json(q_prepare("SELECT line, custom_id, body FROM batch_lines WHERE "
                                 "batch_id = ? AND done_at IS NULL ORDER BY line LIMIT ?",
                                 "si", id, limit),
                       out, 0);
}

int batch_line_done(const char *id, int64_t line, int ok, const char *result)
{
    return q_exec("UPDATE batch_lines SET ok = ?, result = ?, done_at = ? WHERE batch_id = ? "
                  "AND line = ? AND done_at IS NULL",
                  "isisi", (int64_t)ok, result, now_us(), id, line);
}

int batch_results(const char *id, int ok, json_t *out)
{
    return q_rows_json(q_prepare("SELECT result FROM batch_lines WHERE batch_id = ? AND ok = ? "
                                 "ORDER BY line",
                                 "si", id, (int64_t)ok),
                       out, 1);
}

int batch_counts(const char *id, int64_t *completed, int64_t *failed)
{
    if (q_int(completed, "SELECT count(*) FROM batch_lines WHERE batch_id = ? AND ok = 1", "s",
              id) ||
        q_int(failed, "SELECT count(*) FROM batch_lines WHERE batch_id = ? AND ok = 0", "s", id))
        return LY_EDB;
    return 0;
}
