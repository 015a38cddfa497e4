/*
 * Worker pools (see worker.h). A pool is a mutex, a FIFO of jobs (a singly linked list with
 * a tail), a condition its idle threads wait on and the array of its threads. A job is
 * queued under the mutex; an idle thread is signalled, or a new thread started when none is
 * idle and fewer than max_threads run. Ending sets stopping, wakes every thread and joins
 * them: a thread leaves only when the queue is empty and the pool is stopping, so every job
 * that was accepted runs.
 */
#include "core/worker.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
    void (*fn)(void *arg);
    void *arg;
    struct job *next;
};

struct worker_pool {
    pthread_mutex_t mu;
    pthread_cond_t more;
    pthread_cond_t nap; /* worker_sleep()'s, on CLOCK_MONOTONIC */
    int woken;          /* worker_wake() since the last sleep ended */
    char name[32];
    unsigned max_threads, max_queue;
    unsigned nthreads, idle, queued;
    int stopping;
    pthread_t *threads;
    struct job *head, **tail;
};

static void *worker_main(void *arg)
{
    struct worker_pool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct job *j;

        while (!p->head && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->more, &p->mu);
            p->idle--;
        }
        j = p->head;
        if (!j)
            break; /* stopping, and nothing left */
        p->head = j->next;
        if (!p->head)
            p->tail = &p->head;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct worker_pool *worker_pool_new(const char *name, unsigned max_threads, unsigned max_queue)
{
    struct worker_pool *p = xcalloc(1, sizeof(*p));

    pthread_condattr_t ca;

    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->more, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->nap, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->max_threads = max_threads ? max_threads : 1;
    p->max_queue = max_queue;
    p->threads = xcalloc(p->max_threads, sizeof(*p->threads));
    p->tail = &p->head;
    return p;
}

int worker_submit(struct worker_pool *p, void (*fn)(void *arg), void *arg)
{
    struct job *j;
    int err = 0, started = 0;

    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        err = LY_EUNAVAIL;
        goto out;
    }
    /* A job waits only for the threads that are busy: with an idle one per job queued, or room
     * for a new thread, it is taken at once; otherwise it counts against max_queue. */
    if (p->queued >= p->idle && p->nthreads < p->max_threads) {
        if (pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) == 0) {
            p->nthreads++;
            started = 1;
        } else if (!p->nthreads) {
            log_error("%s: cannot start a thread", p->name);
            err = LY_EUNAVAIL;
            goto out;
        }
    }
    if (!started && p->queued + 1 > p->idle + p->max_queue) {
        err = LY_ETHROTTLED;
        goto out;
    }
    j = xmalloc(sizeof(*j));
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    *p->tail = j;
    p->tail = &j->next;
    p->queued++;
    pthread_cond_signal(&p->more);
out:
    pthread_mutex_unlock(&p->mu);
    return err;
}

int worker_stopping(struct worker_pool *p)
{
    int s;

    pthread_mutex_lock(&p->mu);
    s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

unsigned worker_pool_threads(struct worker_pool *p)
{
    unsigned n;

    pthread_mutex_lock(&p->mu);
    n = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int worker_sleep(struct worker_pool *p, int64_t us)
{
    struct timespec at;
    int stopping;

    clock_gettime(CLOCK_MONOTONIC, &at);
    at.tv_sec += (time_t)(us / 1000000);
    at.tv_nsec += (long)(us % 1000000) * 1000;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->stopping && !p->woken && pthread_cond_timedwait(&p->nap, &p->mu, &at) != ETIMEDOUT)
        ;
    p->woken = 0;
    stopping = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return stopping;
}

void worker_wake(struct worker_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->woken = 1;
    pthread_cond_broadcast(&p->nap);
    pthread_mutex_unlock(&p->mu);
}

void worker_pool_free(struct worker_pool *p)
{
    unsigned n;

    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->more);
    pthread_cond_broadcast(&p->nap);
    n = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->more);
    pthread_cond_destroy(&p->nap);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
