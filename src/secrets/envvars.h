/*
 * Environment variables and secrets (API.md 8): the domain side. A variable belongs to an org
 * and either to one user in it (the default) or to the whole org (user_id ""). A run gets its
 * org's variables, then its user's own, which win on equal names. Secret values are sealed
 * (secrets.h) with "env:<row id>:<name>" as AAD before they reach the store and opened only by
 * envvars_for_run(). Thread-safe.
 */
#ifndef LYCEUMD_SECRETS_ENVVARS_H
#define LYCEUMD_SECRETS_ENVVARS_H

#include "core/arena.h"
#include "store/envvars.h"

#include <jansson.h>

/* 1 when name is a valid variable name ([A-Za-z_][A-Za-z0-9_]*, at most 255 bytes). */
int envvars_name_ok(const char *name);
/* Creates or replaces a variable; its row id into id (41 bytes). 0 or LY_EDB. */
int envvars_set(const char *org_id, const char *user_id, const char *name, const char *value,
                int is_secret, char id[41]);
/* The org's variables and user_id's own, org-wide first, then by name, into *rows (from a):
 * their number, or LY_EDB. A secret's row has neither value nor sealed value. */
int envvars_list(struct arena *a, const char *org_id, const char *user_id,
                 struct envvar_row **rows);
/* Deletes variable id when it is user_id's own, or org-wide and org_wide_ok: rows deleted (0
 * when none), or LY_EDB. */
int envvars_delete(const char *org_id, const char *user_id, const char *id, int org_wide_ok);
/* Deletes user_id's own variables in the org (org-wide ones stay): rows deleted, or LY_EDB. */
int envvars_delete_all(const char *org_id, const char *user_id);
/* Adds the run's variables (decrypted) to env, an object of name -> value string. A secret
 * that does not open (another master key) is left out and logged by name. 0 or LY_EDB. */
int envvars_for_run(const char *org_id, const char *user_id, json_t *env);

#endif
