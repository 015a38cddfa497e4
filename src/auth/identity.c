/*
 * See identity.h. Bearer tokens starting with "lk_" are API keys, looked up by the SHA-256 of
 * the whole key; anything else must be one of our JWTs. A JWT also names its refresh family,
 * so revoking a family (refresh-token reuse) ends the access tokens issued from it as well.
 *
 * Every request resolves its caller, so the two look-ups behind it (the key with its user, and
 * the membership that gives the org and role) are cached, per thread so that no lock is
 * taken. An entry holds the rows as the database had them, stamped with the store's identity
 * generation read before the query; it is used only while the generation is unchanged, so any
 * committed change to a key, user, org or membership (a revoked or disabled key, a changed
 * role, a deleted org) is seen by the next request. The checks (revoked, inactive, expired)
 * run on the cached row exactly as on a fresh one. Unknown keys are not cached.
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

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_HEADER_MAX 8192

/* Slots of each per-thread cache (direct-mapped: a collision only costs a query). */
#define KEY_SLOTS 128
#define ORG_SLOTS 128
#define SLUG_MAX  72

struct key_slot {
    uint64_t gen; /* 0: empty */
    char hash[65];
    char email[321]; /* accounts_email_ok() allows 320 bytes */
    struct key_auth k;
};

/* A membership look-up: by org slug ('s'), by org id ('i') or the default one ('d'). */
struct org_slot {
    uint64_t gen;
    char user_id[40];
    char by;
    char sel[SLUG_MAX];
    char org_id[40];
    char slug[SLUG_MAX];
    char role[16];
};

struct id_cache {
    struct key_slot keys[KEY_SLOTS];
    struct org_slot orgs[ORG_SLOTS];
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_make_key(void)
{
    pthread_key_create(&cache_key, free);
}

static struct id_cache *cache_get(void)
{
    struct id_cache *ic;

    pthread_once(&cache_once, cache_make_key);
    ic = pthread_getspecific(cache_key);
    if (!ic) {
        ic = xcalloc(1, sizeof(*ic));
        pthread_setspecific(cache_key, ic);
    }
    return ic;
}

/* users_key_auth() through the cache. k->email is allocated from a. */
static int key_lookup(struct arena *a, const char *hash, struct key_auth *k)
{
    uint64_t gen = store_identity_gen();
    struct key_slot *s = &cache_get()->keys[fnv1a(FNV1A_SEED, hash) % KEY_SLOTS];
    int err;

    if (gen && s->gen == gen && strcmp(s->hash, hash) == 0) {
        *k = s->k;
        k->email = arena_strdup(a, s->email);
        return 0;
    }
    err = users_key_auth(a, hash, k);
    if (err || !gen || !k->email || strlen(k->email) >= sizeof(s->email))
        return err;
    s->gen = gen;
    snprintf(s->hash, sizeof(s->hash), "%s", hash);
    snprintf(s->email, sizeof(s->email), "%s", k->email);
    s->k = *k;
    s->k.email = NULL;
    return 0;
}

/* users_membership() through the cache. */
static int membership_lookup(struct arena *a, const char *user_id, const char *org_slug,
                             const char *org_id, char org_id_out[40], char **slug_out,
                             char **role_out)
{
    uint64_t gen = store_identity_gen();
    char by = org_slug ? 's' : org_id ? 'i' : 'd';
    const char *sel = org_slug ? org_slug : org_id ? org_id : "";
    struct org_slot *s;
    int err;

    if (strlen(sel) >= SLUG_MAX)
        return users_membership(a, user_id, org_slug, org_id, org_id_out, slug_out, role_out);
    s = &cache_get()->orgs[fnv1a(fnv1a(FNV1A_SEED, user_id) ^ (unsigned char)by, sel) % ORG_SLOTS];
    if (gen && s->gen == gen && s->by == by && strcmp(s->user_id, user_id) == 0 &&
        strcmp(s->sel, sel) == 0) {
        memcpy(org_id_out, s->org_id, sizeof(s->org_id));
        *slug_out = arena_strdup(a, s->slug);
        *role_out = arena_strdup(a, s->role);
        return 0;
    }
    err = users_membership(a, user_id, org_slug, org_id, org_id_out, slug_out, role_out);
    if (err || !gen || strlen(user_id) >= sizeof(s->user_id) ||
        strlen(*slug_out) >= sizeof(s->slug) || strlen(*role_out) >= sizeof(s->role))
        return err;
    s->gen = gen;
    s->by = by;
    snprintf(s->user_id, sizeof(s->user_id), "%s", user_id);
    snprintf(s->sel, sizeof(s->sel), "%s", sel);
    memcpy(s->org_id, org_id_out, sizeof(s->org_id));
    snprintf(s->slug, sizeof(s->slug), "%s", *slug_out);
    snprintf(s->role, sizeof(s->role), "%s", *role_out);
    return 0;
}

static int auth_key(struct arena *a, const char *key, struct caller *c, const char **why)
{
    struct key_auth k;
    char hash[65];
    int err;

    sha256_hex(key, strlen(key), hash);
    err = key_lookup(a, hash, &k);
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
        err = membership_lookup(a, c->user_id, NULL, c->org_id, c->org_id, &slug, &role);
        if (err == LY_ENOTFOUND) {
            *why = "API key is no longer valid: its creator left the organization";
            return LY_EUNAUTH;
        }
        if (!err && org_slug && strcmp(org_slug, slug) != 0) {
            *why = arena_sprintf(a, "This API key belongs to organization '%s'", slug);
            return LY_EFORBIDDEN;
        }
    } else {
        err = membership_lookup(a, c->user_id, org_slug, NULL, c->org_id, &slug, &role);
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
    return store_end(err);
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
        goto out;
    }
    if (err)
        goto out;
    if (r.used || r.family_revoked) {
        /* Reuse: someone holds a copy of a token that was already exchanged. End the family. */
        err = store_end(tokens_revoke_family(r.family_id));
        if (err)
            return err;
        *why = "Refresh token was already used; this session has been revoked";
        return LY_EUNAUTH;
    }
    if (r.expires_at <= now_us()) {
        *why = "Refresh token has expired";
        err = LY_EUNAUTH;
        goto out;
    }
    err = tokens_mark_used(hash);
    if (err == LY_ECONFLICT)
        err = LY_EUNAUTH;
    if (!err)
        err = issue_in_family(r.user_id, r.family_id, out);
out:
    return store_end(err);
}
