/*
 * The OpenAI-compatible routes (API.md 11.2, 16.1, 16.6): POST /chat/completions,
 * POST /completions and GET /models, mounted under /api/v2/external, .../serverless and
 * /openai/v1. A request is routed by its model (a deployment id, or a deployment's
 * hf_model_id) and passed to a replica by a worker thread; the answer streams back chunk by
 * chunk as the model server writes it (inference/call.c). Errors on these paths have OpenAI's
 * shape, {"error": {"message", "type", "param", "code"}}: api_openai_error() rewrites what the
 * dispatcher's error table made (on the Files and Batch API's paths it adds "error" beside
 * "detail": the OpenAI SDK reads the one, Lyceum's clients the other).
 *
 * GET /models is the OpenAI SDK's list at every prefix; under /api/v2/external the same path
 * with a trailing slash is the lyceum CLI's catalogue (api/models.c, an R_SLASH_ONLY route).
 */
#include "api/api.h"
#include "api/call_stream.h"
#include "core/err.h"
#include "core/util.h"
#include "inference/call.h"
#include "inference/inference.h"

#include <stdio.h>
#include <string.h>

static int proxy(struct req *req, const char *path, const char *need)
{
    json_t *b = json_loadb(req->body ? req->body : "", req->body_len, 0, NULL);
    const char *model = json_string_value(json_object_get(b, "model"));
    json_t *v = json_object_get(b, need);
    struct call *c;
    char dep[40];
    int stream, err;

    if (!json_is_object(b)) {
        json_decref(b);
        return req_fail(req, LY_EBADREQ, "We could not parse the JSON body of your request.");
    }
    if (!model) {
        json_decref(b);
        return req_fail(req, LY_EBADREQ, "you must provide a model parameter");
    }
    if (!v || (json_is_array(v) && !json_array_size(v))) {
        json_decref(b);
        return req_fail(req, LY_EBADREQ, "Missing required parameter: '%s'.", need);
    }
    err = inference_resolve(req->caller->org_id, model, dep);
    if (err) {
        req_fail(req, err,
                 err == LY_ENOTFOUND ? "The model '%s' does not exist or you do not have access "
                                       "to it."
                                     : "The deployment of model '%s' failed.",
                 model);
        json_decref(b);
        return err;
    }
    stream = json_is_true(json_object_get(b, "stream"));
    c = call_start(req->caller->org_id, dep, path, b, stream, CALL_RAW);
    req_add_header(req, "Cache-Control", "no-cache");
    req_add_header(req, "X-Accel-Buffering", "no");
    err = req_reply_stream(req, stream ? "text/event-stream" : "application/json", call_stream(c));
    call_put(c);
    return err;
}

static int api_openai_chat(struct req *req)
{
    return proxy(req, "/v1/chat/completions", "messages");
}

static int api_openai_completions(struct req *req)
{
    return proxy(req, "/v1/completions", "prompt");
}

static int api_openai_models(struct req *req)
{
    struct dep_rows rows;
    json_t *out = json_array();

    if (deployment_rows(req->caller->org_id, &rows) == 0) {
        for (size_t i = 0; i < rows.n; i++) {
            const struct dep_row *r = &rows.v[i];

            json_array_append_new(out,
                                  json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "id", r->id, "object",
                                            "model", "created", (json_int_t)(r->created_at / MICRO),
                                            "owned_by", req->caller->org_id, "hf_model_id",
                                            r->hf_model_id, "status", r->status));
        }
        dep_rows_release(&rows);
    }
    return req_reply(req, json_pack("{s:s,s:o}", "object", "list", "data", out));
}

/* The Files and Batch API (api/batches.c), which the OpenAI SDK drives under /api/v2/external:
 * its errors carry OpenAI's "error" beside the "detail" every Lyceum client reads. */
