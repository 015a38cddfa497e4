/*
 * See admin.h. These are the CLI's writes: the server may run beside the CLI on the same
 * database (WAL, the generation file tells its caches), so each use case that writes more
 * than once holds one write transaction.
 */
#include "admin/admin.h"
#include "core/arena.h"
#include "core/err.h"
#include "store/billing.h"
#include "store/db.h"
#include "store/ledger.h"
#include "store/orgs.h"
#include "store/runs.h"
#include "store/users.h"

#include <stdio.h>

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
    char user_id[40];
    int err = user_id_by_email(email, user_id);

    if (!err)
        err = quota_set(user_id, profiles);
    if (!err)
        err = quota_list(user_id, now);
    return err;
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
