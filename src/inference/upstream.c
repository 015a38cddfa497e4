/*
 * Upstream transfers (see inference.h): every request to a model server runs on one I/O
 * thread, one libcurl multi handle driven by epoll through curl's socket API.
 *
 * The thread that wants a transfer (a call's worker, a batch runner) hands its easy handle
 * over with upstream_perform() and sleeps until it ends; curl's callbacks (the caller's write
 * function) then run on the I/O thread. Streams of one model server answer their tokens in the
 * same decode step, so one epoll_wait() brings all of them: a token costs a recv() on this
 * thread and no wake-up of a thread of its own, and curl is told which socket is ready instead
 * of polling every one of them.
 *
 * The thread starts with the first transfer and ends in upstream_shutdown(), which ends the
 * transfers still running with CURLE_ABORTED_BY_CALLBACK; later ones fail the same way.
 */
#include "core/log.h"
#include "core/util.h"
#include "inference/inference.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
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
    struct xfer *anext, *aprev; /* in the I/O thread's active list */
};

static struct {
    pthread_mutex_t mu; /* queue, started, stop, and every xfer's done */
    struct xfer *queue; /* handed over, not yet added */
    int started, stop, failed;
    pthread_t thread;
    int ep, evfd;
    CURLM *m;
    struct xfer *active; /* added to m: the I/O thread's own */
    int64_t deadline;    /* curl's timer (monotonic us), or -1 */
} io = {.mu = PTHREAD_MUTEX_INITIALIZER, .ep = -1, .evfd = -1, .deadline = -1};

static int on_socket(CURL *h, curl_socket_t fd, int what, void *arg, void *sockp)
{
    struct epoll_event ev = {.data.fd = fd};

    (void)h;
    (void)arg;
    (void)sockp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(io.ep, EPOLL_CTL_DEL, fd, NULL); /* it may be closed already */
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (epoll_ctl(io.ep, EPOLL_CTL_MOD, fd, &ev) && errno == ENOENT &&
        epoll_ctl(io.ep, EPOLL_CTL_ADD, fd, &ev))
        log_error("upstream: cannot watch socket %d: %s", (int)fd, strerror(errno));
    return 0;
}

static int on_timer(CURLM *m, long ms, void *arg)
{
    (void)m;
    (void)arg;
    io.deadline = ms < 0 ? -1 : now_mono_us() + (int64_t)ms * 1000;
    return 0;
}

static void ended(struct xfer *x, CURLcode rc)
{
    if (x->aprev)
        x->aprev->anext = x->anext;
    else if (io.active == x)
        io.active = x->anext;
    if (x->anext)
        x->anext->aprev = x->aprev;
    pthread_mutex_lock(&io.mu);
    x->rc = rc;
    x->done = 1;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&io.mu);
}

/* The transfers curl finished. */
static void collect(void)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(io.m, &left))) {
        struct xfer *x = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = msg->data.result;

        curl_multi_remove_handle(io.m, msg->easy_handle); /* msg is gone after this */
        ended(x, rc);
    }
}

