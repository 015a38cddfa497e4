/*
 * Finishing a run: once its executor reported the exit, the scheduler thread records how it
 * ended (the status and errors its stop mode or exit code say, the last charge with the
 * result in one transaction), ends its output, queues its callbacks and frees its slot and
 * GPUs. Also the lines lyceumd writes into a run's log, and the callbacks of runs that ended
 * without running (control.c, recover.c).
 */
#include "runs/sched_int.h"
#include "billing/billing.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "runs/callbacks.h"
#include "runs/control.h"
#include "runs/limits.h"
#include "runs/output.h"
#include "store/db.h"
#include "store/runs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void finish_callbacks(const char *id)
{
    struct arena a;
    struct run_row row;
    json_t *urls;
    size_t i;
    json_t *u;

    arena_init(&a);
    if (db_runs_get_any(&a, id, &row) != 0) {
        arena_release(&a);
        return;
    }
    urls = json_loads(row.callback_urls ?: "null", 0, NULL);
    if (json_is_array(urls) && json_array_size(urls)) {
        json_t *body = callbacks_body(&row);
        char *text = json_dumps(body, JSON_COMPACT);

        json_array_foreach(urls, i, u)
            db_callback_add(id, row.org_id, json_string_value(u), text, now_us());
        free(text);
        json_decref(body);
        callbacks_wake();
    }
    json_decref(urls);
    arena_release(&a);
}

void finish_line(struct output *o, const char *fmt, ...)
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

void finish_run(struct live_sched *ls)
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
    } else if (sched_shutting_down && ls->stop_mode == STOP_NONE) {
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
        finish_line(ls->out, "[lyceumd] %s", errors);
    else if (reason && strcmp(reason, "timeout") == 0)
        finish_line(ls->out, "[lyceumd] %s", errors);
    /* The last charge and the result in one transaction: neither without the other. */
    if (store_begin() == 0) {
        int err = billing_charge_final(l->id, now, 1);

        if (!err && db_runs_finish(l->id, status, ls->error ? NULL : &rc, errors[0] ? errors : NULL,
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
    finish_callbacks(l->id);

    sched_leave(ls);

    if (l->ops && l->ops->release)
        l->ops->release(l);
    live_sched_free(ls);
}
