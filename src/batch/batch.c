/* See batch.h. */
#include "batch/batch.h"
#include "batch/file.h"
#include "core/err.h"
#include "core/log.h"
#include "core/arena.h"
#include "core/util.h"
#include "core/worker.h"
#include "inference/call.h"
#include "inference/inference.h"
#include "store/db.h"
#include "store/inference.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ERRORS 100
#define MAX_JOBS   256

struct job {
    char batch_id[40], org_id[40], custom_id[128];
    int64_t line;
    char model[256];
    char url[64];
    json_t *body;
};

static struct {
    int concurrency;
} set;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static pthread_t mgr;
static struct worker_pool *line_pool; /* the lines' workers: at most MAX_JOBS, as inflight[] */
static int started, stopping, kicked;
static struct {
    char batch_id[40];
    int64_t line;
} inflight[MAX_JOBS];
static int ninflight;

void batch_kick(void)
{
    pthread_mutex_lock(&mu);
    kicked = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* ---- validation ---- */

static void add_error(json_t *errs, const char *code, const char *msg, const char *param,
                      int64_t line)
{
    if (json_array_size(errs) < MAX_ERRORS)
        json_array_append_new(errs, json_pack("{s:s,s:s,s:s?,s:I}", "code", code, "message", msg,
                                              "param", param, "line", (json_int_t)line));
}

static const char *norm_url(const char *u)
{
    if (!u)
        return NULL;
    if (strcmp(u, "/v1/chat/completions") == 0 || strcmp(u, "/chat/completions") == 0)
        return "/v1/chat/completions";
    if (strcmp(u, "/v1/completions") == 0 || strcmp(u, "/completions") == 0)
        return "/v1/completions";
    return NULL;
}

/* Reads and checks the input file; on success records the lines and moves to in_progress. */
static void validate(json_t *b)
{
    const char *id = json_string_value(json_object_get(b, "id"));
    const char *org = json_string_value(json_object_get(b, "org_id"));
    const char *fid = json_string_value(json_object_get(b, "input_file_id"));
    const char *ep = norm_url(json_string_value(json_object_get(b, "endpoint")));
    json_t *errs = json_array(), *lines = json_array(), *seen = json_object(), *f;
    char path[1200], *data = NULL, *p, *nl;
    int64_t lineno = 0;
    struct stat st;
    int err = 0, fd = -1;

    f = file_get(org, fid, &err);
    batch_file_path(fid, path, sizeof(path));
    if (f)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st)) {
        add_error(errs, "invalid_file", "The input file does not exist", "input_file_id", 0);
        goto done;
    }
    data = xmalloc((size_t)st.st_size + 1);
    if (read(fd, data, (size_t)st.st_size) != st.st_size) {
        add_error(errs, "invalid_file", "The input file cannot be read", "input_file_id", 0);
        goto done;
    }
    data[st.st_size] = 0;
    for (p = data; *p; p = nl ? nl + 1 : p + strlen(p)) {
        json_t *l, *body;
        const char *cid, *method, *url;
        char msg[256];

        nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        lineno++;
        if (!*p || (p[0] == '\r' && !p[1]))
            continue;
        l = json_loads(p, 0, NULL);
        if (!json_is_object(l)) {
            add_error(errs, "invalid_json_line", "This line is not parseable as valid JSON.", NULL,
                      lineno);
            json_decref(l);
            continue;
        }
        cid = json_string_value(json_object_get(l, "custom_id"));
        method = json_string_value(json_object_get(l, "method"));
        url = json_string_value(json_object_get(l, "url"));
        body = json_object_get(l, "body");
        if (!cid || !*cid || strlen(cid) > 127) {
            add_error(errs, "missing_required_parameter", "custom_id must be a non-empty string",
                      "custom_id", lineno);
        } else if (json_object_get(seen, cid)) {
            snprintf(msg, sizeof(msg), "The custom_id '%.64s' is already used on line %lld", cid,
                     (long long)json_integer_value(json_object_get(seen, cid)));
            add_error(errs, "duplicate_custom_id", msg, "custom_id", lineno);
        } else if (!method || strcmp(method, "POST") != 0) {
            add_error(errs, "invalid_method", "method must be POST", "method", lineno);
        } else if (!norm_url(url) || (ep && strcmp(norm_url(url), ep) != 0)) {
            snprintf(msg, sizeof(msg), "url must be %s", ep ? ep : "/v1/chat/completions");
            add_error(errs, "invalid_url", msg, "url", lineno);
        } else if (!json_is_object(body)) {
            add_error(errs, "missing_required_parameter", "body must be an object", "body", lineno);
        } else {
            json_object_set_new(seen, cid, json_integer(lineno));
            json_array_append_new(lines, json_pack("{s:I,s:s,s:O}", "line", (json_int_t)lineno,
                                                   "custom_id", cid, "body", l));
        }
        json_decref(l);
    }
    if (!json_array_size(lines) && !json_array_size(errs))
        add_error(errs, "empty_file", "The input file has no requests", "input_file_id", 0);
