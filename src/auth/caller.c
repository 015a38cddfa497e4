/* See caller.h. */
#include "auth/caller.h"

#include <string.h>

const char *role_name(enum role r)
{
    switch (r) {
    case ROLE_OWNER:
        return "owner";
    case ROLE_ADMIN:
        return "admin";
    case ROLE_MEMBER:
        return "member";
    case ROLE_NONE:
        break;
    }
    return "none";
}

enum role role_parse(const char *s)
{
    if (!s)
        return ROLE_NONE;
    if (strcmp(s, "owner") == 0)
        return ROLE_OWNER;
    if (strcmp(s, "admin") == 0)
        return ROLE_ADMIN;
    if (strcmp(s, "member") == 0)
        return ROLE_MEMBER;
    return ROLE_NONE;
}
