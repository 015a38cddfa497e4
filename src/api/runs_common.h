/* What the runs endpoints (runs.c, runs_view.c) share. */
#ifndef LYCEUMD_API_RUNS_COMMON_H
#define LYCEUMD_API_RUNS_COMMON_H

#include "http/req.h"

#include <jansson.h>

/* The run's capability URL for its output stream: the configured public URL or the request's
 * Host, then API_PREFIX/execution/streaming/{id}?token=... */
json_t *run_streaming_url(struct req *req, const char *id, const char *token);

#endif
