/*
 * Buckets: each user has one, and each organization one for its org API keys, a directory on
 * the local disk under the data directory, named by its owner id (a user's id, or "o-<org
 * id>" for an organization's bucket):
 *   DATA/buckets/<owner>/objects/<key>     the objects (what runs see at /mnt/s3)
 *   DATA/buckets/<owner>/tmp/              uploads in progress, renamed into place at the end
 *   DATA/buckets/<owner>/uploads/<id>/     S3 multipart uploads (see multipart.c)
 *                                          and chunked uploads (see chunked.c)
 * Objects are streamed to and from disk, never held whole in memory. Keys are checked
 * (bucket_key_check) and every path is walked one component at a time with O_NOFOLLOW from
 * the bucket's own directory, so that neither a hostile key nor a symlink a run left in its
 * bucket reaches outside it; nothing but regular files is ever read (see bucket.c). Each
 * bucket is capped at the configured quota (bytes). objects/ is open to every uid that has it
 * mounted, behind a data directory that is root's alone (perm.c).
 * Thread-safe: the shared state is the settings from bucket_init() and the usage figures
 * (under a mutex).
 */
#ifndef LYCEUMD_STORAGE_BUCKET_H
#define LYCEUMD_STORAGE_BUCKET_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define BUCKET_KEY_MAX 1024

/* Where buckets live and how big each may grow (0: no quota). Call once at start-up. */
int bucket_init(const char *data_dir, int64_t quota_bytes);
/* A reload's storage_quota_bytes (0: none), for the writes that follow. */
void bucket_set_quota(int64_t quota_bytes);
int64_t bucket_quota(void);

/* 0 when key (n bytes) is a valid object key, else LY_EINVAL with *why: empty, over 1,024
 * bytes, not UTF-8, a NUL (or "%00", how a NUL arrives in a decoded URL), a leading or
 * trailing '/', an
 * empty, "." or ".." segment, or a segment over 255 bytes (a file name's limit). */
int bucket_key_check(const char *key, size_t n, const char **why);

/* 1 when s can prefix keys (a listing's prefix): UTF-8, at most 1,024 bytes, no "%00". */
int bucket_prefix_ok(const char *s);

/* The owner of the bucket a caller reaches: the org's ("o-<org_id>") for an org API key, else
 * the user's own (user_id). */
void bucket_owner(const char *user_id, const char *org_id, int org_key, char out[40]);
/* The bucket's S3 name ("u-<user id>" or "o-<org id>"), and back to its owner (0, or
 * LY_ENOTFOUND when it names none). */
void bucket_name(const char *owner, char out[48]);
int bucket_owner_of(const char *name, char owner[40]);

/*
 * Makes owner's bucket ready to be bind-mounted at /mnt/s3 for a run or a container of any
 * uid: creates it if needed, makes sure DATA/buckets is 0700 (no host user can traverse it:
 * the boundary), opens up objects/ (mode 0777 and a default ACL granting user, group and
 * other rwx, so whatever any process makes there is readable and writable by the next run's
 * uid) and, once per bucket, what lyceumd wrote there before (see perm.c). The path of
 * objects/ into objects_dir. 0 or LY_EIO. Thread-safe; cheap after the first call.
 */
int bucket_prepare_mount(const char *owner, char *objects_dir, size_t n);
/* The same, under its former name. */
int bucket_objects_dir(const char *owner, char *buf, size_t n);

/* An object being written: a temporary file in the bucket, renamed into place by
 * bucket_put_commit() or removed by bucket_put_abort() (exactly one of them is called). */
struct bucket_put {
    int fd;
    char user_id[40];
    char tmp[64];          /* its name in tmp/ */
    int64_t written, room; /* bytes so far; how many the quota still allows */
    int64_t base, flushed; /* where in fd the bytes go; how many are there */
    char *buf;             /* the bytes not yet written */
    size_t blen;
    EVP_MD_CTX *md5; /* the ETag, when asked for */
    /* A part written in place into its upload's data file (see multipart.c). */
    int slot_fd; /* its slot.<n> marker, or -1 */
    int part;
    char upload_id[33];
};
/* Starts an upload of (up to) expect bytes, -1 when unknown. LY_ETOOLARGE (with *why) when
 * the quota or the disk has no room for expect; LY_EIO. want_md5: compute an ETag. */
