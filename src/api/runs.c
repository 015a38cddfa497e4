/*
 * Starting runs (API.md 4.2-4.4, 4.8, 16.3): the Python, Docker image, Docker Compose and GPU
 * selection start endpoints, with the legacy aliases of section 14. Each validates its body
 * (422 for shapes, 400 for an unknown profile, 403 for a profile outside the user's quota,
 * 503 when nothing can run it), then records the run pending and answers its streaming_url.
 * An Idempotency-Key header makes a repeated start answer the first answer.
 */
#include "api/api.h"
#include "api/runs_common.h"
#include "billing/billing.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/docker.h"
#include "exec/exec.h"
#include "runs/callbacks.h"
#include "runs/profiles.h"
#include "runs/query.h"
#include "runs/runs.h"
#include "runs/sched.h"
#include "runs/submit.h"
#include "storage/bucket.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int valid_profile_syntax(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* Checks the profile: syntax (422), known (400), in the user's quota (403), able to run
 * (503). field names the body field for the 422. */
static int check_profile(struct req *req, const char *field, const char *profile)
{
    struct profile *p;
    char **allowed;
    int nallowed;
    int err = 0;

    if (!valid_profile_syntax(profile)) {
        req_invalid(req, "body", field, "String should match pattern '^[a-zA-Z0-9_.]+$'",
                    "string_pattern_mismatch");
        return LY_EINVAL;
    }
    p = profile_find(profile);
    if (!p)
        return req_fail(req, LY_EBADREQ, "Unknown hardware_profile '%s'. Valid options: %s",
                        profile, profiles_names());
    nallowed = runq_quota(&req->arena, req->caller->user_id, &allowed);
    if (nallowed < 0)
        return LY_EDB;
    if (nallowed) {
        int ok = 0;

        for (int i = 0; i < nallowed; i++)
            ok |= strcmp(allowed[i], profile) == 0;
        if (!ok)
            err = req_fail(req, LY_EFORBIDDEN,
                           "Hardware profile '%s' is not available to your account", profile);
    }
    if (!err && p->max_concurrent <= 0)
        err = req_fail(req, LY_EUNAVAIL, "No '%s' machine is available on this server", profile);
    if (!err) {
        /* Admission: the org must be able to pay for a first metering window. */
        err = billing_admit(req->caller->org_id, profile, 1);
        if (err == LY_EPAYMENT)
            err = req_fail(req, LY_EPAYMENT, "Insufficient credits");
    }
    return err;
}

static int valid_url(const char *u)
{
    size_t n = strlen(u);

    if (n < 8 || n > 2048)
        return 0;
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return 0;
    for (; *u; u++)
        if ((unsigned char)*u <= ' ' || *u == 0x7f)
            return 0;
    return 1;
}

static int check_callbacks(struct req *req, json_t **out)
{
    json_t *urls = json_object_get(req->json, "user_callback_urls"), *u;
    size_t i;

    *out = NULL;
    if (!json_is_array(urls) || !json_array_size(urls))
        return 0;
    if (json_array_size(urls) > 10) {
        req_invalid(req, "body", "user_callback_urls", "List should have at most 10 items",
                    "too_long");
        return LY_EINVAL;
    }
    json_array_foreach(urls, i, u)
    {
        char why[300];

        if (!json_is_string(u) || !valid_url(json_string_value(u))) {
            req_invalid(req, "body", "user_callback_urls",
                        "Each item should be an http or https URL", "url_parsing");
            return LY_EINVAL;
        }
        /* An address inside the operator's network (the connect-time check binds; this one
         * answers early where the URL names the address itself). */
        if (callbacks_check_url(json_string_value(u), why, sizeof(why))) {
            req_invalid(req, "body", "user_callback_urls",
                        arena_sprintf(&req->arena, "Item %zu: %s", i, why), "value_error");
            return LY_EINVAL;
        }
    }
    *out = urls;
    return 0;
}

/* A relative path a run may write: no "..", no leading "/", no NUL, at most 1,024 bytes. */
static int safe_rel_path(const char *k, size_t n)
{
    if (!n || n > 1024 || k[0] == '/' || memchr(k, 0, n))
        return 0;
    for (const char *s = k; s < k + n;) {
        const char *e = memchr(s, '/', (size_t)(k + n - s));
        size_t len = e ? (size_t)(e - s) : (size_t)(k + n - s);

        if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        s += len + 1;
    }
    return 1;
}

