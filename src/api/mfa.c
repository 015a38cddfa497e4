/*
 * /mfa: TOTP enrolment, the second step of an MFA login, disabling, and backup codes
 * (API.md section 2 and 16.2). Enrolment is two steps: /mfa/enroll stores a pending secret
 * and shows it once; /mfa/verify-enrollment turns MFA on when a code from it is right.
 */
#include "api/api.h"
#include "auth/identity.h"
#include "auth/mfa.h"
#include "core/err.h"

#include <ctype.h>
#include <string.h>

/* MFA is the user's own: an org key (which acts for its creator) may not change it. */
static int load_user(struct req *req, struct user_row *u)
{
    int err;

    if (req->caller->via == VIA_ORG_KEY)
        return req_fail(req, LY_EFORBIDDEN, "An organization API key cannot manage MFA");
    err = mfa_user(&req->arena, req->caller->user_id, u);
    return err == LY_ENOTFOUND ? req_fail(req, LY_EUNAUTH, "User not found") : err;
}

static json_t *backup_set_json(const struct mfa_backup_set *b)
{
    json_t *arr = json_array();

    for (int i = 0; i < MFA_BACKUP_CODES; i++)
        json_array_append_new(arr, json_string(b->codes[i]));
    return arr;
}

static const char *url_escape(struct arena *a, const char *s)
{
    char *out = arena_alloc(a, strlen(s) * 3 + 1), *p = out;

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *p++ = (char)ch;
        } else {
            static const char hex[] = "0123456789ABCDEF";

            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = '\0';
    return out;
}

static int api_mfa_status(struct req *req)
{
    struct user_row u;
    int err = load_user(req, &u);

    if (err)
        return err;
    return req_reply(req, json_pack("{s:b,s:b,s:I}", "enabled", u.mfa_enabled, "enrollment_pending",
                                    u.mfa_secret && !u.mfa_enabled, "backup_codes_remaining",
                                    (json_int_t)(u.mfa_enabled ? mfa_backups_left(u.id) : 0)));
}

static int api_mfa_enroll(struct req *req)
{
    char secret[64];
    struct mfa_backup_set b;
    struct user_row u;
    const char *url;
    int err = load_user(req, &u);

    if (err)
        return err;
    if (u.mfa_enabled)
        return req_fail(req, LY_ECONFLICT, "MFA is already enabled; disable it first");
    err = mfa_enroll(u.id, secret, &b);
    if (err)
        return err;
    url = arena_sprintf(&req->arena,
                        "otpauth://totp/lyceumd:%s?secret=%s&issuer=lyceumd&algorithm=SHA1&"
                        "digits=6&period=30",
                        url_escape(&req->arena, u.email), secret);
    return req_reply(req,
                     json_pack("{s:s,s:s,s:s,s:o,s:s}", "secret", secret, "qr_code_url", url,
                               "otpauth_url", url, "backup_codes", backup_set_json(&b), "message",
                               "Add the secret to your authenticator app, then confirm "
                               "with POST /mfa/verify-enrollment"));
}

static int api_mfa_verify_enrollment(struct req *req)
{
    struct user_row u;
    const char *why = NULL;
    int err = load_user(req, &u);

    if (err)
        return err;
    if (u.mfa_enabled)
        return req_fail(req, LY_ECONFLICT, "MFA is already enabled");
    if (!u.mfa_secret)
        return req_fail(req, LY_EBADREQ, "No enrolment in progress: call POST /mfa/enroll first");
    err = mfa_totp_check(u.id, u.mfa_secret, body_str(req, "code"), &why);
    if (err == LY_EUNAUTH)
        return req_fail(req, LY_EBADREQ, "%s", why);
    if (err)
        return err;
    err = mfa_enable(u.id);
    if (err)
        return err;
    return req_reply(req, json_pack("{s:b,s:I}", "enabled", 1, "backup_codes_remaining",
                                    (json_int_t)mfa_backups_left(u.id)));
}

static int api_mfa_verify(struct req *req)
{
    json_t *out = NULL;
    const char *why = NULL;
    int err = identity_login_mfa(&req->arena, body_str(req, "mfa_token"), body_str(req, "code"),
                                 &out, &why);

    if (err)
        return req_fail(req, err, "%s", why ? why : err_str(err));
    return req_reply(req, out);
}

