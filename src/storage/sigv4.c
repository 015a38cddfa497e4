/* See sigv4.h. Follows AWS's "Create a signed AWS API request" for S3: the path is encoded
 * once (S3 does not normalise it), and the payload hash is whatever the client declared. */
#include "storage/sigv4.h"
#include "core/util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

char *sigv4_encode(struct arena *a, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = arena_alloc(a, strlen(s) * 3 + 1), *o = out;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p) || (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

struct pair {
    char *k, *v;
};

static int by_pair(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    int c = strcmp(x->k, y->k);

    return c ? c : strcmp(x->v, y->v);
}

char *sigv4_canonical_query(struct arena *a, const struct sigv4_kv *kv, int n)
{
    struct pair *p = arena_alloc(a, sizeof(*p) * (size_t)(n ? n : 1));
    size_t len = 1;
    int m = 0;
    char *out, *o;

    for (int i = 0; i < n; i++) {
        if (strcmp(kv[i].k, "X-Amz-Signature") == 0)
            continue;
        p[m].k = sigv4_encode(a, kv[i].k, 0);
        p[m].v = sigv4_encode(a, kv[i].v ? kv[i].v : "", 0);
        len += strlen(p[m].k) + strlen(p[m].v) + 2;
        m++;
    }
    qsort(p, (size_t)m, sizeof(*p), by_pair);
    out = o = arena_alloc(a, len);
    *o = '\0';
    for (int i = 0; i < m; i++)
        o += sprintf(o, "%s%s=%s", i ? "&" : "", p[i].k, p[i].v);
    return out;
}

/* Appends value trimmed, with runs of spaces collapsed to one. */
static char *trim_value(struct arena *a, const char *v)
{
    char *out = arena_alloc(a, strlen(v) + 1), *o = out;
    int space = 0;

    while (*v == ' ' || *v == '\t')
        v++;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = 1;
            continue;
        }
        if (space && o != out)
            *o++ = ' ';
        space = 0;
        *o++ = *v;
    }
    *o = '\0';
    return out;
}

char *sigv4_canonical_request(struct arena *a, const char *method, const char *path,
                              const char *canonical_query, const char *signed_headers,
                              const char *(*header)(void *ctx, const char *name), void *ctx,
                              const char *payload_hash)
{
    char *headers = arena_strdup(a, ""), *names = arena_strdup(a, signed_headers), *save = NULL;
    const char *uri = path && *path ? sigv4_encode(a, path, 1) : "/";

    for (char *h = strtok_r(names, ";", &save); h; h = strtok_r(NULL, ";", &save)) {
        const char *v = header(ctx, h);

        headers = arena_sprintf(a, "%s%s:%s\n", headers, h, trim_value(a, v ? v : ""));
    }
    return arena_sprintf(a, "%s\n%s\n%s\n%s\n%s\n%s", method, uri, canonical_query, headers,
                         signed_headers, payload_hash);
}

static void hmac(const unsigned char *key, size_t kn, const char *msg, unsigned char out[32])
{
    unsigned len = 32;

    HMAC(EVP_sha256(), key, (int)kn, (const unsigned char *)msg, strlen(msg), out, &len);
}

void sigv4_signing_key(const char *secret, const char *date, const char *region,
                       const char *service, unsigned char key[32])
{
    char k0[256];
    unsigned char a[32], b[32], c[32];

    snprintf(k0, sizeof(k0), "AWS4%s", secret);
    hmac((const unsigned char *)k0, strlen(k0), date, a);
    hmac(a, 32, region, b);
    hmac(b, 32, service, c);
    hmac(c, 32, "aws4_request", key);
}

static void sign_string(const unsigned char key[32], const char *sts, char out[65])
{
    unsigned char sig[32];

    hmac(key, 32, sts, sig);
    hex_encode(sig, 32, out);
}

void sigv4_sign(const unsigned char key[32], const char *amz_date, const char *scope,
                const char *creq, char out[65])
{
    char hash[65], sts[512];

    sha256_hex(creq, strlen(creq), hash);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, hash);
    sign_string(key, sts, out);
}

void sigv4_chunk_sign(const unsigned char key[32], const char *amz_date, const char *scope,
                      const char *prev_sig, const char *chunk_hash, char out[65])
{
    char empty[65], sts[640];

    sha256_hex("", 0, empty);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256-PAYLOAD\n%s\n%s\n%s\n%s\n%s", amz_date, scope,
             prev_sig, empty, chunk_hash);
    sign_string(key, sts, out);
}

/* Copies the value after "name=" in s up to a ',' (or the end) into out. */
static int field(const char *s, const char *name, char *out, size_t n)
{
    const char *p = strstr(s, name), *end;

    if (!p)
        return -1;
    p += strlen(name);
    end = strchr(p, ',');
    if (!end)
        end = p + strlen(p);
    while (end > p && end[-1] == ' ')
        end--;
    if ((size_t)(end - p) >= n)
        return -1;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return 0;
}

int sigv4_parse_credential(const char *cred, struct sigv4_auth *out)
{
    char buf[512], *parts[5], *save = NULL;
    int n = 0;

    if (strlen(cred) >= sizeof(buf))
        return -1;
    snprintf(buf, sizeof(buf), "%s", cred);
    for (char *t = strtok_r(buf, "/", &save); t && n < 5; t = strtok_r(NULL, "/", &save))
        parts[n++] = t;
    if (n != 5 || strcmp(parts[4], "aws4_request") != 0 || strlen(parts[1]) != 8 ||
        strlen(parts[0]) >= sizeof(out->access_key) || strlen(parts[2]) >= sizeof(out->region) ||
        strlen(parts[3]) >= sizeof(out->service))
        return -1;
    snprintf(out->access_key, sizeof(out->access_key), "%s", parts[0]);
    snprintf(out->date, sizeof(out->date), "%s", parts[1]);
    snprintf(out->region, sizeof(out->region), "%s", parts[2]);
    snprintf(out->service, sizeof(out->service), "%s", parts[3]);
    snprintf(out->scope, sizeof(out->scope), "%s/%s/%s/aws4_request", out->date, out->region,
             out->service);
    return 0;
}

int sigv4_parse_header(const char *authorization, struct sigv4_auth *out)
{
    char cred[512];
    const char *alg = "AWS4-HMAC-SHA256 ";

    memset(out, 0, sizeof(*out));
    if (strncmp(authorization, alg, strlen(alg)) != 0)
        return -1;
    if (field(authorization, "Credential=", cred, sizeof(cred)) ||
        field(authorization, "SignedHeaders=", out->signed_headers, sizeof(out->signed_headers)) ||
        field(authorization, "Signature=", out->signature, sizeof(out->signature)))
        return -1;
    return sigv4_parse_credential(cred, out);
}
