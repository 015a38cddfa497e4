/* Placeholder table: filled in by the mfa work. */
#include "api/api.h"

const struct route api_mfa_routes[] = {
    {0},
};
