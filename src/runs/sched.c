/*
 * The scheduler: one thread that gives pending runs their slots and watches the ones going.
 *
 * A run is pending in the store until its profile has a free slot (and, where the profile's
 * backend draws on this machine's GPUs, enough free GPUs); the scheduler then marks it
 * starting, creates its directory and hands it to the backend that runs its kind (the
 * registry, exec/exec.h). Executors report through the events (events.c); an exit is queued
 * there and recorded by this thread (finish.c). Timeouts, the grace period of a stop and the
 * credit meter are enforced here. Slots are also taken outside the queue (inference replicas:
 * runs_slot_take). The state and its lock: sched_int.h.
 */
#include "runs/sched.h"
#include "runs/sched_int.h"
#include "billing/billing.h"
#include "core/worker.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/fbuf.h"
#include "core/log.h"
#include "core/util.h"
#include "runs/control.h"
#include "runs/limits.h"
#include "runs/output.h"
#include "runs/profiles.h"
#include "secrets/envvars.h"
#include "store/db.h"
#include "store/runs.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

pthread_mutex_t sched_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t sched_cv;
struct live_sched *sched_lives, *sched_exits;
int sched_dirty = 1, sched_stopping, sched_shutting_down;
char runs_dir[900];
static int sched_gpu_busy[64];
static struct worker_pool *pool; /* its thread: a pool of one (core/worker.h) */

void sched_wake(void)
{
    pthread_mutex_lock(&sched_mu);
    sched_dirty = 1;
    pthread_cond_signal(&sched_cv);
    pthread_mutex_unlock(&sched_mu);
}

/* Called after the transaction that inserted runs committed. */
void runs_kick(void)
{
    sched_wake();
}

void live_sched_free(struct live_sched *ls)
{
    output_put(ls->out);
    json_decref(ls->l->spec);
    json_decref(ls->l->env);
    free(ls->error);
    free(ls->policy_reason);
    free(ls->policy_why);
    free(ls->l);
    free(ls);
}

void sched_leave(struct live_sched *ls)
{
    pthread_mutex_lock(&sched_mu);
    ls->prof->running--;
    for (int i = 0; i < ls->ngpu; i++)
        sched_gpu_busy[ls->gpu[i] & 63] = 0;
    for (struct live_sched **pp = &sched_lives; *pp; pp = &(*pp)->next)
        if (*pp == ls) {
            *pp = ls->next;
            break;
        }
    sched_dirty = 1;
    pthread_mutex_unlock(&sched_mu);
}

/* Takes gpu_count free GPUs of p into ls; 0 when there are not enough. Called with sched_mu. */
static int take_gpus(struct profile *p, struct live_sched *ls)
{
    int n = 0;

    for (int i = 0; i < p->ngpus && n < p->gpu_count; i++)
        if (!sched_gpu_busy[p->gpu_idx[i] & 63])
            ls->gpu[n++] = p->gpu_idx[i];
    if (n < p->gpu_count)
        return 0;
    for (int i = 0; i < n; i++)
        sched_gpu_busy[ls->gpu[i] & 63] = 1;
    ls->ngpu = n;
    return 1;
}

void sched_capacity(const struct profile *p, struct exec_capacity *cap)
{
    exec_capacity_of(exec_lookup(p->backend), cap);
}

/* Whether runs of p draw on this machine's GPUs (else its backend places GPUs itself). */
static int local_gpus(const struct profile *p)
{
    struct exec_capacity cap;

    sched_capacity(p, &cap);
    return cap.local_gpus;
}

static int can_take(struct profile *p)
{
    int free_gpus = 0;

    if (p->running >= p->max_concurrent)
        return 0;
    if (!local_gpus(p))
        return 1; /* the backend places GPUs itself */
    for (int i = 0; i < p->ngpus; i++)
        free_gpus += !sched_gpu_busy[p->gpu_idx[i] & 63];
    return free_gpus >= p->gpu_count;
}

int runs_profile_free(const char *name)
{
    struct profile *p = profile_find(name);
    int ok;

    if (!p)
        return 0;
    pthread_mutex_lock(&sched_mu);
    ok = can_take(p);
    pthread_mutex_unlock(&sched_mu);
    return ok;
}

