/*
 * libmicrohttpd glue. MHD calls on_request several times per request: first with headers only
 * (we allocate a struct conn and set up the struct req), then with body pieces (appended to a
 * buffer capped at max_body; beyond it we keep reading but drop the bytes, so the client can
 * read our 413 instead of a reset), and a last time with no data, when we dispatch and queue
 * the response. on_completed frees the per-request state.
 *
 * Connection limits: every daemon shares one count of open connections, in all and per client
 * address (struct conn_limits). MHD asks on_accept() about each connection it has accepted, which
 * refuses (MHD closes it at once) one past either limit; on_connection() counts a connection when
 * it starts and uncounts it when it closes. Two threads accepting at the same moment may both
 * pass the check, so a limit can be passed by at most one connection per HTTP thread. Idle
 * connections are closed by MHD after connection_timeout_s.
 *
 * A client's end of input (it shut down its sending side, or went away): MHD 0.9.75 in epoll
 * mode stops watching a socket for reading after a read shorter than its buffer, so when the
 * last bytes and the FIN were both waiting by then, no new event comes and the connection
 * (junk, half a request, or idle after an answer) would wait for the timeout. Each connection's
 * descriptor is therefore also in its loop's epoll set for EPOLLRDHUP; once MHD has read every
 * byte before the end, the loop shuts the socket's reading side (a no-op for data: nothing more
 * can come), which wakes MHD: it reads the end and closes the connection, or, when it is still
 * answering a complete request, once the answer is sent.
 *
 * Protocol switches (a WebSocket relayed by the port proxy): a stream whose status() answers
 * 101 and that has upgrade() gets MHD's upgrade response; once the 101 is sent, MHD hands the
 * socket over (on_upgrade) and keeps the connection suspended, and counted, until the stream
 * gives it back with http_upgraded_close().
 */
#include "http/server.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "http/alog.h"
#include "http/req.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Past this many dropped bytes the connection is closed rather than drained. */
#define DRAIN_LIMIT (256u << 20)

/* MHD's per-connection pool, which holds the request line and headers (and is cleared for
 * each request): headers past about half of it answer 431. */
#define CONN_MEMORY (16u * 1024)

/* What an event of a loop's epoll set is about, besides MHD's own set (NULL) and the loop's
 * eventfd (the loop itself): the first member of both kinds below. */
enum loop_ev { EV_SRC, EV_SOCK };

/* A source of work on a loop besides MHD (see server.h). */
struct loop_src {
    enum loop_ev kind; /* EV_SRC */
    int fd;
    void (*run)(void *arg);
    int (*timeout)(void *arg);
    void *arg;
    int fired;
    struct loop_src *next;
};

/* One HTTP thread: its own MHD daemon (all of them accept on one listening socket), driven
 * from an epoll set that also holds the sources added to the loop. */
struct http_loop {
    struct http_server *srv;
    struct MHD_Daemon *d;
    int ep, evfd; /* evfd: wakes the loop (to stop, or to run MHD for a resumed connection) */
    int stop;
    int again; /* MHD has work now (a connection resumed on the loop's own thread) */
    pthread_t thread;
    int running;
    struct loop_src *srcs;
    struct sock *ended; /* connections whose client ended its input, until MHD is woken */
};

/* Open connections from one client address (an IPv4 one as IPv4-mapped IPv6): a node of
 * conn_limits.per_ip while n > 0. */
struct ip_count {
    unsigned char a[16];
    unsigned n;
};

/* One open connection (MHD's socket context): its address's count, and its descriptor, watched
 * in its loop's epoll set for the client's end of input (see the comment atop). */
struct sock {
    enum loop_ev kind; /* EV_SOCK */
    struct ip_count *ip;
    struct http_loop *lp;
    int fd;
    int watched;                /* in lp->ep */
    int ended;                  /* in lp->ended */
    struct sock *next, **pprev; /* in lp->ended */
};

struct conn_limits {
    pthread_mutex_t mu;
    unsigned total;
    void *per_ip;      /* tsearch tree of struct ip_count */
    int64_t warned_us; /* the last refusal logged (one line a minute at most) */
};

struct http_server {
    struct http_options opt;
    struct access_log alog;
    struct http_loop *loops;
    unsigned nloops;
    struct conn_limits lim;
};

