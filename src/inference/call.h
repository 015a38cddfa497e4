/*
 * Calls to a deployment's replicas (call.c): one upstream request each, run in a worker of
 * a bounded pool (core/worker.h), whose output is kept and read by any number of readers.
 *
 * A reader learns that what it waits for has come through its call_waker: a small interface
 * of the reader's own (api/ implements it on top of an HTTP response: it resumes the
 * response). Nothing here knows HTTP.
 *
 * Thread-safety: every function may be called from any thread; one reader is used by one
 * thread at a time.
 */
#ifndef LYCEUMD_INFERENCE_CALL_H
#define LYCEUMD_INFERENCE_CALL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The kinds of output a call produces. */
enum call_mode {
    CALL_RAW,    /* the upstream body as it comes (OpenAI routes, stream or not) */
    CALL_EVENTS, /* SSE events queued, token..., finished/failed (streaming inference) */
};

struct call;
/* Starts a call of path ("/v1/chat/completions") on deployment dep_id with body (taken) in a
 * worker. Returns the call with one reference for the caller. */
struct call *call_start(const char *org_id, const char *dep_id, const char *path, json_t *body,
                        int stream, enum call_mode mode);
/* References: call_get() takes one more, call_put() drops one (the last frees the call). */
void call_get(struct call *c);
void call_put(struct call *c);
/* The call's id (a UUID, fixed at its start) and its org's. */
const char *call_id(const struct call *c);
const char *call_org(const struct call *c);
/* 1 when the call ended before mono (now_mono_us() time). */
int call_ended_before(struct call *c, int64_t mono);

/* How a reader is told that more output (or the status) is ready: wake(arg), once per
 * "nothing yet" answer, from whichever thread produced it, with the call's lock held (so it
 * must not call into the call). No wake comes after call_reader_free(). */
struct call_waker {
    void (*wake)(void *arg);
    void *arg;
};

struct call_reader;
/* A reader of c's output from its beginning (takes a reference on c). */
struct call_reader *call_reader_new(struct call *c);
/* Copies up to max bytes of output into buf: their number, 0 when nothing is ready yet (w is
 * then woken once there is), or -1 at the end. */
long call_read(struct call_reader *r, char *buf, size_t max, struct call_waker w);
/* 1 when the call answers one body whose HTTP status is the model server's (a plain call,
 * not streamed): a response must wait for call_status() before it is sent. */
int call_has_status(const struct call_reader *r);
/* The HTTP status of a plain call's answer, or 0 while unknown (w is then woken once it is
 * known). 503 (no ready replica) is the one that wants a Retry-After. */
int call_status(struct call_reader *r, struct call_waker w);
/* Ends a reader. When the last reader of a raw call leaves, the call is cancelled (the
 * model server stops generating). */
void call_reader_free(struct call_reader *r);

/* One blocking request (the batch runner's workers): the HTTP status and the body (the
 * caller frees it), or a negative LY_E* code with why set. */
int inference_call_sync(const char *org_id, const char *dep_id, const char *path, json_t *body,
                        long *status, char **resp, char *why, size_t n);

/* Ends the call workers, after upstream_shutdown() (their transfers end aborted); a call
 * started later fails at once. */
void call_shutdown(void);

#endif
