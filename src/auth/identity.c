/*
 * See identity.h. Bearer tokens starting with "lk_" are API keys, looked up by the SHA-256 of
 * the whole key; anything else must be one of our JWTs. A JWT also names its refresh family,
 * so revoking a family (refresh-token reuse) ends the access tokens issued from it as well.
 */
#include "auth/identity.h"
#include "auth/mfa.h"
#include "auth/password.h"
#include "auth/throttle.h"
#include "auth/token.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"
#include "store/tokens.h"
#include "store/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_HEADER_MAX 8192

static int auth_key(struct arena *a, const char *key, struct caller *c, const char **why)
{
    struct key_auth k;
    char hash[65];
    int err;

    sha256_hex(key, strlen(key), hash);
    err = users_key_auth(a, hash, &k);
    if (err == LY_ENOTFOUND) {
        *why = "Invalid API key";
        return LY_EUNAUTH;
    }
    if (err)
        return err;
    if (k.revoked) {
        *why = "API key has been revoked";
        return LY_EUNAUTH;
    }
    if (!k.key_active) {
        *why = "API key is inactive";
        return LY_EUNAUTH;
    }
    if (k.expires_at && k.expires_at <= now_us()) {
        *why = "API key has expired";
        return LY_EUNAUTH;
    }
    if (!k.user_active) {
        *why = "User account is disabled";
        return LY_EUNAUTH;
    }
    users_key_touch(k.key_id, k.last_used_at);
    c->via = k.org_id[0] ? VIA_ORG_KEY : VIA_USER_KEY;
    snprintf(c->user_id, sizeof(c->user_id), "%s", k.user_id);
    snprintf(c->key_id, sizeof(c->key_id), "%s", k.key_id);
    snprintf(c->org_id, sizeof(c->org_id), "%s", k.org_id);
    c->email = k.email;
    c->is_admin = k.is_admin;
    return 0;
}

static int auth_jwt(struct arena *a, const char *token, struct caller *c, const char **why)
{
    char user_id[40], family_id[40];
    int active, admin, revoked, err;

    err = jwt_check(token, user_id, family_id, why);
    if (err)
        return err;
    err = users_jwt_auth(a, user_id, family_id, &c->email, &active, &admin, &revoked);
    if (err == LY_ENOTFOUND) {
        *why = "Invalid authentication credentials";
        return LY_EUNAUTH;
    }
    if (err)
        return err;
    if (revoked) {
        *why = "Session has been revoked";
        return LY_EUNAUTH;
    }
    if (!active) {
        *why = "User account is disabled";
        return LY_EUNAUTH;
    }
    c->via = VIA_JWT;
    snprintf(c->user_id, sizeof(c->user_id), "%s", user_id);
    c->is_admin = admin;
    return 0;
}

int identity_authenticate(struct arena *a, const char *authorization, struct caller *c,
                          const char **why)
{
    const char *tok;

    *why = "Invalid authentication credentials";
    if (strlen(authorization) > AUTH_HEADER_MAX || strncasecmp(authorization, "Bearer ", 7))
        return LY_EUNAUTH;
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    if (!*tok)
        return LY_EUNAUTH;
    if (strncmp(tok, "lk_", 3) == 0)
        return auth_key(a, tok, c, why);
    return auth_jwt(a, tok, c, why);
}

int identity_resolve_org(struct arena *a, struct caller *c, const char *org_slug, const char **why)
{
    char *slug = NULL, *role = NULL;
    int err;

    if (c->via == VIA_ORG_KEY) {
        err = users_membership(a, c->user_id, NULL, c->org_id, c->org_id, &slug, &role);
        if (err == LY_ENOTFOUND) {
            *why = "API key is no longer valid: its creator left the organization";
            return LY_EUNAUTH;
        }
        if (!err && org_slug && strcmp(org_slug, slug) != 0) {
            *why = arena_sprintf(a, "This API key belongs to organization '%s'", slug);
            return LY_EFORBIDDEN;
        }
    } else {
        err = users_membership(a, c->user_id, org_slug, NULL, c->org_id, &slug, &role);
        if (err == LY_ENOTFOUND && org_slug) {
            *why = arena_sprintf(a, "You are not a member of organization '%.64s'", org_slug);
            return LY_EFORBIDDEN;
        }
        if (err == LY_ENOTFOUND) {
            /* A user who left every org (possible only through deletions) has no org. */
            c->org_id[0] = '\0';
            c->role = ROLE_NONE;
            return 0;
        }
    }
    if (err)
        return err;
    c->org_slug = slug;
    c->role = role_parse(role);
    return 0;
}

