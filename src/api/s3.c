/*
 * The S3-compatible endpoint, on the same port as the API: a request whose Authorization starts
 * with "AWS4-HMAC-SHA256", or whose query has X-Amz-Algorithm (a presigned URL), is S3. It is
 * verified with Signature V4 against the temporary credentials of /storage/credentials (the
 * secret opened from its sealed copy, the session token checked against its hash, the expiry),
 * may reach only the one bucket they were issued for (the user's, or the org's for an org API
 * key's), and speaks S3's XML: ListBuckets, HeadBucket,
 * GetBucketLocation, ListObjects (v1 and v2), PutObject, CopyObject, GetObject and HeadObject
 * (Range), DeleteObject(s), and multipart uploads (create, upload part, complete, abort).
 * Paths are path-style: /{bucket}/{key}.
 *
 * PutObject and UploadPart bodies stream to disk (s3_begin sets up the sink once the headers
 * are in and the signature holds); a declared payload SHA-256 is checked as the bytes pass,
 * and aws-chunked bodies (STREAMING-AWS4-HMAC-SHA256-PAYLOAD: each chunk's signature checked;
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER) are decoded on the way. An additional checksum
 * (x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1 or -sha256, as newer AWS SDKs send with
 * every upload), in a header or as the trailer an aws-chunked body declares in x-amz-trailer,
 * is computed over the decoded bytes and must match (BadDigest otherwise): nothing is stored
 * until the payload hash, the chunk signatures and the checksum all hold.
 *
 * The credential scope must name the request's date, this endpoint's region (us-east-1, what
 * /storage/credentials says) and s3; a presigned URL is valid from its X-Amz-Date (15 minutes
 * of clock skew allowed) for X-Amz-Expires seconds, at most 7 days.
 */
#include "api/api.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "storage/bucket.h"
#include "storage/checksum.h"
#include "storage/range.h"
#include "storage/s3creds.h"
#include "storage/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define XMLNS     "http://s3.amazonaws.com/doc/2006-03-01/"
#define SKEW_US   (15LL * 60 * 1000000)
#define REGION    "us-east-1"
#define MAX_KV    64
#define XML_HEAD  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

void storage_http_date(int64_t us, char out[40]);

/* ---- XML ---- */

/* An S3 answer's XML: listings are bounded by the API (1,000 keys or parts a page), so the
 * cap is never reached by an answer the API allows. */
#define XB_CAP (64u << 20)

static void xb_put(struct buf *b, const char *s, size_t n)
{
    if (buf_add(b, s, n) < 0)
        log_error("an S3 answer passed %u bytes: cut", XB_CAP);
}

static void xb_str(struct buf *b, const char *s)
{
    xb_put(b, s, strlen(s));
}

static void xb_esc(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            xb_str(b, "&amp;");
            break;
        case '<':
            xb_str(b, "&lt;");
            break;
        case '>':
            xb_str(b, "&gt;");
            break;
        case '"':
            xb_str(b, "&quot;");
            break;
        case '\'':
            xb_str(b, "&apos;");
            break;
        case '\t':
        case '\n':
        case '\r': /* as references, or a parser would normalise them away */
            xb_str(b, *s == '\t' ? "&#9;" : *s == '\n' ? "&#10;" : "&#13;");
            break;
        default:
            xb_put(b, s, 1);
        }
    }
}

static void xb_tag(struct buf *b, const char *tag, const char *text)
{
    xb_str(b, "<");
    xb_str(b, tag);
    xb_str(b, ">");
    xb_esc(b, text);
    xb_str(b, "</");
    xb_str(b, tag);
    xb_str(b, ">");
}

static int xb_reply(struct req *req, int status, struct buf *b)
{
    char *body = arena_strndup(&req->arena, b->p ? b->p : "", b->len);

    buf_free(b);
    return req_reply_raw(req, status, "application/xml", body, strlen(body));
}

/* ---- one S3 request ---- */

struct s3 {
    struct req *req;
    char owner[40]; /* the bucket the credentials open */
    char bucket[128];
    const char *key; /* NULL for a bucket (or service) request */
    unsigned char skey[32];
    char scope[256], amz_date[20], seed[72];
    const char *payload;
    int status;
    const char *code, *msg;
    const char *region; /* for <Region> in the error: the one expected */

    /* A streamed PUT. */
    struct bucket_put put;
    int put_open, part;
    const char *upload_id;
    EVP_MD_CTX *sha; /* the whole payload, when its hash was declared */
    int chunked, signed_chunks, cstate, last_seen;
    int64_t declared, decoded; /* x-amz-decoded-content-length (-1: none); bytes so far */
    char line[256];
    size_t llen;
    int64_t cleft;
    EVP_MD_CTX *csha;
    char chunk_sig[72], prev[72];
    struct checksum sum;                 /* the additional checksum, when one was given */
    const char *sum_trailer;             /* its trailer's name (x-amz-trailer), or NULL */
    char sum_want[CHECKSUM_B64_MAX + 1]; /* the value the client gave ("" until the trailer) */
};

static int s3_fail(struct s3 *x, int status, const char *code, const char *msg)
{
    x->status = status;
    x->code = code;
    x->msg = msg;
    return -1;
}

static void s3_error_reply(struct s3 *x)
{
    struct req *req = x->req;
    struct buf b = BUF_INIT(XB_CAP);

    req_set_error(req, LY_EBADREQ); /* drops whatever response was set */
    json_decref(req->resp);
    req->resp = NULL;
    xb_str(&b, XML_HEAD "<Error>");
    xb_tag(&b, "Code", x->code);
    xb_tag(&b, "Message", x->msg);
    if (x->region)
        xb_tag(&b, "Region", x->region);
    xb_tag(&b, "Resource", req->path);
    xb_tag(&b, "RequestId", req->request_id);
    xb_str(&b, "</Error>");
    xb_reply(req, x->status, &b);
}

int s3_is_request(struct req *req)
{
    const char *a = req_header(req, "Authorization");

    return (a && strncmp(a, "AWS4-HMAC-SHA256", 16) == 0) || req_query(req, "X-Amz-Algorithm");
}

struct kvs {
    struct sigv4_kv kv[MAX_KV];
    int n;
    struct arena *a;
};

