/*
 * What executors report (exec.h's struct exec_events), from their own threads: the only way
 * an executor's news reaches a run. Output goes to the run's log; the rest is recorded in the
 * store here, so that only the runs machinery writes runs. An exit is queued for the scheduler
 * thread, which records it (finish.c).
 */
#include "runs/sched_int.h"
#include "core/arena.h"
#include "core/util.h"
#include "runs/output.h"
#include "store/runs.h"

#include <stdlib.h>

static void ev_output(struct live *l, int stream, const char *buf, size_t n)
{
    output_append(l->sched->out, stream, buf, n);
}

static void ev_running(struct live *l)
{
    int64_t now = now_us();

    db_runs_mark_running(l->id, now);
    pthread_mutex_lock(&sched_mu);
    l->sched->deadline_us = now_mono_us() + (int64_t)l->timeout_s * 1000000;
    pthread_mutex_unlock(&sched_mu);
}

static void ev_exited(struct live *l, int code, const char *error)
{
    struct live_sched *ls = l->sched;

    pthread_mutex_lock(&sched_mu);
    ls->exited = 1;
    ls->code = code;
    ls->error = error ? xstrdup(error) : NULL;
    ls->next_exit = sched_exits;
    sched_exits = ls;
    pthread_cond_signal(&sched_cv);
    pthread_mutex_unlock(&sched_mu);
}

static void ev_reference(struct live *l, const char *ref)
{
    db_runs_set_backend_ref(l->id, ref);
}

static void ev_queued(struct live *l)
{
    db_runs_mark_queued(l->id);
}

static void ev_waiting(struct live *l, const char *reason)
{
    db_runs_set_waiting_reason(l->id, reason);
}

static void ev_pid(struct live *l, int64_t pid, int64_t start)
{
    db_runs_set_pid(l->id, pid, start);
}

static void ev_install_rc(struct live *l, int rc)
{
    db_runs_set_install_rc(l->id, rc);
}

const struct exec_events sched_events = {
    .output = ev_output,
    .running = ev_running,
    .exited = ev_exited,
    .reference = ev_reference,
    .queued = ev_queued,
    .waiting = ev_waiting,
    .pid = ev_pid,
    .install_rc = ev_install_rc,
};
