/*
 * Connection limits and the client's end of input (see server.h, server_int.h).
 *
 * Limits: every daemon shares one count of open connections, in all and per client address
 * (struct conn_limits). MHD asks http_on_accept() about each connection it has accepted,
 * which refuses (MHD closes it at once) one past either limit; http_on_connection() counts a
 * connection when it starts and uncounts it when it closes. Two threads accepting at the same
 * moment may both pass the check, so a limit can be passed by at most one connection per
 * HTTP thread. Idle connections are closed by MHD after connection_timeout_s.
 *
 * A client's end of input (it shut down its sending side, or went away): MHD 0.9.75 in epoll
 * mode stops watching a socket for reading after a read shorter than its buffer, so when the
 * last bytes and the FIN were both waiting by then, no new event comes and the connection
 * (junk, half a request, or idle after an answer) would wait for the timeout. Each connection's
 * descriptor is therefore also a source of its loop, for EPOLLRDHUP; once MHD has read every
 * byte before the end, the loop shuts the socket's reading side (a no-op for data: nothing more
 * can come), which wakes MHD: it reads the end and closes the connection, or, when it is still
 * answering a complete request, once the answer is sent.
 */
#include "core/arena.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"
#include "http/server_int.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

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
enum MHD_Result http_on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
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

static void sock_ended(void *arg);

static void sock_watch(struct sock *k)
{
    if (k->lp && k->fd >= 0)
        k->watch = loop_add(k->lp->loop, k->fd, EPOLLRDHUP, sock_ended, NULL, k);
}

static void sock_unwatch(struct sock *k)
{
    loop_del(k->watch);
    k->watch = NULL;
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

void http_sock_detach(struct sock *k)
{
    sock_unwatch(k);
    ended_remove(k);
}

/* The loop saw EPOLLRDHUP (or an error) on k: no need to watch it any more. */
static void sock_ended(void *arg)
{
    struct sock *k = arg;
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
void http_ended_wake(struct http_loop *lp)
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
void http_on_connection(void *cls, struct MHD_Connection *mhd, void **ctx,
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

        k->lp = http_self;
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

void http_limits_release(struct http_server *srv)
{
    tdestroy(srv->lim.per_ip, free);
    srv->lim.per_ip = NULL;
    pthread_mutex_destroy(&srv->lim.mu);
}
