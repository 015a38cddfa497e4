/* See buf.h. */
#include "core/buf.h"

#include "core/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t cap)
{
    b->p = NULL;
    b->len = 0;
    b->room = 0;
    b->cap = cap;
}

/* Room for len + n bytes and the NUL; 0, or LY_ETOOLARGE past the cap. */
static int grow(struct buf *b, size_t n)
{
    if (n > b->cap - b->len)
        return LY_ETOOLARGE;
    size_t need = b->len + n + 1;
    if (need <= b->room)
        return 0;
    size_t room = b->room ? b->room : 64;
    while (room < need)
        room = room > SIZE_MAX / 2 ? need : room * 2;
    if (b->cap < SIZE_MAX && room > b->cap + 1)
        room = b->cap + 1;
    char *p = realloc(b->p, room);
    if (!p)
        abort();
    b->p = p;
    b->room = room;
    return 0;
}

int buf_add(struct buf *b, const void *s, size_t n)
{
    int rc = grow(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int buf_adds(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int k = vsnprintf(NULL, 0, fmt, again);
    va_end(again);
    if (k < 0)
        return LY_EINVAL;
    int rc = grow(b, (size_t)k);
    if (rc < 0)
        return rc;
    vsnprintf(b->p + b->len, (size_t)k + 1, fmt, ap);
    b->len += (size_t)k;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *buf_space(struct buf *b, size_t n)
{
    if (grow(b, n) < 0)
        return NULL;
    return b->p + b->len;
}

void buf_commit(struct buf *b, size_t k)
{
    b->len += k;
    b->p[b->len] = '\0';
}

size_t buf_collect(char *p, size_t size, size_t n, void *b)
{
    size_t k = size * n;

    return buf_add(b, p, k) == 0 ? k : 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

char *buf_take(struct buf *b, size_t *len)
{
    char *p = b->p;
    if (len)
        *len = b->len;
    if (!p) {
        p = malloc(1);
        if (!p)
            abort();
        p[0] = '\0';
    }
    buf_init(b, b->cap);
    return p;
}

void buf_free(struct buf *b)
{
    free(b->p);
    buf_init(b, b->cap);
}
