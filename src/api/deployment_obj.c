/* A deployment's wire object (see deployment_obj.h). */
#include "api/deployment_obj.h"
#include "core/util.h"
#include "inference/inference.h"

#include <stdlib.h>

json_t *api_deployment_obj(const struct deployment_info *d)
{
    const struct dep_row *row = &d->row;
    json_t *spec = json_loads(row->spec, 0, NULL);
    json_t *o = json_object(), *reps = json_array(), *v;
    char ts[40], billed[32];
    const char *keys[] = {"gpu_type", "gpu_count", "gpu_vram_gb", "vllm_args", NULL};
    const char *tuning[] = {"target_rps", "target_latency_p95_ms", "stabilisation_window", NULL};

    json_object_set_new(o, "deployment_id", json_string(row->id));
    json_object_set_new(o, "hf_model_id", json_string(row->hf_model_id));
    json_object_set_new(o, "hardware_profile", json_string(row->profile));
    for (int i = 0; keys[i]; i++) {
        v = json_object_get(spec, keys[i]);
        if (v)
            json_object_set(o, keys[i], v);
    }
    json_object_set_new(o, "status", json_string(d->status));
    for (size_t i = 0; i < d->nreps; i++) {
        const struct replica_info *r = &d->reps[i];

        time_iso(r->started_us, ts, sizeof(ts));
        json_array_append_new(reps, json_pack("{s:s,s:s,s:s,s:i}", "replica_id", r->id, "status",
                                              r->status, "started_at", ts, "outstanding",
                                              r->outstanding));
    }
    json_object_set_new(o, "errors", row->errors ? json_string(row->errors) : json_null());
    json_object_set_new(o, "min_replicas", json_integer(row->min_replicas));
    json_object_set_new(o, "max_replicas", json_integer(row->max_replicas));
    json_object_set_new(o, "replicas", reps);
    for (int i = 0; tuning[i]; i++) {
        v = json_object_get(spec, tuning[i]);
        if (v)
            json_object_set(o, tuning[i], v);
    }
    time_iso(row->created_at, ts, sizeof(ts));
    json_object_set_new(o, "created_at", json_string(ts));
    if (row->stopped_at >= 0) {
        time_iso(row->stopped_at, ts, sizeof(ts));
        json_object_set_new(o, "stopped_at", json_string(ts));
    } else {
        json_object_set_new(o, "stopped_at", json_null());
    }
    micro_format(d->billed, billed, sizeof(billed));
    json_object_set_new(o, "billed", json_real(strtod(billed, NULL)));
    json_decref(spec);
    return o;
}
