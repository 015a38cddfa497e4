/*
 * argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane). The parameters live in
 * each stored hash, so raising them later does not invalidate existing passwords.
 */
#include "auth/password.h"
#include "core/err.h"
#include "core/util.h"

#include <argon2.h>
#include <pthread.h>
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

/* The hash checked for an unknown user, made once (by whichever thread needs it first). */
static char dummy[PASSWORD_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void)
{
    password_hash("not-a-password", dummy);
}

int password_verify(const char *hash, const char *password)
{
    if (!hash) {
        pthread_once(&dummy_once, dummy_init);
        argon2id_verify(dummy, password, strlen(password));
        return 0;
    }
    return argon2id_verify(hash, password, strlen(password)) == ARGON2_OK;
}