/* Checks the code of an enabled user for a change to MFA itself (400 when wrong, so a client
 * does not mistake it for an expired session). */
static int confirm_code(struct req *req, struct user_row *u)
{
    const char *why = NULL;
    int err = load_user(req, u);

    if (err)
        return err;
    if (!u->mfa_enabled)
        return req_fail(req, LY_EBADREQ, "MFA is not enabled");
    err = mfa_check_code(&req->arena, u, body_str(req, "code"), &why);
    if (err == LY_EUNAUTH)
        return req_fail(req, LY_EBADREQ, "%s", why);
    return err;
}

static int api_mfa_disable(struct req *req)
{
    struct user_row u;
    int err = confirm_code(req, &u);

    if (err)
        return err;
    err = mfa_disable(u.id);
    if (err)
        return err;
    return req_reply(req, json_pack("{s:b}", "enabled", 0));
}

static int api_mfa_regenerate(struct req *req)
{
    struct mfa_backup_set b;
    struct user_row u;
    int err = confirm_code(req, &u);

    if (err)
        return err;
    err = mfa_backups_regenerate(u.id, &b);
    if (err)
        return err;
    return req_reply(req, json_pack("{s:o}", "backup_codes", backup_set_json(&b)));
}

static const struct field code_body[] = {
    {"code", FT_STRING, FF_REQUIRED, 1, 32, "a TOTP code, or a backup code where allowed"},
    {0},
};
static const struct field verify_body[] = {
    {"mfa_token", FT_STRING, FF_REQUIRED, 1, 128, "from POST /auth/login"},
    {"code", FT_STRING, FF_REQUIRED, 1, 32, "a TOTP code or an unused backup code"},
    {0},
};
static const struct field status_resp[] = {
    {"enabled", FT_BOOLEAN, 0, 0, 0, NULL},
    {"enrollment_pending", FT_BOOLEAN, 0, 0, 0, NULL},
    {"backup_codes_remaining", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field enroll_resp[] = {
    {"secret", FT_STRING, 0, 0, 0, "base32 TOTP secret (SHA-1, 6 digits, 30 s)"},
    {"qr_code_url", FT_STRING, 0, 0, 0, "otpauth:// URL to show as a QR code"},
    {"otpauth_url", FT_STRING, 0, 0, 0, "the same URL"},
    {"backup_codes", FT_ARRAY, 0, 0, 0, "10 single-use codes, shown once"},
    {"message", FT_STRING, 0, 0, 0, NULL},
    {0},
};
static const struct field enabled_resp[] = {
    {"enabled", FT_BOOLEAN, 0, 0, 0, NULL},
    {"backup_codes_remaining", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field login_resp[] = {
    {"access_token", FT_STRING, 0, 0, 0, NULL},
    {"refresh_token", FT_STRING, 0, 0, 0, NULL},
    {"token_type", FT_STRING, 0, 0, 0, NULL},
    {"expires_in", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field codes_resp[] = {
    {"backup_codes", FT_ARRAY, 0, 0, 0, "10 new single-use codes; the old ones no longer work"},
    {0},
};

const struct route api_mfa_routes[] = {
    {"GET", "/mfa/status", api_mfa_status, 0, "Your MFA state", NULL, status_resp},
    {"POST", "/mfa/enroll", api_mfa_enroll, 0, "Start TOTP enrolment", NULL, enroll_resp},
    {"POST", "/mfa/verify-enrollment", api_mfa_verify_enrollment, 0,
     "Confirm enrolment with a code; turns MFA on", code_body, enabled_resp},
    {"POST", "/mfa/verify", api_mfa_verify, R_PUBLIC,
     "Second step of a login with MFA: mfa_token and a code give the login answer", verify_body,
     login_resp},
    {"POST", "/mfa/disable", api_mfa_disable, 0, "Turn MFA off (needs a current code)", code_body,
     enabled_resp},
    {"POST", "/mfa/regenerate-backup-codes", api_mfa_regenerate, 0,
     "Replace the backup codes (needs a current code)", code_body, codes_resp},
    {0},
};
