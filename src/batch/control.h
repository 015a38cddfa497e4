/*
 * What the Batch API does with batches (API.md 12; control.c), each use case one function:
 * create one (its input file must be the org's), read one or a page of the org's, cancel one.
 * A batch comes back as its row with its request counts; the runner (batch.h) is woken when a
 * batch is created or cancelled.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef LYCEUMD_BATCH_CONTROL_H
#define LYCEUMD_BATCH_CONTROL_H

/* The row type (struct batch_row) is the store's. */
#include "store/inference.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A batch as the API shows it: its row and how many of its lines completed and failed. */
struct batch_info {
    struct batch_row row;
    int64_t completed, failed;
};
struct batch_infos {
    struct batch_info *v;
    size_t n;
};
void batch_info_release(struct batch_info *b);
void batch_infos_release(struct batch_infos *list);

/* Creates a batch of input file file_id (LY_ENOTFOUND when org has no such file) that
 * expires at expires_at (unix seconds); id receives its id (40 bytes). metadata (an object,
 * or NULL) is kept as it is. */
int batch_create(const char *org_id, const char *endpoint, const char *file_id, const char *model,
                 const char *window, json_t *metadata, int64_t expires_at, char *id);
/* 0, LY_ENOTFOUND when org has no such batch, or LY_EDB. */
int batch_read(const char *org_id, const char *id, struct batch_info *out);
/* Up to limit of the org's batches, newest first, after the batch named after (NULL: from
 * the newest). */
int batch_read_page(const char *org_id, const char *after, int64_t limit, struct batch_infos *out);
/* Moves a validating or in-progress batch to cancelling. Returns 1 when it moved it, 0 when
 * it was in another status, a negative LY_E* code on failure (LY_ENOTFOUND: org has no such
 * batch); *out receives the batch as it is afterwards (when 0 or 1 is returned). */
int batch_cancel(const char *org_id, const char *id, struct batch_info *out);

#endif
