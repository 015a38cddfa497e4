/*
 * Submitting runs (submit.c): what the API layer (src/api/runs.c) hands over once it validated
 * a start request, and the capability token of the run's streaming_url.
 *
 * Thread-safety: every function may be called from any HTTP thread.
 */
#ifndef LYCEUMD_RUNS_SUBMIT_H
#define LYCEUMD_RUNS_SUBMIT_H

#include <jansson.h>

struct run_submit {
    const char *org_id, *user_id;
    int kind; /* enum run_kind (runs.h) */
    const char *profile;
    json_t *spec; /* the body, stored as the run's spec */
    const char *file_name;
    int timeout_s, graceful_s;
    const char *parent_id;
    json_t *callback_urls; /* array or NULL */
    int priority;
    const char *bucket; /* the owner id of the bucket it sees at /mnt/s3 (NULL: user_id's) */

    char id[40];    /* out: the execution id */
    char token[48]; /* out: the streaming_url's capability token */
};

/* Inserts a pending run; the caller wakes the scheduler (runs_kick, sched.h) once its
 * transaction committed. in_tx: the caller holds a transaction. */
int runs_submit(struct run_submit *s, int in_tx);

/* The capability token's hash as stored. */
void run_token_hash(const char *token, char out[65]);

#endif
