/*
 * The event loop (see loop.h): one epoll set per loop, whose events point at struct loop_src
 * (the loop's own eventfd at the loop). A turn asks every source's timer before it waits,
 * marks the sources whose descriptor was ready, then runs the marked ones in the order they
 * were added (and, when the wait timed out with nothing ready, those whose timer has passed
 * now), then the turn hook.
 *
 * Sources removed during a turn are only marked dead there (an event of this turn may still
 * point at them) and freed at its end; outside a turn they are freed at once.
 */
#include "core/loop.h"
#include "core/arena.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct loop_src {
    struct loop *lp;
    int fd;
    void (*run)(void *arg);
    int (*timeout)(void *arg);
    void *arg;
    int queued, dead;
    struct loop_src *prev, *next;   /* in lp->all */
    struct loop_src *tprev, *tnext; /* in lp->timed, when it has a timer */
    struct loop_src *qnext;         /* in this turn's run queue, or in lp->dead */
};

struct loop {
    int ep, evfd;
    int stop;  /* atomic */
    int again; /* a wake from the loop's own thread: do not wait in the next turn */
    int in_turn;
    struct loop_src *all, *timed;
    struct loop_src *qhead, **qtail; /* this turn's run queue */
    struct loop_src *dead;           /* removed during this turn, freed at its end */
    void (*turn)(void *arg);
    int (*turn_timeout)(void *arg);
    void *turn_arg;
};

static _Thread_local struct loop *self;

struct loop *loop_new(void)
{
    struct loop *lp = xcalloc(1, sizeof(*lp));
    struct epoll_event ev = {.events = EPOLLIN};

    lp->ep = epoll_create1(EPOLL_CLOEXEC);
    lp->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ev.data.ptr = lp;
    if (lp->ep < 0 || lp->evfd < 0 || epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->evfd, &ev)) {
        int e = errno;

        if (lp->ep >= 0)
            close(lp->ep);
        if (lp->evfd >= 0)
            close(lp->evfd);
        free(lp);
        errno = e;
        return NULL;
    }
    return lp;
}

void loop_free(struct loop *lp)
{
    if (!lp)
        return;
    for (struct loop_src *s = lp->all, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    close(lp->ep);
    close(lp->evfd);
    free(lp);
}

struct loop *loop_self(void)
{
    return self;
}

void loop_wake(struct loop *lp)
{
    uint64_t one = 1;

    if (lp == self)
        lp->again = 1;
    else if (write(lp->evfd, &one, sizeof(one)) < 0)
        log_error("cannot wake an event loop: %s", strerror(errno));
}

void loop_stop(struct loop *lp)
{
    uint64_t one = 1;

    __atomic_store_n(&lp->stop, 1, __ATOMIC_RELAXED);
    if (lp != self && write(lp->evfd, &one, sizeof(one)) < 0)
        log_error("cannot wake an event loop: %s", strerror(errno));
}

struct loop_src *loop_add(struct loop *lp, int fd, uint32_t events, void (*run)(void *arg),
                          int (*timeout)(void *arg), void *arg)
{
    struct loop_src *s = xcalloc(1, sizeof(*s));
    struct epoll_event ev = {.events = events ? events : EPOLLIN, .data.ptr = s};

    s->lp = lp;
    s->fd = fd;
    s->run = run;
    s->timeout = timeout;
    s->arg = arg;
    if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, fd, &ev)) {
        int e = errno;

        free(s);
        errno = e;
        return NULL;
    }
    s->next = lp->all;
    if (lp->all)
        lp->all->prev = s;
    lp->all = s;
    if (timeout) {
        s->tnext = lp->timed;
        if (lp->timed)
            lp->timed->tprev = s;
        lp->timed = s;
    }
    return s;
}

void loop_del(struct loop_src *s)
{
    struct loop *lp;

    if (!s)
        return;
    lp = s->lp;
    epoll_ctl(lp->ep, EPOLL_CTL_DEL, s->fd, NULL);
    if (s->prev)
        s->prev->next = s->next;
    else
        lp->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->timeout) {
        if (s->tprev)
            s->tprev->tnext = s->tnext;
        else
            lp->timed = s->tnext;
        if (s->tnext)
            s->tnext->tprev = s->tprev;
    }
    if (!lp->in_turn) {
        free(s);
        return;
    }
    /* This turn's events or run queue may still point at it. */
    s->dead = 1;
    if (!s->queued) {
        s->queued = 1;
        s->qnext = lp->dead;
        lp->dead = s;
    }
}

void loop_set_turn(struct loop *lp, void (*turn)(void *arg), int (*timeout)(void *arg), void *arg)
{
    lp->turn = turn;
    lp->turn_timeout = timeout;
    lp->turn_arg = arg;
}

static void enqueue(struct loop *lp, struct loop_src *s)
{
    if (s->queued)
        return;
    s->queued = 1;
    s->qnext = NULL;
    *lp->qtail = s;
    lp->qtail = &s->qnext;
}

static void turn(struct loop *lp)
{
    struct epoll_event evs[16];
    int ms = lp->turn_timeout ? lp->turn_timeout(lp->turn_arg) : -1, n;
    uint64_t v;

    lp->in_turn = 1;
    lp->qhead = NULL;
    lp->qtail = &lp->qhead;
    for (struct loop_src *s = lp->timed; s; s = s->tnext) {
        int t = s->timeout(s->arg);

        if (t == 0)
            enqueue(lp, s);
        if (t >= 0 && (ms < 0 || t < ms))
            ms = t;
    }
    if (lp->again)
        ms = 0;
    n = epoll_wait(lp->ep, evs, 16, ms);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == lp) {
            if (read(lp->evfd, &v, sizeof(v)) < 0)
                v = 0;
        } else {
            enqueue(lp, evs[i].data.ptr);
        }
    }
    if (n == 0)
        for (struct loop_src *s = lp->timed; s; s = s->tnext)
            if (s->timeout(s->arg) == 0)
                enqueue(lp, s);
    /* The sources first: what they do (a token for a suspended response) the hook sends. A
     * source removed by one that ran before it is dead: it stays queued, and is skipped. */
    for (struct loop_src *s = lp->qhead, *next; s; s = next) {
        next = s->qnext;
        if (s->dead) {
            s->qnext = lp->dead;
            lp->dead = s;
            continue;
        }
        s->queued = 0;
        if (s->run)
            s->run(s->arg);
    }
    lp->again = 0; /* wakes so far are seen by the hook below */
    if (lp->turn)
        lp->turn(lp->turn_arg);
    lp->in_turn = 0;
    while (lp->dead) {
        struct loop_src *s = lp->dead;

        lp->dead = s->qnext;
        free(s);
    }
}

void loop_run(struct loop *lp)
{
    self = lp;
    while (!__atomic_load_n(&lp->stop, __ATOMIC_RELAXED))
        turn(lp);
    self = NULL;
}
