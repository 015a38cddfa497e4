/*
 * Background work (after redis' bio.c): every thread that is not an HTTP loop's runs through
 * a worker pool, started with worker_pool_new() and ended with worker_pool_free(), so that
 * stopping the server is one call per pool and never a hand-written stop sequence.
 *
 * A pool runs jobs fn(arg) on at most max_threads threads, started as jobs come (a job never
 * waits for a thread while fewer than max_threads run) and kept, idle, until the pool ends;
 * at most max_queue jobs wait for a thread (0: none: a job is refused when every thread is
 * busy). Jobs run in the order they were queued.
 *
 * A long-lived thread of a module (a supervisor, a sampler, a manager) is a pool of one
 * thread whose one job loops until worker_stopping() says the pool is ending: a job that
 * sleeps in worker_sleep() is woken by the end itself; one that waits on a condition of its
 * module's is woken by the module before it ends the pool; a thread per task
 * (a Docker run) is a pool with a bound on the tasks in flight.
 *
 * Thread-safety: worker_submit() and worker_stopping() from any thread (a job included);
 * worker_pool_free() once, from a thread that is not one of the pool's.
 */
#ifndef LYCEUMD_CORE_WORKER_H
#define LYCEUMD_CORE_WORKER_H

#include <stdint.h>

struct worker_pool;

/* A pool named name (copied: it names the pool in log lines). max_threads >= 1. */
struct worker_pool *worker_pool_new(const char *name, unsigned max_threads, unsigned max_queue);
/* Queues fn(arg). 0; LY_ETHROTTLED when max_queue jobs wait already; LY_EUNAVAIL once the
 * pool is ending, or when no thread runs and none can be started. fn is not called when it
 * fails. */
int worker_submit(struct worker_pool *p, void (*fn)(void *arg), void *arg);
/* 1 once worker_pool_free() began: a looping job should return. */
int worker_stopping(struct worker_pool *p);
/* A looping job's sleep: up to us microseconds, less when worker_wake(p) came or the pool
 * began to end (worker_pool_free wakes it). Returns 1 when the pool is ending, else 0. With
 * it a long-lived module's stop is worker_pool_free() alone. */
int worker_sleep(struct worker_pool *p, int64_t us);
/* Ends the current (or the next) worker_sleep() of p's jobs early. */
void worker_wake(struct worker_pool *p);
/* Ends p: refuses new jobs, lets the threads run the jobs already queued and the running
 * ones to their end, joins the threads and frees p. NULL is a no-op. */
void worker_pool_free(struct worker_pool *p);

/* The number of threads p has started (for tests and metrics). */
unsigned worker_pool_threads(struct worker_pool *p);

#endif
