/*
 * Files and batches (API.md 12), in OpenAI's shapes: upload (multipart: file, purpose), get,
 * list, delete and content of files; create, get, list (after, limit) and cancel of batches
 * (a batch that already ended cannot be cancelled: 400, as OpenAI answers).
 * The runner is batch/batch.c; a file's bytes are DATA/files/<id>.
 */
#include "api/api.h"
#include "batch/control.h"
#include "batch/file.h"
#include "core/buf.h"
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

static json_t *file_obj(const struct file_row *f)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s}", "id", f->id, "object", "file", "bytes",
                     (json_int_t)f->bytes, "created_at", (json_int_t)(f->created_at / MICRO),
                     "filename", f->filename, "purpose", f->purpose, "status", "processed");
}

struct upload {
    int part; /* 1 file, 2 purpose, 0 other */
    char filename[256];
    char purpose[32];
    size_t plen;
    struct buf data; /* the file: at most the request's body */
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
        return buf_add(&u->data, buf, n);
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
    struct file_row fr;

    f.ctx = &u;
    buf_init(&u.data, req->body_len);
    if (formdata_init(&f, req_header(req, "Content-Type")) ||
        formdata_feed(&f, req->body ? req->body : "", req->body_len) || formdata_finish(&f)) {
        buf_free(&u.data);
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
        err = batch_file_write(req->caller->org_id, u.filename, u.purpose, u.data.p ? u.data.p : "",
                               u.data.len, id);
    buf_free(&u.data);
    if (err)
        return err;
    err = batch_file_get(req->caller->org_id, id, &fr);
    if (err)
        return err == LY_ENOTFOUND ? LY_EDB : err;
    err = req_reply(req, file_obj(&fr));
    file_row_release(&fr);
    return err;
}

/* The file of the path's file_id: 0, or the error (404 recorded). */
static int file_or_404(struct req *req, struct file_row *f)
{
    int err = batch_file_get(req->caller->org_id, req_param(req, "file_id"), f);

    return err == LY_ENOTFOUND ? req_fail(req, LY_ENOTFOUND, "File not found") : err;
}

static int api_files_get(struct req *req)
{
    struct file_row f;
    int err = file_or_404(req, &f);

    if (err)
        return err;
    err = req_reply(req, file_obj(&f));
    file_row_release(&f);
    return err;
}

static int api_files_list(struct req *req)
{
    struct file_rows rows;
    json_t *data = json_array();
    int err = batch_file_list(req->caller->org_id, req_query(req, "purpose"), &rows);

    for (size_t i = 0; i < rows.n; i++)
        json_array_append_new(data, file_obj(&rows.v[i]));
    file_rows_release(&rows);
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
    int n = batch_file_delete(req->caller->org_id, id);

    if (n < 0)
        return n;
    if (!n)
        return req_fail(req, LY_ENOTFOUND, "File not found");
    return req_reply(req, json_pack("{s:s,s:s,s:b}", "id", id, "object", "file", "deleted", 1));
}

static int api_files_content(struct req *req)
{
    struct file_row f;
    int err = file_or_404(req, &f), fd;
    char path[1200];
    struct stat st;

    if (err)
        return err;
    file_row_release(&f);
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

static json_t *ts_or_null(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* JSON text as a value (null when absent or not JSON). */
static json_t *parsed_or_null(const char *s)
{
    json_t *v = s ? json_loads(s, 0, NULL) : NULL;

    return v ? v : json_null();
}

static json_t *batch_obj(const struct batch_info *b)
{
    const struct batch_row *r = &b->row;
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "object", json_string("batch"));
    json_object_set_new(o, "endpoint", json_string(r->endpoint));
    json_object_set_new(o, "errors", parsed_or_null(r->errors));
    json_object_set_new(o, "input_file_id", json_string(r->input_file_id));
    json_object_set_new(o, "completion_window", json_string(r->completion_window));
    json_object_set_new(o, "status", json_string(r->status));
    json_object_set_new(o, "output_file_id", str_or_null(r->output_file_id));
    json_object_set_new(o, "error_file_id", str_or_null(r->error_file_id));
    json_object_set_new(o, "created_at", json_integer(r->created_at / MICRO));
    json_object_set_new(o, "in_progress_at", ts_or_null(r->in_progress_at));
    json_object_set_new(o, "expires_at", ts_or_null(r->expires_at));
    json_object_set_new(o, "finalizing_at", ts_or_null(r->finalizing_at));
    json_object_set_new(o, "completed_at", ts_or_null(r->completed_at));
    json_object_set_new(o, "failed_at", ts_or_null(r->failed_at));
    json_object_set_new(o, "expired_at", ts_or_null(r->expired_at));
    json_object_set_new(o, "cancelling_at", ts_or_null(r->cancelling_at));
    json_object_set_new(o, "cancelled_at", ts_or_null(r->cancelled_at));
    json_object_set_new(o, "request_counts",
                        json_pack("{s:I,s:I,s:I}", "total", (json_int_t)r->total, "completed",
                                  (json_int_t)b->completed, "failed", (json_int_t)b->failed));
    json_object_set_new(o, "metadata", parsed_or_null(r->metadata));
    json_object_set_new(o, "model", str_or_null(r->model));
    return o;
}

static int api_batches_create(struct req *req)
{
    const char *fid = body_str(req, "input_file_id"), *win = body_str(req, "completion_window");
    const char *ep = body_str(req, "endpoint");
    json_t *md = json_object_get(req->json, "metadata");
    struct batch_info b;
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
    err = batch_create(req->caller->org_id, ep ? ep : "/v1/chat/completions", fid,
                       body_str(req, "model"), win, json_is_object(md) ? md : NULL,
                       now_unix() + hours * 3600, id);
    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "File '%s' not found", fid);
    if (err)
        return err;
    err = batch_read(req->caller->org_id, id, &b);
    if (err)
        return err == LY_ENOTFOUND ? LY_EDB : err;
    err = req_reply(req, batch_obj(&b));
    batch_info_release(&b);
    return err;
}

static int api_batches_get(struct req *req)
{
    struct batch_info b;
    int err = batch_read(req->caller->org_id, req_param(req, "batch_id"), &b);

    if (err)
        return err == LY_ENOTFOUND ? req_fail(req, LY_ENOTFOUND, "Batch not found") : err;
    err = req_reply(req, batch_obj(&b));
    batch_info_release(&b);
    return err;
}

static int api_batches_list(struct req *req)
{
    long long limit;
    const char *after = req_query(req, "after");
    struct batch_infos list = {0};
    json_t *data;
    size_t n;
    int err = req_query_int(req, "limit", 20, 1, 100, &limit);

    if (!err)
        err = batch_read_page(req->caller->org_id, after, limit + 1, &list);
    if (err)
        return err;
    data = json_array();
    for (size_t i = 0; i < list.n && (long long)i < limit; i++)
        json_array_append_new(data, batch_obj(&list.v[i]));
    n = json_array_size(data);
    err = req_reply(req, json_pack("{s:s,s:O,s:s?,s:s?,s:b}", "object", "list", "data", data,
                                   "first_id", n ? list.v[0].row.id : NULL, "last_id",
                                   n ? list.v[n - 1].row.id : NULL, "has_more",
                                   (long long)list.n > limit));
    batch_infos_release(&list);
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
    struct batch_info b;
    int err, moved = batch_cancel(req->caller->org_id, id, &b);

    if (moved == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "Batch not found");
    if (moved < 0)
        return moved;
    /* Read after the move, so that a batch that ended meanwhile is refused too. */
    status = b.row.status;
    if (!moved && batch_finished(status)) {
        err = req_fail(req, LY_EBADREQ, "Cannot cancel a batch with status '%s': it has already %s",
                       status, strcmp(status, "cancelled") == 0 ? "been cancelled" : "ended");
        batch_info_release(&b);
        return err;
    }
    err = req_reply(req, batch_obj(&b));
    batch_info_release(&b);
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
