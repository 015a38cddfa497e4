/*
 * Storage (API.md 9): the caller's bucket through the file API (list, upload, bulk upload,
 * download with Range, delete, delete a folder) and temporary credentials for the S3 endpoint
 * (api/s3.c). The caller's bucket is the org's own for an org API key, else the user's
 * (bucket_owner): an org key never reaches its creator's personal bucket, nor a user key the
 * org's. Uploads are R_STREAM_BODY routes: the body goes to a temporary file in the
 * bucket piece by piece (multipart/form-data through storage/formdata.c, or a raw body with
 * ?key=) and is renamed into place once complete; downloads are sent from the file. The
 * dashboard sends files over 10 MB as chunks to /storage/upload-chunk (storage/chunked.c):
 * each chunk is a put of its own, and the object appears once the last one is in.
 */
#include "api/api.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "runs/runs.h"
#include "secrets/secrets.h"
#include "storage/bucket.h"
#include "storage/chunked.h"
#include "storage/formdata.h"
#include "storage/range.h"
#include "store/storage.h"

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

/* The owner id of the bucket the caller reaches (in the request's arena). */
static const char *owner_of(struct req *req)
{
    char owner[40];

    bucket_owner(req->caller.user_id, req->caller.org_id, req->caller.via == VIA_ORG_KEY, owner);
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
    err = bucket_put_begin(p, owner_of(u->req), -1, 0, &u->why);
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

/* A folder as a client writes it ("photos/", "/photos", "photos"), without the slashes at
 * either end, in the request's arena ("" for the bucket's root). */
static const char *folder_of(struct req *req, const char *s, size_t n)
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
    return q ? folder_of(req, q, strlen(q)) : NULL;
}

