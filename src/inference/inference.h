/*
 * Inference (API.md 11, 16.6): dedicated deployments whose replicas are model servers that
 * speak OpenAI's HTTP API (llama-server on CPU profiles, vLLM on GPU ones, from a command
 * template per profile), and calls routed to them. This header is inference.c's: the
 * deployments, their lifecycle and the leases calls take on their replicas.
 *
 * inference.c keeps every live deployment in memory under one lock, and one supervisor thread
 * does all the slow work: starting replicas (replica.c: exec services, in the runs' sandbox
 * and control groups, each on its own loopback port), health checks, restarts, autoscaling,
 * scaling to zero, and the per-replica-second charges. call.c (call.h) leases a replica for a
 * call and hands the model server's bytes to whoever reads the call as they come; inflight.c
 * (inflight.h) keeps streaming inferences by id; upstream.c (upstream.h) runs the transfers
 * (libcurl multi) in the event loop (core/loop.h) of the thread that took the call.
 *
 * Nothing here knows HTTP: api/ turns a call into a response (api/call_stream.c).
 *
 * Thread-safety: every function here may be called from any thread.
 */
#ifndef LYCEUMD_INFERENCE_INFERENCE_H
#define LYCEUMD_INFERENCE_INFERENCE_H

/* main.c calls inference_model_add() and upstream_shutdown() with this header alone. */
#include "inference/replica.h"
#include "inference/upstream.h"
/* The row type (struct dep_row) is the store's. */
#include "store/inference.h"

#include <jansson.h>
#include <stdint.h>

struct config;

/* Reads the config's "inference" object, ends the replicas a previous process left open,
 * restores live deployments and starts the supervisor. 0, or LY_EINVAL after printing why. */
int inference_init(const struct config *cfg);
/* The config's inference.batch_concurrency (default 8): lines in flight per batch. */
int inference_batch_concurrency(const struct config *cfg);
/* Stops every replica (they are not billed past this) and the supervisor. */
void inference_shutdown(void);

/* Creates a deployment from a validated create body; id receives its id (37 bytes). */
int deployment_create(const char *org_id, const char *user_id, json_t *body, char *id);
int deployment_stop(const char *org_id, const char *id);

/* A replica as its deployment shows it. */
struct replica_info {
    char id[40];
    const char *status; /* starting, running, draining or stopping (static text) */
    int64_t started_us; /* unix microseconds */
    int outstanding;    /* requests it is answering */
};
/* A deployment as the API shows it (API.md 16.6): its stored row, its live status, replicas
 * and what it was billed. Its strings are its own: release it. */
struct deployment_info {
    struct dep_row row;
    char status[16]; /* the live status (the stored one when not in memory) */
    struct replica_info *reps;
    size_t nreps;
    int64_t billed; /* micro-credits */
};
struct deployment_infos {
    struct deployment_info *v;
    size_t n;
};
void deployment_info_release(struct deployment_info *d);
void deployment_infos_release(struct deployment_infos *list);
/* 0, LY_ENOTFOUND when org has no such deployment, or LY_EDB. */
int deployment_read(const char *org_id, const char *id, struct deployment_info *out);
/* The org's deployments, newest first (stopped and failed ones too when include_stopped). */
int deployment_read_all(const char *org_id, int include_stopped, struct deployment_infos *out);
/* The org's live deployments' rows alone (no replicas nor billing), newest first: the
 * callable models (dep_rows_release() them). */
int deployment_rows(const char *org_id, struct dep_rows *out);

/* Resolves model (a deployment id, or the hf_model_id of one) in org to the id of a live
 * deployment (dep_id: 37 bytes). LY_ENOTFOUND when none, LY_EUNAVAIL when it failed. */
int inference_resolve(const char *org_id, const char *model, char *dep_id);

/* A lease on a ready replica of a deployment, for one upstream request. */
struct lease {
    char dep_id[40], rep_id[40], org_id[40];
    int port;
    int netns;    /* the replica's network namespace (the lease's own descriptor), or -1 */
    char key[48]; /* the replica's API key */
    int64_t t0;
};
/* Waits (up to the configured wake limit) for a ready replica of dep_id, waking a paused
 * deployment; picks the one with the fewest outstanding requests. Blocks: never call it from
 * a loop's thread (core/loop.h: an HTTP thread). 0, LY_EUNAVAIL on time-out, LY_ENOTFOUND when the
 * deployment ended. */
int inference_acquire(const char *dep_id, struct lease *l);
/* inference_release() for a replica that gave no answer at all (it died and has not been
 * reaped yet): it is replaced at once, and no one else is given it. */
void inference_unreachable(struct lease *l);
/* Ends a lease: the request's latency counts toward autoscaling. */
void inference_release(struct lease *l);

/* Meters a response's usage (an OpenAI "usage" object, or llama.cpp's "timings"). */
void inference_meter(const char *org_id, const char *dep_id, json_t *obj);

#endif
