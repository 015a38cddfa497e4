/*
 * Organisations, memberships and invites. Every function that reads or writes an org's data
 * takes the org's id and scopes its SQL by it.
 */
#ifndef LYCEUMD_STORE_ORGS_H
#define LYCEUMD_STORE_ORGS_H

#include "core/arena.h"

#include <jansson.h>
#include <stdint.h>

/* The id of the live org with this slug; LY_ENOTFOUND when there is none. */
int orgs_id_by_slug(const char *slug, char id_out[40]);

#endif
