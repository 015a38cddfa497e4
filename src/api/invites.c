/*
 * /invites: the invitee's side of an invite (API.md section 3, 16.2): preview it by its token
 * without logging in, accept or decline it, and list the invites addressed to you. The org's
 * side (create, list, revoke) is in orgs.c; the rules are in src/orgs/.
 *
 * The token is a secret in the path, so these routes carry R_SECRET_PATH and the access log
 * shows only the pattern. Accept and decline take credentials when present (R_AUTH_OPTIONAL):
 * a logged-in addressee joins with their account, and someone without an account creates one
 * with a password in the same transaction as the membership. {token} may also be an invite's
 * id when the caller is its addressee, so the answers of GET /invites/mine can be accepted.
 */
#include "api/api.h"
#include "api/orgs_int.h"
#include "auth/identity.h"
#include "core/err.h"
#include "orgs/orgs.h"

#include <string.h>

/* The caller's user id, or NULL for an anonymous request. Org keys act in their org only, so
 * they cannot answer invites for their user. */
static int invitee(struct req *req, const char **user_id)
{
    *user_id = req->caller->user_id[0] ? req->caller->user_id : NULL;
    if (req->caller->via == VIA_ORG_KEY)
        return req_fail(req, LY_EFORBIDDEN, "An organization API key cannot answer invites");
    return 0;
}

static int api_invites_mine(struct req *req)
{
    struct invite_row *rows;
    json_t *arr;
    int n;

    if (req->caller->via == VIA_ORG_KEY)
        return req_fail(req, LY_EFORBIDDEN, "An organization API key has no invites");
    n = org_invites_to(&req->arena, req->caller->email, &rows);
    if (n < 0)
        return n;
    arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, api_invite_obj(&rows[i]));
    return req_reply(
        req, json_pack("{s:o,s:I}", "invites", arr, "total", (json_int_t)json_array_size(arr)));
}

static int api_invites_preview(struct req *req)
{
    const char *why = NULL;
    struct invite_row inv;
    int err;

    err = org_invite_find(&req->arena, req_param(req, "token"), NULL, &inv, &why);
    if (!err)
        err = org_invite_usable(&req->arena, &inv, &why);
    if (err)
        return why ? req_fail(req, err, "%s", why) : err;
    return req_reply(req, json_pack("{s:s,s:s,s:s,s:s,s:s?,s:o,s:s}", "org_name", inv.org_name,
                                    "org_slug", inv.org_slug, "role", inv.role, "email", inv.email,
                                    "invited_by_email", inv.invited_by_email, "expires_at",
                                    json_time(inv.expires_at), "status", inv.status));
}

static int api_invites_accept(struct req *req)
{
    const char *user_id, *why = NULL;
    struct org_accepted acc;
    json_t *out, *tokens = NULL;
    int err;

    err = invitee(req, &user_id);
    if (err)
        return err;
    err = org_invite_accept(&req->arena, req_param(req, "token"), user_id, req->caller->email,
                            body_str(req, "password"), body_str(req, "full_name"), &acc, &why);
    if (err == LY_EINVAL) {
        /* The only input the domain checks itself is the new account's password. */
        if (!why)
            why = "Field required";
        req_invalid(req, "body", "password", why,
                    strcmp(why, "Field required") == 0 ? "missing" : "value_error");
        return err;
    }
    if (err)
        return why ? req_fail(req, err, "%s", why) : err;
    if (acc.new_account) {
        err = identity_issue(acc.user_id, &tokens);
        if (err)
            return err;
    }
    out =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "message", "Invite accepted", "org_id",
                  acc.inv.org_id, "org_slug", acc.inv.org_slug, "org_name", acc.inv.org_name,
                  "role", acc.inv.role, "user_id", acc.user_id, "account_created", acc.new_account);
    if (tokens) {
        json_object_update(out, tokens);
        json_decref(tokens);
    }
    return req_reply(req, out);
}

static int api_invites_decline(struct req *req)
{
    const char *user_id, *why = NULL;
    struct invite_row inv;
    int err;

    err = invitee(req, &user_id);
    if (err)
        return err;
    err = org_invite_decline(&req->arena, req_param(req, "token"), user_id, req->caller->email,
                             &inv, &why);
    if (err)
        return why ? req_fail(req, err, "%s", why) : err;
    return req_reply(req, json_pack("{s:s,s:s,s:s,s:s}", "message", "Invite declined", "id", inv.id,
                                    "org_slug", inv.org_slug, "status", "declined"));
}

static const struct field mine_resp[] = {
    {"invites", FT_ARRAY, 0, 0, 0,
     "pending, unexpired invites to your email, newest first: {id, org_id, org_slug, org_name, "
     "email, role, status, expires_at, created_at, invited_by, invited_by_email} (no token)"},
    {"total", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field preview_resp[] = {
    {"org_name", FT_STRING, 0, 0, 0, NULL},
    {"org_slug", FT_STRING, 0, 0, 0, NULL},
    {"role", FT_STRING, 0, 0, 0, NULL},
    {"email", FT_STRING, 0, 0, 0, "the addressee"},
    {"invited_by_email", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"expires_at", FT_DATETIME, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0,
     "pending (an accepted, declined, revoked or expired invite answers 410)"},
    {0},
};
static const struct field accept_body[] = {
    {"password", FT_STRING, FF_NULLABLE, 8, 1024,
     "required without credentials when no account exists for the invite's email"},
    {"full_name", FT_STRING, FF_NULLABLE, 1, 255, "for a new account"},
    {0},
};
static const struct field accept_resp[] = {
    {"message", FT_STRING, 0, 0, 0, NULL},
    {"org_id", FT_STRING, 0, 0, 0, NULL},
    {"org_slug", FT_STRING, 0, 0, 0, NULL},
    {"org_name", FT_STRING, 0, 0, 0, NULL},
    {"role", FT_STRING, 0, 0, 0, "your role in the org"},
    {"user_id", FT_STRING, 0, 0, 0, NULL},
    {"account_created", FT_BOOLEAN, 0, 0, 0, "an account was made for the invite's email"},
    {"access_token", FT_STRING, 0, 0, 0, "only with a new account (login answer)"},
    {"refresh_token", FT_STRING, 0, 0, 0, "only with a new account"},
    {"token_type", FT_STRING, 0, 0, 0, "only with a new account"},
    {"expires_in", FT_INTEGER, 0, 0, 0, "only with a new account"},
    {0},
};
static const struct field decline_resp[] = {
    {"message", FT_STRING, 0, 0, 0, NULL},
    {"id", FT_STRING, 0, 0, 0, NULL},
    {"org_slug", FT_STRING, 0, 0, 0, NULL},
    {"status", FT_STRING, 0, 0, 0, "declined"},
    {0},
};

/* /invites/mine comes before /invites/{token}: the router takes the first match. */
const struct route api_invites_routes[] = {
    {"GET", "/invites/mine", api_invites_mine, 0, "Pending invites addressed to your email", NULL,
     mine_resp},
    {"GET", "/invites/{token}", api_invites_preview, R_PUBLIC | R_SECRET_PATH,
     "Preview an invite by its token (no login needed)", NULL, preview_resp},
    {"POST", "/invites/{token}/accept", api_invites_accept, R_AUTH_OPTIONAL | R_SECRET_PATH,
     "Accept an invite: logged in as its addressee, or with a password to create the account",
     accept_body, accept_resp},
    {"POST", "/invites/{token}/decline", api_invites_decline, R_AUTH_OPTIONAL | R_SECRET_PATH,
     "Decline an invite", NULL, decline_resp},
    {0},
};
