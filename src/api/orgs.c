/*
 * /orgs: organisations, their members, org API keys, balance and transactions, and the
 * invites an org sends (API.md section 3; the invitee's side is in invites.c).
 *
 * Every /orgs/{slug}/... handler starts with org_scope(), which resolves the slug and the
 * caller's membership in one query: an org the caller is not a member of, a deleted one, or
 * (for an org API key) any org but the key's own, is 404 "Organization not found", so a
 * tenant cannot learn that another exists. Role checks use that membership's role, not the
 * role of the org the request acts in. The rules that span several rows live in src/orgs/.
 */
#include "api/api.h"
#include "api/orgs_int.h"
#include "auth/accounts.h"
#include "auth/apikeys.h"
#include "billing/billing.h"
#include "core/err.h"
#include "core/util.h"
#include "orgs/orgs.h"

#include <stdlib.h>
#include <string.h>

#define BILLING_DETAILS_MAX 4096

/* The org object of API.md section 3. */
static json_t *org_obj(const struct org_row *o)
{
    json_t *details = o->billing_details ? json_loads(o->billing_details, 0, NULL) : NULL;

    return json_pack("{s:s,s:s,s:s,s:s?,s:o,s:o,s:s,s:b,s:I}", "id", o->id, "slug", o->slug, "name",
                     o->name, "billing_email", o->billing_email, "billing_details",
                     details ? details : json_null(), "created_at", json_time(o->created_at),
                     "role", o->role, "is_default", o->is_default, "member_count",
                     (json_int_t)o->member_count);
}

static json_t *member_obj(const struct member_row *m)
{
    return json_pack("{s:s,s:s,s:s?,s:s,s:o}", "user_id", m->user_id, "email", m->email,
                     "full_name", m->full_name, "role", m->role, "joined_at",
                     json_time(m->joined_at));
}

json_t *api_invite_obj(const struct invite_row *inv)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:s?,s:s?}", "id", inv->id, "org_id",
                     inv->org_id, "org_slug", inv->org_slug, "org_name", inv->org_name, "email",
                     inv->email, "role", inv->role, "status", inv->status, "expires_at",
                     json_time(inv->expires_at), "created_at", json_time(inv->created_at),
                     "invited_by", inv->invited_by, "invited_by_email", inv->invited_by_email);
}

/* Resolves {slug} to the org and the caller's membership in it (404 otherwise). */
static int org_scope(struct req *req, struct org_row *o)
{
    int err = org_get(&req->arena, req->caller->user_id, req_param(req, "slug"), o);

    if (!err && req->caller->via == VIA_ORG_KEY && strcmp(o->id, req->caller->org_id) != 0)
        err = LY_ENOTFOUND;
    if (err == LY_ENOTFOUND)
        return req_fail(req, err, "Organization not found");
    return err;
}

static int need_role(struct req *req, const struct org_row *o, enum role min)
{
    if (role_parse(o->role) >= min)
        return 0;
    return req_fail(req, LY_EFORBIDDEN,
                    "This action needs the %s role in organization '%s' (your role: %s)",
                    role_name(min), o->slug, o->role);
}

/* A domain error: its reason when there is one, else the code's own text. */
static int fail_why(struct req *req, int err, const char *why)
{
    return why ? req_fail(req, err, "%s", why) : err;
}

static void invalid_slug(struct req *req)
{
    req_invalid(req, "body", "slug", "String should match pattern '^[a-z0-9][a-z0-9-]*$'",
                "string_pattern_mismatch");
}

/* Checks slug (pattern), billing_email and billing_details of a create or update body, and
 * serialises billing_details into *details (NULL when absent). Records 422s. */
static int org_fields(struct req *req, char **details)
{
    const char *slug = body_str(req, "slug"), *email = body_str(req, "billing_email");
    json_t *d = json_object_get(req->json, "billing_details");

    *details = NULL;
    if (slug && !org_slug_ok(slug))
        invalid_slug(req);
    if (email && !accounts_email_ok(email))
        req_invalid(req, "body", "billing_email",
                    "value is not a valid email address: An email address must have an @-sign "
                    "and a domain",
                    "value_error");
    if (json_is_object(d)) {
        char *s = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);

        if (!s || strlen(s) > BILLING_DETAILS_MAX)
            req_invalid(req, "body", "billing_details",
                        "Value error, billing_details must be at most 4096 bytes of JSON",
                        "value_error");
        else
            *details = arena_strdup(&req->arena, s);
        free(s);
    }
    return req_check_valid(req);
}