static int files_batches_path(const char *path)
{
    static const char *const groups[] = {API_PREFIX "/files", API_PREFIX "/batches", NULL};

    while (path[0] == '/' && path[1] == '/')
        path++;
    for (int i = 0; groups[i]; i++) {
        size_t n = strlen(groups[i]);

        if (strncmp(path, groups[i], n) == 0 && (path[n] == 0 || path[n] == '/'))
            return 1;
    }
    return 0;
}

/* Under /api/v2/external, /models is OpenAI's only without a trailing slash or more segments:
 * /models/, /models/{id} and the rest are the lyceum CLI's catalogue (api/models.c), whose
 * errors are {"detail"} as everywhere else. */
int api_openai_path(const char *path)
{
    static const char *const tails[] = {"/chat/completions", "/completions", "/models", NULL};

    if (strncmp(path, "/openai/v1/", 11) == 0 || strcmp(path, "/openai/v1") == 0 ||
        strncmp(path, API_PREFIX "/serverless/", sizeof(API_PREFIX "/serverless/") - 1) == 0 ||
        files_batches_path(path))
        return 1;
    for (int i = 0; tails[i]; i++) {
        size_t n = strlen(API_PREFIX) + strlen(tails[i]);

        if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) == 0 &&
            strncmp(path + strlen(API_PREFIX), tails[i], strlen(tails[i])) == 0 &&
            (path[n] == 0 || (path[n] == '/' && strcmp(tails[i], "/models") != 0)))
            return 1;
    }
    return 0;
}

void api_openai_error(struct req *req, int err)
{
    const char *type = "invalid_request_error", *code = NULL, *msg = NULL;
    json_t *detail = json_object_get(req->resp, "detail"), *e;
    char buf[512];

    switch (err) {
    case LY_EUNAUTH:
        type = "authentication_error";
        code = "invalid_api_key";
        break;
    case LY_EFORBIDDEN:
        type = "permission_error";
        break;
    case LY_ENOTFOUND:
        if (!files_batches_path(req->path))
            code = req->match.route ? "model_not_found" : "not_found";
        break;
    case LY_EPAYMENT:
        type = "insufficient_quota";
        code = "insufficient_quota";
        break;
    case LY_ETHROTTLED:
        type = "rate_limit_error";
        break;
    case LY_EUNAVAIL:
        type = "service_unavailable";
        req_add_header(req, "Retry-After", "5");
        break;
    case LY_EINTERNAL:
    case LY_EDB:
    case LY_EIO:
        type = "api_error";
        break;
    default:
        break;
    }
    if (json_is_string(detail)) {
        msg = json_string_value(detail);
    } else if (json_is_array(detail)) {
        /* A validation error: its first message, naming the field. */
        json_t *d0 = json_array_get(detail, 0), *loc = json_object_get(d0, "loc");

        snprintf(buf, sizeof(buf), "%s: %s",
                 json_string_value(json_array_get(loc, json_array_size(loc) - 1))
                     ? json_string_value(json_array_get(loc, json_array_size(loc) - 1))
                     : "body",
                 json_string_value(json_object_get(d0, "msg")));
        msg = buf;
    }
    e = json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message", msg ? msg : err_str(err), "type",
                  type, "param", "code", code);
    if (!json_object_get(json_object_get(e, "error"), "code"))
        json_object_set_new(json_object_get(e, "error"), "code", json_null());
    if (files_batches_path(req->path) && json_is_object(req->resp)) {
        /* Both shapes: the error goes beside the detail. */
        json_object_set(req->resp, "error", json_object_get(e, "error"));
        json_decref(e);
        return;
    }
    json_decref(req->resp);
    req->resp = e;
}

const struct route api_openai_routes[] = {
    {"POST", "/chat/completions", api_openai_chat, R_RAW_BODY,
     "OpenAI-compatible chat completions, routed by model to a deployment (stream supported)", NULL,
     NULL},
    {"POST", "/completions", api_openai_completions, R_RAW_BODY,
     "OpenAI-compatible text completions, routed by model to a deployment", NULL, NULL},
    {"GET", "/models", api_openai_models, 0, "The models (deployments) the caller can call", NULL,
     NULL},
    {0},
};