static int check_python(struct req *req)
{
    const char *imports = body_str(req, "import_files");
    json_t *mods = json_object_get(req->json, "prior_imports"), *m;
    size_t i;

    if (imports) {
        json_error_t jerr;
        json_t *files = json_loads(imports, JSON_REJECT_DUPLICATES, &jerr), *v;
        const char *k;
        int bad = !json_is_object(files);

        if (bad)
            req_invalid(req, "body", "import_files",
                        "import_files must be a JSON-encoded object of {path: source}",
                        "json_invalid");
        json_object_foreach(files, k, v)
        {
            if (bad)
                break;
            if (!json_is_string(v) || !safe_rel_path(k, strlen(k)) ||
                strcmp(k, "requirements.txt") == 0) {
                req_invalid(req, "body", "import_files",
                            "Each key must be a relative path without '..' (at most 1,024 "
                            "bytes) and each value a string",
                            "value_error");
                bad = 1;
            }
        }
        json_decref(files);
    }
    if (json_array_size(mods) > 100)
        req_invalid(req, "body", "prior_imports", "At most 100 modules", "value_error");
    json_array_foreach(mods, i, m)
    {
        const char *s = json_string_value(m);
        int ok = s && *s && strlen(s) < 128 && !(*s >= '0' && *s <= '9');

        for (; ok && *s; s++)
            ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                 *s == '_' || *s == '.';
        if (!ok) {
            req_invalid(req, "body", "prior_imports", "Each item must be a module name",
                        "value_error");
            break;
        }
    }
    return req_check_valid(req);
}

/* The stored answer of an Idempotency-Key seen before, replied; 1 when it was. */
static int idempotent_replay(struct req *req, int *err)
{
    const char *key = req_header(req, "Idempotency-Key");
    json_t *answer;

    *err = 0;
    if (!key)
        return 0;
    if (!*key || strlen(key) > 255) {
        req_invalid(req, "header", "Idempotency-Key", "At most 255 characters", "string_too_long");
        *err = LY_EINVAL;
        return 1;
    }
    *err = runq_replay(req->caller->org_id, key, req->match.route->path, &answer);
    if (*err == LY_ECONFLICT) {
        *err = req_fail(req, LY_ECONFLICT,
                        "This Idempotency-Key was used for another kind of request");
        return 1;
    }
    if (*err || !answer)
        return *err != 0;
    req_add_header(req, "Idempotent-Replayed", "true");
    *err = req_reply(req, answer);
    return 1;
}

/* What an answer is made of: the request (for the streaming URLs) and the maker's own arg. */
struct answer_ctx {
    struct req *req;
    json_t *(*make)(struct req *, struct run_submit *, int, void *);
    void *arg;
};

static json_t *make_answer(struct run_submit *subs, int n, void *arg)
{
    struct answer_ctx *c = arg;

    return c->make(c->req, subs, n, c->arg);
}

/* Starts the runs in subs (one transaction, with the idempotency key and the registry secrets
 * creds), then answers make(). */
static int submit_and_reply(struct req *req, struct run_submit *subs, int n, const char *creds,
                            json_t *(*make)(struct req *, struct run_submit *, int, void *),
                            void *arg)
{
    struct answer_ctx c = {req, make, arg};
    struct runq_start st = {
        .org_id = req->caller->org_id,
        .idem_key = req_header(req, "Idempotency-Key"),
        .route = req->match.route->path,
        .subs = subs,
        .n = n,
        .docker_creds = creds,
        .answer = make_answer,
        .arg = &c,
    };
    json_t *answer;
    int err = runq_start(&st, &answer);

    if (err == LY_ECONFLICT && st.idem_key) {
        /* Another request with the same key won the race: answer what it answered. */
        int e2;

        if (idempotent_replay(req, &e2))
            return e2;
    }
    if (err)
        return err;
    return req_reply(req, answer);
}

static json_t *one_answer(struct req *req, struct run_submit *s, int n, void *arg)
{
    json_t *o = json_pack("{s:s,s:s,s:o}", "execution_id", s->id, "status", "pending",
                          "streaming_url", run_streaming_url(req, s->id, s->token));

    (void)n;
    if (arg)
        json_object_set_new(o, "pythia_decision", json_null());
    return o;
}

/* Submits a Docker run whose registry secrets never reach the stored spec: they are stored
 * sealed beside the run's row. */
