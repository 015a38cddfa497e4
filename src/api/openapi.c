/*
 * /openapi.json, generated from the mounted route tables: each route's path, method, summary,
 * path parameters, request body fields and response fields. Nothing here is written by hand,
 * so the document lists exactly what the router serves.
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(enum ftype t)
{
    switch (t) {
    case FT_STRING:
    case FT_DATETIME:
        return "string";
    case FT_INTEGER:
        return "integer";
    case FT_NUMBER:
        return "number";
    case FT_BOOLEAN:
        return "boolean";
    case FT_OBJECT:
        return "object";
    case FT_ARRAY:
        return "array";
    }
    return "string";
}

static json_t *schema_of(const struct field *fields, int with_required)
{
    json_t *props = json_object(), *req = json_array();
    json_t *schema = json_pack("{s:s,s:o}", "type", "object", "properties", props);

    for (const struct field *f = fields; f && f->name; f++) {
        json_t *p = json_pack("{s:s}", "type", type_name(f->type));

        if (f->type == FT_DATETIME)
            json_object_set_new(p, "format", json_string("date-time"));
        if (f->flags & FF_NULLABLE)
            json_object_set_new(p, "nullable", json_true());
        if (f->desc)
            json_object_set_new(p, "description", json_string(f->desc));
        if (with_required && f->max > 0) {
            const char *lo = f->type == FT_STRING ? "minLength" : "minimum";
            const char *hi = f->type == FT_STRING ? "maxLength" : "maximum";

            json_object_set_new(p, lo, json_integer(f->min));
            json_object_set_new(p, hi, json_integer(f->max));
        }
        json_object_set_new(props, f->name, p);
        if (with_required && (f->flags & FF_REQUIRED))
            json_array_append_new(req, json_string(f->name));
    }
    if (json_array_size(req))
        json_object_set_new(schema, "required", req);
    else
        json_decref(req);
    return schema;
}

static json_t *path_params(const char *path)
{
    json_t *params = json_array();

    for (const char *p = strchr(path, '{'); p; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');

        if (!end)
            break;
        size_t len = (size_t)(end - p - 1);

        /* "{file_key...}" captures the rest of the path; its name is "file_key". */
        if (len > 3 && strncmp(end - 3, "...", 3) == 0)
            len -= 3;
        json_array_append_new(params, json_pack("{s:s%,s:s,s:b,s:{s:s}}", "name", p + 1, len, "in",
                                                "path", "required", 1, "schema", "type", "string"));
    }
    return params;
}

static json_t *operation(const struct mount *m, const struct route *r)
{
    json_t *op = json_object(), *resp, *ok;

    json_object_set_new(op, "summary", json_string(r->summary ? r->summary : ""));
    json_object_set_new(op, "operationId", json_sprintf("%s %s%s", r->method, m->prefix, r->path));
    json_object_set_new(op, "parameters", path_params(r->path));
    if (!(r->flags & R_PUBLIC))
        json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearer"));
    if (r->body)
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b,s:{s:{s:o}}}", "required", 1, "content",
                                      "application/json", "schema", schema_of(r->body, 1)));
    ok = schema_of(r->response, 0);
    if (r->flags & R_RESP_ARRAY)
        ok = json_pack("{s:s,s:o}", "type", "array", "items", ok);
    resp = json_pack("{s:{s:s,s:{s:{s:o}}}}", "200", "description", "OK", "content",
                     "application/json", "schema", ok);
    json_object_set_new(resp, "default",
                        json_pack("{s:s}", "description",
                                  "Error: {\"detail\": str}, or 422 {\"detail\": [{loc, msg, "
                                  "type}]}"));
    json_object_set_new(op, "responses", resp);
    return op;
}

json_t *api_openapi(void)
{
    json_t *paths = json_object();
    json_t *doc =
        json_pack("{s:s,s:{s:s,s:s,s:s},s:o,s:{s:{s:{s:s,s:s}}}}", "openapi", "3.1.0", "info",
                  "title", "lyceumd", "version", api_settings.version, "description",
                  "Lyceum Cloud REST API v2 (external), as served by lyceumd", "paths", paths,
                  "components", "securitySchemes", "bearer", "type", "http", "scheme", "bearer");

    for (const struct mount *m = api_mounts; m->routes; m++) {
        for (const struct route *r = m->routes; r->method; r++) {
            char *full = NULL;
            char method[16];
            json_t *item;
            size_t i;

            if ((r->flags & R_UNDOCUMENTED) || asprintf(&full, "%s%s", m->prefix, r->path) < 0)
                continue;
            item = json_object_get(paths, full);
            if (!item) {
                item = json_object();
                json_object_set_new(paths, full, item);
            }
            for (i = 0; r->method[i] && i < sizeof(method) - 1; i++)
                method[i] = (char)(r->method[i] | 0x20);
            method[i] = '\0';
            json_object_set_new(item, method, operation(m, r));
            free(full);
        }
    }
    return doc;
}