done:
    if (fd >= 0)
        close(fd);
    free(data);
    json_decref(f);
    if (json_array_size(errs)) {
        json_t *list = json_pack("{s:s,s:O}", "object", "list", "data", errs);

        batch_set_errors(id, list);
        json_decref(list);
        batch_move(id, "validating", "failed");
    } else if (batch_add_lines(id, lines) == 0) {
        batch_move(id, "validating", "in_progress");
    }
    json_decref(errs);
    json_decref(lines);
    json_decref(seen);
}

/* ---- running lines ---- */

static void inflight_del(const char *batch_id, int64_t line)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < ninflight; i++)
        if (inflight[i].line == line && strcmp(inflight[i].batch_id, batch_id) == 0) {
            inflight[i] = inflight[--ninflight];
            break;
        }
    kicked = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int is_inflight(const char *batch_id, int64_t line, int *count)
{
    int hit = 0;

    *count = 0;
    for (int i = 0; i < ninflight; i++)
        if (strcmp(inflight[i].batch_id, batch_id) == 0) {
            (*count)++;
            hit |= inflight[i].line == line;
        }
    return hit;
}

static void record(struct job *j, int ok, long status, json_t *body, const char *code,
                   const char *msg)
{
    char rid[40], *js;
    json_t *line;
    int stop;

    uuid_v4(rid);
    line = json_pack("{s:s,s:s}", "id", "", "custom_id", j->custom_id);
    json_object_set_new(line, "id", json_sprintf("batch_req_%.8s%.4s%.4s", rid, rid + 9, rid + 14));
    if (body)
        json_object_set_new(line, "response",
                            json_pack("{s:i,s:s,s:O}", "status_code", (int)status, "request_id",
                                      rid, "body", body));
    else
        json_object_set_new(line, "response", json_null());
    if (code)
        json_object_set_new(line, "error", json_pack("{s:s,s:s}", "code", code, "message", msg));
    else
        json_object_set_new(line, "error", json_null());
    js = json_dumps(line, JSON_COMPACT);
    pthread_mutex_lock(&mu);
    stop = stopping;
    pthread_mutex_unlock(&mu);
    if (!stop && batch_line_done(j->batch_id, j->line, ok, js) < 0)
        log_error("batch %s: cannot record line %lld", j->batch_id, (long long)j->line);
    free(js);
    json_decref(line);
}

static void job_run(void *arg)
{
    struct job *j = arg;
    char dep[40], why[256], *resp = NULL;
    long status = 0;
    int err = inference_resolve(j->org_id, j->model, dep);

    if (err) {
        snprintf(why, sizeof(why), "No deployment serves model '%.200s'", j->model);
        record(j, 0, 0, NULL, "model_not_found", why);
        goto out;
    }
    err = inference_call_sync(j->org_id, dep, j->url, j->body, &status, &resp, why, sizeof(why));
    if (err) {
        record(j, 0, 0, NULL, "server_error", why);
    } else {
        json_t *b = json_loads(resp, 0, NULL);

        if (!b)
            b = json_pack("{s:s}", "raw", resp);
        record(j, status == 200, status, b, status == 200 ? NULL : "upstream_error",
               "the model server refused the request");
        json_decref(b);
    }
out:
    free(resp);
    inflight_del(j->batch_id, j->line);
    json_decref(j->body);
    free(j);
    store_close(); /* the worker's connection: the pool's threads outlive the job */
}

