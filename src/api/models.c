/*
 * The model catalogue and synchronous calls of the `lyceum` CLI's older inference commands
 * (`lyceum models list|info|instances`, `lyceum chat send|models|image`), served from the
 * caller's org's deployments under /api/v2/external:
 *
 *   GET /models/                   every model of the catalogue, as a JSON array
 *   GET /models/sync               those callable synchronously now: deployments running or
 *                                  paused (a call wakes a paused one)
 *   GET /models/async              those the Batch API can run lines against: every live
 *                                  deployment (pending and starting ones too: a batch line
 *                                  waits for a replica, as inference_call_sync does)
 *   GET /models/type/{type}        those of one type ("text": every deployment serves chat)
 *   GET /models/{model_id}         one entry (a deployment id, or the hf_model_id a call names)
 *   GET /models/{model_id}/instances  its replicas, with their status
 *   POST /sync/                    one chat call, answered once it is done
 *
 * A catalogue entry is one live deployment (not stopped, not failed): its id is the
 * deployment id, the model a call names, and it carries both the CLI's fields and OpenAI's
 * Model fields (id, object, created, owned_by). GET /models/ is R_SLASH_ONLY: the OpenAI SDK's
 * GET /models (api/openai.c) keeps its {"object": "list", "data"} shape.
 *
 * Tokens are not charged here (a deployment is billed per replica-second), so
 * price_per_1k_tokens and a call's cost are 0 and price_per_hour is the profile's price of one
 * replica. context_length is read from the model file of the operator's model directory when
 * it is a GGUF file (its "<architecture>.context_length"), null otherwise.
 *
 * POST /sync/ never blocks its HTTP thread: the call runs as an OpenAI call does
 * (inference/call.c, CALL_RAW), and the response is a stream whose status callback reads the
 * model server's whole answer first (suspending the connection until it has come), then turns
 * it into the CLI's shape: the chat completion with "output", "latency_ms" and "cost" added.
 * A model server's refusal, or a call no replica could take, keeps its status and OpenAI's
 * error body, as /chat/completions answers it.
 */
#include "api/api.h"
#include "api/call_stream.h"
#include "api/deployment_obj.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "inference/call.h"
#include "inference/inference.h"
#include "runs/profiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the context length of a GGUF model file ---- */

#define GGUF_MAX_KV      (1 << 20)
#define GGUF_MAX_KEY     (1 << 16)
#define GGUF_MAX_ITEMS   (1LL << 26)
#define GGUF_TYPE_STRING 8
#define GGUF_TYPE_ARRAY  9

/* Bytes of a GGUF scalar of type t, 0 for strings, arrays and unknown types. */
static int gguf_size(uint32_t t)
{
    static const int sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

    return t < sizeof(sizes) / sizeof(sizes[0]) ? sizes[t] : 0;
}

static int rd(FILE *f, void *p, size_t n)
{
    return fread(p, 1, n, f) == n ? 0 : -1;
}

/* Skips a value of type t (arrays only one level deep, as GGUF writes them). */
static int gguf_skip(FILE *f, uint32_t t, int depth)
{
    uint64_t n;

    if (gguf_size(t))
        return fseek(f, gguf_size(t), SEEK_CUR);
    if (t == GGUF_TYPE_STRING)
        return rd(f, &n, 8) || n > (1ULL << 30) ? -1 : fseek(f, (long)n, SEEK_CUR);
    if (t == GGUF_TYPE_ARRAY && !depth) {
        uint32_t et;

        if (rd(f, &et, 4) || rd(f, &n, 8) || n > (uint64_t)GGUF_MAX_ITEMS)
            return -1;
        if (gguf_size(et))
            return fseek(f, (long)(n * (uint64_t)gguf_size(et)), SEEK_CUR);
        for (uint64_t i = 0; i < n; i++)
            if (gguf_skip(f, et, 1))
                return -1;
        return 0;
    }
    return -1;
}

