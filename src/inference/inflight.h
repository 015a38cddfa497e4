/*
 * Streaming inference (API.md 16.6; inflight.c): calls by inference id, kept in memory a
 * while after they end, and how each ended kept in the store for a stream read later.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef LYCEUMD_INFERENCE_INFLIGHT_H
#define LYCEUMD_INFERENCE_INFLIGHT_H

/* The row type (struct infres_row) is the store's. */
#include "store/inference.h"

#include <jansson.h>

struct call;

/* Starts a streaming inference of body (taken) on deployment dep_id; id receives its id
 * (40 bytes). LY_ETHROTTLED when too many are in memory. */
int inflight_submit(const char *org_id, const char *dep_id, json_t *body, char *id);
/* The call of inference id of org while it is in memory (a reference: call_put() it), or
 * NULL. */
struct call *inflight_get(const char *org_id, const char *id);
/* How inference id of org ended, from the store, for a stream read after it left memory
 * (infres_row_release() it): 0, LY_ENOTFOUND, or LY_EDB. */
int inflight_result(const char *org_id, const char *id, struct infres_row *out);

#endif