int runs_slot_take(const char *name, char gpus[64])
{
    struct profile *p = profile_find(name);
    struct live_sched ls = {0};
    struct fbuf b;

    fbuf_init(&b, gpus, 64);
    if (!p)
        return LY_ENOTFOUND;
    pthread_mutex_lock(&sched_mu);
    if (!can_take(p) || (p->gpu_count && local_gpus(p) && !take_gpus(p, &ls))) {
        pthread_mutex_unlock(&sched_mu);
        return LY_EUNAVAIL;
    }
    p->running++;
    pthread_mutex_unlock(&sched_mu);
    for (int i = 0; i < ls.ngpu; i++)
        fbuf_printf(&b, "%s%d", i ? "," : "", ls.gpu[i]);
    return 0;
}

void runs_slot_release(const char *name, const char *gpus)
{
    struct profile *p = profile_find(name);

    if (!p)
        return;
    pthread_mutex_lock(&sched_mu);
    p->running--;
    for (const char *g = gpus; g && *g;) {
        char *end;
        long i = strtol(g, &end, 10);

        if (end == g)
            break;
        sched_gpu_busy[i & 63] = 0;
        g = *end == ',' ? end + 1 : end;
    }
    sched_dirty = 1; /* a queued run may fit now */
    pthread_cond_signal(&sched_cv);
    pthread_mutex_unlock(&sched_mu);
}

void live_fill(struct live *l, const struct run_row *row, struct profile *p)
{
    snprintf(l->id, sizeof(l->id), "%s", row->id);
    snprintf(l->org_id, sizeof(l->org_id), "%s", row->org_id);
    snprintf(l->user_id, sizeof(l->user_id), "%s", row->user_id);
    snprintf(l->bucket, sizeof(l->bucket), "%s", row->bucket ?: l->user_id);
    snprintf(l->profile, sizeof(l->profile), "%s", p->name);
    l->kind = row->kind;
    l->spec = row->spec ? json_loads(row->spec, 0, NULL) : NULL;
    if (!l->spec)
        l->spec = json_object();
    l->env = json_object();
    l->timeout_s = (int)row->timeout_s;
    l->graceful_s = (int)row->graceful_s;
    l->cpus = p->vcpus;
    l->mem_bytes = p->mem_bytes;
    l->pids_max = p->pids_max;
    snprintf(l->partition, sizeof(l->partition), "%s", p->partition);
    snprintf(l->gres, sizeof(l->gres), "%s", p->gres);
    l->ops = exec_for(p->backend, l->kind);
    l->ev = &sched_events;
    snprintf(l->dir, sizeof(l->dir), "%s/%s", runs_dir, l->id);
}

