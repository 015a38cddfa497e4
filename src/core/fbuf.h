/*
 * A bounded appender over a fixed buffer the caller owns (a stack array, a struct field): a
 * sequence of appends fills it and never writes past its end. snprintf returns the length it
 * would have written, so "k += snprintf(buf + k, sizeof(buf) - k, ...)" moves k past the
 * buffer once one piece is cut, and the next size_t subtraction wraps; fbuf keeps the index
 * inside the buffer and remembers that something was cut instead.
 *
 * Lifecycle: fbuf_init() over (p, cap), appends, then read p (always NUL-terminated, also
 * when cut) and len (at most cap - 1). Nothing to release. Not thread-safe (one owner).
 */
#ifndef LYCEUMD_CORE_FBUF_H
#define LYCEUMD_CORE_FBUF_H

#include <stdarg.h>
#include <stddef.h>

struct fbuf {
    char *p;
    size_t cap; /* bytes at p, the NUL included; at least 1 */
    size_t len; /* bytes written, without the NUL: always < cap */
    int cut;    /* 1 once an append did not fit whole */
};

/* Starts an empty string in p[0..cap) (cap >= 1). */
void fbuf_init(struct fbuf *b, char *p, size_t cap);
/* Appends what fits of the formatted text; a piece that does not fit whole is cut at the
 * buffer's end (possibly inside a UTF-8 character: callers that need whole characters check
 * cut). Returns 0, or -1 when cut (now or before). */
int fbuf_printf(struct fbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fbuf_vprintf(struct fbuf *b, const char *fmt, va_list ap);
/* Appends n bytes of s (what fits); the same return as fbuf_printf. */
int fbuf_add(struct fbuf *b, const char *s, size_t n);

#endif
