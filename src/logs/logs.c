/*
 * See logs.h. A query reads the tail of the run's lines.idx (one pread for up to 10,000
 * entries, after a binary search for the window's start) and then the records those lines
 * live in, keeping the last record read, so the newest 1,000 lines of a run cost a few reads
 * however long the run's log is. A run whose index is missing (written by an older lyceumd,
 * or whose index write failed) gets one rebuilt from output.log: kept when the run is over,
 * thrown away after the query while it is still going.
 */
#include "logs/logs.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"
#include "logs/index.h"
#include "runs/output.h"
#include "store/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC_MAX ((64u << 10) + 8) /* a record's payload: 64 KiB and a carried character */

/* The record last read from output.log. */
struct rec_cache {
    int fd;
    uint64_t pos;
    int valid;
    struct out_record h;
    char *buf;
};

static int rec_load(struct rec_cache *c, uint64_t pos)
{
    ssize_t r;
    size_t want;

    if (c->valid && c->pos == pos)
        return 0;
    c->valid = 0;
    r = pread(c->fd, &c->h, sizeof(c->h), (off_t)pos);
    if (r != (ssize_t)sizeof(c->h))
        return -1;
    want = c->h.len < REC_MAX ? c->h.len : REC_MAX;
    r = pread(c->fd, c->buf, want, (off_t)(pos + sizeof(c->h)));
    if (r != (ssize_t)want)
        return -1;
    c->h.len = (uint32_t)want;
    c->pos = pos;
    c->valid = 1;
    return 0;
}

/* Copies the line of e (capped) into the arena. */
static int read_line(struct arena *a, struct rec_cache *c, const struct line_entry *e,
                     struct log_line *out)
{
    size_t want = e->len < LOGS_LINE_CAP ? e->len : LOGS_LINE_CAP, got = 0;
    uint64_t pos = LINE_POS(e);
    uint32_t off = e->off;
    char *msg = arena_alloc(a, want + 1);
    int hops = 0;

    while (got < want) {
        if (rec_load(c, pos) != 0)
            return -1;
        if (c->h.stream == LINE_STREAM(e) && off <= c->h.len) {
            size_t k = c->h.len - off < want - got ? c->h.len - off : want - got;

            memcpy(msg + got, c->buf + off, k);
            got += k;
        }
        off = 0;
        pos += sizeof(c->h) + c->h.len;
        if (++hops > 1 << 20)
            return -1; /* a damaged index: never loop for ever */
    }
    msg[got] = '\0';
    out->ts_us = e->ts_us;
    out->stream = LINE_STREAM(e);
    out->msg = msg;
    out->len = got;
    return 0;
}

/* Builds the index of a log that has none into path (a temporary file). 0 or -1. */
static int rebuild(const char *run_id, int log_fd, const char *path)
{
    struct logidx_writer w = {.fd = -1};
    struct out_record h = {.ts_us = 0};
    struct stat st;
    uint64_t pos = 0;
    char *buf;
    long n;
    int ok;

    if (fstat(log_fd, &st) != 0)
        return -1;
    w.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w.fd < 0)
        return -1;
    w.buf = xmalloc(4096 * sizeof(*w.buf));
    w.uncounted = 1;
    snprintf(w.path, sizeof(w.path), "%.1100s", path);
    buf = xmalloc(REC_MAX);
    while (w.fd >= 0) {
        uint64_t at = pos;

        n = output_read_record(log_fd, &pos, (uint64_t)st.st_size, &h, buf, REC_MAX);
        if (n <= 0)
            break;
        h.len = (uint32_t)n;
        logidx_record(&w, at, &h, buf);
    }
    logidx_finish(&w, h.ts_us);
    ok = w.fd >= 0;
    logidx_close(&w);
    free(buf);
    (void)run_id;
    return ok ? 0 : -1;
}

