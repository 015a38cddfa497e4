/*
 * Calls to a deployment's replicas (see call.h).
 *
 * A call is one upstream request. A worker of the calls' pool (core/worker.h: at most
 * CALL_THREADS at once, CALL_QUEUE more waiting) leases a ready replica (waiting, in that
 * thread, for a paused deployment to wake), hands the transfer to the loop of the thread that
 * took the call (upstream.c) and, once it ended, meters it and writes how it ended. The
 * transfer's write callback, on that loop, appends what comes back to the call's buffer as it
 * arrives, waking every reader. Loop threads never wait for the model: a reader reads the
 * buffer and answers "nothing yet" until its waker is called. The buffer keeps the whole
 * output, so each reader of a streaming inference replays it from the start; it is capped.
 *
 * CALL_RAW passes the upstream bytes through untouched (SSE chunks or one JSON body);
 * CALL_EVENTS parses the upstream SSE and writes the events of API.md 16.6 instead. Either
 * way the SSE lines are parsed for usage, which is metered per org when the call ends.
 *
 * A call is reference-counted (the worker, each reader, the inflight registry); mu guards its
 * buffer and readers. A reader's waker is only called with mu held, and release() unlinks the
 * reader under mu, so no wake comes after release.
 */
#include "core/buf.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "core/worker.h"
#include "inference/call.h"
#include "inference/inference.h"
#include "store/inference.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALL_MAX_BYTES (64u << 20)
#define LINE_MAX_BYTES (256u << 10)
#define CALL_THREADS   256
#define CALL_QUEUE     4096

struct call_reader {
    struct call *c;
    size_t off;
    struct call_waker w; /* w.wake set while the reader waits */
    struct call_reader *next;
};

/* How many replicas a call tries when they give no answer at all. */
#define CONNECT_TRIES 3

struct call {
    pthread_mutex_t mu;
    int refs;
    char id[40], org_id[40], dep_id[40], path[64];
    json_t *body;
    int stream;
    enum call_mode mode;
    struct buf out; /* the call's output, as readers read it: at most CALL_MAX_BYTES */
    int done, cancelled;
    int http_status; /* what a plain (not streamed) call answers; 0 until known */
    struct call_reader *readers;
    /* The worker's, and its transfer's while the worker waits for it: never both at once. */
    char *line;
    size_t line_len;
    int over; /* the current line passed LINE_MAX_BYTES: dropped */
    long status;
    struct uloop *up; /* where its transfer runs: the loop of the thread it came on */
    CURL *h;
    json_t *last;       /* the last upstream chunk or body with usage or timings */
    struct buf content; /* the streamed tokens' text, joined */
    char finish[32];
    int ntok;
    int64_t done_mono;
};

/* Appends to the output and wakes the readers. Called by the transfer (or the worker). */
static void emit(struct call *c, const char *p, size_t n)
{
    pthread_mutex_lock(&c->mu);
    buf_add(&c->out, p, n); /* past CALL_MAX_BYTES, nothing more is kept */
    for (struct call_reader *r = c->readers; r; r = r->next)
        if (r->w.wake) {
            r->w.wake(r->w.arg);
            r->w.wake = NULL;
        }
    pthread_mutex_unlock(&c->mu);
}

static void emit_event(struct call *c, const char *event, json_t *data)
{
    char *js = json_dumps(data, JSON_WIRE);

    /* How it ended is kept, for a stream read after the call left memory. */
    if (strcmp(event, "finished") == 0 || strcmp(event, "failed") == 0)
        db_infres_end(c->id, c->org_id, c->dep_id, event, js);
    size_t n = strlen(js) + strlen(event) + 32;
    char *ev = xmalloc(n);

    n = (size_t)snprintf(ev, n, "event: %s\ndata: %s\n\n", event, js);
    emit(c, ev, n);
    free(ev);
    free(js);
    json_decref(data);
}

static void finish(struct call *c)
{
    pthread_mutex_lock(&c->mu);
    if (!c->http_status)
        c->http_status = c->status ? (int)c->status : 502;
    c->done = 1;
    c->done_mono = now_mono_us();
    for (struct call_reader *r = c->readers; r; r = r->next)
        if (r->w.wake) {
            r->w.wake(r->w.arg);
            r->w.wake = NULL;
        }
    pthread_mutex_unlock(&c->mu);
}

void call_put(struct call *c)
{
    int last;

    pthread_mutex_lock(&c->mu);
    last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&c->mu);
    json_decref(c->body);
    json_decref(c->last);
    buf_free(&c->out);
    free(c->line);
    buf_free(&c->content);
    free(c);
}

