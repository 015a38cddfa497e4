/*
 * Dedicated deployments and streaming inference (API.md 11.1, 11.3, 16.6): create (both field
 * sets: hardware_profile, or gpu_type + gpu_count), get, list, stop; submit a chat request and
 * follow it as SSE events queued, token..., finished / failed. The work is in inference/.
 */
#include "api/api.h"
#include "api/call_stream.h"
#include "api/deployment_obj.h"
#include "billing/billing.h"
#include "core/err.h"
#include "core/util.h"
#include "inference/call.h"
#include "inference/inference.h"
#include "inference/inflight.h"
#include "runs/profiles.h"

#include <stdio.h>
#include <string.h>

static int api_inference_create(struct req *req)
{
    const char *profile = body_str(req, "hardware_profile"), *gpu = body_str(req, "gpu_type");
    json_t *body = json_deep_copy(req->json);
    char id[40], name[80];
    long long min_r = body_int(req, "min_replicas", 1), max_r = body_int(req, "max_replicas", 1);
    int err;

    if (!profile && !gpu)
        req_invalid(req, "body", "hardware_profile", "Field required (or gpu_type)", "missing");
    if (max_r < min_r)
        req_invalid(req, "body", "max_replicas", "must be at least min_replicas", "value_error");
    err = req_check_valid(req);
    if (err)
        goto out;
    if (!profile) {
        /* gpu_type "h100" (or "gpu.h100") names the profile gpu.h100. */
        snprintf(name, sizeof(name), "%s%s", strncmp(gpu, "gpu", 3) == 0 ? "" : "gpu.", gpu);
        profile = name;
    }
    if (!profile_find(profile)) {
        err = req_fail(req, LY_EBADREQ, "Unknown hardware_profile '%s'. Valid options: %s", profile,
                       profiles_names());
        goto out;
    }
    err = billing_admit(req->caller->org_id, profile, (int)min_r);
    if (err) {
        err = req_fail(req, err, "Insufficient credits");
        goto out;
    }
    json_object_set_new(body, "hardware_profile", json_string(profile));
    json_object_set_new(body, "min_replicas", json_integer(min_r));
    json_object_set_new(body, "max_replicas", json_integer(max_r));
    err = deployment_create(req->caller->org_id, req->caller->user_id, body, id);
    if (!err)
        err = req_reply(req, json_pack("{s:s,s:s}", "deployment_id", id, "status", "pending"));
out:
    json_decref(body);
    return err;
}

/* Answers the deployment object of id (404 when org has none). */
static int reply_deployment(struct req *req, const char *id)
{
    struct deployment_info d;
    int err = deployment_read(req->caller->org_id, id, &d);

    if (err)
        return err == LY_ENOTFOUND ? req_fail(req, err, "Deployment not found") : err;
    err = req_reply(req, api_deployment_obj(&d));
    deployment_info_release(&d);
    return err;
}

static int api_inference_get(struct req *req)
{
    return reply_deployment(req, req_param(req, "deployment_id"));
}

static int api_inference_list(struct req *req)
{
    const char *inc = req_query(req, "include_stopped");
    struct deployment_infos list;
    json_t *out;
    int err = deployment_read_all(
        req->caller->org_id, inc && (strcmp(inc, "true") == 0 || strcmp(inc, "1") == 0), &list);

    if (err)
        return err;
    out = json_array();
    for (size_t i = 0; i < list.n; i++)
        json_array_append_new(out, api_deployment_obj(&list.v[i]));
    deployment_infos_release(&list);
    return req_reply(
        req, json_pack("{s:o,s:I}", "deployments", out, "total", (json_int_t)json_array_size(out)));
}

static int api_inference_stop(struct req *req)
{
    const char *id = req_param(req, "deployment_id");
    int err = deployment_stop(req->caller->org_id, id);

    if (err)
        return err == LY_ENOTFOUND ? req_fail(req, err, "Deployment not found") : err;
    return reply_deployment(req, id);
}

static int api_inference_submit(struct req *req)
{
    const char *model = body_str(req, "model");
    char dep[40], id[40], url[200];
    int err = inference_resolve(req->caller->org_id, model, dep);

    if (err)
        return req_fail(req, err,
                        err == LY_ENOTFOUND ? "No deployment serves model '%s'"
                                            : "The deployment of '%s' failed",
                        model);
    err = inflight_submit(req->caller->org_id, dep, json_deep_copy(req->json), id);
    if (err)
        return req_fail(req, err, "Too many streaming inferences at once");
    snprintf(url, sizeof(url), "%s/inference/streaming/stream/%s", API_PREFIX, id);
    return req_reply(
        req, json_pack("{s:s,s:s,s:s}", "inference_id", id, "status", "queued", "stream_url", url));
}

/* An inference no longer in memory (long done, or lyceumd restarted): its events from the
 * store, queued and then how it ended (the tokens are in the completion). */
