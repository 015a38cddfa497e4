/*
 * Inference (API.md 11, 16.6): dedicated deployments whose replicas are model servers that
 * speak OpenAI's HTTP API (llama-server on CPU profiles, vLLM on GPU ones, from a command
 * template per profile), and calls routed to them.
 *
 * deploy.c keeps every live deployment in memory under one lock, and one supervisor thread
 * does all the slow work: starting replicas (replica.c: exec services, in the runs' sandbox
 * and control groups, each on its own loopback port), health checks, restarts, autoscaling,
 * scaling to zero, and the per-replica-second charges. call.c leases a replica for a call and
 * hands the model server's bytes to a streamed HTTP response as they come; upstream.c runs
 * the transfers (libcurl multi) in the event loop of the HTTP thread that took the call.
 *
 * Thread-safety: every function here may be called from any thread.
 */
#ifndef LYCEUMD_INFERENCE_INFERENCE_H
#define LYCEUMD_INFERENCE_INFERENCE_H

#include "http/req.h"

#include <curl/curl.h>
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

/* The directory of operator-registered models (`lyceumd model add`): DATA/models. */
int inference_model_add(const char *data_dir, const char *id, const char *path);

/* Creates a deployment from a validated create body; id receives its id (37 bytes). */
int deployment_create(const char *org_id, const char *user_id, json_t *body, char *id);
/* The deployment object of API.md 16.6, or NULL (*err LY_ENOTFOUND when none). */
json_t *deployment_json(const char *org_id, const char *id, int *err);
/* {"deployments": [...], "total"} */
json_t *deployment_list_json(const char *org_id, int include_stopped, int *err);
int deployment_stop(const char *org_id, const char *id);
/* The org's callable models, as OpenAI's model list entries. */
json_t *inference_models(const char *org_id);

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
/* Sets h up to call path on a replica listening on port of its own loopback: sockets are
 * made in its network namespace (*netns, which must outlive the transfer; -1: the host's)
 * and its API key goes in an Authorization header appended to *hdr (the caller sets
 * CURLOPT_HTTPHEADER to *hdr afterwards). Nothing of a replica answers without its key. */
void replica_curl(CURL *h, const int *netns, int port, const char *key, const char *path,
                  struct curl_slist **hdr);
/* Waits (up to the configured wake limit) for a ready replica of dep_id, waking a paused
 * deployment; picks the one with the fewest outstanding requests. Blocks: never call it from
 * an HTTP thread. 0, LY_EUNAVAIL on time-out, LY_ENOTFOUND when the deployment ended. */
int inference_acquire(const char *dep_id, struct lease *l);
/* inference_release() for a replica that gave no answer at all (it died and has not been
 * reaped yet): it is replaced at once, and no one else is given it. */
void inference_unreachable(struct lease *l);
/* Ends a lease: the request's latency counts toward autoscaling. */
void inference_release(struct lease *l);

/* call.c. The kinds of output a call produces. */
enum call_mode {
    CALL_RAW,    /* the upstream body as it comes (OpenAI routes, stream or not) */
    CALL_EVENTS, /* SSE events queued, token..., finished/failed (streaming inference) */
};
struct call;
/* Starts a call of path ("/v1/chat/completions") on deployment dep_id with body (taken) in a
 * worker thread. Returns the call with one reference for the caller. */
struct call *call_start(const char *org_id, const char *dep_id, const char *path, json_t *body,
                        int stream, enum call_mode mode);
/* A streamed response reading the call from its beginning (takes a reference). */
struct req_stream call_stream(struct call *c);
void call_put(struct call *c);

/* Streaming inference (16.6): calls by inference id, kept a while after they end. */
int inflight_submit(const char *org_id, const char *dep_id, json_t *body, char *id);
struct call *inflight_get(const char *org_id, const char *id);

/* One blocking request (the batch runner's threads): the HTTP status and the body (the
 * caller frees it), or a negative LY_E* code with why set. */
int inference_call_sync(const char *org_id, const char *dep_id, const char *path, json_t *body,
                        long *status, char **resp, char *why, size_t n);

/* upstream.c: where a call's transfers run. upstream_here() is the calling HTTP thread's own
 * (NULL elsewhere: the I/O thread's); capture it where the request arrives. */
struct uloop;
struct uloop *upstream_here(void);
/* Runs h's transfer on u (NULL: the I/O thread), whose thread then runs its callbacks, and
 * returns how it ended, as curl_easy_perform() would. Blocks the calling thread. */
CURLcode upstream_perform(struct uloop *u, CURL *h);
/* After the HTTP server stopped: transfers still running, and later ones, end aborted. */
void upstream_shutdown(void);

/* Meters a response's usage (an OpenAI "usage" object, or llama.cpp's "timings"). */
void inference_meter(const char *org_id, const char *dep_id, json_t *obj);

#endif
