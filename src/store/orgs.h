/*
 * Organisations, memberships and invites. Every function that reads or writes an org's data
 * takes the org's id and scopes its SQL by it; look-ups by slug also take the caller's user id
 * and join the membership, so a non-member cannot tell a foreign org from a missing one.
 *
 * Each function runs single statements; the org domain (src/orgs/) wraps the ones that change
 * several rows in store_begin()/store_commit(). Strings in the row structs, and the arrays of
 * rows that lists return, are allocated from the given arena.
 */
#ifndef LYCEUMD_STORE_ORGS_H
#define LYCEUMD_STORE_ORGS_H

#include "core/arena.h"

#include <stdint.h>

/* The id of the live org with this slug; LY_ENOTFOUND when there is none. */
int orgs_id_by_slug(const char *slug, char id_out[40]);

/* A live org as seen by one of its members. */
struct org_row {
    char id[40];
    char *slug;
    char *name;
    char *billing_email;   /* NULL when unset */
    char *billing_details; /* JSON text of an object, NULL when unset */
    int64_t created_at;
    char *role; /* the member's role: "owner", "admin" or "member" */
    int is_default;
    int64_t member_count;
};

/* Inserts an org and its first member, user_id, as a non-default owner. Must run inside a
 * transaction. LY_ECONFLICT when the slug is taken. */
int orgs_insert(const char *id, const char *slug, const char *name, const char *billing_email,
                const char *billing_details, const char *user_id, int64_t now);

/* The live org with this slug, joined with user_id's membership in it, in one query:
 * LY_ENOTFOUND when the org does not exist, is deleted, or user_id is not a member. */
int orgs_get_member(struct arena *a, const char *user_id, const char *slug, struct org_row *o);

/* Every live org user_id belongs to (only org_id's when org_id is not NULL), default org
 * first, into *rows: their number, or LY_EDB. */
int orgs_list_member(struct arena *a, const char *user_id, const char *org_id,
                     struct org_row **rows);

/* Sets the fields that are not NULL. LY_ECONFLICT when the new slug is taken. */
int orgs_update(const char *org_id, const char *name, const char *slug, const char *billing_email,
                const char *billing_details);

/* Marks the org deleted and frees its slug, revokes its API keys and pending invites, and
 * removes its memberships; the ledger stays. Must run inside a transaction. */
int orgs_delete(const char *org_id, int64_t now);

/* Members. A role is "owner", "admin" or "member". */

/* The member's role (into role, 8 bytes) and whether the org is the member's default one;
 * LY_ENOTFOUND when user_id is not a member of org_id. */
int members_get(const char *org_id, const char *user_id, char role[8], int *is_default);
/* Whether the org has a member that has it as default org (such an org cannot be deleted). */
int members_any_default(const char *org_id, int *yes);
int members_count_owners(const char *org_id, int64_t *n);
/* A member as the org's member list shows it. */
struct member_row {
    char user_id[40];
    char *email;
    char *full_name; /* NULL when unset */
    char *role;
    int64_t joined_at;
};
/* The org's members, oldest first, into *rows: their number, or LY_EDB. */
int members_list(struct arena *a, const char *org_id, struct member_row **rows);
/* One member; LY_ENOTFOUND when user_id is not a member. */
int members_row(struct arena *a, const char *org_id, const char *user_id, struct member_row *m);
int members_insert(const char *org_id, const char *user_id, const char *role, int64_t now);
int members_set_role(const char *org_id, const char *user_id, const char *role);
/* Removes the membership and revokes the org API keys the member created (an org key acts as
 * its creator, so it could not be used any more anyway). Must run inside a transaction. */
int members_remove(const char *org_id, const char *user_id, int64_t now);
/* Whether the user with this email is a member of org_id. */
int members_has_email(const char *org_id, const char *email, int *yes);

/* Invites. Only the SHA-256 hex of an invite's token is stored. */
struct invite_row {
    char id[40];
    char org_id[40];
    const char *org_slug;
    const char *org_name;
    const char *email;
    const char *role;
    const char *status;           /* "pending", "accepted", "declined" or "revoked" */
    const char *invited_by;       /* user id, NULL once that user is deleted */
    const char *invited_by_email; /* NULL likewise */
    int64_t created_at, expires_at;
    int org_deleted;
};

int invites_insert(const char *id, const char *org_id, const char *email, const char *role,
                   const char *token_hash, const char *invited_by, int64_t created_at,
                   int64_t expires_at);
/* Revokes every pending invite of org_id to email (a new invite replaces them). */
int invites_revoke_email(const char *org_id, const char *email, int64_t now);
/* Revokes one pending invite of org_id. LY_ENOTFOUND when the org has no invite with this id;
 * LY_EGONE (with *status set from a) when it is no longer pending. */
int invites_revoke(struct arena *a, const char *org_id, const char *id, int64_t now, char **status);
/* The invite whose token hashes to token_hash, or else (when id and email are not NULL) the
 * invite with this id addressed to email. LY_ENOTFOUND when there is none. */
int invites_get(struct arena *a, const char *token_hash, const char *id, const char *email,
                struct invite_row *inv);
/* Moves a pending invite to status; LY_EGONE when it was no longer pending (a race). */
int invites_respond(const char *id, const char *status, const char *user_id, int64_t now);
/* org_id's pending, unexpired invites, newest first, into *rows: their number, or LY_EDB. */
int invites_list_org(struct arena *a, const char *org_id, struct invite_row **rows);
/* The pending, unexpired invites to email in live orgs, newest first, likewise. */
int invites_list_email(struct arena *a, const char *email, struct invite_row **rows);

#endif
