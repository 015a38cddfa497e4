/*
 * The catalogue and the caller's access to it (API.md 2, 7.1): machine types with prices,
 * the user's quotas (a boolean per profile) and the profiles available to them.
 */
#include "api/api.h"
#include "core/err.h"
#include "runs/profiles.h"
#include "runs/query.h"

#include <string.h>

static int api_machine_types(struct req *req)
{
    json_t *list = json_array();

    for (int i = 0; i < profiles_count(); i++)
        json_array_append_new(list, profile_json(profile_at(i)));
    return req_reply(req, json_pack("{s:o,s:i}", "machine_types", list, "count", profiles_count()));
}

/* The profiles the caller may use: their quota list (none: every profile). */
struct allowed {
    char **names;
    int n;
};

static int allowed(struct req *req, struct allowed *out)
{
    out->n = runq_quota(&req->arena, req->caller->user_id, &out->names);
    return out->n < 0 ? out->n : 0;
}

static int listed(const struct allowed *rows, const char *name)
{
    if (!rows->n)
        return 1;
    for (int i = 0; i < rows->n; i++)
        if (strcmp(rows->names[i], name) == 0)
            return 1;
    return 0;
}

static int api_user_quotas(struct req *req)
{
    struct allowed rows;
    json_t *o;
    int err = allowed(req, &rows);

    if (err)
        return err;
    o = json_object();
    for (int i = 0; i < profiles_count(); i++) {
        struct profile *p = profile_at(i);

        json_object_set_new(o, p->name, json_boolean(listed(&rows, p->name)));
    }
    return req_reply(req, o);
}

static int api_user_available_hardware(struct req *req)
{
    struct allowed rows;
    json_t *list;
    int err = allowed(req, &rows);

    if (err)
        return err;
    list = json_array();
    for (int i = 0; i < profiles_count(); i++) {
        struct profile *p = profile_at(i);

        if (p->max_concurrent > 0 && listed(&rows, p->name))
            json_array_append_new(list, json_string(p->name));
    }
    return req_reply(req, json_pack("{s:o}", "available_hardware_profiles", list));
}

static const struct field types_resp[] = {
    {"machine_types", FT_ARRAY, 0, 0, 0,
     "{hardware_profile, price_per_hour, gpu_model, gpu_count, vcpus, memory_gb, available, "
     "max_concurrent, backend}"},
    {"count", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};
static const struct field available_resp[] = {
    {"available_hardware_profiles", FT_ARRAY, 0, 0, 0, "profile names the caller may run on"},
    {0},
};

const struct route api_machines_routes[] = {
    {"GET", "/machine-types", api_machine_types, 0, "Hardware profiles and prices", NULL,
     types_resp},
    {"GET", "/compute/machine-types", api_machine_types, 0, "Legacy: machine types", NULL,
     types_resp},
    {"GET", "/user/quotas", api_user_quotas, 0, "A boolean per hardware profile", NULL, NULL},
    {"GET", "/user/quotas/available-hardware", api_user_available_hardware, 0,
     "The profiles the caller may run on now", NULL, available_resp},
    {0},
};