/*
 * The "<general.architecture>.context_length" of a GGUF (v2, v3) file, or -1 when path is no
 * such file or does not say. Reads the metadata only, up to that key (it comes before the
 * tokenizer's large arrays in the files llama.cpp writes). GGUF is little-endian, as the hosts
 * lyceumd runs on are.
 */
static long long gguf_context_length(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4], arch[64] = "", *key = NULL, cand[128] = "";
    uint32_t version, t;
    uint64_t ntensors, nkv, klen;
    long long ctx = -1, cand_val = -1;

    if (!f)
        return -1;
    if (rd(f, magic, 4) || memcmp(magic, "GGUF", 4) != 0 || rd(f, &version, 4) || version < 2 ||
        rd(f, &ntensors, 8) || rd(f, &nkv, 8) || nkv > GGUF_MAX_KV)
        goto out;
    key = malloc(GGUF_MAX_KEY + 1);
    if (!key)
        abort();
    for (uint64_t i = 0; i < nkv && ctx < 0; i++) {
        if (rd(f, &klen, 8) || klen > GGUF_MAX_KEY || rd(f, key, klen) || rd(f, &t, 4))
            goto out;
        key[klen] = 0;
        if (strcmp(key, "general.architecture") == 0 && t == GGUF_TYPE_STRING) {
            uint64_t n;

            if (rd(f, &n, 8) || n >= sizeof(arch) || rd(f, arch, n))
                goto out;
            arch[n] = 0;
        } else if (klen > 15 && strcmp(key + klen - 15, ".context_length") == 0 &&
                   (t == 4 || t == 5 || t == 10 || t == 11) && klen < sizeof(cand)) {
            uint64_t v = 0;

            if (rd(f, &v, (size_t)gguf_size(t)))
                goto out;
            snprintf(cand, sizeof(cand), "%s", key);
            cand_val = (long long)v;
        } else if (gguf_skip(f, t, 0)) {
            goto out;
        }
        if (arch[0] && cand[0] && strlen(cand) == strlen(arch) + 15 &&
            strncmp(cand, arch, strlen(arch)) == 0)
            ctx = cand_val;
    }
out:
    free(key);
    fclose(f);
    return ctx;
}

/* The model file of hf_model_id in the operator's model directory: DATA/models/<id>, with '/'
 * made '-' (the name `lyceumd model add` gives its link, inference/replica.c). */
static void model_file(const char *hf_model_id, char *out, size_t n)
{
    char name[256];
    size_t i;

    for (i = 0; hf_model_id[i] && i + 1 < sizeof(name); i++)
        name[i] = hf_model_id[i] == '/' ? '-' : hf_model_id[i];
    name[i] = 0;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        name[0] = '_';
    snprintf(out, n, "%s/models/%s", api_settings.data_dir, name);
}

/* ---- the catalogue ---- */

static int dep_available(json_t *dep)
{
    const char *st = json_string_value(json_object_get(dep, "status"));

    return st && (strcmp(st, "running") == 0 || strcmp(st, "paused") == 0);
}