static int docker_submit(struct req *req, struct run_submit *s)
{
    char *creds = docker_creds_take(req->json);
    int err = submit_and_reply(req, s, 1, creds, one_answer, NULL);

    if (creds)
        explicit_bzero(creds, strlen(creds));
    free(creds);
    return err;
}

static void fill_submit(struct req *req, struct run_submit *s, int kind, const char *profile,
                        json_t *callbacks)
{
    char owner[40];

    memset(s, 0, sizeof(*s));
    s->org_id = req->caller->org_id;
    s->user_id = req->caller->user_id;
    /* An org API key's runs see the org's bucket at /mnt/s3, as its storage calls do. */
    bucket_owner(req->caller->user_id, req->caller->org_id, req->caller->via == VIA_ORG_KEY, owner);
    s->bucket = arena_strdup(&req->arena, owner);
    s->kind = kind;
    s->profile = profile;
    s->spec = req->json;
    s->file_name = body_str(req, "file_name");
    s->timeout_s = (int)body_int(req, "timeout", 60);
    s->graceful_s = (int)body_int(req, "graceful_timeout", kind == RUN_COMPOSE ? 150 : 10);
    s->callback_urls = callbacks;
}

static int api_runs_start_python(struct req *req)
{
    const char *profile = body_str(req, "execution_type");
    struct run_submit s;
    json_t *cbs;
    int err;

    if (idempotent_replay(req, &err))
        return err;
    if (!profile)
        profile = "cpu";
    err = check_python(req);
    if (!err)
        err = check_callbacks(req, &cbs);
    if (!err)
        err = check_profile(req, "execution_type", profile);
    if (err)
        return err;
    fill_submit(req, &s, RUN_PYTHON, profile, cbs);
    return submit_and_reply(req, &s, 1, NULL, one_answer, req);
}

static int docker_ready(struct req *req)
{
    const char *why = NULL;
    const char *profile = body_str(req, "execution_type");
    struct profile *p = profile_find(profile ? profile : "cpu");

    if (p && strcmp(p->backend, "local") != 0)
        return req_fail(req, LY_EBADREQ,
                        "Docker runs cannot use '%s': it runs on %s, which takes Python runs only",
                        p->name, p->backend);

    if (docker_available(&why))
        return 0;
    return req_fail(req, LY_EUNAVAIL, "Docker runs are not available on this server: %s",
                    why ? why : "no Docker engine answers");
}

static int api_runs_start_image(struct req *req)
{
    const char *profile = body_str(req, "execution_type");
    json_t *cmd = json_object_get(req->json, "docker_run_cmd"), *v, *cbs;
    const char *ctype = body_str(req, "docker_registry_credential_type");
    struct run_submit s;
    size_t i;
    int err;

    if (idempotent_replay(req, &err))
        return err;
    if (!profile)
        profile = "cpu";
    json_array_foreach(cmd, i, v) if (!json_is_string(v))
    {
        req_invalid(req, "body", "docker_run_cmd", "Input should be a list of strings",
                    "list_type");
        break;
    }
    if (ctype && strcmp(ctype, "basic") != 0 && strcmp(ctype, "aws") != 0)
        req_invalid(req, "body", "docker_registry_credential_type",
                    "Input should be 'basic' or 'aws'", "literal_error");
    err = req_check_valid(req);
    if (!err)
        err = check_callbacks(req, &cbs);
    if (!err)
        err = check_profile(req, "execution_type", profile);
    if (!err)
        err = docker_ready(req);
    if (err)
        return err;
    fill_submit(req, &s, RUN_IMAGE, profile, cbs);
    return docker_submit(req, &s);
}

static int api_runs_start_compose(struct req *req)
{
    const char *profile = body_str(req, "execution_type");
    const char *yaml = body_str(req, "compose_file_code");
    struct run_submit s;
    char why[512] = "";
    json_t *cbs;
    int err;

    if (idempotent_replay(req, &err))
        return err;
    if (!profile)
        profile = "cpu";
    err = check_callbacks(req, &cbs);
    if (!err)
        err = check_profile(req, "execution_type", profile);
    if (!err)
        err = docker_ready(req);
    if (err)
        return err;
    err = docker_compose_check(yaml, api_settings.data_dir, why, sizeof(why));
    if (err == LY_EINVAL)
        return req_fail(req, LY_EINVAL, "Compose file refused: %s", why);
    if (err == LY_EBADREQ)
        return req_fail(req, LY_EBADREQ, "Invalid compose file: %s", why);
    if (err)
        return req_fail(req, err, "Cannot check the compose file: %s", why);
    fill_submit(req, &s, RUN_COMPOSE, profile, cbs);
    return docker_submit(req, &s);
}