static int stream_replay(struct req *req, const char *id)
{
    struct infres_row o;
    int err = inflight_result(req->caller->org_id, id, &o);
    json_t *q, *ev;
    char *qs, *es = NULL, *body;

    if (err)
        return err == LY_ENOTFOUND ? req_fail(req, err, "Inference not found") : err;
    q = json_pack("{s:s,s:s}", "inference_id", id, "status", "queued");
    qs = json_dumps(q, JSON_WIRE);
    json_decref(q);
    ev = o.event ? json_loads(o.event, 0, NULL) : NULL;
    if (strcmp(o.status, "queued") != 0 && json_is_object(ev))
        es = json_dumps(ev, JSON_WIRE);
    json_decref(ev);
    body = es ? arena_sprintf(&req->arena, "event: queued\ndata: %s\n\nevent: %s\ndata: %s\n\n", qs,
                              o.status, es)
              : arena_sprintf(&req->arena, "event: queued\ndata: %s\n\n", qs);
    free(qs);
    free(es);
    infres_row_release(&o);
    req_add_header(req, "Cache-Control", "no-cache");
    return req_reply_raw(req, 200, "text/event-stream", body, strlen(body));
}

static int api_inference_stream(struct req *req)
{
    struct call *c = inflight_get(req->caller->org_id, req_param(req, "inference_id"));
    struct req_stream s;

    if (!c)
        return stream_replay(req, req_param(req, "inference_id"));
    s = call_stream(c);
    call_put(c);
    req_add_header(req, "Cache-Control", "no-cache");
    req_add_header(req, "X-Accel-Buffering", "no");
    return req_reply_stream(req, "text/event-stream", s);
}

static const struct field create_body[] = {
    {"hf_model_id", FT_STRING, FF_REQUIRED, 1, 200,
     "the model: an id of the operator's model directory, or a model hub id"},
    {"hardware_profile", FT_STRING, FF_NULLABLE, 1, 63, "e.g. cpu, gpu.a100"},
    {"gpu_type", FT_STRING, FF_NULLABLE, 1, 63, "the other field set: e.g. h100"},
    {"gpu_count", FT_INTEGER, FF_NULLABLE, 1, 8, "default 1"},
    {"gpu_vram_gb", FT_INTEGER, FF_NULLABLE, 0, 0, NULL},
    {"vllm_args", FT_STRING, FF_NULLABLE, 0, 4096, "comma-separated vLLM args without --"},
    {"target_rps", FT_NUMBER, FF_REQUIRED, 0, 0, "requests per second one replica should take"},
    {"target_latency_p95_ms", FT_NUMBER, FF_REQUIRED, 0, 0, "p95 latency above which to scale"},
    {"stabilisation_window", FT_INTEGER, FF_REQUIRED, 1, 86400,
     "seconds over which load is measured"},
    {"hf_token", FT_STRING, FF_NULLABLE, 0, 512,
     "for the runtime's model download; stored sealed, never returned"},
    {"min_replicas", FT_INTEGER, FF_NULLABLE, 1, 64, "default 1"},
    {"max_replicas", FT_INTEGER, FF_NULLABLE, 1, 64, "default 1"},
    {0},
};
static const struct field create_resp[] = {
    {"deployment_id", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, "pending"},
    {0},
};
static const struct field dep_resp[] = {
    {"deployment_id", FT_STRING, 0, 0, 0, NULL},
    {"hf_model_id", FT_STRING, 0, 0, 0, NULL},
    {"hardware_profile", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, "pending, starting, running, paused, stopping, stopped, failed"},
    {"errors", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"min_replicas", FT_INTEGER, 0, 0, 0, NULL},
    {"max_replicas", FT_INTEGER, 0, 0, 0, NULL},
    {"replicas", FT_ARRAY, 0, 0, 0, "[{replica_id, status, started_at}]"},
    {"target_rps", FT_NUMBER, 0, 0, 0, NULL},
    {"target_latency_p95_ms", FT_NUMBER, 0, 0, 0, NULL},
    {"stabilisation_window", FT_INTEGER, 0, 0, 0, NULL},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"stopped_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {"billed", FT_NUMBER, 0, 0, 0, "credits charged so far (per replica-second)"},
    {0},
};
static const struct field submit_body[] = {
    {"model", FT_STRING, FF_REQUIRED, 1, 200, "a deployment id or its hf_model_id"},
    {"messages", FT_ARRAY, FF_REQUIRED, 0, 0, "chat messages, as for chat/completions"},
    {"max_tokens", FT_INTEGER, FF_NULLABLE, 1, 1000000, NULL},
    {0},
};
static const struct field submit_resp[] = {
    {"inference_id", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, "queued"},
    {"stream_url", FT_STRING, 0, 0, 0, NULL},
    {0},
};

const struct route api_inference_routes[] = {
    {"POST", "/inference/create", api_inference_create, 0,
     "Create a dedicated deployment (replicas are model servers, autoscaled)", create_body,
     create_resp},
    {"GET", "/inference/list", api_inference_list, 0,
     "The org's deployments (query: include_stopped)", NULL, NULL},
    {"POST", "/inference/streaming/submit", api_inference_submit, 0,
     "Submit a chat request to follow by inference id", submit_body, submit_resp},
    {"GET", "/inference/streaming/stream/{inference_id}", api_inference_stream, 0,
     "SSE: queued, token..., finished (with the completion) or failed", NULL, NULL},
    {"GET", "/inference/{deployment_id}", api_inference_get, 0, "A deployment", NULL, dep_resp},
    {"POST", "/inference/{deployment_id}/stop", api_inference_stop, 0, "Stop a deployment", NULL,
     dep_resp},
    {"DELETE", "/inference/{deployment_id}", api_inference_stop, 0, "Stop a deployment", NULL,
     dep_resp},
    {0},
};
