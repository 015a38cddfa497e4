/*
 * A per-request memory arena (after h2o's req->pool): many small allocations, one free.
 *
 * Everything allocated from an arena lives until arena_free(). Allocation never fails:
 * out of memory aborts with a message. An arena is used by one thread at a time.
 */
#ifndef LYCEUMD_CORE_ARENA_H
#define LYCEUMD_CORE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head;
};

void arena_init(struct arena *a);
/* Frees every allocation made from the arena; the arena can be used again afterwards. */
void arena_release(struct arena *a);

void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_sprintf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vsprintf(struct arena *a, const char *fmt, va_list ap);

/* malloc that aborts on failure, for memory with an owner outside any arena. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
/* Room for one more element in an array of elements of size sz allocated from a: rows itself
 * while n < *cap, else a copy twice as big (the old one stays in the arena). Start with
 * rows NULL, n 0, *cap 0. */
void *arena_grow(struct arena *a, void *rows, int n, int *cap, size_t sz);
char *xstrdup(const char *s);

#endif
