/*
 * The dispatcher: every request passes here once. It matches the route (404/405), resolves
 * the caller from the Authorization header and the org from the key, X-Org-Slug or the
 * default org (401/403), validates a JSON body against the route's fields (422), and only
 * then runs the handler. Errors from any step become a response through one table
 * (req_set_error), so handlers never format error bodies.
 *
 * A request that failed for want of a file descriptor (its thread's database connection could
 * not be opened, or a file or socket could not be: EMFILE, ENFILE) answers 503 with
 * Retry-After instead of 500: the server is short of a resource for a moment, the request was
 * fine.
 */
#include "api/api.h"
#include "auth/identity.h"
#include "billing/billing.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "metrics/prom.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

struct api_settings api_settings = {.data_dir = "var", .version = "0.1.0"};

const struct mount api_mounts[] = {
    {"", api_meta_routes},
    {API_PREFIX, api_meta_routes},
    {API_PREFIX, api_auth_routes},
    {API_PREFIX, api_user_routes},
    {API_PREFIX, api_mfa_routes},
    {API_PREFIX, api_orgs_routes},
    {API_PREFIX, api_invites_routes},
    {API_PREFIX, api_machines_routes},
    {API_PREFIX, api_billing_routes},
    {API_PREFIX, api_runs_routes},
    {API_PREFIX, api_runs_view_routes},
    {API_PREFIX, api_storage_routes},
    {API_PREFIX, api_storage_chunk_routes},
    {API_PREFIX, api_envvars_routes},
    {API_PREFIX, api_inference_routes},
    {API_PREFIX, api_openai_routes},
    {API_PREFIX "/serverless", api_openai_routes},
    {"/openai/v1", api_openai_routes},
    {API_PREFIX, api_models_routes},
    {API_PREFIX, api_batches_routes},
    {API_PREFIX, api_logs_routes},
    {API_PREFIX, api_metrics_routes},
    {"", api_prometheus_routes},
    {API_PREFIX, api_prometheus_routes},
    {"/api/v1", api_legacy_v1_routes},
    {"/api/v1", api_runs_legacy_v1_routes},
    {"", api_console_routes},
    {NULL, NULL},
};

/* The path routes are matched on: a run of slashes at its start counts as one, so that a
 * client whose base URL was saved with a trailing slash ("http://host/" + "/api/...") is
 * served as if it had not been. Slashes further on are left alone (they are part of storage
 * keys, which refuse empty segments themselves); S3 requests never come here. */
static const char *route_path(const struct req *req)
{
    const char *p = req->path;

    while (p[0] == '/' && p[1] == '/')
        p++;
    return p;
}

static int has_body(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
}

static int authenticate(struct req *req)
{
    const char *auth = req_header(req, "Authorization");
    const char *why = NULL;
    int optional = req->match.route->flags & (R_PUBLIC | R_AUTH_OPTIONAL);
    int err;

    if (!auth) {
        if (optional)
            return 0;
        req_add_header(req, "WWW-Authenticate", "Bearer");
        return req_fail(req, LY_EUNAUTH, "Not authenticated");
    }
    if (req->match.route->flags & R_PUBLIC)
        return 0;
    err = identity_authenticate(&req->arena, auth, req->caller, &why);
    if (err) {
        if (err == LY_EUNAUTH)
            req_add_header(req, "WWW-Authenticate", "Bearer");
        return req_fail(req, err, "%s", why ? why : err_str(err));
    }
    err = identity_resolve_org(&req->arena, req->caller, req_header(req, "X-Org-Slug"), &why);
    if (err)
        return req_fail(req, err, "%s", why ? why : err_str(err));
    if (billing_free_enabled())
        billing_touch(req->caller->org_id); /* this month's free credits, before any balance */
    return 0;
}

/* Whether the request's failure (err) came from a shortage of descriptors; clears the store's
 * mark. errno is 0 before each handler runs, so EMFILE here is this request's. */
static int out_of_descriptors(int err)
{
    int store = err_take_unavailable();

    if (store)
        return 1;
    return (err == LY_EIO || err == LY_EINTERNAL || err == LY_EDB) &&
           (errno == EMFILE || errno == ENFILE);
}

static void retry_after(struct req *req)
{
    for (int i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->hname[i], "Retry-After") == 0)
            return;
    req_add_header(req, "Retry-After", "1");
}

#define BUSY_DETAIL                                                                                \
    "The server is short of file descriptors or database connections at the moment; "              \
    "retry shortly"

