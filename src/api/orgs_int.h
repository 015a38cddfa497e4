/*
 * What the org routes share (api/orgs.c: an org's own routes; api/invites.c: the invitee's).
 */
#ifndef LYCEUMD_API_ORGS_INT_H
#define LYCEUMD_API_ORGS_INT_H

#include "orgs/orgs.h"

#include <jansson.h>

/* The invite object of API.md section 3, without token. */
json_t *api_invite_obj(const struct invite_row *inv);

#endif
