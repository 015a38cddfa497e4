/*
 * Identity: who a bearer token is, which org a request acts in, and the token flows (login,
 * refresh). No HTTP here: callers pass header values and get LY_E* codes with a reason.
 */
#ifndef LYCEUMD_AUTH_IDENTITY_H
#define LYCEUMD_AUTH_IDENTITY_H

#include "auth/caller.h"
#include "core/arena.h"

#include <jansson.h>

/* Resolves "Bearer <API key or JWT>" into c (user, key). LY_EUNAUTH with *why otherwise. */
int identity_authenticate(struct arena *a, const char *authorization, struct caller *c,
                          const char **why);
/* Resolves the org: the org key's org; else X-Org-Slug (member or 403); else the default. */
int identity_resolve_org(struct arena *a, struct caller *c, const char *org_slug, const char **why);

/*
 * Password login. On success *out is the login answer ({access_token, refresh_token,
 * token_type, expires_in}) or, for a user with MFA and no mfa_code, {mfa_required, mfa_token}.
 * LY_EUNAUTH for a wrong email or password (one message for both), LY_ETHROTTLED with
 * *retry_after set after too many failures.
 */
int identity_login(struct arena *a, const char *email, const char *password, const char *mfa_code,
                   json_t **out, int64_t *retry_after, const char **why);
/* Second step of an MFA login. */
int identity_login_mfa(struct arena *a, const char *mfa_token, const char *code, json_t **out,
                       const char **why);
/* Rotates a refresh token; reuse of a used one revokes its family. */
int identity_refresh(const char *refresh_token, json_t **out, const char **why);
/* Opens a new token family for user_id and returns the login answer. */
int identity_issue(const char *user_id, json_t **out);

#endif
