/*
 * See mfa.h. A code of 6 digits is a TOTP code; anything else is tried as a backup code
 * (10 characters from an unambiguous alphabet, shown as xxxxx-xxxxx; the dash and case are
 * ignored). Backup codes are stored as SHA-256 hashes: they are random, not chosen by people.
 */
#include "auth/mfa.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"
#include "store/mfa.h"
#include "store/users.h"

#include <ctype.h>
#include <liboath/oath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEP   30
#define WINDOW 1

int mfa_init(void)
{
    return oath_init() == OATH_OK ? 0 : LY_EINTERNAL;
}

/* Normalises a backup code: drops dashes and spaces, lower-cases; returns its length. */
static size_t backup_norm(const char *code, char *out, size_t n)
{
    size_t len = 0;

    for (; *code && len < n - 1; code++) {
        if (*code == '-' || *code == ' ')
            continue;
        out[len++] = (char)tolower((unsigned char)*code);
    }
    out[len] = '\0';
    return len;
}

static int is_totp(const char *code)
{
    if (strlen(code) != 6)
        return 0;
    for (const char *p = code; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return 1;
}

int mfa_totp_check(const char *user_id, const char *secret_b32, const char *code, const char **why)
{
    char *secret = NULL;
    size_t len = 0;
    int pos = 0, rc;
    time_t now = time(NULL);

    *why = "Invalid MFA code";
    if (oath_base32_decode(secret_b32, strlen(secret_b32), &secret, &len) != OATH_OK)
        return LY_EINTERNAL;
    rc = oath_totp_validate2(secret, len, now, STEP, 0, WINDOW, &pos, code);
    free(secret);
    if (rc < 0)
        return LY_EUNAUTH;
    if (mfa_store_use_step(user_id, (int64_t)(now / STEP) + pos)) {
        *why = "This MFA code was already used; wait for the next one";
        return LY_EUNAUTH;
    }
    return 0;
}

int mfa_check_code(struct arena *a, const struct user_row *u, const char *code, const char **why)
{
    char norm[64], hash[65];

    (void)a;
    *why = "Invalid MFA code";
    if (!u->mfa_secret || !code)
        return LY_EUNAUTH;
    if (is_totp(code))
        return mfa_totp_check(u->id, u->mfa_secret, code, why);
    if (backup_norm(code, norm, sizeof(norm)) != MFA_BACKUP_LEN)
        return LY_EUNAUTH;
    sha256_hex(norm, strlen(norm), hash);
    return mfa_store_use_backup(u->id, hash) ? LY_EUNAUTH : 0;
}

void mfa_backup_codes(char codes[MFA_BACKUP_CODES][MFA_BACKUP_LEN + 2],
                      char hashes[MFA_BACKUP_CODES][65])
{
    static const char alphabet[] = "23456789abcdefghjkmnpqrstuvwxyz"; /* 31: no 0/o, 1/l/i */

    for (int i = 0; i < MFA_BACKUP_CODES; i++) {
        char raw[MFA_BACKUP_LEN + 1];
        int n = 0;

        while (n < MFA_BACKUP_LEN) {
            unsigned char b;

            random_bytes(&b, 1);
            if (b < 248) /* 8 * 31: keeps the draw uniform */
                raw[n++] = alphabet[b % 31];
        }
        raw[n] = '\0';
        sha256_hex(raw, MFA_BACKUP_LEN, hashes[i]);
        snprintf(codes[i], MFA_BACKUP_LEN + 2, "%.5s-%s", raw, raw + 5);
    }
}

int mfa_secret_new(char *b32, size_t n)
{
    char raw[20], *out = NULL;
    size_t len = 0;

    random_bytes(raw, sizeof(raw));
    if (oath_base32_encode(raw, sizeof(raw), &out, &len) != OATH_OK)
        return LY_EINTERNAL;
    snprintf(b32, n, "%s", out);
    free(out);
    return 0;
}

int mfa_challenge_new(const char *user_id, char token_out[64])
{
    char hash[65];

    random_base62(token_out, 48);
    sha256_hex(token_out, strlen(token_out), hash);
    return mfa_store_challenge_new(hash, user_id, now_us() + (int64_t)MFA_TOKEN_TTL_S * 1000000);
}

int mfa_challenge_get(const char *token, char user_id[40], const char **why)
{
    char hash[65];
    int err;

    sha256_hex(token, strlen(token), hash);
    err = mfa_store_challenge_take(hash, MFA_TOKEN_MAX_ATTEMPTS, user_id);
    if (err == LY_ENOTFOUND) {
        *why = "Invalid or expired MFA token; log in again";
        return LY_EUNAUTH;
    }
    return err;
}

int mfa_challenge_done(const char *token)
{
    char hash[65];

    sha256_hex(token, strlen(token), hash);
    return mfa_store_challenge_done(hash);
}

int mfa_user(struct arena *a, const char *user_id, struct user_row *u)
{
    return users_get(a, user_id, u);
}

int64_t mfa_backups_left(const char *user_id)
{
    return mfa_store_backups_left(user_id);
}

/* New backup codes into b; hp points at their hashes, as the store takes them. */
static void backup_set_new(struct mfa_backup_set *b, const char *hp[MFA_BACKUP_CODES])
{
    mfa_backup_codes(b->codes, b->hashes);
    for (int i = 0; i < MFA_BACKUP_CODES; i++)
        hp[i] = b->hashes[i];
}

int mfa_enroll(const char *user_id, char secret[64], struct mfa_backup_set *b)
{
    const char *hp[MFA_BACKUP_CODES];
    int err = mfa_secret_new(secret, 64);

    if (err)
        return err;
    backup_set_new(b, hp);
    err = store_begin();
    if (err)
        return err;
    return store_end(mfa_store_enroll(user_id, secret, hp, MFA_BACKUP_CODES));
}

int mfa_enable(const char *user_id)
{
    return mfa_store_set_enabled(user_id, 1);
}

int mfa_disable(const char *user_id)
{
    int err = store_begin();

    if (err)
        return err;
    return store_end(mfa_store_clear(user_id));
}

int mfa_backups_regenerate(const char *user_id, struct mfa_backup_set *b)
{
    const char *hp[MFA_BACKUP_CODES];
    int err;

    backup_set_new(b, hp);
    err = store_begin();
    if (err)
        return err;
    return store_end(mfa_store_replace_backups(user_id, hp, MFA_BACKUP_CODES));
}
