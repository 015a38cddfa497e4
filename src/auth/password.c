/*
 * argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane). The parameters live in
 * each stored hash, so raising them later does not invalidate existing passwords.
 */
#include "auth/password.h"
#include "core/err.h"
#include "core/util.h"

#include <argon2.h>
#include <string.h>

#define T_COST      2
#define M_COST      19456
#define PARALLELISM 1

int password_hash(const char *password, char out[PASSWORD_HASH_MAX])
{
    unsigned char salt[16];

    random_bytes(salt, sizeof(salt));
    if (argon2id_hash_encoded(T_COST, M_COST, PARALLELISM, password, strlen(password), salt,
                              sizeof(salt), 32, out, PASSWORD_HASH_MAX) != ARGON2_OK)
        return LY_EINTERNAL;
    return 0;
}

int password_verify(const char *hash, const char *password)
{
    static char dummy[PASSWORD_HASH_MAX];

    if (!hash) {
        if (!dummy[0])
            password_hash("not-a-password", dummy);
        argon2id_verify(dummy, password, strlen(password));
        return 0;
    }
    return argon2id_verify(hash, password, strlen(password)) == ARGON2_OK;
}
