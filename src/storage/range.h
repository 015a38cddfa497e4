/*
 * The numbers of storage requests, parsed strictly before any arithmetic: byte ranges (a
 * download's Range, S3's x-amz-copy-source-range) and lengths and counts (Content-Length,
 * x-amz-decoded-content-length, part numbers, max-keys, aws-chunked sizes). Digits only: no
 * sign, no space, no value past its maximum, so that no negative, huge or wrapped value
 * reaches an offset or a length. Pure functions; thread-safe.
 */
#ifndef LYCEUMD_STORAGE_RANGE_H
#define LYCEUMD_STORAGE_RANGE_H

#include <stddef.h>
#include <stdint.h>

/* s as a decimal of digits only, at most max: 0 with *out, or -1 (empty, another character,
 * or more than max). */
int range_u64(const char *s, uint64_t max, uint64_t *out);
/* s[0..n) as hexadecimal digits only, at most max (aws-chunked sizes): 0 or -1. */
int range_hex(const char *s, size_t n, uint64_t max, uint64_t *out);

enum { RANGE_BAD = -1, RANGE_NONE = 0, RANGE_OK = 1 };

/*
 * A download's Range header against an object of size bytes: RANGE_OK with *off and *len for
 * "bytes=a-b" (b past the end is the end), "bytes=a-" and "bytes=-n" (the last n bytes, all of
 * them when n > size); RANGE_NONE (the whole object) without a header, for another unit, or
 * for several ranges; RANGE_BAD (416) for anything else after "bytes=": an inverted range
 * (b < a), a number that does not fit 64 bits, a sign, a start at or past the end, "-0".
 */
int range_parse_get(const char *h, uint64_t size, uint64_t *off, uint64_t *len);

/* x-amz-copy-source-range, exactly "bytes=a-b" with a <= b < 2^63 - 1: RANGE_OK with *off and
 * *len (b - a + 1), else RANGE_BAD. Whether it lies within the source is the copy's check. */
int range_parse_copy(const char *h, int64_t *off, int64_t *len);

#endif
