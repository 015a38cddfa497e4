/* See fbuf.h. */
#include "core/fbuf.h"

#include <stdio.h>
#include <string.h>

void fbuf_init(struct fbuf *b, char *p, size_t cap)
{
    b->p = p;
    b->cap = cap;
    b->len = 0;
    b->cut = 0;
    p[0] = '\0';
}

int fbuf_vprintf(struct fbuf *b, const char *fmt, va_list ap)
{
    size_t room = b->cap - b->len;
    int k = vsnprintf(b->p + b->len, room, fmt, ap);

    if (k < 0) {
        b->p[b->len] = '\0'; /* an encoding error: nothing added */
        b->cut = 1;
        return -1;
    }
    if ((size_t)k >= room) {
        b->len = b->cap - 1; /* vsnprintf wrote what fitted and the NUL */
        b->cut = 1;
    } else {
        b->len += (size_t)k;
    }
    return b->cut ? -1 : 0;
}

int fbuf_printf(struct fbuf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = fbuf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int fbuf_add(struct fbuf *b, const char *s, size_t n)
{
    size_t room = b->cap - 1 - b->len;

    if (n > room) {
        n = room;
        b->cut = 1;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return b->cut ? -1 : 0;
}
