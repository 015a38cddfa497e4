/*
 * One HTTP request while it is being answered, independent of the HTTP library: the server
 * (server.c) fills the request side, the dispatcher resolves the route and the caller once,
 * and a handler reads params, query and body and sets the response.
 *
 * Ownership: everything hangs off req->arena or is released by req_release(). A handler
 * returns 0 after req_reply*(), or a negative LY_E* code (usually through req_fail()), and
 * never writes an error body itself: the dispatcher turns the code into the status and body.
 */
#ifndef LYCEUMD_HTTP_REQ_H
#define LYCEUMD_HTTP_REQ_H

#include "core/arena.h"
#include "http/router.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Who is calling (auth/caller.h): opaque here, set by the dispatcher. */
struct caller;

/* Response headers a handler may add (a proxied answer brings the headers of the server behind). */
#define REQ_MAX_HEADERS 64

/* Wakes a streamed response that said "nothing yet" (server.c). Thread-safe; a wake before
 * the server suspended the connection is not lost. */
struct stream_waker;
void stream_wake(void *waker);

/* A connection handed over after a 101 answer (http/server.c): see req_stream.upgrade. */
struct http_upgraded;
/* Gives the connection back to the server, which closes it. Once, on the connection's loop. */
void http_upgraded_close(struct http_upgraded *u);

/*
 * A response body produced piece by piece (SSE). read() writes up to max bytes into buf and
 * returns how many, or 0 when nothing is ready yet (it has then arranged for stream_wake(w)
 * to be called once there is), or -1 at the end, or -2 when the body cannot be completed (the
 * connection is then closed, so that the client sees it cut short rather than complete).
 * release() is called once, when the connection is done, and after it no wake may come.
 * Called from the server's threads.
 */
struct req_stream {
    long (*read)(void *ctx, char *buf, size_t max, struct stream_waker *w);
    void (*release)(void *ctx);
    void *ctx;
    /* Optional: for a response whose HTTP status the stream learns (a proxied call). Returns
     * the status, or 0 when it is not known yet (having arranged for stream_wake(w)); the
     * response waits, unsent, until it is. It may add headers to req when it returns one. */
    int (*status)(void *ctx, struct stream_waker *w, struct req *req);
    /* Optional, with status: when status() answers 101, the server sends the 101 (with req's
     * headers; content_type "" sends none) and then hands the client's socket over: fd (not to
     * be closed: http_upgraded_close(u) gives it back), and extra, n bytes the client sent past
     * the request that the server had read already. Called on the connection's loop; release()
     * still comes, before or after. */
    void (*upgrade)(void *ctx, struct http_upgraded *u, int fd, const char *extra, size_t n);
};

/*
 * A request body taken as it arrives, for routes with R_STREAM_BODY (uploads): the handler,
 * called first with req->phase REQ_BEGIN once the headers are in, sets one up; write() then
 * gets every piece in order and returns 0 or a negative LY_E* code (the rest of the body is
 * then read and dropped, and the code is in req->sink_err); the handler is called again with
 * REQ_END to answer. release() is called once, when the request is done, whatever happened.
 */
struct req_sink {
    int (*write)(void *ctx, const char *buf, size_t n);
    void (*release)(void *ctx);
    void *ctx;
};

enum req_phase { REQ_WHOLE = 0, REQ_BEGIN, REQ_END };

struct req {
    struct arena arena;
    const char *method;
    const char *path;
    const char *target; /* the request target as sent: path and query, not decoded (or NULL) */
    struct route_match match;
    const char *body;
    size_t body_len;
    json_t *json; /* the parsed body of a route with body fields; owned */
    char request_id[72];
    struct caller *caller; /* NULL until the dispatcher sets it, before any handler */
    int64_t start_us;

    /* How the server answers header and query look-ups. */
    void *conn;
    const char *(*header_fn)(void *conn, const char *name);
    const char *(*query_fn)(void *conn, const char *name);
    /* Calls fn for every query parameter, decoded (value NULL when it has no '='). */
    void (*query_each_fn)(void *conn, void (*fn)(void *arg, const char *k, const char *v),
                          void *arg);
    /* Calls fn for every request header, in the order they came. */
    void (*header_each_fn)(void *conn, void (*fn)(void *arg, const char *k, const char *v),
                           void *arg);

    /* A streamed request body (R_STREAM_BODY): see struct req_sink. */
    enum req_phase phase;
    int begun; /* the REQ_BEGIN pass resolved the route and caller (begin_err: how it ended) */
    int begin_err;
    struct req_sink sink;
    int sink_err;

    /* The response. */
    int status;
    json_t *resp; /* owned */
    const char *raw;
    size_t raw_len;
    const char *content_type;
    const char *detail;
    json_t *verrs;            /* 422 validation errors; owned */
    struct req_stream stream; /* a streamed body when stream.read is set */
    /* A body read from a file: file_len bytes of file_fd from file_off (req_reply_file). */
    int file_set, file_fd;
    uint64_t file_off, file_len;
    int nheaders;
    const char *hname[REQ_MAX_HEADERS], *hvalue[REQ_MAX_HEADERS];
};

void req_init(struct req *req);
void req_release(struct req *req);

const char *req_param(struct req *req, const char *name);
const char *req_header(struct req *req, const char *name);
const char *req_query(struct req *req, const char *name);
/* Calls fn(arg, name, value) for every request header, in order (nothing without a server). */
void req_header_each(struct req *req, void (*fn)(void *arg, const char *k, const char *v),
                     void *arg);

/* Reads integer query parameter name (default def, bounds inclusive); a bad value records a
 * 422 error and returns LY_EINVAL. */
int req_query_int(struct req *req, const char *name, long long def, long long min, long long max,
                  long long *out);

/* Sets a JSON (200) response, taking the reference. */
int req_reply(struct req *req, json_t *obj);
int req_reply_status(struct req *req, int status, json_t *obj);
/* A response body that is not JSON; body must live as long as the request. */
int req_reply_raw(struct req *req, int status, const char *ctype, const char *body, size_t n);
void req_add_header(struct req *req, const char *name, const char *value);
/* A streamed 200 response of content type ctype; the server takes s (and releases it). */
int req_reply_stream(struct req *req, const char *ctype, struct req_stream s);

/* A response of n bytes of fd from off; the server closes fd (also when it never sends it). */
int req_reply_file(struct req *req, int status, const char *ctype, int fd, uint64_t off,
                   uint64_t n);

/* Records an error detail and returns err, for "return req_fail(req, LY_ENOTFOUND, ...)". */
int req_fail(struct req *req, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds one FastAPI-shaped validation error: loc is [where, name] (name may be NULL). */
void req_invalid(struct req *req, const char *where, const char *name, const char *msg,
                 const char *type);
/* LY_EINVAL when validation errors were recorded, else 0. */
int req_check_valid(struct req *req);

/*
 * Parses the body as JSON and checks it against fields (types, required, bounds), recording
 * every problem as a 422 error like FastAPI. Returns 0 or LY_EINVAL.
 */
int req_parse_body(struct req *req, const struct field *fields);

/* Body accessors, valid after req_parse_body(): NULL / def when absent or null. */
const char *body_str(struct req *req, const char *name);
long long body_int(struct req *req, const char *name, long long def);
int body_bool(struct req *req, const char *name, int def);
int body_has(struct req *req, const char *name);

/* Fills the error response from err (the status table, detail or validation errors). */
void req_set_error(struct req *req, int err);

#endif
