/*
 * The organisation domain, with no HTTP in it: the role rules (owner > admin > member) and the
 * changes that touch several rows, each in one transaction: creating and deleting an org,
 * changing and removing members, creating, accepting and declining invites.
 *
 * Role rules. An owner may do anything. An admin manages plain members: invite (as member or
 * admin), promote a member to admin, remove a member; an admin cannot change or remove an
 * owner or another admin, nor grant the owner role. A member manages nobody. Anybody may lower
 * their own role or leave, except that an org always keeps at least one owner, and nobody
 * leaves (or is removed from) their default org.
 *
 * The actor's role is read again inside each transaction, so a concurrent demotion cannot be
 * raced. Functions return 0 or a negative LY_E* code with *why set to a sentence for the
 * client (allocated from the arena or static). Roles are the strings "owner", "admin" and
 * "member".
 */
#ifndef LYCEUMD_ORGS_ORGS_H
#define LYCEUMD_ORGS_ORGS_H

#include "core/arena.h"
#include "store/orgs.h"

#include <stdint.h>

#define INVITE_TTL_US (7 * 86400 * 1000000LL)

/* Reads, scoped by the member (user_id) or the org (org_id). Rows are store/orgs.h's, their
 * strings and arrays allocated from the arena given; lists return their number or LY_EDB. */

/* The live org with this slug as user_id, a member, sees it; LY_ENOTFOUND when it does not
 * exist, is deleted, or user_id is not a member. */
int org_get(struct arena *a, const char *user_id, const char *slug, struct org_row *o);
/* Every live org user_id belongs to (only org_id's when org_id is not NULL), default first. */
int org_list(struct arena *a, const char *user_id, const char *org_id, struct org_row **rows);
/* The org's members, oldest first. */
int org_members(struct arena *a, const char *org_id, struct member_row **rows);
/* user_id's role in org_id (into role, 8 bytes) and whether it is their default org;
 * LY_ENOTFOUND when they are not a member. */
int org_member_role(const char *org_id, const char *user_id, char role[8], int *is_default);
/* One member; LY_ENOTFOUND when user_id is not a member. */
int org_member(struct arena *a, const char *org_id, const char *user_id, struct member_row *m);
/* org_id's pending, unexpired invites, newest first. */
int org_invites(struct arena *a, const char *org_id, struct invite_row **rows);
/* The pending, unexpired invites to email in live orgs, newest first. */
int org_invites_to(struct arena *a, const char *email, struct invite_row **rows);

/* Sets the fields that are not NULL (the caller checked the owner role). LY_ECONFLICT when the
 * new slug is taken. */
int org_update(const char *org_id, const char *name, const char *slug, const char *billing_email,
               const char *billing_details);
/* Revokes one pending invite of org_id. LY_ENOTFOUND when the org has no invite with this id;
 * LY_EGONE (with *status from a) when it is no longer pending. */
int org_invite_revoke(struct arena *a, const char *org_id, const char *id, char **status);

/* Whether s is a role name. */
int org_role_ok(const char *s);
/* Whether s is a valid org slug: 1 to 64 of [a-z0-9-], not starting with '-'. */
int org_slug_ok(const char *s);

/* Creates an org with user_id as its (non-default) owner. billing_details is JSON text or
 * NULL. LY_ECONFLICT when the slug is taken. */
int org_create(struct arena *a, const char *user_id, const char *slug, const char *name,
               const char *billing_email, const char *billing_details, char id_out[40],
               const char **why);

/* Deletes org_id on behalf of actor_id, who must be an owner. An org that is any member's
 * default org cannot be deleted (LY_ECONFLICT). */
int org_delete(const char *org_id, const char *actor_id, const char **why);

/* Sets target_id's role in org_id on behalf of actor_id. LY_ENOTFOUND ("Member not found"),
 * LY_EFORBIDDEN by the role rules, LY_ECONFLICT for the last owner. */
int org_member_set_role(const char *org_id, const char *actor_id, const char *target_id,
                        const char *role, const char **why);
/* Removes target_id from org_id on behalf of actor_id (actor_id == target_id: leaving). */
int org_member_remove(const char *org_id, const char *actor_id, const char *target_id,
                      const char **why);

/* A new invite: the plaintext token is shown once, only its SHA-256 is stored. */
struct org_invite {
    char id[37];
    char token[64];
    int64_t created_at, expires_at;
};

/* Invites email to org_id with role on behalf of actor_id (admin+; owners only for "owner").
 * A pending invite of the same email to the same org is revoked and replaced. LY_ECONFLICT when
 * email already belongs to a member. */
int org_invite_create(struct arena *a, const char *org_id, const char *actor_id, const char *email,
                      const char *role, struct org_invite *out, const char **why);

/* Finds the invite a token (or, when caller_email is given, an invite id addressed to
 * caller_email) names. LY_ENOTFOUND ("Invite not found"). */
int org_invite_find(struct arena *a, const char *token, const char *caller_email,
                    struct invite_row *inv, const char **why);
/* LY_EGONE with a reason when the invite can no longer be answered (accepted, declined,
 * revoked, expired, or its org deleted); else 0. */
int org_invite_usable(struct arena *a, const struct invite_row *inv, const char **why);

struct org_accepted {
    struct invite_row inv;
    char user_id[40];
    int new_account; /* an account was created for the invite's email */
};

/*
 * Accepts the invite named by token. With a caller (caller_id not NULL), the caller's email
 * must be the invite's (LY_EFORBIDDEN) and the caller joins. Without one, an account is created
 * for the invite's email with password (LY_EINVAL with *why "Field required" when password is
 * NULL) in the same transaction as the membership, unless an account with that email exists
 * (LY_EUNAUTH: the addressee must log in). LY_EGONE when the invite is no longer usable.
 */
int org_invite_accept(struct arena *a, const char *token, const char *caller_id,
                      const char *caller_email, const char *password, const char *full_name,
                      struct org_accepted *out, const char **why);
/* Declines the invite, with the same matching as org_invite_accept (no account is made). */
int org_invite_decline(struct arena *a, const char *token, const char *caller_id,
                       const char *caller_email, struct invite_row *out, const char **why);

#endif