/* The catalogue entry of a deployment object (api_deployment_obj's shape). */
static json_t *entry_of(struct req *req, json_t *dep)
{
    const char *id = json_string_value(json_object_get(dep, "deployment_id"));
    const char *model = json_string_value(json_object_get(dep, "hf_model_id"));
    const char *prof = json_string_value(json_object_get(dep, "hardware_profile"));
    const char *slash = strchr(model, '/');
    const struct profile *p = profile_find(prof);
    long long ctx;
    int64_t created = 0;
    char path[1400], *provider;
    int avail = dep_available(dep);

    model_file(model, path, sizeof(path));
    ctx = gguf_context_length(path);
    time_parse_iso(json_string_value(json_object_get(dep, "created_at")), &created);
    provider = slash ? arena_strndup(&req->arena, model, (size_t)(slash - model)) : "lyceumd";
    return json_pack(
        "{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:b,s:O,s:s,s:s,s:s,s:O,s:b,s:b,s:b,s:[s],s:[s],"
        "s:o,s:I,s:I,s:f,s:o,s:f,s:I,s:O,s:O,s:O}",
        "model_id", id, "id", id, "object", "model", "created", (json_int_t)created, "owned_by",
        req->caller->org_id, "name", model, "description",
        arena_sprintf(&req->arena, "%s, served by a dedicated deployment on %s", model, prof),
        "type", "text", "provider", provider, "available", avail, "status",
        json_object_get(dep, "status"), "deployment_id", id, "hf_model_id", model,
        "hardware_profile", prof, "created_at", json_object_get(dep, "created_at"), "supports_sync",
        avail, "supports_async", 1, "gpu_required", p && p->gpu_count > 0, "input_types", "text",
        "output_types", "text", "context_length", ctx > 0 ? json_integer(ctx) : json_null(),
        "max_input_tokens", (json_int_t)(ctx > 0 ? ctx : 0), "max_output_tokens",
        (json_int_t)(ctx > 0 ? ctx : 0), "price_per_1k_tokens", 0.0, "price_per_hour",
        json_money(p ? p->price_micro : 0), "batch_pricing_discount", 0.0, "estimated_latency_ms",
        (json_int_t)json_number_value(json_object_get(dep, "target_latency_p95_ms")),
        "min_replicas", json_object_get(dep, "min_replicas"), "max_replicas",
        json_object_get(dep, "max_replicas"), "replicas", json_object_get(dep, "replicas"));
}

enum group { G_ALL, G_SYNC, G_ASYNC, G_TYPE };

static int reply_list(struct req *req, enum group g)
{
    struct deployment_infos list;
    int err = deployment_read_all(req->caller->org_id, 0, &list);
    const char *type = g == G_TYPE ? req_param(req, "type") : NULL;
    json_t *out;

    if (err)
        return err;
    out = json_array();
    for (size_t i = 0; i < list.n; i++) {
        json_t *dep = api_deployment_obj(&list.v[i]), *e;

        if (g == G_SYNC && !dep_available(dep)) {
            json_decref(dep);
            continue;
        }
        e = entry_of(req, dep);
        json_decref(dep);
        if (type && strcmp(json_string_value(json_object_get(e, "type")), type) != 0) {
            json_decref(e);
            continue;
        }
        json_array_append_new(out, e);
    }
    deployment_infos_release(&list);
    return req_reply(req, out);
}

static int api_models_list(struct req *req)
{
    return reply_list(req, G_ALL);
}

static int api_models_sync(struct req *req)
{
    return reply_list(req, G_SYNC);
}

static int api_models_async(struct req *req)
{
    return reply_list(req, G_ASYNC);
}

static int api_models_type(struct req *req)
{
    return reply_list(req, G_TYPE);
}

/* The deployment object of model_id (a deployment id, or the hf_model_id of one: the
 * deployment a call naming it would reach), or NULL having recorded the 404. */
static json_t *dep_of(struct req *req, int *err)
{
    const char *id = req_param(req, "model_id");
    char dep[40];
    json_t *o = NULL;

    *err = inference_resolve(req->caller->org_id, id, dep);
    if (!*err) {
        struct deployment_info d;

        *err = deployment_read(req->caller->org_id, dep, &d);
        if (!*err) {
            o = api_deployment_obj(&d);
            deployment_info_release(&d);
        }
    }
    if (!o && (!*err || *err == LY_ENOTFOUND || *err == LY_EUNAVAIL))
        *err = req_fail(req, LY_ENOTFOUND, "Model '%s' not found", id);
    return o;
}

static int api_models_get(struct req *req)
{
    int err;
    json_t *dep = dep_of(req, &err), *e;

    if (!dep)
        return err;
    e = entry_of(req, dep);
    json_decref(dep);
    return req_reply(req, e);
}

