/*
 * The HTTP server: libmicrohttpd with a thread pool, each thread on its own epoll set.
 * It collects a request's body (up to max_body bytes; more is drained and answered 413),
 * hands a filled struct req to dispatch(), sends what dispatch left in it, and writes one
 * access-log line per request.
 */
#ifndef LYCEUMD_HTTP_SERVER_H
#define LYCEUMD_HTTP_SERVER_H

#include <stddef.h>

struct req;

struct http_options {
    const char *listen; /* "host:port" */
    unsigned threads;
    size_t max_body;
    int access_log; /* 1: one line per request on stderr */
    void (*dispatch)(struct req *req);
    /* Optional: called once the headers are in, before the body; it may set req->sink to take
     * the body as it arrives (then the body is not buffered, nor capped by max_body). */
    void (*begin)(struct req *req);
};

struct http_server;

/* Starts serving; returns NULL (after logging why) when the address cannot be bound. */
struct http_server *http_server_start(const struct http_options *opt);
void http_server_stop(struct http_server *srv);
/* The port actually bound (useful with port 0). */
unsigned http_server_port(struct http_server *srv);

#endif
