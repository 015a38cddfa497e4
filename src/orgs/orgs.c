/*
 * See orgs.h. Each operation opens one transaction (BEGIN IMMEDIATE, so writers queue instead
 * of failing), re-reads the roles it decides on, checks the rules, writes, and commits; any
 * error rolls the whole operation back. The rules are written once, in may_set_role() and
 * may_remove(), for both the role change and the removal of a member.
 */
#include "orgs/orgs.h"
#include "auth/accounts.h"
#include "auth/token.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"
#include "store/users.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { R_NONE = 0, R_MEMBER, R_ADMIN, R_OWNER };

static int rank(const char *role)
{
    if (!role)
        return R_NONE;
    if (strcmp(role, "owner") == 0)
        return R_OWNER;
    if (strcmp(role, "admin") == 0)
        return R_ADMIN;
    if (strcmp(role, "member") == 0)
        return R_MEMBER;
    return R_NONE;
}

int org_role_ok(const char *s)
{
    return rank(s) != R_NONE;
}

int org_slug_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 64 || s[0] == '-')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return 0;
    return 1;
}

/* The actor's rank in org_id, inside the caller's transaction. An actor who is no longer a
 * member sees the org as missing, like any non-member. */
static int actor_rank(const char *org_id, const char *actor_id, int *r, int *is_default,
                      const char **why)
{
    char role[8];
    int def = 0, err = members_get(org_id, actor_id, role, &def);

    if (err == LY_ENOTFOUND)
        *why = "Organization not found";
    if (err)
        return err;
    *r = rank(role);
    if (is_default)
        *is_default = def;
    return 0;
}

static int may_set_role(int actor, int self, int target, int wanted, const char **why)
{
    if (self && wanted <= target)
        return 0;
    if (actor < R_ADMIN) {
        *why = "Only an owner or admin can change member roles";
        return LY_EFORBIDDEN;
    }
    if (actor == R_OWNER)
        return 0;
    if (target != R_MEMBER) {
        *why = "Only an owner can change the role of an owner or admin";
        return LY_EFORBIDDEN;
    }
    if (wanted == R_OWNER) {
        *why = "Only an owner can grant the owner role";
        return LY_EFORBIDDEN;
    }
    return 0;
}

static int may_remove(int actor, int self, int target, const char **why)
{
    if (self || actor == R_OWNER)
        return 0;
    if (actor < R_ADMIN) {
        *why = "Only an owner or admin can remove members";
        return LY_EFORBIDDEN;
    }
    if (target != R_MEMBER) {
        *why = "Only an owner can remove an owner or admin";
        return LY_EFORBIDDEN;
    }
    return 0;
}

/* LY_ECONFLICT when taking the owner role from target would leave the org without one. */
static int keeps_an_owner(const char *org_id, int target, const char **why)
{
    int64_t owners;
    int err;

    if (target != R_OWNER)
        return 0;
    err = members_count_owners(org_id, &owners);
    if (err)
        return err;
    if (owners > 1)
        return 0;
    *why = "An organization must keep at least one owner: make another member owner first";
    return LY_ECONFLICT;
}

int org_create(struct arena *a, const char *user_id, const char *slug, const char *name,
               const char *billing_email, const char *billing_details, char id_out[40],
               const char **why)
{
    char id[37];
    int err;

    uuid_v4(id);
    err = store_begin();
    if (err)
        return err;
    err = store_end(orgs_insert(id, slug, name, billing_email, billing_details, user_id, now_us()));
    if (err == LY_ECONFLICT)
        *why = arena_sprintf(a, "Organization slug '%s' is already taken", slug);
    if (!err)
        snprintf(id_out, 40, "%s", id);
    return err;
}

int org_delete(const char *org_id, const char *actor_id, const char **why)
{
    int actor, is_default, any_default, err;

    err = store_begin();
    if (err)
        return err;
    err = actor_rank(org_id, actor_id, &actor, &is_default, why);
    if (err)
        goto out;
    if (actor != R_OWNER) {
        *why = "Only an owner can delete an organization";
        err = LY_EFORBIDDEN;
        goto out;
    }
    if (is_default) {
        *why = "Your default organization cannot be deleted";
        err = LY_ECONFLICT;
        goto out;
    }
    err = members_any_default(org_id, &any_default);
    if (!err && any_default) {
        *why = "This organization is another member's default organization and cannot be deleted";
        err = LY_ECONFLICT;
    }
    if (!err)
        err = orgs_delete(org_id, now_us());
out:
    return store_end(err);
}

