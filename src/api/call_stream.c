/*
 * An inference call as an HTTP response (see call_stream.h): the req_stream callbacks are
 * call.h's reader, and the reader's waker is the server's stream_wake() of the response.
 */
#include "api/call_stream.h"
#include "inference/call.h"

static struct call_waker waker(struct stream_waker *w)
{
    return (struct call_waker){stream_wake, w};
}

static long cs_read(void *ctx, char *buf, size_t max, struct stream_waker *w)
{
    return call_read(ctx, buf, max, waker(w));
}

static void cs_release(void *ctx)
{
    call_reader_free(ctx);
}

static int cs_status(void *ctx, struct stream_waker *w, struct req *req)
{
    int st = call_status(ctx, waker(w));

    if (st == 503)
        req_add_header(req, "Retry-After", "5"); /* as API.md 16.6 says */
    return st;
}

struct req_stream call_stream(struct call *c)
{
    struct call_reader *r = call_reader_new(c);

    return (struct req_stream){cs_read, cs_release, r, call_has_status(r) ? cs_status : NULL};
}