int bucket_put_begin(struct bucket_put *p, const char *user_id, int64_t expect, int want_md5,
                     const char **why);
/* LY_ETOOLARGE when the quota is exceeded, LY_EIO when the disk fails. */
int bucket_put_write(struct bucket_put *p, const void *buf, size_t n);
/* Moves the upload to key (replacing an object there). etag (33 bytes, may be NULL) gets the
 * hex MD5. LY_ECONFLICT when a prefix of key is an object (not a folder). */
int bucket_put_commit(struct bucket_put *p, const char *key, char *etag);
/* Starts part n of multipart upload id: in place in the upload's data file when it can (see
 * multipart.c), else as bucket_put_begin(). LY_ENOTFOUND when there is no such upload. */
int bucket_put_begin_part(struct bucket_put *p, const char *user_id, const char *upload_id, int n,
                          int64_t expect, const char **why);
/* Moves the upload to part n of multipart upload id. */
int bucket_put_commit_part(struct bucket_put *p, const char *upload_id, int n, char *etag);
void bucket_put_abort(struct bucket_put *p);

/* Opens object key for reading: *fd (the caller closes it) and its stat. LY_ENOTFOUND. */
int bucket_open(const char *user_id, const char *key, int *fd, struct stat *st);
/* The object's ETag (hex, 48 bytes with quotes left out): its MD5 when known, else one made
 * from its size and time. */
void bucket_etag(int fd, const struct stat *st, char out[48]);
/* Deletes key (and the folders it leaves empty). LY_ENOTFOUND when there is none. */
int bucket_delete(const char *user_id, const char *key);
/* Deletes every object whose key starts with prefix; their number into *count. */
int bucket_delete_prefix(const char *user_id, const char *prefix, int64_t *count);
/* Copies object src to dst (through a temporary file; the quota applies). */
int bucket_copy(const char *user_id, const char *src, const char *dst, char etag[48],
                const char **why);
/* Copies len bytes of object src from off (len -1: to its end) into part n of multipart
 * upload id (UploadPartCopy). */
int bucket_copy_part(const char *user_id, const char *src, int64_t off, int64_t len,
                     const char *upload_id, int n, char etag[48], const char **why);
/* Appends {key, size, mtime (µs)} for each object whose key starts with prefix and sorts
 * after start_after (may be NULL), in key order, at most max of them (*more = 1 when there
 * were more). */
int bucket_list(const char *user_id, const char *prefix, const char *start_after, size_t max,
                json_t *out, int *more);
/* Bytes the bucket's objects and uploads take: walked at most every few seconds, and kept up
 * to date in between with what lands (see bucket.c). */
int64_t bucket_usage(const char *owner);
/* Walks the bucket now (whatever runs wrote into it counts): its bytes, also kept as the
 * figure bucket_usage() answers. *too_deep (may be NULL) = 1 when folders deeper than any key
 * were left out of the count. Costs a walk of every entry. */
int64_t bucket_measure(const char *owner, int *too_deep);
/* Bytes the regular files under folder path take, as bucket_measure() counts them (no symlink
 * followed), leaving out the names in skip (NULL-ended, may be NULL) at its top. */
int64_t bucket_tree_bytes(const char *path, const char *const *skip, int *too_deep);
/* How many more bytes the bucket may take: the quota less its usage (0 when full), and no
 * more than the disk has free; INT64_MAX without a quota on an endless disk. */
int64_t bucket_room(const char *owner);

/* S3 multipart uploads. */
int bucket_mpu_create(const char *user_id, const char *key, char id[33]);
/* The key of upload id into key (BUCKET_KEY_MAX + 1 bytes); LY_ENOTFOUND. */
int bucket_mpu_key(const char *user_id, const char *id, char *key);
/* Joins parts[0..n) (part numbers, ascending) into the object; etag gets "<md5>-<n>". */
int bucket_mpu_complete(const char *user_id, const char *id, const int *parts, int n, char etag[48],
                        const char **why);
int bucket_mpu_abort(const char *user_id, const char *id);
/* Which of parts 1..max of upload id are stored: have[n - 1] = 1 for part n (have holds max
 * bytes), and their lengths summed into *bytes. Cheap: one pass over the upload's entries,
 * no MD5 read. LY_ENOTFOUND when there is no such upload. */
int bucket_mpu_parts(const char *user_id, const char *id, int max, unsigned char *have,
                     int64_t *bytes);

#endif