int org_member_set_role(const char *org_id, const char *actor_id, const char *target_id,
                        const char *role, const char **why)
{
    char cur[8];
    int actor, target, is_default, err;

    err = store_begin();
    if (err)
        return err;
    err = actor_rank(org_id, actor_id, &actor, NULL, why);
    if (err)
        goto out;
    err = members_get(org_id, target_id, cur, &is_default);
    if (err == LY_ENOTFOUND)
        *why = "Member not found";
    if (err)
        goto out;
    target = rank(cur);
    err = may_set_role(actor, strcmp(actor_id, target_id) == 0, target, rank(role), why);
    if (!err && rank(role) != R_OWNER)
        err = keeps_an_owner(org_id, target, why);
    if (!err && strcmp(cur, role) != 0)
        err = members_set_role(org_id, target_id, role);
out:
    return store_end(err);
}

int org_member_remove(const char *org_id, const char *actor_id, const char *target_id,
                      const char **why)
{
    char cur[8];
    int actor, is_default, self = strcmp(actor_id, target_id) == 0, err;

    err = store_begin();
    if (err)
        return err;
    err = actor_rank(org_id, actor_id, &actor, NULL, why);
    if (err)
        goto out;
    err = members_get(org_id, target_id, cur, &is_default);
    if (err == LY_ENOTFOUND)
        *why = "Member not found";
    if (err)
        goto out;
    err = may_remove(actor, self, rank(cur), why);
    if (!err)
        err = keeps_an_owner(org_id, rank(cur), why);
    if (!err && is_default) {
        *why = self ? "You cannot leave your default organization"
                    : "This is the member's default organization: they cannot be removed from it";
        err = LY_ECONFLICT;
    }
    if (!err)
        err = members_remove(org_id, target_id, now_us());
out:
    return store_end(err);
}

int org_invite_create(struct arena *a, const char *org_id, const char *actor_id, const char *email,
                      const char *role, struct org_invite *out, const char **why)
{
    char hash[65];
    int actor, member, err;

    err = store_begin();
    if (err)
        return err;
    err = actor_rank(org_id, actor_id, &actor, NULL, why);
    if (err)
        goto out;
    if (actor < R_ADMIN) {
        *why = "Only an owner or admin can invite members";
        err = LY_EFORBIDDEN;
        goto out;
    }
    if (rank(role) == R_OWNER && actor != R_OWNER) {
        *why = "Only an owner can invite an owner";
        err = LY_EFORBIDDEN;
        goto out;
    }
    err = members_has_email(org_id, email, &member);
    if (!err && member) {
        *why = arena_sprintf(a, "%s is already a member of this organization", email);
        err = LY_ECONFLICT;
    }
    if (err)
        goto out;
    uuid_v4(out->id);
    token_random("inv_", 40, out->token, sizeof(out->token));
    sha256_hex(out->token, strlen(out->token), hash);
    out->created_at = now_us();
    out->expires_at = out->created_at + INVITE_TTL_US;
    err = invites_revoke_email(org_id, email, out->created_at);
    if (!err)
        err = invites_insert(out->id, org_id, email, role, hash, actor_id, out->created_at,
                             out->expires_at);
out:
    return store_end(err);
}

int org_invite_find(struct arena *a, const char *token, const char *caller_email,
                    struct invite_row *inv, const char **why)
{
    char hash[65];
    int err;

    sha256_hex(token, strlen(token), hash);
    err = invites_get(a, hash, caller_email ? token : NULL, caller_email, inv);
    if (err == LY_ENOTFOUND)
        *why = "Invite not found";
    return err;
}

int org_invite_usable(struct arena *a, const struct invite_row *inv, const char **why)
{
    if (strcmp(inv->status, "pending") != 0) {
        *why = arena_sprintf(a, "This invite was already %s", inv->status);
        return LY_EGONE;
    }
    if (inv->org_deleted) {
        *why = "The organization of this invite no longer exists";
        return LY_EGONE;
    }
    if (inv->expires_at <= now_us()) {
        *why = "This invite has expired";
        return LY_EGONE;
    }
    return 0;
}

/* Finds a usable invite and checks who answers it: the caller must be its addressee; without a
 * caller, the addressee must not have an account (else they must log in to answer). */
