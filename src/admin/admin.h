/*
 * The operator's use cases: what the lyceumd CLI's commands do to the data directory
 * (`user add` is auth/accounts.h's accounts_create(), `model add` inference's), and the demo
 * account of `serve --demo`. Each is one function that owns its transaction, so main.c only
 * parses arguments and prints answers.
 *
 * A user is named by email, an org by slug; LY_ENOTFOUND when there is none. Called from the
 * CLI's one thread, after store_open().
 */
#ifndef LYCEUMD_ADMIN_ADMIN_H
#define LYCEUMD_ADMIN_ADMIN_H

#include "auth/accounts.h"

#include <jansson.h>
#include <stdint.h>

/* A user API key called name for the user email (shown once, in out->key). */
int admin_key_add(const char *email, const char *name, struct new_key *out);

/* A voucher worth credits (micro-credits), expiring at expires_at (µs; 0: never), with an
 * optional note. LY_ECONFLICT when the code exists. */
int admin_voucher_add(const char *code, int64_t credits, int64_t expires_at, const char *note);

/* Limits the user email to profiles (an array of names; empty: every profile), then reads the
 * user's allowed profiles back into now. */
int admin_quota_set(const char *email, json_t *profiles, json_t *now);

/* Appends an operator's grant of amount (micro-credits) to the ledger of the org org_slug,
 * with note (NULL: "Operator grant"), and reads the org's balance after it into *balance, in
 * one transaction. */
int admin_credits_grant(const char *org_slug, int64_t amount, const char *note, int64_t *balance);

/* The demo account of `make run` (serve --demo): created with 100 credits and an API key on
 * the first start, its credentials kept in data_dir/demo.txt (mode 0600), and that file
 * printed on standard output at every start. listen is the address the server serves, for
 * the curl line it shows. Failures are logged; the server serves on without it. */
#define ADMIN_DEMO_EMAIL "demo@lyceumd.local"
void admin_demo_account(const char *data_dir, const char *listen);

#endif
