/*
 * What the HTTP server's files share, and no one else (see server.h): server.c runs the
 * threads, their loops (core/loop.h) and daemons; conn.c is libmicrohttpd's request glue
 * (a request's state, its body, the response, streams and protocol switches); limits.c
 * counts connections and watches for a client's end of input.
 *
 * Every struct here belongs to one server. A struct http_loop is touched only by its own
 * thread, and by the thread that stops the server once that thread ended.
 */
#ifndef LYCEUMD_HTTP_SERVER_INT_H
#define LYCEUMD_HTTP_SERVER_INT_H

#include "http/alog.h"
#include "http/server.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

/* Past this many dropped bytes the connection is closed rather than drained. */
#define DRAIN_LIMIT (256u << 20)

/* MHD's per-connection pool, which holds the request line and headers (and is cleared for
 * each request): headers past about half of it answer 431. */
#define CONN_MEMORY (16u * 1024)

struct loop;
struct loop_src;

/* One HTTP thread: its own MHD daemon (all of them accept on one listening socket), run as
 * the turn hook of its loop, whose sources are MHD's epoll set, the sockets watched for their
 * end of input, and whatever handlers added (upstream transfers, the port proxy). */
struct http_loop {
    struct http_server *srv;
    struct MHD_Daemon *d;
    struct loop *loop;
    pthread_t thread;
    int running;
    struct sock *ended; /* connections whose client ended its input, until MHD is woken */
};

/* Open connections from one client address (an IPv4 one as IPv4-mapped IPv6): a node of
 * conn_limits.per_ip while n > 0. */
struct ip_count {
    unsigned char a[16];
    unsigned n;
};

/* One open connection (MHD's socket context): its address's count, and its descriptor, a
 * source of its loop while watched for the client's end of input (limits.c). */
struct sock {
    struct ip_count *ip;
    struct http_loop *lp;
    int fd;
    struct loop_src *watch;     /* while watched */
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

/* The HTTP loop of the calling thread (NULL off the HTTP threads). */
extern _Thread_local struct http_loop *http_self;

/* conn.c: MHD's callbacks for requests (cls is the server). */
void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *mhd);
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *mhd, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls);
void http_on_completed(void *cls, struct MHD_Connection *mhd, void **con_cls,
                       enum MHD_RequestTerminationCode toe);
size_t http_unescape(void *cls, struct MHD_Connection *mhd, char *s);
/* Before the daemons stop (MHD must not be stopped with suspended connections): every
 * stream is ended and woken, waiting up to a second for them to go. */
void http_streams_end(void);

/* limits.c: MHD's accept policy and connection notices (cls is the server). */
enum MHD_Result http_on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void http_on_connection(void *cls, struct MHD_Connection *mhd, void **ctx,
                        enum MHD_ConnectionNotificationCode code);
/* A connection that stops being HTTP (after a 101): its end of input is no longer watched. */
void http_sock_detach(struct sock *k);
/* After MHD_run(): wakes MHD for the ended connections whose bytes it has all read. */
void http_ended_wake(struct http_loop *lp);
/* After the daemons stopped (each connection was uncounted as MHD closed it). */
void http_limits_release(struct http_server *srv);

#endif
