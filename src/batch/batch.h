/*
 * The Batch API's runner (API.md 12, 16.6). One manager thread takes batches in the order they
 * were created: it validates a batch's input file (failing it with line-numbered errors), then
 * records its lines in the store and runs them against the deployments their model names,
 * at most `concurrency` at once per batch, each a job of a worker pool (core/worker.h). A line's
 * result is recorded in the store once (the first answer wins); the output and error files are
 * derived from those records when the batch finalizes, so a restart at any point resumes the batch
 * and no custom_id is ever answered twice. Statuses: validating, failed, in_progress,
 * finalizing, completed, expired, cancelling, cancelled.
 *
 * Files are file.c's (file.h), and what the API does with batches control.c's (control.h).
 */
#ifndef LYCEUMD_BATCH_BATCH_H
#define LYCEUMD_BATCH_BATCH_H

#include <jansson.h>

/* Starts the manager. data_dir holds files/; concurrency bounds each batch's lines in flight. */
int batch_init(const char *data_dir, int concurrency);
/* Asks the runner to stop: from now on no result is recorded (lines still in flight are run
 * again after a restart). Call before inference_shutdown(), then batch_shutdown(). */
void batch_stop(void);
void batch_shutdown(void);
/* Wakes the manager (a batch was created or cancelled). */
void batch_kick(void);

#endif
