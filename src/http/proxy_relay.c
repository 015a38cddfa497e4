/*
 * The relay (see proxy_int.h): after a 101, the client's socket (handed over by the server)
 * and the upstream one are relayed both ways through the exchange's two buffers, until
 * either end closes; then the client's connection is given back to the server.
 */
#include "core/log.h"
#include "core/util.h"
#include "http/proxy_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Moves what it can from src to dst through b. 1 when something moved. */
static int relay_one(struct pconn *pc, struct pside *src, struct pside *dst, struct pbuf *b)
{
    int moved = 0;

    for (;;) {
        int progress = 0;

        if (!src->eof && src->rd && proxy_buf_room(b) && !dst->dead) {
            ssize_t n = recv(src->fd, b->p + b->len, proxy_buf_room(b), MSG_DONTWAIT);

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
                proxy_buf_consumed(b, (size_t)n);
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

void proxy_relay_end(struct pconn *pc)
{
    proxy_unwatch(pc, &pc->cl);
    proxy_close_up(pc);
    http_upgraded_close(pc->u); /* the server closes the client's socket */
    pc->u = NULL;
    pc->state = P_END;
    proxy_bury(pc);
}

void proxy_pump_relay(struct pconn *pc)
{
    int a = relay_one(pc, &pc->cl, &pc->up, &pc->sendq);
    int b = relay_one(pc, &pc->up, &pc->cl, &pc->out);

    if (a || b)
        proxy_touch(pc);
    /* As nginx does for upgraded connections: once either end has closed and what it sent is
     * passed on, or either cannot be written to, both are closed (WebSockets end with their own
     * close frames; no half-open relay waits for a peer that went away). */
    if ((pc->cl.eof && pc->sendq.len == pc->sendq.off) ||
        (pc->up.eof && pc->out.len == pc->out.off) || pc->up.dead || pc->cl.dead)
        proxy_relay_end(pc);
}

void proxy_upgrade(void *ctx, struct http_upgraded *u, int fd, const char *extra, size_t n)
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
    proxy_buf_add(&pc->sendq, extra, n);
    if (pc->sendq.cap < PROXY_BUF) {
        pc->sendq.p = realloc(pc->sendq.p, PROXY_BUF);
        if (!pc->sendq.p)
            abort();
        pc->sendq.cap = PROXY_BUF;
    }
    if (pc->up.fd < 0) {
        pc->up.eof = pc->up.dead = 1;
    }
    proxy_watch(pc, &pc->cl);
    proxy_touch(pc);
    proxy_pump_relay(pc);
}

void proxy_release(void *ctx)
{
    struct pconn *pc = ctx;

    pc->held = 0;
    pc->w = NULL;
    if (pc->state != P_RELAY) {
        proxy_close_up(pc);
        pc->state = P_END;
    }
    proxy_bury(pc);
}
