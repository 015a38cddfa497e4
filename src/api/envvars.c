/*
 * Environment variables and secrets (API.md 8): create one or a batch (an object, a JSON
 * array, {"variables": [...]} or the dashboard's {"environment_variables": [...]}, each item
 * naming its variable as "key" or, as the dashboard does, "name"), list (as
 * {"environment_variables": [...]}, items carrying both key and name), delete one, delete all.
 * Scope (a lyceumd decision): a variable belongs to the org the request acts in and, by default, to
 * the calling user alone ("scope": "user"); "scope": "org" (admins) makes it the org's, for every
 * member's runs. A run gets its org's variables and then its user's, which win on equal names.
 * Secret values are sealed before they are stored and never answered again: lists show "********".
 */
#include "api/api.h"
#include "core/err.h"
#include "core/json.h"
#include "secrets/envvars.h"

#include <string.h>

#define MAX_BATCH 100
#define MAX_VALUE (64 * 1024)
#define MASK      "********"

static json_t *item_json(const struct envvar_row *r)
{
    return json_pack(
        "{s:s,s:s,s:s,s:o,s:b,s:s,s:o,s:o}", "id", r->id, "key", r->name, "name", r->name, "value",
        r->is_secret ? json_string(MASK) : (r->value ? json_string(r->value) : json_null()),
        "is_secret", r->is_secret != 0, "scope", r->user_id && *r->user_id ? "user" : "org",
        "created_at", json_time(r->created_at), "updated_at", json_time(r->updated_at));
}

/* An item's name: "key" (the CLI, API.md 8) or "name" (the dashboard); NULL when neither. */
static json_t *item_name(json_t *it)
{
    json_t *k = json_object_get(it, "key");

    return k ? k : json_object_get(it, "name");
}

/* Checks one item of a create request; records 422s and returns 0 when it is good. */
static int check_item(struct req *req, json_t *it, json_t *seen)
{
    json_t *k = item_name(it), *v = json_object_get(it, "value");
    json_t *s = json_object_get(it, "is_secret"), *sc = json_object_get(it, "scope");
    int bad = 0;

    if (!json_is_object(it)) {
        req_invalid(req, "body", NULL, "Input should be a valid dictionary", "dict_type");
        return -1;
    }
    if (json_object_get(it, "key") && json_object_get(it, "name") &&
        !json_equal(json_object_get(it, "key"), json_object_get(it, "name")))
        req_invalid(req, "body", "name", "Give the name once: as key or as name", "value_error"),
            bad = 1;
    if (!k)
        req_invalid(req, "body", "key", "Field required", "missing"), bad = 1;
    else if (!json_is_string(k))
        req_invalid(req, "body", "key", "Input should be a valid string", "string_type"), bad = 1;
    else if (!envvars_name_ok(json_string_value(k)))
        req_invalid(req, "body", "key",
                    "Names start with a letter or '_', then letters, digits or '_' (at most 255)",
                    "string_pattern_mismatch"),
            bad = 1;
    else if (json_object_get(seen, json_string_value(k)))
        req_invalid(req, "body", "key", "Duplicate name in one request", "value_error"), bad = 1;
    else
        json_object_set_new(seen, json_string_value(k), json_true());
    if (!v)
        req_invalid(req, "body", "value", "Field required", "missing"), bad = 1;
    else if (!json_is_string(v))
        req_invalid(req, "body", "value", "Input should be a valid string", "string_type"), bad = 1;
    else if (json_string_length(v) > MAX_VALUE ||
             memchr(json_string_value(v), 0, json_string_length(v)))
        req_invalid(req, "body", "value", "Values are at most 65536 bytes, without NUL",
                    "value_error"),
            bad = 1;
    if (s && !json_is_null(s) && !json_is_boolean(s))
        req_invalid(req, "body", "is_secret", "Input should be a valid boolean", "bool_type"),
            bad = 1;
    if (sc && !json_is_null(sc) &&
        (!json_is_string(sc) ||
         (strcmp(json_string_value(sc), "user") != 0 && strcmp(json_string_value(sc), "org") != 0)))
        req_invalid(req, "body", "scope", "Input should be 'user' or 'org'", "literal_error"),
            bad = 1;
    return bad ? -1 : 0;
}

