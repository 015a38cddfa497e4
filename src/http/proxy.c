/*
 * The reverse proxy (see proxy.h). One exchange is a struct pconn, which lives on the loop
 * (struct ploop: an epoll set added to the HTTP thread's loop once) of the thread that took its
 * request, and goes through these states:
 *
 *   P_CONNECT   waiting for connect() to finish (the socket's first writable edge);
 *   P_HEAD      the request is being sent and the answer's status line and headers read
 *               (http-parser, as an HTTP/1.1 response); the connection is suspended in the
 *               server's deferred_status() until pc_status() can tell the status;
 *   P_BODY      the answer's body (decoded from chunks, or up to its Content-Length, or to
 *               the end of the connection: the request says "Connection: close") goes to the
 *               server's content reader through pc_read(), at most PROXY_BUF bytes ahead;
 *   P_RELAY     after a 101, the client's socket (handed over by the server) and the
 *               upstream one are relayed both ways, until either end closes;
 *   P_END       finished: the upstream socket is closed. The pconn is freed (a zombie swept
 *               by the loop) once the server released its request too.
 *
 * Sockets are watched edge-triggered; each side remembers whether it may be readable or
 * writable (rd, wr) until a call says EAGAIN, so that a pump can stop (its buffer full) and go
 * on later without another event. Nothing here takes a lock but the list of loops: a pconn is
 * touched only by its loop's thread (the server calls read, status, upgrade and release there),
 * or by proxy_shutdown() after the loops ended.
 */
#include "http/proxy.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"
#include "http/req.h"

#include <errno.h>
#include <http_parser.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_BUF         (64u * 1024) /* each direction's buffer */
#define PROXY_HEAD_MAX    (32u * 1024) /* the answer's status line and headers */
#define PROXY_MAX_HEADERS 48           /* headers of an answer (the server sends up to 64) */
#define PROXY_READ        (16u * 1024) /* one read of the answer before it is parsed */

enum pstate { P_CONNECT, P_HEAD, P_BODY, P_RELAY, P_END };

struct pconn;

/* One socket of an exchange, as its epoll event's data. */
struct pside {
    struct pconn *pc;
    int fd;
    int rd, wr;  /* may be readable / writable: set by events, cleared by EAGAIN */
    int eof;     /* its reading side ended (or failed) */
    int dead;    /* writing to it failed: nothing more can go to it */
    int watched; /* in the loop's epoll set */
};

struct pbuf {
    char *p;
    size_t off, len, cap; /* the bytes are p[off..len) */
};

struct ploop {
    int ep;
    struct pconn *all;     /* every exchange of this loop not yet freed */
    struct pconn *zombies; /* ended and released: freed at the next run */
    struct ploop *next;    /* in loops */
};

struct pconn {
    struct ploop *lp;
    struct pconn *next, *prev; /* in lp->all */
    struct pconn *znext;       /* in lp->zombies */
    enum pstate state;
    int held;   /* the server still holds the request (release() not called yet) */
    int zombie; /* in lp->zombies */
    struct pside up, cl;
    int head_req, upgrade_req;

    /* Before the status: an error of our own (LY_E* and detail) answers instead. */
    int err;
    char why[300];
    /* The answer. */
    http_parser hp;
    int status;    /* 0 until its headers are complete */
    int complete;  /* the message ended (or cannot go on: broken) */
    int broken;    /* its body was cut short */
    int head_over; /* the headers did not fit */
    char *hbuf;    /* "name\0value\0" of each header while they are read */
    size_t hlen;
    int nh, in_value;
    size_t hname[PROXY_MAX_HEADERS], hvalue[PROXY_MAX_HEADERS];

    struct pbuf sendq; /* the request, then the client's bytes (relay) */
    struct pbuf out;   /* the answer's body, then the server's bytes (relay) */
    struct stream_waker *w;
    struct http_upgraded *u;
    int64_t deadline_us;

    char *what;
    void (*answered)(void *arg, int status);
    void (*done)(void *arg);
    void *arg;
};

static pthread_mutex_t loops_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ploop *loops;
static _Thread_local struct ploop *here;

/* ---- small helpers ---- */

static void pbuf_add(struct pbuf *b, const char *s, size_t n)
{
    if (!n)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;

        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            log_error("out of memory for a proxied request");
            abort();
        }
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static size_t pbuf_room(const struct pbuf *b)
{
    return b->cap - b->len;
}

