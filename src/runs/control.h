/*
 * Ending runs (control.c): by the user (abort, stop), or by lyceumd for a reason of its own.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef LYCEUMD_RUNS_CONTROL_H
#define LYCEUMD_RUNS_CONTROL_H

#include <stddef.h>

struct run_id;

enum stop_mode {
    STOP_NONE = 0,
    STOP_ABORT = 1,
    STOP_STOP = 2,
    STOP_TIMEOUT = 3,
    STOP_CREDITS = 4,
    STOP_POLICY = 5 /* ended by lyceumd with a reason of its own (runs_end_for) */
};

/* Aborts (SIGKILL, "aborted") or stops (SIGTERM then SIGKILL after graceful_s, "completed")
 * a run of org. A pending run ends at once ("aborted" / "cancelled"). Returns 0, or
 * LY_ENOTFOUND, or LY_ECONFLICT when it had already ended (*status then says how). */
int runs_control(const char *org_id, const char *id, int mode, char *status, size_t n);

/* Ends live run id now (SIGKILL, "aborted") for a reason of lyceumd's own: reason is the
 * stored code ("limit", "deleted"), why the text put in its errors and output. 0, or
 * LY_ENOTFOUND when it is not going (or is ending already). */
int runs_end_for(const char *id, const char *reason, const char *why);
/* Ends every run user_id started: pending (npending ids, store/runs.h) are runs already ended
 * in the store while pending (their followers and callbacks are told now); the live ones are
 * ended as runs_end_for(id, "deleted", why). */
void runs_end_user(const char *user_id, const struct run_id *pending, int npending,
                   const char *why);

#endif
