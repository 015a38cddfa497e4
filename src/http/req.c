/*
 * Request helpers and FastAPI-compatible body validation. Validation messages and types follow
 * pydantic v2's wording ("Field required" / "missing", "Input should be a valid string" /
 * "string_type", ...), because Lyceum is a FastAPI service and its clients print them.
 */
#include "http/req.h"
#include "core/err.h"
#include "core/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void req_init(struct req *req)
{
    memset(req, 0, sizeof(*req));
    arena_init(&req->arena);
    req->status = 200;
}

void req_release(struct req *req)
{
    /* A stream the server never took (or already released) goes here. */
    if (req->stream.release)
        req->stream.release(req->stream.ctx);
    req->stream.release = NULL;
    if (req->sink.release)
        req->sink.release(req->sink.ctx);
    req->sink.release = NULL;
    if (req->file_set)
        close(req->file_fd);
    req->file_set = 0;
    if (req->json)
        json_decref(req->json);
    if (req->resp)
        json_decref(req->resp);
    if (req->verrs)
        json_decref(req->verrs);
    arena_release(&req->arena);
}

const char *req_param(struct req *req, const char *name)
{
    for (int i = 0; i < req->match.nparams; i++)
        if (strcmp(req->match.names[i], name) == 0)
            return req->match.values[i];
    return NULL;
}

const char *req_header(struct req *req, const char *name)
{
    return req->header_fn ? req->header_fn(req->conn, name) : NULL;
}

const char *req_query(struct req *req, const char *name)
{
    return req->query_fn ? req->query_fn(req->conn, name) : NULL;
}

void req_header_each(struct req *req, void (*fn)(void *arg, const char *k, const char *v),
                     void *arg)
{
    if (req->header_each_fn)
        req->header_each_fn(req->conn, fn, arg);
}

int req_query_int(struct req *req, const char *name, long long def, long long min, long long max,
                  long long *out)
{
    const char *s = req_query(req, name);
    char *end;
    long long v;

    *out = def;
    if (!s)
        return 0;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (!*s || *end || errno) {
        req_invalid(req, "query", name,
                    "Input should be a valid integer, unable to parse string as an integer",
                    "int_parsing");
        return LY_EINVAL;
    }
    if (v < min) {
        req_invalid(
            req, "query", name,
            arena_sprintf(&req->arena, "Input should be greater than or equal to %lld", min),
            "greater_than_equal");
        return LY_EINVAL;
    }
    if (v > max) {
        req_invalid(req, "query", name,
                    arena_sprintf(&req->arena, "Input should be less than or equal to %lld", max),
                    "less_than_equal");
        return LY_EINVAL;
    }
    *out = v;
    return 0;
}

int req_reply_status(struct req *req, int status, json_t *obj)
{
    if (req->resp)
        json_decref(req->resp);
    req->status = status;
    req->resp = obj;
    return 0;
}

int req_reply(struct req *req, json_t *obj)
{
    return req_reply_status(req, 200, obj);
}

int req_reply_raw(struct req *req, int status, const char *ctype, const char *body, size_t n)
{
    req->status = status;
    req->content_type = ctype;
    req->raw = body;
    req->raw_len = n;
    return 0;
}

int req_reply_stream(struct req *req, const char *ctype, struct req_stream s)
{
    req->status = 200;
    req->content_type = ctype;
    req->stream = s;
    return 0;
}

int req_reply_file(struct req *req, int status, const char *ctype, int fd, uint64_t off, uint64_t n)
{
    if (req->file_set)
        close(req->file_fd);
    req->status = status;
    req->content_type = ctype;
    req->file_set = 1;
    req->file_fd = fd;
    req->file_off = off;
    req->file_len = n;
    return 0;
}

void req_add_header(struct req *req, const char *name, const char *value)
{
    if (req->nheaders >= REQ_MAX_HEADERS)
        return;
    req->hname[req->nheaders] = name;
    req->hvalue[req->nheaders] = arena_strdup(&req->arena, value);
    req->nheaders++;
}

int req_fail(struct req *req, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    req->detail = arena_vsprintf(&req->arena, fmt, ap);
    va_end(ap);
    return err;
}

void req_invalid(struct req *req, const char *where, const char *name, const char *msg,
                 const char *type)
{
    json_t *loc = json_pack("[s]", where);

    if (name)
        json_array_append_new(loc, json_string(name));
    if (!req->verrs)
        req->verrs = json_array();
    json_array_append_new(req->verrs,
                          json_pack("{s:o,s:s,s:s}", "loc", loc, "msg", msg, "type", type));
}

int req_check_valid(struct req *req)
{
    return req->verrs && json_array_size(req->verrs) ? LY_EINVAL : 0;
}

static const char *type_msg(enum ftype t, const char **type)
{
    switch (t) {
    case FT_STRING:
    case FT_DATETIME:
        *type = "string_type";
        return "Input should be a valid string";
    case FT_INTEGER:
        *type = "int_type";
        return "Input should be a valid integer";
    case FT_NUMBER:
        *type = "float_type";
        return "Input should be a valid number";
    case FT_BOOLEAN:
        *type = "bool_type";
        return "Input should be a valid boolean";
    case FT_OBJECT:
        *type = "dict_type";
        return "Input should be a valid dictionary";
    case FT_ARRAY:
        *type = "list_type";
        return "Input should be a valid list";
    }
    *type = "type_error";
    return "Input has the wrong type";
}

static int type_ok(enum ftype t, json_t *v)
{
    switch (t) {
    case FT_STRING:
    case FT_DATETIME:
        return json_is_string(v);
    case FT_INTEGER:
        return json_is_integer(v) ||
               (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
                fabs(json_real_value(v)) < 9e15);
    case FT_NUMBER:
        return json_is_number(v);
    case FT_BOOLEAN:
        return json_is_boolean(v);
    case FT_OBJECT:
        return json_is_object(v);
    case FT_ARRAY:
        return json_is_array(v);
    }
    return 0;
}

