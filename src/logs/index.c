/*
 * See index.h. Entries of one record are gathered in the writer's buffer and written with one
 * write() per record, so indexing costs a memchr pass over the bytes and a write per chunk of
 * output, whatever the number of lines. A failed write leaves the index unusable: it is
 * removed, and readers rebuild it from output.log once the run is over (logs.c).
 */
#include "logs/index.h"
#include "core/arena.h"
#include "core/log.h"
#include "exec/exec.h"
#include "runs/output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_ENTRIES 4096

static _Atomic uint64_t bytes_written;

uint64_t logidx_bytes_written(void)
{
    return atomic_load_explicit(&bytes_written, memory_order_relaxed);
}

void logidx_count_bytes(uint64_t n)
{
    atomic_fetch_add_explicit(&bytes_written, n, memory_order_relaxed);
}

static char *idx_path(const char *run_id, char *out, size_t n)
{
    output_path(run_id, "lines.idx", out, n);
    return out;
}

void logidx_open(struct logidx_writer *w, const char *run_id, uint64_t log_len)
{
    logidx_close(w);
    memset(w, 0, sizeof(*w));
    idx_path(run_id, w->path, sizeof(w->path));
    if (log_len && access(w->path, F_OK) != 0) {
        w->fd = -1;
        w->failed = 1;
        return;
    }
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        log_error("cannot open %s: %s", w->path, strerror(errno));
        w->failed = 1;
        return;
    }
    w->buf = xmalloc(BUF_ENTRIES * sizeof(*w->buf));
}

static void fail(struct logidx_writer *w, const char *why)
{
    /* Readers then find no index and read output.log itself, and rebuild the index from it
     * once the run is over. */
    log_error("%s: %s; it will be rebuilt from the output", w->path, why);
    close(w->fd);
    unlink(w->path);
    w->fd = -1;
    w->failed = 1;
}

static void flush(struct logidx_writer *w)
{
    size_t n = w->nbuf * sizeof(*w->buf);
    ssize_t k;

    if (!n || w->fd < 0)
        return;
    k = write(w->fd, w->buf, n);
    w->nbuf = 0;
    if (k != (ssize_t)n) {
        fail(w, k < 0 ? strerror(errno) : "short write");
        return;
    }
    if (!w->uncounted)
        logidx_count_bytes(n);
}

static void emit(struct logidx_writer *w, int64_t ts, int s, uint64_t pos, uint32_t off,
                 uint64_t len)
{
    struct line_entry *e;

    if (w->nbuf == BUF_ENTRIES)
        flush(w);
    if (w->fd < 0)
        return;
    e = &w->buf[w->nbuf++];
    e->ts_us = ts;
    e->pos = pos | (uint64_t)s << 56;
    e->off = off;
    e->len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
}

void logidx_record(struct logidx_writer *w, uint64_t pos, const struct out_record *h,
                   const char *payload)
{
    int s = h->stream & 3;
    const char *p = payload, *end = payload + h->len, *nl;

    if (!w->uncounted)
        logidx_count_bytes(sizeof(*h) + h->len);
    if (w->fd < 0 || (s != OUT_STDOUT && s != OUT_STDERR))
        return;
    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
        if (w->part[s].open) {
            emit(w, h->ts_us, s, w->part[s].pos, w->part[s].off,
                 w->part[s].len + (uint64_t)(nl - p));
            w->part[s].open = 0;
        } else {
            emit(w, h->ts_us, s, pos, (uint32_t)(p - payload), (uint64_t)(nl - p));
        }
        p = nl + 1;
    }
    if (p < end) {
        if (!w->part[s].open) {
            w->part[s].open = 1;
            w->part[s].pos = pos;
            w->part[s].off = (uint32_t)(p - payload);
            w->part[s].len = 0;
        }
        w->part[s].len += (uint64_t)(end - p);
    }
    flush(w);
}

void logidx_finish(struct logidx_writer *w, int64_t ts_us)
{
    for (int s = OUT_STDOUT; s <= OUT_STDERR; s++)
        if (w->part[s].open) {
            emit(w, ts_us, s, w->part[s].pos, w->part[s].off, w->part[s].len);
            w->part[s].open = 0;
        }
    flush(w);
}

void logidx_close(struct logidx_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
    w->nbuf = 0;
}
