/*
 * Following and managing runs (API.md 4.5, 4.7, 5, 16.3): the SSE output stream, status,
 * abort / stop / complete, the full record, timing, deletion and /workloads/list, with the
 * legacy paths of section 14. Every lookup is by (org, id): another org's run is 404.
 */
#include "api/api.h"
#include "api/runs_common.h"
#include "core/err.h"
#include "core/json.h"
#include "core/util.h"
#include "runs/output.h"
#include "runs/control.h"
#include "runs/query.h"
#include "runs/runs.h"
#include "runs/submit.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEXT_CAP (8u << 20) /* stdout / stderr / combined_output in one record */

json_t *run_streaming_url(struct req *req, const char *id, const char *token)
{
    const char *base = runs_cfg && runs_cfg->public_url[0] ? runs_cfg->public_url : NULL;
    const char *host = req_header(req, "Host");
    char url[1024];

    if (base)
        snprintf(url, sizeof(url), "%s%s/execution/streaming/%s?token=%s", base, API_PREFIX, id,
                 token);
    else
        snprintf(url, sizeof(url), "http://%s%s/execution/streaming/%s?token=%s",
                 host ? host : "127.0.0.1:8000", API_PREFIX, id, token);
    return json_string(url);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A time of the row (0: not yet) as the API writes times, or null. */
static json_t *time_or_null(int64_t us)
{
    return us ? json_time(us) : json_null();
}

static json_t *seconds_between(int64_t a, int64_t b)
{
    if (!a || !b)
        return json_null();
    return json_real((double)(b - a) / 1e6);
}

static const char *kind_label(const struct run_row *row)
{
    return row->kind == 1 ? "python code" : "docker";
}

static int find_run(struct req *req, struct run_row *row)
{
    int err = runq_get(&req->arena, req->caller->org_id, req_param(req, "execution_id"), row);

    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "Execution not found");
    return err;
}

/* ---- status and control ---- */

static json_t *status_json(const struct run_row *row)
{
    json_t *o = json_pack(
        "{s:s,s:o,s:o,s:o,s:s,s:o,s:o,s:o,s:o,s:o}", "execution_id", row->id, "status",
        str_or_null(row->status), "errors", str_or_null(row->errors), "return_code",
        row->has_return_code ? json_integer(row->return_code) : json_null(), "execution_type",
        kind_label(row), "hardware_profile", str_or_null(row->profile), "created_at",
        time_or_null(row->created_at), "start_time", time_or_null(row->running_at), "end_time",
        time_or_null(row->ended_at), "parent_execution_id", str_or_null(row->parent_id));

    if (row->reason)
        json_object_set_new(o, "reason", json_string(row->reason));
    return o;
}

static int api_runs_status(struct req *req)
{
    struct run_row row;
    int err = find_run(req, &row);

    if (err)
        return err;
    return req_reply(req, status_json(&row));
}

static int control(struct req *req, int mode)
{
    char status[32] = "";
    int err = runs_control(req->caller->org_id, req_param(req, "execution_id"), mode, status,
                           sizeof(status));

    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "Execution not found");
    if (err == LY_ECONFLICT)
        return req_fail(req, LY_ENOTFOUND, "Execution not found or already stopped (%s)", status);
    if (err)
        return err;
    return req_reply(
        req,
        json_pack("{s:s,s:s,s:s}", "message",
                  mode == STOP_ABORT ? "Execution is being aborted" : "Execution is being stopped",
                  "status", status, "execution_id", req_param(req, "execution_id")));
}

static int api_runs_abort(struct req *req)
{
    return control(req, STOP_ABORT);
}

static int api_runs_stop(struct req *req)
{
    return control(req, STOP_STOP);
}

/* ---- the record ---- */

