/* See range.h. */
#include "storage/range.h"

#include <string.h>

static int digit(char c, int hex)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (hex && c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (hex && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse(const char *s, size_t n, uint64_t max, int hex, uint64_t *out)
{
    uint64_t v = 0, base = hex ? 16 : 10;

    if (!n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int d = digit(s[i], hex);

        if (d < 0 || (uint64_t)d > max || v > (max - (uint64_t)d) / base)
            return -1;
        v = v * base + (uint64_t)d;
    }
    *out = v;
    return 0;
}

int range_u64(const char *s, uint64_t max, uint64_t *out)
{
    return parse(s, strlen(s), max, 0, out);
}

int range_hex(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    return parse(s, n, max, 1, out);
}

/* Splits "a-b" (after "bytes=") at its one '-': the lengths of a and b. -1 without one. */
static int split(const char *s, size_t *alen, size_t *blen)
{
    const char *dash = strchr(s, '-');

    if (!dash || strchr(dash + 1, '-'))
        return -1;
    *alen = (size_t)(dash - s);
    *blen = strlen(dash + 1);
    return 0;
}

int range_parse_get(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
    uint64_t a, b;
    size_t alen, blen;

    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return RANGE_NONE;
    h += 6;
    if (split(h, &alen, &blen))
        return RANGE_BAD;
    if (alen == 0) { /* the last b bytes */
        if (parse(h + 1, blen, UINT64_MAX, 0, &b) || b == 0 || size == 0)
            return RANGE_BAD;
        *len = b < size ? b : size;
        *off = size - *len;
        return RANGE_OK;
    }
    if (parse(h, alen, UINT64_MAX, 0, &a) || a >= size)
        return RANGE_BAD;
    b = size - 1;
    if (blen && (parse(h + alen + 1, blen, UINT64_MAX, 0, &b) || b < a))
        return RANGE_BAD;
    if (b >= size)
        b = size - 1;
    *off = a;
    *len = b - a + 1;
    return RANGE_OK;
}

int range_parse_copy(const char *h, int64_t *off, int64_t *len)
{
    uint64_t a, b;
    size_t alen, blen;

    if (!h || strncmp(h, "bytes=", 6) != 0)
        return RANGE_BAD;
    h += 6;
    if (split(h, &alen, &blen) || parse(h, alen, INT64_MAX - 1, 0, &a) ||
        parse(h + alen + 1, blen, INT64_MAX - 1, 0, &b) || b < a)
        return RANGE_BAD;
    *off = (int64_t)a;
    *len = (int64_t)(b - a + 1);
    return RANGE_OK;
}
