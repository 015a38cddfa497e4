/*
 * A deployment's wire object (API.md 16.6; deployment_obj.c), shared by api/inference.c
 * (GET /inference/...) and api/models.c (the catalogue reads it).
 */
#ifndef LYCEUMD_API_DEPLOYMENT_OBJ_H
#define LYCEUMD_API_DEPLOYMENT_OBJ_H

#include <jansson.h>

struct deployment_info;

/* {deployment_id, hf_model_id, hardware_profile, gpu_type, gpu_count, gpu_vram_gb,
 * vllm_args (those four as the create body had them), status, errors, min_replicas,
 * max_replicas, replicas: [{replica_id, status, started_at, outstanding}], target_rps,
 * target_latency_p95_ms, stabilisation_window (as created), created_at, stopped_at, billed}.
 * The caller owns it. */
json_t *api_deployment_obj(const struct deployment_info *d);

#endif