static int api_models_instances(struct req *req)
{
    int err;
    json_t *dep = dep_of(req, &err), *out, *r;
    size_t i;

    if (!dep)
        return err;
    out = json_array();
    json_array_foreach(json_object_get(dep, "replicas"), i, r)
    {
        json_array_append_new(out, json_pack("{s:O,s:O,s:O,s:O,s:n,s:s,s:O,s:n,s:O}", "id",
                                             json_object_get(r, "replica_id"), "instance_id",
                                             json_object_get(r, "replica_id"), "deployment_id",
                                             json_object_get(dep, "deployment_id"), "status",
                                             json_object_get(r, "status"), "instance_url",
                                             "node_id", api_hostname(), "started_at",
                                             json_object_get(r, "started_at"), "last_health_check",
                                             "outstanding", json_object_get(r, "outstanding")));
    }
    json_decref(dep);
    return req_reply(req, out);
}

/* ---- POST /sync/ ---- */

#define SYNC_MAX_BYTES (64u << 20)

struct sync_resp {
    struct req_stream inner; /* the call's raw answer */
    struct buf buf;          /* it, up to SYNC_MAX_BYTES and a read more */
    int over;                /* the answer passed SYNC_MAX_BYTES */
    int status;              /* 0 until the whole answer is in and shaped */
    char *out;
    size_t out_len, off;
    int raw_output;
    int64_t t0;
    char dep[40];
};

/* The CLI's shape of a chat completion: the completion, with output, latency_ms, cost. */
static void sync_shape(struct sync_resp *s, int st)
{
    json_t *c =
        st == 200 && !s->over ? json_loadb(s->buf.p ? s->buf.p : "", s->buf.len, 0, NULL) : NULL;
    json_t *msg, *content;

    if (st == 200 && !json_is_object(c)) {
        json_decref(c);
        s->status = 502; /* the model server's answer is no completion: passed on as it is */
        return;
    }
    s->status = st;
    if (st != 200)
        return; /* its error (OpenAI's shape), as /chat/completions answers it */
    msg = json_object_get(json_array_get(json_object_get(c, "choices"), 0), "message");
    content = json_object_get(msg, "content");
    if (s->raw_output)
        json_object_set_new(c, "raw_response", json_deep_copy(c));
    json_object_set_new(c, "output",
                        json_string(json_is_string(content) ? json_string_value(content) : ""));
    json_object_set_new(c, "model_id", json_string(s->dep));
    json_object_set_new(c, "latency_ms", json_integer((now_mono_us() - s->t0) / 1000));
    json_object_set_new(c, "cost", json_money(0));
    /* Reals with 15 digits, as every JSON response is written (0.36, not 0.35999...). */
    s->out = json_dumps(c, JSON_COMPACT | JSON_REAL_PRECISION(15));
    s->out_len = strlen(s->out);
    json_decref(c);
}

/* Reads the call's whole answer (suspending until it is in), then shapes it. */
static int sync_status(void *ctx, struct stream_waker *w, struct req *req)
{
    struct sync_resp *s = ctx;
    char scratch[16384];

    while (!s->status) {
        char *into = s->over ? NULL : buf_space(&s->buf, sizeof(scratch));
        long n = into ? s->inner.read(s->inner.ctx, into, sizeof(scratch), w)
                      : s->inner.read(s->inner.ctx, scratch, sizeof(scratch), w);

        if (n == 0)
            return 0; /* woken when more comes */
        if (n > 0 && into) {
            buf_commit(&s->buf, (size_t)n);
            s->over = s->buf.len > SYNC_MAX_BYTES;
        } else if (n > 0) {
            s->over = 1;
        }
        if (n < 0) {
            int st = s->inner.status(s->inner.ctx, w, req);

            sync_shape(s, st ? st : 502); /* an ended call always knows its status */
        }
    }
    return s->status;
}

static long sync_read(void *ctx, char *buf, size_t max, struct stream_waker *w)
{
    struct sync_resp *s = ctx;
    const char *src = s->out ? s->out : s->buf.p;
    size_t len = s->out ? s->out_len : (s->over ? 0 : s->buf.len);
    size_t n = len - s->off < max ? len - s->off : max;

    (void)w;
    if (s->off >= len)
        return -1;
    memcpy(buf, src + s->off, n);
    s->off += n;
    return (long)n;
}

