/*
 * The scheduler: one thread that gives pending runs their slots and watches the ones going.
 *
 * A run is pending in the store until its profile has a free slot (and, for a GPU profile,
 * enough free GPUs); the scheduler then marks it starting, creates its directory and hands
 * it to its executor. Executors report output, start and exit through live_*() from their
 * own threads; an exit is queued here and recorded by this thread (status, output end,
 * callbacks, the slot freed). Timeouts and the grace period of a stop are enforced here.
 *
 * Locking: mu guards the list of live runs, the exit queue and the GPU map. Executors'
 * signal() is called with mu held, and live_exited() takes mu, so a run is never signalled
 * after its executor reported it gone. The store is never used with mu held.
 */
#include "runs/runs.h"
#include "secrets/envvars.h"
#include "core/err.h"
#include "core/arena.h"
#include "core/fbuf.h"
#include "core/log.h"
#include "core/util.h"
#include "billing/billing.h"
#include "exec/docker.h"
#include "exec/exec.h"
#include "runs/callbacks.h"
#include "runs/limits.h"
#include "runs/output.h"
#include "runs/profiles.h"
#include "store/db.h"
#include "store/runs.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct live_sched {
    struct live *l;
    struct profile *prof;
    int gpu[GPU_MAX], ngpu;
    struct output *out;
    int64_t deadline_us; /* timeout: 0 until the user's code runs */
    int64_t install_deadline_us;
    int64_t kill_at_us; /* a stop's grace period ends */
    int stop_mode;
    int exited, code;
    char *error;
    char *policy_reason, *policy_why; /* STOP_POLICY: why lyceumd ended it */
    struct live_sched *next, *next_exit;
};

const struct config *runs_cfg;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static pthread_t thread;
static int started, stopping, shutting_down, dirty = 1;
static struct live_sched *lives, *exits;
static int gpu_busy[64];
static char runs_dir[900];

#define INSTALL_LIMIT_S 900

int run_is_terminal(const char *s)
{
    return s && (strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
                 strcmp(s, "system_failure") == 0 || strcmp(s, "aborted") == 0 ||
                 strcmp(s, "cancelled") == 0);
}

void run_token_hash(const char *token, char out[65])
{
    sha256_hex(token, strlen(token), out);
}

