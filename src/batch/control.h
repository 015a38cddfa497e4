/*
 * What the Batch API does with batches (API.md 12; control.c), each use case one function:
 * create one (its input file must be the org's), read one or a page of the org's, cancel one.
 * A batch comes back as its row (a JSON object of its columns) with its request counts added
 * as "completed_count" and "failed_count"; the caller owns it. The runner (batch.h) is woken
 * when a batch is created or cancelled.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef LYCEUMD_BATCH_CONTROL_H
#define LYCEUMD_BATCH_CONTROL_H

#include <jansson.h>
#include <stdint.h>

/* Creates a batch of input file file_id (LY_ENOTFOUND when org has no such file) that
 * expires at expires_at (unix seconds); id receives its id (40 bytes). metadata may be NULL
 * (it is copied). */
int batch_create(const char *org_id, const char *endpoint, const char *file_id, const char *model,
                 const char *window, json_t *metadata, int64_t expires_at, char *id);
/* The batch, or NULL: *err 0 when org has no such batch, else the error. */
json_t *batch_read(const char *org_id, const char *id, int *err);
/* Up to limit of the org's batches, newest first, after the batch named after (NULL: from
 * the newest), appended to the array out. */
int batch_read_page(const char *org_id, const char *after, int64_t limit, json_t *out);
/* Moves a validating or in-progress batch to cancelling. Returns 1 when it moved it, 0 when
 * it was in another status, a negative LY_E* code on failure (LY_ENOTFOUND: org has no such
 * batch); *row receives the batch as it is afterwards (when 0 or 1 is returned). */
int batch_cancel(const char *org_id, const char *id, json_t **row);

#endif
