/*
 * The store of inference (API.md 11, 12): deployments and their replicas, token usage, files
 * and batches with their lines. Every query that reads a tenant's data is scoped by org_id.
 * Rows come back as JSON objects of their columns; the caller owns them. Thread-safe (one
 * connection per thread, store/db.h).
 */
#ifndef LYCEUMD_STORE_INFERENCE_H
#define LYCEUMD_STORE_INFERENCE_H

#include <jansson.h>
#include <stdint.h>

/* Deployments. hf_token_sealed (secrets_seal, or NULL) is read back only by dep_live(). */
int dep_insert(const char *id, const char *org_id, const char *user_id, const char *hf_model_id,
               const char *profile, json_t *spec, int min_r, int max_r,
               const char *hf_token_sealed);
int dep_set_status(const char *id, const char *status, const char *errors);
json_t *dep_get(const char *org_id, const char *id, int *err);
/* The org's deployments, newest first (all when include_stopped). */
int dep_list(const char *org_id, int include_stopped, json_t *out);
/* Every deployment not stopped or failed (at start-up), with hf_token_sealed. */
int dep_live(json_t *out);

/* Replicas and their charge windows (ledger kind 'deployment', ref = the replica id). */
int rep_insert(const char *id, const char *dep_id, const char *org_id, const char *profile,
               int64_t started_at);
/* Writes the window [start, end) of replica id once; advances its metered_until. Returns 1
 * when written, 0 when it was already there, or LY_EDB. */
int rep_charge(const char *id, const char *org_id, const char *dep_id, int64_t amount,
               int64_t start, int64_t end);
int rep_end(const char *id, int64_t ended_at);
/* Replicas a previous process left open (ended_at NULL): id, org_id, profile, started_at,
 * metered_until. */
int rep_open(json_t *out);
int64_t dep_billed(const char *dep_id);

/* Streaming inferences: submitted (queued), ended (status "finished" or "failed" with the
 * event's data), read back for an org (NULL with *err LY_ENOTFOUND), and those a restart cut
 * short, ended as failed with event (whose "inference_id" is filled per row). */
int infres_insert(const char *id, const char *org_id, const char *dep_id);
int infres_end(const char *id, const char *org_id, const char *dep_id, const char *status,
               const char *event);
json_t *infres_get(const char *org_id, const char *id, int *err);
int infres_fail_open(const char *why);

int usage_add(const char *org_id, const char *dep_id, int64_t prompt, int64_t completion);

/* Files (their bytes live in DATA/files/<id>). */
int file_insert(const char *id, const char *org_id, const char *filename, const char *purpose,
                int64_t bytes);
json_t *file_get(const char *org_id, const char *id, int *err);
int file_list(const char *org_id, const char *purpose, json_t *out);
int file_delete(const char *org_id, const char *id);

/* Batches. */
int batch_insert(const char *id, const char *org_id, const char *endpoint, const char *file_id,
                 const char *model, const char *window, json_t *metadata, int64_t expires_at);
json_t *batch_get(const char *org_id, const char *id, int *err);
json_t *batch_get_any(const char *id, int *err);
/* The org's batches newest first, after the batch named after (NULL: from the newest). */
int batch_list(const char *org_id, const char *after, int64_t limit, json_t *out);
/* Batches still to work on (validating, in_progress, finalizing, cancelling), oldest first. */
int batch_pending(json_t *out);
/* Sets status and stamps the column "<status>_at" (for statuses that have one). */
int batch_set_status(const char *id, const char *status);
/* Moves from one of the statuses in from (comma-separated) to status; 1 when it did. */
int batch_move(const char *id, const char *from, const char *status);
int batch_set_errors(const char *id, json_t *errors);
int batch_set_files(const char *id, const char *output_file_id, const char *error_file_id);
/* Inserts the validated lines (an array of {line, custom_id, body}) and the total, in one
 * transaction. */
int batch_add_lines(const char *id, json_t *lines);
/* Up to limit lines not yet done and not in skip (line numbers being worked on). */
int batch_todo(const char *id, int64_t limit, json_t *out);
/* Records a line's result unless it has one; 1 when this call recorded it. */
int batch_line_done(const char *id, int64_t line, int ok, const char *result);
/* Every recorded result of the batch, ok ones when ok = 1 else errors, in line order. */
int batch_results(const char *id, int ok, json_t *out);
/* completed (ok) and failed counts. */
int batch_counts(const char *id, int64_t *completed, int64_t *failed);

#endif
