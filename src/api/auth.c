/*
 * /auth: password login, token refresh, and the caller's own API keys (API.md section 1).
 */
#include "api/api.h"
#include "auth/accounts.h"
#include "auth/apikeys.h"
#include "auth/identity.h"
#include "core/err.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

static int api_auth_login(struct req *req)
{
    json_t *out = NULL;
    int64_t retry = 0;
    const char *why = NULL;
    int err;

    err = identity_login(&req->arena, body_str(req, "email"), body_str(req, "password"),
                         body_str(req, "mfa_code"), &out, &retry, &why);
    if (err == LY_ETHROTTLED) {
        char s[24];

        snprintf(s, sizeof(s), "%lld", (long long)retry);
        req_add_header(req, "Retry-After", s);
    }
    if (err)
        return req_fail(req, err, "%s", why ? why : err_str(err));
    return req_reply(req, out);
}

static int api_auth_refresh(struct req *req)
{
    json_t *out = NULL;
    const char *why = NULL;
    int err = identity_refresh(body_str(req, "refresh_token"), &out, &why);

    if (err)
        return req_fail(req, err, "%s", why ? why : err_str(err));
    return req_reply(req, out);
}

/* Reads an optional expires_at (already validated as a datetime); it must be in the future. */
int api_expires_at(struct req *req, int64_t *out)
{
    const char *s = body_str(req, "expires_at");
    int64_t t;

    *out = 0;
    if (!s)
        return 0;
    time_parse_iso(s, &t);
    if (t <= now_unix()) {
        req_invalid(req, "body", "expires_at", "Value error, expires_at must be in the future",
                    "value_error");
        return LY_EINVAL;
    }
    *out = t * 1000000;
    return 0;
}

static int api_auth_key_create(struct req *req)
{
    const char *name = body_str(req, "key_name");
    struct new_key k;
    int64_t expires;
    int err;

    if (req->caller->via == VIA_ORG_KEY)
        return req_fail(req, LY_EFORBIDDEN, "An organization API key cannot create user API keys");
    err = api_expires_at(req, &expires);
    if (!err)
        err = accounts_key_create(req->caller->user_id, NULL, name, expires, &k);
    if (err)
        return err;
    return req_reply(req, json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:b}", "api_key", k.key, "id", k.id,
                                    "key_name", name, "key_prefix", k.prefix, "created_at",
                                    json_time(k.created_at), "expires_at", json_time(expires),
                                    "is_active", 1));
}

/* A user key object (API.md 1). */
static json_t *user_key_obj(const struct key_row *k)
{
    return json_pack("{s:s,s:s,s:s,s:b,s:o,s:o,s:o,s:b}", "id", k->id, "key_name", k->name,
                     "key_prefix", k->prefix, "is_active", k->is_active, "created_at",
                     json_time(k->created_at), "expires_at", json_time(k->expires_at),
                     "last_used_at", json_time(k->last_used_at), "is_expired",
                     k->expires_at && k->expires_at < now_us());
}

static int api_auth_key_list(struct req *req)
{
    struct key_row *rows;
    json_t *arr;
    int n = apikeys_list_user(&req->arena, req->caller->user_id, &rows);

    if (n < 0)
        return n;
    arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, user_key_obj(&rows[i]));
    return req_reply(req, arr);
}

static int api_auth_key_delete(struct req *req)
{
    const char *id = req_param(req, "api_key_id");
    int err = apikeys_revoke_user(req->caller->user_id, id);

    if (err == LY_ENOTFOUND)
        return req_fail(req, err, "API key not found");
    if (err)
        return err;
    return req_reply(req, json_pack("{s:s,s:s}", "message", "API key revoked", "id", id));
}

static int api_auth_key_toggle(struct req *req)
{
    struct key_row k;
    int err =
        apikeys_toggle_user(&req->arena, req->caller->user_id, req_param(req, "api_key_id"), &k);

    if (err == LY_ENOTFOUND)
        return req_fail(req, err, "API key not found");
    if (err)
        return err;
    return req_reply(req, user_key_obj(&k));
}

static int api_auth_key_validate(struct req *req)
{
    const char *key = body_str(req, "api_key");
    struct key_check c;
    int err = apikeys_validate(&req->arena, req->caller->user_id, key, &c);

    if (err)
        return err;
    if (!c.valid)
        return req_reply(req,
                         json_pack("{s:b,s:n,s:n,s:n,s:n,s:n,s:n}", "valid", 0, "user_id", "email",
                                   "key_name", "created_at", "expires_at", "last_used_at"));
    return req_reply(req, json_pack("{s:b,s:s,s:s,s:s,s:o,s:o,s:o}", "valid", 1, "user_id",
                                    c.key.user_id, "email", c.email, "key_name", c.key.name,
                                    "created_at", json_time(c.key.created_at), "expires_at",
                                    json_time(c.key.expires_at), "last_used_at",
                                    json_time(c.key.last_used_at)));
}

