/*
 * Files and batches (API.md 12), in OpenAI's shapes: upload (multipart: file, purpose), get,
 * list, delete and content of files; create, get, list (after, limit) and cancel of batches
 * (a batch that already ended cannot be cancelled: 400, as OpenAI answers).
 * The runner is batch/batch.c; a file's bytes are DATA/files/<id>.
 */
#include "api/api.h"
#include "batch/control.h"
#include "batch/file.h"
#include "core/err.h"
#include "core/util.h"
#include "storage/formdata.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- files ---- */

static json_t *file_obj(json_t *row)
{
    return json_pack("{s:O,s:s,s:O,s:I,s:O,s:O,s:s}", "id", json_object_get(row, "id"), "object",
                     "file", "bytes", json_object_get(row, "bytes"), "created_at",
                     (json_int_t)(json_integer_value(json_object_get(row, "created_at")) / MICRO),
                     "filename", json_object_get(row, "filename"), "purpose",
                     json_object_get(row, "purpose"), "status", "processed");
}

struct upload {
    int part; /* 1 file, 2 purpose, 0 other */
    char filename[256];
    char purpose[32];
    size_t plen;
    char *data;
    size_t len, cap;
};

static int up_begin(void *ctx, const char *name, const char *filename)
{
    struct upload *u = ctx;

    u->part = strcmp(name, "file") == 0 ? 1 : strcmp(name, "purpose") == 0 ? 2 : 0;
    if (u->part == 1)
        snprintf(u->filename, sizeof(u->filename), "%s", filename ? filename : "upload.jsonl");
    return 0;
}

static int up_data(void *ctx, const char *buf, size_t n)
{
    struct upload *u = ctx;

    if (u->part == 2) {
        if (u->plen + n >= sizeof(u->purpose))
            return LY_EINVAL;
        memcpy(u->purpose + u->plen, buf, n);
        u->plen += n;
        u->purpose[u->plen] = 0;
    } else if (u->part == 1) {
        if (u->len + n > u->cap) {
            u->cap = (u->len + n) * 2;
            u->data = realloc(u->data, u->cap);
            if (!u->data)
                abort();
        }
        memcpy(u->data + u->len, buf, n);
        u->len += n;
    }
    return 0;
}

static int up_end(void *ctx)
{
    ((struct upload *)ctx)->part = 0;
    return 0;
}

static int api_files_upload(struct req *req)
{
    struct upload u = {0};
    struct formdata f = {.part_begin = up_begin, .part_data = up_data, .part_end = up_end};
    char id[40];
    int err;
    json_t *row;

    f.ctx = &u;
    if (formdata_init(&f, req_header(req, "Content-Type")) ||
        formdata_feed(&f, req->body ? req->body : "", req->body_len) || formdata_finish(&f)) {
        free(u.data);
        return req_fail(req, LY_EBADREQ,
                        "The body must be multipart/form-data with 'file' "
                        "and 'purpose'");
    }
    if (!u.filename[0])
        req_invalid(req, "body", "file", "Field required", "missing");
    if (!u.purpose[0])
        req_invalid(req, "body", "purpose", "Field required", "missing");
    else if (strcmp(u.purpose, "batch") != 0 && strcmp(u.purpose, "batch_output") != 0 &&
             strcmp(u.purpose, "batch_errors") != 0)
        req_invalid(req, "body", "purpose",
                    "Input should be 'batch', 'batch_output' or "
                    "'batch_errors'",
                    "enum");
    err = req_check_valid(req);
    if (!err)
        err = batch_file_write(req->caller.org_id, u.filename, u.purpose, u.data ? u.data : "",
                               u.len, id);
    free(u.data);
    if (err)
        return err;
    row = batch_file_get(req->caller.org_id, id, &err);
    if (!row)
        return err ? err : LY_EDB;
    err = req_reply(req, file_obj(row));
    json_decref(row);
    return err;
}

static json_t *file_or_404(struct req *req, int *err)
{
    json_t *row = batch_file_get(req->caller.org_id, req_param(req, "file_id"), err);

    if (!row && !*err)
        *err = req_fail(req, LY_ENOTFOUND, "File not found");
    return row;
}

static int api_files_get(struct req *req)
{
    int err = 0;
    json_t *row = file_or_404(req, &err);

    if (!row)
        return err;
    err = req_reply(req, file_obj(row));
    json_decref(row);
    return err;
}

static int api_files_list(struct req *req)
{
    json_t *rows = json_array(), *data = json_array(), *r;
    size_t i;
    int err = batch_file_list(req->caller.org_id, req_query(req, "purpose"), rows);

    json_array_foreach(rows, i, r) json_array_append_new(data, file_obj(r));
    json_decref(rows);
    if (err) {
        json_decref(data);
        return err;
    }
    return req_reply(req,
                     json_pack("{s:s,s:o,s:b}", "object", "list", "data", data, "has_more", 0));
}