static void pbuf_consumed(struct pbuf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

static void touch(struct pconn *pc)
{
    pc->deadline_us = now_mono_us() + (int64_t)PROXY_IDLE_S * 1000000;
}

static void watch(struct pconn *pc, struct pside *s)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = s};

    s->pc = pc;
    if (epoll_ctl(pc->lp->ep, EPOLL_CTL_ADD, s->fd, &ev) == 0) {
        s->watched = 1;
    } else {
        log_error("proxy: cannot watch a socket: %s", strerror(errno));
        s->eof = s->dead = 1;
    }
}

static void unwatch(struct pconn *pc, struct pside *s)
{
    if (s->watched)
        epoll_ctl(pc->lp->ep, EPOLL_CTL_DEL, s->fd, NULL);
    s->watched = 0;
}

static void close_up(struct pconn *pc)
{
    if (pc->up.fd < 0)
        return;
    unwatch(pc, &pc->up);
    close(pc->up.fd);
    pc->up.fd = -1;
}

/* The pconn is ended and released: it goes to the zombies, freed at the loop's next run (an
 * event of this turn may still point at it). */
static void maybe_bury(struct pconn *pc)
{
    if (pc->state != P_END || pc->held || pc->zombie)
        return;
    pc->zombie = 1;
    pc->znext = pc->lp->zombies;
    pc->lp->zombies = pc;
}

static void pc_free(struct pconn *pc)
{
    struct ploop *lp = pc->lp;

    close_up(pc);
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        lp->all = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    if (pc->done)
        pc->done(pc->arg);
    free(pc->sendq.p);
    free(pc->out.p);
    free(pc->hbuf);
    free(pc->what);
    free(pc);
}

static void wake(struct pconn *pc)
{
    struct stream_waker *w = pc->w;

    if (!w)
        return;
    pc->w = NULL;
    stream_wake(w);
}

/* A failure before the answer's status (after it: the body is cut short). */
static void fail(struct pconn *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct pconn *pc, const char *fmt, ...)
{
    va_list ap;

    if (pc->status) {
        pc->broken = pc->complete = 1;
    } else if (!pc->err) {
        pc->err = LY_EGATEWAY;
        va_start(ap, fmt);
        vsnprintf(pc->why, sizeof(pc->why), fmt, ap);
        va_end(ap);
    }
    close_up(pc);
    if (pc->state != P_RELAY)
        pc->state = P_END;
    wake(pc);
}

/* ---- the answer's head (http-parser's callbacks) ---- */

static int head_add(struct pconn *pc, const char *at, size_t n)
{
    if (pc->hlen + n + 1 > PROXY_HEAD_MAX) {
        pc->head_over = 1;
        return 1;
    }
    memcpy(pc->hbuf + pc->hlen, at, n);
    pc->hlen += n;
    return 0;
}

static int on_field(http_parser *hp, const char *at, size_t n)
{
    struct pconn *pc = hp->data;

    if (pc->in_value || pc->nh == 0) {
        if (pc->nh && head_add(pc, "", 1)) /* ends the value before */
            return 1;
        if (pc->nh == PROXY_MAX_HEADERS) {
            pc->head_over = 1;
            return 1;
        }
        pc->hname[pc->nh] = pc->hlen;
        pc->hvalue[pc->nh] = (size_t)-1;
        pc->nh++;
        pc->in_value = 0;
    }
    return head_add(pc, at, n);
}

static int on_value(http_parser *hp, const char *at, size_t n)
{
    struct pconn *pc = hp->data;

    if (!pc->nh)
        return 1;
    if (!pc->in_value) {
        if (head_add(pc, "", 1)) /* ends the name */
            return 1;
        pc->hvalue[pc->nh - 1] = pc->hlen;
        pc->in_value = 1;
    }
    return head_add(pc, at, n);
}

static int on_headers(http_parser *hp)
{
    struct pconn *pc = hp->data;
    int st = hp->status_code;

    if (pc->nh && (pc->in_value || pc->hvalue[pc->nh - 1] == (size_t)-1)) {
        if (!pc->in_value) { /* a name without a value */
            if (head_add(pc, "", 1))
                return 1;
            pc->hvalue[pc->nh - 1] = pc->hlen;
        }
        if (head_add(pc, "", 1))
            return 1;
    }
    if (st >= 100 && st < 200 && st != 101) {
        /* An interim answer (100 Continue): the real one follows. */
        pc->nh = 0;
        pc->hlen = 0;
        pc->in_value = 0;
        return 0;
    }
    pc->status = st;
    return pc->head_req ? 1 : 0; /* an answer to HEAD has no body whatever it says */
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    struct pconn *pc = hp->data;

    /* Never more than was read, and a read never exceeds the room left. */
    pbuf_add(&pc->out, at, n);
    return 0;
}