static json_t *selection_answer(struct req *req, struct run_submit *subs, int n, void *parent)
{
    json_t *list = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:o}", "execution_id", subs[i].id,
                                              "execution_type", subs[i].profile, "status",
                                              "pending", "streaming_url",
                                              run_streaming_url(req, subs[i].id, subs[i].token)));
    return json_pack("{s:s,s:o}", "parent_execution_id", (const char *)parent, "executions", list);
}

static int api_runs_start_selection(struct req *req)
{
    json_t *types = json_object_get(req->json, "execution_types"), *t, *cbs;
    const char *mode = body_str(req, "mode");
    struct run_submit subs[8];
    char parent[37];
    size_t i;
    int n = 0, err;

    if (idempotent_replay(req, &err))
        return err;
    if (!mode)
        mode = "all";
    if (strcmp(mode, "all") != 0 && strcmp(mode, "first_available") != 0)
        req_invalid(req, "body", "mode", "Input should be 'all' or 'first_available'",
                    "literal_error");
    if (json_array_size(types) < 1 || json_array_size(types) > 8)
        req_invalid(req, "body", "execution_types", "List should have 1 to 8 items", "too_long");
    json_array_foreach(types, i, t) if (!json_is_string(t))
    {
        req_invalid(req, "body", "execution_types", "Input should be a list of strings",
                    "list_type");
        break;
    }
    err = req_check_valid(req);
    if (!err)
        err = check_python(req);
    if (!err)
        err = check_callbacks(req, &cbs);
    if (err)
        return err;
    json_array_foreach(types, i, t)
    {
        err = check_profile(req, "execution_types", json_string_value(t));
        if (err)
            return err;
        for (int k = 0; k < (int)i; k++)
            if (strcmp(json_string_value(json_array_get(types, (size_t)k)), json_string_value(t)) ==
                0)
                return req_fail(req, LY_EBADREQ, "execution_types lists '%s' twice",
                                json_string_value(t));
    }
    uuid_v4(parent);
    if (strcmp(mode, "first_available") == 0) {
        const char *pick = json_string_value(json_array_get(types, 0));

        json_array_foreach(types, i, t) if (runs_profile_free(json_string_value(t)))
        {
            pick = json_string_value(t);
            break;
        }
        fill_submit(req, &subs[n++], RUN_PYTHON, pick, cbs);
    } else {
        json_array_foreach(types, i, t)
            fill_submit(req, &subs[n++], RUN_PYTHON, json_string_value(t), cbs);
    }
    for (int k = 0; k < n; k++)
        subs[k].parent_id = parent;
    return submit_and_reply(req, subs, n, NULL, selection_answer, parent);
}

/* ---- the route table ---- */

#define RUN_COMMON_FIELDS                                                                          \
    {"timeout", FT_INTEGER, FF_NULLABLE, 1, 600, "seconds, default 60"},                           \
        {"execution_type", FT_STRING, FF_NULLABLE, 1, 63, "hardware profile, default \"cpu\""},    \
        {"file_name", FT_STRING, FF_NULLABLE, 0, 255, "shown in history"},                         \
    {                                                                                              \
        "user_callback_urls", FT_ARRAY, FF_NULLABLE, 0, 0, "POSTed the result on the end"          \
    }

#define PYTHON_FIELDS                                                                              \
    {"code", FT_STRING, FF_REQUIRED, 0, 0, "the script's source"},                                 \
        {"nbcode", FT_INTEGER, FF_NULLABLE, 0, 0, NULL},                                           \
        {"requirements_content", FT_STRING, FF_NULLABLE, 0, 0, "pip requirements text"},           \
        {"requirements", FT_STRING, FF_NULLABLE, 0, 0, "older name of requirements_content"},      \
        {"prior_imports", FT_ARRAY, FF_NULLABLE, 0, 0, "modules to import first"},                 \
        {"kernel_state", FT_STRING, FF_NULLABLE, 0, 0, NULL},                                      \
    {                                                                                              \
        "import_files", FT_STRING, FF_NULLABLE, 0, 0, "JSON-encoded {relative_path: source}"       \
    }

