/*
 * Storage (API.md 9): the caller's bucket through the file API (list, upload, bulk upload,
 * download with Range, delete, delete a folder) and temporary credentials for the S3 endpoint
 * (api/s3.c). The caller's bucket is the org's own for an org API key, else the user's
 * (bucket_owner): an org key never reaches its creator's personal bucket, nor a user key the
 * org's. Uploads are R_STREAM_BODY routes: the body goes to a temporary file in the
 * bucket piece by piece (multipart/form-data through storage/formdata.c, or a raw body with
 * ?key=) and is renamed into place once complete; downloads are sent from the file. Chunked
 * uploads (/storage/upload-chunk) are api/storage_chunk.c's.
 */
#include "api/api.h"
#include "api/storage_int.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "runs/runs.h"
#include "storage/bucket.h"
#include "storage/formdata.h"
#include "storage/range.h"
#include "storage/s3creds.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_FILES    100
#define CRED_TTL_DEF 3600
#define CRED_TTL_MAX 43200

const char *storage_owner_of(struct req *req)
{
    char owner[40];

    bucket_owner(req->caller->user_id, req->caller->org_id, req->caller->via == VIA_ORG_KEY, owner);
    return arena_strdup(&req->arena, owner);
}

/* ---- uploads ---- */

struct upload {
    struct req *req;
    int bulk, multipart;
    struct formdata form;
    struct bucket_put puts[MAX_FILES];
    char *names[MAX_FILES];
    int nput, cur; /* cur: the file part being read, or -1 */
    int field;     /* 1 key, 2 prefix, 0 none: the plain field being read */
    char key[BUCKET_KEY_MAX + 2], prefix[BUCKET_KEY_MAX + 2];
    size_t key_len, prefix_len;
    int has_key, has_prefix, too_long;
    int64_t room; /* what the quota allowed at the first file */
    const char *why;
};

static int up_begin_file(struct upload *u, const char *filename)
{
    struct bucket_put *p;
    int64_t used = 0;
    int err;

    if (u->nput >= (u->bulk ? MAX_FILES : 1)) {
        u->why = u->bulk ? "At most 100 files per request" : "One file per upload";
        return LY_EBADREQ;
    }
    p = &u->puts[u->nput];
    err = bucket_put_begin(p, storage_owner_of(u->req), -1, 0, &u->why);
    if (err)
        return err;
    for (int i = 0; i < u->nput; i++)
        used += u->puts[i].written;
    if (u->nput == 0)
        u->room = p->room;
    else if (u->room - used < p->room)
        p->room = u->room - used;
    u->names[u->nput] = arena_strdup(&u->req->arena, filename ? filename : "");
    u->cur = u->nput++;
    return 0;
}

static int up_part_begin(void *ctx, const char *name, const char *filename)
{
    struct upload *u = ctx;

    u->field = 0;
    if (filename)
        return up_begin_file(u, filename);
    if (strcmp(name, "key") == 0) {
        u->field = 1;
        u->key_len = 0;
        u->has_key = 1;
    } else if (strcmp(name, "prefix") == 0 || strcmp(name, "folder_prefix") == 0 ||
               strcmp(name, "folderPrefix") == 0) {
        u->field = 2;
        u->prefix_len = 0;
        u->has_prefix = 1;
    }
    return 0;
}

static int up_part_data(void *ctx, const char *buf, size_t n)
{
    struct upload *u = ctx;
    char *dst = u->field == 1 ? u->key : u->prefix;
    size_t *len = u->field == 1 ? &u->key_len : &u->prefix_len;

    if (u->cur >= 0)
        return bucket_put_write(&u->puts[u->cur], buf, n);
    if (!u->field)
        return 0; /* other fields are ignored */
    if (*len + n > BUCKET_KEY_MAX) {
        u->too_long = 1;
        return 0;
    }
    memcpy(dst + *len, buf, n);
    *len += n;
    return 0;
}

static int up_part_end(void *ctx)
{
    struct upload *u = ctx;

    u->cur = -1;
    u->field = 0;
    return 0;
}

