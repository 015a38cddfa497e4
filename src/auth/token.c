/*
 * See token.h. The algorithm is pinned twice: libjwt is given only the HS256 key, and the
 * decoded token's header must say HS256, so "none" or an RS256 token signed with the HMAC key
 * as a public key (the classic confusion attack) is refused.
 */
#include "auth/token.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_LEN     32
#define JWT_MAX_LEN 4096

static unsigned char jwt_key[KEY_LEN];

int token_init(const char *data_dir)
{
    char path[4096];
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/jwt.key", data_dir);
    fd = open(path, O_RDONLY);
    if (fd >= 0) {
        n = read(fd, jwt_key, KEY_LEN);
        close(fd);
        if (n != KEY_LEN) {
            log_error("%s is damaged (want %d bytes)", path, KEY_LEN);
            return LY_EIO;
        }
        return 0;
    }
    random_bytes(jwt_key, KEY_LEN);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, jwt_key, KEY_LEN) != KEY_LEN || fsync(fd)) {
        log_error("cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return LY_EIO;
    }
    close(fd);
    return 0;
}

int jwt_issue(const char *user_id, const char *family_id, int64_t ttl_s, char **out)
{
    jwt_t *jwt = NULL;
    char jti[37];
    int64_t now = now_unix();
    int err = LY_EINTERNAL;

    uuid_v4(jti);
    if (jwt_new(&jwt) || jwt_add_grant(jwt, "sub", user_id) ||
        jwt_add_grant(jwt, "fid", family_id) || jwt_add_grant(jwt, "jti", jti) ||
        jwt_add_grant_int(jwt, "iat", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)(now + ttl_s)) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, jwt_key, KEY_LEN))
        goto out;
    *out = jwt_encode_str(jwt);
    if (*out)
        err = 0;
out:
    jwt_free(jwt);
    return err;
}

int jwt_check(const char *token, char user_id[40], char family_id[40], const char **why)
{
    jwt_t *jwt = NULL;
    const char *sub, *fid;
    long exp;
    int err = LY_EUNAUTH;

    *why = "Invalid authentication credentials";
    if (strlen(token) > JWT_MAX_LEN)
        return LY_EUNAUTH;
    if (jwt_decode(&jwt, token, jwt_key, KEY_LEN) || !jwt)
        goto out;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        goto out;
    sub = jwt_get_grant(jwt, "sub");
    fid = jwt_get_grant(jwt, "fid");
    errno = 0;
    exp = jwt_get_grant_int(jwt, "exp");
    if (!sub || !fid || errno || strlen(sub) >= 40 || strlen(fid) >= 40)
        goto out;
    if (exp <= now_unix()) {
        *why = "Token has expired";
        goto out;
    }
    snprintf(user_id, 40, "%s", sub);
    snprintf(family_id, 40, "%s", fid);
    err = 0;
out:
    jwt_free(jwt);
    return err;
}

void token_random(const char *prefix, int n, char *out, int outlen)
{
    int p = snprintf(out, (size_t)outlen, "%s", prefix);

    if (p + n + 1 > outlen)
        abort();
    random_base62(out + p, (size_t)n);
}

void apikey_generate(char out[API_KEY_LEN + 1])
{
    token_random("lk_", 40, out, API_KEY_LEN + 1);
}