static int api_files_delete(struct req *req)
{
    const char *id = req_param(req, "file_id");
    int n = batch_file_delete(req->caller.org_id, id);

    if (n < 0)
        return n;
    if (!n)
        return req_fail(req, LY_ENOTFOUND, "File not found");
    return req_reply(req, json_pack("{s:s,s:s,s:b}", "id", id, "object", "file", "deleted", 1));
}

static int api_files_content(struct req *req)
{
    int err = 0, fd;
    json_t *row = file_or_404(req, &err);
    char path[1200];
    struct stat st;

    if (!row)
        return err;
    json_decref(row);
    batch_file_path(req_param(req, "file_id"), path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st)) {
        if (fd >= 0)
            close(fd);
        return req_fail(req, LY_EIO, "The file's content is missing");
    }
    return req_reply_file(req, 200, "application/jsonl", fd, 0, (uint64_t)st.st_size);
}

/* ---- batches ---- */

static json_t *ts_or_null(json_t *row, const char *k)
{
    json_t *v = json_object_get(row, k);

    return json_is_integer(v) ? json_incref(v) : json_null();
}

static json_t *batch_obj(json_t *row)
{
    static const char *const stamps[] = {"in_progress_at", "expires_at",  "finalizing_at",
                                         "completed_at",   "failed_at",   "expired_at",
                                         "cancelling_at",  "cancelled_at"};
    json_t *o = json_object(), *errs = NULL, *md = NULL;
    const char *s;

    json_object_set(o, "id", json_object_get(row, "id"));
    json_object_set_new(o, "object", json_string("batch"));
    json_object_set(o, "endpoint", json_object_get(row, "endpoint"));
    s = json_string_value(json_object_get(row, "errors"));
    if (s)
        errs = json_loads(s, 0, NULL);
    json_object_set_new(o, "errors", errs ? errs : json_null());
    json_object_set(o, "input_file_id", json_object_get(row, "input_file_id"));
    json_object_set(o, "completion_window", json_object_get(row, "completion_window"));
    json_object_set(o, "status", json_object_get(row, "status"));
    json_object_set(o, "output_file_id", json_object_get(row, "output_file_id"));
    json_object_set(o, "error_file_id", json_object_get(row, "error_file_id"));
    json_object_set_new(
        o, "created_at",
        json_integer(json_integer_value(json_object_get(row, "created_at")) / MICRO));
    for (size_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); i++)
        json_object_set_new(o, stamps[i], ts_or_null(row, stamps[i]));
    json_object_set_new(o, "request_counts",
                        json_pack("{s:O,s:O,s:O}", "total", json_object_get(row, "total"),
                                  "completed", json_object_get(row, "completed_count"), "failed",
                                  json_object_get(row, "failed_count")));
    s = json_string_value(json_object_get(row, "metadata"));
    if (s)
        md = json_loads(s, 0, NULL);
    json_object_set_new(o, "metadata", md ? md : json_null());
    json_object_set(o, "model", json_object_get(row, "model"));
    return o;
}

static int api_batches_create(struct req *req)
{
    const char *fid = body_str(req, "input_file_id"), *win = body_str(req, "completion_window");
    const char *ep = body_str(req, "endpoint");
    json_t *md = json_object_get(req->json, "metadata"), *row;
    char id[40], *end = NULL;
    long hours = win ? strtol(win, &end, 10) : 0;
    int err = 0;

    if (!end || strcmp(end, "h") != 0 || hours < 1 || hours > 24 * 30)
        req_invalid(req, "body", "completion_window", "Input should be like '24h'", "enum");
    if (ep && strcmp(ep, "/v1/chat/completions") != 0 && strcmp(ep, "/v1/completions") != 0 &&
        strcmp(ep, "/chat/completions") != 0 && strcmp(ep, "/completions") != 0)
        req_invalid(req, "body", "endpoint",
                    "Input should be '/v1/chat/completions' or "
                    "'/v1/completions'",
                    "enum");
    err = req_check_valid(req);
    if (err)
        return err;
    err = batch_create(req->caller.org_id, ep ? ep : "/v1/chat/completions", fid,
                       body_str(req, "model"), win, json_is_object(md) ? md : NULL,
                       now_unix() + hours * 3600, id);
    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "File '%s' not found", fid);
    if (err)
        return err;
    row = batch_read(req->caller.org_id, id, &err);
    if (!row)
        return err ? err : LY_EDB;
    err = req_reply(req, batch_obj(row));
    json_decref(row);
    return err;
}