/* Reads a run's output log into stdout, stderr and combined strings (each capped). */
static void read_output(const char *id, json_t *o)
{
    char path[1200], *buf = xmalloc(65536);
    struct out_record h;
    uint64_t pos = 0;
    struct stat stt;
    size_t cap[3] = {0};
    char *text[3];
    size_t len[3] = {0};
    int fd;
    long n;

    output_path(id, "output.log", path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < 3; i++) {
        cap[i] = 4096;
        text[i] = xmalloc(cap[i]);
    }
    if (fd >= 0 && fstat(fd, &stt) == 0) {
        while ((n = output_read_record(fd, &pos, (uint64_t)stt.st_size, &h, buf, 65536)) > 0) {
            int which[2] = {h.stream == 2 ? 1 : 0, 2};

            for (int k = 0; k < 2; k++) {
                int i = which[k];

                if (h.stream == 3 && k == 0)
                    continue; /* lyceumd's own lines appear only in the combined output */
                if (len[i] + (size_t)n > TEXT_CAP)
                    continue;
                while (len[i] + (size_t)n > cap[i])
                    cap[i] *= 2;
                text[i] = realloc(text[i], cap[i]);
                if (!text[i])
                    abort();
                memcpy(text[i] + len[i], buf, (size_t)n);
                len[i] += (size_t)n;
            }
        }
    }
    if (fd >= 0)
        close(fd);
    json_object_set_new(o, "stdout", json_string_lossy(text[0], len[0]));
    json_object_set_new(o, "stderr", json_string_lossy(text[1], len[1]));
    json_object_set_new(o, "combined_output", json_string_lossy(text[2], len[2]));
    for (int i = 0; i < 3; i++)
        free(text[i]);
    free(buf);
}

static json_t *read_small(const char *id, const char *file)
{
    char path[1200], *buf;
    int fd;
    ssize_t n;
    json_t *s;

    output_path(id, file, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return json_null();
    buf = xmalloc(1 << 20);
    n = read(fd, buf, 1 << 20);
    close(fd);
    s = n >= 0 ? json_string_lossy(buf, (size_t)n) : json_null();
    free(buf);
    return s;
}

static int api_runs_get(struct req *req)
{
    struct run_row row;
    json_t *o, *spec;
    const char *id;
    int err = find_run(req, &row);

    if (err)
        return err;
    id = row.id;
    spec = row.spec ? json_loads(row.spec, 0, NULL) : NULL;
    o = status_json(&row);
    json_object_set_new(o, "python_code",
                        json_incref(json_object_get(spec, "code")) ?: json_null());
    json_object_set_new(o, "file_name", str_or_null(row.file_name));
    json_object_set_new(o, "user_id", json_string(row.user_id));
    json_object_set_new(o, "org_id", json_string(row.org_id));
    json_object_set_new(o, "install_return_code",
                        row.has_install_return_code ? json_integer(row.install_return_code)
                                                    : json_null());
    json_object_set_new(o, "install_log", read_small(id, "install.log"));
    json_object_set_new(o, "execelet_start", time_or_null(row.started_at));
    json_object_set_new(o, "finish_time", time_or_null(row.finished_at));
    json_object_set_new(o, "timeout", json_integer(row.timeout_s));
    json_object_set_new(o, "gpus", str_or_null(row.gpus));
    if (row.kind != 1) {
        json_object_set(o, "docker_image_ref", json_object_get(spec, "docker_image_ref"));
        json_object_set_new(o, "errors_docker",
                            strcmp(row.status, "system_failure") == 0 ? str_or_null(row.errors)
                                                                      : json_null());
    }
    read_output(id, o);
    json_decref(spec);
    return req_reply(req, o);
}

static int api_runs_timing(struct req *req)
{
    struct run_row row;
    json_t *t;
    int err = find_run(req, &row);

    if (err)
        return err;
    t = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "created_at", time_or_null(row.created_at),
                  "queued_at", time_or_null(row.created_at), "start_time",
                  time_or_null(row.running_at), "end_time", time_or_null(row.ended_at),
                  "finish_time", time_or_null(row.finished_at), "queue_seconds",
                  seconds_between(row.created_at, row.running_at ?: row.started_at), "run_seconds",
                  seconds_between(row.running_at, row.ended_at), "total_seconds",
                  seconds_between(row.created_at, row.finished_at));
    return req_reply(req, json_pack("{s:s,s:o}", "execution_id", row.id, "timing", t));
}

