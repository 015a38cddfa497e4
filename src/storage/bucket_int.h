/*
 * What bucket.c shares with multipart.c, and no one else: the paths of a bucket and the
 * parts of an upload in progress (struct bucket_put).
 */
#ifndef LYCEUMD_STORAGE_BUCKET_INT_H
#define LYCEUMD_STORAGE_BUCKET_INT_H

#include "storage/bucket.h"

#define ETAG_XATTR "user.lyceumd.etag"

/* A put buffers this much before it writes (fewer system calls, whole pages). */
#define PUT_BUF (256 * 1024)

/* Opens (creating when create) DATA/buckets/<user>/<sub> as a directory. -1 on failure. */
int bk_open_sub(const char *user_id, const char *sub, int create);
/* Walks key's folders from dirfd (not consumed): an fd of the last folder, *base the last
 * segment. create: make missing folders. -1 with errno. */
int bk_walk(int dirfd, const char *key, int create, const char **base);
/* An upload of n bytes landed (n > 0), or something was deleted (n 0: walk again). */
void bk_usage_changed(const char *user_id, int64_t n);

/* Sets up p (no file yet): the quota's room, the buffer, the MD5. */
int bk_put_init(struct bucket_put *p, const char *user_id, int64_t expect, int want_md5,
                const char **why);
int bk_put_flush(struct bucket_put *p);
/* Finishes the MD5 into hex ("" without one). */
void bk_put_md5_hex(struct bucket_put *p, char hex[33]);
/* Renames the temporary file to name in folder dfd; closes everything either way. */
int bk_put_finish(struct bucket_put *p, int dfd, const char *name);
/* Copies size bytes from fd's position into the upload. */
int bk_put_from_fd(struct bucket_put *p, int fd, int64_t size);
void bk_put_close(struct bucket_put *p);

/* multipart.c: a part written in place, committed or abandoned. */
int mpu_commit_slot(struct bucket_put *p, char *etag);
void mpu_abort_slot(struct bucket_put *p);

#endif
