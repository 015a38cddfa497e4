/*
 * Files of the Batch API (API.md 12; file.c): uploaded inputs and the output and error files
 * of finished batches. A file's row is scoped by org; its bytes are DATA/files/<id>.
 *
 * Thread-safety: every function may be called from any thread, after batch_file_dir().
 */
#ifndef LYCEUMD_BATCH_FILE_H
#define LYCEUMD_BATCH_FILE_H

/* The row types (struct file_row, file_rows) are the store's. */
#include "store/inference.h"

#include <stddef.h>

/* Where files live (DATA): set once at start-up (batch_init). */
void batch_file_dir(const char *data_dir);
/* The path of a stored file's bytes: DATA/files/<id>. */
void batch_file_path(const char *id, char *out, size_t n);
/* Stores bytes as a new file of org; id receives its id (40 bytes). */
int batch_file_write(const char *org_id, const char *filename, const char *purpose,
                     const char *data, size_t len, char *id);
/* Stores bytes as file id of org (the bytes atomically, then the row; a row that exists
 * already is kept: a finalization done again writes the same file). */
int batch_file_store(const char *org_id, const char *id, const char *filename, const char *purpose,
                     const char *data, size_t len);
/* The file's row (file_row_release() it): 0, LY_ENOTFOUND when org has no such file, or
 * LY_EDB. */
int batch_file_get(const char *org_id, const char *id, struct file_row *out);
/* The org's files (of purpose, unless NULL), newest first (file_rows_release() them). */
int batch_file_list(const char *org_id, const char *purpose, struct file_rows *out);
/* Deletes a file (its row, then its bytes): 1, 0 when org has no such file, or LY_EDB. */
int batch_file_delete(const char *org_id, const char *id);

#endif