/* An S3 request that failed so: S3's SlowDown, which S3 clients retry. */
static void s3_busy(struct req *req)
{
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Error><Code>SlowDown</Code><Message>" BUSY_DETAIL "</Message></Error>";

    if (req->status < 500 || !out_of_descriptors(LY_EINTERNAL))
        return;
    retry_after(req);
    req_set_error(req, LY_EUNAVAIL);
    json_decref(req->resp);
    req->resp = NULL;
    req_reply_raw(req, 503, "application/xml", xml, sizeof(xml) - 1);
}

/* Every request gets its caller (zeroed: anonymous) before anything can read it, so that
 * handlers of public and optional routes, and the S3 and port paths, see a caller too. It
 * lives in the request's arena. */
static void caller_init(struct req *req)
{
    if (req->caller)
        return;
    req->caller = arena_alloc(&req->arena, sizeof(*req->caller));
    memset(req->caller, 0, sizeof(*req->caller));
}

void api_begin(struct req *req)
{
    int err;

    caller_init(req);
    err_take_unavailable(); /* only what this request meets counts */
    errno = 0;
    if (api_ports_request(req))
        return; /* a run's port: its body is buffered, then api_dispatch() sends it on */
    if (s3_is_request(req)) {
        s3_begin(req);
        return;
    }
    if ((strcmp(req->method, "POST") != 0 && strcmp(req->method, "PUT") != 0) ||
        router_match(api_mounts, req->method, route_path(req), &req->arena, &req->match) ||
        !(req->match.route->flags & R_STREAM_BODY))
        return; /* everything else is answered once its body is in */
    req->begun = 1;
    err = authenticate(req);
    if (!err) {
        req->phase = REQ_BEGIN;
        err = req->match.route->handler(req);
    }
    req->begin_err = err;
}

void api_dispatch(struct req *req)
{
    const struct route *r;
    int err;

    caller_init(req);
    if (!req->begun) {
        err_take_unavailable(); /* only what this request meets counts */
        errno = 0;
    }
    if (!req->begun && api_ports_request(req)) {
        api_ports_serve(req);
        return;
    }
    if (s3_is_request(req)) {
        s3_dispatch(req);
        s3_busy(req);
        prom_request(NULL, NULL, "s3", req->method, req->status, now_mono_us() - req->start_us);
        return;
    }
    if (req->begun) {
        err = req->begin_err;
        if (!err) {
            req->phase = REQ_END;
            err = req->match.route->handler(req);
        }
        goto out;
    }
    err = router_match(api_mounts, req->method, route_path(req), &req->arena, &req->match);
    if (err == LY_EMETHOD) {
        req_add_header(req, "Allow", req->match.allow);
        req_fail(req, err, "Method Not Allowed");
        goto out;
    }
    if (err) {
        req_fail(req, err, "Not Found");
        goto out;
    }
    r = req->match.route;
    err = authenticate(req);
    if (err)
        goto out;
    if (r->body && !(r->flags & R_RAW_BODY) && has_body(req->method)) {
        err = req_parse_body(req, r->body);
        if (err)
            goto out;
    }
    if (r->flags & R_STREAM_BODY) {
        /* A streaming route whose body was buffered after all (no headers stage ran): the
         * same three steps, with the whole body as the one piece. */
        req->phase = REQ_BEGIN;
        err = r->handler(req);
        if (!err && req->sink.write && req->body_len)
            req->sink_err = req->sink.write(req->sink.ctx, req->body, req->body_len);
        req->phase = REQ_END;
        if (!err)
            err = r->handler(req);
        goto out;
    }
    if ((r->flags & R_BLOCKING) && api_defer(req))
        return; /* the handler and the tail below run on a worker (defer.c) */
    err = r->handler(req);
out:
    api_dispatch_finish(req, err);
}

void api_dispatch_finish(struct req *req, int err)
{
    if ((err < 0 || req->status >= 500) && out_of_descriptors(err)) {
        err = req_fail(req, LY_EUNAVAIL, BUSY_DETAIL);
        retry_after(req);
    }
    if (err < 0)
        req_set_error(req, err);
    if (err < 0 && api_openai_path(route_path(req)))
        api_openai_error(req, err);
    if (err == LY_EINTERNAL || err == LY_EDB || err == LY_EIO)
        log_error("request %s failed: %s", req->request_id, req->detail ? req->detail : "");
    prom_request(req->match.route ? req->match.mount : NULL, req->match.route, NULL, req->method,
                 req->status, now_mono_us() - req->start_us);
}

int api_require_role(struct req *req, enum role min)
{
    if (req->caller->role >= min)
        return 0;
    return req_fail(req, LY_EFORBIDDEN, "This action needs the %s role in organization '%s'",
                    role_name(min), req->caller->org_slug ? req->caller->org_slug : "?");
}
