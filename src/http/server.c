/*
 * The HTTP server (see server.h): libmicrohttpd, one daemon per HTTP thread, all accepting on
 * one listening socket. Each thread runs a loop of core/loop.h whose turn hook runs its
 * daemon (MHD_run) after the loop's sources: MHD's own epoll set, the connections' sockets
 * watched for their client's end of input (limits.c), and what handlers add to the loop of
 * their thread (upstream transfers, the port proxy). conn.c is the request glue.
 */
#include "http/server.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"
#include "http/server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

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

_Thread_local struct http_loop *http_self;

static int mhd_timeout(void *arg)
{
    struct http_loop *lp = arg;
    MHD_UNSIGNED_LONG_LONG mt;

    return MHD_get_timeout(lp->d, &mt) == MHD_YES ? (mt > 60000 ? 60000 : (int)mt) : -1;
}

/* The loop's turn hook, after its sources (what a source did, a token for a suspended
 * stream, MHD sends in the same turn). */
static void mhd_turn(void *arg)
{
    struct http_loop *lp = arg;

    MHD_run(lp->d);
    if (lp->ended)
        http_ended_wake(lp);
}

static void *loop_main(void *arg)
{
    struct http_loop *lp = arg;

    http_self = lp;
    loop_run(lp->loop);
    http_self = NULL;
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
            flags, 0, http_on_accept, srv, http_on_request, srv, MHD_OPTION_LISTEN_SOCKET,
            listen_fd, MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, srv,
            MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, srv, MHD_OPTION_NOTIFY_CONNECTION,
            http_on_connection, srv, MHD_OPTION_CONNECTION_TIMEOUT, timeout,
            MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, NULL,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY, MHD_OPTION_END);
    return MHD_start_daemon(
        flags, 0, http_on_accept, srv, http_on_request, srv, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)sa, MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, srv,
        MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, srv, MHD_OPTION_NOTIFY_CONNECTION,
        http_on_connection, srv, MHD_OPTION_CONNECTION_TIMEOUT, timeout,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, NULL,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_END);
}

/* Sets up loop i (its daemon: the first binds the address, the others share its socket). */
static int loop_init(struct http_server *srv, unsigned i, const struct sockaddr_in *sa)
{
    struct http_loop *lp = &srv->loops[i];
    const union MHD_DaemonInfo *info;
    int listen_fd = -1;

    lp->srv = srv;
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
    lp->loop = loop_new();
    if (!info || !lp->loop || !loop_add(lp->loop, info->epoll_fd, EPOLLIN, NULL, NULL, NULL))
        return LY_EIO;
    loop_set_turn(lp->loop, mhd_turn, mhd_timeout, lp);
    return 0;
}

/* Ends the loops' threads, then their daemons (the shared socket is closed by the first's),
 * then the loops (closing connections removes their sources). */
static void loops_stop(struct http_server *srv)
{
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct http_loop *lp = &srv->loops[i];

        if (!lp->running)
            continue;
        loop_stop(lp->loop);
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
        loop_free(lp->loop);
    }
    free(srv->loops);
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
    http_limits_release(srv);
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
    http_streams_end();
    loops_stop(srv);
    if (srv->opt.access_log)
        alog_stop(&srv->alog);
    http_limits_release(srv);
    free(srv);
}
