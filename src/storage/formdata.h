/*
 * A streaming multipart/form-data parser (RFC 7578): bytes go in as they arrive, in pieces of
 * any size, and come out as callbacks per part, so a file part of any size passes through a
 * fixed amount of memory (the part's headers, at most 8 KiB, and less than one boundary of
 * held-back data). Not thread-safe: one parser per request.
 */
#ifndef LYCEUMD_STORAGE_FORMDATA_H
#define LYCEUMD_STORAGE_FORMDATA_H

#include <stddef.h>

#define FORMDATA_HDR_MAX 8192

struct formdata {
    /* Callbacks: each returns 0, or a negative LY_E* code that stops the parse. name and
     * filename are "" when absent; filename NULL when the part is a plain field. */
    int (*part_begin)(void *ctx, const char *name, const char *filename);
    int (*part_data)(void *ctx, const char *buf, size_t n);
    int (*part_end)(void *ctx);
    void *ctx;

    /* The parser's own state. */
    char delim[80]; /* "\r\n--" boundary */
    size_t dlen;
    int state;
    char keep[80]; /* a held-back partial delimiter */
    size_t klen;
    char hdr[FORMDATA_HDR_MAX];
    size_t hlen;
    char after[2];
    size_t alen;
};

/* Reads the boundary from a Content-Type header value. 0, or LY_EINVAL when it is not
 * multipart/form-data with a usable boundary. */
int formdata_init(struct formdata *f, const char *content_type);
/* Feeds n bytes. 0, a callback's error, or LY_EINVAL when the body is malformed. */
int formdata_feed(struct formdata *f, const char *buf, size_t n);
/* 0 when the closing boundary was seen, else LY_EINVAL. */
int formdata_finish(struct formdata *f);

#endif
