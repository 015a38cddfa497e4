/*
 * Route tables. Each endpoint group (src/api/<group>.c) exports a table of struct route,
 * ended by an entry whose method is NULL. A route names its method, its path relative to the
 * prefix it is mounted at (segments "{name}" capture one segment), its handler, and the fields
 * of its request body and response. The same field lists drive body validation (422s) and the
 * generated /openapi.json, so the documentation cannot drift from what is enforced.
 */
#ifndef LYCEUMD_HTTP_ROUTE_H
#define LYCEUMD_HTTP_ROUTE_H

struct req;

enum ftype {
    FT_STRING = 1,
    FT_INTEGER,
    FT_NUMBER,
    FT_BOOLEAN,
    FT_OBJECT,
    FT_ARRAY,
    FT_DATETIME, /* an ISO-8601 string */
};

#define FF_REQUIRED 0x1 /* must be present (and not null) */
#define FF_NULLABLE 0x2 /* null is accepted and means "absent" */

/* A field of a request body or response object. min/max bound a string's length or an
 * integer's value when max > 0; an entry with name NULL ends a list. */
struct field {
    const char *name;
    enum ftype type;
    unsigned flags;
    long long min, max;
    const char *desc;
};

#define R_PUBLIC        0x1  /* no credentials needed */
#define R_AUTH_OPTIONAL 0x2  /* credentials used when present, never required */
#define R_SECRET_PATH   0x4  /* the path holds a secret: the access log shows the pattern */
#define R_RESP_ARRAY    0x8  /* the response is a JSON array of objects with the response fields */
#define R_RAW_BODY      0x10 /* the handler reads the body itself (not JSON) */
#define R_STREAM_BODY   0x20 /* the handler takes the body as it arrives (req.h: req_sink) */
/* Matches only a path that ends in a slash (the pattern ends in one too), and is preferred
 * there to a route that matches with the slash ignored; the path without the slash goes to
 * that other route. FastAPI's two declared routes "/models" and "/models/" (router.h). */
#define R_SLASH_ONLY 0x40
/* The handler may block for a while (it runs a command): it runs on a worker, and the HTTP
 * loop goes on with its other connections meanwhile (api/defer.c). */
#define R_BLOCKING 0x80
/* A page, not an API route (the web console): left out of /openapi.json. */
#define R_UNDOCUMENTED 0x100

typedef int (*handler_fn)(struct req *req);

struct route {
    const char *method;
    const char *path;
    handler_fn handler;
    unsigned flags;
    const char *summary;
    const struct field *body;     /* NULL: the route takes no body */
    const struct field *response; /* NULL: documented as a free-form object */
};

/* A route table served under a path prefix ("" for the root). */
struct mount {
    const char *prefix;
    const struct route *routes;
};

#endif