static void dispatch(json_t *b)
{
    const char *id = json_string_value(json_object_get(b, "id"));
    const char *model = json_string_value(json_object_get(b, "model"));
    json_t *todo = json_array(), *l;
    int count;
    size_t i;

    pthread_mutex_lock(&mu);
    is_inflight(id, -1, &count);
    pthread_mutex_unlock(&mu);
    if (count >= set.concurrency || batch_todo(id, set.concurrency + count, todo)) {
        json_decref(todo);
        return;
    }
    json_array_foreach(todo, i, l)
    {
        int64_t line = json_integer_value(json_object_get(l, "line"));
        json_t *req = json_loads(json_string_value(json_object_get(l, "body")), 0, NULL);
        json_t *body = json_object_get(req, "body");
        struct job *j;

        pthread_mutex_lock(&mu);
        if (is_inflight(id, line, &count) || count >= set.concurrency || ninflight >= MAX_JOBS ||
            stopping) {
            pthread_mutex_unlock(&mu);
            json_decref(req);
            continue;
        }
        snprintf(inflight[ninflight].batch_id, sizeof(inflight[0].batch_id), "%s", id);
        inflight[ninflight++].line = line;
        pthread_mutex_unlock(&mu);
        j = xcalloc(1, sizeof(*j));
        snprintf(j->batch_id, sizeof(j->batch_id), "%s", id);
        snprintf(j->org_id, sizeof(j->org_id), "%s",
                 json_string_value(json_object_get(b, "org_id")));
        snprintf(j->custom_id, sizeof(j->custom_id), "%s",
                 json_string_value(json_object_get(l, "custom_id")));
        j->line = line;
        snprintf(j->model, sizeof(j->model), "%s",
                 model ? model
                 : json_string_value(json_object_get(body, "model"))
                     ? json_string_value(json_object_get(body, "model"))
                     : "");
        snprintf(j->url, sizeof(j->url), "%s",
                 norm_url(json_string_value(json_object_get(req, "url"))));
        j->body = json_incref(body);
        json_decref(req);
        if (worker_submit(line_pool, job_run, j)) {
            inflight_del(id, line);
            json_decref(j->body);
            free(j);
        }
    }
    json_decref(todo);
}

/* Writes the output and error files from the recorded results, then the final status. */
static void finalize(json_t *b, const char *final)
{
    const char *id = json_string_value(json_object_get(b, "id"));
    const char *org = json_string_value(json_object_get(b, "org_id"));
    char out_id[64] = "", err_id[64] = "", name[128];

    for (int ok = 1; ok >= 0; ok--) {
        json_t *rows = json_array(), *r;
        size_t i, len = 0;
        char *data = NULL;

        if (batch_results(id, ok, rows)) {
            json_decref(rows);
            return;
        }
        json_array_foreach(rows, i, r)
        {
            size_t n = strlen(json_string_value(r));

            data = realloc(data, len + n + 2);
            if (!data)
                abort();
            memcpy(data + len, json_string_value(r), n);
            len += n;
            data[len++] = '\n';
        }
        if (json_array_size(rows)) {
            char *fid = ok ? out_id : err_id;

            snprintf(fid, 64, "file-%s-%s", ok ? "out" : "err", id + 6);
            snprintf(name, sizeof(name), "%s_%s.jsonl", id, ok ? "output" : "errors");
            if (batch_file_store(org, fid, name, ok ? "batch_output" : "batch_errors", data, len)) {
                free(data);
                json_decref(rows);
                return;
            }
        }
        free(data);
        json_decref(rows);
    }
    batch_set_files(id, out_id[0] ? out_id : NULL, err_id[0] ? err_id : NULL);
    batch_set_status(id, final);
    log_info("batch %s: %s", id, final);
}