/* How a streamed response sleeps: the content reader suspends the connection when the
 * stream has nothing, and stream_wake() resumes it. mu orders the two, so a wake that comes
 * between "nothing yet" and the suspension is remembered instead of lost. */
struct stream_waker {
    pthread_mutex_t mu;
    struct MHD_Connection *mhd;
    struct http_loop *lp; /* the connection's loop */
    int suspended, woken, live;
    struct stream_waker *next, *prev; /* in streams, while live */
};

struct conn {
    struct req req;
    struct MHD_Connection *mhd;
    char *body;
    size_t len, cap, dropped;
    int too_large;
    int deferring; /* dispatched; waiting for its stream's status (see send_response) */
    int waker_on;  /* waker set up and tracked */
    struct stream_waker waker;
};

/* Every streaming connection, so that stopping the server can wake them to their end. */
static pthread_mutex_t streams_mu = PTHREAD_MUTEX_INITIALIZER;
static struct stream_waker *streams;
static int stopping;

static _Thread_local struct http_loop *loop_self;

/* After MHD_resume_connection(): without an internal thread MHD does not wake its loop by
 * itself, so the loop is told to run it. */
static void loop_poke(struct http_loop *lp)
{
    uint64_t one = 1;

    if (lp == loop_self)
        lp->again = 1;
    else if (write(lp->evfd, &one, sizeof(one)) < 0)
        log_error("cannot wake an HTTP thread: %s", strerror(errno));
}

void stream_wake(void *arg)
{
    struct stream_waker *w = arg;

    pthread_mutex_lock(&w->mu);
    if (w->suspended) {
        w->suspended = 0;
        MHD_resume_connection(w->mhd);
        loop_poke(w->lp);
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
static size_t unescape(void *cls, struct MHD_Connection *mhd, char *s)
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
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mhd)
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
    if (c->too_large || c->len + n > srv->opt.max_body) {
        c->too_large = 1;
        c->dropped += n;
        return;
    }
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        char *p;

        while (cap < c->len + n)
            cap *= 2;
        if (cap > srv->opt.max_body)
            cap = srv->opt.max_body;
        p = realloc(c->body, cap);
        if (!p) {
            log_error("out of memory for a request body of %zu bytes", cap);
            abort();
        }
        c->body = p;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, n);
    c->len += n;
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
    c->waker.lp = loop_self;
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

static void sock_unwatch(struct sock *k);
static void ended_remove(struct sock *k);

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
        struct sock *k = ci->socket_context;

        sock_unwatch(k);
        ended_remove(k);
    }
    if (c->waker_on)
        stream_track(&c->waker, 0);
    c->req.stream.upgrade(c->req.stream.ctx, (struct http_upgraded *)urh, fd, extra, n);
}

void http_upgraded_close(struct http_upgraded *u)
{
    MHD_upgrade_action((struct MHD_UpgradeResponseHandle *)u, MHD_UPGRADE_ACTION_CLOSE);
    if (loop_self)
        loop_self->again = 1; /* MHD closes it in its next run */
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
        return MHD_YES; /* suspended: MHD calls on_request() again once woken */
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mhd, const char *url,
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
        c->req.body = c->body;
        c->req.body_len = c->len;
        srv->opt.dispatch(&c->req);
    }
    return send_response(srv, c);
}

