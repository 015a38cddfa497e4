/*
 * See output.h. Records are written with one write() each under the output's lock, so a
 * reader that only looks below the committed length never sees half a record. Each stream
 * keeps up to three bytes of an unfinished UTF-8 character for its next chunk, so records
 * split only between characters (the bytes are kept exactly either way). Once a log holds the
 * cap (output_limit), what the run writes is dropped, after one line of lyceumd's that says
 * so: a run printing without end cannot fill the disk (the overshoot is one chunk).
 */
#include "runs/output.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"
#include "logs/index.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define RECORD_MAX (64u << 10)

struct output {
    char run_id[40];
    int refs;
    int fd;
    uint64_t len;
    int done;
    struct waker *waiters;
    struct logidx_writer idx; /* the line index beside the log (logs/index.h) */
    char carry[4][4];
    int ncarry[4];
    int capped; /* the cap was reached: the run's output is dropped */
    struct output *next;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER; /* the registry and every output */
static struct output *reg;
static char dir[1024] = "var/runs";
static uint64_t out_cap; /* bytes of output.log a run's own output may fill (0: no cap) */

void output_init(const char *runs_dir)
{
    snprintf(dir, sizeof(dir), "%s", runs_dir);
}

void output_limit(uint64_t max_bytes)
{
    __atomic_store_n(&out_cap, max_bytes, __ATOMIC_RELAXED);
}

void output_path(const char *run_id, const char *file, char *out, size_t n)
{
    snprintf(out, n, "%s/%s/%s", dir, run_id, file);
}

struct output *output_find(const char *run_id)
{
    struct output *o;

    pthread_mutex_lock(&reg_mu);
    for (o = reg; o; o = o->next)
        if (strcmp(o->run_id, run_id) == 0)
            break;
    if (o)
        o->refs++;
    pthread_mutex_unlock(&reg_mu);
    return o;
}

struct output *output_get(const char *run_id)
{
    struct output *o;

    pthread_mutex_lock(&reg_mu);
    for (o = reg; o; o = o->next)
        if (strcmp(o->run_id, run_id) == 0)
            break;
    if (!o) {
        o = xcalloc(1, sizeof(*o));
        snprintf(o->run_id, sizeof(o->run_id), "%s", run_id);
        o->fd = -1;
        o->idx.fd = -1;
        o->refs = 1; /* the registry's */
        o->next = reg;
        reg = o;
    }
    o->refs++;
    pthread_mutex_unlock(&reg_mu);
    return o;
}

void output_put(struct output *o)
{
    int last;

    if (!o)
        return;
    pthread_mutex_lock(&reg_mu);
    last = --o->refs == 0;
    pthread_mutex_unlock(&reg_mu);
    if (last) {
        if (o->fd >= 0)
            close(o->fd);
        logidx_close(&o->idx);
        free(o);
    }
}

int output_open_writer(struct output *o)
{
    char path[1200];
    int fd;
    off_t end;

    output_path(o->run_id, "output.log", path, sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    end = lseek(fd, 0, SEEK_END);
    pthread_mutex_lock(&reg_mu);
    if (o->fd >= 0)
        close(o->fd);
    o->fd = fd;
    o->len = end > 0 ? (uint64_t)end : 0;
    logidx_open(&o->idx, o->run_id, o->len);
    pthread_mutex_unlock(&reg_mu);
    return 0;
}

static void wake_all(struct output *o)
{
    struct waker *w = o->waiters;

    o->waiters = NULL;
    while (w) {
        struct waker *next = w->next;

        w->queued = 0;
        w->next = NULL;
        w->fn(w->arg);
        w = next;
    }
}

/* Writes one record; called with reg_mu held. */
static void write_record(struct output *o, int stream, const char *buf, size_t n)
{
    struct out_record h = {.ts_us = now_us(), .len = (uint32_t)n, .stream = (uint8_t)stream};
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)buf, n}};
    ssize_t w;

    if (o->fd < 0 || !n)
        return;
    w = writev(o->fd, iov, 2);
    if (w != (ssize_t)(sizeof(h) + n)) {
        /* A short write leaves a torn record: cut the file back to the last good one. */
        log_error("run %s: cannot write its output: %s", o->run_id,
                  w < 0 ? strerror(errno) : "short write");
        if (ftruncate(o->fd, (off_t)o->len) != 0)
            log_error("run %s: cannot repair its output file", o->run_id);
        return;
    }
    logidx_record(&o->idx, o->len, &h, buf);
    o->len += sizeof(h) + n;
}

/* How many bytes at the end of buf are the start of a UTF-8 character not yet complete. */
static size_t utf8_tail(const unsigned char *buf, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = buf[n - k];

        if ((c & 0xC0) == 0x80)
            continue;
        if (c >= 0xC0) {
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;

            return need > k ? k : 0;
        }
        return 0;
    }
    return 0;
}