static int api_runs_delete(struct req *req)
{
    int n = runq_delete(req->caller->org_id, req_param(req, "execution_id"));

    if (n == LY_ECONFLICT)
        return req_fail(req, LY_ECONFLICT,
                        "The execution is still going: abort or stop it before deleting it");
    if (n < 0)
        return n;
    if (n == 0)
        return req_fail(req, LY_ENOTFOUND, "Execution not found");
    return req_reply(req, json_pack("{s:s,s:s}", "message", "Execution deleted", "execution_id",
                                    req_param(req, "execution_id")));
}

static int api_workloads_list(struct req *req)
{
    struct run_row *rows;
    json_t *out;
    int n = runq_active(&req->arena, req->caller->org_id, req->caller->user_id, &rows);

    if (n < 0)
        return n;
    out = json_array();
    for (int i = 0; i < n; i++) {
        const struct run_row *row = &rows[i];

        json_array_append_new(
            out, json_pack("{s:s,s:o,s:o,s:o,s:s,s:o,s:o}", "execution_id", row->id, "status",
                           str_or_null(row->status), "file_name", str_or_null(row->file_name),
                           "hardware_profile", str_or_null(row->profile), "execution_type",
                           kind_label(row), "created_at", time_or_null(row->created_at),
                           "start_time", time_or_null(row->running_at)));
    }
    return req_reply(req, out);
}

static int api_webhook_secret(struct req *req)
{
    char secret[64];
    int err = api_require_role(req, ROLE_ADMIN);

    if (err)
        return err;
    err = runq_webhook_secret(req->caller->org_id, secret, sizeof(secret));
    if (err)
        return err;
    return req_reply(req, json_pack("{s:s,s:s,s:s}", "org_id", req->caller->org_id, "secret",
                                    secret, "signature_header", "X-Lyceum-Signature"));
}

/* ---- the SSE stream ---- */

enum { SSE_OUTPUT, SSE_END };

struct sse {
    char id[40];
    struct output *out; /* NULL once the run is known to be over */
    int fd;
    uint64_t pos;
    int state;
    char *ev;
    size_t ev_len, ev_off;
    struct waker wk;
    char *rec;
};

static void sse_event(struct sse *s, json_t *payload)
{
    char *js = json_dumps(payload, JSON_WIRE);
    size_t n = strlen(js);

    json_decref(payload);
    free(s->ev);
    s->ev = xmalloc(n + 9);
    memcpy(s->ev, "data: ", 6);
    memcpy(s->ev + 6, js, n);
    memcpy(s->ev + 6 + n, "\n\n", 3);
    s->ev_len = n + 8;
    s->ev_off = 0;
    free(js);
}

static void sse_finish(struct sse *s)
{
    struct arena a;
    struct run_row row;
    int found;
    json_t *rc, *result;
    const char *status, *errors;

    arena_init(&a);
    found = runq_get_any(&a, s->id, &row) == 0;
    status = found ? row.status : "unknown";
    errors = found ? row.errors : NULL;
    if (status && strcmp(status, "completed") == 0)
        rc = json_integer(0); /* a graceful stop ends completed whatever the signal did */
    else if (found && row.has_return_code)
        rc = json_integer(row.return_code);
    else
        rc = json_string(status ? status : "unknown");
    result = json_pack("{s:o,s:s?}", "returnCode", rc, "error",
                       status && strcmp(status, "system_failure") == 0
                           ? (errors ? errors : "system failure")
                           : NULL);
    if (!json_object_get(result, "error"))
        json_object_set_new(result, "error", json_null());
    sse_event(s, json_pack("{s:{s:{s:o,s:s?,s:s?}}}", "jobFinished", "job", "result", result,
                           "status", status, "errors", errors));
    arena_release(&a);
    s->state = SSE_END;
}

