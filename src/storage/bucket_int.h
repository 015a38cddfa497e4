/*
 * What bucket.c shares with multipart.c, walk.c and perm.c, and no one else: the paths of a
 * bucket, the parts of an upload in progress (struct bucket_put), the tree walk and the
 * permissions of what lyceumd writes.
 */
#ifndef LYCEUMD_STORAGE_BUCKET_INT_H
#define LYCEUMD_STORAGE_BUCKET_INT_H

#include "storage/bucket.h"

#include <sys/stat.h>

#define ETAG_XATTR "user.lyceumd.etag"

/* A put buffers this much before it writes (fewer system calls, whole pages). */
#define PUT_BUF (256 * 1024)

/* Opens (creating when create) DATA/buckets/<owner>/<sub> as a directory ("" for the
 * bucket's own). A new objects/ is opened up (bk_perm_dir). -1 on failure. */
int bk_open_sub(const char *owner, const char *sub, int create);
/* Opens DATA/buckets as a directory (the caller closes it); -1 on failure. */
int bk_open_root(void);
/* The path of owner's objects/ into buf. */
void bk_objects_path(const char *owner, char *buf, size_t n);
/* Makes sure DATA/buckets is root's alone (0700): the boundary around every bucket. */
void bk_root_private(void);
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

/* ---- walk.c ---- */

/* Folders deeper than this are not entered (each level holds a file descriptor while the walk
 * is below it); a key has at most 512 segments, so every object a key names is reached. */
#define WALK_DEPTH_MAX 600

enum { WALK_NEXT = 0, WALK_ENTER = 1, WALK_STOP = 2 };

/* A walk of a folder tree: symlinks are never followed and only folders are opened. */
struct bk_walk {
    /* Each entry ("." and ".." left out) with its folder dfd and lstat: WALK_ENTER goes into a
     * folder, WALK_NEXT goes on, WALK_STOP ends the walk. */
    int (*visit)(struct bk_walk *w, int dfd, const char *name, const struct stat *st);
    /* Each folder once opened, the top one included (may be NULL). */
    void (*enter)(struct bk_walk *w, int fd);
    void *ctx;
    /* The key path of the folder being read ("" at the top, else ending in '/'), valid while
     * plen < sizeof(path); plen is its length either way. Set plen 0 before the walk. */
    char path[BUCKET_KEY_MAX + 2];
    size_t plen;
    int depth;    /* of the folder being read: 0 at the top */
    int too_deep; /* out: a folder deeper than WALK_DEPTH_MAX was left out */
};
/* Walks the tree of folder fd (consumed). 0, or -1 when fd is no folder. */
int bk_tree_walk(struct bk_walk *w, int fd);
/* 1 when the path of entry name of the folder being read is a key's length at most. */
int bk_walk_key_fits(const struct bk_walk *w, const char *name);

/* ---- perm.c ---- */

/* Opens up a folder of a bucket's objects: mode 0777 and the default ACL (see perm.c). */
void bk_perm_dir(int fd);
/* Opens up a file lyceumd made for a bucket's objects: mode 0666. */
void bk_perm_file(int fd);
/* 1 when a regular file of a bucket may be served: one owned by root with more than one
 * link was not written by lyceumd (which never links objects) and is left alone. */
int bk_servable(const struct stat *st);

/* multipart.c: a part written in place, committed or abandoned. */
int mpu_commit_slot(struct bucket_put *p, char *etag);
void mpu_abort_slot(struct bucket_put *p);

#endif
