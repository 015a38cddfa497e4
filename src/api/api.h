/*
 * The API layer: one file per endpoint group of API.md, each exporting its route table, and
 * the dispatcher that serves them. Handlers are thin: validate, call the domain, reply.
 */
#ifndef LYCEUMD_API_API_H
#define LYCEUMD_API_API_H

#include "auth/caller.h"
#include "core/config.h"
#include "core/json.h"
#include "http/req.h"
#include "http/route.h"

/* The route tables, one per group (src/api/<group>.c). */
extern const struct route api_meta_routes[];
extern const struct route api_auth_routes[];
extern const struct route api_user_routes[];
extern const struct route api_mfa_routes[];
extern const struct route api_orgs_routes[];
extern const struct route api_invites_routes[];
extern const struct route api_legacy_v1_routes[];
extern const struct route api_runs_routes[];
extern const struct route api_runs_view_routes[];
extern const struct route api_runs_legacy_v1_routes[];
extern const struct route api_machines_routes[];
extern const struct route api_billing_routes[];
extern const struct route api_storage_routes[];
extern const struct route api_storage_chunk_routes[];
extern const struct route api_envvars_routes[];
extern const struct route api_inference_routes[];
extern const struct route api_openai_routes[];
extern const struct route api_models_routes[];
extern const struct route api_batches_routes[];
extern const struct route api_logs_routes[];
extern const struct route api_metrics_routes[];
extern const struct route api_prometheus_routes[];
extern const struct route api_console_routes[];

/* Every mount, ended by {NULL, NULL}: what the server serves and /openapi.json lists. */
extern const struct mount api_mounts[];

#define API_PREFIX "/api/v2/external"

/* Settings the handlers read; set once at start-up. */
struct api_settings {
    const char *data_dir;
    const char *version;
};
extern struct api_settings api_settings;

/* Starts the HTTP server on cfg's address with the handlers below (api/serve.c), its
 * connection limits fitted to nofile, the descriptor limit in force: 0, or LY_EIO when the
 * address cannot be bound (logged). Once, from main. */
int api_serve_start(const struct config *cfg, unsigned long long nofile);
/* Stops the server, then the port proxy's relays still open. Nothing when it never started. */
void api_serve_stop(void);

/* Routes a request, resolves its caller and org, and runs the handler (http_options.dispatch). */
void api_dispatch(struct req *req);
/* The dispatcher's tail: err (a handler's return) made the answer, counted and logged. */
void api_dispatch_finish(struct req *req, int err);
/* A route with R_BLOCKING: its handler and api_dispatch_finish() run on a worker once the
 * server suspends the connection (defer.c). 1 when deferred, 0 when it must run here. */
int api_defer(struct req *req);
/* The workers of blocking handlers: started with the HTTP server, stopped after it. */
int api_defer_start(void);
void api_defer_stop(void);

/* The headers-only pass of a request (http_options.begin): for R_STREAM_BODY routes and S3
 * uploads it resolves the route and caller and lets the handler set up req->sink before the
 * body arrives; api_dispatch() then finishes such a request. */
void api_begin(struct req *req);

/* The port proxy (api/ports.c): a request whose Host names a run's port under the configured
 * port_domain ("<execution_id>-<port>.<port_domain>") is one; api_ports_serve() answers it. */
int api_ports_request(struct req *req);
void api_ports_serve(struct req *req);

/* The S3 endpoint (api/s3.c): a request signed with SigV4 (header or presigned) is S3. */
int s3_is_request(struct req *req);
void s3_begin(struct req *req);
void s3_dispatch(struct req *req);

/* Builds the OpenAPI 3.1 document of every mounted route. The caller owns the result. */
json_t *api_openapi(void);

/* Reads an optional body field expires_at (validated as a datetime), which must lie in the
 * future: 0 when absent, else microseconds. Records a 422 otherwise. */
int api_expires_at(struct req *req, int64_t *out);

/* The OpenAI-compatible paths (api/openai.c) answer errors in OpenAI's shape: 1 when path is
 * one; api_openai_error() rewrites the error response req_set_error() made. */
int api_openai_path(const char *path);
void api_openai_error(struct req *req, int err);

/* Counts one answered request in /metrics (api/prom.c, over metrics/prom.h's prom_count()):
 * by its route (mount and route NULL for a path no route matched), or by label ("s3",
 * "ports") when label is not NULL. Any thread. */
void prom_request(const struct mount *mount, const struct route *route, const char *label,
                  const char *method, int status, int64_t duration_us);

/* This machine's name, as logs and metrics report it (api/logs.c). */
const char *api_hostname(void);

/* Requires the caller's role in the resolved org to be at least min (403 otherwise). */
int api_require_role(struct req *req, enum role min);

#endif