static void collect_kv(void *arg, const char *k, const char *v)
{
    struct kvs *q = arg;

    if (q->n < MAX_KV) {
        q->kv[q->n].k = arena_strdup(q->a, k);
        q->kv[q->n].v = v ? arena_strdup(q->a, v) : NULL;
        q->n++;
    }
}

struct has {
    const char *name;
    int found;
};

static void has_one(void *arg, const char *k, const char *v)
{
    struct has *h = arg;

    (void)v;
    h->found |= strcmp(k, h->name) == 0;
}

/* Whether the query has parameter name, with or without a value ("?uploads"). */
static int has_query(struct req *req, const char *name)
{
    struct has h = {name, 0};

    if (req->query_each_fn)
        req->query_each_fn(req->conn, has_one, &h);
    return h.found;
}

static const char *lower_header(void *ctx, const char *name)
{
    return req_header(ctx, name);
}

static int parse_amz_date(const char *s, int64_t *us)
{
    struct tm tm = {0};
    const char *end;

    if (!s || strlen(s) != 16)
        return -1;
    end = strptime(s, "%Y%m%dT%H%M%SZ", &tm);
    if (!end || *end)
        return -1;
    *us = (int64_t)timegm(&tm) * 1000000;
    return 0;
}

/* The credential scope against the request: its date, this endpoint's region and S3, with
 * AWS's answers (AuthorizationQueryParametersError for a presigned URL; a wrong region names
 * the right one in <Region>, which AWS's SDKs follow). */
static int scope_check(struct s3 *x, const struct sigv4_auth *a, const char *date, int presigned)
{
    const char *code =
        presigned ? "AuthorizationQueryParametersError" : "AuthorizationHeaderMalformed";
    const char *head = presigned ? "Error parsing the X-Amz-Credential parameter"
                                 : "The authorization header is malformed";
    struct arena *ar = &x->req->arena;

    if (strncmp(date, a->date, 8) != 0)
        return s3_fail(
            x, 400, code,
            arena_sprintf(ar, "%s; Invalid credential date. Date is not the same as X-Amz-Date.",
                          head));
    if (strcmp(a->region, REGION) != 0) {
        x->region = REGION;
        return s3_fail(x, 400, code,
                       arena_sprintf(ar, "%s; the region '%s' is wrong; expecting '%s'", head,
                                     a->region, REGION));
    }
    if (strcmp(a->service, "s3") != 0)
        return s3_fail(x, 400, code,
                       arena_sprintf(ar,
                                     "%s; incorrect service '%s'. This endpoint belongs to 's3'.",
                                     head, a->service));
    return 0;
}

/* Verifies the request's signature and credentials; fills x->owner. 0 or -1 (x->code). */
static int s3_auth(struct s3 *x)
{
    struct req *req = x->req;
    struct sigv4_auth a;
    struct s3creds_found cred;
    struct kvs q = {.a = &req->arena};
    const char *token, *date;
    char sig[65], *secret, *creq, hash[65];
    int64_t t, now = now_us();
    int presigned = req_query(req, "X-Amz-Algorithm") != NULL, err;

    memset(&a, 0, sizeof(a));
    if (presigned) {
        const char *cred_s = req_query(req, "X-Amz-Credential");
        const char *sh = req_query(req, "X-Amz-SignedHeaders");
        const char *sg = req_query(req, "X-Amz-Signature");
        const char *ex = req_query(req, "X-Amz-Expires");
        uint64_t exp = 0;

        date = req_query(req, "X-Amz-Date");
        if (strcmp(req_query(req, "X-Amz-Algorithm"), "AWS4-HMAC-SHA256") != 0 || !cred_s || !sh ||
            !sg || !date || sigv4_parse_credential(cred_s, &a) ||
            strlen(sh) >= sizeof(a.signed_headers) || strlen(sg) >= sizeof(a.signature))
            return s3_fail(x, 400, "AuthorizationQueryParametersError",
                           "The presigned URL's X-Amz-* parameters are incomplete or malformed");
        snprintf(a.signed_headers, sizeof(a.signed_headers), "%s", sh);
        snprintf(a.signature, sizeof(a.signature), "%s", sg);
        if (parse_amz_date(date, &t))
            return s3_fail(x, 400, "AuthorizationQueryParametersError", "Bad X-Amz-Date");
        /* Dated ahead, it would outlive X-Amz-Expires. */
        if (t > now + SKEW_US)
            return s3_fail(x, 403, "AccessDenied", "Request is not valid yet");
        if (!ex || range_u64(ex, 604800, &exp) || exp < 1)
            return s3_fail(x, 400, "AuthorizationQueryParametersError",
                           "X-Amz-Expires must be a number of seconds from 1 to 604800 (a week)");
        if (now > t + (int64_t)exp * 1000000)
            return s3_fail(x, 403, "AccessDenied", "Request has expired");
        token = req_query(req, "X-Amz-Security-Token");
        x->payload = "UNSIGNED-PAYLOAD";
    } else {
        if (sigv4_parse_header(req_header(req, "Authorization"), &a))
            return s3_fail(x, 400, "AuthorizationHeaderMalformed",
                           "The authorization header is malformed");
        date = req_header(req, "x-amz-date");
        if (parse_amz_date(date, &t))
            return s3_fail(x, 403, "AccessDenied", "x-amz-date is missing or malformed");
        if (t < now - SKEW_US || t > now + SKEW_US)
            return s3_fail(x, 403, "RequestTimeTooSkewed",
                           "The difference between the request time and the current time is too "
                           "large");
        token = req_header(req, "x-amz-security-token");
        x->payload = req_header(req, "x-amz-content-sha256");
        if (!x->payload)
            return s3_fail(x, 400, "InvalidRequest",
                           "Missing required header: "
                           "x-amz-content-sha256");
    }
    if (scope_check(x, &a, date, presigned))
        return -1;
    err = s3creds_find(a.access_key, &cred);
    if (err == LY_ENOTFOUND)
        return s3_fail(x, 403, "InvalidAccessKeyId",
                       "The AWS Access Key Id you provided does not exist in our records.");
    if (err == LY_EUNAUTH)
        return s3_fail(x, 403, "InvalidAccessKeyId", "These credentials no longer open");
    if (err)
        return s3_fail(x, 500, "InternalError", "The credential store failed");
    secret = cred.secret;
    sigv4_signing_key(secret, a.date, a.region, a.service, x->skey);
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
    if (req->query_each_fn)
        req->query_each_fn(req->conn, collect_kv, &q);
    creq = sigv4_canonical_request(&req->arena, req->method, req->path,
                                   sigv4_canonical_query(&req->arena, q.kv, q.n), a.signed_headers,
                                   lower_header, req, x->payload);
    snprintf(x->scope, sizeof(x->scope), "%s", a.scope);
    snprintf(x->amz_date, sizeof(x->amz_date), "%s", date);
    sigv4_sign(x->skey, date, a.scope, creq, sig);
    if (strlen(a.signature) != 64 || !ct_equal(sig, a.signature, 64))
        return s3_fail(x, 403, "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature you "
                       "provided. Check your key and signing method.");
    snprintf(x->seed, sizeof(x->seed), "%s", sig);
    sha256_hex(token ? token : "", token ? strlen(token) : 0, hash);
    if (!token || !ct_equal(hash, cred.token_hash, 64))
        return s3_fail(x, 403, "InvalidToken",
                       "The provided token is malformed or otherwise invalid.");
    if (now >= cred.expires_at)
        return s3_fail(x, 403, "AccessDenied", "The provided token has expired.");
    snprintf(x->owner, sizeof(x->owner), "%s", cred.owner);
    return 0;
}