static const struct field python_body[] = {
    PYTHON_FIELDS,
    RUN_COMMON_FIELDS,
    {0},
};
static const struct field selection_body[] = {
    PYTHON_FIELDS,
    {"execution_types", FT_ARRAY, FF_REQUIRED, 0, 0, "1 to 8 hardware profiles, by preference"},
    {"mode", FT_STRING, FF_NULLABLE, 0, 0, "\"all\" (default) or \"first_available\""},
    {"timeout", FT_INTEGER, FF_NULLABLE, 1, 600, "seconds, default 60"},
    {"file_name", FT_STRING, FF_NULLABLE, 0, 255, NULL},
    {"user_callback_urls", FT_ARRAY, FF_NULLABLE, 0, 0, NULL},
    {0},
};
static const struct field image_body[] = {
    {"docker_image_ref", FT_STRING, FF_REQUIRED, 1, 1024, "e.g. python:3.11"},
    {"docker_run_cmd", FT_ARRAY, FF_NULLABLE, 0, 0,
     "the command, as a list of strings; missing, null or empty: the image's own ENTRYPOINT and "
     "CMD"},
    {"docker_run_env", FT_STRING, FF_NULLABLE, 0, 0, "KEY=VALUE lines"},
    {"docker_registry_credential_type", FT_STRING, FF_NULLABLE, 0, 0, "\"basic\" or \"aws\""},
    {"docker_registry_credentials", FT_STRING, FF_NULLABLE, 0, 0,
     "JSON {username, password}; stored sealed, deleted once pulled"},
    {"aws_access_key_id", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"aws_secret_access_key", FT_STRING, FF_NULLABLE, 0, 0, "stored sealed"},
    {"aws_session_token", FT_STRING, FF_NULLABLE, 0, 0, "stored sealed"},
    {"region", FT_STRING, FF_NULLABLE, 0, 0, "default us-east-1"},
    {"enable_s3_mount", FT_BOOLEAN, FF_NULLABLE, 0, 0, "default true"},
    RUN_COMMON_FIELDS,
    {0},
};
static const struct field compose_body[] = {
    {"compose_file_code", FT_STRING, FF_REQUIRED, 1, 0, "the docker-compose.yml text"},
    {"docker_registry_credential_type", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"aws_access_key_id", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"aws_secret_access_key", FT_STRING, FF_NULLABLE, 0, 0, "stored sealed"},
    {"aws_session_token", FT_STRING, FF_NULLABLE, 0, 0, "stored sealed"},
    {"aws_region", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"docker_username", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"docker_password", FT_STRING, FF_NULLABLE, 0, 0, "stored sealed, deleted once pulled"},
    {"enable_s3_mount", FT_BOOLEAN, FF_NULLABLE, 0, 0, "default false"},
    {"graceful_timeout", FT_INTEGER, FF_NULLABLE, 0, 3600, "seconds, default 150"},
    RUN_COMMON_FIELDS,
    {0},
};
static const struct field start_resp[] = {
    {"execution_id", FT_STRING, 0, 0, 0, "a UUID"},
    {"status", FT_STRING, 0, 0, 0, "\"pending\""},
    {"streaming_url", FT_STRING, 0, 0, 0, "POST or GET it for the SSE output stream"},
    {"pythia_decision", FT_STRING, FF_NULLABLE, 0, 0, "always null"},
    {0},
};
static const struct field selection_resp[] = {
    {"parent_execution_id", FT_STRING, 0, 0, 0, NULL},
    {"executions", FT_ARRAY, 0, 0, 0, "{execution_id, execution_type, status, streaming_url}"},
    {0},
};

const struct route api_runs_routes[] = {
    {"POST", "/execution/streaming/start", api_runs_start_python, 0, "Start a Python run",
     python_body, start_resp},
    {"POST", "/execution/image/start", api_runs_start_image, 0, "Start a Docker image run",
     image_body, start_resp},
    {"POST", "/execution/compose/start", api_runs_start_compose, R_BLOCKING,
     "Start a Docker Compose run", compose_body, start_resp},
    {"POST", "/execution/gpu-selection/start", api_runs_start_selection, 0,
     "Run the code on several hardware profiles", selection_body, selection_resp},
    {"POST", "/compute/execution/run", api_runs_start_python, 0, "Legacy: start a Python run",
     python_body, start_resp},
    {"POST", "/compute/execution/docker", api_runs_start_image, 0,
     "Legacy: start a Docker image run", image_body, start_resp},
    {0},
};