static void on_completed(void *cls, struct MHD_Connection *mhd, void **con_cls,
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
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- connection limits ---- */

static int ip_cmp(const void *a, const void *b)
{
    return memcmp(((const struct ip_count *)a)->a, ((const struct ip_count *)b)->a, 16);
}

/* The key of a client address; -1 for a family that has none (a unix socket). */
static int ip_key(const struct sockaddr *sa, socklen_t len, struct ip_count *k)
{
    memset(k, 0, sizeof(*k));
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        k->a[10] = k->a[11] = 0xff;
        memcpy(k->a + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(k->a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static void refusal_log(struct http_server *srv, const struct ip_count *k, unsigned n,
                        const char *which, unsigned limit)
{
    int64_t now = now_mono_us();
    char text[INET6_ADDRSTRLEN] = "?";
    const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (srv->lim.warned_us && now - srv->lim.warned_us < 60 * 1000000LL)
        return;
    srv->lim.warned_us = now;
    if (memcmp(k->a, mapped, 12) == 0)
        inet_ntop(AF_INET, k->a + 12, text, sizeof(text));
    else
        inet_ntop(AF_INET6, k->a, text, sizeof(text));
    log_warn("refusing connections from %s: %u open, %s is %u (logged once a minute)", text, n,
             which, limit);
}

/* MHD's accept policy: refuses a connection past the limits. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_server *srv = cls;
    struct conn_limits *lim = &srv->lim;
    struct ip_count k, **found;
    enum MHD_Result ok = MHD_YES;
    int keyed = ip_key(addr, addrlen, &k) == 0;

    pthread_mutex_lock(&lim->mu);
    found = keyed ? tfind(&k, &lim->per_ip, ip_cmp) : NULL;
    if (srv->opt.max_connections && lim->total >= srv->opt.max_connections) {
        refusal_log(srv, &k, lim->total, "max_connections", srv->opt.max_connections);
        ok = MHD_NO;
    } else if (found && srv->opt.max_connections_per_ip &&
               (*found)->n >= srv->opt.max_connections_per_ip) {
        refusal_log(srv, &k, (*found)->n, "max_connections_per_ip",
                    srv->opt.max_connections_per_ip);
        ok = MHD_NO;
    }
    pthread_mutex_unlock(&lim->mu);
    return ok;
}

/* ---- the client's end of input (see the comment atop) ---- */

static void sock_watch(struct sock *k)
{
    struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = k};

    if (k->lp && k->fd >= 0 && epoll_ctl(k->lp->ep, EPOLL_CTL_ADD, k->fd, &ev) == 0)
        k->watched = 1;
}

static void sock_unwatch(struct sock *k)
{
    if (k->watched)
        epoll_ctl(k->lp->ep, EPOLL_CTL_DEL, k->fd, NULL);
    k->watched = 0;
}

static void ended_remove(struct sock *k)
{
    if (!k->ended)
        return;
    *k->pprev = k->next;
    if (k->next)
        k->next->pprev = k->pprev;
    k->ended = 0;
}

/* The loop saw EPOLLRDHUP (or an error) on k: no need to watch it any more. */
static void sock_ended(struct sock *k)
{
    struct http_loop *lp = k->lp;

    sock_unwatch(k);
    if (k->ended)
        return;
    k->ended = 1;
    k->next = lp->ended;
    k->pprev = &lp->ended;
    if (lp->ended)
        lp->ended->pprev = &k->next;
    lp->ended = k;
}

/* After MHD_run(): each ended connection whose bytes MHD has all read is woken, so that MHD
 * reads the end; one with bytes still waiting is left for MHD to read them first. */
static void ended_wake(struct http_loop *lp)
{
    for (struct sock *k = lp->ended, *next; k; k = next) {
        char b;

        next = k->next;
        if (recv(k->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
            continue;
        shutdown(k->fd, SHUT_RD);
        ended_remove(k);
    }
}

/* Counts a connection in when it starts and out when it closes (*ctx is its struct sock, which
 * holds its address's node: that lives while its count, this connection included, is above 0),
 * and watches its descriptor. Called on the connection's loop (by MHD_run), or on the thread
 * that stops the daemons. */
static void on_connection(void *cls, struct MHD_Connection *mhd, void **ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    struct conn_limits *lim = &srv->lim;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        struct sock *k = xcalloc(1, sizeof(*k));
        struct ip_count key, *node = NULL, **slot;

        k->kind = EV_SOCK;
        k->lp = loop_self;
        ci = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = ci ? ci->connect_fd : -1;
        pthread_mutex_lock(&lim->mu);
        lim->total++;
        if (sa && ip_key(sa,
                         sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                   : sizeof(struct sockaddr_in),
                         &key) == 0) {
            node = xmalloc(sizeof(*node));
            *node = key;
            slot = tsearch(node, &lim->per_ip, ip_cmp);
            if (!slot) {
                log_error("out of memory counting connections");
                abort();
            }
            if (*slot != node)
                free(node);
            node = *slot;
            node->n++;
        }
        pthread_mutex_unlock(&lim->mu);
        k->ip = node;
        sock_watch(k);
        *ctx = k;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *ctx) {
        struct sock *k = *ctx;

        /* MHD closes the descriptor after this: it is still k's. */
        sock_unwatch(k);
        ended_remove(k);
        pthread_mutex_lock(&lim->mu);
        lim->total--;
        if (k->ip && --k->ip->n == 0) {
            tdelete(k->ip, &lim->per_ip, ip_cmp);
            free(k->ip);
        }
        pthread_mutex_unlock(&lim->mu);
        free(k);
        *ctx = NULL;
    }
}

static int parse_listen(const char *listen, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(listen, ':');
    long port;
    char *end;

    if (!colon || (size_t)(colon - listen) >= sizeof(host))
        return LY_EINVAL;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return LY_EINVAL;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1)
        return LY_EINVAL;
    return 0;
}

/* ---- the loops ---- */

struct http_loop *http_loop_self(void)
{
    return loop_self;
}

int http_loop_add(struct http_loop *lp, int fd, void (*run)(void *arg), int (*timeout)(void *arg),
                  void *arg)
{
    struct loop_src *src = xcalloc(1, sizeof(*src));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = src};

    src->kind = EV_SRC;
    src->fd = fd;
    src->run = run;
    src->timeout = timeout;
    src->arg = arg;
    if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, fd, &ev)) {
        free(src);
        return LY_EIO;
    }
    src->next = lp->srcs;
    lp->srcs = src;
    return 0;
}

