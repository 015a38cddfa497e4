/*
 * Serving the API: the HTTP server with api_dispatch() and api_begin() as its handlers, its
 * connection limits fitted to the descriptor limit, and its stop with the port proxy's relays
 * after it. main.c starts and stops it as one subsystem (api.h); it knows no http/ type.
 */
#include "api/api.h"
#include "core/err.h"
#include "core/log.h"
#include "http/proxy.h"
#include "http/server.h"

#include <dirent.h>

/* Descriptors the server keeps for itself beyond its connections: the database connections
 * of threads that have not opened theirs yet, runs' pipes, files being served, logs. */
#define FD_RESERVE 64

static struct http_server *srv;

/* How many descriptors the process holds now. */
static unsigned open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    unsigned n = 0;

    if (!d)
        return 64;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n ? n - 1 : 0; /* not the directory's own */
}

/* The connection limits: the config's (default 4,096 in all), within what the descriptor limit
 * leaves once the server's own are counted (a connection may hold two: its socket, and a
 * file or an upstream socket it is served from). */
static void connection_limits(const struct config *cfg, unsigned long long nofile,
                              struct http_options *opt)
{
    long long spare = (long long)nofile - open_fds() - FD_RESERVE - 8LL * cfg->threads;
    unsigned fit = spare > 32 ? (unsigned)(spare / 2) : 16;

    opt->max_connections = cfg->max_connections ? cfg->max_connections : 4096;
    if (opt->max_connections > fit) {
        if (cfg->max_connections)
            log_warn("max_connections %u lowered to %u: the descriptor limit (%llu) has room "
                     "for no more",
                     cfg->max_connections, fit, nofile);
        opt->max_connections = fit;
    }
    opt->max_connections_per_ip = cfg->max_connections_per_ip < opt->max_connections
                                      ? cfg->max_connections_per_ip
                                      : opt->max_connections;
    opt->connection_timeout_s = cfg->connection_timeout_s;
    log_info("connections: at most %u at once, %u from one client address; idle ones closed "
             "after %u s",
             opt->max_connections, opt->max_connections_per_ip, opt->connection_timeout_s);
}

int api_serve_start(const struct config *cfg, unsigned long long nofile)
{
    struct http_options opt = {0};

    opt.listen = cfg->listen;
    opt.threads = cfg->threads;
    opt.max_body = cfg->max_body;
    opt.access_log = cfg->access_log;
    opt.dispatch = api_dispatch;
    opt.begin = api_begin;
    connection_limits(cfg, nofile, &opt);
    api_defer_start();
    srv = http_server_start(&opt);
    if (!srv)
        api_defer_stop();
    return srv ? 0 : LY_EIO;
}

void api_serve_stop(void)
{
    if (!srv)
        return;
    http_server_stop(srv);
    srv = NULL;
    api_defer_stop();
    proxy_shutdown();
}