static int up_write(void *ctx, const char *buf, size_t n)
{
    struct upload *u = ctx;

    if (u->multipart)
        return formdata_feed(&u->form, buf, n);
    return bucket_put_write(&u->puts[0], buf, n);
}

static void up_release(void *ctx)
{
    struct upload *u = ctx;

    for (int i = 0; i < u->nput; i++)
        bucket_put_abort(&u->puts[i]);
}

static void quota_detail(struct req *req, const char *why)
{
    if (why && strstr(why, "quota"))
        req_fail(req, LY_ETOOLARGE, "%s: each bucket holds at most %" PRId64 " bytes", why,
                 bucket_quota());
    else
        req_fail(req, LY_ETOOLARGE, "%s", why ? why : "The bucket's quota is full");
}

const char *storage_folder_of(struct req *req, const char *s, size_t n)
{
    while (n && *s == '/') {
        s++;
        n--;
    }
    while (n && s[n - 1] == '/')
        n--;
    return arena_strndup(&req->arena, s, n);
}

/* The folder of a bulk upload's query: ?prefix= or the dashboard's ?folder_prefix=. */
static const char *query_folder(struct req *req)
{
    const char *q = req_query(req, "folder_prefix");

    if (!q || !*q)
        q = req_query(req, "prefix");
    return q ? storage_folder_of(req, q, strlen(q)) : NULL;
}

int storage_check_key(struct req *req, const char *where, const char *name, const char *key,
                      size_t n)
{
    const char *why;

    if (bucket_key_check(key, n, &why) == 0)
        return 0;
    req_invalid(req, where, name, why, "value_error");
    return LY_EINVAL;
}

static int upload_begin(struct req *req, int bulk)
{
    struct upload *u = arena_alloc(&req->arena, sizeof(*u));
    const char *ctype = req_header(req, "Content-Type");
    const char *qkey = req_query(req, "key");
    const char *clen = req_header(req, "Content-Length");
    uint64_t body_len = 0;
    int err;

    memset(u, 0, sizeof(*u));
    u->req = req;
    u->bulk = bulk;
    u->cur = -1;
    if (qkey && !bulk && storage_check_key(req, "query", "key", qkey, strlen(qkey)))
        return LY_EINVAL;
    if (bulk && query_folder(req) && *query_folder(req) &&
        storage_check_key(req, "query",
                          req_query(req, "folder_prefix") ? "folder_prefix" : "prefix",
                          query_folder(req), strlen(query_folder(req))))
        return LY_EINVAL;
    /* A body bigger than the quota's room is refused before it is read. */
    if (clen && range_u64(clen, UINT64_MAX, &body_len) == 0 && bucket_quota() > 0 &&
        body_len > (uint64_t)bucket_room(storage_owner_of(req)) + 65536) {
        quota_detail(req, "The bucket's quota is full");
        return LY_ETOOLARGE;
    }
    if (ctype && strncasecmp(ctype, "multipart/form-data", 19) == 0) {
        if (formdata_init(&u->form, ctype))
            return req_fail(req, LY_EBADREQ, "multipart/form-data without a usable boundary");
        u->multipart = 1;
        u->form.part_begin = up_part_begin;
        u->form.part_data = up_part_data;
        u->form.part_end = up_part_end;
        u->form.ctx = u;
    } else if (!bulk && qkey) {
        err = up_begin_file(u, NULL);
        if (err == LY_ETOOLARGE)
            quota_detail(req, u->why);
        if (err)
            return err;
    } else {
        return req_fail(req, LY_EBADREQ,
                        bulk ? "Send the files as multipart/form-data"
                             : "Send the file as multipart/form-data (field 'file'), or the "
                               "raw bytes with ?key=");
    }
    req->sink.write = up_write;
    req->sink.release = up_release;
    req->sink.ctx = u;
    return 0;
}

static json_t *object_json(const char *key, int64_t size)
{
    return json_pack("{s:s,s:I}", "key", key, "size", (json_int_t)size);
}