static int on_complete(http_parser *hp)
{
    struct pconn *pc = hp->data;

    if (pc->status && pc->status != 101)
        pc->complete = 1;
    return 0;
}

static const http_parser_settings settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* Feeds n bytes of the answer (0: its end) to the parser. */
static void parse(struct pconn *pc, const char *p, size_t n)
{
    size_t k;

    if (pc->complete)
        return; /* anything after the answer is ignored */
    k = http_parser_execute(&pc->hp, &settings, p, n);
    if (pc->hp.upgrade && pc->status == 101) {
        if (!pc->upgrade_req) {
            fail(pc, "The server at %s switched protocols for a request that did not ask to",
                 pc->what);
            return;
        }
        /* What follows the 101's head is the new protocol's: the client's first bytes. */
        pbuf_add(&pc->out, p + k, n - k);
        return;
    }
    if (HTTP_PARSER_ERRNO(&pc->hp) != HPE_OK) {
        if (pc->head_over)
            fail(pc, "The server at %s answered with headers over %u bytes or %d lines", pc->what,
                 PROXY_HEAD_MAX, PROXY_MAX_HEADERS);
        else if (n == 0 && !pc->status)
            fail(pc, "The server at %s closed the connection without answering", pc->what);
        else
            fail(pc, "The server at %s answered with something that is not HTTP (%s)", pc->what,
                 http_errno_description(HTTP_PARSER_ERRNO(&pc->hp)));
        return;
    }
    if (n == 0 && !pc->complete) {
        if (pc->status)
            pc->broken = pc->complete = 1;
        else
            fail(pc, "The server at %s closed the connection without answering", pc->what);
    }
}

/* ---- request and answer (P_CONNECT, P_HEAD, P_BODY) ---- */

