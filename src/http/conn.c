/*
 * libmicrohttpd's request glue (see server.h, server_int.h). MHD calls http_on_request()
 * several times per request: first with headers only (we allocate a struct conn and set up the
 * struct req), then with body pieces (appended to a buffer capped at max_body; beyond it we
 * keep reading but drop the bytes, so the client can read our 413 instead of a reset), and a
 * last time with no data, when we dispatch and queue the response. http_on_completed() frees
 * the per-request state.
 *
 * Streams: the content reader suspends the connection when the stream has nothing, and
 * stream_wake() resumes it and wakes the connection's loop (core/loop.h), whose turn hook
 * runs MHD. A stream whose status is not known when its handler returns waits, unsent, the
 * same way.
 *
 * Protocol switches (a WebSocket relayed by the port proxy): a stream whose status() answers
 * 101 and that has upgrade() gets MHD's upgrade response; once the 101 is sent, MHD hands the
 * socket over (on_upgrade) and keeps the connection suspended, and counted, until the stream
 * gives it back with http_upgraded_close().
 */
#include "core/buf.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"
#include "http/req.h"
#include "http/server_int.h"

#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* How a streamed response sleeps: the content reader suspends the connection when the
 * stream has nothing, and stream_wake() resumes it. mu orders the two, so a wake that comes
 * between "nothing yet" and the suspension is remembered instead of lost. */
struct stream_waker {
    pthread_mutex_t mu;
    struct MHD_Connection *mhd;
    struct loop *lp; /* the connection's loop */
    int suspended, woken, live;
    struct stream_waker *next, *prev; /* in streams, while live */
};

struct conn {
    struct req req;
    struct MHD_Connection *mhd;
    struct buf body; /* up to max_body (its cap is set with the first piece) */
    size_t dropped;
    int too_large;
    int deferring; /* dispatched; waiting for its stream's status (see send_response) */
    int waker_on;  /* waker set up and tracked */
    struct stream_waker waker;
};

/* Every streaming connection, so that stopping the server can wake them to their end. */
static pthread_mutex_t streams_mu = PTHREAD_MUTEX_INITIALIZER;
static struct stream_waker *streams;
static int stopping;

void stream_wake(void *arg)
{
    struct stream_waker *w = arg;

    pthread_mutex_lock(&w->mu);
    if (w->suspended) {
        w->suspended = 0;
        MHD_resume_connection(w->mhd);
        /* Without an internal thread MHD does not wake its loop by itself. */
        loop_wake(w->lp);
    } else {
        w->woken = 1;
    }
    pthread_mutex_unlock(&w->mu);
}

/* Before asking the stream: forget earlier wakes. */
static void waker_arm(struct stream_waker *w)
{
    pthread_mutex_lock(&w->mu);
    w->woken = 0;
    pthread_mutex_unlock(&w->mu);
}

/* After the stream said "nothing yet": suspends the connection, unless a wake came since
 * waker_arm(). 1 when suspended. */
static int waker_sleep(struct stream_waker *w)
{
    int sleep;

    pthread_mutex_lock(&w->mu);
    sleep = !w->woken;
    if (sleep) {
        w->suspended = 1;
        MHD_suspend_connection(w->mhd);
    }
    pthread_mutex_unlock(&w->mu);
    return sleep;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct conn *c = cls;
    struct stream_waker *w = &c->waker;
    long n;

    (void)pos;
    if (__atomic_load_n(&stopping, __ATOMIC_RELAXED))
        return MHD_CONTENT_READER_END_OF_STREAM;
    waker_arm(w);
    n = c->req.stream.read(c->req.stream.ctx, buf, max, w);
    if (n > 0)
        return n;
    if (n == -2)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* cut short: the connection is closed */
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    waker_sleep(w);
    return 0;
}

static void stream_track(struct stream_waker *w, int on)
{
    pthread_mutex_lock(&streams_mu);
    if (on) {
        w->live = 1;
        w->next = streams;
        w->prev = NULL;
        if (streams)
            streams->prev = w;
        streams = w;
    } else if (w->live) {
        w->live = 0;
        if (w->prev)
            w->prev->next = w->next;
        else
            streams = w->next;
        if (w->next)
            w->next->prev = w->prev;
    }
    pthread_mutex_unlock(&streams_mu);
}

static const char *conn_header(void *c, const char *name)
{
    return MHD_lookup_connection_value(((struct conn *)c)->mhd, MHD_HEADER_KIND, name);
}