static int upload_end(struct req *req, int bulk)
{
    struct upload *u = req->sink.ctx;
    json_t *files;
    int err = req->sink_err;

    if (!u)
        return LY_EINTERNAL;
    if (err == LY_ETOOLARGE) {
        quota_detail(req, u->why);
        return err;
    }
    if (err == LY_EINVAL || (!err && u->multipart && formdata_finish(&u->form)))
        return req_fail(req, LY_EBADREQ, "Malformed multipart/form-data body");
    if (err)
        return u->why ? req_fail(req, err, "%s", u->why) : err;
    if (u->too_long) {
        req_invalid(req, "body", u->has_prefix ? "prefix" : "key",
                    "The key is longer than 1024 bytes", "value_error");
        return LY_EINVAL;
    }
    if (u->nput == 0) {
        req_invalid(req, "body", "file", "Field required", "missing");
        return LY_EINVAL;
    }
    u->key[u->key_len] = '\0';
    u->prefix[u->prefix_len] = '\0';
    files = json_array();
    for (int i = 0; i < u->nput; i++) {
        const char *key;
        const char *prefix =
            u->has_prefix ? storage_folder_of(req, u->prefix, u->prefix_len) : query_folder(req);

        if (bulk)
            key = arena_sprintf(&req->arena, "%s%s%s", prefix ? prefix : "",
                                prefix && *prefix ? "/" : "", u->names[i]);
        else if (req_query(req, "key"))
            key = req_query(req, "key");
        else if (u->has_key)
            key = u->key;
        else
            key = u->names[i];
        if (storage_check_key(req, "body", bulk ? "files" : "key", key,
                              !bulk && u->has_key && !req_query(req, "key") ? u->key_len
                                                                            : strlen(key))) {
            json_decref(files);
            return LY_EINVAL;
        }
        err = bucket_put_commit(&u->puts[i], key, NULL);
        if (err == LY_ECONFLICT) {
            json_decref(files);
            return req_fail(req, LY_ECONFLICT,
                            "The key '%s' goes through an existing file, or names a folder", key);
        }
        if (err) {
            json_decref(files);
            return err;
        }
        json_array_append_new(files, object_json(key, u->puts[i].written));
    }
    if (bulk)
        return req_reply(req, json_pack("{s:o,s:I,s:s}", "files", files, "count",
                                        (json_int_t)json_array_size(files), "message",
                                        "Files uploaded"));
    err = req_reply(req, json_pack("{s:O,s:O,s:s}", "key",
                                   json_object_get(json_array_get(files, 0), "key"), "size",
                                   json_object_get(json_array_get(files, 0), "size"), "message",
                                   "File uploaded"));
    json_decref(files);
    return err;
}

static int api_storage_upload(struct req *req)
{
    return req->phase == REQ_BEGIN ? upload_begin(req, 0) : upload_end(req, 0);
}

static int api_storage_upload_bulk(struct req *req)
{
    return req->phase == REQ_BEGIN ? upload_begin(req, 1) : upload_end(req, 1);
}

/* ---- downloads ---- */

void storage_http_date(int64_t us, char out[40])
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int api_storage_download(struct req *req)
{
    const char *key = req_param(req, "file_key");
    const char *base = strrchr(key, '/');
    struct stat st;
    uint64_t off = 0, len;
    char etag[48], q[56], date[40];
    int fd, err, r;

    if (storage_check_key(req, "path", "file_key", key, strlen(key)))
        return LY_EINVAL;
    err = bucket_open(storage_owner_of(req), key, &fd, &st);
    if (err)
        return req_fail(req, LY_ENOTFOUND, "File not found");
    len = (uint64_t)st.st_size;
    bucket_etag(fd, &st, etag);
    snprintf(q, sizeof(q), "\"%s\"", etag);
    storage_http_date((int64_t)st.st_mtim.tv_sec * 1000000, date);
    r = range_parse_get(req_header(req, "Range"), (uint64_t)st.st_size, &off, &len);
    req_add_header(req, "Accept-Ranges", "bytes");
    if (r < 0) {
        close(fd);
        req_add_header(req, "Content-Range",
                       arena_sprintf(&req->arena, "bytes */%lld", (long long)st.st_size));
        /* 416 has no error code of its own: the one status a download answers outside them. */
        return req_reply_status(req, 416, json_pack("{s:s}", "detail", "Range Not Satisfiable"));
    }
    req_add_header(req, "ETag", q);
    req_add_header(req, "Last-Modified", date);
    req_add_header(
        req, "Content-Disposition",
        arena_sprintf(&req->arena, "attachment; filename=\"%s\"", base ? base + 1 : key));
    if (r > 0)
        req_add_header(req, "Content-Range",
                       arena_sprintf(&req->arena, "bytes %llu-%llu/%lld", (unsigned long long)off,
                                     (unsigned long long)(off + len - 1), (long long)st.st_size));
    return req_reply_file(req, r > 0 ? 206 : 200, "application/octet-stream", fd, off, len);
}

