/*
 * Ending runs on request: a user's abort or stop (runs_control), lyceumd's own reasons
 * (runs_end_for: a storage limit, a deleted account) and every run of a user going at once.
 * A live run is signalled through its executor with sched_mu held and its stop mode set; the
 * scheduler thread enforces a stop's grace period and records the end (finish.c). A run still
 * pending ends at once in the store.
 */
#include "runs/control.h"
#include "runs/sched_int.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "runs/output.h"
#include "runs/runs.h"
#include "store/runs.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int runs_control(const char *org_id, const char *id, int mode, char *status, size_t n)
{
    struct arena a;
    struct run_row row;
    int found = 0, changed, err;

    arena_init(&a);
    err = db_runs_get(&a, org_id, id, &row);
    if (!err) {
        snprintf(status, n, "%s", row.status);
        if (run_is_terminal(row.status))
            err = LY_ECONFLICT;
    }
    arena_release(&a);
    if (err)
        return err;

    pthread_mutex_lock(&sched_mu);
    for (struct live_sched *ls = sched_lives; ls; ls = ls->next) {
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
            pthread_cond_signal(&sched_cv);
        }
        break;
    }
    pthread_mutex_unlock(&sched_mu);
    if (found) {
        db_runs_set_stop_mode(id, mode);
        snprintf(status, n, "%s", mode == STOP_ABORT ? "cancelling" : "stopping");
        return 0;
    }
    /* Not live: still pending (or just finishing, which the UPDATE's guard sees). */
    changed = db_runs_end_pending(org_id, id, mode == STOP_ABORT ? "aborted" : "cancelled",
                                  mode == STOP_ABORT ? "Aborted by the user before it started"
                                                     : "Stopped before it started",
                                  mode == STOP_ABORT ? "aborted" : "stopped", now_us());
    if (changed > 0) {
        struct output *o = output_get(id);

        output_end(o);
        output_put(o);
        finish_callbacks(id);
        snprintf(status, n, "%s", mode == STOP_ABORT ? "aborted" : "cancelled");
        return 0;
    }
    /* It started meanwhile: the scheduler marks a run starting a moment before it is in the
     * live list, so one the store says is going is looked for until it is there. */
    for (int t = 0; t < 250; t++) {
        const char *st = NULL;
        int going;

        pthread_mutex_lock(&sched_mu);
        for (struct live_sched *ls = sched_lives; ls; ls = ls->next)
            if (strcmp(ls->l->id, id) == 0 && !ls->exited) {
                ls->stop_mode = mode;
                ls->l->ops->signal(ls->l, mode == STOP_ABORT ? SIGKILL : SIGTERM);
                if (mode == STOP_STOP)
                    ls->kill_at_us = now_mono_us() + (int64_t)ls->l->graceful_s * 1000000;
                found = 1;
            }
        pthread_mutex_unlock(&sched_mu);
        if (found) {
            db_runs_set_stop_mode(id, mode);
            snprintf(status, n, "%s", mode == STOP_ABORT ? "cancelling" : "stopping");
            return 0;
        }
        arena_init(&a);
        if (db_runs_get(&a, org_id, id, &row) == 0)
            st = row.status;
        if (st)
            snprintf(status, n, "%s", st);
        going = st && !run_is_terminal(st) && strcmp(st, "pending") != 0;
        arena_release(&a);
        if (!going)
            break;
        usleep(20000);
    }
    return LY_ECONFLICT;
}

/* Ends ls for reason (see runs_end_for); 1 when it was going. Called with sched_mu. */
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

    pthread_mutex_lock(&sched_mu);
    for (struct live_sched *ls = sched_lives; ls && !found; ls = ls->next)
        if (strcmp(ls->l->id, id) == 0)
            found = end_for(ls, reason, why);
    pthread_mutex_unlock(&sched_mu);
    return found ? 0 : LY_ENOTFOUND;
}

/* 1 when run id is in the live list (ended now if it was going). */
static int end_live(const char *id, const char *why)
{
    int found = 0;

    pthread_mutex_lock(&sched_mu);
    for (struct live_sched *ls = sched_lives; ls && !found; ls = ls->next)
        if (strcmp(ls->l->id, id) == 0) {
            found = 1;
            end_for(ls, "deleted", why);
        }
    pthread_mutex_unlock(&sched_mu);
    return found;
}

/* A run the scheduler took from the queue just before its account went reaches the live list
 * a moment later: one the store says is going is looked for until it is there (or ended). */
static void end_when_live(const char *id, const char *why)
{
    for (int t = 0; t < 250 && !end_live(id, why); t++) {
        struct arena a;
        struct run_row row;
        int ended;

        arena_init(&a);
        ended = db_runs_get_any(&a, id, &row) != 0 || run_is_terminal(row.status);
        arena_release(&a);
        if (ended)
            return;
        usleep(20000);
    }
}

void runs_end_user(const char *user_id, const struct run_id *pending, int npending, const char *why)
{
    struct arena a;
    struct run_id *going;
    int n;

    for (int i = 0; i < npending; i++) {
        struct output *o = output_get(pending[i].id);

        output_end(o);
        output_put(o);
        finish_callbacks(pending[i].id);
    }
    arena_init(&a);
    n = db_runs_going_of_user(&a, user_id, &going);
    for (int i = 0; i < n; i++)
        end_when_live(going[i].id, why);
    arena_release(&a);
}
