/*
 * What the storage routes share (api/storage.c: the file API; api/storage_chunk.c: chunked
 * uploads). Strings answered live in the request's arena.
 */
#ifndef LYCEUMD_API_STORAGE_INT_H
#define LYCEUMD_API_STORAGE_INT_H

#include "http/req.h"

#include <stddef.h>

/* The owner id of the bucket the caller reaches: the org's for an org API key, else the
 * user's (bucket_owner). */
const char *storage_owner_of(struct req *req);

/* A folder as a client writes it ("photos/", "/photos", "photos"), without the slashes at
 * either end ("" for the bucket's root). */
const char *storage_folder_of(struct req *req, const char *s, size_t n);

/* Records a 422 at (where, name) for a bad key; LY_EINVAL, or 0 when the key is good. */
int storage_check_key(struct req *req, const char *where, const char *name, const char *key,
                      size_t n);

#endif
