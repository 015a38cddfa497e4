/*
 * Upstream transfers (see upstream.h): requests to model servers, made with libcurl's multi
 * interface driven by epoll through curl's socket API.
 *
 * A call's transfer runs on the thread of the request that started it, as a source of that
 * thread's event loop (core/loop.h; an HTTP thread's): a token from the model server is
 * received, handed to the suspended response and sent by one thread in one turn of its loop,
 * with no other thread woken for it. Transfers started off a loop (the batch runner's) run on
 * one I/O thread of their own, which runs a loop of its own. Each of these places is a struct
 * uloop: an epoll set of curl's sockets, a curl multi handle, and a queue of transfers handed
 * over to it.
 *
 * The thread that wants a transfer (a call's worker, a batch runner) hands its easy handle
 * over with upstream_perform() and sleeps until it ends; curl's callbacks (the caller's write
 * function) then run on the uloop's thread. Connections to a replica are kept and reused
 * within a uloop.
 *
 * upstream_shutdown(), after the HTTP server stopped, ends the transfers still running with
 * CURLE_ABORTED_BY_CALLBACK; later ones fail the same way.
 */
#include "core/arena.h"
#include "core/log.h"
#include "core/util.h"
#include "core/loop.h"
#include "core/worker.h"
#include "inference/upstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct xfer {
    CURL *h;
    CURLcode rc;
    int done;
    pthread_cond_t cv;
    struct xfer *next;          /* in the queue */
    struct xfer *anext, *aprev; /* in the uloop's active list */
};

struct uloop {
    int ep, evfd; /* curl's sockets and evfd (a transfer was handed over) */
    CURLM *m;
    struct xfer *queue;  /* handed over, not yet added (under mu) */
    struct xfer *active; /* added to m: the uloop thread's own */
    int64_t deadline;    /* curl's timer (monotonic us), or -1 */
    struct uloop *next;  /* in all */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* queues, all, stop, xfers' done */
static struct uloop *all;
static struct uloop *own; /* the I/O thread's */
static struct loop *own_loop;
static struct worker_pool *own_pool; /* the I/O thread */
static int stop, own_failed;
static _Thread_local struct uloop *here;

static int on_socket(CURL *h, curl_socket_t fd, int what, void *arg, void *sockp)
{
    struct uloop *u = arg;
    struct epoll_event ev = {.data.fd = fd};

    (void)h;
    (void)sockp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(u->ep, EPOLL_CTL_DEL, fd, NULL); /* it may be closed already */
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (epoll_ctl(u->ep, EPOLL_CTL_MOD, fd, &ev) && errno == ENOENT &&
        epoll_ctl(u->ep, EPOLL_CTL_ADD, fd, &ev))
        log_error("upstream: cannot watch socket %d: %s", (int)fd, strerror(errno));
    return 0;
}

static int on_timer(CURLM *m, long ms, void *arg)
{
    struct uloop *u = arg;

    (void)m;
    u->deadline = ms < 0 ? -1 : now_mono_us() + (int64_t)ms * 1000;
    return 0;
}

/* Milliseconds until curl's timer (-1: none). */
static int uloop_timeout(void *arg)
{
    struct uloop *u = arg;
    int64_t now = now_mono_us();

    if (u->deadline < 0)
        return -1;
    return u->deadline <= now ? 0 : (int)((u->deadline - now + 999) / 1000);
}

static void ended(struct uloop *u, struct xfer *x, CURLcode rc)
{
    if (x->aprev)
        x->aprev->anext = x->anext;
    else if (u->active == x)
        u->active = x->anext;
    if (x->anext)
        x->anext->aprev = x->aprev;
    pthread_mutex_lock(&mu);
    x->rc = rc;
    x->done = 1;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&mu); /* x may be gone from here on */
}