static void wake(void)
{
    pthread_mutex_lock(&mu);
    dirty = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

/* ---- what executors call ---- */

void live_output(struct live *l, int stream, const char *buf, size_t n)
{
    output_append(l->sched->out, stream, buf, n);
}

void live_running(struct live *l)
{
    int64_t now = now_us();

    runs_mark_running(l->id, now);
    pthread_mutex_lock(&mu);
    l->sched->deadline_us = now_mono_us() + (int64_t)l->timeout_s * 1000000;
    pthread_mutex_unlock(&mu);
}

void live_exited(struct live *l, int code, const char *error)
{
    struct live_sched *ls = l->sched;

    pthread_mutex_lock(&mu);
    ls->exited = 1;
    ls->code = code;
    ls->error = error ? xstrdup(error) : NULL;
    ls->next_exit = exits;
    exits = ls;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

/* ---- recording results ---- */

/* Queues the completion callbacks of a run that just ended (16.3). */
static void queue_callbacks(const char *id)
{
    int err;
    json_t *row = runs_get_any(id, &err), *urls;
    size_t i;
    json_t *u;

    if (!row)
        return;
    urls = json_loads(json_string_value(json_object_get(row, "callback_urls")) ?: "null", 0, NULL);
    if (json_is_array(urls) && json_array_size(urls)) {
        json_t *body = callbacks_body(row);
        char *text = json_dumps(body, JSON_COMPACT);

        json_array_foreach(urls, i, u)
            callback_add(id, json_string_value(json_object_get(row, "org_id")),
                         json_string_value(u), text, now_us());
        free(text);
        json_decref(body);
        callbacks_wake();
    }
    json_decref(urls);
    json_decref(row);
}

/* Writes a line of lyceumd's own into a run's log (shown to followers as output). */
static void system_line(struct output *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void system_line(struct output *o, const char *fmt, ...)
{
    char buf[600];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    output_append(o, OUT_SYSTEM, buf, (size_t)n);
}

static void finalize(struct live_sched *ls)
{
    struct live *l = ls->l;
    const char *status, *reason = NULL;
    char errors[700] = "";
    int64_t now = now_us();
    int rc = ls->code;

    limits_unwatch(l->id);
    if (ls->error) {
        status = "system_failure";
        snprintf(errors, sizeof(errors), "%s", ls->error);
    } else if (shutting_down && ls->stop_mode == STOP_NONE) {
        status = "system_failure";
        reason = "shutdown";
        snprintf(errors, sizeof(errors), "lyceumd was shut down while this run was going");
    } else if (ls->stop_mode == STOP_CREDITS) {
        status = "aborted";
        reason = "credits";
        snprintf(errors, sizeof(errors),
                 "Insufficient credits: the organization's balance reached zero");
    } else if (ls->stop_mode == STOP_POLICY) {
        status = "aborted";
        reason = ls->policy_reason;
        snprintf(errors, sizeof(errors), "%s", ls->policy_why);
    } else if (ls->stop_mode == STOP_ABORT) {
        status = "aborted";
        reason = "aborted";
        snprintf(errors, sizeof(errors), "Aborted by the user");
    } else if (ls->stop_mode == STOP_TIMEOUT || l->timed_out) {
        status = "failed";
        reason = "timeout";
        snprintf(errors, sizeof(errors), "Execution timed out after %d seconds", l->timeout_s);
    } else if (ls->stop_mode == STOP_STOP) {
        status = "completed";
        reason = "stopped";
    } else if (rc == 0) {
        status = "completed";
    } else {
        status = "failed";
        if (l->note[0])
            snprintf(errors, sizeof(errors), "%s", l->note);
        else
            snprintf(errors, sizeof(errors), "Process exited with code %d", rc);
    }
    if (errors[0] && strcmp(status, "failed") != 0)
        system_line(ls->out, "[lyceumd] %s", errors);
    else if (reason && strcmp(reason, "timeout") == 0)
        system_line(ls->out, "[lyceumd] %s", errors);
    /* The last charge and the result in one transaction: neither without the other. */
    if (store_begin() == 0) {
        int err = billing_charge_final(l->id, now, 1);

        if (!err && runs_finish(l->id, status, ls->error ? NULL : &rc, errors[0] ? errors : NULL,
                                reason, now, now) < 0)
            err = LY_EDB;
        if (err)
            store_rollback();
        else if (store_commit())
            err = LY_EDB;
        if (err)
            log_error("run %s: cannot record its end: %s", l->id, err_str(err));
    }
    /* The status is stored before the output ends, so a reader woken by the end reads it. */
    output_end(ls->out);
    log_info("run %s %s (code %d)%s%s", l->id, status, rc, errors[0] ? ": " : "", errors);
    queue_callbacks(l->id);

    pthread_mutex_lock(&mu);
    ls->prof->running--;
    for (int i = 0; i < ls->ngpu; i++)
        gpu_busy[ls->gpu[i] & 63] = 0;
    for (struct live_sched **pp = &lives; *pp; pp = &(*pp)->next)
        if (*pp == ls) {
            *pp = ls->next;
            break;
        }
    dirty = 1;
    pthread_mutex_unlock(&mu);

    if (l->ops && l->ops->release)
        l->ops->release(l);
    output_put(ls->out);
    json_decref(l->spec);
    json_decref(l->env);
    free(ls->error);
    free(ls->policy_reason);
    free(ls->policy_why);
    free(l);
    free(ls);
}

/* ---- starting runs ---- */

/* Takes gpu_count free GPUs of p into ls; 0 when there are not enough. Called with mu. */
static int take_gpus(struct profile *p, struct live_sched *ls)
{
    int n = 0;

    for (int i = 0; i < p->ngpus && n < p->gpu_count; i++)
        if (!gpu_busy[p->gpu_idx[i] & 63])
            ls->gpu[n++] = p->gpu_idx[i];
    if (n < p->gpu_count)
        return 0;
    for (int i = 0; i < n; i++)
        gpu_busy[ls->gpu[i] & 63] = 1;
    ls->ngpu = n;
    return 1;
}

static int can_take(struct profile *p)
{
    int free_gpus = 0;

    if (p->running >= p->max_concurrent)
        return 0;
    if (strcmp(p->backend, "local") != 0)
        return 1; /* the backend places GPUs itself */
    for (int i = 0; i < p->ngpus; i++)
        free_gpus += !gpu_busy[p->gpu_idx[i] & 63];
    return free_gpus >= p->gpu_count;
}

int runs_profile_free(const char *name)
{
    struct profile *p = profile_find(name);
    int ok;

    if (!p)
        return 0;
    pthread_mutex_lock(&mu);
    ok = can_take(p);
    pthread_mutex_unlock(&mu);
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
    pthread_mutex_lock(&mu);
    if (!can_take(p) || (p->gpu_count && strcmp(p->backend, "local") == 0 && !take_gpus(p, &ls))) {
        pthread_mutex_unlock(&mu);
        return LY_EUNAVAIL;
    }
    p->running++;
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < ls.ngpu; i++)
        fbuf_printf(&b, "%s%d", i ? "," : "", ls.gpu[i]);
    return 0;
}

void runs_slot_release(const char *name, const char *gpus)
{
    struct profile *p = profile_find(name);

    if (!p)
        return;
    pthread_mutex_lock(&mu);
    p->running--;
    for (const char *g = gpus; g && *g;) {
        char *end;
        long i = strtol(g, &end, 10);

        if (end == g)
            break;
        gpu_busy[i & 63] = 0;
        g = *end == ',' ? end + 1 : end;
    }
    dirty = 1; /* a queued run may fit now */
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

/* Fills what an executor needs to know of a run from its row and profile. */
static void live_fill(struct live *l, json_t *row, struct profile *p)
{
    snprintf(l->id, sizeof(l->id), "%s", json_string_value(json_object_get(row, "id")));
    snprintf(l->org_id, sizeof(l->org_id), "%s", json_string_value(json_object_get(row, "org_id")));
    snprintf(l->user_id, sizeof(l->user_id), "%s",
             json_string_value(json_object_get(row, "user_id")));
    snprintf(l->bucket, sizeof(l->bucket), "%s",
             json_string_value(json_object_get(row, "bucket")) ?: l->user_id);
    snprintf(l->profile, sizeof(l->profile), "%s", p->name);
    l->kind = (int)json_integer_value(json_object_get(row, "kind"));
    l->spec = json_loads(json_string_value(json_object_get(row, "spec")), 0, NULL);
    if (!l->spec)
        l->spec = json_object();
    l->env = json_object();
    l->timeout_s = (int)json_integer_value(json_object_get(row, "timeout_s"));
    l->graceful_s = (int)json_integer_value(json_object_get(row, "graceful_s"));
    l->cpus = p->vcpus;
    l->mem_bytes = p->mem_bytes;
    l->pids_max = p->pids_max;
    l->ops = l->kind != RUN_PYTHON              ? &exec_docker
             : strcmp(p->backend, "slurm") == 0 ? &exec_slurm
                                                : &exec_local;
    snprintf(l->dir, sizeof(l->dir), "%s/%s", runs_dir, l->id);
}

/* Starts run id on p; called without mu, from the scheduler thread. */
static void start_run(struct profile *p, const char *id)
{
    struct live_sched *ls = xcalloc(1, sizeof(*ls));
    struct live *l = xcalloc(1, sizeof(*l));
    json_t *row;
    int err, n;
    char gpus[64] = "";
    struct fbuf gb;
    const char *why;

    pthread_mutex_lock(&mu);
    if (!can_take(p) || (p->gpu_count && strcmp(p->backend, "local") == 0 && !take_gpus(p, ls))) {
        pthread_mutex_unlock(&mu);
        free(ls);
        free(l);
        return;
    }
    p->running++;
    pthread_mutex_unlock(&mu);

    ls->l = l;
    ls->prof = p;
    l->sched = ls;
    fbuf_init(&gb, gpus, sizeof(gpus));
    for (int i = 0; i < ls->ngpu; i++)
        fbuf_printf(&gb, "%s%d", i ? "," : "", ls->gpu[i]);
    snprintf(l->gpus, sizeof(l->gpus), "%s", gpus);

    row = runs_get_any(id, &err);
    if (!row)
        goto undo;
    live_fill(l, row, p);
    json_decref(row);
    envvars_for_run(l->org_id, l->user_id, l->env); /* the org's and user's, secrets opened */
    if (billing_admit(l->org_id, p->name, 1) == LY_EPAYMENT) {
        /* Its org ran out of credits while it waited. */
        struct output *o = output_get(id);

        if (runs_end_pending(l->org_id, id, "aborted",
                             "Insufficient credits: the organization cannot pay for this run",
                             "credits", now_us()) > 0) {
            output_end(o);
            queue_callbacks(id);
        }
        output_put(o);
        goto undo;
    }
    n = runs_mark_starting(id, now_us(), gpus[0] ? gpus : NULL, l->ops->name);
    if (n <= 0)
        goto undo; /* aborted meanwhile, or the store failed */
    if (mkdir(l->dir, 0700) != 0 && errno != EEXIST) {
        log_error("run %s: cannot create %s: %s", id, l->dir, strerror(errno));
    }
    ls->out = output_get(id);
    output_open_writer(ls->out);
    ls->install_deadline_us = now_mono_us() + (int64_t)INSTALL_LIMIT_S * 1000000;

    pthread_mutex_lock(&mu);
    ls->next = lives;
    lives = ls;
    pthread_mutex_unlock(&mu);
    limits_watch(l->id, l->bucket, l->dir);

    err = l->ops->start(l);
    if (err) {
        why = l->errbuf[0] ? l->errbuf : err_str(err);
        live_exited(l, -1, why);
        return;
    }
    /* An abort or stop that came while it was being started had nothing to signal yet. */
    pthread_mutex_lock(&mu);
    if (!ls->exited && ls->stop_mode != STOP_NONE)
        l->ops->signal(l, ls->stop_mode == STOP_STOP ? SIGTERM : SIGKILL);
    pthread_mutex_unlock(&mu);
    return;
undo:
    json_decref(l->spec);
    json_decref(l->env);
    pthread_mutex_lock(&mu);
    p->running--;
    for (int i = 0; i < ls->ngpu; i++)
        gpu_busy[ls->gpu[i] & 63] = 0;
    pthread_mutex_unlock(&mu);
    free(l);
    free(ls);
}

static void schedule(void)
{
    for (int i = 0; i < profiles_count(); i++) {
        struct profile *p = profile_at(i);
        json_t *ids;
        int free_slots;
        size_t k;
        json_t *id;

        pthread_mutex_lock(&mu);
        free_slots = p->max_concurrent - p->running;
        pthread_mutex_unlock(&mu);
        if (free_slots <= 0)
            continue;
        ids = json_array();
        if (runs_next_pending(p->name, free_slots, ids) == 0)
            json_array_foreach(ids, k, id) start_run(p, json_string_value(id));
        json_decref(ids);
    }
}

/* Enforces timeouts and stop grace periods; returns the next deadline (monotonic µs). */
static int64_t enforce(int64_t now)
{
    int64_t next = now + 1000000;

    for (struct live_sched *ls = lives; ls; ls = ls->next) {
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
        pthread_mutex_lock(&mu);
        json_array_foreach(broke, i, id)
        {
            for (struct live_sched *ls = lives; ls; ls = ls->next)
                if (strcmp(ls->l->id, json_string_value(id)) == 0 && !ls->exited &&
                    ls->stop_mode != STOP_CREDITS && ls->stop_mode != STOP_ABORT) {
                    ls->stop_mode = STOP_CREDITS;
                    ls->l->ops->signal(ls->l, SIGKILL);
                }
        }
        pthread_mutex_unlock(&mu);
    }
    json_decref(broke);
    return zero_at == INT64_MAX ? INT64_MAX : zero_at - now;
}

static void *sched_main(void *arg)
{
    int64_t next_meter = 0;

    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct live_sched *done = exits;
        int64_t next;

        if (now_mono_us() >= next_meter) {
            int64_t zero_in;

            next_meter = now_mono_us() + 1000000;
            pthread_mutex_unlock(&mu);
            zero_in = meter();
            pthread_mutex_lock(&mu);
            /* The next pass comes when an org's balance reaches zero, if that is sooner. */
            if (zero_in < next_meter - now_mono_us())
                next_meter = now_mono_us() + zero_in;
            continue;
        }

        exits = NULL;
        if (done) {
            pthread_mutex_unlock(&mu);
            while (done) {
                struct live_sched *n = done->next_exit;

                finalize(done);
                done = n;
            }
            pthread_mutex_lock(&mu);
            continue;
        }
        if (dirty) {
            dirty = 0;
            pthread_mutex_unlock(&mu);
            schedule();
            pthread_mutex_lock(&mu);
            continue;
        }
        next = enforce(now_mono_us());
        if (next > next_meter)
            next = next_meter;
        if (!exits && !dirty && !stopping) {
            struct timespec ts;
            int64_t wait_us = next - now_mono_us();

            if (wait_us < 1000)
                wait_us = 1000;
            deadline_in(&ts, CLOCK_MONOTONIC, wait_us);
            pthread_cond_timedwait(&cv, &mu, &ts);
        }
    }
    pthread_mutex_unlock(&mu);
    store_close();
    return NULL;
}

/* ---- control ---- */

int runs_control(const char *org_id, const char *id, int mode, char *status, size_t n)
{
    int err;
    json_t *row = runs_get(org_id, id, &err);
    const char *st;
    int found = 0, changed;

    if (!row)
        return err ? err : LY_ENOTFOUND;
    st = json_string_value(json_object_get(row, "status"));
    snprintf(status, n, "%s", st);
    if (run_is_terminal(st)) {
        json_decref(row);
        return LY_ECONFLICT;
    }
    json_decref(row);

    pthread_mutex_lock(&mu);
    for (struct live_sched *ls = lives; ls; ls = ls->next) {
        if (strcmp(ls->l->id, id) != 0)
            continue;
        found = 1;
        if (ls->exited || ls->stop_mode == STOP_ABORT || ls->stop_mode == STOP_TIMEOUT)
            break;
        if (mode == STOP_ABORT) {
            ls->stop_mode = STOP_ABORT;
            ls->l->ops->signal(ls->l, SIGKILL);
        } else if (ls->stop_mode != STOP_STOP) {
            ls->stop_mode = STOP_STOP;
            ls->kill_at_us = now_mono_us() + (int64_t)ls->l->graceful_s * 1000000;
            ls->l->ops->signal(ls->l, SIGTERM);
            pthread_cond_signal(&cv);
        }
        break;
    }
    pthread_mutex_unlock(&mu);
    if (found) {
        runs_set_stop_mode(id, mode);
        snprintf(status, n, "%s", mode == STOP_ABORT ? "cancelling" : "stopping");
        return 0;
    }
    /* Not live: still pending (or just finishing, which the UPDATE's guard sees). */
    changed = runs_end_pending(org_id, id, mode == STOP_ABORT ? "aborted" : "cancelled",
                               mode == STOP_ABORT ? "Aborted by the user before it started"
                                                  : "Stopped before it started",
                               mode == STOP_ABORT ? "aborted" : "stopped", now_us());
    if (changed > 0) {
        struct output *o = output_get(id);

        output_end(o);
        output_put(o);
        queue_callbacks(id);
        snprintf(status, n, "%s", mode == STOP_ABORT ? "aborted" : "cancelled");
        return 0;
    }
    /* It started meanwhile: the scheduler marks a run starting a moment before it is in the
     * live list, so one the store says is going is looked for until it is there. */
    for (int t = 0; t < 250; t++) {
        int going;

        pthread_mutex_lock(&mu);
        for (struct live_sched *ls = lives; ls; ls = ls->next)
            if (strcmp(ls->l->id, id) == 0 && !ls->exited) {
                ls->stop_mode = mode;
                ls->l->ops->signal(ls->l, mode == STOP_ABORT ? SIGKILL : SIGTERM);
                if (mode == STOP_STOP)
                    ls->kill_at_us = now_mono_us() + (int64_t)ls->l->graceful_s * 1000000;
                found = 1;
            }
        pthread_mutex_unlock(&mu);
        if (found) {
            runs_set_stop_mode(id, mode);
            snprintf(status, n, "%s", mode == STOP_ABORT ? "cancelling" : "stopping");
            return 0;
        }
        row = runs_get(org_id, id, &err);
        st = row ? json_string_value(json_object_get(row, "status")) : NULL;
        if (st)
            snprintf(status, n, "%s", st);
        going = st && !run_is_terminal(st) && strcmp(st, "pending") != 0;
        json_decref(row);
        if (!going)
            break;
        usleep(20000);
    }
    return LY_ECONFLICT;
}

/* Ends ls for reason (see runs_end_for); 1 when it was going. Called with mu. */
static int end_for(struct live_sched *ls, const char *reason, const char *why)
{
    if (ls->exited || (ls->stop_mode != STOP_NONE && ls->stop_mode != STOP_STOP))
        return 0;
    ls->policy_reason = xstrdup(reason);
    ls->policy_why = xstrdup(why);
    ls->stop_mode = STOP_POLICY;
    ls->l->ops->signal(ls->l, SIGKILL);
    return 1;
}

int runs_end_for(const char *id, const char *reason, const char *why)
{
    int found = 0;

    pthread_mutex_lock(&mu);
    for (struct live_sched *ls = lives; ls && !found; ls = ls->next)
        if (strcmp(ls->l->id, id) == 0)
            found = end_for(ls, reason, why);
    pthread_mutex_unlock(&mu);
    return found ? 0 : LY_ENOTFOUND;
}

/* 1 when run id is in the live list (ended now if it was going). */
static int end_live(const char *id, const char *why)
{
    int found = 0;

    pthread_mutex_lock(&mu);
    for (struct live_sched *ls = lives; ls && !found; ls = ls->next)
        if (strcmp(ls->l->id, id) == 0) {
            found = 1;
            end_for(ls, "deleted", why);
        }
    pthread_mutex_unlock(&mu);
    return found;
}

/* A run the scheduler took from the queue just before its account went reaches the live list
 * a moment later: one the store says is going is looked for until it is there (or ended). */
static void end_when_live(const char *id, const char *why)
{
    for (int t = 0; t < 250 && !end_live(id, why); t++) {
        int err, ended;
        json_t *row = runs_get_any(id, &err);

        ended = !row || run_is_terminal(json_string_value(json_object_get(row, "status")));
        json_decref(row);
        if (ended)
            return;
        usleep(20000);
    }
}

void runs_end_user(const char *user_id, json_t *pending_ids, const char *why)
{
    json_t *going = json_array(), *id;
    size_t i;

    json_array_foreach(pending_ids, i, id)
    {
        struct output *o = output_get(json_string_value(id));

        output_end(o);
        output_put(o);
        queue_callbacks(json_string_value(id));
    }
    if (runs_going_of_user(user_id, going) == 0)
        json_array_foreach(going, i, id) end_when_live(json_string_value(id), why);
    json_decref(going);
}

/* ---- submit ---- */

int runs_submit(struct run_submit *s, int in_tx)
{
    struct run_new r = {0};
    char hash[65], *spec, *cbs = NULL;
    int err;

    uuid_v4(s->id);
    random_base62(s->token, 40);
    run_token_hash(s->token, hash);
    spec = json_dumps(s->spec, JSON_COMPACT);
    if (s->callback_urls)
        cbs = json_dumps(s->callback_urls, JSON_COMPACT);
    r.id = s->id;
    r.org_id = s->org_id;
    r.user_id = s->user_id;
    r.kind = s->kind;
    r.profile = s->profile;
    r.priority = s->priority;
    r.spec = spec;
    r.file_name = s->file_name;
    r.timeout_s = s->timeout_s;
    r.graceful_s = s->graceful_s;
    r.parent_id = s->parent_id;
    r.stream_token_hash = hash;
    r.callback_urls = cbs;
    r.bucket = s->bucket;
    r.created_at = now_us();
    (void)in_tx;
    err = runs_insert(&r);
    free(spec);
    free(cbs);
    return err;
}

/* Called after the transaction that inserted runs committed. */
void runs_kick(void)
{
    wake();
}

/* ---- start-up and shutdown ---- */

/* The start time (clock ticks since boot) of pid, or -1 when it is not running. */
static int64_t proc_start(int64_t pid)
{
    char path[64], buf[1024], *p;
    FILE *f;
    long long v = -1;

    snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')'))) {
        /* Field 22 (starttime); p points at the end of field 2. */
        int field = 2;

        for (p++; *p && field < 21; p++)
            if (*p == ' ')
                field++;
        sscanf(p, " %lld", &v);
    }
    fclose(f);
    return v;
}

