/*
 * Handlers that may block (a route with R_BLOCKING: the Compose file's check runs the
 * docker-compose CLI, about a second) run on a worker pool, not on the HTTP loop that took
 * the request, so that the other connections of that loop go on.
 *
 * The request is answered through the server's deferred status (http/req.h's req_stream with
 * status()): the loop suspends the connection; the job runs the handler and the dispatcher's
 * tail (api_dispatch_finish) on a worker, which fills the request's answer as it would on the
 * loop, then wakes the connection; status(), on the loop again, takes the deferral away and
 * gives the handler's status, so that the answer is sent as any other (JSON, raw, its
 * headers). While the job runs, only it touches the request (the loop only asks status());
 * a client that leaves meanwhile is released after the job ended (release() waits for it).
 */
#include "api/api.h"

#include "core/err.h"
#include "core/log.h"
#include "core/worker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEFER_THREADS 8
#define DEFER_QUEUE   256

struct deferred {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    struct req *req;
    int started;            /* the job was queued (the loop's, in status()) */
    int done;               /* the job ran the handler and the tail */
    struct stream_waker *w; /* the connection's waker, while it waits (mu) */
};

static struct worker_pool *pool;

int api_defer_start(void)
{
    pool = worker_pool_new("blocking handlers", DEFER_THREADS, DEFER_QUEUE);
    return 0;
}

void api_defer_stop(void)
{
    worker_pool_free(pool);
    pool = NULL;
}

static void job(void *arg)
{
    struct deferred *d = arg;
    struct req *req = d->req;

    api_dispatch_finish(req, req->match.route->handler(req));
    pthread_mutex_lock(&d->mu);
    d->done = 1;
    if (d->w)
        stream_wake(d->w);
    pthread_cond_broadcast(&d->done_cv);
    pthread_mutex_unlock(&d->mu);
}

static void wait_done(struct deferred *d)
{
    pthread_mutex_lock(&d->mu);
    while (!d->done)
        pthread_cond_wait(&d->done_cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
}

static void release(void *ctx)
{
    struct deferred *d = ctx;

    if (d->started)
        wait_done(d); /* the job may still use the request */
    pthread_cond_destroy(&d->done_cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* Only when the server stops while the job runs: it is answered with its 503 and no body. */
static long read_none(void *ctx, char *buf, size_t max, struct stream_waker *w)
{
    (void)ctx, (void)buf, (void)max, (void)w;
    return -1;
}

static int status(void *ctx, struct stream_waker *w, struct req *req)
{
    struct deferred *d = ctx;
    int done;

    if (!d->started) {
        /* Queued only now, once the server has looked at the request for the last time
         * before it suspends the connection: from here the job alone touches it. */
        d->started = 1;
        if (worker_submit(pool, job, d) != 0) {
            log_warn("request %s: every worker for blocking handlers is busy: it runs on its "
                     "loop",
                     req->request_id);
            job(d);
        }
    }
    pthread_mutex_lock(&d->mu);
    done = d->done;
    d->w = done ? NULL : w;
    pthread_mutex_unlock(&d->mu);
    if (!done)
        return 0;
    /* The handler's own answer is sent: the deferral goes away first. */
    memset(&req->stream, 0, sizeof(req->stream));
    release(d);
    return req->status ? req->status : 200;
}

int api_defer(struct req *req)
{
    struct deferred *d;

    if (!pool)
        return 0;
    d = calloc(1, sizeof(*d));
    if (!d)
        return 0;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->done_cv, NULL);
    d->req = req;
    req->status = 200;
    req->stream = (struct req_stream){read_none, release, d, status, NULL};
    return 1;
}
