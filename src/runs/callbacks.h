/*
 * Completion callbacks (API.md 4.6, 16.3): when a run ends, lyceumd POSTs its result to each
 * of its user_callback_urls, signed with the org's webhook secret, retrying with backoff up to
 * five tries. The queue lives in the store, so a restart loses none; one sender thread
 * delivers them.
 */
#ifndef LYCEUMD_RUNS_CALLBACKS_H
#define LYCEUMD_RUNS_CALLBACKS_H

#include <jansson.h>

#define CALLBACK_TRIES 5

/* The callback body of a finished run's row (the caller owns it). */
json_t *callbacks_body(json_t *row);
int callbacks_start(void);
void callbacks_wake(void);
void callbacks_stop(void);
/* "sha256=<hex>": the HMAC-SHA256 of body under secret. out needs 72 bytes. */
void callbacks_sign(const char *secret, const char *body, size_t n, char *out);

#endif
