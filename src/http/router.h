/*
 * Matching a request path against mounted route tables. Pure functions over the tables: no
 * allocation beyond the caller's arena, safe from any thread.
 */
#ifndef LYCEUMD_HTTP_ROUTER_H
#define LYCEUMD_HTTP_ROUTER_H

#include "http/route.h"

#define ROUTER_MAX_PARAMS 8

struct arena;

struct route_match {
    const struct route *route;
    const struct mount *mount;
    int nparams;
    const char *names[ROUTER_MAX_PARAMS];
    const char *values[ROUTER_MAX_PARAMS];
    int path_matched; /* some route has this path, whatever its method (404 vs 405) */
    char allow[64];   /* methods that the path answers, for a 405's Allow header */
};

/*
 * Finds the route for method and path among the mounts (an array ended by a NULL routes).
 * A trailing slash on either side is ignored, with one exception: a route flagged R_SLASH_ONLY
 * matches only a path with the slash, and wins there over routes that ignore it, whatever the
 * order of the mounts (so "/models" and "/models/" can be two routes). Returns 0 and fills
 * m->route, or LY_ENOTFOUND (no such path) or LY_EMETHOD (the path exists with other
 * methods). Captured values are copied into the arena.
 */
int router_match(const struct mount *mounts, const char *method, const char *path,
                 struct arena *arena, struct route_match *m);

#endif