static void step(json_t *b)
{
    const char *id = json_string_value(json_object_get(b, "id"));
    const char *status = json_string_value(json_object_get(b, "status"));
    int64_t exp = json_integer_value(json_object_get(b, "expires_at")), done, failed;
    int count;

    if (strcmp(status, "validating") == 0) {
        validate(b);
        return;
    }
    pthread_mutex_lock(&mu);
    is_inflight(id, -1, &count);
    pthread_mutex_unlock(&mu);
    if (strcmp(status, "in_progress") == 0 && exp && now_unix() >= exp) {
        if (count)
            return; /* let what runs end first */
        batch_move(id, "in_progress", "finalizing");
        /* Lines never run get an expiry error, recorded like any result. */
        json_t *todo = json_array(), *l;
        size_t i;

        batch_todo(id, 1000000, todo);
        json_array_foreach(todo, i, l)
        {
            struct job j = {0};

            snprintf(j.batch_id, sizeof(j.batch_id), "%s", id);
            snprintf(j.custom_id, sizeof(j.custom_id), "%s",
                     json_string_value(json_object_get(l, "custom_id")));
            j.line = json_integer_value(json_object_get(l, "line"));
            record(&j, 0, 0, NULL, "batch_expired",
                   "This request could not be executed before the completion window expired.");
        }
        json_decref(todo);
        finalize(b, "expired");
        return;
    }
    if (strcmp(status, "in_progress") == 0) {
        dispatch(b);
        pthread_mutex_lock(&mu);
        is_inflight(id, -1, &count);
        pthread_mutex_unlock(&mu);
        if (!count && batch_counts(id, &done, &failed) == 0 &&
            done + failed >= json_integer_value(json_object_get(b, "total")) &&
            batch_move(id, "in_progress", "finalizing") == 1)
            finalize(b, "completed");
        return;
    }
    if (strcmp(status, "finalizing") == 0) {
        finalize(b, exp && now_unix() >= exp && strcmp(status, "finalizing") == 0 &&
                            batch_counts(id, &done, &failed) == 0 &&
                            done + failed < json_integer_value(json_object_get(b, "total"))
                        ? "expired"
                        : "completed");
        return;
    }
    if (strcmp(status, "cancelling") == 0 && !count)
        finalize(b, "cancelled");
}

static void *manager(void *arg)
{
    (void)arg;
    for (;;) {
        json_t *list = json_array(), *b;
        struct timespec ts;
        size_t i;

        pthread_mutex_lock(&mu);
        if (stopping) {
            pthread_mutex_unlock(&mu);
            json_decref(list);
            break;
        }
        kicked = 0;
        pthread_mutex_unlock(&mu);
        if (batch_pending(list) == 0)
            json_array_foreach(list, i, b) step(b);
        json_decref(list);
        pthread_mutex_lock(&mu);
        if (!kicked && !stopping) {
            deadline_in(&ts, CLOCK_MONOTONIC, 200 * 1000);
            pthread_cond_timedwait(&cv, &mu, &ts);
        }
        pthread_mutex_unlock(&mu);
    }
    store_close();
    return NULL;
}

int batch_init(const char *data_dir, int concurrency)
{
    pthread_condattr_t ca;

    batch_file_dir(data_dir);
    set.concurrency = concurrency > 0 ? concurrency : 8;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    pthread_condattr_destroy(&ca);
    line_pool = worker_pool_new("batch lines", MAX_JOBS, MAX_JOBS);
    if (pthread_create(&mgr, NULL, manager, NULL)) {
        worker_pool_free(line_pool);
        line_pool = NULL;
        return LY_EINTERNAL;
    }
    started = 1;
    return 0;
}

void batch_stop(void)
{
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

void batch_shutdown(void)
{
    if (!started)
        return;
    batch_stop();
    pthread_join(mgr, NULL);
    /* Lines in flight end quickly once their transfers were aborted (upstream_shutdown) and
     * their replicas are gone; their results are dropped. */
    worker_pool_free(line_pool);
    line_pool = NULL;
    started = 0;
}
