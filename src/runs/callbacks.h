/*
 * Completion callbacks (API.md 4.6, 16.3): when a run ends, lyceumd POSTs its result to each
 * of its user_callback_urls, signed with the org's webhook secret, retrying with backoff up to
 * five tries. The queue lives in the store, so a restart loses none; one sender thread
 * delivers them.
 */
#ifndef LYCEUMD_RUNS_CALLBACKS_H
#define LYCEUMD_RUNS_CALLBACKS_H

#include "store/runs.h"

#include <jansson.h>

#define CALLBACK_TRIES 5

/*
 * Where callbacks may go (see callbacks.c): public addresses, and those that list (the
 * config's callback_allow: CIDRs such as "127.0.0.1/32", or host names) allows. Set once at
 * start-up, before the threads; list (borrowed) must outlive them. 0 or LY_EINVAL.
 */
int callbacks_allow(const json_t *list);
/* For submission: 0 when url may be a callback as far as can be told now, else LY_EINVAL
 * with the reason in why (a literal address that is not public and not allowed). Names are
 * judged by the address they resolve to, when the callback is sent. Thread-safe. */
int callbacks_check_url(const char *url, char *why, size_t n);

/* The callback body of a finished run's row (the caller owns it). */
json_t *callbacks_body(const struct run_row *row);
int callbacks_start(void);
void callbacks_wake(void);
void callbacks_stop(void);
/* "sha256=<hex>": the HMAC-SHA256 of body under secret. out needs 72 bytes. */
void callbacks_sign(const char *secret, const char *body, size_t n, char *out);

#endif