/* Opens the run's index (rebuilding it when missing); -1 when the run has no output. */
static int open_index(const char *run_id, int log_fd)
{
    char path[1200], tmp[1300];
    struct output *live;
    int fd;

    output_path(run_id, "lines.idx", path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    snprintf(tmp, sizeof(tmp), "%s.%llx.tmp", path, (unsigned long long)now_mono_us());
    if (rebuild(run_id, log_fd, tmp) != 0) {
        unlink(tmp);
        return -1;
    }
    fd = open(tmp, O_RDONLY | O_CLOEXEC);
    live = output_find(run_id);
    if (live || rename(tmp, path) != 0)
        unlink(tmp); /* still going: its writer may add to the log; keep nothing */
    output_put(live);
    return fd;
}

/* The first entry at or after since (the entries are in time order, up to clock steps). */
static uint64_t lower_bound(int fd, uint64_t n, int64_t since)
{
    uint64_t lo = 0, hi = n;

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        struct line_entry e;

        if (pread(fd, &e, sizeof(e), (off_t)(mid * sizeof(e))) != (ssize_t)sizeof(e))
            return n;
        if (e.ts_us < since)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int logs_tail(struct arena *a, const char *run_id, int64_t since_us, int limit,
              struct log_tail *out)
{
    char path[1200];
    struct rec_cache c = {.fd = -1};
    struct line_entry *ents = NULL;
    struct stat st;
    int idx = -1, err = 0;
    uint64_t n, first, lo;

    memset(out, 0, sizeof(*out));
    output_path(run_id, "output.log", path, sizeof(path));
    c.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c.fd < 0)
        return errno == ENOENT ? 0 : LY_EIO;
    idx = open_index(run_id, c.fd);
    if (idx < 0 || fstat(idx, &st) != 0) {
        err = LY_EIO;
        goto out;
    }
    n = (uint64_t)st.st_size / sizeof(struct line_entry);
    lo = lower_bound(idx, n, since_us);
    out->total = (int64_t)(n - lo);
    first = n - lo > (uint64_t)limit ? n - (uint64_t)limit : lo;
    if (first == n)
        goto out;
    ents = xmalloc((n - first) * sizeof(*ents));
    if (pread(idx, ents, (n - first) * sizeof(*ents), (off_t)(first * sizeof(*ents))) !=
        (ssize_t)((n - first) * sizeof(*ents))) {
        err = LY_EIO;
        goto out;
    }
    c.buf = xmalloc(REC_MAX);
    out->lines = arena_alloc(a, (n - first) * sizeof(*out->lines));
    for (uint64_t i = 0; i < n - first; i++) {
        if (read_line(a, &c, &ents[i], &out->lines[out->n]) != 0) {
            log_error("run %s: its line index points outside its output", run_id);
            err = LY_EIO;
            goto out;
        }
        out->n++;
    }
out:
    if (idx >= 0)
        close(idx);
    close(c.fd);
    free(c.buf);
    free(ents);
    return err;
}

static int by_time(const void *x, const void *y)
{
    const struct log_line *a = x, *b = y;

    if (a->ts_us != b->ts_us)
        return a->ts_us < b->ts_us ? -1 : 1;
    return a->run != b->run ? (a->run < b->run ? -1 : 1) : (a < b ? -1 : a > b);
}

int logs_tail_many(struct arena *a, const char *const *ids, size_t n, int64_t since_us, int limit,
                   struct log_tail *out)
{
    struct log_line *all = NULL;
    size_t count = 0, cap = 0;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        struct log_tail t;
        int err = logs_tail(a, ids[i], since_us, limit, &t);

        if (err)
            return err;
        out->total += t.total;
        if (count + t.n > cap) {
            cap = (count + t.n) * 2;
            all = realloc(all, cap * sizeof(*all));
            if (!all)
                abort();
        }
        for (size_t k = 0; k < t.n; k++) {
            t.lines[k].run = (int)i;
            all[count++] = t.lines[k];
        }
    }
    /* qsort is not stable: the tie-break keeps each run's lines in their order. */
    if (count)
        qsort(all, count, sizeof(*all), by_time);
    {
        size_t first = count > (size_t)limit ? count - (size_t)limit : 0;

        out->n = count - first;
        out->lines = arena_alloc(a, (out->n ? out->n : 1) * sizeof(*out->lines));
        if (out->n)
            memcpy(out->lines, all + first, out->n * sizeof(*all));
    }
    free(all);
    return 0;
}