static void sync_release(void *ctx)
{
    struct sync_resp *s = ctx;

    s->inner.release(s->inner.ctx);
    buf_free(&s->buf);
    free(s->out);
    free(s);
}

/* The messages of a /sync/ body: messages as they are, else a user message of input (a
 * string, or {text, image_url, parameters: {system_prompt}}) or prompt, after the system
 * prompt. NULL (a 422 recorded) when there is none. */
static json_t *sync_messages(struct req *req)
{
    json_t *b = req->json, *in = json_object_get(b, "input"), *msgs, *user;
    json_t *params = json_object_get(in, "parameters");
    const char *text = NULL, *image = NULL, *sys;

    if (json_is_array(json_object_get(b, "messages")) &&
        json_array_size(json_object_get(b, "messages")))
        return json_incref(json_object_get(b, "messages"));
    if (json_is_string(in)) {
        text = json_string_value(in);
    } else if (json_is_object(in)) {
        text = json_string_value(json_object_get(in, "text"));
        image = json_string_value(json_object_get(in, "image_url"));
    } else if (in && !json_is_null(in)) {
        req_invalid(req, "body", "input", "Input should be a string or an object with 'text'",
                    "model_type");
        return NULL;
    }
    if (!text)
        text = json_string_value(json_object_get(b, "prompt"));
    if (!text) {
        req_invalid(req, "body", "messages", "Field required (or input, or prompt)", "missing");
        return NULL;
    }
    msgs = json_array();
    sys = json_string_value(json_object_get(params, "system_prompt"));
    if (!sys)
        sys = json_string_value(json_object_get(b, "system_prompt"));
    if (sys && *sys)
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", sys));
    user = image ? json_pack("[{s:s,s:s},{s:s,s:{s:s}}]", "type", "text", "text", text, "type",
                             "image_url", "image_url", "url", image)
                 : json_string(text);
    json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", "user", "content", user));
    return msgs;
}

/* The fields of a /sync/ body passed on to the model server as they are (OpenAI's). */
static const char *const passed_on[] = {
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "response_format",
    "tools",
    "tool_choice",
    "n",
    "logprobs",
    "top_logprobs",
    "user",
    NULL,
};

static const struct field sync_checked[] = {
    {"model", FT_STRING, FF_NULLABLE, 1, 200, NULL},
    {"model_id", FT_STRING, FF_NULLABLE, 1, 200, NULL},
    {"messages", FT_ARRAY, FF_NULLABLE, 0, 0, NULL},
    {"prompt", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"max_tokens", FT_INTEGER, FF_NULLABLE, 1, 1000000, NULL},
    {"temperature", FT_NUMBER, FF_NULLABLE, 0, 0, NULL},
    {"top_p", FT_NUMBER, FF_NULLABLE, 0, 0, NULL},
    {"stream", FT_BOOLEAN, FF_NULLABLE, 0, 0, NULL},
    {"raw_output", FT_BOOLEAN, FF_NULLABLE, 0, 0, NULL},
    {0},
};

static int api_models_call(struct req *req)
{
    const char *model;
    json_t *msgs, *body;
    struct sync_resp *s;
    struct call *c;
    char dep[40];
    int err = req_parse_body(req, sync_checked);

    if (err)
        return err;
    model = body_str(req, "model_id") ? body_str(req, "model_id") : body_str(req, "model");
    if (!model)
        req_invalid(req, "body", "model_id", "Field required (or model)", "missing");
    if (body_bool(req, "stream", 0))
        req_invalid(req, "body", "stream",
                    "Input should be false: /sync/ answers once (stream with /chat/completions)",
                    "value_error");
    msgs = sync_messages(req);
    err = req_check_valid(req);
    if (err) {
        json_decref(msgs);
        return err;
    }
    err = inference_resolve(req->caller->org_id, model, dep);
    if (err) {
        json_decref(msgs);
        return req_fail(req, err,
                        err == LY_ENOTFOUND ? "Model '%s' not found"
                                            : "Model '%s' is not running: its deployment failed",
                        model);
    }
    body = json_pack("{s:o}", "messages", msgs);
    for (int i = 0; passed_on[i]; i++) {
        json_t *v = json_object_get(req->json, passed_on[i]);

        if (v && !json_is_null(v))
            json_object_set(body, passed_on[i], v);
    }
    s = xcalloc(1, sizeof(*s));
    buf_init(&s->buf, SYNC_MAX_BYTES + 2 * 16384); /* room for the read that passes the cap */
    s->raw_output = body_bool(req, "raw_output", 0);
    s->t0 = now_mono_us();
    snprintf(s->dep, sizeof(s->dep), "%s", dep);
    c = call_start(req->caller->org_id, dep, "/v1/chat/completions", body, 0, CALL_RAW);
    s->inner = call_stream(c);
    call_put(c);
    return req_reply_stream(req, "application/json",
                            (struct req_stream){sync_read, sync_release, s, sync_status});
}