/* ---- listing and deleting ---- */

/* A bare array, as the CLI and the dashboard iterate it; whether max_files cut it short is
 * in the headers (X-Truncated, X-Total-Count: how many keys matched in all). */
static int api_storage_list(struct req *req)
{
    const char *prefix = req_query(req, "prefix");
    long long max;
    json_t *rows = json_array(), *files = json_array(), *o;
    size_t i, total;
    int more = 0, err;

    if (prefix && !bucket_prefix_ok(prefix))
        req_invalid(req, "query", "prefix", "A prefix is UTF-8 of at most 1024 bytes",
                    "value_error");
    err = req_query_int(req, "max_files", 1000, 1, 100000, &max);
    if (!err)
        err = req_check_valid(req);
    if (err) {
        json_decref(rows);
        json_decref(files);
        return err;
    }
    /* Every match is walked and sorted anyway: counting them all costs nothing more. */
    bucket_list(storage_owner_of(req), prefix, NULL, SIZE_MAX, rows, &more);
    total = json_array_size(rows);
    json_array_foreach(rows, i, o)
    {
        char date[40];

        if (i >= (size_t)max)
            break;
        time_iso(json_integer_value(json_object_get(o, "mtime")), date, sizeof(date));
        json_array_append_new(files,
                              json_pack("{s:O,s:O,s:s}", "key", json_object_get(o, "key"), "size",
                                        json_object_get(o, "size"), "last_modified", date));
    }
    json_decref(rows);
    req_add_header(req, "X-Total-Count", arena_sprintf(&req->arena, "%zu", total));
    req_add_header(req, "X-Truncated", total > (size_t)max ? "true" : "false");
    return req_reply(req, files);
}

static int api_storage_delete(struct req *req)
{
    const char *key = req_param(req, "file_key");

    if (storage_check_key(req, "path", "file_key", key, strlen(key)))
        return LY_EINVAL;
    if (bucket_delete(storage_owner_of(req), key))
        return req_fail(req, LY_ENOTFOUND, "File not found");
    return req_reply(req, json_pack("{s:s,s:s}", "message", "File deleted", "key", key));
}

static int api_storage_delete_folder(struct req *req)
{
    const char *prefix = req_param(req, "folder_prefix");
    int64_t n = 0;

    if (storage_check_key(req, "path", "folder_prefix", prefix, strlen(prefix)))
        return LY_EINVAL;
    bucket_delete_prefix(storage_owner_of(req), arena_sprintf(&req->arena, "%s/", prefix), &n);
    if (n == 0)
        return req_fail(req, LY_ENOTFOUND, "No files under the folder '%s/'", prefix);
    return req_reply(req, json_pack("{s:s,s:s,s:I}", "message", "Folder deleted", "prefix", prefix,
                                    "deleted", (json_int_t)n));
}

/* ---- S3 credentials ---- */

static int api_storage_credentials(struct req *req)
{
    const char *host = req_header(req, "Host");
    const char *base = runs_cfg && runs_cfg->public_url[0] ? runs_cfg->public_url : NULL;
    long long ttl = body_int(req, "duration_seconds", CRED_TTL_DEF);
    char bucket[48], exp[40];
    struct s3creds_new c;
    int err = s3creds_issue(req->caller->user_id, storage_owner_of(req), ttl, &c);

    if (err)
        return err;
    bucket_name(storage_owner_of(req), bucket);
    time_iso(c.expires_at, exp, sizeof(exp));
    return req_reply(
        req,
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "access_key", c.access_key, "secret_key",
                  c.secret_key, "session_token", c.session_token, "endpoint",
                  base ? base
                       : arena_sprintf(&req->arena, "http://%s", host ? host : "127.0.0.1:8000"),
                  "bucket_name", bucket, "region", "us-east-1", "expires_at", exp, "expiration",
                  exp, "expires_in", (json_int_t)ttl));
}

