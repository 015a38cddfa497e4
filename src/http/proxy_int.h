/*
 * What the port proxy's files share, and no one else (see proxy.h): proxy.c starts an
 * exchange and runs the loops, proxy_head.c parses the answer's status line and headers,
 * proxy_relay.c relays the two sockets after a 101. A struct pconn is touched only by its
 * loop's thread (or by proxy_shutdown() after the loops ended).
 */
#ifndef LYCEUMD_HTTP_PROXY_INT_H
#define LYCEUMD_HTTP_PROXY_INT_H

#include "http/proxy.h"
#include "http/req.h"

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

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

/* proxy.c: the buffers, the idle deadline, the sockets' watch, and the ends. */
void proxy_buf_add(struct pbuf *b, const char *s, size_t n);
size_t proxy_buf_room(const struct pbuf *b);
void proxy_buf_consumed(struct pbuf *b, size_t n);
/* Moves the idle deadline PROXY_IDLE_S from now. */
void proxy_touch(struct pconn *pc);
/* Adds s to the loop's epoll set (edge-triggered); on failure s is dead. */
void proxy_watch(struct pconn *pc, struct pside *s);
void proxy_unwatch(struct pconn *pc, struct pside *s);
/* Closes the upstream socket (once). */
void proxy_close_up(struct pconn *pc);
/* An ended and released pconn goes to the zombies, freed at the loop's next run. */
void proxy_bury(struct pconn *pc);
/* A failure before the answer's status (after it: the body is cut short). */
void proxy_fail(struct pconn *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* proxy_head.c: feeds n bytes of the answer to its parser (NULL, 0: the upstream ended). */
void proxy_parse(struct pconn *pc, const char *p, size_t n);

/* proxy_relay.c: the relay (P_RELAY), and the stream's upgrade() and release(). */
void proxy_pump_relay(struct pconn *pc);
void proxy_relay_end(struct pconn *pc);
void proxy_upgrade(void *ctx, struct http_upgraded *u, int fd, const char *extra, size_t n);
void proxy_release(void *ctx);

#endif
