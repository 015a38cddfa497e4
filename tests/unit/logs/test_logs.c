/*
 * Unit tests for src/logs: the line index that output.c keeps beside a run's output.log and
 * the queries over it (logs_tail, logs_tail_many): lines split across writes and records,
 * stdout and stderr interleaved, records cut at 64 KiB, the cap on long lines, the rebuild of
 * a missing index, newest-window limits and the time window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/util.h"
#include "exec/exec.h"
#include "logs/logs.h"
#include "runs/output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static struct output *new_run(const char *id)
{
    char dir[600];
    struct output *o;

    snprintf(dir, sizeof(dir), "%s/%s", root, id);
    mkdir(dir, 0700);
    o = output_get(id);
    assert_int_equal(output_open_writer(o), 0);
    return o;
}

static void end_run(struct output *o)
{
    output_end(o);
    output_put(o);
}

static void put(struct output *o, int stream, const char *s)
{
    output_append(o, stream, s, strlen(s));
}

/* The lines of the run as "E:text|" / "O:text|". */
static const char *lines_of(struct arena *a, const char *id, int limit, int64_t *total)
{
    struct log_tail t;
    char *out = arena_alloc(a, 1 << 20);
    size_t k = 0;

    assert_int_equal(logs_tail(a, id, 0, limit, &t), 0);
    for (size_t i = 0; i < t.n; i++)
        k += (size_t)snprintf(out + k, (1 << 20) - k, "%c:%.*s|",
                              t.lines[i].stream == OUT_STDERR ? 'E' : 'O', (int)t.lines[i].len,
                              t.lines[i].msg);
    out[k] = '\0';
    *total = t.total;
    return out;
}

static void test_partial_lines_and_streams(void **state)
{
    struct arena a;
    struct output *o = new_run("r1");
    int64_t total;

    (void)state;
    arena_init(&a);
    put(o, OUT_STDOUT, "ab");
    put(o, OUT_STDERR, "e1\ne");
    put(o, OUT_STDOUT, "c\n\nd");
    put(o, OUT_SYSTEM, "[lyceumd] not a line of the program\n");
    put(o, OUT_STDERR, "2\n");
    /* While the run goes, an unfinished line is not shown yet. */
    assert_string_equal(lines_of(&a, "r1", 100, &total), "E:e1|O:abc|O:|E:e2|");
    assert_int_equal(total, 4);
    put(o, OUT_STDOUT, "\x1b[31mred");
    end_run(o);
    assert_string_equal(lines_of(&a, "r1", 100, &total), "E:e1|O:abc|O:|E:e2|O:d\x1b[31mred|");
    assert_int_equal(total, 5);
    assert_string_equal(lines_of(&a, "r1", 2, &total), "E:e2|O:d\x1b[31mred|");
    assert_int_equal(total, 5);
    arena_release(&a);
}

static void test_long_lines_across_records(void **state)
{
    struct arena a;
    struct output *o = new_run("r2");
    size_t n = 200000; /* four records of stdout, stderr between them */
    char *big = malloc(n + 1);
    struct log_tail t;

    (void)state;
    arena_init(&a);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    put(o, OUT_STDOUT, "x");
    output_append(o, OUT_STDOUT, big, 70000);
    put(o, OUT_STDERR, "between\n");
    output_append(o, OUT_STDOUT, big + 70000, n - 70000);
    put(o, OUT_STDOUT, "\nshort\n");
    end_run(o);
    assert_int_equal(logs_tail(&a, "r2", 0, 10, &t), 0);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.lines[0].msg, "between");
    assert_int_equal(t.lines[1].len, LOGS_LINE_CAP); /* capped */
    assert_int_equal(t.lines[1].msg[0], 'x');
    assert_memory_equal(t.lines[1].msg + 1, big, LOGS_LINE_CAP - 1);
    assert_string_equal(t.lines[2].msg, "short");
    free(big);
    arena_release(&a);
}

static void test_many_lines_window_and_rebuild(void **state)
{
    struct arena a;
    struct output *o = new_run("r3");
    char buf[64], path[600];
    struct log_tail t;
    int64_t total;
    const char *before;

    (void)state;
    arena_init(&a);
    for (int i = 0; i < 50000; i++) {
        int k = snprintf(buf, sizeof(buf), "line %d\n", i);

        output_append(o, i % 1000 == 999 ? OUT_STDERR : OUT_STDOUT, buf, (size_t)k);
    }
    end_run(o);
    assert_int_equal(logs_tail(&a, "r3", 0, 3, &t), 0);
    assert_int_equal(t.total, 50000);
    assert_string_equal(t.lines[0].msg, "line 49997");
    assert_string_equal(t.lines[2].msg, "line 49999");
    assert_int_equal(t.lines[2].stream, OUT_STDERR);
    /* A window that starts after every line holds none. */
    assert_int_equal(logs_tail(&a, "r3", now_us() + 1000000, 3, &t), 0);
    assert_int_equal(t.total, 0);
    assert_int_equal(t.n, 0);
    /* Without its index, the same answer from output.log, and the index is back. */
    before = lines_of(&a, "r3", 1000, &total);
    snprintf(path, sizeof(path), "%s/r3/lines.idx", root);
    assert_int_equal(unlink(path), 0);
    assert_string_equal(lines_of(&a, "r3", 1000, &total), before);
    assert_int_equal(total, 50000);
    assert_int_equal(access(path, F_OK), 0);
    arena_release(&a);
}

static void test_many_runs_merged(void **state)
{
    struct arena a;
    struct output *x = new_run("m1"), *y = new_run("m2");
    const char *ids[] = {"m1", "m2", "none"};
    struct log_tail t;

    (void)state;
    arena_init(&a);
    put(x, OUT_STDOUT, "x1\n");
    usleep(2000);
    put(y, OUT_STDOUT, "y1\n");
    usleep(2000);
    put(x, OUT_STDOUT, "x2\n");
    end_run(x);
    end_run(y);
    assert_int_equal(logs_tail_many(&a, ids, 3, 0, 2, &t), 0);
    assert_int_equal(t.total, 3);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.lines[0].msg, "y1");
    assert_int_equal(t.lines[0].run, 1);
    assert_string_equal(t.lines[1].msg, "x2");
    assert_int_equal(t.lines[1].run, 0);
    arena_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_lines_and_streams),
        cmocka_unit_test(test_long_lines_across_records),
        cmocka_unit_test(test_many_lines_window_and_rebuild),
        cmocka_unit_test(test_many_runs_merged),
    };
    int rc;

    snprintf(root, sizeof(root), "/tmp/lyceumd-unit-logs-XXXXXX");
    assert_non_null(mkdtemp(root));
    output_init(root);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (!rc) {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        if (system(cmd) != 0)
            rc = 1;
    }
    return rc;
}
