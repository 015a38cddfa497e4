/* Placeholder table: filled in by the orgs work. */
#include "api/api.h"

const struct route api_orgs_routes[] = {
    {0},
};
