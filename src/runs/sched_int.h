/*
 * What the parts of the runs machinery share, and no one else: the live runs and the lock
 * that guards them. sched.c (the scheduler thread: the queue, slots and GPUs) owns this state;
 * events.c takes executors' reports, finish.c records a run's end, control.c ends runs on
 * request, recover.c takes up runs a previous process left, runs.c starts and stops it all.
 *
 * Locking: sched_mu guards the list of live runs, the exit queue, the GPU map and the
 * profiles' running counters. Executors' signal() is called with sched_mu held, and the
 * exited event takes it, so a run is never signalled after its executor reported it gone.
 * The store is never used with sched_mu held.
 */
#ifndef LYCEUMD_RUNS_SCHED_INT_H
#define LYCEUMD_RUNS_SCHED_INT_H

#include "exec/exec.h"
#include "runs/gpu.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

struct output;
struct profile;
struct run_row;

/* A live run: what the scheduler keeps beside the executor's struct live (l->sched). */
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

#define INSTALL_LIMIT_S 900

extern pthread_mutex_t sched_mu;
extern pthread_cond_t sched_cv;                 /* on CLOCK_MONOTONIC */
extern struct live_sched *sched_lives;          /* every live run (sched_mu) */
extern struct live_sched *sched_exits;          /* exited, not yet recorded (sched_mu) */
extern int sched_dirty;                         /* the queue may have runs to start */
extern int sched_stopping, sched_shutting_down; /* (sched_mu) */
extern char runs_dir[900];                      /* <data>/runs */

/* sched.c: the scheduler thread (started after recovery, stopped last). */
int sched_start(void);
void sched_stop(void);
/* Wakes it to look at the queue. */
void sched_wake(void);
/* Fills what an executor needs to know of a run from its row and profile: l->ops is the
 * backend that runs the row's kind for p, l->ev the scheduler's events. */
void live_fill(struct live *l, const struct run_row *row, struct profile *p);
/* Takes ls out of the live runs and gives its slot and GPUs back (the queue is looked at
 * again). Takes sched_mu. */
void sched_leave(struct live_sched *ls);
/* Frees ls and its struct live (after release(), or when the executor never had it). */
void live_sched_free(struct live_sched *ls);
/* What the backend of profile p says of itself. */
void sched_capacity(const struct profile *p, struct exec_capacity *cap);

/* events.c: the table every struct live reports through. */
extern const struct exec_events sched_events;

/* finish.c: records the end of ls (status, last charge, output end, callbacks, the slot
 * freed) and frees it; the scheduler thread calls it for each exit. */
void finish_run(struct live_sched *ls);
/* Queues the completion callbacks of a run that just ended (16.3). */
void finish_callbacks(const char *id);
/* Writes a line of lyceumd's own into a run's log (shown to followers as output). */
void finish_line(struct output *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* recover.c: at start-up, before the scheduler thread: every run a previous process left
 * going is adopted by its backend, put back in the queue, or ended as system_failure. */
void recover_runs(void);

#endif