/* ---- organisations ---------------------------------------------------------------------- */

static int api_orgs_create(struct req *req)
{
    const char *slug = body_str(req, "slug");
    const char *why = NULL;
    struct org_row o;
    char *details, id[40];
    int err;

    if (req->caller->via == VIA_ORG_KEY)
        return req_fail(req, LY_EFORBIDDEN, "An organization API key cannot create organizations");
    err = org_fields(req, &details);
    if (!err)
        err = org_create(&req->arena, req->caller->user_id, slug, body_str(req, "name"),
                         body_str(req, "billing_email"), details, id, &why);
    if (!err)
        err = org_get(&req->arena, req->caller->user_id, slug, &o);
    if (err)
        return fail_why(req, err, why);
    return req_reply(req, org_obj(&o));
}

static int api_orgs_list(struct req *req)
{
    struct org_row *rows;
    json_t *arr;
    int n = org_list(&req->arena, req->caller->user_id,
                     req->caller->via == VIA_ORG_KEY ? req->caller->org_id : NULL, &rows);

    if (n < 0)
        return n;
    arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, org_obj(&rows[i]));
    return req_reply(req, json_pack("{s:o,s:I}", "organizations", arr, "total",
                                    (json_int_t)json_array_size(arr)));
}

static int api_orgs_get(struct req *req)
{
    struct org_row o;
    int err = org_scope(req, &o);

    if (err)
        return err;
    return req_reply(req, org_obj(&o));
}

static int api_orgs_update(struct req *req)
{
    const char *slug = body_str(req, "slug");
    struct org_row o;
    char *details;
    int err;

    err = org_scope(req, &o);
    if (!err)
        err = need_role(req, &o, ROLE_OWNER);
    if (!err)
        err = org_fields(req, &details);
    if (err)
        return err;
    err = org_update(o.id, body_str(req, "name"), slug, body_str(req, "billing_email"), details);
    if (err == LY_ECONFLICT)
        return req_fail(req, err, "Organization slug '%s' is already taken", slug);
    if (err == LY_ENOTFOUND)
        return req_fail(req, err, "Organization not found");
    if (!err)
        err = org_get(&req->arena, req->caller->user_id, slug ? slug : o.slug, &o);
    if (err)
        return err;
    return req_reply(req, org_obj(&o));
}

static int api_orgs_delete(struct req *req)
{
    const char *why = NULL;
    struct org_row o;
    int err;

    err = org_scope(req, &o);
    if (!err)
        err = need_role(req, &o, ROLE_OWNER);
    if (err)
        return err;
    err = org_delete(o.id, req->caller->user_id, &why);
    if (err)
        return fail_why(req, err, why);
    return req_reply(req, json_pack("{s:s,s:s,s:s}", "message", "Organization deleted", "id", o.id,
                                    "slug", o.slug));
}

/* ---- members ---------------------------------------------------------------------------- */

static int api_orgs_members(struct req *req)
{
    struct member_row *rows;
    struct org_row o;
    json_t *arr;
    int n, err = org_scope(req, &o);

    if (err)
        return err;
    n = org_members(&req->arena, o.id, &rows);
    if (n < 0)
        return n;
    arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, member_obj(&rows[i]));
    return req_reply(
        req, json_pack("{s:o,s:I}", "members", arr, "total", (json_int_t)json_array_size(arr)));
}

static int bad_role(struct req *req, const char *name)
{
    req_invalid(req, "body", name, "Input should be 'owner', 'admin' or 'member'", "enum");
    return LY_EINVAL;
}

static int api_orgs_member_update(struct req *req)
{
    const char *role = body_str(req, "role"), *user_id = req_param(req, "user_id");
    const char *why = NULL;
    struct member_row m;
    struct org_row o;
    int err;

    err = org_scope(req, &o);
    if (err)
        return err;
    if (!org_role_ok(role))
        return bad_role(req, "role");
    err = org_member_set_role(o.id, req->caller->user_id, user_id, role, &why);
    if (!err)
        err = org_member(&req->arena, o.id, user_id, &m);
    if (err)
        return fail_why(req, err, why);
    return req_reply(req, member_obj(&m));
}

