/*
 * The reverse proxy (see proxy.h). One exchange is a struct pconn, which lives on the loop
 * (struct ploop: an epoll set added once to the core/loop.h loop of the HTTP thread) of the
 * thread that took its request, and goes through these states:
 *
 *   P_CONNECT   waiting for connect() to finish (the socket's first writable edge);
 *   P_HEAD      the request is being sent and the answer's status line and headers read
 *               (http-parser, as an HTTP/1.1 response: proxy_head.c); the connection is
 *               suspended in the server's deferred_status() until pc_status() can tell the
 *               status;
 *   P_BODY      the answer's body (decoded from chunks, or up to its Content-Length, or to
 *               the end of the connection: the request says "Connection: close") goes to the
 *               server's content reader through pc_read(), at most PROXY_BUF bytes ahead;
 *   P_RELAY     after a 101, the client's socket (handed over by the server) and the
 *               upstream one are relayed both ways, until either end closes (proxy_relay.c);
 *   P_END       finished: the upstream socket is closed. The pconn is freed (a zombie swept
 *               by the loop) once the server released its request too.
 *
 * Sockets are watched edge-triggered; each side remembers whether it may be readable or
 * writable (rd, wr) until a call says EAGAIN, so that a pump can stop (its buffer full) and go
 * on later without another event. Nothing here takes a lock but the list of loops: a pconn is
 * touched only by its loop's thread (the server calls read, status, upgrade and release there),
 * or by proxy_shutdown() after the loops ended.
 */
#include "http/proxy_int.h"
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

static pthread_mutex_t loops_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ploop *loops;
static _Thread_local struct ploop *here;

/* ---- small helpers ---- */

void proxy_buf_add(struct pbuf *b, const char *s, size_t n)
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

size_t proxy_buf_room(const struct pbuf *b)
{
    return b->cap - b->len;
}

void proxy_buf_consumed(struct pbuf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

void proxy_touch(struct pconn *pc)
{
    pc->deadline_us = now_mono_us() + (int64_t)PROXY_IDLE_S * 1000000;
}

void proxy_watch(struct pconn *pc, struct pside *s)
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

void proxy_unwatch(struct pconn *pc, struct pside *s)
{
    if (s->watched)
        epoll_ctl(pc->lp->ep, EPOLL_CTL_DEL, s->fd, NULL);
    s->watched = 0;
}

void proxy_close_up(struct pconn *pc)
{
    if (pc->up.fd < 0)
        return;
    proxy_unwatch(pc, &pc->up);
    close(pc->up.fd);
    pc->up.fd = -1;
}

/* The pconn is ended and released: it goes to the zombies, freed at the loop's next run (an
 * event of this turn may still point at it). */
void proxy_bury(struct pconn *pc)
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

    proxy_close_up(pc);
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
void proxy_fail(struct pconn *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void proxy_fail(struct pconn *pc, const char *fmt, ...)
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
    proxy_close_up(pc);
    if (pc->state != P_RELAY)
        pc->state = P_END;
    wake(pc);
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
                proxy_fail(pc, "Nothing listens on %s", pc->what);
            else
                proxy_fail(pc, "Cannot connect to %s: %s", pc->what, strerror(e));
            return;
        }
        pc->state = P_HEAD;
        proxy_touch(pc);
    }
    /* The request, as far as the socket takes it. A server that stops reading it (it answered
     * early) is left to answer. */
    while (pc->sendq.len && up->wr && !up->dead && up->fd >= 0) {
        ssize_t n = send(up->fd, pc->sendq.p + pc->sendq.off, pc->sendq.len - pc->sendq.off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            proxy_buf_consumed(&pc->sendq, (size_t)n);
            proxy_touch(pc);
        } else if (n < 0 && errno == EAGAIN) {
            up->wr = 0;
        } else if (n < 0 && errno != EINTR) {
            up->dead = 1;
        }
    }
    /* The answer, as far as there is room for its body (no more when it switches). */
    while (up->rd && !pc->complete && !(pc->hp.upgrade && pc->status == 101) && up->fd >= 0) {
        size_t room = proxy_buf_room(&pc->out), want = room < sizeof(rbuf) ? room : sizeof(rbuf);
        ssize_t n;

        if (!want)
            break;
        n = recv(up->fd, rbuf, want, MSG_DONTWAIT);
        if (n > 0) {
            proxy_touch(pc);
            proxy_parse(pc, rbuf, (size_t)n);
        } else if (n == 0) {
            proxy_parse(pc, NULL, 0);
            up->eof = 1;
            break;
        } else if (errno == EAGAIN) {
            up->rd = 0;
        } else if (errno != EINTR) {
            if (pc->status)
                pc->broken = pc->complete = 1;
            else
                proxy_fail(pc, "Lost the connection to %s: %s", pc->what, strerror(errno));
            break;
        }
    }
    if (pc->status && pc->state == P_HEAD)
        pc->state = P_BODY;
    if (pc->complete && pc->state == P_BODY)
        proxy_close_up(pc); /* the rest is in out */
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
            proxy_buf_consumed(&pc->out, n);
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

/* ---- the loop ---- */

static void pump(struct pconn *pc)
{
    if (pc->state == P_RELAY)
        proxy_pump_relay(pc);
    else if (pc->state != P_END)
        pump_http(pc);
}

static void expire(struct pconn *pc)
{
    if (pc->state == P_RELAY) {
        proxy_relay_end(pc);
    } else if (pc->state != P_END) {
        proxy_fail(pc, "The server at %s did not answer within %d s", pc->what, PROXY_IDLE_S);
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
    proxy_buf_add(bd->b, k, strlen(k));
    proxy_buf_add(bd->b, ": ", 2);
    proxy_buf_add(bd->b, v, strlen(v));
    proxy_buf_add(bd->b, "\r\n", 2);
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
    proxy_buf_add(&pc->sendq, req->method, strlen(req->method));
    proxy_buf_add(&pc->sendq, " ", 1);
    proxy_buf_add(&pc->sendq, target, strlen(target));
    proxy_buf_add(&pc->sendq, " HTTP/1.1\r\n", 11);
    bd = (struct build){&pc->sendq, o, connection, 0};
    req_header_each(req, add_header, &bd);
    if (pc->upgrade_req) {
        proxy_buf_add(&pc->sendq, "Connection: Upgrade\r\nUpgrade: ", 30);
        proxy_buf_add(&pc->sendq, upgrade, strlen(upgrade));
        proxy_buf_add(&pc->sendq, "\r\n", 2);
    } else {
        proxy_buf_add(&pc->sendq, "Connection: close\r\n", 19);
    }
    if (req->body_len || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
        strcmp(req->method, "PATCH") == 0) {
        char cl[48];
        int k = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", req->body_len);

        proxy_buf_add(&pc->sendq, cl, (size_t)k);
    }
    proxy_buf_add(&pc->sendq, "\r\n", 2);
    if (req->body_len)
        proxy_buf_add(&pc->sendq, req->body, req->body_len);

    pc->next = lp->all;
    if (lp->all)
        lp->all->prev = pc;
    lp->all = pc;
    proxy_touch(pc);
    proxy_watch(pc, &pc->up);
    if (pc->up.dead)
        proxy_fail(pc, "Cannot reach %s", pc->what);
    req->stream = (struct req_stream){pc_read, proxy_release, pc, pc_status, proxy_upgrade};
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
