/*
 * Chunked uploads (API.md 9): the dashboard sends files over 10 MB to /storage/upload-chunk,
 * a chunk a request. Each chunk is a part of a multipart upload of the caller's bucket
 * (storage/chunked.c, whose id derives from the client's upload id within that bucket), so
 * chunks may come in any order, again or in parallel, and the object appears only once every
 * chunk is in. A chunk in a form is streamed to a temporary file and renamed into place
 * whole; raw bytes with the fields in the query are written in place as they come.
 */
#include "api/api.h"
#include "api/storage_int.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "storage/bucket.h"
#include "storage/chunked.h"
#include "storage/formdata.h"
#include "storage/range.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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
        const char *folder = c->vname[CF_PREFIX]
                                 ? storage_folder_of(req, c->val[CF_PREFIX], c->vlen[CF_PREFIX])
                                 : "";

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
    if (storage_check_key(req, where, kname, key, strlen(key)))
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
    c->owner = storage_owner_of(req);
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

const struct route api_storage_chunk_routes[] = {
    {"POST", "/storage/upload-chunk", api_storage_upload_chunk, R_STREAM_BODY | R_RAW_BODY,
     "Upload one chunk of a file (multipart: the chunk as a file part, and its fields; or raw "
     "bytes with the fields in the query). Chunks come in any order and may be sent again (the "
     "last wins); the object appears once every chunk is in. Uploads left without a chunk for "
     "24 hours are removed",
     chunk_body, chunk_resp},
    {0},
};
