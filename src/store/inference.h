/*
 * The store of inference (API.md 11, 12): deployments and their replicas, token usage, files
 * and batches with their lines. Every query that reads a tenant's data is scoped by org_id.
 * Its functions are db_-prefixed: batch_* and inference_* are the domain's (batch/, inference/).
 * Rows come back as typed structs whose strings they own (each has a _release); JSON columns
 * (a deployment's spec, a batch's metadata and errors, an event) are kept as text. Thread-safe
 * (one connection per thread, store/db.h).
 */
#ifndef LYCEUMD_STORE_INFERENCE_H
#define LYCEUMD_STORE_INFERENCE_H

#include <stddef.h>
#include <stdint.h>

/* Deployments. A row's strings are its own (NULL where the column is): release it.
 * hf_token_sealed (secrets_seal, or NULL) is read back only by db_dep_live(). */
struct dep_row {
    char id[40], org_id[40], profile[64], status[16];
    char *hf_model_id;
    char *spec;   /* the create body less hf_token, as JSON text */
    char *errors; /* text, or NULL */
    char *hf_token_sealed;
    int64_t min_replicas, max_replicas;
    int64_t created_at, stopped_at; /* unix microseconds; stopped_at -1 while not stopped */
};
struct dep_rows {
    struct dep_row *v;
    size_t n;
};
void dep_row_release(struct dep_row *r);
void dep_rows_release(struct dep_rows *rows);
/* spec: JSON text. */
int db_dep_insert(const char *id, const char *org_id, const char *user_id, const char *hf_model_id,
                  const char *profile, const char *spec, int min_r, int max_r,
                  const char *hf_token_sealed);
int db_dep_set_status(const char *id, const char *status, const char *errors);
/* 0, LY_ENOTFOUND, or LY_EDB. */
int db_dep_get(const char *org_id, const char *id, struct dep_row *out);
/* The org's deployments, newest first (all when include_stopped). */
int db_dep_list(const char *org_id, int include_stopped, struct dep_rows *out);
/* Every deployment not stopped or failed (at start-up), with hf_token_sealed. */
int db_dep_live(struct dep_rows *out);

/* Replicas and their charge windows (ledger kind 'deployment', ref = the replica id). */
struct rep_row {
    char id[40], dep_id[40], org_id[40], profile[64];
    int64_t started_at, metered_until;
};
struct rep_rows {
    struct rep_row *v;
    size_t n;
};
void rep_rows_release(struct rep_rows *rows);
int db_rep_insert(const char *id, const char *dep_id, const char *org_id, const char *profile,
                  int64_t started_at);
/* Writes the window [start, end) of replica id once; advances its metered_until. Returns 1
 * when written, 0 when it was already there, or LY_EDB. */
int db_rep_charge(const char *id, const char *org_id, const char *dep_id, int64_t amount,
                  int64_t start, int64_t end);
int db_rep_end(const char *id, int64_t ended_at);
/* Replicas a previous process left open (ended_at NULL). */
int db_rep_open(struct rep_rows *out);
int64_t db_dep_billed(const char *dep_id);

/* Streaming inferences: submitted (queued), ended (status "finished" or "failed" with the
 * event's data), read back for an org, and those a restart cut
 * short, ended as failed with event (whose "inference_id" is filled per row). */
int db_infres_insert(const char *id, const char *org_id, const char *dep_id);
int db_infres_end(const char *id, const char *org_id, const char *dep_id, const char *status,
                  const char *event);
struct infres_row {
    char status[16]; /* queued, finished or failed */
    char *event;     /* the ending event's data (JSON text), or NULL */
};
void infres_row_release(struct infres_row *r);
/* 0, LY_ENOTFOUND, or LY_EDB. */
int db_infres_get(const char *org_id, const char *id, struct infres_row *out);
int db_infres_fail_open(const char *why);

int db_usage_add(const char *org_id, const char *dep_id, int64_t prompt, int64_t completion);

