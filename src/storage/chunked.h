/*
 * Chunked uploads (the dashboard's /storage/upload-chunk): a file sent as numbered chunks, in
 * any order, each possibly sent again, that becomes an object only once every chunk is in.
 * Each is an S3 multipart upload of the caller's bucket (multipart.c) whose id is derived from
 * the name the client gives it, so that the same name in another bucket is another upload
 * altogether: an upload is reachable only through the bucket it lives in. Chunk i is part
 * i + 1. Beside the parts its folder holds "chunked", the record of what the upload was begun
 * with (its chunk count, total size and key), written once: a later chunk that disagrees is
 * refused. Uploads without a chunk for CHUNKED_TTL_S are removed (chunked_sweep).
 * Thread-safe: everything is on disk; completing is serialised by a lock on the upload's
 * folder.
 */
#ifndef LYCEUMD_STORAGE_CHUNKED_H
#define LYCEUMD_STORAGE_CHUNKED_H

#include "storage/bucket.h"

#include <stdint.h>

#define CHUNKED_MAX_CHUNKS 10000
#define CHUNKED_NAME_MAX   256
/* An upload with no new chunk for this long is abandoned. */
#define CHUNKED_TTL_S (24 * 3600)

/* What an upload was begun with. */
struct chunked_info {
    int total;          /* chunks, 1..CHUNKED_MAX_CHUNKS */
    int64_t total_size; /* bytes, or -1 when the client did not say */
    char key[BUCKET_KEY_MAX + 1];
};

/* The upload id (32 hex digits) of a chunked upload named name (at most 1,024 bytes). */
void chunked_id(const char *name, char id[33]);

/*
 * Opens upload id of owner, creating it with *want when there is none (*created = 1 then).
 * When it exists, *have gets what it was begun with, and the call answers LY_ECONFLICT when
 * that differs from *want (the caller says how). LY_EIO.
 */
int chunked_open(const char *owner, const char *id, const struct chunked_info *want,
                 struct chunked_info *have, int *created);

/* How many of the upload's chunks are stored and their bytes. LY_ENOTFOUND. */
int chunked_received(const char *owner, const char *id, int total, int *received, int64_t *bytes);

/*
 * Makes the object of upload id once every chunk is in: *done = 1 and *size its size (also
 * when a request beside this one completed it first); while chunks are missing, *done = 0,
 * *received how many are in and *size their bytes.
 * When total_size was given and the chunks add up to something else, the upload is removed
 * and LY_EINVAL answered with *why; LY_ECONFLICT when the key goes through an object (also
 * removed). Serialised per upload.
 */
int chunked_finish(const char *owner, const char *id, const struct chunked_info *info, int *done,
                   int *received, int64_t *size, const char **why);

/* Removes the upload and its chunks. LY_ENOTFOUND when there is none. */
int chunked_abort(const char *owner, const char *id);

/* Removes the chunked uploads with no chunk since older_than (unix seconds): owner's, or every
 * bucket's when owner is NULL. S3 multipart uploads are left alone. */
void chunked_sweep(const char *owner, int64_t older_than);

/* Sweeps owner's bucket now, and every bucket at most once an hour (from request threads). */
void chunked_sweep_due(const char *owner);

#endif