static const struct field cred_body[] = {
    {"duration_seconds", FT_INTEGER, 0, 1, CRED_TTL_MAX,
     "how long the credentials last (default 3600, at most 43200)"},
    {0},
};
static const struct field cred_resp[] = {
    {"access_key", FT_STRING, 0, 0, 0, NULL},
    {"secret_key", FT_STRING, 0, 0, 0, "shown once"},
    {"session_token", FT_STRING, 0, 0, 0, "send as X-Amz-Security-Token"},
    {"endpoint", FT_STRING, 0, 0, 0, "this server's base URL: S3 requests go to the same port"},
    {"bucket_name", FT_STRING, 0, 0, 0,
     "u-<user id> (o-<org id> for an org API key): path-style /{bucket}/{key}"},
    {"region", FT_STRING, 0, 0, 0, "us-east-1"},
    {"expires_at", FT_DATETIME, 0, 0, 0, "also as expiration"},
    {"expires_in", FT_INTEGER, 0, 0, 0, "seconds"},
    {0},
};
static const struct field list_resp[] = {
    {"key", FT_STRING, 0, 0, 0, NULL},
    {"size", FT_INTEGER, 0, 0, 0, "bytes"},
    {"last_modified", FT_DATETIME, 0, 0, 0, NULL},
    {0},
};
static const struct field upload_body[] = {
    {"file", FT_STRING, FF_REQUIRED, 0, 0, "multipart/form-data file part"},
    {"key", FT_STRING, 0, 0, 0, "the object key (also as ?key=); default the file's name"},
    {0},
};
static const struct field bulk_body[] = {
    {"files", FT_STRING, FF_REQUIRED, 0, 0, "multipart/form-data file parts (up to 100)"},
    {"prefix", FT_STRING, 0, 0, 0, "a folder to put them in (also as ?prefix=)"},
    {"folder_prefix", FT_STRING, 0, 0, 0,
     "the dashboard's name for prefix (also folderPrefix, ?folder_prefix=)"},
    {0},
};

const struct route api_storage_routes[] = {
    {"GET", "/storage/list-files", api_storage_list, R_RESP_ARRAY,
     "Objects of the caller's bucket in key order, a JSON array (query: prefix, max_files, "
     "default 1000, at most 100000); headers X-Total-Count (keys matched) and X-Truncated "
     "(true when max_files cut the list short)",
     NULL, list_resp},
    {"POST", "/storage/upload", api_storage_upload, R_STREAM_BODY | R_RAW_BODY,
     "Upload one file (multipart 'file', key as query or form field; or raw bytes with ?key=), "
     "streamed to disk; 413 when the bucket's quota is full",
     upload_body, NULL},
    {"POST", "/storage/upload-bulk", api_storage_upload_bulk, R_STREAM_BODY | R_RAW_BODY,
     "Upload several files (multipart), each under prefix (or folder_prefix) + its file name",
     bulk_body, NULL},
    {"GET", "/storage/download/{file_key...}", api_storage_download, 0,
     "Download an object (Range supported: 206, 416)", NULL, NULL},
    {"DELETE", "/storage/delete/{file_key...}", api_storage_delete, 0, "Delete an object", NULL,
     NULL},
    {"DELETE", "/storage/delete-folder/{folder_prefix...}", api_storage_delete_folder, 0,
     "Delete every object under a folder (404 when it holds none)", NULL, NULL},
    {"POST", "/storage/credentials", api_storage_credentials, 0,
     "Temporary S3 credentials for the caller's bucket on this server's S3 endpoint (SigV4, "
     "path-style)",
     cred_body, cred_resp},
    {0},
};