static json_t *login_answer(const char *access, const char *refresh)
{
    return json_pack("{s:s,s:s,s:s,s:i}", "access_token", access, "refresh_token", refresh,
                     "token_type", "bearer", "expires_in", ACCESS_TTL_S);
}

/* Adds a refresh token to family_id and signs an access token; inside the caller's tx. */
static int issue_in_family(const char *user_id, const char *family_id, json_t **out)
{
    char refresh[64], hash[65], *access = NULL;
    int err;

    token_random("rt_", 48, refresh, sizeof(refresh));
    sha256_hex(refresh, strlen(refresh), hash);
    err = tokens_insert(hash, family_id, now_us() + (int64_t)REFRESH_TTL_S * 1000000);
    if (err)
        return err;
    err = jwt_issue(user_id, family_id, ACCESS_TTL_S, &access);
    if (err)
        return err;
    *out = login_answer(access, refresh);
    free(access);
    return 0;
}

int identity_issue(const char *user_id, json_t **out)
{
    char family[37];
    int err;

    uuid_v4(family);
    err = store_begin();
    if (err)
        return err;
    err = tokens_family_new(family, user_id);
    if (!err)
        err = issue_in_family(user_id, family, out);
    if (!err)
        err = store_commit();
    if (err)
        store_rollback();
    return err;
}

int identity_login(struct arena *a, const char *email, const char *password, const char *mfa_code,
                   json_t **out, int64_t *retry_after, const char **why)
{
    struct user_row u = {0};
    int err, found;

    *retry_after = throttle_check(email);
    if (*retry_after) {
        *why = "Too many failed login attempts; try again later";
        return LY_ETHROTTLED;
    }
    err = users_get_by_email(a, email, &u);
    if (err && err != LY_ENOTFOUND)
        return err;
    found = !err;
    if (!password_verify(found ? u.password_hash : NULL, password) || !u.is_active) {
        throttle_fail(email);
        *why = "Incorrect email or password";
        return LY_EUNAUTH;
    }
    if (u.mfa_enabled) {
        char token[64];

        if (!mfa_code) {
            err = mfa_challenge_new(u.id, token);
            if (err)
                return err;
            *out = json_pack("{s:b,s:s,s:i}", "mfa_required", 1, "mfa_token", token, "expires_in",
                             MFA_TOKEN_TTL_S);
            return 0;
        }
        err = mfa_check_code(a, &u, mfa_code, why);
        if (err) {
            throttle_fail(email);
            return err;
        }
    }
    throttle_clear(email);
    return identity_issue(u.id, out);
}

int identity_login_mfa(struct arena *a, const char *mfa_token, const char *code, json_t **out,
                       const char **why)
{
    struct user_row u;
    char user_id[40];
    int err;

    err = mfa_challenge_get(mfa_token, user_id, why);
    if (err)
        return err;
    err = users_get(a, user_id, &u);
    if (err == LY_ENOTFOUND || (!err && (!u.is_active || !u.mfa_enabled))) {
        *why = "Invalid or expired MFA token";
        return LY_EUNAUTH;
    }
    if (err)
        return err;
    err = mfa_check_code(a, &u, code, why);
    if (err)
        return err;
    mfa_challenge_done(mfa_token);
    return identity_issue(u.id, out);
}

int identity_refresh(const char *refresh_token, json_t **out, const char **why)
{
    struct refresh_row r;
    char hash[65];
    int err;

    *why = "Invalid refresh token";
    sha256_hex(refresh_token, strlen(refresh_token), hash);
    err = store_begin();
    if (err)
        return err;
    err = tokens_get(hash, &r);
    if (err == LY_ENOTFOUND) {
        err = LY_EUNAUTH;
        goto fail;
    }
    if (err)
        goto fail;
    if (r.used || r.family_revoked) {
        /* Reuse: someone holds a copy of a token that was already exchanged. End the family. */
        err = tokens_revoke_family(r.family_id);
        if (err || (err = store_commit()))
            goto fail;
        *why = "Refresh token was already used; this session has been revoked";
        return LY_EUNAUTH;
    }
    if (r.expires_at <= now_us()) {
        *why = "Refresh token has expired";
        err = LY_EUNAUTH;
        goto fail;
    }
    err = tokens_mark_used(hash);
    if (err == LY_ECONFLICT)
        err = LY_EUNAUTH;
    if (!err)
        err = issue_in_family(r.user_id, r.family_id, out);
    if (!err)
        err = store_commit();
    if (!err)
        return 0;
fail:
    store_rollback();
    return err;
}
