/*
 * Unit tests of the scheduler (src/runs/): the real queue, slots, GPU map, timeouts, control,
 * finishing and recovery, against a real store in a temporary directory, with fake executors
 * registered as backends (exec_register) in place of processes, containers and Slurm. The
 * executor is the boundary faked here: each fake records what the scheduler asks of it and
 * reports through the events the scheduler passed in (l->ev), from a thread of its own as a
 * real executor does.
 *
 * Backends: "fake" runs every kind on this machine's GPUs (as local does); "fakeq" queues its
 * jobs itself and they outlive lyceumd (as Slurm does); "local" and "slurm" are replaced by
 * an idle one so that nothing of the host is touched. Before runs_init the store holds runs a
 * "previous process" left: one that fakeq still has (adopted), one that fake had (ended as
 * system_failure), one that never began (back to the queue).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "billing/billing.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"
#include "runs/control.h"
#include "runs/output.h"
#include "runs/runs.h"
#include "runs/sched.h"
#include "runs/submit.h"
#include "secrets/secrets.h"
#include "storage/bucket.h"
#include "store/db.h"
#include "store/runs.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ORG  "org-sched"
#define USER "user-sched"

/* ---- the fake executors ---- */

struct fake_run {
    char id[40], gpus[64], backend[16];
    struct live *l; /* NULL once released */
    int sigs[8], nsig;
    int exit_req, exit_code; /* the test (or a signal) asked it to end with exit_code */
    int exited;              /* live_exited was called */
    int running_req;         /* the test asked it to report running */
    int adopted;
    char ref[40];
    int64_t logged_out, logged_err;
};

static pthread_mutex_t fmu = PTHREAD_MUTEX_INITIALIZER;
static struct fake_run fruns[64];
static int nfruns, fake_stop;
static pthread_t fake_thread;
static int64_t adopt_pid_seen; /* the pid fake's adopt() was told of */

static struct fake_run *fake_find(const char *id)
{
    for (int i = 0; i < nfruns; i++)
        if (strcmp(fruns[i].id, id) == 0)
            return &fruns[i];
    return NULL;
}

static struct fake_run *fake_add(struct live *l)
{
    struct fake_run *f;

    pthread_mutex_lock(&fmu);
    if (nfruns == 64)
        abort(); /* more runs than the tests start */
    f = &fruns[nfruns++];
    memset(f, 0, sizeof(*f));
    snprintf(f->id, sizeof(f->id), "%s", l->id);
    snprintf(f->gpus, sizeof(f->gpus), "%s", l->gpus);
    snprintf(f->backend, sizeof(f->backend), "%s", l->ops->name);
    f->l = l;
    l->exec_priv = f;
    pthread_mutex_unlock(&fmu);
    return f;
}

static int fake_start(struct live *l)
{
    fake_add(l);
    return 0;
}

/* Called with the scheduler's lock held: it must not report here (exited takes that lock),
 * so the fake's thread reports the end, as a real executor's I/O thread would. */
static void fake_signal(struct live *l, int sig)
{
    struct fake_run *f = l->exec_priv;

    pthread_mutex_lock(&fmu);
    if (f->nsig < 8)
        f->sigs[f->nsig++] = sig;
    if (!f->exit_req) {
        f->exit_req = 1;
        f->exit_code = sig == SIGTERM ? 0 : 137; /* a graceful program ends at SIGTERM */
    }
    pthread_mutex_unlock(&fmu);
}

static void fake_release(struct live *l)
{
    struct fake_run *f = l->exec_priv;

    pthread_mutex_lock(&fmu);
    f->l = NULL;
    pthread_mutex_unlock(&fmu);
    l->exec_priv = NULL;
}

/* fake (a local-like backend) cannot follow a run across a restart. */
static int fake_adopt(struct live *l, const struct exec_prior *prior)
{
    (void)l;
    assert_null(prior->ref);
    if (prior->pid)
        adopt_pid_seen = prior->pid;
    return LY_ENOTFOUND;
}

/* fakeq follows its jobs by their reference. */
static int fakeq_adopt(struct live *l, const struct exec_prior *prior)
{
    struct fake_run *f;

    if (!prior->ref)
        return LY_ENOTFOUND;
    f = fake_add(l);
    pthread_mutex_lock(&fmu);
    f->adopted = 1;
    snprintf(f->ref, sizeof(f->ref), "%s", prior->ref);
    f->logged_out = prior->logged[OUT_STDOUT];
    f->logged_err = prior->logged[OUT_STDERR];
    pthread_mutex_unlock(&fmu);
    return 0;
}

