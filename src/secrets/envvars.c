/* See envvars.h. */
#include "secrets/envvars.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "secrets/secrets.h"
#include "store/envvars.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int envvars_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (!n || n > 255 || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    return 1;
}

static char *seal(const char *id, const char *name, const char *value)
{
    char aad[320];

    snprintf(aad, sizeof(aad), "env:%s:%s", id, name);
    return secrets_seal(aad, value, strlen(value));
}

int envvars_set(const char *org_id, const char *user_id, const char *name, const char *value,
                int is_secret, char id[41])
{
    char want[41];
    char *sealed = NULL;
    int err = envvars_store_find(org_id, user_id, name, want);

    if (err < 0)
        return err;
    if (!err)
        uuid_v4(want);
    if (is_secret)
        sealed = seal(want, name, value);
    err = envvars_store_upsert(org_id, user_id, name, want, is_secret ? NULL : value, sealed,
                               is_secret, now_us(), id);
    if (!err && is_secret && strcmp(id, want) != 0) {
        /* Another request created the row meanwhile: seal again under its id. */
        free(sealed);
        sealed = seal(id, name, value);
        err = envvars_store_reseal(id, sealed);
    }
    free(sealed);
    return err;
}

int envvars_for_run(const char *org_id, const char *user_id, json_t *env)
{
    struct envvar_row *rows;
    struct arena a;
    int n;

    arena_init(&a);
    n = envvars_store_list(&a, org_id, user_id, &rows);
    for (int i = 0; i < n; i++) {
        const struct envvar_row *r = &rows[i];
        char aad[320], *plain;

        if (!r->is_secret) {
            json_object_set_new(env, r->name, json_string(r->value ? r->value : ""));
            continue;
        }
        snprintf(aad, sizeof(aad), "env:%s:%s", r->id, r->name);
        plain = secrets_open(aad, r->sealed, NULL);
        if (!plain) {
            log_warn("secret %s of org %s does not open with this master key: left out", r->name,
                     org_id);
            continue;
        }
        json_object_set_new(env, r->name, json_string(plain));
        OPENSSL_cleanse(plain, strlen(plain));
        free(plain);
    }
    arena_release(&a);
    return n < 0 ? n : 0;
}

int envvars_list(struct arena *a, const char *org_id, const char *user_id, struct envvar_row **rows)
{
    int n = envvars_store_list(a, org_id, user_id, rows);

    for (int i = 0; i < n; i++)
        (*rows)[i].sealed = NULL; /* what a run gets, not what a list shows */
    return n;
}

int envvars_delete(const char *org_id, const char *user_id, const char *id, int org_wide_ok)
{
    return envvars_store_delete(org_id, user_id, id, org_wide_ok);
}

int envvars_delete_all(const char *org_id, const char *user_id)
{
    return envvars_store_delete_all(org_id, user_id);
}
