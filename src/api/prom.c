/*
 * The API's side of the server's own metrics: a request is counted under its route as the
 * router matched it (the mount's prefix and the route's path pattern, both static strings of
 * the route tables) or under a label of its own. metrics/prom.c counts and renders; it knows
 * no HTTP types.
 */
#include "api/api.h"
#include "metrics/prom.h"

void prom_request(const struct mount *mount, const struct route *route, const char *label,
                  const char *method, int status, int64_t duration_us)
{
    const char *prefix = route ? (mount ? mount->prefix : "") : NULL;

    prom_count(prefix, route ? route->path : NULL, label, method, status, duration_us);
}