static int invite_for(struct arena *a, const char *verb, const char *token, const char *caller_id,
                      const char *caller_email, struct invite_row *inv, const char **why)
{
    struct user_row u;
    int err;

    err = org_invite_find(a, token, caller_id ? caller_email : NULL, inv, why);
    if (!err)
        err = org_invite_usable(a, inv, why);
    if (err)
        return err;
    if (caller_id) {
        if (strcasecmp(inv->email, caller_email) != 0) {
            *why = "This invite was sent to another email address";
            return LY_EFORBIDDEN;
        }
        return 0;
    }
    err = users_get_by_email(a, inv->email, &u);
    if (err && err != LY_ENOTFOUND)
        return err;
    if (!err) {
        *why = arena_sprintf(a, "Log in as %s to %s this invite", inv->email, verb);
        return LY_EUNAUTH;
    }
    return 0;
}

int org_invite_accept(struct arena *a, const char *token, const char *caller_id,
                      const char *caller_email, const char *password, const char *full_name,
                      struct org_accepted *out, const char **why)
{
    struct new_account acct;
    char role[8], hash[PASSWORD_HASH_MAX];
    int is_default, err;
    int64_t now = now_us();

    memset(out, 0, sizeof(*out));
    err = invite_for(a, "accept", token, caller_id, caller_email, &out->inv, why);
    if (err)
        return err;
    if (!caller_id && !password) {
        *why = "Field required";
        return LY_EINVAL;
    }
    /* Argon2 takes tens of milliseconds: it runs before the write lock is taken. */
    if (!caller_id) {
        err = accounts_prepare(out->inv.email, password, hash, why);
        if (err)
            return err;
    }
    err = store_begin();
    if (err)
        return err;
    if (caller_id) {
        snprintf(out->user_id, sizeof(out->user_id), "%s", caller_id);
        err = members_get(out->inv.org_id, caller_id, role, &is_default);
        if (!err) {
            *why = arena_sprintf(a, "You are already a member of organization '%s'",
                                 out->inv.org_slug);
            err = LY_ECONFLICT;
        } else if (err == LY_ENOTFOUND) {
            err = 0;
        }
    } else {
        /* The account and its membership appear together or not at all. */
        err = accounts_create_hashed(a, out->inv.email, hash, full_name, 0, 0, 1, &acct, why);
        if (!err) {
            snprintf(out->user_id, sizeof(out->user_id), "%s", acct.user_id);
            out->new_account = 1;
        }
    }
    if (!err)
        err = members_insert(out->inv.org_id, out->user_id, out->inv.role, now);
    if (!err) {
        err = invites_respond(out->inv.id, "accepted", out->user_id, now);
        if (err == LY_EGONE)
            *why = "This invite was already answered";
    }
    return store_end(err);
}

int org_invite_decline(struct arena *a, const char *token, const char *caller_id,
                       const char *caller_email, struct invite_row *out, const char **why)
{
    int err;

    err = invite_for(a, "decline", token, caller_id, caller_email, out, why);
    if (err)
        return err;
    err = invites_respond(out->id, "declined", caller_id, now_us());
    if (err == LY_EGONE)
        *why = "This invite was already answered";
    return err;
}

int org_get(struct arena *a, const char *user_id, const char *slug, struct org_row *o)
{
    return orgs_get_member(a, user_id, slug, o);
}

int org_list(struct arena *a, const char *user_id, const char *org_id, struct org_row **rows)
{
    return orgs_list_member(a, user_id, org_id, rows);
}

int org_members(struct arena *a, const char *org_id, struct member_row **rows)
{
    return members_list(a, org_id, rows);
}

int org_member_role(const char *org_id, const char *user_id, char role[8], int *is_default)
{
    return members_get(org_id, user_id, role, is_default);
}

int org_member(struct arena *a, const char *org_id, const char *user_id, struct member_row *m)
{
    return members_row(a, org_id, user_id, m);
}

int org_invites(struct arena *a, const char *org_id, struct invite_row **rows)
{
    return invites_list_org(a, org_id, rows);
}

int org_invites_to(struct arena *a, const char *email, struct invite_row **rows)
{
    return invites_list_email(a, email, rows);
}

int org_update(const char *org_id, const char *name, const char *slug, const char *billing_email,
               const char *billing_details)
{
    return orgs_update(org_id, name, slug, billing_email, billing_details);
}

int org_invite_revoke(struct arena *a, const char *org_id, const char *id, char **status)
{
    return invites_revoke(a, org_id, id, now_us(), status);
}