static int api_orgs_member_remove(struct req *req)
{
    const char *user_id = req_param(req, "user_id");
    const char *why = NULL;
    struct org_row o;
    int err;

    err = org_scope(req, &o);
    if (err)
        return err;
    err = org_member_remove(o.id, req->caller->user_id, user_id, &why);
    if (err)
        return fail_why(req, err, why);
    return req_reply(req, json_pack("{s:s,s:s,s:s}", "message", "Member removed", "org_id", o.id,
                                    "user_id", user_id));
}

/* ---- org API keys ----------------------------------------------------------------------- */

static int api_orgs_key_create(struct req *req)
{
    const char *name = body_str(req, "name");
    struct org_row o;
    struct new_key k;
    int64_t expires;
    int err;

    err = org_scope(req, &o);
    if (!err)
        err = need_role(req, &o, ROLE_ADMIN);
    if (err)
        return err;
    /* A leaked key must not be able to mint keys that outlive its revocation. */
    if (req->caller->via == VIA_ORG_KEY)
        return req_fail(req, LY_EFORBIDDEN, "An organization API key cannot create API keys");
    err = api_expires_at(req, &expires);
    if (!err)
        err = accounts_key_create(req->caller->user_id, o.id, name, expires, &k);
    if (err)
        return err;
    return req_reply(req, json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:b}", "id", k.id, "org_id", o.id,
                                    "name", name, "prefix", k.prefix, "plaintext_key", k.key,
                                    "created_at", json_time(k.created_at), "expires_at",
                                    json_time(expires), "is_active", 1));
}

static int api_orgs_key_list(struct req *req)
{
    struct key_row *rows;
    struct org_row o;
    json_t *arr;
    int err, n;

    err = org_scope(req, &o);
    if (!err)
        err = need_role(req, &o, ROLE_ADMIN);
    if (err)
        return err;
    n = apikeys_list_org(&req->arena, o.id, &rows);
    if (n < 0)
        return n;
    arr = json_array();
    for (int i = 0; i < n; i++) {
        const struct key_row *k = &rows[i];

        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:b,s:o,s:o,s:o,s:s}", "id", k->id,
                                             "org_id", k->org_id, "name", k->name, "prefix",
                                             k->prefix, "is_active", k->is_active, "created_at",
                                             json_time(k->created_at), "expires_at",
                                             json_time(k->expires_at), "last_used_at",
                                             json_time(k->last_used_at), "created_by", k->user_id));
    }
    return req_reply(
        req, json_pack("{s:o,s:I}", "api_keys", arr, "total", (json_int_t)json_array_size(arr)));
}

static int api_orgs_key_delete(struct req *req)
{
    const char *id = req_param(req, "key_id");
    struct org_row o;
    int err;

    err = org_scope(req, &o);
    if (!err)
        err = need_role(req, &o, ROLE_ADMIN);
    if (err)
        return err;
    err = apikeys_revoke_org(o.id, id);
    if (err == LY_ENOTFOUND)
        return req_fail(req, err, "API key not found");
    if (err)
        return err;
    return req_reply(req, json_pack("{s:s,s:s}", "message", "API key revoked", "id", id));
}

/* ---- balance and transactions ----------------------------------------------------------- */

static int api_orgs_balance(struct req *req)
{
    struct org_row o;
    int64_t micro;
    int err;

    err = org_scope(req, &o);
    if (!err)
        err = billing_balance(o.id, &micro);
    if (err)
        return err;
    return req_reply(req, json_pack("{s:s,s:o,s:b}", "org_id", o.id, "balance",
                                    json_money_str(micro), "account_suspended", 0));
}