/* Files (their bytes live in DATA/files/<id>). A row's strings are its own: release it. */
struct file_row {
    char id[64], purpose[32];
    char *filename;
    int64_t bytes, created_at; /* created_at: unix microseconds */
};
struct file_rows {
    struct file_row *v;
    size_t n;
};
void file_row_release(struct file_row *r);
void file_rows_release(struct file_rows *rows);
int db_file_insert(const char *id, const char *org_id, const char *filename, const char *purpose,
                   int64_t bytes);
/* 0, LY_ENOTFOUND when org has no such file (deleted ones are not), or LY_EDB. */
int db_file_get(const char *org_id, const char *id, struct file_row *out);
/* The org's files (of purpose, unless NULL), newest first. */
int db_file_list(const char *org_id, const char *purpose, struct file_rows *out);
/* 1 when deleted, 0 when org has no such file, or LY_EDB. */
int db_file_delete(const char *org_id, const char *id);

/* Batches. A row's strings are its own (NULL where the column is): release it. The stamps
 * are unix seconds, -1 where not set. */
struct batch_row {
    char id[40], org_id[40], status[16];
    char *endpoint, *input_file_id, *model, *completion_window;
    char *metadata, *errors; /* JSON text, or NULL */
    char *output_file_id, *error_file_id;
    int64_t seq, total, created_at; /* created_at: unix microseconds */
    int64_t in_progress_at, expires_at, finalizing_at, completed_at, failed_at, expired_at,
        cancelling_at, cancelled_at;
};
struct batch_rows {
    struct batch_row *v;
    size_t n;
};
void batch_row_release(struct batch_row *r);
void batch_rows_release(struct batch_rows *rows);
/* metadata: JSON text, or NULL. */
int db_batch_insert(const char *id, const char *org_id, const char *endpoint, const char *file_id,
                    const char *model, const char *window, const char *metadata,
                    int64_t expires_at);
/* 0, LY_ENOTFOUND, or LY_EDB. */
int db_batch_get(const char *org_id, const char *id, struct batch_row *out);
int db_batch_get_any(const char *id, struct batch_row *out);
/* The org's batches newest first, after the batch named after (NULL: from the newest). */
int db_batch_list(const char *org_id, const char *after, int64_t limit, struct batch_rows *out);
/* Batches still to work on (validating, in_progress, finalizing, cancelling), oldest first. */
int db_batch_pending(struct batch_rows *out);
/* Sets status and stamps the column "<status>_at" (for statuses that have one). */
int db_batch_set_status(const char *id, const char *status);
/* Moves from one of the statuses in from (comma-separated) to status; 1 when it did. */
int db_batch_move(const char *id, const char *from, const char *status);
/* errors: JSON text. */
int db_batch_set_errors(const char *id, const char *errors);
int db_batch_set_files(const char *id, const char *output_file_id, const char *error_file_id);

/* A batch's line: its number in the input file, custom_id and request (the line's JSON). */
struct batch_line {
    int64_t line;
    char *custom_id, *body;
};
struct batch_lines {
    struct batch_line *v;
    size_t n;
};
void batch_lines_release(struct batch_lines *rows);
/* Inserts the validated lines and the total, in one transaction. */
int db_batch_add_lines(const char *id, const struct batch_line *lines, size_t n);
/* Up to limit lines not yet done, in line order. */
int db_batch_todo(const char *id, int64_t limit, struct batch_lines *out);
/* Records a line's result unless it has one; 1 when this call recorded it. */
int db_batch_line_done(const char *id, int64_t line, int ok, const char *result);
/* Calls fn(arg, result) for every recorded result of the batch, ok ones when ok = 1 else
 * errors, in line order. */
int db_batch_results(const char *id, int ok, void (*fn)(void *arg, const char *result), void *arg);
/* completed (ok) and failed counts. */
int db_batch_counts(const char *id, int64_t *completed, int64_t *failed);

#endif