/* Splits the path into bucket and key and checks that the bucket is the caller's. */
static int s3_target(struct s3 *x)
{
    const char *p = x->req->path, *slash;
    char own[48];
    const char *why;

    while (*p == '/')
        p++;
    slash = strchr(p, '/');
    snprintf(x->bucket, sizeof(x->bucket), "%.*s", (int)(slash ? slash - p : (long)strlen(p)), p);
    x->key = slash && slash[1] ? slash + 1 : NULL;
    if (!x->bucket[0])
        return 0;
    bucket_name(x->owner, own);
    if (strcmp(own, x->bucket) != 0)
        return s3_fail(x, 403, "AccessDenied", "Access Denied");
    if (x->key && bucket_key_check(x->key, strlen(x->key), &why))
        return s3_fail(
            x, 400, strlen(x->key) > BUCKET_KEY_MAX ? "KeyTooLongError" : "InvalidArgument", why);
    return 0;
}

/* ---- streamed PUT bodies ---- */

static int put_data(struct s3 *x, const char *buf, size_t n)
{
    int err = bucket_put_write(&x->put, buf, n);

    if (err == LY_ETOOLARGE)
        return s3_fail(x, 400, "EntityTooLarge",
                       "Your proposed upload exceeds the bucket's quota or the disk's room");
    if (err)
        return s3_fail(x, 500, "InternalError", "Writing the object failed");
    if (x->sha)
        EVP_DigestUpdate(x->sha, buf, n);
    checksum_update(&x->sum, buf, n);
    return 0;
}

static void digest_hex(EVP_MD_CTX *c, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;

    EVP_DigestFinal_ex(c, md, &len);
    hex_encode(md, 32, out);
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
}

static int chunk_check(struct s3 *x)
{
    char hash[65], want[65];

    if (!x->signed_chunks)
        return 0;
    digest_hex(x->csha, hash);
    sigv4_chunk_sign(x->skey, x->amz_date, x->scope, x->prev, hash, want);
    if (strlen(x->chunk_sig) != 64 || !ct_equal(want, x->chunk_sig, 64))
        return s3_fail(x, 403, "SignatureDoesNotMatch", "A chunk's signature does not match");
    snprintf(x->prev, sizeof(x->prev), "%s", want);
    return 0;
}

enum { C_HEADER, C_DATA, C_CRLF, C_TRAILER, C_END };

/* One trailer line "name:value" (x->line): the declared checksum's value is kept; others are
 * ignored. */
static int trailer_line(struct s3 *x)
{
    char *colon = strchr(x->line, ':'), *v;
    size_t n;

    if (!colon)
        return s3_fail(x, 400, "MalformedTrailerError",
                       "The request contained trailing data that was not well-formed");
    *colon = '\0';
    if (!x->sum_trailer || strcasecmp(x->line, x->sum_trailer) != 0)
        return 0;
    for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
        ;
    n = strcspn(v, " \t");
    if (n != checksum_b64_len(x->sum.alg))
        return s3_fail(x, 400, "InvalidRequest",
                       arena_sprintf(&x->req->arena, "Value for %s trailing header is invalid.",
                                     x->sum_trailer));
    memcpy(x->sum_want, v, n);
    x->sum_want[n] = '\0';
    return 0;
}

/* aws-chunked: "<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n" ... "0...\r\n", then the
 * trailer's lines "name:value\r\n" and an empty line. */
static int chunked_feed(struct s3 *x, const char *buf, size_t n)
{
    while (n) {
        if (x->cstate == C_END)
            return s3_fail(x, 400, "IncompleteBody", "Data after the end of the aws-chunked body");
        if (x->cstate == C_TRAILER) {
            if (x->llen + 1 >= sizeof(x->line))
                return s3_fail(x, 400, "MalformedTrailerError", "A trailer line is too long");
            x->line[x->llen++] = *buf++;
            n--;
            if (x->llen < 2 || x->line[x->llen - 2] != '\r' || x->line[x->llen - 1] != '\n')
                continue;
            x->line[x->llen - 2] = '\0';
            x->llen = 0;
            if (!x->line[0])
                x->cstate = C_END;
            else if (trailer_line(x))
                return -1;
            continue;
        }
        if (x->cstate == C_HEADER) {
            const char *sig;
            uint64_t size;

            if (x->llen + 1 >= sizeof(x->line))
                return s3_fail(x, 400, "IncompleteBody", "Malformed aws-chunked header");
            x->line[x->llen++] = *buf++;
            n--;
            if (x->llen < 2 || x->line[x->llen - 2] != '\r' || x->line[x->llen - 1] != '\n')
                continue;
            x->line[x->llen - 2] = '\0';
            x->llen = 0;
            if (range_hex(x->line, strcspn(x->line, ";"), INT64_MAX, &size))
                return s3_fail(x, 400, "IncompleteBody", "Malformed aws-chunked size");
            x->cleft = (int64_t)size;
            if (x->declared >= 0 && x->cleft > x->declared - x->decoded)
                return s3_fail(x, 400, "IncompleteBody",
                               "The aws-chunked body is longer than x-amz-decoded-content-length");
            sig = strstr(x->line, "chunk-signature=");
            snprintf(x->chunk_sig, sizeof(x->chunk_sig), "%s", sig ? sig + 16 : "");
            if (x->cleft == 0) {
                x->last_seen = 1;
                x->cstate = C_TRAILER;
                if (chunk_check(x))
                    return -1;
                continue;
            }
            x->cstate = C_DATA;
            continue;
        }
        if (x->cstate == C_DATA) {
            size_t take = (int64_t)n < x->cleft ? n : (size_t)x->cleft;

            if (put_data(x, buf, take))
                return -1;
            x->decoded += (int64_t)take;
            if (x->signed_chunks)
                EVP_DigestUpdate(x->csha, buf, take);
            x->cleft -= (int64_t)take;
            buf += take;
            n -= take;
            if (!x->cleft) {
                x->cstate = C_CRLF;
                x->llen = 0;
            }
            continue;
        }
        /* C_CRLF */
        x->line[x->llen++] = *buf++;
        n--;
        if (x->llen == 2) {
            if (x->line[0] != '\r' || x->line[1] != '\n')
                return s3_fail(x, 400, "IncompleteBody", "Malformed aws-chunked body");
            x->llen = 0;
            x->cstate = C_HEADER;
            if (chunk_check(x))
                return -1;
        }
    }
    return 0;
}

