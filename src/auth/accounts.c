/* See accounts.h. */
#include "auth/accounts.h"
#include "auth/password.h"
#include "auth/token.h"
#include "core/err.h"
#include "core/util.h"
#include "runs/control.h"
#include "store/db.h"
#include "store/keys.h"
#include "store/ledger.h"
#include "store/runs.h"
#include "store/storage.h"
#include "store/users.h"

#include <stdio.h>
#include <string.h>

int accounts_email_ok(const char *email)
{
    const char *at = strchr(email, '@');
    size_t n = strlen(email);

    if (!at || at == email || strchr(at + 1, '@') || !at[1] || n > 320 || !strchr(at + 1, '.'))
        return 0;
    for (const char *p = email; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

int accounts_prepare(const char *email, const char *password, char hash[PASSWORD_HASH_MAX],
                     const char **why)
{
    if (!accounts_email_ok(email)) {
        *why = "Invalid email address";
        return LY_EINVAL;
    }
    if (strlen(password) < PASSWORD_MIN_LEN || strlen(password) > PASSWORD_MAX_LEN) {
        *why = "Password must be 8 to 1024 characters long";
        return LY_EINVAL;
    }
    return password_hash(password, hash);
}

int accounts_create_hashed(struct arena *a, const char *email, const char *hash,
                           const char *full_name, int is_admin, int64_t credits, int in_tx,
                           struct new_account *out, const char **why)
{
    int err;

    if (!in_tx && (err = store_begin()))
        return err;
    err = users_create(a, email, hash, full_name, is_admin, out->user_id, out->org_id,
                       &out->org_slug);
    if (err == LY_ECONFLICT)
        *why = "A user with this email already exists";
    if (!err && credits)
        err = ledger_append(out->org_id, "grant", credits, "Opening credits", NULL, NULL);
    return in_tx ? err : store_end(err);
}

int accounts_create(struct arena *a, const char *email, const char *password, const char *full_name,
                    int is_admin, int64_t credits, int in_tx, struct new_account *out,
                    const char **why)
{
    char hash[PASSWORD_HASH_MAX];
    int err = accounts_prepare(email, password, hash, why);

    if (err)
        return err;
    return accounts_create_hashed(a, email, hash, full_name, is_admin, credits, in_tx, out, why);
}

int accounts_key_create(const char *user_id, const char *org_id, const char *name,
                        int64_t expires_at, struct new_key *k)
{
    char hash[65];

    apikey_generate(k->key);
    sha256_hex(k->key, strlen(k->key), hash);
    memcpy(k->prefix, k->key, sizeof(k->prefix) - 1);
    k->prefix[sizeof(k->prefix) - 1] = '\0';
    uuid_v4(k->id);
    k->created_at = now_us();
    return keys_insert(k->id, hash, k->prefix, name, user_id, org_id, k->created_at, expires_at);
}

int accounts_find(struct arena *a, const char *email, struct user_row *u)
{
    return users_get_by_email(a, email, u);
}

int accounts_status(struct arena *a, const char *user_id, const char *org_id, struct user_status *s)
{
    return users_status(a, user_id, org_id, s);
}

int accounts_delete(struct arena *a, const char *user_id, const char *why_runs, const char **why)
{
    struct run_id *pending = NULL;
    int npending = 0;
    int err = store_begin();

    if (err)
        return err;
    err = users_delete(a, user_id, why);
    if (!err)
        err = s3cred_delete_user(user_id);
    if (!err) {
        npending = db_runs_end_pending_of_user(a, user_id, why_runs, now_us(), &pending);
        err = npending < 0 ? npending : 0;
    }
    err = store_end(err);
    if (!err)
        runs_end_user(user_id, pending, npending, why_runs);
    return err;
}