/* ---- the route table ---- */

static const struct field entry_resp[] = {
    {"model_id", FT_STRING, 0, 0, 0, "the deployment id: the model a call names"},
    {"id", FT_STRING, 0, 0, 0, "the same (OpenAI's Model)"},
    {"object", FT_STRING, 0, 0, 0, "model"},
    {"created", FT_INTEGER, 0, 0, 0, "unix seconds (OpenAI's Model)"},
    {"owned_by", FT_STRING, 0, 0, 0, "the org id"},
    {"name", FT_STRING, 0, 0, 0, "the deployment's hf_model_id"},
    {"description", FT_STRING, 0, 0, 0, NULL},
    {"type", FT_STRING, 0, 0, 0, "text"},
    {"provider", FT_STRING, 0, 0, 0,
     "the model id's owner (before '/'), else lyceumd (the operator's model directory)"},
    {"available", FT_BOOLEAN, 0, 0, 0, "the deployment is running or paused (a call wakes it)"},
    {"status", FT_STRING, 0, 0, 0, "the deployment's status"},
    {"deployment_id", FT_STRING, 0, 0, 0, NULL},
    {"hf_model_id", FT_STRING, 0, 0, 0, NULL},
    {"hardware_profile", FT_STRING, 0, 0, 0, NULL},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"supports_sync", FT_BOOLEAN, 0, 0, 0, "as available: listed by /models/sync"},
    {"supports_async", FT_BOOLEAN, 0, 0, 0, "true: the Batch API runs lines against it"},
    {"gpu_required", FT_BOOLEAN, 0, 0, 0, "its profile has GPUs"},
    {"input_types", FT_ARRAY, 0, 0, 0, "[\"text\"]"},
    {"output_types", FT_ARRAY, 0, 0, 0, "[\"text\"]"},
    {"context_length", FT_INTEGER, FF_NULLABLE, 0, 0,
     "from the GGUF model file's metadata; null when unknown"},
    {"max_input_tokens", FT_INTEGER, 0, 0, 0, "context_length, 0 when unknown"},
    {"max_output_tokens", FT_INTEGER, 0, 0, 0, "context_length, 0 when unknown"},
    {"price_per_1k_tokens", FT_NUMBER, 0, 0, 0, "0: tokens are not charged"},
    {"price_per_hour", FT_NUMBER, 0, 0, 0, "credits per replica-hour (the profile's price)"},
    {"batch_pricing_discount", FT_NUMBER, 0, 0, 0, "0: batches cost what calls cost"},
    {"estimated_latency_ms", FT_INTEGER, 0, 0, 0, "the deployment's p95 latency target"},
    {"min_replicas", FT_INTEGER, 0, 0, 0, NULL},
    {"max_replicas", FT_INTEGER, 0, 0, 0, NULL},
    {"replicas", FT_ARRAY, 0, 0, 0, "[{replica_id, status, started_at, outstanding}]"},
    {0},
};
static const struct field instance_resp[] = {
    {"id", FT_STRING, 0, 0, 0, "the replica id"},
    {"instance_id", FT_STRING, 0, 0, 0, "the same"},
    {"deployment_id", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, "starting, running (takes calls), draining, stopping"},
    {"instance_url", FT_STRING, FF_NULLABLE, 0, 0,
     "null: a replica is reached only through lyceumd"},
    {"node_id", FT_STRING, 0, 0, 0, "the machine it runs on"},
    {"started_at", FT_DATETIME, 0, 0, 0, NULL},
    {"last_health_check", FT_DATETIME, FF_NULLABLE, 0, 0, "null: not recorded"},
    {"outstanding", FT_INTEGER, 0, 0, 0, "calls it is answering now"},
    {0},
};
static const struct field sync_body[] = {
    {"model_id", FT_STRING, FF_NULLABLE, 1, 200,
     "a deployment id or its hf_model_id (or give it as model)"},
    {"model", FT_STRING, FF_NULLABLE, 1, 200, "the same as model_id"},
    {"messages", FT_ARRAY, FF_NULLABLE, 0, 0, "OpenAI chat messages; else input or prompt"},
    {"input", FT_OBJECT, FF_NULLABLE, 0, 0,
     "a string, or {text, image_url, parameters: {system_prompt}}"},
    {"prompt", FT_STRING, FF_NULLABLE, 0, 0, "the user's message, when there is no input"},
    {"system_prompt", FT_STRING, FF_NULLABLE, 0, 0, "when input.parameters has none"},
    {"max_tokens", FT_INTEGER, FF_NULLABLE, 1, 1000000, NULL},
    {"temperature", FT_NUMBER, FF_NULLABLE, 0, 0, NULL},
    {"top_p", FT_NUMBER, FF_NULLABLE, 0, 0, NULL},
    {"stream", FT_BOOLEAN, FF_NULLABLE, 0, 0, "false (or absent) only"},
    {"raw_output", FT_BOOLEAN, FF_NULLABLE, 0, 0, "adds raw_response: the model server's answer"},
    {0},
};
static const struct field sync_resp_fields[] = {
    {"output", FT_STRING, 0, 0, 0, "the assistant's message"},
    {"model_id", FT_STRING, 0, 0, 0, "the deployment that answered"},
    {"latency_ms", FT_INTEGER, 0, 0, 0, NULL},
    {"cost", FT_NUMBER, 0, 0, 0, "0: tokens are not charged (replicas are, per second)"},
    {"usage", FT_OBJECT, 0, 0, 0, "{prompt_tokens, completion_tokens, total_tokens}"},
    {"id", FT_STRING, 0, 0, 0, "and the rest of the chat completion: object, created, model, "},
    {"choices", FT_ARRAY, 0, 0, 0, NULL},
    {"raw_response", FT_OBJECT, FF_NULLABLE, 0, 0, "with raw_output"},
    {0},
};