/* Starts run id on p; called without sched_mu, from the scheduler thread. */
static void start_run(struct profile *p, const char *id)
{
    struct live_sched *ls = xcalloc(1, sizeof(*ls));
    struct live *l = xcalloc(1, sizeof(*l));
    struct arena a;
    struct run_row row;
    int err, n;
    char gpus[64] = "";
    struct fbuf gb;
    const char *why;

    pthread_mutex_lock(&sched_mu);
    if (!can_take(p) || (p->gpu_count && local_gpus(p) && !take_gpus(p, ls))) {
        pthread_mutex_unlock(&sched_mu);
        free(ls);
        free(l);
        return;
    }
    p->running++;
    pthread_mutex_unlock(&sched_mu);

    ls->l = l;
    ls->prof = p;
    l->sched = ls;
    fbuf_init(&gb, gpus, sizeof(gpus));
    for (int i = 0; i < ls->ngpu; i++)
        fbuf_printf(&gb, "%s%d", i ? "," : "", ls->gpu[i]);
    snprintf(l->gpus, sizeof(l->gpus), "%s", gpus);

    arena_init(&a);
    err = db_runs_get_any(&a, id, &row);
    if (!err)
        live_fill(l, &row, p);
    arena_release(&a);
    if (err)
        goto undo;
    if (!l->ops) {
        log_error("run %s: no backend runs its kind on profile %s", id, p->name);
        goto undo;
    }
    envvars_for_run(l->org_id, l->user_id, l->env); /* the org's and user's, secrets opened */
    if (billing_admit(l->org_id, p->name, 1) == LY_EPAYMENT) {
        /* Its org ran out of credits while it waited. */
        struct output *o = output_get(id);

        if (db_runs_end_pending(l->org_id, id, "aborted",
                                "Insufficient credits: the organization cannot pay for this run",
                                "credits", now_us()) > 0) {
            output_end(o);
            finish_callbacks(id);
        }
        output_put(o);
        goto undo;
    }
    n = db_runs_mark_starting(id, now_us(), gpus[0] ? gpus : NULL, l->ops->name);
    if (n <= 0)
        goto undo; /* aborted meanwhile, or the store failed */
    if (mkdir(l->dir, 0700) != 0 && errno != EEXIST) {
        log_error("run %s: cannot create %s: %s", id, l->dir, strerror(errno));
    }
    ls->out = output_get(id);
    output_open_writer(ls->out);
    ls->install_deadline_us = now_mono_us() + (int64_t)INSTALL_LIMIT_S * 1000000;

    pthread_mutex_lock(&sched_mu);
    ls->next = sched_lives;
    sched_lives = ls;
    pthread_mutex_unlock(&sched_mu);
    limits_watch(l->id, l->bucket, l->dir);

    err = l->ops->start(l);
    if (err) {
        why = l->errbuf[0] ? l->errbuf : err_str(err);
        live_exited(l, -1, why);
        return;
    }
    /* An abort or stop that came while it was being started had nothing to signal yet. */
    pthread_mutex_lock(&sched_mu);
    if (!ls->exited && ls->stop_mode != STOP_NONE)
        l->ops->signal(l, ls->stop_mode == STOP_STOP ? SIGTERM : SIGKILL);
    pthread_mutex_unlock(&sched_mu);
    return;
undo:
    json_decref(l->spec);
    json_decref(l->env);
    pthread_mutex_lock(&sched_mu);
    p->running--;
    for (int i = 0; i < ls->ngpu; i++)
        sched_gpu_busy[ls->gpu[i] & 63] = 0;
    pthread_mutex_unlock(&sched_mu);
    free(l);
    free(ls);
}

static void schedule(void)
{
    for (int i = 0; i < profiles_count(); i++) {
        struct profile *p = profile_at(i);
        struct arena a;
        struct run_id *ids;
        int free_slots, n;

        pthread_mutex_lock(&sched_mu);
        free_slots = p->max_concurrent - p->running;
        pthread_mutex_unlock(&sched_mu);
        if (free_slots <= 0)
            continue;
        arena_init(&a);
        n = db_runs_next_pending(&a, p->name, free_slots, &ids);
        for (int k = 0; k < n; k++)
            start_run(p, ids[k].id);
        arena_release(&a);
    }
}

/* Enforces timeouts and stop grace periods; returns the next deadline (monotonic µs). */
static int64_t enforce(int64_t now)
{
    int64_t next = now + 1000000;

    for (struct live_sched *ls = sched_lives; ls; ls = ls->next) {
        if (ls->exited)
            continue;
        if (ls->deadline_us && now >= ls->deadline_us && ls->stop_mode != STOP_ABORT &&
            ls->stop_mode != STOP_TIMEOUT) {
            ls->stop_mode = STOP_TIMEOUT;
            ls->l->ops->signal(ls->l, SIGKILL);
        } else if (!ls->deadline_us && now >= ls->install_deadline_us &&
                   ls->stop_mode == STOP_NONE) {
            ls->stop_mode = STOP_TIMEOUT;
            ls->l->ops->signal(ls->l, SIGKILL);
        }
        if (ls->kill_at_us && now >= ls->kill_at_us) {
            ls->kill_at_us = 0;
            ls->l->ops->signal(ls->l, SIGKILL);
        }
        if (ls->deadline_us && ls->deadline_us > now && ls->deadline_us < next)
            next = ls->deadline_us;
        if (ls->kill_at_us && ls->kill_at_us < next)
            next = ls->kill_at_us;
    }
    return next;
}

/* Charges the running runs and stops those whose org ran out of credits; returns in how many
 * µs the next org will run out at the rate its runs use credits (INT64_MAX: none will). */
