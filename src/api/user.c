/*
 * /user: the caller's account (API.md section 2). Deleting it (accounts_delete) ends everything
 * it holds in one transaction (the user, orgs it alone was in, its keys, the S3 credentials it
 * asked for, its queued runs), then its runs that are going.
 */
#include "api/api.h"
#include "auth/accounts.h"
#include "core/err.h"
#include "core/util.h"

#define DELETED_WHY "The account that started this run was deleted"

static int api_user_status(struct req *req)
{
    struct user_status u;
    int err = accounts_status(&req->arena, req->caller->user_id, req->caller->org_id, &u);

    if (err)
        return err == LY_ENOTFOUND ? req_fail(req, LY_EUNAUTH, "User not found") : err;
    return req_reply(
        req, json_pack("{s:s,s:s?,s:s,s:s?,s:o,s:b,s:I,s:o,s:s}", "user_id", u.id, "org_id",
                       req->caller->org_id[0] ? req->caller->org_id : NULL, "email", u.email,
                       "full_name", u.full_name, "created_at", json_time(u.created_at), "is_active",
                       u.is_active, "active_api_keys_count", (json_int_t)u.active_keys,
                       "credit_balance", json_money(u.balance), "status", "authenticated"));
}

static int api_user_delete(struct req *req)
{
    const char *why = NULL;
    int err;

    if (req->caller->via == VIA_ORG_KEY)
        return req_fail(req, LY_EFORBIDDEN, "An organization API key cannot delete an account");
    err = accounts_delete(&req->arena, req->caller->user_id, DELETED_WHY, &why);
    if (err)
        return why ? req_fail(req, err, "%s", why) : err;
    return req_reply(
        req, json_pack("{s:s,s:s}", "message", "Account deleted", "user_id", req->caller->user_id));
}

static const struct field status_resp[] = {
    {"user_id", FT_STRING, 0, 0, 0, NULL},
    {"org_id", FT_STRING, FF_NULLABLE, 0, 0, "the org this request acts in"},
    {"email", FT_STRING, 0, 0, 0, NULL},
    {"full_name", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"created_at", FT_DATETIME, 0, 0, 0, NULL},
    {"is_active", FT_BOOLEAN, 0, 0, 0, NULL},
    {"active_api_keys_count", FT_INTEGER, 0, 0, 0, NULL},
    {"credit_balance", FT_NUMBER, 0, 0, 0, "the org's balance in credits"},
    {"status", FT_STRING, 0, 0, 0, "\"authenticated\""},
    {0},
};
static const struct field delete_resp[] = {
    {"message", FT_STRING, 0, 0, 0, NULL},
    {"user_id", FT_STRING, 0, 0, 0, NULL},
    {0},
};

const struct route api_user_routes[] = {
    {"GET", "/user/status", api_user_status, 0, "Who you are, and your org's balance", NULL,
     status_resp},
    {"DELETE", "/user/delete", api_user_delete, 0, "Delete your account for good", NULL,
     delete_resp},
    {0},
};