/* Records a 422 for a bad key at loc; returns LY_EINVAL, or 0 when the key is good. */
static int check_key(struct req *req, const char *where, const char *name, const char *key,
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
    if (qkey && !bulk && check_key(req, "query", "key", qkey, strlen(qkey)))
        return LY_EINVAL;
    if (bulk && query_folder(req) && *query_folder(req) &&
        check_key(req, "query", req_query(req, "folder_prefix") ? "folder_prefix" : "prefix",
                  query_folder(req), strlen(query_folder(req))))
        return LY_EINVAL;
    /* A body bigger than the quota's room is refused before it is read. */
    if (clen && range_u64(clen, UINT64_MAX, &body_len) == 0 && bucket_quota() > 0 &&
        body_len > (uint64_t)bucket_room(owner_of(req)) + 65536) {
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
            u->has_prefix ? folder_of(req, u->prefix, u->prefix_len) : query_folder(req);

        if (bulk)
            key = arena_sprintf(&req->arena, "%s%s%s", prefix ? prefix : "",
                                prefix && *prefix ? "/" : "", u->names[i]);
        else if (req_query(req, "key"))
            key = req_query(req, "key");
        else if (u->has_key)
            key = u->key;
        else
            key = u->names[i];
        if (check_key(req, "body", bulk ? "files" : "key", key,
                      !bulk && u->has_key && !req_query(req, "key") ? u->key_len : strlen(key))) {
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

/* ---- chunked uploads (the dashboard sends files over 10 MB so) ---- */

/* What a chunk's fields say: each is one slot, whatever alias named it. */
enum { CF_UPLOAD_ID, CF_INDEX, CF_TOTAL, CF_PATH, CF_NAME, CF_KEY, CF_PREFIX, CF_SIZE, CF_N };

#define CHUNK_MAX (5LL << 30) /* S3's largest part */

/*
 * Every name a chunk's field may have, in the form or the query: the dashboard's snake_case
 * and camelCase spellings (its calls are not published: these are what a browser's
 * FormData would send), and those of Dropzone (dz...) and Fine Uploader (qq...), whose chunk
 * indexes are 0-based as well. The same table is the route's documentation in /openapi.json;
 * an alias says whose in its description, and chunk_canon[] gives each field its slot.
 */
static const struct field chunk_body[] = {
    {"file", FT_STRING, FF_REQUIRED, 0, 0,
     "the chunk's bytes: a multipart/form-data file part (any field name; a part without a "
     "file name counts when named file, chunk, blob or data)"},
    {"upload_id", FT_STRING, 0, 1, CHUNKED_NAME_MAX,
     "names the upload within the caller's bucket (the same id elsewhere is another upload); "
     "default: the key"},
    {"uploadId", FT_STRING, 0, 1, CHUNKED_NAME_MAX, "alias of upload_id"},
    {"file_id", FT_STRING, 0, 1, CHUNKED_NAME_MAX, "alias of upload_id"},
    {"fileId", FT_STRING, 0, 1, CHUNKED_NAME_MAX, "alias of upload_id"},
    {"dzuuid", FT_STRING, 0, 1, CHUNKED_NAME_MAX, "alias of upload_id"},
    {"qquuid", FT_STRING, 0, 1, CHUNKED_NAME_MAX, "alias of upload_id"},
    {"chunk_index", FT_INTEGER, FF_REQUIRED, 0, CHUNKED_MAX_CHUNKS - 1,
     "which chunk this is, from 0 to total_chunks - 1"},
    {"chunkIndex", FT_INTEGER, 0, 0, CHUNKED_MAX_CHUNKS - 1, "alias of chunk_index"},
    {"dzchunkindex", FT_INTEGER, 0, 0, CHUNKED_MAX_CHUNKS - 1, "alias of chunk_index"},
    {"qqpartindex", FT_INTEGER, 0, 0, CHUNKED_MAX_CHUNKS - 1, "alias of chunk_index"},
    {"total_chunks", FT_INTEGER, FF_REQUIRED, 1, CHUNKED_MAX_CHUNKS,
     "how many chunks the file has (the same in every chunk)"},
    {"totalChunks", FT_INTEGER, 0, 1, CHUNKED_MAX_CHUNKS, "alias of total_chunks"},
    {"chunk_count", FT_INTEGER, 0, 1, CHUNKED_MAX_CHUNKS, "alias of total_chunks"},
    {"chunkCount", FT_INTEGER, 0, 1, CHUNKED_MAX_CHUNKS, "alias of total_chunks"},
    {"dztotalchunkcount", FT_INTEGER, 0, 1, CHUNKED_MAX_CHUNKS, "alias of total_chunks"},
    {"qqtotalparts", FT_INTEGER, 0, 1, CHUNKED_MAX_CHUNKS, "alias of total_chunks"},
    {"relative_path", FT_STRING, 0, 0, 0,
     "the file's path within an uploaded folder, put under folder_prefix (wins over filename)"},
    {"relativePath", FT_STRING, 0, 0, 0, "alias of relative_path"},
    {"filename", FT_STRING, 0, 0, 0,
     "the file's name, put under folder_prefix; default: the file part's own file name"},
    {"file_name", FT_STRING, 0, 0, 0, "alias of filename"},
    {"fileName", FT_STRING, 0, 0, 0, "alias of filename"},
    {"name", FT_STRING, 0, 0, 0, "alias of filename"},
    {"qqfilename", FT_STRING, 0, 0, 0, "alias of filename"},
    {"key", FT_STRING, 0, 0, 0, "the whole object key, instead of folder_prefix + filename"},
    {"file_key", FT_STRING, 0, 0, 0, "alias of key"},
    {"fileKey", FT_STRING, 0, 0, 0, "alias of key"},
    {"folder_prefix", FT_STRING, 0, 0, 0,
     "the folder to put the file in (slashes at its ends "
     "are left out)"},
    {"folderPrefix", FT_STRING, 0, 0, 0, "alias of folder_prefix"},
    {"prefix", FT_STRING, 0, 0, 0, "alias of folder_prefix"},
    {"total_size", FT_INTEGER, 0, 0, 0,
     "the file's bytes (optional): checked against the quota at the first chunk and against "
     "the chunks once all are in"},
    {"totalSize", FT_INTEGER, 0, 0, 0, "alias of total_size"},
    {"file_size", FT_INTEGER, 0, 0, 0, "alias of total_size"},
    {"fileSize", FT_INTEGER, 0, 0, 0, "alias of total_size"},
    {"dztotalfilesize", FT_INTEGER, 0, 0, 0, "alias of total_size"},
    {"qqtotalfilesize", FT_INTEGER, 0, 0, 0, "alias of total_size"},
    {0},
};
/* The slot of each field that is no alias ("alias of X" in its description names X). */
static const struct {
    const char *name;
    int slot;
} chunk_canon[] = {
    {"upload_id", CF_UPLOAD_ID},  {"chunk_index", CF_INDEX}, {"total_chunks", CF_TOTAL},
    {"relative_path", CF_PATH},   {"filename", CF_NAME},     {"key", CF_KEY},
    {"folder_prefix", CF_PREFIX}, {"total_size", CF_SIZE},
};

static const struct field chunk_resp[] = {
    {"upload_id", FT_STRING, 0, 0, 0, "the upload's id (the key when none was given)"},
    {"key", FT_STRING, 0, 0, 0, "the object the upload becomes"},
    {"chunk_index", FT_INTEGER, 0, 0, 0, NULL},
    {"total_chunks", FT_INTEGER, 0, 0, 0, NULL},
    {"received", FT_INTEGER, 0, 0, 0, "how many of the chunks are stored"},
    {"complete", FT_BOOLEAN, 0, 0, 0, "every chunk is in: the object exists"},
    {"chunk_size", FT_INTEGER, 0, 0, 0, "bytes of this chunk"},
    {"size", FT_INTEGER, 0, 0, 0, "bytes stored so far; the object's size once complete"},
    {"last_modified", FT_DATETIME, 0, 0, 0, "once complete"},
    {"message", FT_STRING, 0, 0, 0, NULL},
    {0},
};

struct chunk_up {
    struct req *req;
    const char *owner;
    int multipart;
    struct formdata form;
    struct bucket_put put;
    int put_open; /* put begun, neither committed nor aborted */
    int nfiles;   /* file parts seen */
    int in_file;  /* the file part is being read */
    int slot;     /* the field being read, or -1 */
    char val[CF_N][BUCKET_KEY_MAX + 2];
    size_t vlen[CF_N];
    const char *vname[CF_N], *vwhere[CF_N]; /* the name that set each slot, and where */
    int too_long[CF_N];
    const char *part_filename;
    int quota; /* the quota refused the chunk (its bytes were dropped) */
    const char *why;
    /* Resolved from the fields. */
    int index;
    char name[BUCKET_KEY_MAX + 1], id[33]; /* the upload's name: its id, else the key */
    struct chunked_info info;
    int created;
};

static void cf_set(struct chunk_up *c, int slot, const char *name, const char *where, const char *v,
                   size_t n)
{
    c->vname[slot] = name;
    c->vwhere[slot] = where;
    c->too_long[slot] = n > BUCKET_KEY_MAX;
    c->vlen[slot] = n > BUCKET_KEY_MAX ? 0 : n;
    memcpy(c->val[slot], v, c->vlen[slot]);
    c->val[slot][c->vlen[slot]] = '\0';
}

/* The slot field name fills (-1: none), and the table's copy of the name into *used. */
static int cf_slot_of(const char *name, const char **used)
{
    for (const struct field *f = chunk_body; f->name; f++) {
        const char *canon = f->name;

        if (strcmp(f->name, name) != 0)
            continue;
        *used = f->name;
        if (f->desc && strncmp(f->desc, "alias of ", 9) == 0)
            canon = f->desc + 9;
        for (size_t i = 0; i < sizeof(chunk_canon) / sizeof(chunk_canon[0]); i++)
            if (strcmp(chunk_canon[i].name, canon) == 0)
                return chunk_canon[i].slot;
        return -1;
    }
    return -1;
}

static int ch_part_begin(void *ctx, const char *name, const char *filename)
{
    struct chunk_up *c = ctx;
    const char *canon = NULL;
    int err;

    c->slot = -1;
    if (filename || strcmp(name, "file") == 0 || strcmp(name, "chunk") == 0 ||
        strcmp(name, "blob") == 0 || strcmp(name, "data") == 0) {
        if (c->nfiles++) {
            c->why = "One chunk per request: the body has more than one file part";
            return LY_EBADREQ;
        }
        c->part_filename = arena_strdup(&c->req->arena, filename ? filename : "");
        c->in_file = 1;
        err = bucket_put_begin(&c->put, c->owner, -1, 1, &c->why);
        if (err == LY_ETOOLARGE) {
            c->quota = 1; /* its bytes are dropped; the fields are still read */
            return 0;
        }
        if (err)
            return err;
        c->put_open = 1;
        return 0;
    }
    c->slot = cf_slot_of(name, &canon);
    if (c->slot >= 0)
        cf_set(c, c->slot, canon, "body", "", 0);
    return 0;
}

static int ch_part_data(void *ctx, const char *buf, size_t n)
{
    struct chunk_up *c = ctx;
    int slot = c->slot, err;

    if (c->in_file) {
        if (!c->put_open)
            return 0;
        err = bucket_put_write(&c->put, buf, n);
        if (err == LY_ETOOLARGE) {
            bucket_put_abort(&c->put);
            c->put_open = 0;
            c->quota = 1;
            return 0;
        }
        return err;
    }
    if (slot < 0 || c->too_long[slot])
        return 0;
    if (c->vlen[slot] + n > BUCKET_KEY_MAX) {
        c->too_long[slot] = 1;
        return 0;
    }
    memcpy(c->val[slot] + c->vlen[slot], buf, n);
    c->vlen[slot] += n;
    c->val[slot][c->vlen[slot]] = '\0';
    return 0;
}

static int ch_part_end(void *ctx)
{
    struct chunk_up *c = ctx;

    c->in_file = 0;
    c->slot = -1;
    return 0;
}

static int ch_write(void *ctx, const char *buf, size_t n)
{
    struct chunk_up *c = ctx;

    if (c->multipart)
        return formdata_feed(&c->form, buf, n);
    return bucket_put_write(&c->put, buf, n);
}

static void ch_release(void *ctx)
{
    struct chunk_up *c = ctx;

    if (c->put_open)
        bucket_put_abort(&c->put);
    c->put_open = 0;
}

static void ch_query_one(void *arg, const char *k, const char *v)
{
    struct chunk_up *c = arg;
    const char *canon = NULL;
    int slot = v ? cf_slot_of(k, &canon) : -1;

    if (slot >= 0)
        cf_set(c, slot, canon, "query", v, strlen(v));
}

/* An integer field into *out (-1 when absent): 0, or LY_EINVAL with a 422 recorded when it
 * is no integer in [lo, hi], or absent and required. */
static int cf_int(struct chunk_up *c, int slot, const char *canon, long long lo, long long hi,
                  int required, long long *out)
{
    const char *v = c->val[slot];
    char *end = NULL;
    long long n;

    *out = -1;
    if (!c->vname[slot]) {
        if (!required)
            return 0;
        req_invalid(c->req, "body", canon, "Field required", "missing");
        return LY_EINVAL;
    }
    errno = 0;
    n = c->vlen[slot] ? strtoll(v, &end, 10) : 0;
    if (!c->vlen[slot] || errno || *end || n < lo || n > hi) {
        req_invalid(c->req, c->vwhere[slot], c->vname[slot],
                    arena_sprintf(&c->req->arena, "Must be an integer from %lld to %lld", lo, hi),
                    "value_error");
        return LY_EINVAL;
    }
    *out = n;
    return 0;
}

/* The chunk's fields into index, info (key, total, total_size), name and id; 422s recorded. */
static int ch_resolve(struct chunk_up *c)
{
    struct req *req = c->req;
    long long index, total, size;
    const char *key, *where = "body", *kname = "filename";
    int err = 0;

    for (int i = 0; i < CF_N; i++)
        if (c->too_long[i]) {
            req_invalid(req, c->vwhere[i], c->vname[i], "Longer than 1024 bytes", "value_error");
            err = LY_EINVAL;
        }
    if (err)
        return err;
    err = cf_int(c, CF_TOTAL, "total_chunks", 1, CHUNKED_MAX_CHUNKS, 1, &total);
    if (cf_int(c, CF_INDEX, "chunk_index", 0, CHUNKED_MAX_CHUNKS - 1, 1, &index))
        err = LY_EINVAL;
    if (!err && index >= total) {
        req_invalid(req, c->vwhere[CF_INDEX], c->vname[CF_INDEX],
                    arena_sprintf(&req->arena,
                                  "chunk_index counts from 0: with %lld chunks it is at most %lld",
                                  total, total - 1),
                    "value_error");
        err = LY_EINVAL;
    }
    if (cf_int(c, CF_SIZE, "total_size", 0, INT64_MAX, 0, &size))
        err = LY_EINVAL;
    if (c->vname[CF_KEY]) {
        key = c->val[CF_KEY];
        where = c->vwhere[CF_KEY];
        kname = c->vname[CF_KEY];
    } else {
        int s = c->vname[CF_PATH] && c->vlen[CF_PATH] ? CF_PATH : CF_NAME;
        const char *base = c->vname[s] && c->vlen[s] ? c->val[s] : c->part_filename;
        const char *folder =
            c->vname[CF_PREFIX] ? folder_of(req, c->val[CF_PREFIX], c->vlen[CF_PREFIX]) : "";

        if (c->vname[s] && c->vlen[s]) {
            where = c->vwhere[s];
            kname = c->vname[s];
        }
        if (!base || !*base) {
            req_invalid(req, "body", "filename",
                        "Field required: the file's name (filename), or its whole key (key)",
                        "missing");
            return LY_EINVAL;
        }
        key = arena_sprintf(&req->arena, "%s%s%s", folder, *folder ? "/" : "", base);
    }
    if (check_key(req, where, kname, key, strlen(key)))
        err = LY_EINVAL;
    if (c->vname[CF_UPLOAD_ID] &&
        (c->vlen[CF_UPLOAD_ID] < 1 || c->vlen[CF_UPLOAD_ID] > CHUNKED_NAME_MAX ||
         strlen(c->val[CF_UPLOAD_ID]) != c->vlen[CF_UPLOAD_ID] ||
         !bucket_prefix_ok(c->val[CF_UPLOAD_ID]))) {
        req_invalid(req, c->vwhere[CF_UPLOAD_ID], c->vname[CF_UPLOAD_ID],
                    "An upload id is 1 to 256 bytes of UTF-8, without NUL", "value_error");
        err = LY_EINVAL;
    }
    if (err)
        return err;
    c->index = (int)index;
    c->info.total = (int)total;
    c->info.total_size = size;
    /* Both at most 1,024 bytes: checked above. */
    memcpy(c->info.key, key, strlen(key) + 1);
    /* Without an id, the key names the upload: chunks of one file to one key join. */
    key = c->vname[CF_UPLOAD_ID] ? c->val[CF_UPLOAD_ID] : c->info.key;
    memcpy(c->name, key, strlen(key) + 1);
    chunked_id(c->name, c->id);
    return 0;
}

/* Opens (or begins) the upload the fields name; a disagreement is a 422 naming the field. */
static int ch_open(struct chunk_up *c)
{
    struct req *req = c->req;
    struct chunked_info have;
    int err = chunked_open(c->owner, c->id, &c->info, &have, &c->created);

    if (err == LY_ECONFLICT) {
        const char *what = have.total != c->info.total          ? "total_chunks"
                           : strcmp(have.key, c->info.key) != 0 ? "key"
                                                                : "total_size";
        req_invalid(req, "body", what,
                    arena_sprintf(&req->arena,
                                  "Upload '%s' was begun with total_chunks %d, key '%s' and "
                                  "total_size %lld; this chunk says total_chunks %d, key '%s' "
                                  "and total_size %lld (-1: not given)",
                                  c->name, have.total, have.key, (long long)have.total_size,
                                  c->info.total, c->info.key, (long long)c->info.total_size),
                    "value_error");
        return LY_EINVAL;
    }
    if (err)
        return err;
    /* A file bigger than the bucket's room is refused at its first chunk. */
    if (c->created && c->info.total_size > bucket_room(c->owner)) {
        chunked_abort(c->owner, c->id);
        c->why = "The bucket's quota is full";
        return LY_ETOOLARGE;
    }
    return 0;
}

static int ch_quota(struct chunk_up *c)
{
    /* The upload cannot be completed: its chunks are removed, so they take no room. */
    if (c->id[0])
        chunked_abort(c->owner, c->id);
    return req_fail(c->req, LY_ETOOLARGE,
                    "%s: each bucket holds at most %" PRId64 " bytes; upload '%s' was discarded",
                    c->why && strstr(c->why, "disk") ? c->why : "The bucket's quota is full",
                    bucket_quota(), c->name);
}

static int chunk_begin(struct req *req)
{
    struct chunk_up *c = arena_alloc(&req->arena, sizeof(*c));
    const char *ctype = req_header(req, "Content-Type");
    const char *clen = req_header(req, "Content-Length");
    uint64_t body_len = 0;
    int64_t expect = -1;
    int err;

    memset(c, 0, sizeof(*c));
    c->req = req;
    c->slot = -1;
    c->owner = owner_of(req);
    chunked_sweep_due(c->owner);
    if (req->query_each_fn)
        req->query_each_fn(req->conn, ch_query_one, c);
    if (clen && range_u64(clen, UINT64_MAX, &body_len) == 0) {
        if (body_len > (uint64_t)CHUNK_MAX + (1 << 20))
            return req_fail(req, LY_ETOOLARGE, "A chunk is at most 5 GiB (%lld bytes)",
                            (long long)CHUNK_MAX);
        expect = (int64_t)body_len;
    }
    req->sink.write = ch_write;
    req->sink.release = ch_release;
    req->sink.ctx = c;
    if (ctype && strncasecmp(ctype, "multipart/form-data", 19) == 0) {
        if (formdata_init(&c->form, ctype))
            return req_fail(req, LY_EBADREQ, "multipart/form-data without a usable boundary");
        c->multipart = 1;
        c->form.part_begin = ch_part_begin;
        c->form.part_data = ch_part_data;
        c->form.part_end = ch_part_end;
        c->form.ctx = c;
        return 0;
    }
    /* Raw bytes: every field is in the query, so the chunk can go in place at once. */
    if (!c->vname[CF_INDEX] && !c->vname[CF_TOTAL])
        return req_fail(req, LY_EBADREQ,
                        "Send the chunk as multipart/form-data (a file part with upload_id, "
                        "chunk_index, total_chunks and filename), or as raw bytes with those "
                        "in the query");
    c->nfiles = 1;
    err = ch_resolve(c);
    if (!err)
        err = ch_open(c);
    if (err == LY_ETOOLARGE)
        return ch_quota(c);
    if (err)
        return err;
    if (expect > bucket_room(c->owner)) {
        c->why = "The bucket's quota is full";
        return ch_quota(c);
    }
    err = bucket_put_begin_part(&c->put, c->owner, c->id, c->index + 1, expect, &c->why);
    if (err == LY_ETOOLARGE)
        return ch_quota(c);
    if (err)
        return err;
    c->put_open = 1;
    return 0;
}

static int chunk_end(struct req *req)
{
    struct chunk_up *c = req->sink.ctx;
    int err = req->sink_err, done = 0, received = 0;
    int64_t chunk_bytes, size = 0;
    const char *why = NULL;
    char date[40] = "";
    json_t *o;

    if (!c)
        return LY_EINTERNAL;
    if (err == LY_ETOOLARGE) {
        c->quota = 1;
        err = 0;
    }
    if (err == LY_EINVAL || (!err && c->multipart && formdata_finish(&c->form)))
        return req_fail(req, LY_EBADREQ, "Malformed multipart/form-data body");
    if (err)
        return c->why ? req_fail(req, err, "%s", c->why) : err;
    if (c->multipart) {
        err = ch_resolve(c);
        if (err)
            return err;
    }
    if (c->quota)
        return ch_quota(c);
    if (!c->nfiles) {
        req_invalid(req, "body", "file", "Field required: the chunk as a file part", "missing");
        return LY_EINVAL;
    }
    if (c->multipart) {
        err = ch_open(c);
        if (err == LY_ETOOLARGE)
            return ch_quota(c);
        if (err)
            return err;
    }
    chunk_bytes = c->put.written;
    c->put_open = 0;
    err = bucket_put_commit_part(&c->put, c->id, c->index + 1, NULL);
    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND,
                        "Upload '%s' was removed while this chunk arrived: send its chunks again",
                        c->name);
    if (err == LY_ETOOLARGE)
        return ch_quota(c);
    if (err)
        return err;
    err = chunked_finish(c->owner, c->id, &c->info, &done, &received, &size, &why);
    if (err == LY_EINVAL || err == LY_ECONFLICT)
        return req_fail(req, err, "%s", why);
    if (err == LY_ETOOLARGE) {
        c->why = why;
        return ch_quota(c);
    }
    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND,
                        "Upload '%s' was removed while this chunk arrived: send its chunks again",
                        c->name);
    if (err)
        return err;
    if (done) {
        int fd;
        struct stat st;

        if (bucket_open(c->owner, c->info.key, &fd, &st) == 0) {
            time_iso((int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000, date,
                     sizeof(date));
            close(fd);
        }
    }
    o = json_pack(
        "{s:s,s:s,s:i,s:i,s:i,s:b,s:I,s:I,s:s}", "upload_id", c->name, "key", c->info.key,
        "chunk_index", c->index, "total_chunks", c->info.total, "received", received, "complete",
        done, "chunk_size", (json_int_t)chunk_bytes, "size", (json_int_t)size, "message",
        done ? "File uploaded"
             : arena_sprintf(&req->arena, "Chunk %d of %d received", c->index + 1, c->info.total));
    if (!o)
        return req_fail(req, LY_EINVAL, "The upload id or key is not valid UTF-8");
    if (done && date[0])
        json_object_set_new(o, "last_modified", json_string(date));
    return req_reply(req, o);
}

static int api_storage_upload_chunk(struct req *req)
{
    return req->phase == REQ_BEGIN ? chunk_begin(req) : chunk_end(req);
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

    if (check_key(req, "path", "file_key", key, strlen(key)))
        return LY_EINVAL;
    err = bucket_open(owner_of(req), key, &fd, &st);
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
    bucket_list(owner_of(req), prefix, NULL, SIZE_MAX, rows, &more);
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

    if (check_key(req, "path", "file_key", key, strlen(key)))
        return LY_EINVAL;
    if (bucket_delete(owner_of(req), key))
        return req_fail(req, LY_ENOTFOUND, "File not found");
    return req_reply(req, json_pack("{s:s,s:s}", "message", "File deleted", "key", key));
}

static int api_storage_delete_folder(struct req *req)
{
    const char *prefix = req_param(req, "folder_prefix");
    int64_t n = 0;

    if (check_key(req, "path", "folder_prefix", prefix, strlen(prefix)))
        return LY_EINVAL;
    bucket_delete_prefix(owner_of(req), arena_sprintf(&req->arena, "%s/", prefix), &n);
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
    char ak[21] = "LY", sk[41], token[65], hash[65], bucket[48], exp[40];
    char *sealed;
    int64_t now = now_us(), expires = now + ttl * 1000000;
    int err;

    random_base62(ak + 2, 18);
    for (char *p = ak; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    random_base62(sk, 40);
    random_base62(token, 64);
    sha256_hex(token, strlen(token), hash);
    sealed = secrets_seal(arena_sprintf(&req->arena, "s3:%s", ak), sk, strlen(sk));
    s3cred_prune(now - 86400LL * 1000000);
    err = s3cred_insert(ak, req->caller.user_id, owner_of(req), sealed, hash, now, expires);
    free(sealed);
    if (err)
        return err;
    bucket_name(owner_of(req), bucket);
    time_iso(expires, exp, sizeof(exp));
    return req_reply(req, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "access_key", ak,
                                    "secret_key", sk, "session_token", token, "endpoint",
                                    base ? base
                                         : arena_sprintf(&req->arena, "http://%s",
                                                         host ? host : "127.0.0.1:8000"),
                                    "bucket_name", bucket, "region", "us-east-1", "expires_at", exp,
                                    "expiration", exp, "expires_in", (json_int_t)ttl));
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
    {"POST", "/storage/upload-chunk", api_storage_upload_chunk, R_STREAM_BODY | R_RAW_BODY,
     "Upload one chunk of a file (multipart: the chunk as a file part, and its fields; or raw "
     "bytes with the fields in the query). Chunks come in any order and may be sent again (the "
     "last wins); the object appears once every chunk is in. Uploads left without a chunk for "
     "24 hours are removed",
     chunk_body, chunk_resp},
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
