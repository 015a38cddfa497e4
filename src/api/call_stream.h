/*
 * An inference call as an HTTP response (call_stream.c): the call's output read as a
 * req_stream, whose waker (inference/call.h's call_waker) resumes the suspended response.
 * Used by api/openai.c, api/inference.c and api/models.c.
 */
#ifndef LYCEUMD_API_CALL_STREAM_H
#define LYCEUMD_API_CALL_STREAM_H

#include "http/req.h"

struct call;

/* A streamed response reading c from its beginning (takes a reference on c). A plain call
 * (raw, not streamed) has a status() that waits for the model server's HTTP status, and adds
 * Retry-After: 5 to a 503 (as API.md 16.6 says). */
struct req_stream call_stream(struct call *c);

#endif
