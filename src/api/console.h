/*
 * The web console (console/, built by `make` with npm): its files, embedded at build time
 * (scripts/embed-console.sh writes $(B)/gen/console_files.c from console/dist), and served by
 * api/console.c at / (index.html, also for the console's own client-side paths) and under
 * /console/ (the hashed script and stylesheet).
 */
#ifndef LYCEUMD_API_CONSOLE_H
#define LYCEUMD_API_CONSOLE_H

#include <stddef.h>

/* One built file: its path below dist/ ("index.html"), content type, bytes and length, the
 * same gzipped, and a quoted ETag for each. The table ends with an entry whose path is NULL. */
struct console_file {
    const char *path;
    const char *type;
    const unsigned char *data;
    size_t len;
    const unsigned char *gz;
    size_t gz_len;
    const char *etag;
    const char *gz_etag;
};

extern const struct console_file console_files[];

/* The file at path below dist/, or NULL. */
const struct console_file *console_find(const char *path);

/* Whether an Accept-Encoding header (NULL: none) takes gzip, with a q that is not 0. */
int console_accepts_gzip(const char *accept_encoding);

/* Whether an If-None-Match header (NULL: none) names etag (quoted), or is "*"; a weak tag
 * (W/"...") matches its strong one. */
int console_etag_matches(const char *if_none_match, const char *etag);

#endif
