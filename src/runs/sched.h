/*
 * The scheduler (sched.c): the queue of pending runs, the slots of each profile and the GPUs
 * they hold. Runs enter the queue through submit.h and are ended through control.h; runs.h
 * starts and stops the machinery.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef LYCEUMD_RUNS_SCHED_H
#define LYCEUMD_RUNS_SCHED_H

#include "core/arena.h"

#include <stdint.h>

/* Wakes the scheduler after the transaction that inserted runs committed. */
void runs_kick(void);

/* True when profile has a free slot right now (GPU selection's first_available). */
int runs_profile_free(const char *profile);

/* A slot of profile taken outside the run queue (an inference replica): it counts against
 * max_concurrent and holds GPUs of the profile as a run would, the indices into gpus ("0,1";
 * "" without GPUs). 0, LY_EUNAVAIL when the profile is full now, LY_ENOTFOUND. */
int runs_slot_take(const char *profile, char gpus[64]);
/* Gives the slot back, with its GPUs; queued runs may start. */
void runs_slot_release(const char *profile, const char *gpus);

/* Scheduler figures for /metrics and tests, one per profile in the config's order. */
struct run_capacity {
    const char *profile; /* the profile's name (lives as long as the profiles) */
    int running, max_concurrent;
    int64_t pending; /* runs waiting in the queue */
};
/* Every profile's figures into *rows (from a): their number. */
int runs_capacity(struct arena *a, struct run_capacity **rows);

#endif