/* Characters (code points), as pydantic counts a string's length; jansson has checked that
 * the string is valid UTF-8, so counting the bytes that start a character is enough. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t chars = 0;

    for (size_t i = 0; i < n; i++)
        chars += ((unsigned char)s[i] & 0xc0) != 0x80;
    return chars;
}

static void check_field(struct req *req, const struct field *f, json_t *v)
{
    const char *type;
    struct arena *a = &req->arena;

    if (!type_ok(f->type, v)) {
        const char *msg = type_msg(f->type, &type);

        req_invalid(req, "body", f->name, msg, type);
        return;
    }
    if (f->type == FT_STRING && f->max > 0) {
        size_t n = utf8_chars(json_string_value(v), json_string_length(v));

        if ((long long)n < f->min)
            req_invalid(req, "body", f->name,
                        arena_sprintf(a, "String should have at least %lld character%s", f->min,
                                      f->min == 1 ? "" : "s"),
                        "string_too_short");
        else if ((long long)n > f->max)
            req_invalid(req, "body", f->name,
                        arena_sprintf(a, "String should have at most %lld characters", f->max),
                        "string_too_long");
    }
    if (f->type == FT_INTEGER && f->max > 0) {
        long long n = json_is_integer(v) ? json_integer_value(v) : (long long)json_real_value(v);

        if (n < f->min)
            req_invalid(req, "body", f->name,
                        arena_sprintf(a, "Input should be greater than or equal to %lld", f->min),
                        "greater_than_equal");
        else if (n > f->max)
            req_invalid(req, "body", f->name,
                        arena_sprintf(a, "Input should be less than or equal to %lld", f->max),
                        "less_than_equal");
    }
    if (f->type == FT_DATETIME) {
        int64_t t;

        if (time_parse_iso(json_string_value(v), &t))
            req_invalid(req, "body", f->name, "Input should be a valid datetime",
                        "datetime_from_date_parsing");
    }
}

int req_parse_body(struct req *req, const struct field *fields)
{
    json_error_t jerr;
    int required = 0;

    for (const struct field *f = fields; f->name; f++)
        required |= (f->flags & FF_REQUIRED) != 0;
    if (req->body_len) {
        /* Any JSON value decodes: a string or number body is valid JSON of the wrong type. */
        req->json =
            json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!req->json) {
            json_t *loc = json_pack("[s,i]", "body", (json_int_t)jerr.position);
            json_t *e = json_pack("{s:O,s:s,s:s}", "loc", loc, "msg",
                                  arena_sprintf(&req->arena, "JSON decode error: %s", jerr.text),
                                  "type", "json_invalid");

            if (!e) /* jansson quoted bytes of the body that are not UTF-8 */
                e = json_pack("{s:O,s:s,s:s}", "loc", loc, "msg",
                              arena_sprintf(&req->arena,
                                            "JSON decode error at line %d, column %d: the "
                                            "body is not valid UTF-8 JSON",
                                            jerr.line, jerr.column),
                              "type", "json_invalid");
            json_decref(loc);
            if (!req->verrs)
                req->verrs = json_array();
            json_array_append_new(req->verrs, e);
            return LY_EINVAL;
        }
        if (json_is_null(req->json)) {
            /* FastAPI reads a null body as no body. */
            json_decref(req->json);
            req->json = NULL;
        }
    }
    if (!req->json) {
        if (!required) {
            req->json = json_object();
            return 0;
        }
        req_invalid(req, "body", NULL, "Field required", "missing");
        return LY_EINVAL;
    }
    if (!json_is_object(req->json)) {
        req_invalid(req, "body", NULL,
                    "Input should be a valid dictionary or object to extract fields from",
                    "model_attributes_type");
        return LY_EINVAL;
    }
    for (const struct field *f = fields; f->name; f++) {
        json_t *v = json_object_get(req->json, f->name);

        if (!v || (json_is_null(v) && (f->flags & FF_NULLABLE))) {
            if (f->flags & FF_REQUIRED)
                req_invalid(req, "body", f->name, "Field required", "missing");
            continue;
        }
        check_field(req, f, v);
    }
    return req_check_valid(req);
}

static json_t *body_get(struct req *req, const char *name)
{
    json_t *v = req->json ? json_object_get(req->json, name) : NULL;

    return v && !json_is_null(v) ? v : NULL;
}

const char *body_str(struct req *req, const char *name)
{
    return json_string_value(body_get(req, name));
}

long long body_int(struct req *req, const char *name, long long def)
{
    json_t *v = body_get(req, name);

    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return def;
}

int body_bool(struct req *req, const char *name, int def)
{
    json_t *v = body_get(req, name);

    return json_is_boolean(v) ? json_is_true(v) : def;
}

int body_has(struct req *req, const char *name)
{
    return body_get(req, name) != NULL;
}

void req_set_error(struct req *req, int err)
{
    req->status = err_http_status(err);
    if (req->file_set)
        close(req->file_fd);
    req->file_set = 0;
    req->raw = NULL;
    req->content_type = NULL;
    if (req->resp)
        json_decref(req->resp);
    if (err == LY_EINVAL && req->verrs) {
        req->resp = json_pack("{s:O}", "detail", req->verrs);
        return;
    }
    req->resp = json_pack("{s:s}", "detail", req->detail ? req->detail : err_str(err));
    if (!req->resp) /* the detail quoted client bytes that are not UTF-8 */
        req->resp = json_pack("{s:s}", "detail", err_str(err));
}