/* ---- the janitor ---- */

struct kept {
    char id[64];
    int64_t mtime;
    uint64_t bytes;
};

static _Atomic uint64_t scanned_bytes, written_at_scan;

uint64_t logs_bytes_stored(void)
{
    uint64_t w = logidx_bytes_written() - atomic_load(&written_at_scan);

    return atomic_load(&scanned_bytes) + w;
}

static uint64_t file_size(const char *id, const char *file, int64_t *mtime)
{
    char path[1200];
    struct stat st;

    output_path(id, file, path, sizeof(path));
    if (stat(path, &st) != 0)
        return 0;
    if (mtime && st.st_mtime > *mtime)
        *mtime = st.st_mtime;
    return (uint64_t)st.st_size;
}

static void drop(const struct kept *k)
{
    char path[1200];

    output_path(k->id, "output.log", path, sizeof(path));
    unlink(path);
    output_path(k->id, "lines.idx", path, sizeof(path));
    unlink(path);
    log_info("run %s: its logs (%llu bytes) were deleted by the retention settings", k->id,
             (unsigned long long)k->bytes);
}

static int by_mtime(const void *x, const void *y)
{
    const struct kept *a = x, *b = y;

    return a->mtime < b->mtime ? -1 : a->mtime > b->mtime;
}

uint64_t logs_janitor(int64_t max_age_s, uint64_t max_bytes)
{
    char dir[1200];
    DIR *d;
    struct dirent *de;
    struct kept *done = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0, written = logidx_bytes_written();
    int64_t now = now_unix();

    /* output_path of "." names the runs directory itself ("<runs>/./"). */
    output_path(".", "", dir, sizeof(dir));
    d = opendir(dir);
    if (!d)
        return logs_bytes_stored();
    while ((de = readdir(d))) {
        struct kept k = {.mtime = 0};
        struct output *live;

        if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(k.id))
            continue;
        memcpy(k.id, de->d_name, strlen(de->d_name) + 1);
        k.bytes = file_size(k.id, "output.log", &k.mtime) + file_size(k.id, "lines.idx", NULL);
        if (!k.bytes)
            continue;
        live = output_find(k.id);
        output_put(live);
        if (live) {
            total += k.bytes; /* going: never deleted */
            continue;
        }
        if (max_age_s > 0 && k.mtime < now - max_age_s) {
            drop(&k);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            done = realloc(done, cap * sizeof(*done));
            if (!done)
                abort();
        }
        done[n++] = k;
        total += k.bytes;
    }
    closedir(d);
    if (max_bytes && total > max_bytes) {
        qsort(done, n, sizeof(*done), by_mtime);
        for (size_t i = 0; i < n && total > max_bytes; i++) {
            drop(&done[i]);
            total -= done[i].bytes;
        }
    }
    free(done);
    atomic_store(&scanned_bytes, total);
    atomic_store(&written_at_scan, written);
    return total;
}

/* What logs_runs_of_user() fills, row by row. */
struct runs_fill {
    struct arena *a;
    struct log_runs *out;
    size_t cap;
};

static void runs_fill_one(void *arg, const char *id, const char *profile)
{
    struct runs_fill *f = arg;

    if (f->out->n == f->cap)
        return; /* the store's LIMIT keeps to cap */
    f->out->ids[f->out->n] = arena_strdup(f->a, id ? id : "");
    f->out->profiles[f->out->n] = arena_strdup(f->a, profile ? profile : "");
    f->out->n++;
}

int logs_runs_of_user(struct arena *a, const char *org_id, const char *user_id, int64_t since_us,
                      int max, struct log_runs *out)
{
    struct runs_fill f = {a, out, max > 0 ? (size_t)max : 0};

    memset(out, 0, sizeof(*out));
    out->ids = arena_alloc(a, (f.cap ? f.cap : 1) * sizeof(*out->ids));
    out->profiles = arena_alloc(a, (f.cap ? f.cap : 1) * sizeof(*out->profiles));
    return db_logs_user_runs(org_id, user_id, since_us, max, runs_fill_one, &f);
}