static int api_orgs_transactions(struct req *req)
{
    long long limit, offset;
    int64_t total = 0;
    struct ledger_row *rows;
    struct org_row o;
    json_t *arr;
    int err, n;

    req_query_int(req, "limit", 50, 1, 1000, &limit);
    req_query_int(req, "offset", 0, 0, 1000000000000LL, &offset);
    err = req_check_valid(req);
    if (!err)
        err = org_scope(req, &o);
    if (err)
        return err;
    n = billing_transactions(&req->arena, o.id, limit, offset, &rows, &total);
    if (n < 0)
        return n;
    arr = json_array();
    for (int i = 0; i < n; i++) {
        const struct ledger_row *r = &rows[i];
        char amount[32], after[32];

        micro_format(r->amount, amount, sizeof(amount));
        micro_format(r->balance_after, after, sizeof(after));
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:s,s:s?,s:s?,s:o,s:s}", "id", (json_int_t)r->id, "type",
                           r->kind, "amount", amount, "description", r->description, "reference",
                           r->ref, "created_at", json_time(r->created_at), "balance_after", after));
    }
    return req_reply(req, json_pack("{s:s,s:o,s:I,s:I,s:I}", "org_id", o.id, "transactions", arr,
                                    "total", (json_int_t)total, "limit", (json_int_t)limit,
                                    "offset", (json_int_t)offset));
}

/* ---- invites sent by the org ------------------------------------------------------------ */

static int api_orgs_invite_create(struct req *req)
{
    const char *email = body_str(req, "email"), *role = body_str(req, "role");
    const char *why = NULL;
    struct invite_row inv = {0};
    struct org_invite out;
    struct org_row o;
    json_t *obj;
    int err;

    if (!role)
        role = "member";
    if (!accounts_email_ok(email))
        req_invalid(req, "body", "email",
                    "value is not a valid email address: An email address must have an @-sign "
                    "and a domain",
                    "value_error");
    if (!org_role_ok(role))
        bad_role(req, "role");
    err = req_check_valid(req);
    if (!err)
        err = org_scope(req, &o);
    if (!err)
        err = need_role(req, &o, ROLE_ADMIN);
    if (err)
        return err;
    err = org_invite_create(&req->arena, o.id, req->caller->user_id, email, role, &out, &why);
    if (err)
        return fail_why(req, err, why);
    memcpy(inv.id, out.id, sizeof(out.id));
    memcpy(inv.org_id, o.id, sizeof(inv.org_id));
    inv.org_slug = o.slug;
    inv.org_name = o.name;
    inv.email = email;
    inv.role = role;
    inv.status = "pending";
    inv.invited_by = req->caller->user_id;
    inv.invited_by_email = req->caller->email;
    inv.created_at = out.created_at;
    inv.expires_at = out.expires_at;
    obj = api_invite_obj(&inv);
    json_object_set_new(obj, "token", json_string(out.token));
    return req_reply(req, obj);
}

static int api_orgs_invite_list(struct req *req)
{
    struct invite_row *rows;
    struct org_row o;
    json_t *arr;
    int err, n;

    err = org_scope(req, &o);
    if (!err)
        err = need_role(req, &o, ROLE_ADMIN);
    if (err)
        return err;
    n = org_invites(&req->arena, o.id, &rows);
    if (n < 0)
        return n;
    arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, api_invite_obj(&rows[i]));
    return req_reply(
        req, json_pack("{s:o,s:I}", "invites", arr, "total", (json_int_t)json_array_size(arr)));
}

static int api_orgs_invite_revoke(struct req *req)
{
    const char *id = req_param(req, "invite_id");
    char *status = NULL;
    struct org_row o;
    int err;

    err = org_scope(req, &o);
    if (!err)
        err = need_role(req, &o, ROLE_ADMIN);
    if (err)
        return err;
    err = org_invite_revoke(&req->arena, o.id, id, &status);
    if (err == LY_ENOTFOUND)
        return req_fail(req, err, "Invite not found");
    if (err == LY_EGONE)
        return req_fail(req, LY_ECONFLICT, "This invite was already %s", status);
    if (err)
        return err;
    return req_reply(req, json_pack("{s:s,s:s,s:s}", "message", "Invite revoked", "id", id,
                                    "status", "revoked"));
}

/* ---- the route table -------------------------------------------------------------------- */

