/*
 * Recovery, at start-up before the scheduler thread: every run a previous process left
 * starting, queued or running is offered to the backend that had it (exec_ops.adopt). A
 * backend whose jobs outlive lyceumd (Slurm) follows it again by the reference it reported;
 * the others end what is left of it (a process group, containers). A run that never began
 * goes back to the queue; the rest end as system_failure, billed up to their last committed
 * window (the downtime is not charged).
 */
#include "runs/sched_int.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "runs/output.h"
#include "runs/profiles.h"
#include "store/runs.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes of each stream that run id's output.log already holds (for an adopted run). */
static void logged_bytes(const char *id, int64_t logged[4])
{
    char path[1200], *buf = xmalloc(65536);
    struct out_record h;
    uint64_t pos = 0;
    struct stat st;
    int fd;
    long n;

    output_path(id, "output.log", path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0)
        while ((n = output_read_record(fd, &pos, (uint64_t)st.st_size, &h, buf, 65536)) > 0)
            if (h.stream == OUT_STDOUT || h.stream == OUT_STDERR)
                logged[h.stream] += h.len;
    if (fd >= 0)
        close(fd);
    free(buf);
}

/* Offers run row to the backend that had it. 0 when the backend follows it again (it is then
 * live); else nothing of it is left in the backend. */
static int adopt_run(const struct run_row *row)
{
    const char *id = row->id;
    const char *ref = row->backend_ref;
    struct profile *p = profile_find(row->profile);
    int kind = row->kind;
    const struct exec_ops *ops = exec_lookup(row->backend);
    struct exec_prior prior = {0};
    struct live_sched *ls;
    struct live *l;
    int err;

    if (!ops)
        ops = exec_for(p ? p->backend : NULL, kind);
    if (!ops || !ops->adopt)
        return -1;
    prior.pid = row->pid;
    prior.pid_start = row->pid_start;
    /* Followed only by the backend its profile still names (even if the crash came before the
     * run was marked queued). */
    if (ref && p && exec_lookup(p->backend) == ops)
        prior.ref = ref;
    ls = xcalloc(1, sizeof(*ls));
    l = xcalloc(1, sizeof(*l));
    ls->l = l;
    ls->prof = p;
    l->sched = ls;
    if (!prior.ref) {
        /* Nothing to follow: the backend only ends what is left (it reports nothing). */
        snprintf(l->id, sizeof(l->id), "%s", id);
        l->kind = kind;
        l->ops = ops;
        l->ev = &sched_events;
        ops->adopt(l, &prior);
        free(l);
        free(ls);
        return -1;
    }
    live_fill(l, row, p);
    l->ops = ops;
    logged_bytes(id, prior.logged);
    ls->out = output_get(id);
    output_open_writer(ls->out);
    ls->install_deadline_us = now_mono_us() + (int64_t)INSTALL_LIMIT_S * 1000000;
    if (row->running_at) {
        /* Its timeout still counts from when it began. */
        int64_t ran = now_us() - row->running_at;

        ls->deadline_us = now_mono_us() + (int64_t)l->timeout_s * 1000000 - ran;
    }
    pthread_mutex_lock(&sched_mu);
    p->running++;
    ls->next = sched_lives;
    sched_lives = ls;
    pthread_mutex_unlock(&sched_mu);
    err = ops->adopt(l, &prior);
    if (err == 0)
        return 0;
    sched_leave(ls);
    live_sched_free(ls);
    return -1;
}

void recover_runs(void)
{
    struct arena a;
    struct run_row *rows;
    int n;

    arena_init(&a);
    n = db_runs_unfinished(&a, &rows);
    for (int i = 0; i < n; i++) {
        const struct run_row *row = &rows[i];
        const char *id = row->id;
        const char *status = row->status;
        int64_t pid = row->pid;
        struct output *o;
        int64_t now = now_us();

        if (adopt_run(row) == 0)
            continue;
        if (strcmp(status, "starting") == 0 && !pid && !row->gpus) {
            /* It never began: back to the queue (a Slurm run whose job id was not stored yet
             * is looked for by name before it is submitted again: exec/slurm.c). */
            db_runs_requeue(id);
            continue;
        }
        o = output_get(id);
        output_open_writer(o);
        finish_line(o, "[lyceumd] lyceumd restarted while this run was going; the run was ended");
        /* Billed up to its last committed window: the downtime is not charged. */
        db_runs_finish(id, "system_failure", NULL,
                       "lyceumd restarted while this run was going; the run was ended", "restart",
                       row->metered_until ? row->metered_until : now, now);
        output_end(o);
        output_put(o);
        finish_callbacks(id);
    }
    arena_release(&a);
}
