/*
 * The access log's buffer (see alog.h).
 */
#include "http/alog.h"
#include "core/worker.h"
#include "core/arena.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Lines wait here for the writer thread, which after a wake-up lets them gather this long
 * before it writes (a line waits at most about that long). */
#define ALOG_BUF       (64u * 1024)
#define ALOG_GATHER_NS 1000000

static void *writer_main(void *arg);

static void writer_job(void *arg)
{
    writer_main(arg);
}

static void *writer_main(void *arg)
{
    struct access_log *al = arg;

    pthread_mutex_lock(&al->mu);
    for (;;) {
        char *out;
        size_t n;

        while (!al->len && !al->stop)
            pthread_cond_wait(&al->more, &al->mu);
        if (!al->len)
            break;
        if (!al->stop && al->len < ALOG_BUF / 2) {
            /* Let lines gather for a moment: one wake-up and one write for many requests.
             * Meanwhile writing stays 1, so no request thread signals. */
            al->writing = 1;
            pthread_mutex_unlock(&al->mu);
            nanosleep(&(struct timespec){0, ALOG_GATHER_NS}, NULL);
            pthread_mutex_lock(&al->mu);
        }
        out = al->buf;
        n = al->len;
        al->buf = al->spare;
        al->len = 0;
        al->writing = 1;
        pthread_cond_broadcast(&al->room);
        pthread_mutex_unlock(&al->mu);
        for (size_t off = 0; off < n;) {
            ssize_t w = write(STDERR_FILENO, out + off, n - off);

            if (w <= 0)
                break; /* like log_msg(): a log that cannot be written is not an error */
            off += (size_t)w;
        }
        pthread_mutex_lock(&al->mu);
        al->spare = out;
        al->writing = 0;
    }
    pthread_mutex_unlock(&al->mu);
    return NULL;
}

void alog_start(struct access_log *al)
{
    pthread_mutex_init(&al->mu, NULL);
    pthread_cond_init(&al->more, NULL);
    pthread_cond_init(&al->room, NULL);
    al->buf = xmalloc(ALOG_BUF);
    al->spare = xmalloc(ALOG_BUF);
    al->writer = worker_pool_new("access log", 1, 0);
    if (worker_submit(al->writer, writer_job, al)) {
        log_error("cannot start the access log's thread");
        abort();
    }
}

void alog_stop(struct access_log *al)
{
    pthread_mutex_lock(&al->mu);
    al->stop = 1;
    pthread_cond_signal(&al->more);
    pthread_mutex_unlock(&al->mu);
    worker_pool_free(al->writer);
    al->writer = NULL;
    pthread_cond_destroy(&al->more);
    pthread_cond_destroy(&al->room);
    pthread_mutex_destroy(&al->mu);
    free(al->buf);
    free(al->spare);
}

void alog_append(struct access_log *al, const char *line, size_t n)
{
    pthread_mutex_lock(&al->mu);
    while (al->len + n > ALOG_BUF)
        pthread_cond_wait(&al->room, &al->mu);
    memcpy(al->buf + al->len, line, n);
    al->len += n;
    /* A writer at work comes back for these lines by itself: wake only one that sleeps. */
    if (!al->writing)
        pthread_cond_signal(&al->more);
    pthread_mutex_unlock(&al->mu);
}