static void fake_capacity(struct exec_capacity *cap)
{
    cap->kinds = 1 << RUN_PYTHON | 1 << RUN_IMAGE | 1 << RUN_COMPOSE;
    cap->local_gpus = 1;
}

static void fakeq_capacity(struct exec_capacity *cap)
{
    cap->kinds = 1 << RUN_PYTHON;
    cap->outlives = 1;
}

static void idle_capacity(struct exec_capacity *cap)
{
    cap->kinds = 1 << RUN_PYTHON;
    cap->local_gpus = 1;
}

static int idle_start(struct live *l)
{
    snprintf(l->errbuf, sizeof(l->errbuf), "the idle backend runs nothing");
    return LY_EUNAVAIL;
}

static const struct exec_ops fake_ops = {.name = "fake",
                                         .start = fake_start,
                                         .signal = fake_signal,
                                         .release = fake_release,
                                         .adopt = fake_adopt,
                                         .capacity = fake_capacity};
static const struct exec_ops fakeq_ops = {.name = "fakeq",
                                          .start = fake_start,
                                          .signal = fake_signal,
                                          .release = fake_release,
                                          .adopt = fakeq_adopt,
                                          .capacity = fakeq_capacity};
static const struct exec_ops idle_local = {.name = "local",
                                           .start = idle_start,
                                           .signal = fake_signal,
                                           .release = fake_release,
                                           .capacity = idle_capacity};
static const struct exec_ops idle_slurm = {.name = "slurm",
                                           .start = idle_start,
                                           .signal = fake_signal,
                                           .release = fake_release,
                                           .capacity = fakeq_capacity};

/* Reports what the test or a signal asked for, outside fmu (the events take the scheduler's
 * lock, which is held when fake_signal takes fmu). */
static void *fake_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct live *run[64], *end[64];
        int code[64], nrun = 0, nend = 0;

        pthread_mutex_lock(&fmu);
        if (fake_stop) {
            pthread_mutex_unlock(&fmu);
            return NULL;
        }
        for (int i = 0; i < nfruns; i++) {
            struct fake_run *f = &fruns[i];

            if (!f->l || f->exited)
                continue;
            if (f->running_req == 1) {
                f->running_req = 2;
                run[nrun++] = f->l;
            }
            if (f->exit_req) {
                f->exited = 1;
                code[nend] = f->exit_code;
                end[nend++] = f->l;
            }
        }
        pthread_mutex_unlock(&fmu);
        for (int i = 0; i < nrun; i++)
            live_running(run[i]);
        for (int i = 0; i < nend; i++)
            live_exited(end[i], code[i], NULL);
        usleep(2000);
    }
}

/* ---- helpers ---- */

static char dir[] = "/tmp/lyceumd-unit-sched-XXXXXX";
static struct config cfg;
static int runs_up;

static int wait_until(int (*pred)(const void *), const void *arg, int ms)
{
    for (int t = 0; t < ms; t += 5) {
        if (pred(arg))
            return 1;
        usleep(5000);
    }
    return pred(arg);
}

/* The run's column as text ("" when NULL), or its integer as text (the columns read here:
 * status, reason, errors, backend, gpus, return_code). */
static void run_col(const char *id, const char *col, char *out, size_t n)
{
    struct arena a;
    struct run_row row;
    const char *v = NULL;

    out[0] = '\0';
    arena_init(&a);
    if (db_runs_get_any(&a, id, &row) != 0) {
        arena_release(&a);
        return;
    }
    if (strcmp(col, "return_code") == 0) {
        if (row.has_return_code)
            snprintf(out, n, "%lld", (long long)row.return_code);
    } else {
        if (strcmp(col, "status") == 0)
            v = row.status;
        else if (strcmp(col, "reason") == 0)
            v = row.reason;
        else if (strcmp(col, "errors") == 0)
            v = row.errors;
        else if (strcmp(col, "backend") == 0)
            v = row.backend;
        else if (strcmp(col, "gpus") == 0)
            v = row.gpus;
        else
            snprintf(out, n, "?%s", col); /* a column run_col does not read: no match */
        if (v)
            snprintf(out, n, "%s", v);
    }
    arena_release(&a);
}