static const struct field org_create_body[] = {
    {"slug", FT_STRING, FF_REQUIRED, 1, 64, "^[a-z0-9][a-z0-9-]*$, unique platform-wide"},
    {"name", FT_STRING, FF_REQUIRED, 1, 100, NULL},
    {"billing_email", FT_STRING, FF_NULLABLE, 3, 320, NULL},
    {"billing_details", FT_OBJECT, FF_NULLABLE, 0, 0,
     "company details for invoices (free-form object, at most 4096 bytes of JSON)"},
    {0},
};
static const struct field org_update_body[] = {
    {"slug", FT_STRING, FF_NULLABLE, 1, 64, "rename the slug (owner only)"},
    {"name", FT_STRING, FF_NULLABLE, 1, 100, NULL},
    {"billing_email", FT_STRING, FF_NULLABLE, 3, 320, NULL},
    {"billing_details", FT_OBJECT, FF_NULLABLE, 0, 0, "replaces the whole object"},
    {0},
};
static const struct field org_resp[] = {
    {"id", FT_STRING, 0, 0, 0, NULL},
    {"slug", FT_STRING, 0, 0, 0, NULL},
    {"name", FT_STRING, 0, 0, 0, NULL},
    {"billing_email", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"billing_details", FT_OBJECT, FF_NULLABLE, 0, 0, NULL},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"role", FT_STRING, 0, 0, 0, "your role: owner, admin or member"},
    {"is_default", FT_BOOLEAN, 0, 0, 0, "whether this is your default org"},
    {"member_count", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field org_list_resp[] = {
    {"organizations", FT_ARRAY, 0, 0, 0, "org objects (as GET /orgs/{slug}), default org first"},
    {"total", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field org_deleted_resp[] = {
    {"message", FT_STRING, 0, 0, 0, NULL},
    {"id", FT_STRING, 0, 0, 0, NULL},
    {"slug", FT_STRING, 0, 0, 0, "the slug it had (now free)"},
    {0},
};
static const struct field member_list_resp[] = {
    {"members", FT_ARRAY, 0, 0, 0,
     "member objects {user_id, email, full_name, role, joined_at}, oldest first"},
    {"total", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field member_body[] = {
    {"role", FT_STRING, FF_REQUIRED, 1, 16, "owner, admin or member"},
    {0},
};
static const struct field member_resp[] = {
    {"user_id", FT_STRING, 0, 0, 0, NULL},
    {"email", FT_STRING, 0, 0, 0, NULL},
    {"full_name", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"role", FT_STRING, 0, 0, 0, NULL},
    {"joined_at", FT_DATETIME, 0, 0, 0, NULL},
    {0},
};
static const struct field member_removed_resp[] = {
    {"message", FT_STRING, 0, 0, 0, NULL},
    {"org_id", FT_STRING, 0, 0, 0, NULL},
    {"user_id", FT_STRING, 0, 0, 0, NULL},
    {0},
};
static const struct field key_body[] = {
    {"name", FT_STRING, FF_REQUIRED, 1, 255, NULL},
    {"expires_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {0},
};
static const struct field key_created_resp[] = {
    {"id", FT_STRING, 0, 0, 0, NULL},
    {"org_id", FT_STRING, 0, 0, 0, NULL},
    {"name", FT_STRING, 0, 0, 0, NULL},
    {"prefix", FT_STRING, 0, 0, 0, "first 8 characters"},
    {"plaintext_key", FT_STRING, 0, 0, 0, "the full key, shown only here"},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"expires_at", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {"is_active", FT_BOOLEAN, 0, 0, 0, NULL},
    {0},
};
static const struct field key_list_resp[] = {
    {"api_keys", FT_ARRAY, 0, 0, 0,
     "{id, org_id, name, prefix, is_active, created_at, expires_at, last_used_at, created_by}"},
    {"total", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field message_resp[] = {
    {"message", FT_STRING, 0, 0, 0, NULL},
    {"id", FT_STRING, 0, 0, 0, NULL},
    {0},
};
static const struct field balance_resp[] = {
    {"org_id", FT_STRING, 0, 0, 0, NULL},
    {"balance", FT_STRING, 0, 0, 0, "credits as an exact decimal string"},
    {"account_suspended", FT_BOOLEAN, 0, 0, 0, NULL},
    {0},
};
static const struct field transactions_resp[] = {
    {"org_id", FT_STRING, 0, 0, 0, NULL},
    {"transactions", FT_ARRAY, 0, 0, 0,
     "newest first: {id, type, amount (decimal string), description, reference, created_at, "
     "balance_after (decimal string)}"},
    {"total", FT_INTEGER, 0, 0, 0, "number of entries"},
    {"limit", FT_INTEGER, 0, 0, 0, "query limit, 1 to 1000 (default 50)"},
    {"offset", FT_INTEGER, 0, 0, 0, "query offset (default 0)"},
    {0},
};
static const struct field invite_body[] = {
    {"email", FT_STRING, FF_REQUIRED, 3, 320, NULL},
    {"role", FT_STRING, FF_NULLABLE, 1, 16, "member (default), admin, or owner (owners only)"},
    {0},
};
static const struct field invite_resp[] = {
    {"id", FT_STRING, 0, 0, 0, NULL},
    {"org_id", FT_STRING, 0, 0, 0, NULL},
    {"org_slug", FT_STRING, 0, 0, 0, NULL},
    {"org_name", FT_STRING, 0, 0, 0, NULL},
    {"email", FT_STRING, 0, 0, 0, NULL},
    {"role", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, "pending"},
    {"token", FT_STRING, 0, 0, 0,
     "for /invites/{token}, shown only here; a new invite to the same email replaces a pending "
     "one"},
    {"expires_at", FT_DATETIME, 0, 0, 0, "7 days after creation"},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"invited_by", FT_STRING, FF_NULLABLE, 0, 0, "user id"},
    {"invited_by_email", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {0},
};
static const struct field invite_list_resp[] = {
    {"invites", FT_ARRAY, 0, 0, 0,
     "pending, unexpired invites, newest first: invite objects without token"},
    {"total", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field invite_revoked_resp[] = {
    {"message", FT_STRING, 0, 0, 0, NULL},
    {"id", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, "revoked"},
    {0},
};

const struct route api_orgs_routes[] = {
    {"POST", "/orgs", api_orgs_create, 0, "Create an organization (you become its owner)",
     org_create_body, org_resp},
    {"GET", "/orgs", api_orgs_list, 0, "The organizations you belong to, with your role", NULL,
     org_list_resp},
    {"GET", "/orgs/{slug}", api_orgs_get, 0, "An organization you belong to", NULL, org_resp},
    {"PATCH", "/orgs/{slug}", api_orgs_update, 0, "Rename, re-slug or set billing (owner)",
     org_update_body, org_resp},
    {"DELETE", "/orgs/{slug}", api_orgs_delete, 0,
     "Delete an organization (owner; not a default org): keys and invites are revoked, the "
     "ledger is kept",
     NULL, org_deleted_resp},
    {"GET", "/orgs/{slug}/members", api_orgs_members, 0, "List members and their roles", NULL,
     member_list_resp},
    {"PATCH", "/orgs/{slug}/members/{user_id}", api_orgs_member_update, 0,
     "Change a member's role (admins: members only; owners: anyone; the last owner stays)",
     member_body, member_resp},
    {"DELETE", "/orgs/{slug}/members/{user_id}", api_orgs_member_remove, 0,
     "Remove a member, or leave (your own user_id)", NULL, member_removed_resp},
    {"POST", "/orgs/{slug}/api-keys", api_orgs_key_create, 0,
     "Create an org API key (admin); it acts as you, in this org", key_body, key_created_resp},
    {"GET", "/orgs/{slug}/api-keys", api_orgs_key_list, 0, "List the org's API keys (admin)", NULL,
     key_list_resp},
    {"DELETE", "/orgs/{slug}/api-keys/{key_id}", api_orgs_key_delete, 0,
     "Revoke an org API key (admin)", NULL, message_resp},
    {"GET", "/orgs/{slug}/balance", api_orgs_balance, 0, "The org's credit balance", NULL,
     balance_resp},
    {"GET", "/orgs/{slug}/transactions", api_orgs_transactions, 0,
     "The org's ledger entries, newest first (?limit=&offset=)", NULL, transactions_resp},
    {"POST", "/orgs/{slug}/invites", api_orgs_invite_create, 0,
     "Invite someone by email (admin; owner to invite an owner)", invite_body, invite_resp},
    {"GET", "/orgs/{slug}/invites", api_orgs_invite_list, 0, "Pending invites (admin)", NULL,
     invite_list_resp},
    {"DELETE", "/orgs/{slug}/invites/{invite_id}", api_orgs_invite_revoke, 0,
     "Revoke a pending invite (admin)", NULL, invite_revoked_resp},
    {0},
};
