/*
 * Streaming inferences by id (see inflight.h): a list of the calls submitted, each with the
 * list's reference, under one lock. A call that ended more than INFLIGHT_KEEP ago leaves the
 * list when the next one is submitted; at most INFLIGHT_MAX are kept. Each inference is
 * recorded in the store when submitted, and call.c records how it ended there.
 */
#include "inference/inflight.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "inference/call.h"
#include "store/inference.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFLIGHT_KEEP (600 * MICRO)
#define INFLIGHT_MAX  4096

struct entry {
    struct call *c;
    struct entry *next;
};

static pthread_mutex_t inflight_mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *inflight;
static int ninflight;

int inflight_submit(const char *org_id, const char *dep_id, json_t *body, char *id)
{
    struct entry *e, **pp;
    int64_t mono = now_mono_us();

    pthread_mutex_lock(&inflight_mu);
    for (pp = &inflight; *pp;) {
        struct entry *x = *pp;

        if (call_ended_before(x->c, mono - INFLIGHT_KEEP)) {
            *pp = x->next;
            ninflight--;
            call_put(x->c);
            free(x);
        } else {
            pp = &x->next;
        }
    }
    if (ninflight >= INFLIGHT_MAX) {
        pthread_mutex_unlock(&inflight_mu);
        json_decref(body);
        return LY_ETHROTTLED;
    }
    e = xcalloc(1, sizeof(*e));
    e->c = call_start(org_id, dep_id, "/v1/chat/completions", body, 1, CALL_EVENTS);
    db_infres_insert(call_id(e->c), org_id, dep_id);
    e->next = inflight;
    inflight = e;
    ninflight++;
    snprintf(id, 40, "%s", call_id(e->c));
    pthread_mutex_unlock(&inflight_mu);
    return 0;
}

struct call *inflight_get(const char *org_id, const char *id)
{
    struct entry *e;

    pthread_mutex_lock(&inflight_mu);
    for (e = inflight; e; e = e->next)
        if (strcmp(call_id(e->c), id) == 0 && strcmp(call_org(e->c), org_id) == 0)
            break;
    if (e)
        call_get(e->c);
    pthread_mutex_unlock(&inflight_mu);
    return e ? e->c : NULL;
}

int inflight_result(const char *org_id, const char *id, struct infres_row *out)
{
    return db_infres_get(org_id, id, out);
}