struct want {
    const char *id, *status;
};

static int has_status(const void *arg)
{
    const struct want *w = arg;
    char st[32];

    run_col(w->id, "status", st, sizeof(st));
    return strcmp(st, w->status) == 0;
}

static void expect_status(const char *id, const char *status)
{
    struct want w = {id, status};
    char st[32];

    if (!wait_until(has_status, &w, 5000)) {
        run_col(id, "status", st, sizeof(st));
        fail_msg("run %s: status %s, wanted %s", id, st, status);
    }
}

static int is_started(const void *arg)
{
    int ok;

    pthread_mutex_lock(&fmu);
    ok = fake_find(arg) != NULL;
    pthread_mutex_unlock(&fmu);
    return ok;
}

static void expect_started(const char *id)
{
    if (!wait_until(is_started, id, 5000))
        fail_msg("run %s was not started", id);
}

/* Stays unstarted for a while (the scheduler had every chance to start it). */
static void expect_waiting(const char *id)
{
    char st[32];

    usleep(150000);
    assert_false(is_started(id));
    run_col(id, "status", st, sizeof(st));
    assert_string_equal(st, "pending");
}

static void fake_exit(const char *id, int code)
{
    struct fake_run *f;

    pthread_mutex_lock(&fmu);
    f = fake_find(id);
    if (f) {
        f->exit_req = 1;
        f->exit_code = code;
    }
    pthread_mutex_unlock(&fmu);
    assert_non_null(f);
}

static void fake_running(const char *id)
{
    struct fake_run *f;

    pthread_mutex_lock(&fmu);
    f = fake_find(id);
    if (f)
        f->running_req = 1;
    pthread_mutex_unlock(&fmu);
    assert_non_null(f);
}

static void fake_gpus(const char *id, char *out, size_t n)
{
    struct fake_run *f;

    pthread_mutex_lock(&fmu);
    f = fake_find(id);
    snprintf(out, n, "%s", f ? f->gpus : "(not started)");
    pthread_mutex_unlock(&fmu);
}

static int fake_sig(const char *id, int k)
{
    int s;

    pthread_mutex_lock(&fmu);
    s = fake_find(id) && k < fake_find(id)->nsig ? fake_find(id)->sigs[k] : 0;
    pthread_mutex_unlock(&fmu);
    return s;
}

static void submit(const char *profile, int priority, int timeout_s, char id[40])
{
    struct run_submit s = {0};

    s.org_id = ORG;
    s.user_id = USER;
    s.kind = RUN_PYTHON;
    s.profile = profile;
    s.spec = json_pack("{s:s}", "code", "print(1)");
    s.timeout_s = timeout_s;
    s.graceful_s = 1;
    s.priority = priority;
    assert_int_equal(runs_submit(&s, 0), 0);
    json_decref(s.spec);
    runs_kick();
    memcpy(id, s.id, 40);
}

static int running_of(const char *profile)
{
    struct arena a;
    struct run_capacity *cap;
    int n, running = 0;

    arena_init(&a);
    n = runs_capacity(&a, &cap);
    for (int i = 0; i < n; i++)
        if (strcmp(cap[i].profile, profile) == 0)
            running = cap[i].running;
    arena_release(&a);
    return running;
}

/* A run a previous process left (before runs_init). */
static void left_run(const char *id, const char *profile, const char *status, const char *backend,
                     const char *ref, int64_t pid)
{
    int64_t now = now_us();

    assert_int_equal(q_exec("INSERT INTO runs (id, org_id, user_id, kind, profile, status, spec, "
                            "timeout_s, graceful_s, stream_token, created_at, started_at, "
                            "running_at, backend, backend_ref, pid, pid_start) VALUES "
                            "(?, ?, ?, 1, ?, ?, '{}', 600, 1, 'x', ?, ?, ?, ?, ?, ?, 1)",
                            "sssssiiissi", id, ORG, USER, profile, status, now - 2000000,
                            now - 1000000, strcmp(status, "running") == 0 ? now - 1000000 : 0,
                            backend, ref, pid),
                     1);
    if (strcmp(status, "running") != 0)
        assert_true(q_exec("UPDATE runs SET running_at = NULL WHERE id = ?", "s", id) >= 0);
}