/* Adds what was handed over. */
static void take_queue(struct uloop *u)
{
    struct xfer *q;
    int stopping;
    uint64_t v;

    if (read(u->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_error("upstream: eventfd: %s", strerror(errno));
    pthread_mutex_lock(&mu);
    q = u->queue;
    u->queue = NULL;
    stopping = stop;
    pthread_mutex_unlock(&mu);
    while (q) {
        struct xfer *next = q->next;

        curl_easy_setopt(q->h, CURLOPT_PRIVATE, (char *)q);
        if (stopping || curl_multi_add_handle(u->m, q->h) != CURLM_OK) {
            ended(u, q, CURLE_ABORTED_BY_CALLBACK);
        } else {
            q->anext = u->active;
            q->aprev = NULL;
            if (u->active)
                u->active->aprev = q;
            u->active = q;
        }
        q = next;
    }
}

/* One turn: what is ready now, curl's timer when due, and the transfers that ended. */
static void uloop_run(void *arg)
{
    struct uloop *u = arg;
    struct epoll_event evs[64];
    int running, n = epoll_wait(u->ep, evs, 64, 0);
    CURLMsg *msg;
    int left;

    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == u->evfd) {
            take_queue(u);
            continue;
        }
        int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                    (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                    (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

        curl_multi_socket_action(u->m, evs[i].data.fd, flags, &running);
    }
    if (u->deadline >= 0 && u->deadline <= now_mono_us()) {
        u->deadline = -1;
        curl_multi_socket_action(u->m, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    while ((msg = curl_multi_info_read(u->m, &left))) {
        struct xfer *x = NULL;
        CURLcode rc = msg->data.result;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(u->m, msg->easy_handle); /* msg is gone after this */
        ended(u, x, rc);
    }
}

/* With mu held. NULL when it cannot be made. */
static struct uloop *uloop_new(void)
{
    struct uloop *u = xcalloc(1, sizeof(*u));
    struct epoll_event ev = {.events = EPOLLIN};

    u->deadline = -1;
    u->ep = epoll_create1(EPOLL_CLOEXEC);
    u->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    u->m = curl_multi_init();
    ev.data.fd = u->evfd;
    if (u->ep < 0 || u->evfd < 0 || !u->m || epoll_ctl(u->ep, EPOLL_CTL_ADD, u->evfd, &ev)) {
        log_error("upstream: cannot set up: %s", strerror(errno));
        if (u->ep >= 0)
            close(u->ep);
        if (u->evfd >= 0)
            close(u->evfd);
        if (u->m)
            curl_multi_cleanup(u->m);
        free(u);
        return NULL;
    }
    curl_multi_setopt(u->m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(u->m, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->m, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(u->m, CURLMOPT_TIMERDATA, u);
    u->next = all;
    all = u;
    return u;
}

static void own_main(void *arg)
{
    loop_run(arg);
}

struct uloop *upstream_here(void)
{
    struct loop *lp = loop_self();

    if (here || !lp)
        return here;
    pthread_mutex_lock(&mu);
    if (!stop) {
        struct uloop *u = uloop_new();

        if (u && loop_add(lp, u->ep, EPOLLIN, uloop_run, uloop_timeout, u))
            here = u;
    }
    pthread_mutex_unlock(&mu);
    return here; /* NULL: transfers go to the I/O thread */
}

/* With mu held: the I/O thread's loop, running own. */
static void own_start(void)
{
    own = uloop_new();
    if (own) {
        own_loop = loop_new();
        own_pool = worker_pool_new("upstream I/O", 1, 0);
        if (!own_loop || !loop_add(own_loop, own->ep, EPOLLIN, uloop_run, uloop_timeout, own) ||
            worker_submit(own_pool, own_main, own_loop)) {
            log_error("upstream: cannot start the I/O thread");
            worker_pool_free(own_pool);
            own_pool = NULL;
            loop_free(own_loop);
            own_loop = NULL;
            own = NULL; /* stays in all, freed at shutdown */
        }
    }
    own_failed = !own;
}

CURLcode upstream_perform(struct uloop *u, CURL *h)
{
    struct xfer x = {.h = h};
    uint64_t one = 1;

    pthread_mutex_lock(&mu);
    if (!u && !own && !own_failed && !stop)
        own_start();
    if (!u)
        u = own;
    if (stop || !u) {
        pthread_mutex_unlock(&mu);
        return CURLE_ABORTED_BY_CALLBACK;
    }
    pthread_cond_init(&x.cv, NULL);
    x.next = u->queue;
    u->queue = &x;
    pthread_mutex_unlock(&mu);
    if (write(u->evfd, &one, sizeof(one)) < 0)
        log_error("upstream: eventfd: %s", strerror(errno));
    pthread_mutex_lock(&mu);
    while (!x.done)
        pthread_cond_wait(&x.cv, &mu);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&x.cv);
    return x.rc;
}

void upstream_shutdown(void)
{
    struct uloop *u;

    pthread_mutex_lock(&mu);
    stop = 1;
    pthread_mutex_unlock(&mu);
    if (own) {
        loop_stop(own_loop);
        worker_pool_free(own_pool);
        own_pool = NULL;
        loop_free(own_loop);
        own_loop = NULL;
    }
    /* No loop runs any more (the HTTP threads ended before): what is left ends here. */
    while ((u = all)) {
        all = u->next;
        while (u->active) {
            curl_multi_remove_handle(u->m, u->active->h);
            ended(u, u->active, CURLE_ABORTED_BY_CALLBACK);
        }
        pthread_mutex_lock(&mu);
        for (struct xfer *q = u->queue, *next; q; q = next) {
            next = q->next;
            q->rc = CURLE_ABORTED_BY_CALLBACK;
            q->done = 1;
            pthread_cond_signal(&q->cv);
        }
        u->queue = NULL;
        pthread_mutex_unlock(&mu);
        curl_multi_cleanup(u->m);
        close(u->ep);
        close(u->evfd);
        free(u);
    }
    own = NULL;
}