static void *loop_main(void *arg)
{
    struct http_loop *lp = arg;
    struct epoll_event evs[16];
    uint64_t v;

    loop_self = lp;
    while (!__atomic_load_n(&lp->stop, __ATOMIC_RELAXED)) {
        MHD_UNSIGNED_LONG_LONG mt;
        int ms = MHD_get_timeout(lp->d, &mt) == MHD_YES ? (mt > 60000 ? 60000 : (int)mt) : -1;
        int n;

        for (struct loop_src *src = lp->srcs; src; src = src->next) {
            int t = src->timeout ? src->timeout(src->arg) : -1;

            src->fired = t == 0;
            if (t >= 0 && (ms < 0 || t < ms))
                ms = t;
        }
        if (lp->again)
            ms = 0;
        n = epoll_wait(lp->ep, evs, 16, ms);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == lp) {
                if (read(lp->evfd, &v, sizeof(v)) < 0)
                    v = 0;
            } else if (evs[i].data.ptr && *(enum loop_ev *)evs[i].data.ptr == EV_SOCK) {
                sock_ended(evs[i].data.ptr);
            } else if (evs[i].data.ptr) {
                ((struct loop_src *)evs[i].data.ptr)->fired = 1;
            }
        }
        /* A source first: what it does (a token for a suspended stream) MHD then sends. */
        for (struct loop_src *src = lp->srcs; src; src = src->next)
            if (src->fired || (n == 0 && src->timeout && src->timeout(src->arg) == 0))
                src->run(src->arg);
        lp->again = 0; /* connections resumed so far are seen by this MHD_run() */
        MHD_run(lp->d);
        if (lp->ended)
            ended_wake(lp);
    }
    return NULL;
}

static struct MHD_Daemon *daemon_start(struct http_server *srv, const struct sockaddr_in *sa,
                                       int listen_fd)
{
    const unsigned flags = MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                           MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE;
    unsigned timeout = srv->opt.connection_timeout_s ? srv->opt.connection_timeout_s : 120;
    /* MHD's own per-daemon limit (FD_SETSIZE - 4 by default) would bind first otherwise. */
    unsigned limit = srv->opt.max_connections ? srv->opt.max_connections : 1000000;

    if (listen_fd >= 0)
        return MHD_start_daemon(
            flags, 0, on_accept, srv, on_request, srv, MHD_OPTION_LISTEN_SOCKET, listen_fd,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri,
            srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_CONNECTION_TIMEOUT,
            timeout, MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
            NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY, MHD_OPTION_END);
    return MHD_start_daemon(
        flags, 0, on_accept, srv, on_request, srv, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONN_MEMORY, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
}

/* Sets up loop i (its daemon: the first binds the address, the others share its socket). */
static int loop_init(struct http_server *srv, unsigned i, const struct sockaddr_in *sa)
{
    struct http_loop *lp = &srv->loops[i];
    const union MHD_DaemonInfo *info;
    struct epoll_event ev = {.events = EPOLLIN};
    int listen_fd = -1;

    lp->srv = srv;
    lp->ep = lp->evfd = -1;
    if (i > 0) {
        info = MHD_get_daemon_info(srv->loops[0].d, MHD_DAEMON_INFO_LISTEN_FD);
        listen_fd = info ? info->listen_fd : -1;
        if (listen_fd < 0)
            return LY_EIO;
    }
    lp->d = daemon_start(srv, sa, listen_fd);
    if (!lp->d)
        return LY_EIO;
    info = MHD_get_daemon_info(lp->d, MHD_DAEMON_INFO_EPOLL_FD);
    lp->ep = epoll_create1(EPOLL_CLOEXEC);
    lp->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!info || lp->ep < 0 || lp->evfd < 0)
        return LY_EIO;
    ev.data.ptr = NULL;
    if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, info->epoll_fd, &ev))
        return LY_EIO;
    ev.data.ptr = lp;
    if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->evfd, &ev))
        return LY_EIO;
    return 0;
}