static const struct field login_body[] = {
    {"email", FT_STRING, FF_REQUIRED, 1, 320, NULL},
    {"password", FT_STRING, FF_REQUIRED, 1, 1024, NULL},
    {"mfa_code", FT_STRING, FF_NULLABLE, 1, 32, "TOTP or backup code, for an MFA account"},
    {0},
};
static const struct field login_resp[] = {
    {"access_token", FT_STRING, 0, 0, 0, "JWT, HS256"},
    {"refresh_token", FT_STRING, 0, 0, 0, "single use, 30 days"},
    {"token_type", FT_STRING, 0, 0, 0, "\"bearer\""},
    {"expires_in", FT_INTEGER, 0, 0, 0, "seconds (86400)"},
    {"mfa_required", FT_BOOLEAN, 0, 0, 0, "instead of tokens, when MFA is on and no code given"},
    {"mfa_token", FT_STRING, 0, 0, 0, "for POST /mfa/verify (5 minutes)"},
    {0},
};
static const struct field refresh_body[] = {
    {"refresh_token", FT_STRING, FF_REQUIRED, 1, 256, NULL},
    {0},
};
static const struct field key_body[] = {
    {"key_name", FT_STRING, FF_REQUIRED, 1, 255, NULL},
    {"expires_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {0},
};
static const struct field key_created[] = {
    {"api_key", FT_STRING, 0, 0, 0, "the full key, shown only here"},
    {"id", FT_STRING, 0, 0, 0, NULL},
    {"key_name", FT_STRING, 0, 0, 0, NULL},
    {"key_prefix", FT_STRING, 0, 0, 0, "first 8 characters"},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"expires_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {"is_active", FT_BOOLEAN, 0, 0, 0, NULL},
    {0},
};
static const struct field key_item[] = {
    {"id", FT_STRING, 0, 0, 0, NULL},
    {"key_name", FT_STRING, 0, 0, 0, NULL},
    {"key_prefix", FT_STRING, 0, 0, 0, NULL},
    {"is_active", FT_BOOLEAN, 0, 0, 0, NULL},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"expires_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {"last_used_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {"is_expired", FT_BOOLEAN, 0, 0, 0, NULL},
    {0},
};
static const struct field message_resp[] = {
    {"message", FT_STRING, 0, 0, 0, NULL},
    {"id", FT_STRING, 0, 0, 0, NULL},
    {0},
};
static const struct field validate_body[] = {
    {"api_key", FT_STRING, FF_REQUIRED, 1, 256, NULL},
    {0},
};
static const struct field validate_resp[] = {
    {"valid", FT_BOOLEAN, 0, 0, 0, NULL},
    {"user_id", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"email", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"key_name", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"created_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {"expires_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {"last_used_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {0},
};

const struct route api_auth_routes[] = {
    {"POST", "/auth/login", api_auth_login, R_PUBLIC, "Log in with email and password", login_body,
     login_resp},
    {"POST", "/auth/refresh", api_auth_refresh, R_PUBLIC,
     "Exchange a refresh token for new tokens (rotation)", refresh_body, login_resp},
    {"GET", "/auth/api-keys/", api_auth_key_list, R_RESP_ARRAY, "List your API keys", NULL,
     key_item},
    {"POST", "/auth/api-keys/", api_auth_key_create, 0, "Create an API key", key_body, key_created},
    {"DELETE", "/auth/api-keys/{api_key_id}", api_auth_key_delete, 0, "Revoke an API key", NULL,
     message_resp},
    {"PATCH", "/auth/api-keys/{api_key_id}/toggle", api_auth_key_toggle, 0,
     "Switch an API key between active and inactive", NULL, key_item},
    {"POST", "/auth/api-keys/validate", api_auth_key_validate, 0, "Check an API key of yours",
     validate_body, validate_resp},
    {0},
};

/* CLI 1.0.x paths (API.md section 14). */
const struct route api_legacy_v1_routes[] = {
    {"GET", "/api-keys", api_auth_key_list, R_RESP_ARRAY, "List your API keys (legacy path)", NULL,
     key_item},
    {0},
};
