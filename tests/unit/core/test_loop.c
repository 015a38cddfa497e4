/*
 * Unit tests for src/core/loop.c: a source runs when its descriptor is ready and when its
 * timer passes; a wake from another thread starts a turn; a source removed by another in the
 * same turn is not run (nor used after it is freed: ASan); the turn hook runs after the
 * sources; loop_stop() from a source ends loop_run().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/loop.h"
#include "core/util.h"

#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct counter {
    struct loop *lp;
    int fd;
    int runs;
    int stop_at;
    struct loop_src *victim; /* removed by this source when it runs */
    int order[8], norder, *seq;
    int id;
};

static void drain(int fd)
{
    uint64_t v;

    if (read(fd, &v, sizeof(v)) < 0)
        v = 0;
}

static void counted(void *arg)
{
    struct counter *c = arg;

    if (c->fd >= 0)
        drain(c->fd);
    c->runs++;
    if (c->seq)
        c->seq[c->seq[0]++ + 1] = c->id;
    if (c->victim) {
        loop_del(c->victim);
        c->victim = NULL;
    }
    if (c->stop_at && c->runs >= c->stop_at)
        loop_stop(c->lp);
}

static void poke(int fd)
{
    uint64_t one = 1;

    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void test_fd_ready(void **state)
{
    struct loop *lp = loop_new();
    struct counter c = {.lp = lp, .stop_at = 1};

    (void)state;
    assert_non_null(lp);
    c.fd = eventfd(0, EFD_NONBLOCK);
    assert_non_null(loop_add(lp, c.fd, 0, counted, NULL, &c));
    poke(c.fd);
    assert_null(loop_self());
    loop_run(lp);
    assert_int_equal(c.runs, 1);
    assert_null(loop_self());
    loop_free(lp);
    close(c.fd);
}

static int64_t deadline;

static int until_deadline(void *arg)
{
    int64_t now = now_mono_us();

    (void)arg;
    return deadline <= now ? 0 : (int)((deadline - now + 999) / 1000);
}

static void test_timer(void **state)
{
    struct loop *lp = loop_new();
    struct counter c = {.lp = lp, .stop_at = 1};
    int64_t t0 = now_mono_us();

    (void)state;
    c.fd = eventfd(0, EFD_NONBLOCK); /* never ready */
    deadline = t0 + 30000;
    assert_non_null(loop_add(lp, c.fd, 0, counted, until_deadline, &c));
    loop_run(lp);
    assert_int_equal(c.runs, 1);
    assert_true(now_mono_us() - t0 >= 30000);
    loop_free(lp);
    close(c.fd);
}

struct hook {
    struct loop *lp;
    int turns;
    int stop;
};

static void turned(void *arg)
{
    struct hook *h = arg;

    h->turns++;
    if (__atomic_load_n(&h->stop, __ATOMIC_SEQ_CST))
        loop_stop(h->lp);
}

static void *waker(void *arg)
{
    struct hook *h = arg;

    usleep(20000);
    __atomic_store_n(&h->stop, 1, __ATOMIC_SEQ_CST);
    loop_wake(h->lp);
    return NULL;
}

static void test_wake_from_another_thread(void **state)
{
    struct loop *lp = loop_new();
    struct hook h = {.lp = lp};
    pthread_t t;

    (void)state;
    loop_set_turn(lp, turned, NULL, &h); /* no timer: only the wake ends the wait */
    assert_int_equal(pthread_create(&t, NULL, waker, &h), 0);
    loop_run(lp);
    pthread_join(t, NULL);
    assert_true(h.turns >= 1);
    loop_free(lp);
}

static void test_removed_in_the_same_turn(void **state)
{
    struct loop *lp = loop_new();
    int seq[9] = {0};
    struct counter a = {.lp = lp, .id = 1, .seq = seq, .stop_at = 1};
    struct counter b = {.lp = lp, .id = 2, .seq = seq, .stop_at = 1};
    struct loop_src *sa, *sb;

    (void)state;
    a.fd = eventfd(0, EFD_NONBLOCK);
    b.fd = eventfd(0, EFD_NONBLOCK);
    sa = loop_add(lp, a.fd, 0, counted, NULL, &a);
    sb = loop_add(lp, b.fd, 0, counted, NULL, &b);
    assert_non_null(sa);
    assert_non_null(sb);
    /* Both are ready in one turn; whichever runs first removes the other. */
    a.victim = sb;
    b.victim = sa;
    poke(a.fd);
    poke(b.fd);
    loop_run(lp);
    assert_int_equal(seq[0], 1);
    assert_int_equal(a.runs + b.runs, 1);
    loop_free(lp);
    close(a.fd);
    close(b.fd);
}

static void test_hook_after_sources(void **state)
{
    struct loop *lp = loop_new();
    struct hook h = {.lp = lp, .stop = 1};
    struct counter c = {.lp = lp};
    int seen_before_hook;

    (void)state;
    c.fd = eventfd(0, EFD_NONBLOCK);
    assert_non_null(loop_add(lp, c.fd, 0, counted, NULL, &c));
    loop_set_turn(lp, turned, NULL, &h);
    poke(c.fd);
    loop_run(lp);
    seen_before_hook = c.runs;
    assert_int_equal(seen_before_hook, 1);
    assert_int_equal(h.turns, 1);
    loop_free(lp);
    close(c.fd);
}

static void test_del_outside_a_turn(void **state)
{
    struct loop *lp = loop_new();
    struct counter c = {.lp = lp};
    struct loop_src *s;

    (void)state;
    c.fd = eventfd(0, EFD_NONBLOCK);
    s = loop_add(lp, c.fd, 0, counted, NULL, &c);
    assert_non_null(s);
    loop_del(s); /* freed at once (ASan: no leak, no use after) */
    loop_free(lp);
    close(c.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_ready),
        cmocka_unit_test(test_timer),
        cmocka_unit_test(test_wake_from_another_thread),
        cmocka_unit_test(test_removed_in_the_same_turn),
        cmocka_unit_test(test_hook_after_sources),
        cmocka_unit_test(test_del_outside_a_turn),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