static int64_t meter(void)
{
    json_t *broke = json_array(), *id;
    int64_t now = now_us(), zero_at = INT64_MAX;
    size_t i;

    if (billing_meter_pass(now, broke, &zero_at) == 0) {
        pthread_mutex_lock(&sched_mu);
        json_array_foreach(broke, i, id)
        {
            for (struct live_sched *ls = sched_lives; ls; ls = ls->next)
                if (strcmp(ls->l->id, json_string_value(id)) == 0 && !ls->exited &&
                    ls->stop_mode != STOP_CREDITS && ls->stop_mode != STOP_ABORT) {
                    ls->stop_mode = STOP_CREDITS;
                    ls->l->ops->signal(ls->l, SIGKILL);
                }
        }
        pthread_mutex_unlock(&sched_mu);
    }
    json_decref(broke);
    return zero_at == INT64_MAX ? INT64_MAX : zero_at - now;
}

static void *sched_main(void *arg);

static void sched_main_job(void *arg)
{
    sched_main(arg);
}

static void *sched_main(void *arg)
{
    int64_t next_meter = 0;

    (void)arg;
    pthread_mutex_lock(&sched_mu);
    while (!sched_stopping) {
        struct live_sched *done = sched_exits;
        int64_t next;

        if (now_mono_us() >= next_meter) {
            int64_t zero_in;

            next_meter = now_mono_us() + 1000000;
            pthread_mutex_unlock(&sched_mu);
            zero_in = meter();
            pthread_mutex_lock(&sched_mu);
            /* The next pass comes when an org's balance reaches zero, if that is sooner. */
            if (zero_in < next_meter - now_mono_us())
                next_meter = now_mono_us() + zero_in;
            continue;
        }

        sched_exits = NULL;
        if (done) {
            pthread_mutex_unlock(&sched_mu);
            while (done) {
                struct live_sched *n = done->next_exit;

                finish_run(done);
                done = n;
            }
            pthread_mutex_lock(&sched_mu);
            continue;
        }
        if (sched_dirty) {
            sched_dirty = 0;
            pthread_mutex_unlock(&sched_mu);
            schedule();
            pthread_mutex_lock(&sched_mu);
            continue;
        }
        next = enforce(now_mono_us());
        if (next > next_meter)
            next = next_meter;
        if (!sched_exits && !sched_dirty && !sched_stopping) {
            struct timespec ts;
            int64_t wait_us = next - now_mono_us();

            if (wait_us < 1000)
                wait_us = 1000;
            deadline_in(&ts, CLOCK_MONOTONIC, wait_us);
            pthread_cond_timedwait(&sched_cv, &sched_mu, &ts);
        }
    }
    pthread_mutex_unlock(&sched_mu);
    store_close();
    return NULL;
}

int sched_start(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sched_cv, &ca);
    pthread_condattr_destroy(&ca);
    pool = worker_pool_new("scheduler", 1, 0);
    if (worker_submit(pool, sched_main_job, NULL) != 0) {
        worker_pool_free(pool);
        pool = NULL;
        return LY_EINTERNAL;
    }
    return 0;
}

void sched_stop(void)
{
    pthread_mutex_lock(&sched_mu);
    sched_stopping = 1;
    pthread_cond_signal(&sched_cv);
    pthread_mutex_unlock(&sched_mu);
    worker_pool_free(pool);
    pool = NULL;
}

int runs_capacity(struct arena *a, struct run_capacity **rows)
{
    struct run_pending_count *pending;
    int n = db_runs_pending_counts(a, &pending), count = profiles_count();

    *rows = arena_alloc(a, (size_t)(count ? count : 1) * sizeof(**rows));
    pthread_mutex_lock(&sched_mu);
    for (int i = 0; i < count; i++) {
        struct profile *p = profile_at(i);
        struct run_capacity *c = &(*rows)[i];

        c->profile = p->name;
        c->running = p->running;
        c->max_concurrent = p->max_concurrent;
        c->pending = 0;
        for (int k = 0; k < n; k++)
            if (strcmp(pending[k].profile, p->name) == 0)
                c->pending = pending[k].count;
    }
    pthread_mutex_unlock(&sched_mu);
    return count;
}
