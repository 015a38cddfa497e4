/*
 * The env_vars table: environment variables of an org (user_id '') or of one user in an org.
 * Secret values arrive here sealed (secrets/secrets.h) and are stored only so; this file never
 * sees a plaintext secret. Rows are returned as struct envvar_row, their strings allocated
 * from the arena given.
 */
#ifndef LYCEUMD_STORE_ENVVARS_H
#define LYCEUMD_STORE_ENVVARS_H

#include "core/arena.h"

#include <stdint.h>

struct envvar_row {
    char *id;
    char *user_id; /* "" for an org-wide variable */
    char *name;
    char *value;  /* the plain value; NULL for a secret */
    char *sealed; /* the sealed value of a secret; NULL for a plain one */
    int is_secret;
    int64_t created_at, updated_at;
};

/* Inserts or updates (org_id, user_id, name). A new row gets new_id; *id (41 bytes) receives
 * the row's id either way. value is the plain value (NULL for a secret), sealed the sealed
 * one (NULL for a plain one). 0 or LY_EDB. */
int envvars_store_upsert(const char *org_id, const char *user_id, const char *name,
                         const char *new_id, const char *value, const char *sealed, int is_secret,
                         int64_t now, char id[41]);
/* Replaces the sealed value of row id (after the id is known: it is part of the AAD). */
int envvars_store_reseal(const char *id, const char *sealed);
/* The org's variables and user_id's own, org-wide first, then by name, into *rows: their
 * number, or LY_EDB. */
int envvars_store_list(struct arena *a, const char *org_id, const char *user_id,
                       struct envvar_row **rows);
/* Deletes row id when it is user_id's own, or org-wide and org_wide_ok. Rows deleted, or
 * LY_EDB. */
int envvars_store_delete(const char *org_id, const char *user_id, const char *id, int org_wide_ok);
/* Deletes user_id's own variables in the org (org-wide ones stay). Rows deleted, or LY_EDB. */
int envvars_store_delete_all(const char *org_id, const char *user_id);
/* The row id of (org_id, user_id, name), into id (41 bytes); 1 found, 0 not, or LY_EDB. */
int envvars_store_find(const char *org_id, const char *user_id, const char *name, char id[41]);

#endif
