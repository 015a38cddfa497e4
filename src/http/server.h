/*
 * The HTTP server: libmicrohttpd, one daemon per HTTP thread, all accepting on one listening
 * socket; each thread runs an event loop of its own (core/loop.h) that holds its daemon's
 * epoll set and whatever other sources were added to that loop: a handler adds work that
 * belongs with its connection (the upstream sockets of a call it streams, the port proxy) to
 * loop_self(), so that no other thread wakes for each piece of it, and what it wakes (a
 * suspended response) is sent in the same turn of the loop. It collects a request's body (up to
 * max_body bytes; more is drained and answered 413), hands a filled struct req to dispatch(), sends
 * what dispatch left in it, and writes one access-log line per request. It bounds the connections
 * it holds (in all, and per client address) and closes idle ones, so that clients cannot take
 * every descriptor the process has.
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
    /* Connections open at once, in all and from one client address (0: no limit of ours),
     * shared by every thread's daemon; one past either is closed as soon as it is accepted. */
    unsigned max_connections, max_connections_per_ip;
    unsigned connection_timeout_s; /* an idle connection is closed after this (0: 120) */
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
