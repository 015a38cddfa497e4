/*
 * See admin.h. These are the CLI's writes: the server may run beside the CLI on the same
 * database (WAL, the generation file tells its caches), so each use case that writes more
 * than once holds one write transaction.
 */
#include "admin/admin.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "store/billing.h"
#include "store/db.h"
#include "store/ledger.h"
#include "store/orgs.h"
#include "store/runs.h"
#include "store/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* The id of the user email, into id. */
static int user_id_by_email(const char *email, char id[40])
{
    struct user_row u;
    struct arena a;
    int err;

    arena_init(&a);
    err = users_get_by_email(&a, email, &u);
    if (!err)
        snprintf(id, 40, "%s", u.id);
    arena_release(&a);
    return err;
}

int admin_key_add(const char *email, const char *name, struct new_key *out)
{
    char user_id[40];
    int err = user_id_by_email(email, user_id);

    if (!err)
        err = accounts_key_create(user_id, NULL, name, 0, out);
    return err;
}

int admin_voucher_add(const char *code, int64_t credits, int64_t expires_at, const char *note)
{
    return voucher_add(code, credits, expires_at, note);
}

int admin_quota_set(const char *email, json_t *profiles, json_t *now)
{
    char user_id[40], **allowed;
    size_t n = json_array_size(profiles);
    const char **names = xcalloc(n + 1, sizeof(*names));
    struct arena a;
    int err = user_id_by_email(email, user_id), k;

    for (size_t i = 0; i < n; i++)
        names[i] = json_string_value(json_array_get(profiles, i));
    if (!err)
        err = db_quota_set(user_id, names, n);
    free(names);
    if (err)
        return err;
    arena_init(&a);
    k = db_quota_list(&a, user_id, &allowed);
    for (int i = 0; i < k; i++)
        json_array_append_new(now, json_string(allowed[i]));
    arena_release(&a);
    return k < 0 ? k : 0;
}

int admin_credits_grant(const char *org_slug, int64_t amount, const char *note, int64_t *balance)
{
    char org_id[40];
    int err = orgs_id_by_slug(org_slug, org_id);

    if (err)
        return err;
    err = store_begin();
    if (err)
        return err;
    err = ledger_append(org_id, "grant", amount, note ? note : "Operator grant", NULL, "operator");
    if (!err)
        err = ledger_balance(org_id, balance);
    return store_end(err);
}

void admin_demo_account(const char *data_dir, const char *listen)
{
    char path[1100], password[21], line[512];
    struct new_account acct;
    struct new_key k;
    struct arena a;
    const char *why = NULL;
    FILE *f;

    snprintf(path, sizeof(path), "%s/demo.txt", data_dir);
    f = fopen(path, "r");
    if (!f) {
        arena_init(&a);
        random_base62(password, 20);
        if (accounts_create(&a, ADMIN_DEMO_EMAIL, password, "Demo User", 0, 100 * MICRO, 0, &acct,
                            &why) ||
            accounts_key_create(acct.user_id, NULL, "demo", 0, &k)) {
            log_error("cannot create the demo account: %s (delete %s to start afresh)",
                      why ? why : "database error", data_dir);
            arena_release(&a);
            return;
        }
        umask(077);
        f = fopen(path, "w");
        if (f) {
            fprintf(f,
                    "Demo account (100 credits):\n"
                    "  email:    %s\n"
                    "  password: %s\n"
                    "  API key:  %s\n"
                    "Try it:\n"
                    "  curl -s -H 'Authorization: Bearer %s' "
                    "http://%s/api/v2/external/user/status\n",
                    ADMIN_DEMO_EMAIL, password, k.key, k.key, listen);
            fclose(f);
        }
        arena_release(&a);
        f = fopen(path, "r");
    }
    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        fputs(line, stdout);
    fclose(f);
    fflush(stdout);
}
