/*
 * Log queries over runs' output (API.md 6.1): the newest lines of a run, or of several runs
 * merged, inside a time window, from the line index (index.h) and output.log. And the
 * janitor that keeps the stored logs within the configured age and size.
 *
 * Lines are split on '\n'; a line that arrived in several records of its stream is one line.
 * Messages are the bytes as written (ANSI codes kept), capped at LOGS_LINE_CAP bytes.
 * Thread-safe: every function may be called from any thread.
 */
#ifndef LYCEUMD_LOGS_LOGS_H
#define LYCEUMD_LOGS_LOGS_H

#include "core/arena.h"

#include <stddef.h>
#include <stdint.h>

#define LOGS_LINE_CAP (16u << 10)

struct log_line {
    int64_t ts_us;
    int stream; /* OUT_STDOUT or OUT_STDERR */
    int run;    /* logs_tail_many: the index of its run in ids */
    const char *msg;
    size_t len;
};

/* Lines in chronological order; messages live in the arena. */
struct log_tail {
    struct log_line *lines;
    size_t n;
    int64_t total; /* lines in the window (n <= limit of them are returned) */
};

/* The newest limit lines of run_id written at or after since_us. A run with no output has
 * none. Returns 0 or LY_EIO. */
int logs_tail(struct arena *a, const char *run_id, int64_t since_us, int limit,
              struct log_tail *out);
/* The same over n runs merged by time: the newest limit lines of them all. */
int logs_tail_many(struct arena *a, const char *const *ids, size_t n, int64_t since_us, int limit,
                   struct log_tail *out);

/* The runs whose lines /logs/user merges: user's runs in org (not deleted) that were going at
 * some time since since_us, newest first, at most max. ids[i] and profiles[i] ("" when it has
 * none) live in the arena. */
struct log_runs {
    const char **ids, **profiles;
    size_t n;
};
/* Returns 0 or LY_EDB. */
int logs_runs_of_user(struct arena *a, const char *org_id, const char *user_id, int64_t since_us,
                      int max, struct log_runs *out);

/* Deletes the logs of runs that are over and older than max_age_s (0: no age limit), then
 * the oldest until the logs take at most max_bytes (0: no limit). Returns the bytes of logs
 * kept (of every run, going or not). Called by the sampler thread. */
uint64_t logs_janitor(int64_t max_age_s, uint64_t max_bytes);
/* Bytes of logs stored: the janitor's last count plus what was written since. */
uint64_t logs_bytes_stored(void);

#endif
