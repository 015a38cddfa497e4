/* Routes about the server itself: health and the OpenAPI document. */
#include "api/api.h"

static int api_meta_health(struct req *req)
{
    return req_reply(req, json_pack("{s:s}", "status", "ok"));
}

static int api_meta_openapi(struct req *req)
{
    return req_reply(req, api_openapi());
}

static const struct field health_resp[] = {{"status", FT_STRING, 0, 0, 0, "\"ok\""}, {0}};

const struct route api_meta_routes[] = {
    {"GET", "/health", api_meta_health, R_PUBLIC, "Liveness check", NULL, health_resp},
    {"GET", "/openapi.json", api_meta_openapi, R_PUBLIC, "This document", NULL, NULL},
    {0},
};