static long sse_read(void *ctx, char *buf, size_t max, struct stream_waker *w)
{
    struct sse *s = ctx;

    for (;;) {
        struct out_record h;
        uint64_t limit;
        int done = 1;
        long n;

        if (s->ev_off < s->ev_len) {
            size_t k = s->ev_len - s->ev_off < max ? s->ev_len - s->ev_off : max;

            memcpy(buf, s->ev + s->ev_off, k);
            s->ev_off += k;
            return (long)k;
        }
        if (s->state == SSE_END)
            return -1;
        s->wk.fn = stream_wake;
        s->wk.arg = w;
        if (s->out) {
            limit = output_wait(s->out, s->pos, &s->wk, &done);
        } else {
            struct stat st;

            if (s->fd < 0) {
                char path[1200];

                output_path(s->id, "output.log", path, sizeof(path));
                s->fd = open(path, O_RDONLY | O_CLOEXEC);
            }
            limit = s->fd >= 0 && fstat(s->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        }
        if (s->fd < 0 && limit > s->pos) {
            char path[1200];

            output_path(s->id, "output.log", path, sizeof(path));
            s->fd = open(path, O_RDONLY | O_CLOEXEC);
        }
        n = s->fd >= 0 ? output_read_record(s->fd, &s->pos, limit, &h, s->rec, 65536) : 0;
        if (n > 0) {
            sse_event(s, json_pack("{s:{s:o}}", "output", "content",
                                   json_string_lossy(s->rec, (size_t)n)));
            continue;
        }
        if (n < 0 || done) {
            if (s->out)
                output_unwait(s->out, &s->wk);
            sse_finish(s);
            continue;
        }
        return 0; /* woken through s->wk when more comes */
    }
}

static void sse_release(void *ctx)
{
    struct sse *s = ctx;

    if (s->out) {
        output_unwait(s->out, &s->wk);
        output_put(s->out);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s->ev);
    free(s->rec);
    free(s);
}

/* The SSE stream of a run's output. With credentials it is the caller's org's run; without,
 * the streaming_url's token must match. by_id: the legacy CLI fallback (POST
 * /api/v1/stream/{id}, which the CLI sends without credentials): there the execution id itself
 * is the capability, as the token is elsewhere. Execution ids are v4 UUIDs drawn from
 * getrandom(2) (122 random bits), never listed to another org, so knowing one is as good as
 * holding the token. */
static int runs_stream(struct req *req, int by_id)
{
    const char *id = req_param(req, "execution_id"), *token = req_query(req, "token");
    struct sse *s;
    struct run_row row;
    int err = 0;

    if (req->caller->via != VIA_NONE) {
        err = runq_get(&req->arena, req->caller->org_id, id, &row);
    } else if (token || by_id) {
        char hash[65];

        err = runq_get_any(&req->arena, id, &row);
        if (token)
            run_token_hash(token, hash);
        if (!err && ((token && strcmp(hash, row.stream_token ? row.stream_token : "") != 0) ||
                     row.deleted_at))
            err = LY_ENOTFOUND;
    } else {
        req_add_header(req, "WWW-Authenticate", "Bearer");
        return req_fail(req, LY_EUNAUTH,
                        "Not authenticated: send the streaming_url's token "
                        "or an Authorization header");
    }
    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "Execution not found");
    if (err)
        return err;
    s = xcalloc(1, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->fd = -1;
    s->rec = xmalloc(65536);
    if (!run_is_terminal(row.status)) {
        /* Follow it live. The status is read again after joining the registry: a run that
         * ended in between must not be waited for. */
        struct run_row again;

        s->out = output_get(id);
        if (runq_get_any(&req->arena, id, &again) == 0 && run_is_terminal(again.status)) {
            output_end(s->out);
            output_put(s->out);
            s->out = NULL;
        }
    }
    req_add_header(req, "Cache-Control", "no-cache");
    req_add_header(req, "X-Accel-Buffering", "no");
    return req_reply_stream(req, "text/event-stream",
                            (struct req_stream){sse_read, sse_release, s});
}

static int api_runs_stream(struct req *req)
{
    return runs_stream(req, 0);
}

static int api_runs_stream_by_id(struct req *req)
{
    return runs_stream(req, 1);
}

/* ---- the route table ---- */

static const struct field status_resp[] = {
    {"execution_id", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, "pending, starting, running, completed, failed, ..."},
    {"errors", FT_STRING, FF_NULLABLE, 0, 0, "why it failed"},
    {"reason", FT_STRING, 0, 0, 0, "timeout, aborted, stopped, restart (when one applies)"},
    {"return_code", FT_INTEGER, FF_NULLABLE, 0, 0, NULL},
    {"execution_type", FT_STRING, 0, 0, 0, "\"python code\" or \"docker\""},
    {"hardware_profile", FT_STRING, 0, 0, 0, NULL},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"start_time", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {"end_time", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {"parent_execution_id", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {0},
};
static const struct field control_resp[] = {
    {"message", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, "\"cancelling\" / \"stopping\", or the final status"},
    {"execution_id", FT_STRING, 0, 0, 0, NULL},
    {0},
};
static const struct field workload_resp[] = {
    {"execution_id", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, NULL},
    {"file_name", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"hardware_profile", FT_STRING, 0, 0, 0, NULL},
    {"execution_type", FT_STRING, 0, 0, 0, NULL},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"start_time", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {0},
};
static const struct field timing_resp[] = {
    {"execution_id", FT_STRING, 0, 0, 0, NULL},
    {"timing", FT_OBJECT, 0, 0, 0,
     "created_at, queued_at, start_time, end_time, finish_time, queue_seconds (until it began "
     "running, a Slurm job's PENDING time included), run_seconds, total_seconds"},
    {0},
};

#define STREAM_DOC "SSE: data: {\"output\":{\"content\"}} ... then {\"jobFinished\":...}"
#define STREAM_BY_ID_DOC                                                                           \
    "Legacy SSE (the CLI's fallback for docker and compose logs): no credentials needed, the "     \
    "execution id is the capability; with credentials, the caller's org's run only"

const struct route api_runs_view_routes[] = {
    {"GET", "/execution/streaming/{execution_id}/status", api_runs_status, 0, "Run status", NULL,
     status_resp},
    {"POST", "/execution/streaming/abort/{execution_id}", api_runs_abort, 0, "Abort a run", NULL,
     control_resp},
    {"POST", "/execution/streaming/complete/{execution_id}", api_runs_stop, 0,
     "Stop a run gracefully; it ends completed", NULL, control_resp},
    {"GET", "/execution/streaming/{execution_id}", api_runs_stream, R_AUTH_OPTIONAL, STREAM_DOC,
     NULL, NULL},
    {"POST", "/execution/streaming/{execution_id}", api_runs_stream, R_AUTH_OPTIONAL, STREAM_DOC,
     NULL, NULL},
    {"GET", "/workloads/list", api_workloads_list, R_RESP_ARRAY, "The caller's active runs", NULL,
     workload_resp},
    {"POST", "/workloads/abort/{execution_id}", api_runs_abort, 0, "Abort a run", NULL,
     control_resp},
    {"POST", "/workloads/stop/{execution_id}", api_runs_stop, 0,
     "Stop a run: SIGTERM, SIGKILL after graceful_timeout", NULL, control_resp},
    {"GET", "/webhooks/secret", api_webhook_secret, 0,
     "The org's key for X-Lyceum-Signature of callbacks (admin)", NULL, NULL},
    {"GET", "/execution/{execution_id}/timing", api_runs_timing, 0, "Run timing", NULL,
     timing_resp},
    {"GET", "/execution/{execution_id}", api_runs_get, 0, "The full run record", NULL, NULL},
    {"DELETE", "/execution/{execution_id}", api_runs_delete, 0,
     "Delete a finished run's record (409 while it is going)", NULL, NULL},
    {0},
};

const struct route api_runs_legacy_v1_routes[] = {
    {"GET", "/workloads/list", api_workloads_list, R_RESP_ARRAY, "Legacy: active runs", NULL,
     workload_resp},
    {"POST", "/workloads/abort/{execution_id}", api_runs_abort, 0, "Legacy: abort a run", NULL,
     control_resp},
    {"POST", "/stream/{execution_id}", api_runs_stream_by_id, R_AUTH_OPTIONAL | R_SECRET_PATH,
     STREAM_BY_ID_DOC, NULL, NULL},
    {"GET", "/stream/{execution_id}", api_runs_stream_by_id, R_AUTH_OPTIONAL | R_SECRET_PATH,
     STREAM_BY_ID_DOC, NULL, NULL},
    {0},
};