int64_t runs_proc_start(int64_t pid)
{
    return proc_start(pid);
}

/* Takes up a run whose job its backend still holds (after a restart). 0 when adopted. */
static int adopt_run(json_t *row)
{
    const char *id = json_string_value(json_object_get(row, "id"));
    struct profile *p = profile_find(json_string_value(json_object_get(row, "profile")));
    struct live_sched *ls;
    struct live *l;

    if (!p || strcmp(p->backend, "slurm") != 0)
        return -1;
    ls = xcalloc(1, sizeof(*ls));
    l = xcalloc(1, sizeof(*l));
    ls->l = l;
    ls->prof = p;
    l->sched = ls;
    live_fill(l, row, p);
    ls->out = output_get(id);
    output_open_writer(ls->out);
    ls->install_deadline_us = now_mono_us() + (int64_t)INSTALL_LIMIT_S * 1000000;
    if (json_is_integer(json_object_get(row, "running_at"))) {
        /* Its timeout still counts from when it began. */
        int64_t ran = now_us() - json_integer_value(json_object_get(row, "running_at"));

        ls->deadline_us = now_mono_us() + (int64_t)l->timeout_s * 1000000 - ran;
    }
    p->running++;
    ls->next = lives;
    lives = ls;
    return exec_slurm_adopt(l, json_string_value(json_object_get(row, "backend_ref")));
}