static int api_envvars_create(struct req *req)
{
    json_error_t jerr;
    json_t *body =
        req->body_len ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    json_t *items, *seen = json_object(), *it, *out = NULL;
    struct envvar_row *rows;
    int batch = 0, err = 0, org_scope = 0, n;
    size_t i;

    if (!body) {
        req_invalid(req, "body", NULL, body ? "Field required" : "JSON decode error",
                    "json_invalid");
        err = LY_EINVAL;
        goto out;
    }
    items = body;
    if (json_is_object(body) && json_is_array(json_object_get(body, "variables")))
        items = json_object_get(body, "variables");
    else if (json_is_object(body) && json_is_array(json_object_get(body, "environment_variables")))
        items = json_object_get(body, "environment_variables");
    batch = json_is_array(items);
    if (!batch) {
        json_t *one = json_array();

        json_array_append(one, body);
        items = one;
    } else {
        json_incref(items);
    }
    if (json_array_size(items) == 0 || json_array_size(items) > MAX_BATCH) {
        req_invalid(req, "body", NULL, "Give between 1 and 100 variables", "value_error");
        err = LY_EINVAL;
        goto out_items;
    }
    json_array_foreach(items, i, it)
    {
        check_item(req, it, seen);
        if (json_is_object(it) && json_is_string(json_object_get(it, "scope")) &&
            strcmp(json_string_value(json_object_get(it, "scope")), "org") == 0)
            org_scope = 1;
    }
    err = req_check_valid(req);
    if (!err && org_scope)
        err = api_require_role(req, ROLE_ADMIN);
    if (err)
        goto out_items;
    out = json_array();
    json_array_foreach(items, i, it)
    {
        const char *sc = json_string_value(json_object_get(it, "scope"));
        const char *uid = sc && strcmp(sc, "org") == 0 ? "" : req->caller->user_id;
        const char *name = json_string_value(item_name(it));
        char id[41];

        err = envvars_set(req->caller->org_id, uid, name,
                          json_string_value(json_object_get(it, "value")),
                          json_is_true(json_object_get(it, "is_secret")), id);
        if (err)
            goto out_items;
    }
    /* Answer the rows as stored (masked), in the order asked. */
    n = envvars_list(&req->arena, req->caller->org_id, req->caller->user_id, &rows);
    err = n < 0 ? n : 0;
    json_array_foreach(items, i, it)
    {
        const char *sc = json_string_value(json_object_get(it, "scope"));
        const char *uid = sc && strcmp(sc, "org") == 0 ? "" : req->caller->user_id;

        for (int j = 0; j < n; j++)
            if (strcmp(rows[j].name, json_string_value(item_name(it))) == 0 &&
                strcmp(rows[j].user_id, uid) == 0)
                json_array_append_new(out, item_json(&rows[j]));
    }
    if (!err)
        err = batch ? req_reply(req, json_pack("{s:O,s:O,s:i}", "environment_variables", out,
                                               "variables", out, "count",
                                               (json_int_t)json_array_size(out)))
                    : req_reply(req, json_incref(json_array_get(out, 0)));
out_items:
    json_decref(items);
out:
    json_decref(out);
    json_decref(seen);
    json_decref(body);
    return err;
}

static int api_envvars_list(struct req *req)
{
    struct envvar_row *rows;
    json_t *out;
    int n = envvars_list(&req->arena, req->caller->org_id, req->caller->user_id, &rows);

    if (n < 0)
        return n;
    out = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(out, item_json(&rows[i]));
    return req_reply(req, json_pack("{s:o,s:I}", "environment_variables", out, "count",
                                    (json_int_t)json_array_size(out)));
}

static int api_envvars_delete(struct req *req)
{
    int n = envvars_delete(req->caller->org_id, req->caller->user_id, req_param(req, "env_var_id"),
                           req->caller->role >= ROLE_ADMIN);

    if (n < 0)
        return n;
    if (n == 0)
        return req_fail(req, LY_ENOTFOUND, "Environment variable not found");
    return req_reply(req, json_pack("{s:s,s:s}", "message", "Environment variable deleted", "id",
                                    req_param(req, "env_var_id")));
}

static int api_envvars_delete_all(struct req *req)
{
    int n = envvars_delete_all(req->caller->org_id, req->caller->user_id);

    if (n < 0)
        return n;
    return req_reply(req, json_pack("{s:s,s:i}", "message", "Environment variables deleted",
                                    "deleted", (json_int_t)n));
}

static const struct field create_body[] = {
    {"key", FT_STRING, 0, 1, 255, "[A-Za-z_][A-Za-z0-9_]*; required unless given as name"},
    {"name", FT_STRING, 0, 1, 255, "the dashboard's spelling of key"},
    {"value", FT_STRING, FF_REQUIRED, 0, 65536, "the value (encrypted at rest when is_secret)"},
    {"is_secret", FT_BOOLEAN, 0, 0, 0, "secret: AES-256-GCM at rest, masked in every answer"},
    {"scope", FT_STRING, 0, 0, 0,
     "'user' (default: the caller's runs in this org) or 'org' (admins: every run of the org)"},
    {0},
};
static const struct field list_resp[] = {
    {"environment_variables", FT_ARRAY, 0, 0, 0,
     "{id, key, name, value, is_secret, scope, created_at, updated_at}, secret values masked"},
    {"count", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field item_resp[] = {
    {"id", FT_STRING, 0, 0, 0, NULL},
    {"key", FT_STRING, 0, 0, 0, NULL},
    {"name", FT_STRING, 0, 0, 0, "the same as key (the dashboard reads name)"},
    {"value", FT_STRING, 0, 0, 0, "\"********\" for a secret"},
    {"is_secret", FT_BOOLEAN, 0, 0, 0, NULL},
    {"scope", FT_STRING, 0, 0, 0, "user or org"},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"updated_at", FT_DATETIME, 0, 0, 0, NULL},
    {0},
};

const struct route api_envvars_routes[] = {
    {"GET", "/environment-variables/", api_envvars_list, 0,
     "The org's variables and the caller's own in it (secret values masked)", NULL, list_resp},
    {"POST", "/environment-variables/", api_envvars_create, R_RAW_BODY,
     "Create or replace one variable (answered as the item), or a batch (a JSON array, "
     "{\"variables\": [...]} or {\"environment_variables\": [...]}, answered as "
     "{environment_variables, variables, count}); each names its variable as key or name; "
     "scope 'user' (default) or 'org' (admins); a run gets the org's, then its user's",
     create_body, item_resp},
    {"DELETE", "/environment-variables/{env_var_id}", api_envvars_delete, 0,
     "Delete one (org-wide ones need the admin role)", NULL, NULL},
    {"DELETE", "/environment-variables/", api_envvars_delete_all, 0,
     "Delete all of the caller's own variables in this org", NULL, NULL},
    {0},
};
