/*
 * The access log's buffer (server.c formats the lines). A request thread appends its line to
 * a shared buffer; one writer thread writes what has gathered with a single write(2) to
 * stderr and sleeps when there is nothing. Under load many lines go out per system call
 * instead of one each (appends to one file from several threads also queue on the file's
 * lock); a line waits about a millisecond before it is written. A full buffer makes request
 * threads wait, so no line is dropped.
 */
#ifndef LYCEUMD_HTTP_ALOG_H
#define LYCEUMD_HTTP_ALOG_H

#include <pthread.h>
#include <stddef.h>

struct worker_pool;

struct access_log {
    pthread_mutex_t mu;
    pthread_cond_t more, room;  /* lines to write; room in the buffer */
    struct worker_pool *writer; /* a pool of one (core/worker.h) */
    char *buf, *spare;          /* filled by request threads; written by the writer */
    size_t len;
    int writing, stop;
};

/* Starts the writer thread (aborts when it cannot). */
void alog_start(struct access_log *al);
/* Writes what is left and ends the writer; after the last alog_append(). */
void alog_stop(struct access_log *al);
/* Appends one line (n bytes, its newline included). Thread-safe. */
void alog_append(struct access_log *al, const char *line, size_t n);

#endif