static const char *machine_types =
    "[{\"hardware_profile\": \"cpu\", \"price_per_hour\": \"0.10\", \"backend\": \"fake\","
    "  \"max_concurrent\": 2},"
    " {\"hardware_profile\": \"cpu.one\", \"price_per_hour\": \"0.10\", \"backend\": \"fake\","
    "  \"max_concurrent\": 1},"
    " {\"hardware_profile\": \"cpu.ctl\", \"price_per_hour\": \"0.10\", \"backend\": \"fake\","
    "  \"max_concurrent\": 8},"
    " {\"hardware_profile\": \"cpu.r\", \"price_per_hour\": \"0.10\", \"backend\": \"fake\","
    "  \"max_concurrent\": 8},"
    " {\"hardware_profile\": \"gpu.t\", \"price_per_hour\": \"1\", \"backend\": \"fake\","
    "  \"gpu_count\": 2, \"gpu_indices\": [0, 1, 2, 3]},"
    " {\"hardware_profile\": \"gpu.q\", \"price_per_hour\": \"1\", \"backend\": \"fakeq\","
    "  \"gpu_count\": 1, \"max_concurrent\": 3}]";

static int setup(void **state)
{
    char path[256], runs_dir[200];
    struct output *o;

    (void)state;
    log_set_level(LOG_ERROR);
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/lyceumd.db", dir);
    if (store_open(path) || secrets_init(dir) || bucket_init(dir, 0) || billing_init(dir, 0, 10))
        return -1;
    if (q_exec("INSERT INTO orgs (id, slug, name, created_at) VALUES (?, ?, ?, ?)", "sssi", ORG,
               ORG, ORG, now_us()) != 1 ||
        q_exec("INSERT INTO ledger (org_id, kind, amount, created_at) VALUES (?, 'grant', ?, ?)",
               "sii", ORG, (int64_t)100000000, now_us()) != 1)
        return -1;

    exec_register(&idle_local);
    exec_register(&idle_slurm);
    exec_register(&fake_ops);
    exec_register(&fakeq_ops);
    if (pthread_create(&fake_thread, NULL, fake_main, NULL))
        return -1;

    /* What a previous process left: fakeq's job with output of it logged already, a run of
     * fake's whose process group was 4242, a run that never began. */
    left_run("r-adopt", "gpu.q", "running", "fakeq", "job-7", 0);
    left_run("r-ended", "cpu.r", "running", "fake", NULL, 4242);
    left_run("r-requeue", "cpu.r", "starting", "fake", NULL, 0);
    snprintf(runs_dir, sizeof(runs_dir), "%s/runs", dir);
    mkdir(runs_dir, 0700);
    for (int i = 0; i < 3; i++) {
        static const char *const left[] = {"r-adopt", "r-ended", "r-requeue"};

        snprintf(path, sizeof(path), "%s/%s", runs_dir, left[i]);
        mkdir(path, 0700);
    }
    output_init(runs_dir);
    o = output_get("r-adopt");
    output_open_writer(o);
    output_append(o, OUT_STDOUT, "hello\n", 6);
    output_append(o, OUT_STDERR, "oops\n", 5);
    output_append(o, OUT_SYSTEM, "[lyceumd] note\n", 15);
    output_put(o);

    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    cfg.machine_types = json_loads(machine_types, 0, NULL);
    if (!cfg.machine_types || runs_init(&cfg))
        return -1;
    runs_up = 1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[200];

    (void)state;
    if (runs_up)
        runs_shutdown();
    pthread_mutex_lock(&fmu);
    fake_stop = 1;
    pthread_mutex_unlock(&fmu);
    pthread_join(fake_thread, NULL);
    json_decref(cfg.machine_types);
    store_close();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the tests ---- */

/* The runs a previous process left: fakeq follows its job again by its reference, from the
 * bytes its log holds; fake's run ends as system_failure ("restart") once fake had its say
 * about the pid; the one that never began is queued and started again. */
static void test_restart(void **state)
{
    struct fake_run got;
    char v[64];

    (void)state;
    expect_started("r-adopt");
    /* Copied out under the lock, checked outside it (a failed check does not return). */
    pthread_mutex_lock(&fmu);
    got = *fake_find("r-adopt");
    pthread_mutex_unlock(&fmu);
    assert_true(got.adopted);
    assert_string_equal(got.ref, "job-7");
    assert_int_equal(got.logged_out, 6);
    assert_int_equal(got.logged_err, 5);
    run_col("r-adopt", "status", v, sizeof(v));
    assert_string_equal(v, "running");

    assert_int_equal(adopt_pid_seen, 4242);
    expect_status("r-ended", "system_failure");
    run_col("r-ended", "reason", v, sizeof(v));
    assert_string_equal(v, "restart");
    assert_null(fake_find("r-ended"));

    expect_started("r-requeue");
    fake_exit("r-requeue", 0);
    expect_status("r-requeue", "completed");

    fake_exit("r-adopt", 3);
    expect_status("r-adopt", "failed");
    run_col("r-adopt", "return_code", v, sizeof(v));
    assert_string_equal(v, "3");
}

/* max_concurrent bounds the runs going at once; an exit lets the next one in. */
static void test_capacity(void **state)
{
    char a[40], b[40], c[40], v[32];

    (void)state;
    submit("cpu", 0, 600, a);
    submit("cpu", 0, 600, b);
    submit("cpu", 0, 600, c);
    expect_started(a);
    expect_started(b);
    expect_waiting(c);
    assert_int_equal(running_of("cpu"), 2);
    assert_false(runs_profile_free("cpu"));
    run_col(a, "backend", v, sizeof(v));
    assert_string_equal(v, "fake");

    fake_exit(a, 0);
    expect_status(a, "completed");
    expect_started(c);
    fake_exit(b, 1);
    fake_exit(c, 0);
    expect_status(b, "failed");
    expect_status(c, "completed");
    assert_int_equal(running_of("cpu"), 0);
    assert_true(runs_profile_free("cpu"));
}

/* A freed slot goes to the highest priority waiting, then to the oldest. */
static void test_priorities(void **state)
{
    char busy[40], low1[40], low2[40], high[40];

    (void)state;
    submit("cpu.one", 0, 600, busy);
    expect_started(busy);
    submit("cpu.one", 0, 600, low1);
    usleep(2000);
    submit("cpu.one", 0, 600, low2);
    submit("cpu.one", 5, 600, high);
    expect_waiting(high);

    fake_exit(busy, 0);
    expect_started(high);
    assert_false(is_started(low1));
    assert_false(is_started(low2));
    fake_exit(high, 0);
    expect_started(low1);
    assert_false(is_started(low2));
    fake_exit(low1, 0);
    expect_started(low2);
    fake_exit(low2, 0);
    expect_status(low2, "completed");
}

/* A GPU profile's runs hold disjoint GPUs; a slot taken outside the queue (an inference
 * replica) holds GPUs as a run does; GPUs freed by an exit go to the next run. */
static void test_gpu_slots(void **state)
{
    char a[40], b[40], c[40], ga[64], gb[64], gc[64], slot[64];

    (void)state;
    submit("gpu.t", 0, 600, a);
    expect_started(a);
    fake_gpus(a, ga, sizeof(ga));
    assert_string_equal(ga, "0,1");
    run_col(a, "gpus", gb, sizeof(gb));
    assert_string_equal(gb, "0,1");

    assert_int_equal(runs_slot_take("gpu.t", slot), 0);
    assert_string_equal(slot, "2,3");
    assert_int_equal(runs_slot_take("gpu.t", slot), LY_EUNAVAIL);
    assert_int_equal(runs_slot_take("gpu.nope", slot), LY_ENOTFOUND);
    submit("gpu.t", 0, 600, b);
    expect_waiting(b);

    runs_slot_release("gpu.t", "2,3");
    expect_started(b);
    fake_gpus(b, gb, sizeof(gb));
    assert_string_equal(gb, "2,3");

    submit("gpu.t", 0, 600, c);
    expect_waiting(c);
    fake_exit(a, 0);
    expect_started(c);
    fake_gpus(c, gc, sizeof(gc));
    assert_string_equal(gc, "0,1");
    fake_exit(b, 0);
    fake_exit(c, 0);
    expect_status(c, "completed");
    expect_status(b, "completed");
    assert_int_equal(running_of("gpu.t"), 0);
}

/* A backend that places GPUs itself (fakeq) gets none from this machine, bounded only by
 * max_concurrent; its jobs' reference and queued state are recorded from its events. */
static void test_queueing_backend(void **state)
{
    char a[40], b[40], v[64];

    (void)state;
    submit("gpu.q", 0, 600, a);
    submit("gpu.q", 0, 600, b);
    expect_started(a);
    expect_started(b);
    fake_gpus(a, v, sizeof(v));
    assert_string_equal(v, "");
    run_col(a, "backend", v, sizeof(v));
    assert_string_equal(v, "fakeq");
    fake_exit(a, 0);
    fake_exit(b, 0);
    expect_status(a, "completed");
    expect_status(b, "completed");
}

/* The timeout counts from the running event; the scheduler kills the run at it. */
static void test_timeout(void **state)
{
    char a[40], v[200];

    (void)state;
    submit("cpu.ctl", 0, 1, a);
    expect_started(a);
    fake_running(a);
    expect_status(a, "running");
    expect_status(a, "failed");
    assert_int_equal(fake_sig(a, 0), SIGKILL);
    run_col(a, "reason", v, sizeof(v));
    assert_string_equal(v, "timeout");
    run_col(a, "errors", v, sizeof(v));
    assert_string_equal(v, "Execution timed out after 1 seconds");
}

/* Stop: SIGTERM, then completed ("stopped"); abort: SIGKILL, aborted; a pending run is
 * cancelled at once and never started; an ended run answers a conflict. */
static void test_control(void **state)
{
    char a[40], b[40], busy[40], pend[40], st[32], v[64];

    (void)state;
    submit("cpu.ctl", 0, 600, a);
    submit("cpu.ctl", 0, 600, b);
    expect_started(a);
    expect_started(b);
    assert_int_equal(runs_control(ORG, a, STOP_STOP, st, sizeof(st)), 0);
    assert_string_equal(st, "stopping");
    expect_status(a, "completed");
    assert_int_equal(fake_sig(a, 0), SIGTERM);
    run_col(a, "reason", v, sizeof(v));
    assert_string_equal(v, "stopped");

    assert_int_equal(runs_control(ORG, b, STOP_ABORT, st, sizeof(st)), 0);
    assert_string_equal(st, "cancelling");
    expect_status(b, "aborted");
    assert_int_equal(fake_sig(b, 0), SIGKILL);
    assert_int_equal(runs_control(ORG, b, STOP_ABORT, st, sizeof(st)), LY_ECONFLICT);
    assert_string_equal(st, "aborted");
    assert_int_equal(runs_control("org-other", b, STOP_ABORT, st, sizeof(st)), LY_ENOTFOUND);

    submit("cpu.one", 0, 600, busy);
    expect_started(busy);
    submit("cpu.one", 0, 600, pend);
    expect_waiting(pend);
    assert_int_equal(runs_control(ORG, pend, STOP_STOP, st, sizeof(st)), 0);
    assert_string_equal(st, "cancelled");
    expect_status(pend, "cancelled");
    assert_int_equal(runs_end_for(busy, "limit", "Over the limit"), 0);
    expect_status(busy, "aborted");
    run_col(busy, "reason", v, sizeof(v));
    assert_string_equal(v, "limit");
    usleep(100000);
    assert_false(is_started(pend));
}

/* At shutdown the runs of this machine are killed and end as system_failure ("shutdown"); a
 * job of a backend that outlives lyceumd is let go, unsignalled and still running. */
static void test_shutdown(void **state)
{
    char a[40], q[40], v[64];
    int released;

    (void)state;
    submit("cpu.ctl", 0, 600, a);
    submit("gpu.q", 0, 600, q);
    expect_started(a);
    expect_started(q);
    fake_running(q);
    expect_status(q, "running");
    runs_shutdown();
    runs_up = 0;
    run_col(a, "status", v, sizeof(v));
    assert_string_equal(v, "system_failure");
    run_col(a, "reason", v, sizeof(v));
    assert_string_equal(v, "shutdown");
    assert_int_equal(fake_sig(a, 0), SIGKILL);
    run_col(q, "status", v, sizeof(v));
    assert_string_equal(v, "running");
    assert_int_equal(fake_sig(q, 0), 0);
    pthread_mutex_lock(&fmu);
    released = fake_find(q)->l == NULL;
    pthread_mutex_unlock(&fmu);
    assert_true(released);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart),          cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_priorities),       cmocka_unit_test(test_gpu_slots),
        cmocka_unit_test(test_queueing_backend), cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_control),          cmocka_unit_test(test_shutdown),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