/* Past the cap: drops the run's output, saying so once. Called with reg_mu held. */
static int over_cap(struct output *o, int stream)
{
    char line[300];
    int n;

    if (!out_cap || stream == OUT_SYSTEM || o->len < out_cap)
        return 0;
    if (!o->capped) {
        o->capped = 1;
        n = snprintf(line, sizeof(line),
                     "[lyceumd] The output reached run_output_max_bytes (%llu bytes): what the "
                     "run writes from here on is dropped; the run goes on.\n",
                     (unsigned long long)out_cap);
        write_record(o, OUT_SYSTEM, line, (size_t)n);
        if (o->waiters)
            wake_all(o);
    }
    return 1;
}

void output_append(struct output *o, int stream, const char *buf, size_t n)
{
    int s = stream & 3;

    pthread_mutex_lock(&reg_mu);
    if (over_cap(o, stream)) {
        pthread_mutex_unlock(&reg_mu);
        return;
    }
    if (o->ncarry[s]) {
        /* Finish the carried character with this chunk's first bytes. */
        char tmp[RECORD_MAX + 4];
        size_t take = n < RECORD_MAX ? n : RECORD_MAX;

        memcpy(tmp, o->carry[s], (size_t)o->ncarry[s]);
        memcpy(tmp + o->ncarry[s], buf, take);
        size_t total = (size_t)o->ncarry[s] + take;
        size_t tail = n == take ? utf8_tail((unsigned char *)tmp, total) : 0;

        o->ncarry[s] = 0;
        write_record(o, stream, tmp, total - tail);
        memcpy(o->carry[s], tmp + total - tail, tail);
        o->ncarry[s] = (int)tail;
        buf += take;
        n -= take;
    }
    while (n) {
        size_t take = n < RECORD_MAX ? n : RECORD_MAX;
        size_t tail = take == n ? utf8_tail((const unsigned char *)buf, take) : 0;

        write_record(o, stream, buf, take - tail);
        memcpy(o->carry[s], buf + take - tail, tail);
        o->ncarry[s] = (int)tail;
        buf += take;
        n -= take;
    }
    if (o->waiters)
        wake_all(o);
    pthread_mutex_unlock(&reg_mu);
}

void output_end(struct output *o)
{
    struct output **pp;

    pthread_mutex_lock(&reg_mu);
    for (int s = 0; s < 4; s++) {
        write_record(o, s, o->carry[s], (size_t)o->ncarry[s]);
        o->ncarry[s] = 0;
    }
    logidx_finish(&o->idx, now_us());
    logidx_close(&o->idx);
    o->done = 1;
    wake_all(o);
    for (pp = &reg; *pp; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            o->refs--; /* the registry's reference; the caller still holds one */
            break;
        }
    pthread_mutex_unlock(&reg_mu);
}

uint64_t output_wait(struct output *o, uint64_t pos, struct waker *w, int *done)
{
    uint64_t len;

    pthread_mutex_lock(&reg_mu);
    len = o->len;
    *done = o->done;
    if (pos >= len && !o->done && w && !w->queued) {
        w->queued = 1;
        w->next = o->waiters;
        o->waiters = w;
    }
    pthread_mutex_unlock(&reg_mu);
    return len;
}

void output_unwait(struct output *o, struct waker *w)
{
    pthread_mutex_lock(&reg_mu);
    if (w->queued) {
        for (struct waker **pp = &o->waiters; *pp; pp = &(*pp)->next)
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        w->queued = 0;
    }
    pthread_mutex_unlock(&reg_mu);
}

long output_read_record(int fd, uint64_t *pos, uint64_t limit, struct out_record *hdr, char *buf,
                        size_t cap)
{
    ssize_t r;
    size_t want;

    if (*pos + sizeof(*hdr) > limit)
        return 0;
    r = pread(fd, hdr, sizeof(*hdr), (off_t)*pos);
    if (r != (ssize_t)sizeof(*hdr))
        return r == 0 ? 0 : -1;
    if (*pos + sizeof(*hdr) + hdr->len > limit)
        return 0; /* not committed yet */
    want = hdr->len < cap ? hdr->len : cap;
    r = pread(fd, buf, want, (off_t)(*pos + sizeof(*hdr)));
    if (r != (ssize_t)want)
        return -1;
    *pos += sizeof(*hdr) + hdr->len;
    return (long)want;
}

json_t *json_string_lossy(const char *buf, size_t n)
{
    json_t *s = json_stringn(buf, n);
    char *clean;
    size_t k = 0;

    if (s)
        return s;
    /* Not valid UTF-8 (or an embedded NUL): replace each bad byte with U+FFFD. */
    clean = xmalloc(n * 3 + 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)buf[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        int ok = len && i + len <= n && c != 0 && !(len == 2 && c < 0xC2);

        for (size_t j = 1; ok && j < len; j++)
            ok = ((unsigned char)buf[i + j] & 0xC0) == 0x80;
        if (ok && len > 1) {
            /* Let jansson judge overlongs and surrogates on the character alone. */
            json_t *t = json_stringn(buf + i, len);

            ok = t != NULL;
            json_decref(t);
        }
        if (ok) {
            memcpy(clean + k, buf + i, len);
            k += len;
            i += len;
        } else {
            memcpy(clean + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        }
    }
    s = json_stringn(clean, k);
    free(clean);
    return s ? s : json_string("");
}
