/*
 * Run logs (API.md 6.1): GET /logs/execution/{id}, the newest lines of one run, and
 * GET /logs/user, the newest lines of the caller's runs in the org. Both answer the lines of
 * the last `hours` in chronological order, at most `limit` of them (the newest), and `total`,
 * how many lines the window holds. Another org's run is 404.
 */
#include "api/api.h"
#include "core/err.h"
#include "core/util.h"
#include "exec/exec.h"
#include "logs/logs.h"
#include "runs/output.h"
#include "runs/query.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define USER_RUNS_MAX 1000 /* the newest runs /logs/user looks at */

static char host[256];
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void host_read(void)
{
    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
        snprintf(host, sizeof(host), "localhost");
}

const char *api_hostname(void)
{
    pthread_once(&host_once, host_read);
    return host;
}

static json_t *item(const struct log_line *l, const char *run_id, const char *user_id,
                    const char *profile)
{
    char ts[40];
    const char *stream = l->stream == OUT_STDERR ? "stderr" : "stdout";

    time_iso(l->ts_us, ts, sizeof(ts));
    return json_pack("{s:s,s:o,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s}}", "timestamp", ts, "message",
                     json_string_lossy(l->msg, l->len), "level",
                     l->stream == OUT_STDERR ? "error" : "info", "execution_id", run_id, "user_id",
                     user_id, "hostname", api_hostname(), "labels", "stream", stream,
                     "execution_id", run_id, "hardware_profile", profile);
}

/* Reads limit and hours (422 when out of bounds). */
static int window(struct req *req, long long lim_def, long long lim_max, long long hours_def,
                  long long hours_max, long long *limit, int64_t *since)
{
    long long hours;

    if (req_query_int(req, "limit", lim_def, 1, lim_max, limit) |
        req_query_int(req, "hours", hours_def, 1, hours_max, &hours))
        return LY_EINVAL;
    *since = now_us() - hours * 3600 * 1000000LL;
    return 0;
}

static int api_logs_execution(struct req *req)
{
    long long limit;
    int64_t since;
    struct log_tail t;
    struct run_row row;
    json_t *logs;
    const char *id;
    int err = window(req, 1000, 10000, 24, 168, &limit, &since);

    if (err)
        return err;
    err = runq_get(&req->arena, req->caller->org_id, req_param(req, "execution_id"), &row);
    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "Execution not found");
    if (err)
        return err;
    id = row.id;
    err = logs_tail(&req->arena, id, since, (int)limit, &t);
    if (err)
        return req_fail(req, err, "The execution's logs cannot be read");
    logs = json_array();
    for (size_t i = 0; i < t.n; i++)
        json_array_append_new(logs, item(&t.lines[i], id, row.user_id, row.profile));
    return req_reply(req, json_pack("{s:o,s:I}", "logs", logs, "total", (json_int_t)t.total));
}

static int api_logs_user(struct req *req)
{
    long long limit;
    int64_t since;
    struct log_tail t;
    struct log_runs runs;
    json_t *logs;
    int err = window(req, 100, 5000, 1, 24, &limit, &since);

    if (!err)
        err = logs_runs_of_user(&req->arena, req->caller->org_id, req->caller->user_id, since,
                                USER_RUNS_MAX, &runs);
    if (err)
        return err;
    err = logs_tail_many(&req->arena, runs.ids, runs.n, since, (int)limit, &t);
    if (err)
        return req_fail(req, err, "The logs cannot be read");
    logs = json_array();
    for (size_t i = 0; i < t.n; i++)
        json_array_append_new(logs, item(&t.lines[i], runs.ids[t.lines[i].run],
                                         req->caller->user_id, runs.profiles[t.lines[i].run]));
    return req_reply(req, json_pack("{s:o,s:I}", "logs", logs, "total", (json_int_t)t.total));
}

static const struct field logs_resp[] = {
    {"logs", FT_ARRAY, 0, 0, 0,
     "lines, oldest first: {timestamp, message, level (\"error\" for stderr, \"info\" for "
     "stdout), execution_id, user_id, hostname, labels}"},
    {"total", FT_INTEGER, 0, 0, 0, "lines in the window (at most limit are returned)"},
    {0},
};

const struct route api_logs_routes[] = {
    {"GET", "/logs/execution/{execution_id}", api_logs_execution, 0,
     "A run's newest log lines: ?limit=1..10000 (1000) &hours=1..168 (24)", NULL, logs_resp},
    {"GET", "/logs/user", api_logs_user, 0,
     "The newest log lines of the caller's runs: ?limit=1..5000 (100) &hours=1..24 (1)", NULL,
     logs_resp},
    {0},
};