static void recover(void)
{
    json_t *rows = json_array(), *row;
    size_t i;

    if (runs_unfinished(rows)) {
        json_decref(rows);
        return;
    }
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        const char *status = json_string_value(json_object_get(row, "status"));
        int64_t pid = json_integer_value(json_object_get(row, "pid"));
        int64_t start = json_integer_value(json_object_get(row, "pid_start"));
        struct output *o;
        int64_t now = now_us();

        /* A Docker run's containers and Compose project go, whether it ends or is queued. */
        if (json_integer_value(json_object_get(row, "kind")) != RUN_PYTHON)
            docker_forget(id);
        if (json_is_string(json_object_get(row, "backend_ref")) &&
            strcmp(json_string_value(json_object_get(row, "backend")) ?: "", "slurm") == 0) {
            /* Slurm kept the job going: follow it again (even if the crash came before the
             * run was marked queued). */
            if (adopt_run(row) == 0)
                continue;
        }
        if (strcmp(status, "starting") == 0 && !pid && json_is_null(json_object_get(row, "gpus"))) {
            /* It never began: back to the queue (a Slurm run whose job id was not stored yet
             * is looked for by name before it is submitted again: exec/slurm.c). */
            q_exec("UPDATE runs SET status = 'pending', started_at = NULL WHERE id = ?", "s", id);
            continue;
        }
        if (pid > 0 && proc_start(pid) == start && start >= 0) {
            kill(-(pid_t)pid, SIGKILL);
            log_info("run %s: ended its process group %lld left from before the restart", id,
                     (long long)pid);
        }
        o = output_get(id);
        output_open_writer(o);
        system_line(o, "[lyceumd] lyceumd restarted while this run was going; the run was ended");
        {
            /* Billed up to its last committed window: the downtime is not charged. */
            json_t *mu_at = json_object_get(row, "metered_until");

            runs_finish(id, "system_failure", NULL,
                        "lyceumd restarted while this run was going; the run was ended", "restart",
                        json_is_integer(mu_at) ? json_integer_value(mu_at) : now, now);
        }
        output_end(o);
        output_put(o);
        queue_callbacks(id);
    }
    json_decref(rows);
}