/* An error in OpenAI's shape, for a call that could not reach the model. */
static void fail(struct call *c, int err, const char *msg)
{
    pthread_mutex_lock(&c->mu);
    if (!c->http_status)
        c->http_status = err == LY_EUNAVAIL ? 503 : err == LY_ENOTFOUND ? 404 : 502;
    pthread_mutex_unlock(&c->mu);
    json_t *e = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type",
                          err == LY_EUNAVAIL ? "service_unavailable" : "api_error", "param", "code",
                          err == LY_ENOTFOUND ? "model_not_found" : "upstream_error");

    if (c->mode == CALL_EVENTS) {
        emit_event(
            c, "failed",
            json_pack("{s:s,s:s,s:s}", "inference_id", c->id, "status", "failed", "error", msg));
        json_decref(e);
        return;
    }
    if (c->stream) {
        char *js = json_dumps(e, JSON_WIRE);
        char *ev = xmalloc(strlen(js) + 16);
        size_t n = (size_t)sprintf(ev, "data: %s\n\n", js);

        emit(c, ev, n);
        free(ev);
        free(js);
    } else {
        char *js = json_dumps(e, JSON_WIRE);

        emit(c, js, strlen(js));
        free(js);
    }
    json_decref(e);
}

/* One "data: ..." line of the upstream SSE. */
static void sse_line(struct call *c, const char *line, size_t n)
{
    json_t *j, *choice, *delta, *content, *fr;

    if (n < 6 || memcmp(line, "data: ", 6) != 0 || (n == 12 && !memcmp(line + 6, "[DONE]", 6)))
        return;
    /* Passed through as it is, a chunk matters here only for the metering figures, which come
     * with the last one: the others are not parsed. */
    if (c->mode == CALL_RAW && !memmem(line, n, "\"usage\"", 7) &&
        !memmem(line, n, "\"timings\"", 9))
        return;
    j = json_loadb(line + 6, n - 6, 0, NULL);
    if (!j)
        return;
    if (json_object_get(j, "usage") || json_object_get(j, "timings")) {
        json_decref(c->last);
        c->last = json_incref(j);
    }
    choice = json_array_get(json_object_get(j, "choices"), 0);
    delta = json_object_get(choice, "delta");
    content = json_object_get(delta, "content");
    if (!content)
        content = json_object_get(choice, "text");
    fr = json_object_get(choice, "finish_reason");
    if (json_is_string(fr))
        snprintf(c->finish, sizeof(c->finish), "%s", json_string_value(fr));
    if (c->mode == CALL_EVENTS && json_is_string(content) && json_string_length(content)) {
        size_t k = json_string_length(content);

        buf_add(&c->content, json_string_value(content), k);
        emit_event(c, "token",
                   json_pack("{s:s,s:i,s:O}", "inference_id", c->id, "index", c->ntok++, "token",
                             content));
    }
    json_decref(j);
}

static size_t on_data(char *p, size_t size, size_t nm, void *arg)
{
    struct call *c = arg;
    size_t n = size * nm;

    if (!c->status) {
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
        pthread_mutex_lock(&c->mu);
        c->http_status = c->status ? (int)c->status : 502;
        pthread_mutex_unlock(&c->mu); /* the emit() below wakes whoever waits for it */
    }
    if (c->mode == CALL_RAW && (!c->stream || c->status == 200))
        emit(c, p, n);
    /* Split into lines: SSE is parsed for tokens and usage; a plain body is kept whole. */
    for (size_t i = 0; i < n; i++) {
        if (c->stream && c->status == 200 && p[i] == '\n') {
            if (!c->over)
                sse_line(c, c->line ? c->line : "", c->line_len);
            c->line_len = 0;
            c->over = 0;
            continue;
        }
        if (c->line_len + 1 >= LINE_MAX_BYTES) {
            c->over = 1;
            continue;
        }
        if (!c->line)
            c->line = xmalloc(LINE_MAX_BYTES);
        c->line[c->line_len++] = p[i];
    }
    pthread_mutex_lock(&c->mu);
    n = c->cancelled ? 0 : n; /* 0 ends the transfer: nobody reads it any more */
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Makes the upstream request on a leased replica. Returns 0; 1 when the replica gave no answer
 * at all (the call may go to another: a model server's work has no effects to repeat); -1 on
 * another failure; with a curl error text in why. */
static int perform(struct call *c, struct lease *l, char *why, size_t wn)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char *js;
    CURLcode rc;

    json_object_set_new(c->body, "model", json_string(c->dep_id));
    if (c->stream)
        json_object_set_new(c->body, "stream", json_true());
    js = json_dumps(c->body, JSON_COMPACT);
    replica_curl(h, &l->netns, l->port, l->key, c->path, &hdr);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, js);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    c->h = h;
    rc = upstream_perform(c->up, h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    c->h = NULL;
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    free(js);
    if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR) {
        snprintf(why, wn, "the model server failed: %s", curl_easy_strerror(rc));
        /* Nothing came back: the replica died (or is dying) under it. */
        return !c->status && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_RECV_ERROR ||
                              rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING)
                   ? 1
                   : -1;
    }
    return 0;
}

