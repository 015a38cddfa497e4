/*
 * Unit tests for src/core/worker.c: every accepted job runs, once, before worker_pool_free()
 * returns; no more than max_threads run at once; a job past max_queue waiting is refused
 * (LY_ETHROTTLED) and one after the pool began ending too (LY_EUNAVAIL); threads are started
 * only as jobs need them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/worker.h"

#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int running, most, done, gate_open;

static void job(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    running++;
    if (running > most)
        most = running;
    while (!gate_open)
        pthread_cond_wait(&cv, &mu);
    running--;
    done++;
    pthread_mutex_unlock(&mu);
}

static void reset(int open)
{
    pthread_mutex_lock(&mu);
    running = most = done = 0;
    gate_open = open;
    pthread_mutex_unlock(&mu);
}

static void open_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_open = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int running_now(void)
{
    int n;

    pthread_mutex_lock(&mu);
    n = running;
    pthread_mutex_unlock(&mu);
    return n;
}

static void test_all_run_bounded(void **state)
{
    struct worker_pool *p = worker_pool_new("test", 4, 100);

    (void)state;
    reset(0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(worker_submit(p, job, NULL), 0);
    for (int i = 0; i < 200 && running_now() < 4; i++)
        usleep(5000);
    assert_int_equal(running_now(), 4);
    assert_int_equal(worker_pool_threads(p), 4);
    open_gate();
    worker_pool_free(p);
    assert_int_equal(done, 50);
    assert_true(most <= 4);
}

static void test_queue_full(void **state)
{
    struct worker_pool *p = worker_pool_new("test", 1, 2);
    int err = 0, accepted = 0;

    (void)state;
    reset(0);
    assert_int_equal(worker_submit(p, job, NULL), 0);
    accepted++;
    for (int i = 0; i < 200 && running_now() < 1; i++)
        usleep(5000);
    /* One runs; two may wait; the next is refused. */
    for (int i = 0; i < 3 && !err; i++) {
        err = worker_submit(p, job, NULL);
        if (!err)
            accepted++;
    }
    assert_int_equal(err, LY_ETHROTTLED);
    assert_int_equal(accepted, 3);
    open_gate();
    worker_pool_free(p);
    assert_int_equal(done, 3);
}

static struct worker_pool *ending;
static int late_err;

static void submits_while_ending(void *arg)
{
    (void)arg;
    while (!worker_stopping(ending))
        usleep(1000);
    late_err = worker_submit(ending, job, NULL);
}

static void test_refused_when_ending(void **state)
{
    (void)state;
    reset(1);
    ending = worker_pool_new("test", 2, 0);
    assert_int_equal(worker_submit(ending, submits_while_ending, NULL), 0);
    worker_pool_free(ending);
    assert_int_equal(late_err, LY_EUNAVAIL);
    assert_int_equal(done, 0);
}

static void test_threads_as_needed(void **state)
{
    struct worker_pool *p = worker_pool_new("test", 8, 8);

    (void)state;
    reset(1);
    assert_int_equal(worker_pool_threads(p), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(worker_submit(p, job, NULL), 0);
        for (int k = 0; k < 200; k++) {
            pthread_mutex_lock(&mu);
            int d = done;
            pthread_mutex_unlock(&mu);
            if (d == i + 1)
                break;
            usleep(2000);
        }
    }
    /* One job at a time, each done before the next: the first thread took them all. */
    assert_true(worker_pool_threads(p) <= 2);
    worker_pool_free(p);
    assert_int_equal(done, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_run_bounded),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_refused_when_ending),
        cmocka_unit_test(test_threads_as_needed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
