/* See apikeys.h. Only the SHA-256 of a key is stored, so a key is looked up by its hash. */
#include "auth/apikeys.h"
#include "core/util.h"
#include "store/keys.h"

#include <string.h>

int apikeys_list_user(const char *user_id, json_t *out)
{
    return keys_list_user(user_id, out);
}

int apikeys_revoke_user(const char *user_id, const char *key_id)
{
    return keys_revoke_user(user_id, key_id);
}

int apikeys_toggle_user(const char *user_id, const char *key_id, json_t **out)
{
    return keys_toggle_user(user_id, key_id, out);
}

int apikeys_validate(const char *user_id, const char *key, json_t **out)
{
    char hash[65];

    sha256_hex(key, strlen(key), hash);
    return keys_validate(user_id, hash, out);
}

int apikeys_list_org(const char *org_id, json_t *out)
{
    return keys_list_org(org_id, out);
}

int apikeys_revoke_org(const char *org_id, const char *key_id)
{
    return keys_revoke_org(org_id, key_id);
}
