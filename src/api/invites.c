/* Placeholder table: filled in by the invites work. */
#include "api/api.h"

const struct route api_invites_routes[] = {
    {0},
};