static void call_run(void *arg)
{
    struct call *c = arg;
    struct lease l;
    char why[256];
    int err = inference_acquire(c->dep_id, &l);

    if (err) {
        fail(c, err,
             err == LY_EUNAVAIL ? "The deployment has no ready replica yet; try again in a moment"
                                : "The deployment was stopped");
        goto out;
    }
    /* A replica that gives no answer at all died a moment ago: another one takes the call. */
    for (int tries = 1; (err = perform(c, &l, why, sizeof(why))) == 1 && tries < CONNECT_TRIES;
         tries++) {
        inference_unreachable(&l);
        if (inference_acquire(c->dep_id, &l)) {
            fail(c, LY_EUNAVAIL, why);
            goto out;
        }
    }
    if (err) {
        if (err == 1)
            inference_unreachable(&l);
        else
            inference_release(&l);
        fail(c, LY_EINTERNAL, why);
        goto out;
    }
    inference_release(&l);
    if (!c->stream && c->line_len) {
        /* A whole JSON body: meter it; a streaming inference never gets here. */
        json_t *j = json_loadb(c->line, c->line_len, 0, NULL);

        if (j)
            inference_meter(c->org_id, c->dep_id, j);
        json_decref(j);
    } else if (c->last) {
        inference_meter(c->org_id, c->dep_id, c->last);
    }
    if (c->stream && c->status != 200) {
        /* The model server refused the request: its error, as one event. */
        char *msg = xmalloc(c->line_len + 1);
        json_t *e;

        memcpy(msg, c->line ? c->line : "", c->line_len);
        msg[c->line_len] = 0;
        e = json_loads(msg, 0, NULL);
        json_t *m = json_object_get(json_object_get(e, "error"), "message");
        fail(c, LY_EBADREQ, json_is_string(m) ? json_string_value(m) : "the model server failed");
        json_decref(e);
        free(msg);
    } else if (c->mode == CALL_EVENTS) {
        json_t *usage = json_object_get(c->last, "usage"), *t = json_object_get(c->last, "timings");
        json_t *u =
            json_is_object(usage)
                ? json_incref(usage)
                : json_pack("{s:I,s:I,s:I}", "prompt_tokens",
                            json_integer_value(json_object_get(t, "prompt_n")), "completion_tokens",
                            json_integer_value(json_object_get(t, "predicted_n")), "total_tokens",
                            json_integer_value(json_object_get(t, "prompt_n")) +
                                json_integer_value(json_object_get(t, "predicted_n")));

        emit_event(c, "finished",
                   json_pack("{s:s,s:s,s:{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s},s:s}],s:o}}",
                             "inference_id", c->id, "status", "finished", "completion", "id", c->id,
                             "object", "chat.completion", "created", (json_int_t)now_unix(),
                             "model", c->dep_id, "choices", "index", 0, "message", "role",
                             "assistant", "content", c->content.p ? c->content.p : "",
                             "finish_reason", c->finish[0] ? c->finish : "stop", "usage", u));
    }
out:
    finish(c);
    call_put(c);
}

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct worker_pool *pool;
static int pool_closed;

static int submit(struct call *c)
{
    int err = LY_EUNAVAIL;

    pthread_mutex_lock(&pool_mu);
    if (!pool && !pool_closed)
        pool = worker_pool_new("inference calls", CALL_THREADS, CALL_QUEUE);
    if (pool)
        err = worker_submit(pool, call_run, c);
    pthread_mutex_unlock(&pool_mu);
    return err;
}

void call_shutdown(void)
{
    struct worker_pool *p;

    pthread_mutex_lock(&pool_mu);
    p = pool;
    pool = NULL;
    pool_closed = 1;
    pthread_mutex_unlock(&pool_mu);
    worker_pool_free(p);
}

