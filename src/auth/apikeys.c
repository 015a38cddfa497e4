/* See apikeys.h. Only the SHA-256 of a key is stored, so a key is looked up by its hash. */
#include "auth/apikeys.h"
#include "core/util.h"

#include <string.h>

int apikeys_list_user(struct arena *a, const char *user_id, struct key_row **rows)
{
    return keys_list_user(a, user_id, rows);
}

int apikeys_revoke_user(const char *user_id, const char *key_id)
{
    return keys_revoke_user(user_id, key_id);
}

int apikeys_toggle_user(struct arena *a, const char *user_id, const char *key_id, struct key_row *k)
{
    return keys_toggle_user(a, user_id, key_id, k);
}

int apikeys_validate(struct arena *a, const char *user_id, const char *key, struct key_check *out)
{
    char hash[65];

    sha256_hex(key, strlen(key), hash);
    return keys_validate(a, user_id, hash, out);
}

int apikeys_list_org(struct arena *a, const char *org_id, struct key_row **rows)
{
    return keys_list_org(a, org_id, rows);
}

int apikeys_revoke_org(const char *org_id, const char *key_id)
{
    return keys_revoke_org(org_id, key_id);
}