int runs_init(const struct config *cfg)
{
    char why[256] = "";
    pthread_condattr_t ca;
    int err;

    runs_cfg = cfg;
    err = profiles_init(cfg->machine_types, why, sizeof(why));
    if (err) {
        log_error("config: %s", why);
        return err;
    }
    snprintf(runs_dir, sizeof(runs_dir), "%.880s/runs", cfg->data_dir);
    if (mkdir(runs_dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", runs_dir, strerror(errno));
        return LY_EIO;
    }
    output_init(runs_dir);
    err = limits_init(cfg);
    if (err)
        return err;
    docker_configure(cfg->docker_socket);
    docker_set_network(cfg->docker_network);
    err = exec_local_init(cfg);
    if (!err)
        err = exec_slurm_init(cfg);
    if (err)
        return err;
    recover();
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&thread, NULL, sched_main, NULL) != 0)
        return LY_EINTERNAL;
    started = 1;
    return callbacks_start();
}

void runs_shutdown(void)
{
    if (!started)
        return;
    /* Runs cannot outlive the process that reads their output: end them now. */
    pthread_mutex_lock(&mu);
    shutting_down = 1;
    for (struct live_sched *ls = lives; ls; ls = ls->next)
        if (!ls->exited && ls->stop_mode != STOP_ABORT && ls->l->ops != &exec_slurm)
            ls->l->ops->signal(ls->l, SIGKILL);
    pthread_mutex_unlock(&mu);
    /* Slurm jobs go on without us: the next start follows them again. */
    exec_slurm_shutdown();
    pthread_mutex_lock(&mu);
    for (struct live_sched **pp = &lives; *pp;) {
        struct live_sched *ls = *pp;

        if (ls->l->ops != &exec_slurm || ls->exited) {
            pp = &ls->next;
            continue;
        }
        *pp = ls->next;
        ls->l->ops->release(ls->l);
        output_put(ls->out);
        json_decref(ls->l->spec);
        json_decref(ls->l->env);
        free(ls->l);
        free(ls);
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 50; i++) {
        int left;

        pthread_mutex_lock(&mu);
        left = lives != NULL;
        if (left)
            pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
        if (!left)
            break;
        usleep(20000);
    }
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(thread, NULL);
    limits_stop();
    callbacks_stop();
    exec_local_shutdown();
    started = 0;
}

json_t *runs_capacity_json(void)
{
    json_t *o = json_object(), *pending = json_object();

    runs_pending_counts(pending);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < profiles_count(); i++) {
        struct profile *p = profile_at(i);

        json_object_set_new(o, p->name,
                            json_pack("{s:i,s:i,s:I}", "running", p->running, "max_concurrent",
                                      p->max_concurrent, "pending",
                                      json_integer_value(json_object_get(pending, p->name))));
    }
    pthread_mutex_unlock(&mu);
    json_decref(pending);
    return o;
}
