/*
 * The runs machinery as a whole: started once at start-up (profiles, the output registry,
 * limits, each backend, recovery, the scheduler thread and the callback sender) and stopped
 * once at shutdown; and what every part says of a run's status.
 */
#include "runs/runs.h"
#include "runs/sched_int.h"
#include "core/err.h"
#include "core/log.h"
#include "exec/docker.h"
#include "runs/callbacks.h"
#include "runs/control.h"
#include "runs/limits.h"
#include "runs/output.h"
#include "runs/profiles.h"
#include "runs/sched.h"
#include "core/arena.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const struct config *runs_cfg;
static int started;

int run_is_terminal(const char *s)
{
    return s && (strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
                 strcmp(s, "system_failure") == 0 || strcmp(s, "aborted") == 0 ||
                 strcmp(s, "cancelled") == 0);
}

int64_t runs_proc_start(int64_t pid)
{
    return exec_proc_start(pid);
}

/* Whether a profile names backend ops. */
static int backend_used(const struct exec_ops *ops)
{
    for (int i = 0; i < profiles_count(); i++)
        if (exec_lookup(profile_at(i)->backend) == ops)
            return 1;
    return 0;
}

static int outlives(const struct exec_ops *ops)
{
    struct exec_capacity cap;

    exec_capacity_of(ops, &cap);
    return cap.outlives;
}

/* Stops the backends whose jobs outlive lyceumd (first) or the others (last). */
static void backends_stop(int outliving)
{
    for (int i = 0; i < exec_count(); i++) {
        const struct exec_ops *ops = exec_at(i);

        if (ops->shutdown && outlives(ops) == outliving)
            ops->shutdown();
    }
}

int runs_init(const struct config *cfg)
{
    char why[256] = "";
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
    for (int i = 0; i < exec_count() && !err; i++) {
        const struct exec_ops *ops = exec_at(i);

        if (ops->init)
            err = ops->init(cfg, backend_used(ops));
    }
    if (err)
        return err;
    recover_runs();
    err = sched_start();
    if (err)
        return err;
    started = 1;
    return callbacks_start();
}

int runs_reload(const struct config *cfg, char *why, size_t n)
{
    struct profile *tab;
    int cnt, err;

    if (!cfg->machine_types) {
        log_info("reload: the config declares no machine_types: the machine types stay as "
                 "they are");
        limits_reload(cfg);
        return 0;
    }
    tab = xcalloc(PROFILE_MAX, sizeof(*tab));
    err = profiles_parse(cfg->machine_types, tab, &cnt, why, n);

    if (!err) {
        pthread_mutex_lock(&sched_mu);
        profiles_apply(tab, cnt);
        pthread_mutex_unlock(&sched_mu);
        limits_reload(cfg);
        runs_kick(); /* a machine type may have room now */
    }
    free(tab);
    return err;
}

void runs_shutdown(void)
{
    if (!started)
        return;
    /* Runs cannot outlive the process that reads their output: end them now. */
    pthread_mutex_lock(&sched_mu);
    sched_shutting_down = 1;
    for (struct live_sched *ls = sched_lives; ls; ls = ls->next)
        if (!ls->exited && ls->stop_mode != STOP_ABORT && !outlives(ls->l->ops))
            ls->l->ops->signal(ls->l, SIGKILL);
    pthread_mutex_unlock(&sched_mu);
    /* Jobs of a backend that outlives us (Slurm) go on without us: the next start follows
     * them again. */
    backends_stop(1);
    pthread_mutex_lock(&sched_mu);
    for (struct live_sched **pp = &sched_lives; *pp;) {
        struct live_sched *ls = *pp;

        if (!outlives(ls->l->ops) || ls->exited) {
            pp = &ls->next;
            continue;
        }
        *pp = ls->next;
        ls->l->ops->release(ls->l);
        live_sched_free(ls);
    }
    pthread_mutex_unlock(&sched_mu);
    for (int i = 0; i < 50; i++) {
        int left;

        pthread_mutex_lock(&sched_mu);
        left = sched_lives != NULL;
        if (left)
            pthread_cond_signal(&sched_cv);
        pthread_mutex_unlock(&sched_mu);
        if (!left)
            break;
        usleep(20000);
    }
    sched_stop();
    limits_stop();
    callbacks_stop();
    backends_stop(0);
    started = 0;
}