struct call *call_start(const char *org_id, const char *dep_id, const char *path, json_t *body,
                        int stream, enum call_mode mode)
{
    struct call *c = xcalloc(1, sizeof(*c));

    buf_init(&c->out, CALL_MAX_BYTES);
    buf_init(&c->content, CALL_MAX_BYTES);

    pthread_mutex_init(&c->mu, NULL);
    c->refs = 2; /* the caller's and the worker's */
    uuid_v4(c->id);
    snprintf(c->org_id, sizeof(c->org_id), "%s", org_id);
    snprintf(c->dep_id, sizeof(c->dep_id), "%s", dep_id);
    snprintf(c->path, sizeof(c->path), "%s", path);
    c->body = body;
    c->stream = stream || mode == CALL_EVENTS;
    c->mode = mode;
    c->up = upstream_here();
    if (mode == CALL_EVENTS)
        emit_event(c, "queued", json_pack("{s:s,s:s}", "inference_id", c->id, "status", "queued"));
    if (submit(c)) {
        fail(c, LY_EINTERNAL, "cannot start a worker thread");
        finish(c);
        c->refs--;
    }
    return c;
}

const char *call_id(const struct call *c)
{
    return c->id;
}

const char *call_org(const struct call *c)
{
    return c->org_id;
}

void call_get(struct call *c)
{
    pthread_mutex_lock(&c->mu);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
}

int call_ended_before(struct call *c, int64_t mono)
{
    int old;

    pthread_mutex_lock(&c->mu);
    old = c->done && c->done_mono < mono;
    pthread_mutex_unlock(&c->mu);
    return old;
}

long call_read(struct call_reader *r, char *buf, size_t max, struct call_waker w)
{
    struct call *c = r->c;
    long k = 0;

    pthread_mutex_lock(&c->mu);
    if (r->off < c->out.len) {
        size_t n = c->out.len - r->off < max ? c->out.len - r->off : max;

        memcpy(buf, c->out.p + r->off, n);
        r->off += n;
        k = (long)n;
    } else if (c->done) {
        k = -1;
    } else {
        r->w = w;
    }
    pthread_mutex_unlock(&c->mu);
    return k;
}

void call_reader_free(struct call_reader *r)
{
    struct call *c = r->c;

    pthread_mutex_lock(&c->mu);
    for (struct call_reader **pp = &c->readers; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    if (!c->readers && c->mode == CALL_RAW)
        c->cancelled = 1; /* the client left: stop generating */
    pthread_mutex_unlock(&c->mu);
    free(r);
    call_put(c);
}

int call_has_status(const struct call_reader *r)
{
    return r->c->mode == CALL_RAW && !r->c->stream;
}

int call_status(struct call_reader *r, struct call_waker w)
{
    struct call *c = r->c;
    int st;

    pthread_mutex_lock(&c->mu);
    st = c->http_status;
    if (!st)
        r->w = w;
    pthread_mutex_unlock(&c->mu);
    return st;
}

struct call_reader *call_reader_new(struct call *c)
{
    struct call_reader *r = xcalloc(1, sizeof(*r));

    r->c = c;
    pthread_mutex_lock(&c->mu);
    c->refs++;
    r->next = c->readers;
    c->readers = r;
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* ---- one blocking call ---- */

int inference_call_sync(const char *org_id, const char *dep_id, const char *path, json_t *body,
                        long *status, char **resp, char *why, size_t wn)
{
    struct lease l;
    struct buf s = BUF_INIT(CALL_MAX_BYTES - 1);
    struct curl_slist *hdr = NULL;
    CURL *h;
    char *js;
    CURLcode rc;
    int err = inference_acquire(dep_id, &l);

    if (err) {
        snprintf(why, wn, "%s",
                 err == LY_EUNAVAIL ? "no ready replica of the deployment in time"
                                    : "the deployment was stopped");
        return err;
    }
    json_object_set_new(body, "model", json_string(dep_id));
    json_object_del(body, "stream");
    js = json_dumps(body, JSON_COMPACT);
    h = curl_easy_init();
    replica_curl(h, &l.netns, l.port, l.key, path, &hdr);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, js);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    rc = upstream_perform(NULL, h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    free(js);
    inference_release(&l);
    if (rc != CURLE_OK) {
        snprintf(why, wn, "the model server failed: %s", curl_easy_strerror(rc));
        buf_free(&s);
        return LY_EUNAVAIL;
    }
    if (s.p) {
        json_t *j = json_loads(s.p, 0, NULL);

        if (j && *status == 200)
            inference_meter(org_id, dep_id, j);
        json_decref(j);
    }
    *resp = buf_take(&s, NULL);
    return 0;
}