static void pump_http(struct pconn *pc)
{
    struct pside *up = &pc->up;
    char rbuf[PROXY_READ];

    if (pc->state == P_CONNECT) {
        int e = 0;
        socklen_t el = sizeof(e);

        if (!up->wr)
            return;
        if (getsockopt(up->fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e) {
            if (e == ECONNREFUSED)
                fail(pc, "Nothing listens on %s", pc->what);
            else
                fail(pc, "Cannot connect to %s: %s", pc->what, strerror(e));
            return;
        }
        pc->state = P_HEAD;
        touch(pc);
    }
    /* The request, as far as the socket takes it. A server that stops reading it (it answered
     * early) is left to answer. */
    while (pc->sendq.len && up->wr && !up->dead && up->fd >= 0) {
        ssize_t n = send(up->fd, pc->sendq.p + pc->sendq.off, pc->sendq.len - pc->sendq.off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            pbuf_consumed(&pc->sendq, (size_t)n);
            touch(pc);
        } else if (n < 0 && errno == EAGAIN) {
            up->wr = 0;
        } else if (n < 0 && errno != EINTR) {
            up->dead = 1;
        }
    }
    /* The answer, as far as there is room for its body (no more when it switches). */
    while (up->rd && !pc->complete && !(pc->hp.upgrade && pc->status == 101) && up->fd >= 0) {
        size_t room = pbuf_room(&pc->out), want = room < sizeof(rbuf) ? room : sizeof(rbuf);
        ssize_t n;

        if (!want)
            break;
        n = recv(up->fd, rbuf, want, MSG_DONTWAIT);
        if (n > 0) {
            touch(pc);
            parse(pc, rbuf, (size_t)n);
        } else if (n == 0) {
            parse(pc, NULL, 0);
            up->eof = 1;
            break;
        } else if (errno == EAGAIN) {
            up->rd = 0;
        } else if (errno != EINTR) {
            if (pc->status)
                pc->broken = pc->complete = 1;
            else
                fail(pc, "Lost the connection to %s: %s", pc->what, strerror(errno));
            break;
        }
    }
    if (pc->status && pc->state == P_HEAD)
        pc->state = P_BODY;
    if (pc->complete && pc->state == P_BODY)
        close_up(pc); /* the rest is in out */
    if (pc->status || pc->err || pc->out.len > pc->out.off || pc->complete)
        wake(pc);
}

/* Whether a request or answer header is one only for the connection it came on. */
static int hop_by_hop(const char *name)
{
    static const char *const names[] = {"Connection",          "Keep-Alive", "Proxy-Connection",
                                        "Proxy-Authenticate",  "TE",         "Trailer",
                                        "Transfer-Encoding",   "Upgrade",    "Expect",
                                        "Proxy-Authorization", NULL};

    for (int i = 0; names[i]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* Whether the comma-separated list holds token (case-insensitive). */
static int has_token(const char *list, const char *token)
{
    size_t tn = strlen(token);

    for (const char *p = list; p && *p;) {
        size_t n;

        p += strspn(p, " \t,");
        n = strcspn(p, " \t,");
        if (n == tn && strncasecmp(p, token, n) == 0)
            return 1;
        p += n;
    }
    return 0;
}

/* The answer's status, once known; its headers go into req. */
static int pc_status(void *ctx, struct stream_waker *w, struct req *req)
{
    struct pconn *pc = ctx;
    const char *ctype = "";
    int st;

    if (pc->err) {
        req_fail(req, pc->err, "%s", pc->why);
        req_set_error(req, pc->err);
        st = req->status;
        goto out;
    }
    if (!pc->status) {
        pc->w = w;
        return 0;
    }
    for (int i = 0; i < pc->nh; i++) {
        const char *name = pc->hbuf + pc->hname[i], *value = pc->hbuf + pc->hvalue[i];

        if (strcasecmp(name, "Content-Type") == 0) {
            ctype = value;
            continue;
        }
        if ((hop_by_hop(name) && !(pc->status == 101 && strcasecmp(name, "Upgrade") == 0)) ||
            strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "X-Request-ID") == 0 ||
            strcasecmp(name, "Date") == 0)
            continue;
        req_add_header(req, arena_strdup(&req->arena, name), value);
    }
    req->content_type = arena_strdup(&req->arena, ctype);
    st = pc->status;
    free(pc->hbuf); /* the headers are req's now */
    pc->hbuf = NULL;
out:
    if (pc->answered)
        pc->answered(pc->arg, st);
    pc->answered = NULL;
    return st;
}

static long pc_read(void *ctx, char *buf, size_t max, struct stream_waker *w)
{
    struct pconn *pc = ctx;

    for (int pass = 0; pass < 2; pass++) {
        size_t have = pc->out.len - pc->out.off;

        if (have) {
            size_t n = have < max ? have : max;

            memcpy(buf, pc->out.p + pc->out.off, n);
            pbuf_consumed(&pc->out, n);
            return (long)n;
        }
        if (pc->complete || pc->up.fd < 0)
            return pc->broken || !pc->complete ? -2 : -1;
        if (pass == 0)
            pump_http(pc); /* room again: read on where the buffer was full */
    }
    pc->w = w;
    return 0;
}

/* ---- the relay (P_RELAY) ---- */

/* Moves what it can from src to dst through b. 1 when something moved. */
static int relay_one(struct pconn *pc, struct pside *src, struct pside *dst, struct pbuf *b)
{
    int moved = 0;

    for (;;) {
        int progress = 0;

        if (!src->eof && src->rd && pbuf_room(b) && !dst->dead) {
            ssize_t n = recv(src->fd, b->p + b->len, pbuf_room(b), MSG_DONTWAIT);

            if (n > 0) {
                b->len += (size_t)n;
                progress = 1;
            } else if (n == 0) {
                src->eof = 1;
            } else if (errno == EAGAIN) {
                src->rd = 0;
            } else if (errno != EINTR) {
                src->eof = 1;
            }
        }
        if (b->len > b->off && dst->wr && !dst->dead) {
            ssize_t n = send(dst->fd, b->p + b->off, b->len - b->off, MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n > 0) {
                pbuf_consumed(b, (size_t)n);
                progress = 1;
            } else if (n < 0 && errno == EAGAIN) {
                dst->wr = 0;
            } else if (n < 0 && errno != EINTR) {
                dst->dead = 1;
            }
        }
        if (!progress)
            break;
        moved = 1;
    }
    (void)pc;
    return moved;
}

static void relay_end(struct pconn *pc)
{
    unwatch(pc, &pc->cl);
    close_up(pc);
    http_upgraded_close(pc->u); /* the server closes the client's socket */
    pc->u = NULL;
    pc->state = P_END;
    maybe_bury(pc);
}

static void pump_relay(struct pconn *pc)
{
    int a = relay_one(pc, &pc->cl, &pc->up, &pc->sendq);
    int b = relay_one(pc, &pc->up, &pc->cl, &pc->out);

    if (a || b)
        touch(pc);
    /* As nginx does for upgraded connections: once either end has closed and what it sent is
     * passed on, or either cannot be written to, both are closed (WebSockets end with their own
     * close frames; no half-open relay waits for a peer that went away). */
    if ((pc->cl.eof && pc->sendq.len == pc->sendq.off) ||
        (pc->up.eof && pc->out.len == pc->out.off) || pc->up.dead || pc->cl.dead)
        relay_end(pc);
}

static void pc_upgrade(void *ctx, struct http_upgraded *u, int fd, const char *extra, size_t n)
{
    struct pconn *pc = ctx;
    int one = 1;

    pc->u = u;
    pc->cl.fd = fd;
    /* MHD turned Nagle's algorithm back on for the switch; small frames must not wait. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pc->cl.rd = pc->cl.wr = 1;
    pc->state = P_RELAY;
    /* The request is sent: its buffer carries the client's bytes from now on. */
    free(pc->sendq.p);
    memset(&pc->sendq, 0, sizeof(pc->sendq));
    pbuf_add(&pc->sendq, extra, n);
    if (pc->sendq.cap < PROXY_BUF) {
        pc->sendq.p = realloc(pc->sendq.p, PROXY_BUF);
        if (!pc->sendq.p)
            abort();
        pc->sendq.cap = PROXY_BUF;
    }
    if (pc->up.fd < 0) {
        pc->up.eof = pc->up.dead = 1;
    }
    watch(pc, &pc->cl);
    touch(pc);
    pump_relay(pc);
}

static void pc_release(void *ctx)
{
    struct pconn *pc = ctx;

    pc->held = 0;
    pc->w = NULL;
    if (pc->state != P_RELAY) {
        close_up(pc);
        pc->state = P_END;
    }
    maybe_bury(pc);
}

/* ---- the loop ---- */

static void pump(struct pconn *pc)
{
    if (pc->state == P_RELAY)
        pump_relay(pc);
    else if (pc->state != P_END)
        pump_http(pc);
}

static void expire(struct pconn *pc)
{
    if (pc->state == P_RELAY) {
        relay_end(pc);
    } else if (pc->state != P_END) {
        fail(pc, "The server at %s did not answer within %d s", pc->what, PROXY_IDLE_S);
    }
}

static void ploop_run(void *arg)
{
    struct ploop *lp = arg;
    struct epoll_event evs[64];
    int n = epoll_wait(lp->ep, evs, 64, 0);
    int64_t now = now_mono_us();

    for (int i = 0; i < n; i++) {
        struct pside *s = evs[i].data.ptr;
        uint32_t e = evs[i].events;

        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            s->rd = 1;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            s->wr = 1;
    }
    for (int i = 0; i < n; i++) {
        struct pside *s = evs[i].data.ptr;

        if (s->watched)
            pump(s->pc);
    }
    for (struct pconn *pc = lp->all; pc; pc = pc->next)
        if (pc->state != P_END && pc->deadline_us <= now)
            expire(pc);
    while (lp->zombies) {
        struct pconn *pc = lp->zombies;

        lp->zombies = pc->znext;
        pc_free(pc);
    }
}

/* Milliseconds to the nearest idle deadline (0 while zombies wait to be freed). */
static int ploop_timeout(void *arg)
{
    struct ploop *lp = arg;
    int64_t now = now_mono_us(), next = -1;

    if (lp->zombies)
        return 0;
    for (struct pconn *pc = lp->all; pc; pc = pc->next)
        if (pc->state != P_END && (next < 0 || pc->deadline_us < next))
            next = pc->deadline_us;
    if (next < 0)
        return -1;
    return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

static struct ploop *ploop_here(void)
{
    struct loop *hl = loop_self();
    struct ploop *lp;

    if (here || !hl)
        return here;
    lp = xcalloc(1, sizeof(*lp));
    lp->ep = epoll_create1(EPOLL_CLOEXEC);
    if (lp->ep < 0 || !loop_add(hl, lp->ep, EPOLLIN, ploop_run, ploop_timeout, lp)) {
        log_error("proxy: cannot set up on this HTTP thread: %s", strerror(errno));
        if (lp->ep >= 0)
            close(lp->ep);
        free(lp);
        return NULL;
    }
    pthread_mutex_lock(&loops_mu);
    lp->next = loops;
    loops = lp;
    pthread_mutex_unlock(&loops_mu);
    here = lp;
    return lp;
}

/* ---- starting an exchange ---- */

struct build {
    struct pbuf *b;
    const struct proxy_opts *o;
    const char *connection; /* the client's Connection header */
    int host_seen;
};

static void add_header(void *arg, const char *k, const char *v)
{
    struct build *bd = arg;

    if (!k || !v || strpbrk(k, "\r\n") || strpbrk(v, "\r\n") || hop_by_hop(k) ||
        strcasecmp(k, "Content-Length") == 0 || has_token(bd->connection, k))
        return;
    for (int i = 0; bd->o->drop && bd->o->drop[i]; i++)
        if (strcasecmp(k, bd->o->drop[i]) == 0)
            return;
    if (strcasecmp(k, "Host") == 0) {
        if (bd->host_seen++)
            return;
    }
    pbuf_add(bd->b, k, strlen(k));
    pbuf_add(bd->b, ": ", 2);
    pbuf_add(bd->b, v, strlen(v));
    pbuf_add(bd->b, "\r\n", 2);
}

int proxy_start(struct req *req, int fd, const struct proxy_opts *o)
{
    struct ploop *lp = ploop_here();
    const char *target = req->target ? req->target : req->path;
    const char *connection = req_header(req, "Connection"), *upgrade = req_header(req, "Upgrade");
    struct pconn *pc;
    struct build bd;
    int err, one = 1;

    if (!lp) {
        err = req_fail(req, LY_EUNAVAIL, "The port proxy cannot run on this thread");
        goto fail;
    }
    if (!target || target[0] != '/' || strpbrk(target, " \r\n")) {
        err = req_fail(req, LY_EBADREQ, "The request target must be a path");
        goto fail;
    }
    pc = xcalloc(1, sizeof(*pc));
    pc->lp = lp;
    pc->held = 1;
    pc->state = P_CONNECT;
    pc->up.fd = fd;
    pc->cl.fd = -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pc->head_req = strcmp(req->method, "HEAD") == 0;
    pc->upgrade_req = upgrade && connection && has_token(connection, "upgrade");
    pc->what = xstrdup(o->what ? o->what : "the server");
    pc->answered = o->answered;
    pc->done = o->done;
    pc->arg = o->arg;
    pc->hbuf = xmalloc(PROXY_HEAD_MAX);
    http_parser_init(&pc->hp, HTTP_RESPONSE);
    pc->hp.data = pc;
    pc->out.p = xmalloc(PROXY_BUF);
    pc->out.cap = PROXY_BUF;

    /* The request: HTTP/1.1, one request per connection (or a switch of protocols). */
    pbuf_add(&pc->sendq, req->method, strlen(req->method));
    pbuf_add(&pc->sendq, " ", 1);
    pbuf_add(&pc->sendq, target, strlen(target));
    pbuf_add(&pc->sendq, " HTTP/1.1\r\n", 11);
    bd = (struct build){&pc->sendq, o, connection, 0};
    req_header_each(req, add_header, &bd);
    if (pc->upgrade_req) {
        pbuf_add(&pc->sendq, "Connection: Upgrade\r\nUpgrade: ", 30);
        pbuf_add(&pc->sendq, upgrade, strlen(upgrade));
        pbuf_add(&pc->sendq, "\r\n", 2);
    } else {
        pbuf_add(&pc->sendq, "Connection: close\r\n", 19);
    }
    if (req->body_len || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
        strcmp(req->method, "PATCH") == 0) {
        char cl[48];
        int k = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", req->body_len);

        pbuf_add(&pc->sendq, cl, (size_t)k);
    }
    pbuf_add(&pc->sendq, "\r\n", 2);
    if (req->body_len)
        pbuf_add(&pc->sendq, req->body, req->body_len);

    pc->next = lp->all;
    if (lp->all)
        lp->all->prev = pc;
    lp->all = pc;
    touch(pc);
    watch(pc, &pc->up);
    if (pc->up.dead)
        fail(pc, "Cannot reach %s", pc->what);
    req->stream = (struct req_stream){pc_read, pc_release, pc, pc_status, pc_upgrade};
    return 0;
fail:
    close(fd);
    if (o->done)
        o->done(o->arg);
    return err;
}

void proxy_shutdown(void)
{
    pthread_mutex_lock(&loops_mu);
    while (loops) {
        struct ploop *lp = loops;

        loops = lp->next;
        /* The server has stopped: its connections are closed, the relays' client sockets too. */
        while (lp->all)
            pc_free(lp->all);
        close(lp->ep);
        free(lp);
    }
    pthread_mutex_unlock(&loops_mu);
}