static int api_batches_get(struct req *req)
{
    int err = 0;
    json_t *row = batch_read(req->caller.org_id, req_param(req, "batch_id"), &err);

    if (!row)
        return err ? err : req_fail(req, LY_ENOTFOUND, "Batch not found");
    err = req_reply(req, batch_obj(row));
    json_decref(row);
    return err;
}

static int api_batches_list(struct req *req)
{
    long long limit;
    const char *after = req_query(req, "after");
    json_t *rows = json_array(), *data = json_array(), *r;
    size_t i;
    int err = req_query_int(req, "limit", 20, 1, 100, &limit);

    if (!err)
        err = batch_read_page(req->caller.org_id, after, limit + 1, rows);
    if (err) {
        json_decref(rows);
        json_decref(data);
        return err;
    }
    json_array_foreach(rows, i, r) if ((long long)i < limit)
        json_array_append_new(data, batch_obj(r));
    err = req_reply(
        req, json_pack("{s:s,s:O,s:O,s:O,s:b}", "object", "list", "data", data, "first_id",
                       json_object_get(json_array_get(data, 0), "id")
                           ? json_object_get(json_array_get(data, 0), "id")
                           : json_null(),
                       "last_id",
                       json_object_get(json_array_get(data, json_array_size(data) - 1), "id")
                           ? json_object_get(json_array_get(data, json_array_size(data) - 1), "id")
                           : json_null(),
                       "has_more", (long long)json_array_size(rows) > limit));
    json_decref(rows);
    json_decref(data);
    return err;
}

/* OpenAI's terminal statuses: such a batch cannot be cancelled (400, as OpenAI answers). */
static int batch_finished(const char *status)
{
    static const char *const done[] = {"completed", "failed", "expired", "cancelled", NULL};

    for (int i = 0; status && done[i]; i++)
        if (strcmp(status, done[i]) == 0)
            return 1;
    return 0;
}

/* Cancels a validating or in-progress batch (cancelling: lines in flight end, no other
 * starts); a cancelling or finalizing one is answered as it is. */
static int api_batches_cancel(struct req *req)
{
    const char *id = req_param(req, "batch_id"), *status;
    json_t *row = NULL;
    int err = 0, moved = batch_cancel(req->caller.org_id, id, &row);

    if (moved == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "Batch not found");
    if (moved < 0)
        return moved;
    /* Read after the move, so that a batch that ended meanwhile is refused too. */
    status = json_string_value(json_object_get(row, "status"));
    if (!moved && batch_finished(status)) {
        err = req_fail(req, LY_EBADREQ, "Cannot cancel a batch with status '%s': it has already %s",
                       status, strcmp(status, "cancelled") == 0 ? "been cancelled" : "ended");
        json_decref(row);
        return err;
    }
    err = req_reply(req, batch_obj(row));
    json_decref(row);
    return err;
}

static const struct field batch_body[] = {
    {"input_file_id", FT_STRING, FF_REQUIRED, 1, 100, "a file uploaded with purpose batch"},
    {"completion_window", FT_STRING, FF_REQUIRED, 1, 8, "e.g. 24h"},
    {"endpoint", FT_STRING, FF_NULLABLE, 0, 64,
     "/v1/chat/completions (default) or "
     "/v1/completions"},
    {"model", FT_STRING, FF_NULLABLE, 1, 200, "overrides every line's model"},
    {"metadata", FT_OBJECT, FF_NULLABLE, 0, 0, NULL},
    {0},
};

const struct route api_batches_routes[] = {
    {"POST", "/files", api_files_upload, R_RAW_BODY,
     "Upload a file (multipart: file, purpose batch)", NULL, NULL},
    {"GET", "/files", api_files_list, 0, "The org's files (query: purpose)", NULL, NULL},
    {"GET", "/files/{file_id}", api_files_get, 0, "A file object", NULL, NULL},
    {"DELETE", "/files/{file_id}", api_files_delete, 0, "Delete a file", NULL, NULL},
    {"GET", "/files/{file_id}/content", api_files_content, 0, "A file's content (JSONL)", NULL,
     NULL},
    {"POST", "/batches", api_batches_create, 0, "Create a batch from an uploaded file", batch_body,
     NULL},
    {"GET", "/batches", api_batches_list, 0, "The org's batches, newest first (after, limit)", NULL,
     NULL},
    {"GET", "/batches/{batch_id}", api_batches_get, 0, "A batch", NULL, NULL},
    {"POST", "/batches/{batch_id}/cancel", api_batches_cancel, 0, "Cancel a batch", NULL, NULL},
    {0},
};
