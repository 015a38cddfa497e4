/*
 * Upstream transfers (upstream.c): requests to model servers, run by libcurl's multi
 * interface in an event loop (core/loop.h). upstream_here() is the calling thread's loop's
 * own (that of an HTTP thread, in a handler), NULL on a thread without a loop (then the
 * transfers run on upstream.c's own I/O thread); capture it where the request arrives.
 *
 * Thread-safety: upstream_here() on the thread whose loop it wants; the rest from any thread.
 */
#ifndef LYCEUMD_INFERENCE_UPSTREAM_H
#define LYCEUMD_INFERENCE_UPSTREAM_H

#include <curl/curl.h>

struct uloop;
struct uloop *upstream_here(void);
/* Runs h's transfer on u (NULL: the I/O thread), whose thread then runs its callbacks, and
 * returns how it ended, as curl_easy_perform() would. Blocks the calling thread. */
CURLcode upstream_perform(struct uloop *u, CURL *h);
/* After the loops that transfers run on stopped (the HTTP server's): transfers still running,
 * and later ones, end aborted. */
void upstream_shutdown(void);

#endif
