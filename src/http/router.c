/*
 * The router walks each mount whose prefix starts the path, then each route of its table,
 * comparing segment by segment. Tables are small (tens of routes), so a linear scan costs
 * less than building an index and keeps the tables the single source of truth.
 *
 * A trailing slash is ignored on both sides, except for routes flagged R_SLASH_ONLY: a path
 * with a trailing slash is first matched against those alone (a first pass), then against
 * every other route with the slash ignored (a second pass, which never sees them). So a
 * slash-only route takes its slashed path from any route that ignores the slash, wherever
 * its table is mounted, and the unslashed path, or a method it lacks, goes on to the others.
 */
#include "http/router.h"
#include "core/arena.h"
#include "core/err.h"

#include <string.h>

/* Length of p without one trailing slash (a lone "/" stays). */
static size_t trimmed_len(const char *p, size_t n)
{
    if (n > 1 && p[n - 1] == '/')
        return n - 1;
    return n;
}

/* Matches path[0..plen) against pattern; on success fills names/values from the arena. */
static int match_pattern(const char *pattern, const char *path, size_t plen, struct arena *arena,
                         struct route_match *m)
{
    size_t qlen = trimmed_len(pattern, strlen(pattern));
    size_t i = 0, j = 0;
    int n = 0;

    while (i < qlen && j < plen) {
        if (pattern[i] == '{') {
            const char *close = memchr(pattern + i, '}', qlen - i);
            size_t start = j;
            int tail;

            if (!close || n >= ROUTER_MAX_PARAMS)
                return 0;
            /* "{name...}" at the end takes the rest of the path, slashes and all. */
            tail = close - pattern >= 4 && memcmp(close - 3, "...", 3) == 0;
            while (j < plen && (tail || path[j] != '/'))
                j++;
            if (j == start)
                return 0;
            if (arena) {
                m->names[n] = arena_strndup(arena, pattern + i + 1,
                                            (size_t)(close - pattern) - i - 1 - (tail ? 3 : 0));
                m->values[n] = arena_strndup(arena, path + start, j - start);
            }
            n++;
            i = (size_t)(close - pattern) + 1;
            continue;
        }
        if (pattern[i] != path[j])
            return 0;
        i++;
        j++;
    }
    if (i != qlen || j != plen)
        return 0;
    m->nparams = n;
    return 1;
}

/* One pass over the mounts: the slash pass looks only at R_SLASH_ONLY routes and only at a
 * path that ends in a slash, the other pass only at the rest. 0 when a route matched. */
static int scan(const struct mount *mounts, const char *method, const char *path,
                struct arena *arena, struct route_match *m, int slash_pass)
{
    for (const struct mount *mt = mounts; mt->routes; mt++) {
        size_t pre = strlen(mt->prefix);
        const char *rest;
        size_t rlen;

        if (strncmp(path, mt->prefix, pre) != 0 || (path[pre] != '/'))
            continue;
        rest = path + pre;
        rlen = trimmed_len(rest, strlen(rest));
        if (slash_pass && rlen == strlen(rest))
            continue; /* no trailing slash (or the lone "/") */
        for (const struct route *r = mt->routes; r->method; r++) {
            struct route_match tmp;

            if (!(r->flags & R_SLASH_ONLY) != !slash_pass)
                continue;
            memset(&tmp, 0, sizeof(tmp));
            if (!match_pattern(r->path, rest, rlen, NULL, &tmp))
                continue;
            if (strcmp(r->method, method) != 0) {
                size_t al = strlen(m->allow);

                m->path_matched = 1;
                if (!strstr(m->allow, r->method) && al + strlen(r->method) + 3 < sizeof(m->allow))
                    strcat(strcat(m->allow, al ? ", " : ""), r->method);
                continue;
            }
            match_pattern(r->path, rest, rlen, arena, m);
            m->route = r;
            m->mount = mt;
            return 0;
        }
    }
    return 1;
}

int router_match(const struct mount *mounts, const char *method, const char *path,
                 struct arena *arena, struct route_match *m)
{
    size_t n = strlen(path);

    memset(m, 0, sizeof(*m));
    /* A path with a trailing slash goes first to the routes declared only with one. */
    if (n > 1 && path[n - 1] == '/' && scan(mounts, method, path, arena, m, 1) == 0)
        return 0;
    if (scan(mounts, method, path, arena, m, 0) == 0)
        return 0;
    return m->path_matched ? LY_EMETHOD : LY_ENOTFOUND;
}
