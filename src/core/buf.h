/*
 * A growable byte buffer with a cap (after curl's dynbuf, documented as git's strbuf is): the
 * one way lyceumd collects bytes whose size it learns as they come (an engine's answer, a
 * run's output tail, a request body, a rendered page). Each buffer says at creation how big it
 * may grow; an append that would pass the cap fails whole and leaves the buffer as it was, so a
 * peer that sends too much costs at most the cap and the caller answers with LY_ETOOLARGE.
 *
 * Invariants: p is NULL until the first append, then always NUL-terminated (p[len] == 0), so
 * text can be read as a C string; binary data may hold NULs (use len). cap bounds len; room
 * grows by doubling and is never more than cap + 1 bytes.
 *
 * Lifecycle: buf_init(&b, cap) (or BUF_INIT(cap)), appends, read b.p / b.len, then buf_free()
 * or buf_take() (the bytes become the caller's, to free()). buf_reset() empties it and keeps
 * its room. Out of memory aborts, as xmalloc does. Not thread-safe (one owner).
 *
 *     struct buf b = BUF_INIT(1 << 20);
 *     if (buf_add(&b, chunk, n) < 0)
 *         ... answer 413 / give up: b holds what came before ...
 *     use(b.p, b.len);
 *     buf_free(&b);
 */
#ifndef LYCEUMD_CORE_BUF_H
#define LYCEUMD_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *p;     /* the bytes (NULL while empty and never grown), NUL after the last */
    size_t len;  /* bytes held, without the NUL */
    size_t room; /* bytes allocated at p */
    size_t cap;  /* the most len may become */
};

#define BUF_INIT(max)                                                                              \
    {                                                                                              \
        NULL, 0, 0, (max)                                                                          \
    }

void buf_init(struct buf *b, size_t cap);
/* Appends n bytes of s. 0, or LY_ETOOLARGE (nothing appended) when len would pass cap. */
int buf_add(struct buf *b, const void *s, size_t n);
/* Appends the NUL-terminated string s; as buf_add. */
int buf_adds(struct buf *b, const char *s);
/* Appends formatted text; as buf_add (a piece that does not fit whole is not appended). */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Makes room for n more bytes and returns where they go (the caller writes them, then calls
 * buf_commit(b, k) with k <= n), or NULL when len + n would pass cap. For read(2) into it. */
char *buf_space(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t k);
/* A write callback of libcurl's shape (CURLOPT_WRITEFUNCTION with CURLOPT_WRITEDATA the
 * struct buf): appends size * n bytes and returns them, or 0 past the cap, which ends the
 * transfer (CURLE_WRITE_ERROR). */
size_t buf_collect(char *p, size_t size, size_t n, void *b);
/* Empties it (len 0), keeping its room. */
void buf_reset(struct buf *b);
/* The bytes, now the caller's (NUL-terminated; "" when empty, never NULL); b is empty again. */
char *buf_take(struct buf *b, size_t *len);
void buf_free(struct buf *b);

#endif