static int s3_sink_write(void *ctx, const char *buf, size_t n)
{
    struct s3 *x = ctx;

    if (x->chunked ? chunked_feed(x, buf, n) : put_data(x, buf, n))
        return LY_EBADREQ;
    return 0;
}

static void s3_sink_release(void *ctx)
{
    struct s3 *x = ctx;

    if (x->put_open)
        bucket_put_abort(&x->put);
    x->put_open = 0;
    if (x->sha)
        EVP_MD_CTX_free(x->sha);
    if (x->csha)
        EVP_MD_CTX_free(x->csha);
    x->sha = x->csha = NULL;
    checksum_free(&x->sum);
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

/* The additional checksum a PutObject / UploadPart gives: one x-amz-checksum-<alg> header, or
 * the trailer x-amz-trailer names (an aws-chunked body's). */
static int checksum_begin(struct s3 *x)
{
    struct req *req = x->req;
    const char *trailer = req_header(req, "x-amz-trailer"), *v = NULL;
    enum checksum_alg alg = SUM_NONE;
    int given = 0;

    for (int a = SUM_CRC32; a <= SUM_SHA256; a++) {
        const char *h =
            req_header(req, arena_sprintf(&req->arena, "x-amz-checksum-%s", checksum_name(a)));

        if (h) {
            given++;
            alg = (enum checksum_alg)a;
            v = h;
        }
    }
    if (trailer) {
        if (!x->chunked)
            return s3_fail(x, 400, "InvalidRequest",
                           "x-amz-trailer needs an aws-chunked body "
                           "(STREAMING-UNSIGNED-PAYLOAD-TRAILER)");
        if (strncasecmp(trailer, "x-amz-checksum-", 15) != 0 ||
            checksum_alg(trailer + 15) == SUM_NONE)
            return s3_fail(x, 400, "InvalidRequest",
                           arena_sprintf(&req->arena,
                                         "The value specified in the x-amz-trailer header is not "
                                         "supported: '%.80s' (use x-amz-checksum-crc32, -crc32c, "
                                         "-crc64nvme, -sha1 or -sha256)",
                                         trailer));
        given++;
        alg = checksum_alg(trailer + 15);
        x->sum_trailer = trailer;
    }
    if (given > 1)
        return s3_fail(x, 400, "InvalidRequest",
                       "Expecting a single x-amz-checksum- header. Multiple checksum Types are not "
                       "allowed.");
    if (v) {
        if (strlen(v) != checksum_b64_len(alg))
            return s3_fail(x, 400, "InvalidRequest",
                           arena_sprintf(&req->arena,
                                         "Value for x-amz-checksum-%s header is invalid.",
                                         checksum_name(alg)));
        snprintf(x->sum_want, sizeof(x->sum_want), "%s", v);
    }
    checksum_init(&x->sum, alg);
    return 0;
}

/* Sets up the upload of a PutObject / UploadPart. */
static int put_begin(struct s3 *x)
{
    struct req *req = x->req;
    const char *pn = req_query(req, "partNumber"), *clen = req_header(req, "Content-Length");
    const char *dlen = req_header(req, "x-amz-decoded-content-length");
    char key[BUCKET_KEY_MAX + 1];
    uint64_t v, part = 0;
    int64_t expect = -1;
    const char *why = NULL;
    int err;

    /* Lengths and part numbers are checked before any arithmetic with them. */
    x->declared = -1;
    if (dlen && range_u64(dlen, INT64_MAX, &v))
        return s3_fail(x, 400, "InvalidArgument",
                       "x-amz-decoded-content-length must be a length in bytes");
    if (dlen)
        x->declared = expect = (int64_t)v;
    else if (clen && range_u64(clen, INT64_MAX, &v))
        return s3_fail(x, 400, "InvalidArgument", "Content-Length must be a length in bytes");
    else if (clen)
        expect = (int64_t)v;
    x->upload_id = req_query(req, "uploadId");
    if (x->upload_id || pn) {
        if (!x->upload_id || !pn || range_u64(pn, 10000, &part) || part < 1)
            return s3_fail(x, 400, "InvalidArgument", "Part number must be 1 to 10000");
        x->part = (int)part;
        if (bucket_mpu_key(x->owner, x->upload_id, key))
            return s3_fail(x, 404, "NoSuchUpload", "The specified upload does not exist.");
    }
    if (strcmp(x->payload, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") == 0) {
        x->chunked = x->signed_chunks = 1;
        snprintf(x->prev, sizeof(x->prev), "%s", x->seed);
        x->csha = EVP_MD_CTX_new();
        EVP_DigestInit_ex(x->csha, EVP_sha256(), NULL);
    } else if (strcmp(x->payload, "STREAMING-UNSIGNED-PAYLOAD-TRAILER") == 0) {
        x->chunked = 1;
    } else if (is_hex64(x->payload)) {
        x->sha = EVP_MD_CTX_new();
        EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
    } else if (strcmp(x->payload, "UNSIGNED-PAYLOAD") != 0) {
        return s3_fail(x, 501, "NotImplemented",
                       arena_sprintf(&req->arena,
                                     "x-amz-content-sha256 '%.80s' is not supported: sign the "
                                     "payload, its chunks, or use UNSIGNED-PAYLOAD or "
                                     "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                     x->payload));
    }
    if (checksum_begin(x))
        return -1;
    err = x->part ? bucket_put_begin_part(&x->put, x->owner, x->upload_id, x->part, expect, &why)
                  : bucket_put_begin(&x->put, x->owner, expect, 1, &why);
    if (err == LY_ENOTFOUND)
        return s3_fail(x, 404, "NoSuchUpload", "The specified upload does not exist.");
    if (err == LY_ETOOLARGE)
        return s3_fail(x, 400, "EntityTooLarge", why ? why : "The bucket's quota is full");
    if (err)
        return s3_fail(x, 500, "InternalError", "Cannot start the upload");
    x->put_open = 1;
    return 0;
}

/* The additional checksum, once every byte is in: 0 when none was given or it matches. */
static int checksum_end(struct s3 *x)
{
    enum checksum_alg alg = x->sum.alg;
    char got[CHECKSUM_B64_MAX];

    if (alg == SUM_NONE)
        return 0;
    if (x->sum_trailer && x->cstate == C_TRAILER && x->llen) {
        /* The last trailer line, without its CRLF. */
        x->line[x->llen] = '\0';
        x->llen = 0;
        if (trailer_line(x))
            return -1;
    }
    if (!x->sum_want[0])
        return s3_fail(x, 400, "MalformedTrailerError",
                       arena_sprintf(&x->req->arena,
                                     "The trailer %s that x-amz-trailer declares is missing",
                                     x->sum_trailer));
    checksum_final(&x->sum, got);
    if (strcmp(got, x->sum_want) != 0) {
        const char *name = checksum_name(alg);
        char upper[16];
        size_t i;

        for (i = 0; name[i] && i + 1 < sizeof(upper); i++)
            upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
        upper[i] = '\0';
        return s3_fail(x, 400, "BadDigest",
                       arena_sprintf(&x->req->arena,
                                     "The %s you specified did not match the calculated "
                                     "checksum.",
                                     upper));
    }
    req_add_header(x->req, arena_sprintf(&x->req->arena, "x-amz-checksum-%s", checksum_name(alg)),
                   arena_strdup(&x->req->arena, got));
    return 0;
}

static int put_end(struct s3 *x)
{
    char etag[48] = "", hash[65];
    int err;

    if (x->sha) {
        digest_hex(x->sha, hash);
        if (strcmp(hash, x->payload) != 0)
            return s3_fail(x, 400, "XAmzContentSHA256Mismatch",
                           "The provided 'x-amz-content-sha256' header does not match what was "
                           "computed.");
    }
    if (x->chunked && (!x->last_seen || (x->declared >= 0 && x->decoded != x->declared)))
        return s3_fail(x, 400, "IncompleteBody", "The aws-chunked body ended early");
    if (checksum_end(x))
        return -1;
    x->put_open = 0;
    if (x->part)
        err = bucket_put_commit_part(&x->put, x->upload_id, x->part, etag);
    else
        err = bucket_put_commit(&x->put, x->key, etag);
    if (err == LY_ENOTFOUND)
        return s3_fail(x, 404, "NoSuchUpload", "The specified upload does not exist.");
    if (err == LY_ECONFLICT)
        return s3_fail(x, 409, "InvalidArgument",
                       "The key goes through an existing object, or names a folder");
    if (err)
        return s3_fail(x, 500, "InternalError", "Storing the object failed");
    req_add_header(x->req, "ETag", arena_sprintf(&x->req->arena, "\"%s\"", etag));
    return req_reply_raw(x->req, 200, "application/xml", "", 0);
}

void s3_begin(struct req *req)
{
    struct s3 *x = arena_alloc(&req->arena, sizeof(*x));

    if (strcmp(req->method, "PUT") != 0 || req_header(req, "x-amz-copy-source") ||
        has_query(req, "tagging") || has_query(req, "acl"))
        return; /* bodies other than objects are small: buffered as usual */
    memset(x, 0, sizeof(*x));
    x->req = req;
    req->begun = 1;
    req->sink.ctx = x;
    req->sink.release = s3_sink_release;
    if (s3_auth(x) || s3_target(x)) {
        req->begin_err = LY_EFORBIDDEN;
        return;
    }
    if (!x->key) {
        s3_fail(x, 405, "MethodNotAllowed", "Buckets cannot be created here: each user has one");
        req->begin_err = LY_EFORBIDDEN;
        return;
    }
    if (put_begin(x)) {
        req->begin_err = LY_EFORBIDDEN;
        return;
    }
    req->sink.write = s3_sink_write;
}

/* ---- the other operations ---- */

static const char *maybe_encode(struct s3 *x, const char *s, int url)
{
    return url ? sigv4_encode(&x->req->arena, s, 1) : s;
}

/* 1 when s holds a character XML 1.0 cannot carry (C0 controls but tab, newline and return):
 * such a key (a run can make one) is listed only with encoding-type=url. */
static int xml_unfit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
            return 1;
    return 0;
}

static int list_objects(struct s3 *x)
{
    struct req *req = x->req;
    int v2 = req_query(req, "list-type") && strcmp(req_query(req, "list-type"), "2") == 0;
    const char *prefix = req_query(req, "prefix") ? req_query(req, "prefix") : "";
    const char *delim = req_query(req, "delimiter");
    const char *after = v2 ? req_query(req, "continuation-token") : req_query(req, "marker");
    const char *enc = req_query(req, "encoding-type");
    int url = enc && strcmp(enc, "url") == 0;
    uint64_t max_keys = 1000;
    long max;
    json_t *all = json_array(), *o;
    struct buf b = BUF_INIT(XB_CAP);
    const char *last = NULL, *last_prefix = NULL;
    size_t i, plen = strlen(prefix);
    long count = 0;
    int more = 0, truncated = 0;

    if (req_query(req, "max-keys") &&
        range_u64(req_query(req, "max-keys"), UINT64_MAX, &max_keys)) {
        json_decref(all);
        return s3_fail(x, 400, "InvalidArgument", "max-keys must be a count");
    }
    max = max_keys > 1000 ? 1000 : (long)max_keys;
    if (!after && v2)
        after = req_query(req, "start-after");
    if (!bucket_prefix_ok(prefix) || (delim && !bucket_prefix_ok(delim)) ||
        (after && !bucket_prefix_ok(after))) {
        json_decref(all);
        return s3_fail(x, 400, "InvalidArgument", "prefix, delimiter and markers are UTF-8");
    }
    bucket_list(x->owner, prefix, NULL, SIZE_MAX, all, &more);
    xb_str(&b, XML_HEAD "<ListBucketResult xmlns=\"" XMLNS "\">");
    xb_tag(&b, "Name", x->bucket);
    xb_tag(&b, "Prefix", maybe_encode(x, prefix, url));
    if (delim)
        xb_tag(&b, "Delimiter", maybe_encode(x, delim, url));
    xb_tag(&b, "MaxKeys", arena_sprintf(&req->arena, "%ld", max));
    if (url)
        xb_tag(&b, "EncodingType", "url");
    json_array_foreach(all, i, o)
    {
        const char *key = json_string_value(json_object_get(o, "key"));
        const char *d = delim && *delim ? strstr(key + plen, delim) : NULL;

        if (!url && xml_unfit(key))
            continue;
        if (after && *after &&
            (strcmp(key, after) <= 0 ||
             (delim && *delim && strncmp(key, after, strlen(after)) == 0 &&
              strlen(after) >= strlen(delim) &&
              strcmp(after + strlen(after) - strlen(delim), delim) == 0)))
            continue;
        if (d) {
            const char *cp = arena_strndup(&req->arena, key, (size_t)(d - key) + strlen(delim));

            if (last_prefix && strcmp(cp, last_prefix) == 0)
                continue;
            if (count >= max) {
                truncated = 1;
                break;
            }
            xb_str(&b, "<CommonPrefixes>");
            xb_tag(&b, "Prefix", maybe_encode(x, cp, url));
            xb_str(&b, "</CommonPrefixes>");
            last_prefix = last = cp;
            count++;
            continue;
        }
        if (count >= max) {
            truncated = 1;
            break;
        }
        {
            char date[40], etag[48];
            struct stat st;
            int fd;

            time_iso(json_integer_value(json_object_get(o, "mtime")), date, sizeof(date));
            date[23] = 'Z'; /* S3 shows milliseconds and Z */
            date[24] = '\0';
            snprintf(etag, sizeof(etag), "-");
            if (bucket_open(x->owner, key, &fd, &st) == 0) {
                bucket_etag(fd, &st, etag);
                close(fd);
            }
            xb_str(&b, "<Contents>");
            xb_tag(&b, "Key", maybe_encode(x, key, url));
            xb_tag(&b, "LastModified", date);
            xb_tag(&b, "ETag", arena_sprintf(&req->arena, "\"%s\"", etag));
            xb_tag(&b, "Size",
                   arena_sprintf(&req->arena, "%lld",
                                 (long long)json_integer_value(json_object_get(o, "size"))));
            xb_tag(&b, "StorageClass", "STANDARD");
            xb_str(&b, "</Contents>");
        }
        last = key;
        count++;
    }
    xb_tag(&b, "IsTruncated", truncated ? "true" : "false");
    if (v2) {
        xb_tag(&b, "KeyCount", arena_sprintf(&req->arena, "%ld", count));
        if (req_query(req, "continuation-token"))
            xb_tag(&b, "ContinuationToken", req_query(req, "continuation-token"));
        if (truncated && last)
            xb_tag(&b, "NextContinuationToken", last);
    } else {
        xb_tag(&b, "Marker", after ? after : "");
        if (truncated && last)
            xb_tag(&b, "NextMarker", maybe_encode(x, last, url));
    }
    xb_str(&b, "</ListBucketResult>");
    json_decref(all);
    return xb_reply(req, 200, &b);
}

static int get_object(struct s3 *x)
{
    struct req *req = x->req;
    struct stat st;
    uint64_t off = 0, len;
    char etag[48], date[40];
    int fd, r;

    if (bucket_open(x->owner, x->key, &fd, &st))
        return s3_fail(x, 404, "NoSuchKey", "The specified key does not exist.");
    len = (uint64_t)st.st_size;
    bucket_etag(fd, &st, etag);
    storage_http_date((int64_t)st.st_mtim.tv_sec * 1000000, date);
    r = range_parse_get(req_header(req, "Range"), (uint64_t)st.st_size, &off, &len);
    if (r < 0) {
        close(fd);
        return s3_fail(x, 416, "InvalidRange", "The requested range is not satisfiable");
    }
    req_add_header(req, "ETag", arena_sprintf(&req->arena, "\"%s\"", etag));
    req_add_header(req, "Last-Modified", date);
    req_add_header(req, "Accept-Ranges", "bytes");
    if (r > 0)
        req_add_header(req, "Content-Range",
                       arena_sprintf(&req->arena, "bytes %llu-%llu/%lld", (unsigned long long)off,
                                     (unsigned long long)(off + len - 1), (long long)st.st_size));
    return req_reply_file(req, r > 0 ? 206 : 200, "application/octet-stream", fd, off, len);
}

/* Percent-decodes s (x-amz-copy-source) into the arena. */
static char *pct_decode(struct arena *a, const char *s)
{
    char *out = arena_alloc(a, strlen(s) + 1), *o = out;

    for (; *s; s++) {
        unsigned v;

        if (*s == '%' && s[1] && s[2] && sscanf(s + 1, "%2x", &v) == 1) {
            *o++ = (char)v;
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

static int copy_object(struct s3 *x)
{
    struct req *req = x->req;
    char *src = pct_decode(&req->arena, req_header(req, "x-amz-copy-source")), *slash, *q;
    char etag[48], date[40], own[48];
    const char *why = NULL;
    struct buf b = BUF_INIT(XB_CAP);
    int err;

    while (*src == '/')
        src++;
    q = strstr(src, "?versionId=");
    if (q)
        *q = '\0';
    slash = strchr(src, '/');
    if (!slash)
        return s3_fail(x, 400, "InvalidArgument", "Bad x-amz-copy-source");
    *slash = '\0';
    bucket_name(x->owner, own);
    if (strcmp(src, own) != 0)
        return s3_fail(x, 403, "AccessDenied", "Access Denied");
    if (bucket_key_check(slash + 1, strlen(slash + 1), &why))
        return s3_fail(x, 400, "InvalidArgument", why);
    if (req_query(req, "uploadId")) {
        /* UploadPartCopy: a range of the source (or all of it) becomes a part. */
        const char *range = req_header(req, "x-amz-copy-source-range");
        const char *pn = req_query(req, "partNumber");
        int64_t off = 0, len = -1;
        uint64_t part = 0;

        if (!pn || range_u64(pn, 10000, &part) || part < 1)
            return s3_fail(x, 400, "InvalidArgument", "Part number must be 1 to 10000");
        if (range && range_parse_copy(range, &off, &len) != RANGE_OK)
            return s3_fail(x, 416, "InvalidRange",
                           "x-amz-copy-source-range must be bytes=first-last, first <= last");
        err = bucket_copy_part(x->owner, slash + 1, off, len, req_query(req, "uploadId"), (int)part,
                               etag, &why);
        if (err == LY_ENOTFOUND)
            return s3_fail(x, 404, "NoSuchKey", "The source key or the upload does not exist.");
        if (err == LY_EBADREQ)
            return s3_fail(x, 416, "InvalidRange", why ? why : "The range is not satisfiable");
        if (err == LY_ETOOLARGE)
            return s3_fail(x, 400, "EntityTooLarge", why ? why : "The bucket's quota is full");
        if (err)
            return s3_fail(x, 500, "InternalError", "The copy failed");
        time_iso(now_us(), date, sizeof(date));
        date[23] = 'Z';
        date[24] = '\0';
        xb_str(&b, XML_HEAD "<CopyPartResult>");
        xb_tag(&b, "LastModified", date);
        xb_tag(&b, "ETag", arena_sprintf(&req->arena, "\"%s\"", etag));
        xb_str(&b, "</CopyPartResult>");
        return xb_reply(req, 200, &b);
    }
    err = bucket_copy(x->owner, slash + 1, x->key, etag, &why);
    if (err == LY_ENOTFOUND)
        return s3_fail(x, 404, "NoSuchKey", "The specified key does not exist.");
    if (err == LY_ETOOLARGE)
        return s3_fail(x, 400, "EntityTooLarge", why ? why : "The bucket's quota is full");
    if (err)
        return s3_fail(x, err == LY_ECONFLICT ? 409 : 500, "InternalError", "The copy failed");
    time_iso(now_us(), date, sizeof(date));
    date[23] = 'Z';
    date[24] = '\0';
    xb_str(&b, XML_HEAD "<CopyObjectResult>");
    xb_tag(&b, "LastModified", date);
    xb_tag(&b, "ETag", arena_sprintf(&req->arena, "\"%s\"", etag));
    xb_str(&b, "</CopyObjectResult>");
    return xb_reply(req, 200, &b);
}

/* The text of each <tag>...</tag> in xml, unescaped, in order (into the arena). */
static int xml_values(struct arena *a, const char *xml, size_t n, const char *tag, char **out,
                      int max)
{
    char open[40], close[40];
    const char *p = xml, *end = xml + n;
    int k = 0;

    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    while (k < max && (p = memmem(p, (size_t)(end - p), open, strlen(open)))) {
        const char *v = p + strlen(open), *e = memmem(v, (size_t)(end - v), close, strlen(close));
        char *s, *o;

        if (!e)
            break;
        s = o = arena_strndup(a, v, (size_t)(e - v));
        for (char *c = s; *c; c++) {
            if (*c == '&') {
                static const char *const ent[][2] = {{"&amp;", "&"},
                                                     {"&lt;", "<"},
                                                     {"&gt;", ">"},
                                                     {"&quot;", "\""},
                                                     {"&apos;", "'"}};
                size_t j;

                for (j = 0; j < 5; j++)
                    if (strncmp(c, ent[j][0], strlen(ent[j][0])) == 0)
                        break;
                if (j < 5) {
                    *o++ = ent[j][1][0];
                    c += strlen(ent[j][0]) - 1;
                    continue;
                }
            }
            *o++ = *c;
        }
        *o = '\0';
        out[k++] = s;
        p = e + strlen(close);
    }
    return k;
}

static int check_body_hash(struct s3 *x)
{
    char hash[65];

    if (!is_hex64(x->payload))
        return 0;
    sha256_hex(x->req->body ? x->req->body : "", x->req->body_len, hash);
    if (strcmp(hash, x->payload) != 0)
        return s3_fail(x, 400, "XAmzContentSHA256Mismatch",
                       "The provided 'x-amz-content-sha256' header does not match what was "
                       "computed.");
    return 0;
}

static int delete_objects(struct s3 *x)
{
    struct req *req = x->req;
    char *keys[1000];
    char *quiet[1];
    int n = xml_values(&req->arena, req->body ? req->body : "", req->body_len, "Key", keys, 1000);
    int q = xml_values(&req->arena, req->body ? req->body : "", req->body_len, "Quiet", quiet, 1);
    struct buf b = BUF_INIT(XB_CAP);

    xb_str(&b, XML_HEAD "<DeleteResult xmlns=\"" XMLNS "\">");
    for (int i = 0; i < n; i++) {
        const char *why;

        if (bucket_key_check(keys[i], strlen(keys[i]), &why) == 0)
            bucket_delete(x->owner, keys[i]);
        if (q && strcmp(quiet[0], "true") == 0)
            continue;
        xb_str(&b, "<Deleted>");
        xb_tag(&b, "Key", keys[i]);
        xb_str(&b, "</Deleted>");
    }
    xb_str(&b, "</DeleteResult>");
    return xb_reply(req, 200, &b);
}

static int mpu_create(struct s3 *x)
{
    char id[33];
    struct buf b = BUF_INIT(XB_CAP);

    if (bucket_mpu_create(x->owner, x->key, id))
        return s3_fail(x, 500, "InternalError", "Cannot start the upload");
    xb_str(&b, XML_HEAD "<InitiateMultipartUploadResult xmlns=\"" XMLNS "\">");
    xb_tag(&b, "Bucket", x->bucket);
    xb_tag(&b, "Key", x->key);
    xb_tag(&b, "UploadId", id);
    xb_str(&b, "</InitiateMultipartUploadResult>");
    return xb_reply(x->req, 200, &b);
}

static int mpu_complete(struct s3 *x, const char *id)
{
    struct req *req = x->req;
    char *nums[10000], etag[48], key[BUCKET_KEY_MAX + 1];
    int parts[10000], n, err;
    const char *why = NULL;
    struct buf b = BUF_INIT(XB_CAP);

    if (bucket_mpu_key(x->owner, id, key) || strcmp(key, x->key) != 0)
        return s3_fail(x, 404, "NoSuchUpload", "The specified upload does not exist.");
    n = xml_values(&req->arena, req->body ? req->body : "", req->body_len, "PartNumber", nums,
                   10000);
    if (n == 0)
        return s3_fail(x, 400, "MalformedXML", "The XML names no parts");
    for (int i = 0; i < n; i++) {
        uint64_t v;

        if (range_u64(nums[i], 10000, &v) || v < 1)
            return s3_fail(x, 400, "InvalidArgument", "Part numbers are 1 to 10000");
        parts[i] = (int)v;
        if (i && parts[i] <= parts[i - 1])
            return s3_fail(x, 400, "InvalidPartOrder",
                           "The list of parts was not in ascending order.");
    }
    err = bucket_mpu_complete(x->owner, id, parts, n, etag, &why);
    if (err == LY_EBADREQ)
        return s3_fail(x, 400, "InvalidPart", why ? why : "A part is missing");
    if (err)
        return s3_fail(x, 500, "InternalError", "Completing the upload failed");
    xb_str(&b, XML_HEAD "<CompleteMultipartUploadResult xmlns=\"" XMLNS "\">");
    xb_tag(&b, "Location", arena_sprintf(&req->arena, "/%s/%s", x->bucket, x->key));
    xb_tag(&b, "Bucket", x->bucket);
    xb_tag(&b, "Key", x->key);
    xb_tag(&b, "ETag", arena_sprintf(&req->arena, "\"%s\"", etag));
    xb_str(&b, "</CompleteMultipartUploadResult>");
    return xb_reply(req, 200, &b);
}

static int list_buckets(struct s3 *x)
{
    struct buf b = BUF_INIT(XB_CAP);
    char name[48];

    bucket_name(x->owner, name);
    xb_str(&b, XML_HEAD "<ListAllMyBucketsResult xmlns=\"" XMLNS "\"><Owner>");
    xb_tag(&b, "ID", x->owner);
    xb_str(&b, "</Owner><Buckets><Bucket>");
    xb_tag(&b, "Name", name);
    xb_tag(&b, "CreationDate", "2026-01-01T00:00:00.000Z");
    xb_str(&b, "</Bucket></Buckets></ListAllMyBucketsResult>");
    return xb_reply(x->req, 200, &b);
}

static int s3_route(struct s3 *x)
{
    struct req *req = x->req;
    const char *m = req->method, *upload = req_query(req, "uploadId");
    struct buf b = BUF_INIT(XB_CAP);

    if (!x->bucket[0]) {
        if (strcmp(m, "GET") == 0)
            return list_buckets(x);
        return s3_fail(x, 405, "MethodNotAllowed", "The method is not allowed here");
    }
    if (check_body_hash(x))
        return -1;
    if (!x->key) {
        if (strcmp(m, "HEAD") == 0)
            return req_reply_raw(req, 200, "application/xml", "", 0);
        if (strcmp(m, "GET") == 0 && has_query(req, "location")) {
            xb_str(&b, XML_HEAD "<LocationConstraint xmlns=\"" XMLNS "\"></LocationConstraint>");
            return xb_reply(req, 200, &b);
        }
        if (strcmp(m, "GET") == 0 && has_query(req, "uploads")) {
            xb_str(&b, XML_HEAD "<ListMultipartUploadsResult xmlns=\"" XMLNS "\">");
            xb_tag(&b, "Bucket", x->bucket);
            xb_str(&b, "<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>");
            return xb_reply(req, 200, &b);
        }
        if (strcmp(m, "GET") == 0)
            return list_objects(x);
        if (strcmp(m, "POST") == 0 && has_query(req, "delete"))
            return delete_objects(x);
        return s3_fail(x, 405, "MethodNotAllowed", "Each user has one bucket, made for them");
    }
    if (strcmp(m, "GET") == 0 && upload)
        return s3_fail(x, 501, "NotImplemented", "ListParts is not implemented");
    if (has_query(req, "tagging") || has_query(req, "acl")) {
        /* Objects carry no tags or ACLs here: an empty set to read, and writes are no-ops. */
        if (strcmp(m, "GET") != 0)
            return req_reply_raw(req, 200, "application/xml", "", 0);
        xb_str(&b, XML_HEAD);
        xb_str(&b, has_query(req, "acl") ? "<AccessControlPolicy xmlns=\"" XMLNS
                                           "\"><AccessControlList/></AccessControlPolicy>"
                                         : "<Tagging xmlns=\"" XMLNS "\"><TagSet/></Tagging>");
        return xb_reply(req, 200, &b);
    }
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        return get_object(x);
    if (strcmp(m, "PUT") == 0 && req_header(req, "x-amz-copy-source"))
        return copy_object(x);
    if (strcmp(m, "DELETE") == 0 && upload) {
        if (bucket_mpu_abort(x->owner, upload))
            return s3_fail(x, 404, "NoSuchUpload", "The specified upload does not exist.");
        return req_reply_raw(req, 204, "application/xml", "", 0);
    }
    if (strcmp(m, "DELETE") == 0) {
        bucket_delete(x->owner, x->key);
        return req_reply_raw(req, 204, "application/xml", "", 0);
    }
    if (strcmp(m, "POST") == 0 && has_query(req, "uploads"))
        return mpu_create(x);
    if (strcmp(m, "POST") == 0 && upload)
        return mpu_complete(x, upload);
    return s3_fail(x, 405, "MethodNotAllowed", "The method is not allowed here");
}

void s3_dispatch(struct req *req)
{
    struct s3 local, *x = req->begun ? req->sink.ctx : &local;

    if (!req->begun) {
        memset(&local, 0, sizeof(local));
        local.req = req;
        if (s3_auth(x) || s3_target(x) || s3_route(x))
            s3_error_reply(x);
        return;
    }
    if (req->begin_err || (req->sink_err && x->code) || (!req->sink_err && put_end(x))) {
        s3_error_reply(x);
        return;
    }
    if (req->sink_err) {
        s3_fail(x, 500, "InternalError", "The upload failed");
        s3_error_reply(x);
    }
}
