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
static struct worker_pool *mgr_pool;  /* the manager's thread */
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
static void lines_release(struct batch_line *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].custom_id);
        free(v[i].body);
    }
    free(v);
}

static void validate(const struct batch_row *b)
{
    const char *id = b->id, *org = b->org_id, *fid = b->input_file_id;
    const char *ep = norm_url(b->endpoint);
    json_t *errs = json_array(), *seen = json_object();
    struct batch_line *lines = NULL;
    size_t nlines = 0, cap = 0;
    struct file_row f;
    char path[1200], *data = NULL, *p, *nl;
    int64_t lineno = 0;
    struct stat st;
    int fd = -1;

    batch_file_path(fid, path, sizeof(path));
    if (batch_file_get(org, fid, &f) == 0) {
        file_row_release(&f);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
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
            if (nlines == cap) {
                cap = cap ? cap * 2 : 64;
                lines = realloc(lines, cap * sizeof(*lines));
                if (!lines)
                    abort();
            }
            lines[nlines].line = lineno;
            lines[nlines].custom_id = xstrdup(cid);
            lines[nlines++].body = json_dumps(l, JSON_COMPACT);
        }
        json_decref(l);
    }
    if (!nlines && !json_array_size(errs))
        add_error(errs, "empty_file", "The input file has no requests", "input_file_id", 0);
done:
    if (fd >= 0)
        close(fd);
    free(data);
    if (json_array_size(errs)) {
        json_t *list = json_pack("{s:s,s:O}", "object", "list", "data", errs);
        char *js = json_dumps(list, JSON_COMPACT);

        db_batch_set_errors(id, js);
        free(js);
        json_decref(list);
        db_batch_move(id, "validating", "failed");
    } else if (db_batch_add_lines(id, lines, nlines) == 0) {
        db_batch_move(id, "validating", "in_progress");
    }
    json_decref(errs);
    lines_release(lines, nlines);
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
    if (!stop && db_batch_line_done(j->batch_id, j->line, ok, js) < 0)
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

static void dispatch(const struct batch_row *b)
{
    const char *id = b->id, *model = b->model;
    struct batch_lines todo;
    int count;

    pthread_mutex_lock(&mu);
    is_inflight(id, -1, &count);
    pthread_mutex_unlock(&mu);
    if (count >= set.concurrency || db_batch_todo(id, set.concurrency + count, &todo))
        return;
    for (size_t i = 0; i < todo.n; i++) {
        const struct batch_line *l = &todo.v[i];
        int64_t line = l->line;
        json_t *req = json_loads(l->body, 0, NULL);
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
        snprintf(j->org_id, sizeof(j->org_id), "%s", b->org_id);
        snprintf(j->custom_id, sizeof(j->custom_id), "%s", l->custom_id);
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
    batch_lines_release(&todo);
}

struct gather {
    char *data;
    size_t len, n;
};

static void gather_line(void *arg, const char *result)
{
    struct gather *g = arg;
    size_t n = strlen(result);

    g->data = realloc(g->data, g->len + n + 2);
    if (!g->data)
        abort();
    memcpy(g->data + g->len, result, n);
    g->len += n;
    g->data[g->len++] = '\n';
    g->n++;
}

/* Writes the output and error files from the recorded results, then the final status. */
static void finalize(const struct batch_row *b, const char *final)
{
    const char *id = b->id, *org = b->org_id;
    char out_id[64] = "", err_id[64] = "", name[128];

    for (int ok = 1; ok >= 0; ok--) {
        struct gather g = {0};

        if (db_batch_results(id, ok, gather_line, &g)) {
            free(g.data);
            return;
        }
        if (g.n) {
            char *fid = ok ? out_id : err_id;

            snprintf(fid, 64, "file-%s-%s", ok ? "out" : "err", id + 6);
            snprintf(name, sizeof(name), "%s_%s.jsonl", id, ok ? "output" : "errors");
            if (batch_file_store(org, fid, name, ok ? "batch_output" : "batch_errors", g.data,
                                 g.len)) {
                free(g.data);
                return;
            }
        }
        free(g.data);
    }
    db_batch_set_files(id, out_id[0] ? out_id : NULL, err_id[0] ? err_id : NULL);
    db_batch_set_status(id, final);
    log_info("batch %s: %s", id, final);
}

static void step(const struct batch_row *b)
{
    const char *id = b->id, *status = b->status;
    int64_t exp = b->expires_at > 0 ? b->expires_at : 0, done, failed;
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
        db_batch_move(id, "in_progress", "finalizing");
        /* Lines never run get an expiry error, recorded like any result. */
        struct batch_lines todo;

        if (db_batch_todo(id, 1000000, &todo) == 0) {
            for (size_t i = 0; i < todo.n; i++) {
                struct job j = {0};

                snprintf(j.batch_id, sizeof(j.batch_id), "%s", id);
                snprintf(j.custom_id, sizeof(j.custom_id), "%s", todo.v[i].custom_id);
                j.line = todo.v[i].line;
                record(&j, 0, 0, NULL, "batch_expired",
                       "This request could not be executed before the completion window "
                       "expired.");
            }
            batch_lines_release(&todo);
        }
        finalize(b, "expired");
        return;
    }
    if (strcmp(status, "in_progress") == 0) {
        dispatch(b);
        pthread_mutex_lock(&mu);
        is_inflight(id, -1, &count);
        pthread_mutex_unlock(&mu);
        if (!count && db_batch_counts(id, &done, &failed) == 0 && done + failed >= b->total &&
            db_batch_move(id, "in_progress", "finalizing") == 1)
            finalize(b, "completed");
        return;
    }
    if (strcmp(status, "finalizing") == 0) {
        finalize(b, exp && now_unix() >= exp && strcmp(status, "finalizing") == 0 &&
                            db_batch_counts(id, &done, &failed) == 0 && done + failed < b->total
                        ? "expired"
                        : "completed");
        return;
    }
    if (strcmp(status, "cancelling") == 0 && !count)
        finalize(b, "cancelled");
}

static void manager(void *arg)
{
    (void)arg;
    for (;;) {
        struct batch_rows list;
        struct timespec ts;

        pthread_mutex_lock(&mu);
        if (stopping) {
            pthread_mutex_unlock(&mu);
            break;
        }
        kicked = 0;
        pthread_mutex_unlock(&mu);
        if (db_batch_pending(&list) == 0) {
            for (size_t i = 0; i < list.n; i++)
                step(&list.v[i]);
            batch_rows_release(&list);
        }
        pthread_mutex_lock(&mu);
        if (!kicked && !stopping) {
            deadline_in(&ts, CLOCK_MONOTONIC, 200 * 1000);
            pthread_cond_timedwait(&cv, &mu, &ts);
        }
        pthread_mutex_unlock(&mu);
    }
    store_close();
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
    mgr_pool = worker_pool_new("batch manager", 1, 0);
    if (worker_submit(mgr_pool, manager, NULL)) {
        worker_pool_free(mgr_pool);
        mgr_pool = NULL;
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
    worker_pool_free(mgr_pool);
    mgr_pool = NULL;
    /* Lines in flight end quickly once their transfers were aborted (upstream_shutdown) and
     * their replicas are gone; their results are dropped. */
    worker_pool_free(line_pool);
    line_pool = NULL;
    started = 0;
}