/* Ends the loops' threads, then their daemons (the shared socket is closed by the first's). */
static void loops_stop(struct http_server *srv)
{
    uint64_t one = 1;

    for (unsigned i = 0; i < srv->nloops; i++) {
        struct http_loop *lp = &srv->loops[i];

        if (!lp->running)
            continue;
        __atomic_store_n(&lp->stop, 1, __ATOMIC_RELAXED);
        if (write(lp->evfd, &one, sizeof(one)) < 0)
            log_error("cannot wake an HTTP thread: %s", strerror(errno));
        pthread_join(lp->thread, NULL);
        lp->running = 0;
    }
    for (unsigned i = srv->nloops; i-- > 0;) {
        struct http_loop *lp = &srv->loops[i];

        if (lp->d) {
            if (i > 0)
                MHD_quiesce_daemon(lp->d); /* the listening socket stays open for the first */
            MHD_stop_daemon(lp->d);
        }
        for (struct loop_src *src = lp->srcs, *next; src; src = next) {
            next = src->next;
            free(src);
        }
        if (lp->ep >= 0)
            close(lp->ep);
        if (lp->evfd >= 0)
            close(lp->evfd);
    }
    free(srv->loops);
}

/* After the daemons stopped (each connection was uncounted as MHD closed it). */
static void limits_release(struct http_server *srv)
{
    tdestroy(srv->lim.per_ip, free);
    srv->lim.per_ip = NULL;
    pthread_mutex_destroy(&srv->lim.mu);
}

struct http_server *http_server_start(const struct http_options *opt)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    struct sockaddr_in sa;

    srv->opt = *opt;
    pthread_mutex_init(&srv->lim.mu, NULL);
    if (parse_listen(opt->listen, &sa)) {
        log_error("cannot parse listen address '%s' (want HOST:PORT)", opt->listen);
        pthread_mutex_destroy(&srv->lim.mu);
        free(srv);
        return NULL;
    }
    if (opt->access_log)
        alog_start(&srv->alog);
    srv->nloops = opt->threads ? opt->threads : 1;
    srv->loops = xcalloc(srv->nloops, sizeof(*srv->loops));
    for (unsigned i = 0; i < srv->nloops; i++) {
        if (loop_init(srv, i, &sa)) {
            if (i == 0)
                log_error("cannot listen on %s (address in use or not permitted)", opt->listen);
            else
                log_error("cannot start HTTP thread %u: %s", i, strerror(errno));
            goto fail;
        }
    }
    for (unsigned i = 0; i < srv->nloops; i++) {
        if (pthread_create(&srv->loops[i].thread, NULL, loop_main, &srv->loops[i])) {
            log_error("cannot start HTTP thread %u", i);
            goto fail;
        }
        srv->loops[i].running = 1;
    }
    return srv;
fail:
    loops_stop(srv);
    if (opt->access_log)
        alog_stop(&srv->alog);
    limits_release(srv);
    free(srv);
    return NULL;
}

unsigned http_server_port(struct http_server *srv)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(srv->loops[0].d, MHD_DAEMON_INFO_BIND_PORT);

    return info ? info->port : 0;
}

void http_server_stop(struct http_server *srv)
{
    if (!srv)
        return;
    /* MHD must not be stopped with suspended connections: wake every stream to its end. */
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
    loops_stop(srv);
    if (srv->opt.access_log)
        alog_stop(&srv->alog);
    limits_release(srv);
    free(srv);
}
