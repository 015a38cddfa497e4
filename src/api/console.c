/*
 * Serves the web console (api/console.h): index.html at / and at each of the console's own
 * paths (it routes on the client, so a reload of /runs/<id> gets the page too), and its
 * files under /console/, which no API path shares. Every answer carries a strict
 * Content-Security-Policy: scripts, styles and requests only from this origin, no inline
 * script or style, no frames, no plugins; the console renders every string from the API as
 * text, and this is the second wall. The invite page's path holds the invite's token, so the
 * access log shows its pattern and no page sends a Referer.
 *
 * Caching: the script and stylesheet are named by a hash of their content, so they are
 * cached for a year as immutable; index.html is revalidated on every load (no-cache) and
 * answers 304 to a matching If-None-Match. A client that accepts gzip gets the bytes gzipped
 * at build time (its own ETag, Vary: Accept-Encoding).
 */
#include "api/api.h"
#include "api/console.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "        \
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "                  \
    "form-action 'self'; frame-ancestors 'none'"

const struct console_file *console_find(const char *path)
{
    for (const struct console_file *f = console_files; f->path; f++)
        if (strcmp(f->path, path) == 0)
            return f;
    return NULL;
}

int console_accepts_gzip(const char *ae)
{
    const char *p = ae;

    while (p && *p) {
        size_t n;

        p += strspn(p, " \t,");
        n = strcspn(p, ",");
        if (n >= 4 && strncasecmp(p, "gzip", 4) == 0 &&
            (n == 4 || p[4] == ';' || p[4] == ' ' || p[4] == '\t')) {
            /* its q parameter, if any: the first "q=" after a ';' within the item */
            for (size_t i = 4; i + 2 < n; i++)
                if (p[i] == ';') {
                    size_t j = i + 1 + strspn(p + i + 1, " \t");

                    if (j + 2 <= n && (p[j] == 'q' || p[j] == 'Q') && p[j + 1] == '=')
                        return strtod(p + j + 2, NULL) > 0;
                }
            return 1;
        }
        p += n;
    }
    return 0;
}

int console_etag_matches(const char *inm, const char *etag)
{
    size_t n = strlen(etag);

    if (!inm)
        return 0;
    if (strcmp(inm, "*") == 0)
        return 1;
    for (const char *p = inm; (p = strstr(p, etag)); p += n) {
        const char *s = p >= inm + 2 && p[-2] == 'W' && p[-1] == '/' ? p - 2 : p; /* weak */

        if ((s == inm || s[-1] == ' ' || s[-1] == ',' || s[-1] == '\t') &&
            (p[n] == 0 || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
            return 1;
    }
    return 0;
}

static int serve(struct req *req, const struct console_file *f, int immutable)
{
    int gz = console_accepts_gzip(req_header(req, "Accept-Encoding"));
    const char *etag = gz ? f->gz_etag : f->etag;

    req_add_header(req, "Content-Security-Policy", CSP);
    req_add_header(req, "X-Content-Type-Options", "nosniff");
    req_add_header(req, "X-Frame-Options", "DENY");
    req_add_header(req, "Referrer-Policy", "no-referrer");
    req_add_header(req, "Cache-Control",
                   immutable ? "public, max-age=31536000, immutable" : "no-cache");
    req_add_header(req, "Vary", "Accept-Encoding");
    req_add_header(req, "ETag", etag);
    if (console_etag_matches(req_header(req, "If-None-Match"), etag))
        return req_reply_raw(req, 304, "", "", 0);
    if (gz)
        req_add_header(req, "Content-Encoding", "gzip");
    return req_reply_raw(req, 200, f->type, (const char *)(gz ? f->gz : f->data),
                         gz ? f->gz_len : f->len);
}

static int api_console_index(struct req *req)
{
    const struct console_file *f = console_find("index.html");

    if (!f)
        return req_fail(req, LY_ENOTFOUND, "The console was not built into this binary");
    return serve(req, f, 0);
}

static int api_console_file(struct req *req)
{
    const char *name = req_param(req, "file");
    const struct console_file *f = name ? console_find(name) : NULL;

    if (!f || strcmp(name, "index.html") == 0)
        return req_fail(req, LY_ENOTFOUND, "Console file not found");
    return serve(req, f, 1);
}

const struct route api_console_routes[] = {
    {"GET", "/", api_console_index, R_PUBLIC | R_UNDOCUMENTED, "The web console", NULL, NULL},
    {"GET", "/console/{file}", api_console_file, R_PUBLIC | R_UNDOCUMENTED,
     "A file of the web console", NULL, NULL},
    {"GET", "/signin", api_console_index, R_PUBLIC | R_UNDOCUMENTED, "The web console: sign-in",
     NULL, NULL},
    {"GET", "/runs", api_console_index, R_PUBLIC | R_UNDOCUMENTED, "The web console: runs", NULL,
     NULL},
    {"GET", "/runs/{execution_id}", api_console_index, R_PUBLIC | R_UNDOCUMENTED,
     "The web console: a run", NULL, NULL},
    {"GET", "/storage", api_console_index, R_PUBLIC | R_UNDOCUMENTED, "The web console: storage",
     NULL, NULL},
    {"GET", "/settings", api_console_index, R_PUBLIC | R_UNDOCUMENTED, "The web console: settings",
     NULL, NULL},
    {"GET", "/billing", api_console_index, R_PUBLIC | R_UNDOCUMENTED, "The web console: billing",
     NULL, NULL},
    {"GET", "/inference", api_console_index, R_PUBLIC | R_UNDOCUMENTED,
     "The web console: inference", NULL, NULL},
    {"GET", "/operators", api_console_index, R_PUBLIC | R_UNDOCUMENTED,
     "The web console: operators", NULL, NULL},
    {"GET", "/invite/{token}", api_console_index, R_PUBLIC | R_SECRET_PATH | R_UNDOCUMENTED,
     "The web console: accept an invite", NULL, NULL},
    {0},
};