/* Adds what was handed over; 1 once the thread is to stop. */
static int take_queue(void)
{
    struct xfer *q;
    int stop;
    uint64_t v;

    if (read(io.evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_error("upstream: eventfd: %s", strerror(errno));
    pthread_mutex_lock(&io.mu);
    q = io.queue;
    io.queue = NULL;
    stop = io.stop;
    pthread_mutex_unlock(&io.mu);
    while (q) {
        struct xfer *next = q->next;

        curl_easy_setopt(q->h, CURLOPT_PRIVATE, (char *)q);
        if (stop || curl_multi_add_handle(io.m, q->h) != CURLM_OK) {
            ended(q, CURLE_ABORTED_BY_CALLBACK);
        } else {
            q->anext = io.active;
            q->aprev = NULL;
            if (io.active)
                io.active->aprev = q;
            io.active = q;
        }
        q = next;
    }
    return stop;
}

static void *io_main(void *arg)
{
    struct epoll_event evs[64];
    int running, stop = 0;

    (void)arg;
    while (!stop) {
        int64_t now = now_mono_us();
        int ms = io.deadline < 0      ? -1
                 : io.deadline <= now ? 0
                                      : (int)((io.deadline - now + 999) / 1000);
        int n = epoll_wait(io.ep, evs, 64, ms);

        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == io.evfd) {
                stop = take_queue();
                continue;
            }
            int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                        (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                        (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

            curl_multi_socket_action(io.m, evs[i].data.fd, flags, &running);
        }
        if (io.deadline >= 0 && io.deadline <= now_mono_us()) {
            io.deadline = -1;
            curl_multi_socket_action(io.m, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        collect();
    }
    /* Stopping: what is still running ends here. */
    while (io.active) {
        struct xfer *x = io.active;

        curl_multi_remove_handle(io.m, x->h);
        ended(x, CURLE_ABORTED_BY_CALLBACK);
    }
    return NULL;
}

/* With io.mu held. 0 once the thread runs. */
static int start_locked(void)
{
    struct epoll_event ev = {.events = EPOLLIN};

    if (io.started || io.failed)
        return io.started ? 0 : -1;
    io.ep = epoll_create1(EPOLL_CLOEXEC);
    io.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    io.m = curl_multi_init();
    ev.data.fd = io.evfd;
    if (io.ep < 0 || io.evfd < 0 || !io.m || epoll_ctl(io.ep, EPOLL_CTL_ADD, io.evfd, &ev))
        goto fail;
    curl_multi_setopt(io.m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(io.m, CURLMOPT_TIMERFUNCTION, on_timer);
    if (pthread_create(&io.thread, NULL, io_main, NULL))
        goto fail;
    io.started = 1;
    return 0;
fail:
    log_error("upstream: cannot start the I/O thread: %s", strerror(errno));
    io.failed = 1;
    return -1;
}

CURLcode upstream_perform(CURL *h)
{
    struct xfer x = {.h = h};
    uint64_t one = 1;

    pthread_mutex_lock(&io.mu);
    if (io.stop || start_locked()) {
        pthread_mutex_unlock(&io.mu);
        return CURLE_ABORTED_BY_CALLBACK;
    }
    pthread_cond_init(&x.cv, NULL);
    x.next = io.queue;
    io.queue = &x;
    pthread_mutex_unlock(&io.mu);
    if (write(io.evfd, &one, sizeof(one)) < 0)
        log_error("upstream: eventfd: %s", strerror(errno));
    pthread_mutex_lock(&io.mu);
    while (!x.done)
        pthread_cond_wait(&x.cv, &io.mu);
    pthread_mutex_unlock(&io.mu);
    pthread_cond_destroy(&x.cv);
    return x.rc;
}

void upstream_shutdown(void)
{
    uint64_t one = 1;
    int started;

    pthread_mutex_lock(&io.mu);
    io.stop = 1;
    started = io.started;
    pthread_mutex_unlock(&io.mu);
    if (!started)
        return;
    if (write(io.evfd, &one, sizeof(one)) < 0)
        log_error("upstream: eventfd: %s", strerror(errno));
    pthread_join(io.thread, NULL);
    /* Handed over after the thread's last look: they end here. */
    pthread_mutex_lock(&io.mu);
    for (struct xfer *q = io.queue, *next; q; q = next) {
        next = q->next;
        q->rc = CURLE_ABORTED_BY_CALLBACK;
        q->done = 1;
        pthread_cond_signal(&q->cv);
    }
    io.queue = NULL;
    io.started = 0;
    pthread_mutex_unlock(&io.mu);
    curl_multi_cleanup(io.m);
    io.m = NULL;
    close(io.ep);
    close(io.evfd);
    io.ep = io.evfd = -1;
}