const struct route api_models_routes[] = {
    {"GET", "/models/", api_models_list, R_SLASH_ONLY | R_RESP_ARRAY,
     "The model catalogue (the caller's org's deployments) as an array; GET /models (no "
     "slash) is OpenAI's list",
     NULL, entry_resp},
    {"GET", "/models/sync", api_models_sync, R_RESP_ARRAY,
     "The models callable synchronously now (deployments running or paused)", NULL, entry_resp},
    {"GET", "/models/async", api_models_async, R_RESP_ARRAY,
     "The models the Batch API can run (every live deployment)", NULL, entry_resp},
    {"GET", "/models/type/{type}", api_models_type, R_RESP_ARRAY, "The models of one type (text)",
     NULL, entry_resp},
    {"GET", "/models/{model_id}", api_models_get, 0,
     "A model of the catalogue (a deployment id, or the hf_model_id a call names)", NULL,
     entry_resp},
    {"GET", "/models/{model_id}/instances", api_models_instances, R_RESP_ARRAY,
     "A model's instances: its deployment's replicas and their status", NULL, instance_resp},
    {"POST", "/sync/", api_models_call, R_RAW_BODY,
     "One synchronous chat call (the CLI's chat send), answered once it is done", sync_body,
     sync_resp_fields},
    {0},
};