static const char *conn_query(void *c, const char *name)
{
    return MHD_lookup_connection_value(((struct conn *)c)->mhd, MHD_GET_ARGUMENT_KIND, name);
}

struct query_iter {
    void (*fn)(void *arg, const char *k, const char *v);
    void *arg;
};

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    struct query_iter *it = cls;

    (void)kind;
    it->fn(it->arg, k, v);
    return MHD_YES;
}

static void conn_query_each(void *c, void (*fn)(void *arg, const char *k, const char *v), void *arg)
{
    struct query_iter it = {fn, arg};

    MHD_get_connection_values(((struct conn *)c)->mhd, MHD_GET_ARGUMENT_KIND, query_one, &it);
}

static void conn_header_each(void *c, void (*fn)(void *arg, const char *k, const char *v),
                             void *arg)
{
    struct query_iter it = {fn, arg};

    MHD_get_connection_values(((struct conn *)c)->mhd, MHD_HEADER_KIND, query_one, &it);
}

/* Percent-decoding of the path and query, except "%00": a NUL would cut the string short and
 * hide itself, so it stays as the three characters and whoever checks names refuses it. */
size_t http_unescape(void *cls, struct MHD_Connection *mhd, char *s)
{
    char *o = s;

    (void)cls;
    (void)mhd;
    for (char *p = s; *p; p++) {
        unsigned v;

        if (p[0] == '%' && p[1] && p[2] && !(p[1] == '0' && p[2] == '0') &&
            sscanf(p + 1, "%2x", &v) == 1 && isxdigit((unsigned char)p[1]) &&
            isxdigit((unsigned char)p[2])) {
            *o++ = (char)v;
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return (size_t)(o - s);
}

static int valid_request_id(const char *s)
{
    size_t n = strlen(s);

    if (!n || n > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* A version 4 UUID from a per-thread store of random bytes, refilled by one getrandom(2) per
 * 256 ids instead of one per request. */
static void request_id_new(char out[37])
{
    static _Thread_local unsigned char pool[16 * 256];
    static _Thread_local size_t used = sizeof(pool);
    static const char hex[] = "0123456789abcdef";
    unsigned char *b;
    char *o = out;

    if (used == sizeof(pool)) {
        random_bytes(pool, sizeof(pool));
        used = 0;
    }
    b = pool + used;
    used += 16;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

/* MHD's URI log callback: the first thing MHD tells of a request is its target as sent (not
 * yet decoded), before the headers; the connection's state starts here (conn_new). */
void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *mhd)
{
    struct conn *c = xcalloc(1, sizeof(*c));

    (void)cls;
    (void)mhd;
    req_init(&c->req);
    c->req.target = arena_strdup(&c->req.arena, uri);
    return c;
}

/* Once the headers are in: c from on_uri(), or NULL (then it is made here). */
static struct conn *conn_new(struct conn *c, struct MHD_Connection *mhd, const char *method,
                             const char *url)
{
    const char *rid;

    if (!c) {
        c = xcalloc(1, sizeof(*c));
        req_init(&c->req);
    }
    c->mhd = mhd;
    c->req.start_us = now_mono_us();
    c->req.method = arena_strdup(&c->req.arena, method);
    c->req.path = arena_strdup(&c->req.arena, url);
    c->req.conn = c;
    c->req.header_fn = conn_header;
    c->req.query_fn = conn_query;
    c->req.query_each_fn = conn_query_each;
    c->req.header_each_fn = conn_header_each;
    rid = conn_header(c, "X-Request-ID");
    if (rid && valid_request_id(rid)) {
        snprintf(c->req.request_id, sizeof(c->req.request_id), "%s", rid);
    } else {
        request_id_new(c->req.request_id);
    }
    return c;
}

static void body_append(struct http_server *srv, struct conn *c, const char *data, size_t n)
{
    if (!c->body.cap)
        buf_init(&c->body, srv->opt.max_body);
    if (c->too_large || buf_add(&c->body, data, n) < 0) {
        c->too_large = 1;
        c->dropped += n;
    }
}

/* "<ISO time>" as log_msg() writes it; the date and time of day are formatted once a second
 * per thread (gmtime_r takes a process-wide lock). */
static void alog_time(char ts[64])
{
    static _Thread_local time_t last = -1;
    static _Thread_local char head[48];
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != last) {
        struct tm tm;

        gmtime_r(&now.tv_sec, &tm);
        snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d", (tm.tm_year + 1900) % 10000,
                 (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
                 tm.tm_sec % 100);
        last = now.tv_sec;
    }
    snprintf(ts, 64, "%s.%06d+00:00", head, (int)(now.tv_nsec / 1000 % 1000000));
}

/* One line per request, in log_msg()'s format, at level info. */
static void access_log(struct http_server *srv, struct conn *c)
{
    struct req *r = &c->req;
    const char *path = r->path;
    int64_t us = now_mono_us() - r->start_us;
    char line[2048], ts[64];
    int n;

    /* Never log a secret: a route that carries one in its path is logged by its pattern, and
     * query strings are not logged at all. */
    if (r->match.route && (r->match.route->flags & R_SECRET_PATH))
        path = arena_sprintf(&r->arena, "%s%s", r->match.mount->prefix, r->match.route->path);
    alog_time(ts);
    n = snprintf(line, sizeof(line) - 1, "%s info http %s %s %d %.3fms rid=%s", ts, r->method, path,
                 r->status, (double)us / 1000.0, r->request_id);
    if (n < 0)
        return;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    alog_append(&srv->alog, line, (size_t)n);
}

static void waker_on(struct conn *c)
{
    if (c->waker_on)
        return;
    c->waker_on = 1;
    pthread_mutex_init(&c->waker.mu, NULL);
    c->waker.mhd = c->mhd;
    c->waker.lp = loop_self();
    stream_track(&c->waker, 1);
}

/*
 * A stream whose status is not known when its handler returns (a proxied call: the model
 * server's answer decides it). Nothing is queued yet: the connection is suspended until the
 * stream wakes it, and MHD then calls on_request() again, which comes back here. 1 once the
 * status is in r->status (503 when the server is stopping), 0 while suspended.
 */
static int deferred_status(struct conn *c)
{
    struct req *r = &c->req;
    struct stream_waker *w = &c->waker;

    waker_on(c);
    c->deferring = 1;
    for (;;) {
        int st;

        waker_arm(w);
        st = __atomic_load_n(&stopping, __ATOMIC_RELAXED) ? 503
                                                          : r->stream.status(r->stream.ctx, w, r);
        if (st) {
            r->status = st;
            c->deferring = 0;
            return 1;
        }
        if (waker_sleep(w))
            return 0;
        /* woken meanwhile: ask again */
    }
}

/* After a 101 was sent for a stream with upgrade(): the connection stops being HTTP. Its
 * descriptor leaves the watch for the client's end (the stream reads it now) and the list of
 * streams woken at shutdown; MHD keeps it suspended until http_upgraded_close(). */
static void on_upgrade(void *cls, struct MHD_Connection *mhd, void *con_cls, const char *extra,
                       size_t n, MHD_socket fd, struct MHD_UpgradeResponseHandle *urh)
{
    struct conn *c = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    (void)con_cls;
    if (ci && ci->socket_context) {
        http_sock_detach(ci->socket_context);
    }
    if (c->waker_on)
        stream_track(&c->waker, 0);
    c->req.stream.upgrade(c->req.stream.ctx, (struct http_upgraded *)urh, fd, extra, n);
}

void http_upgraded_close(struct http_upgraded *u)
{
    MHD_upgrade_action((struct MHD_UpgradeResponseHandle *)u, MHD_UPGRADE_ACTION_CLOSE);
    if (loop_self())
        loop_wake(loop_self()); /* MHD closes it in its next run */
}

static enum MHD_Result send_response(struct http_server *srv, struct conn *c)
{
    struct req *r = &c->req;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    const char *ctype = "application/json";

    if (r->stream.read && (r->status != 200 || r->detail || r->verrs)) {
        /* The handler failed after it set up a stream: answer the error instead. */
        r->stream.release(r->stream.ctx);
        memset(&r->stream, 0, sizeof(r->stream));
    }
    if (r->stream.read && r->stream.status && !deferred_status(c))
        return MHD_YES; /* suspended: MHD calls http_on_request() again once woken */
    if (r->stream.read && (r->detail || r->verrs)) {
        /* The stream failed before its status (it recorded the error): answer that. */
        r->stream.release(r->stream.ctx);
        memset(&r->stream, 0, sizeof(r->stream));
    }
    if (r->stream.read && r->stream.upgrade && r->status == 101) {
        /* A protocol switch the stream agreed to: the socket is its own after the 101. */
        resp = MHD_create_response_for_upgrade(on_upgrade, c);
        ctype = r->content_type ? r->content_type : "";
    } else if (r->stream.read) {
        waker_on(c);
        resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_reader, c, NULL);
        ctype = r->content_type ? r->content_type : "text/event-stream";
    } else if (r->file_set) {
        /* A file: sent from its descriptor (sendfile where it can), which MHD then closes. */
        resp = MHD_create_response_from_fd_at_offset64(r->file_len, r->file_fd, r->file_off);
        r->file_set = 0;
        if (!resp)
            close(r->file_fd);
        ctype = r->content_type ? r->content_type : "application/octet-stream";
    } else if (r->raw) {
        resp = MHD_create_response_from_buffer(r->raw_len, (void *)r->raw, MHD_RESPMEM_MUST_COPY);
        if (r->content_type)
            ctype = r->content_type;
    } else {
        char *s = r->resp ? json_dumps(r->resp, JSON_WIRE) : NULL;

        if (!s)
            s = xstrdup("{}");
        resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    }
    if (!resp)
        return MHD_NO;
    if (ctype[0])
        MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "X-Request-ID", r->request_id);
    for (int i = 0; i < r->nheaders; i++)
        MHD_add_response_header(resp, r->hname[i], r->hvalue[i]);
    ret = MHD_queue_response(c->mhd, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    if (srv->opt.access_log)
        access_log(srv, c);
    return ret;
}

enum MHD_Result http_on_request(void *cls, struct MHD_Connection *mhd, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct conn *c = *con_cls;

    (void)version;
    if (!c || !c->mhd) {
        const char *expect;

        *con_cls = c = conn_new(c, mhd, method, url);
        if (srv->opt.begin)
            srv->opt.begin(&c->req);
        /* Refused before its body: a client waiting for "100 Continue" hears why now. */
        expect = conn_header(c, "Expect");
        if (c->req.begun && c->req.begin_err && expect && strcasecmp(expect, "100-continue") == 0) {
            srv->opt.dispatch(&c->req);
            return send_response(srv, c);
        }
        return MHD_YES;
    }
    if (c->deferring)
        return send_response(srv, c); /* woken: is the status known now? */
    if (*upload_data_size && c->req.begun) {
        /* A streamed body goes to the handler's sink; after an error it is read and dropped. */
        struct req *r = &c->req;

        if (!r->begin_err && !r->sink_err && r->sink.write)
            r->sink_err = r->sink.write(r->sink.ctx, upload_data, *upload_data_size);
        else
            c->dropped += *upload_data_size;
        *upload_data_size = 0;
        return c->dropped > DRAIN_LIMIT ? MHD_NO : MHD_YES;
    }
    if (*upload_data_size) {
        body_append(srv, c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (c->dropped > DRAIN_LIMIT)
            return MHD_NO;
        return MHD_YES;
    }
    if (c->too_large) {
        req_fail(&c->req, LY_ETOOLARGE, "Request body too large (limit %zu bytes)",
                 srv->opt.max_body);
        req_set_error(&c->req, LY_ETOOLARGE);
    } else {
        c->req.body = c->body.p;
        c->req.body_len = c->body.len;
        srv->opt.dispatch(&c->req);
    }
    return send_response(srv, c);
}

void http_on_completed(void *cls, struct MHD_Connection *mhd, void **con_cls,
                       enum MHD_RequestTerminationCode toe)
{
    struct conn *c = *con_cls;

    (void)cls;
    (void)mhd;
    (void)toe;
    if (!c)
        return;
    if (c->req.stream.read) {
        /* After release() no wake can come; then the waker may go. */
        c->req.stream.release(c->req.stream.ctx);
        c->req.stream.release = NULL;
    }
    if (c->waker_on) {
        stream_track(&c->waker, 0);
        pthread_mutex_destroy(&c->waker.mu);
    }
    req_release(&c->req);
    buf_free(&c->body);
    free(c);
    *con_cls = NULL;
}

void http_streams_end(void)
{
    __atomic_store_n(&stopping, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 100; i++) {
        int left = 0;

        pthread_mutex_lock(&streams_mu);
        for (struct stream_waker *w = streams; w; w = w->next) {
            stream_wake(w);
            left = 1;
        }
        pthread_mutex_unlock(&streams_mu);
        if (!left)
            break;
        usleep(10000);
    }
}
