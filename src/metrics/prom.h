/*
 * The server's own metrics, in Prometheus' text format (GET /metrics): requests by route
 * pattern, method and status with a latency histogram, runs by status and profile, queue
 * depth and capacity per profile, ledger totals by kind, log bytes stored.
 *
 * prom_count() is called once per answered request from any HTTP thread and takes no lock
 * once its (route, method, status) has a slot. prom_render() reads the store and the
 * scheduler; thread-safe. It knows no HTTP types: api/ (prom_request() in api/prom.c) names a
 * request's route by its mount's prefix and its path pattern.
 */
#ifndef LYCEUMD_METRICS_PROM_H
#define LYCEUMD_METRICS_PROM_H

#include <stddef.h>
#include <stdint.h>

/* Counts one request. prefix and path are the matched route's mount prefix and path pattern,
 * both NULL for a path no route matched; label, when not NULL, names the route instead
 * ("s3"). They must be static strings (their addresses are the counters' keys). The raw path
 * is never a label. */
void prom_count(const char *prefix, const char *path, const char *label, const char *method,
                int status, int64_t duration_us);

/* The exposition text, malloc'd (the caller frees it); *len its length. */
char *prom_render(size_t *len);

/* Whether GET /metrics is served (the config's metrics_endpoint); set once at start-up. */
void prom_set_enabled(int on);
int prom_enabled(void);

#endif
