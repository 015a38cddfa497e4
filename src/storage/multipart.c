/*
 * S3 multipart uploads. Each lives in DATA/buckets/<user>/uploads/<id>/:
 *   key          the object's key
 *   psize        the upload's part size P, fixed by the first part that says its length
 *   data         the parts written in place: part n at (n - 1) * P, holes between them
 *   slot.<n>     part n's claim on its place in data; "<length> <md5>" once it is complete
 *   part.<n>     a part that could not go in place (longer than P, a second upload of the
 *                same number, an unknown length), with its MD5 in an extended attribute
 * Clients cut a file into parts of one size (the last one shorter), so data is usually the
 * object already: completing it is a truncate and a rename, where joining part files would
 * copy every byte once more. Anything else (parts skipped, sizes that differ, part files) is
 * joined into a new file, as before. A part file, being the later upload of its number,
 * wins over the same part in place. Completing in place waits for no one: while a part is
 * still being written into data, the parts are joined into a new file instead.
 */
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "storage/bucket.h"
#include "storage/bucket_int.h"
#include "storage/range.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Where in place writing stops: ext4 caps a file at 16 TiB, and 10,000 parts of P apart. */
#define DATA_MAX (8LL << 40)

static int valid_upload_id(const char *id)
{
    size_t n = strlen(id);

    if (n != 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
              (id[i] >= 'A' && id[i] <= 'Z')))
            return 0;
    return 1;
}

int bucket_mpu_create(const char *user_id, const char *key, char id[33])
{
    char sub[96];
    int dfd, fd;

    random_base62(id, 32);
    close(bk_open_sub(user_id, "uploads", 1));
    snprintf(sub, sizeof(sub), "uploads/%s", id);
    dfd = bk_open_sub(user_id, sub, 1);
    if (dfd < 0)
        return LY_EIO;
    fd = openat(dfd, "key", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    close(dfd);
    if (fd < 0 || write(fd, key, strlen(key)) != (ssize_t)strlen(key)) {
        if (fd >= 0)
            close(fd);
        return LY_EIO;
    }
    close(fd);
    return 0;
}

static int mpu_dir(const char *user_id, const char *id)
{
    char sub[96];

    if (!valid_upload_id(id)) {
        errno = ENOENT;
        return -1;
    }
    snprintf(sub, sizeof(sub), "uploads/%s", id);
    return bk_open_sub(user_id, sub, 0);
}

/* Reads small file name in dfd into buf (NUL-terminated); its length, or -1. */
static ssize_t read_small(int dfd, const char *name, char *buf, size_t n)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    ssize_t r;

    if (fd < 0)
        return -1;
    r = read(fd, buf, n - 1);
    close(fd);
    if (r < 0)
        return -1;
    buf[r] = '\0';
    return r;
}

int bucket_mpu_key(const char *user_id, const char *id, char *key)
{
    int dfd = mpu_dir(user_id, id);
    ssize_t n;

    if (dfd < 0)
        return LY_ENOTFOUND;
    n = read_small(dfd, "key", key, BUCKET_KEY_MAX + 1);
    close(dfd);
    return n > 0 ? 0 : LY_ENOTFOUND;
}

/* The part size on record (at most DATA_MAX), or 0. */
static int64_t psize_of(int dfd)
{
    char buf[32];
    uint64_t v;

    if (read_small(dfd, "psize", buf, sizeof(buf)) <= 0 || range_u64(buf, DATA_MAX, &v))
        return 0;
    return (int64_t)v;
}

/* The upload's part size: the one on record, else len (at most DATA_MAX), put on record
 * (first one wins). 0 when there is none. */
static int64_t part_size(int dfd, int64_t len)
{
    char buf[32], tmp[40];
    int64_t size = psize_of(dfd);
    int fd;

    if (size > 0 || len <= 0 || len > DATA_MAX)
        return size;
    /* Written whole under another name, then linked: a reader never sees half of it. */
    snprintf(tmp, sizeof(tmp), "psize.");
    random_base62(tmp + 6, 16);
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    snprintf(buf, sizeof(buf), "%lld", (long long)len);
    if (write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf)) {
        close(fd);
        unlinkat(dfd, tmp, 0);
        return 0;
    }
    close(fd);
    if (linkat(dfd, tmp, dfd, "psize", 0) && errno != EEXIST)
        len = 0;
    unlinkat(dfd, tmp, 0);
    size = psize_of(dfd);
    return size > 0 ? size : len;
}

/*
 * Writers of parts hold a shared flock on data from before they check that it is still the
 * upload's until they close it; completing in place takes it exclusively, or joins a copy
 * instead. So no part being written lands in an object that was completed under it.
 */
static int still_data(int dfd, int fd)
{
    struct stat a, b;

    return flock(fd, LOCK_SH) == 0 && fstat(fd, &a) == 0 &&
           fstatat(dfd, "data", &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == b.st_ino &&
           a.st_dev == b.st_dev;
}

int bucket_put_begin_part(struct bucket_put *p, const char *user_id, const char *upload_id, int n,
                          int64_t expect, const char **why)
{
    int dfd = mpu_dir(user_id, upload_id), fd, mfd;
    int64_t size;
    char name[32];
    int err;

    if (dfd < 0)
        return LY_ENOTFOUND;
    size = expect > 0 ? part_size(dfd, expect) : 0;
    /* Part n at (n - 1) * size must end within DATA_MAX: compared by division, not product. */
    if (size <= 0 || expect > size || n < 1 || size > DATA_MAX / n) {
        close(dfd);
        return bucket_put_begin(p, user_id, expect, 1, why);
    }
    snprintf(name, sizeof(name), "slot.%d", n);
    mfd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (mfd < 0) { /* the place is taken: a part file then */
        close(dfd);
        return bucket_put_begin(p, user_id, expect, 1, why);
    }
    fd = openat(dfd, "data", O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666);
    if (fd >= 0)
        bk_perm_file(fd);                  /* it may become the object */
    if (fd >= 0 && !still_data(dfd, fd)) { /* the upload was completed meanwhile */
        close(fd);
        close(mfd);
        unlinkat(dfd, name, 0);
        close(dfd);
        return bucket_put_begin(p, user_id, expect, 1, why);
    }
    err = fd < 0 ? LY_EIO : bk_put_init(p, user_id, expect, 1, why);
    if (err) {
        bk_put_close(p);
        if (fd >= 0)
            close(fd);
        close(mfd);
        unlinkat(dfd, name, 0);
        close(dfd);
        return err;
    }
    close(dfd);
    p->fd = fd;
    p->slot_fd = mfd;
    p->base = (int64_t)(n - 1) * size;
    p->part = n;
    snprintf(p->upload_id, sizeof(p->upload_id), "%s", upload_id);
    return 0;
}

int mpu_commit_slot(struct bucket_put *p, char *etag)
{
    char hex[33], rec[64];
    int err = bk_put_flush(p);
    int len;

    bk_put_md5_hex(p, hex);
    len = snprintf(rec, sizeof(rec), "%lld %s\n", (long long)p->written, hex);
    if (!err && pwrite(p->slot_fd, rec, (size_t)len, 0) != len)
        err = LY_EIO;
    if (err) {
        mpu_abort_slot(p);
    } else {
        bk_usage_changed(p->user_id, p->written);
        if (etag)
            memcpy(etag, hex, 33);
    }
    bk_put_close(p);
    return err;
}

void mpu_abort_slot(struct bucket_put *p)
{
    int dfd = mpu_dir(p->user_id, p->upload_id);
    char name[32];

    if (dfd < 0)
        return;
    snprintf(name, sizeof(name), "slot.%d", p->part);
    unlinkat(dfd, name, 0);
    close(dfd);
}

int bucket_mpu_abort(const char *user_id, const char *id)
{
    int dfd = mpu_dir(user_id, id), ufd;
    DIR *d;
    struct dirent *e;

    if (dfd < 0)
        return LY_ENOTFOUND;
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return LY_EIO;
    }
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    ufd = bk_open_sub(user_id, "uploads", 0);
    if (ufd >= 0) {
        unlinkat(ufd, id, AT_REMOVEDIR);
        close(ufd);
    }
    bk_usage_changed(user_id, 0);
    return 0;
}

/* Where part n is: a part file (*fd open on it, *off 0) or its place in data. */
struct part_at {
    int fd;      /* part.<n>, or -1 when in place */
    int64_t off; /* in data */
    int64_t len;
    unsigned char md5[16];
};

static int hex16(const char *hex, unsigned char out[16])
{
    for (int j = 0; j < 16; j++) {
        unsigned v;

        if (sscanf(hex + 2 * j, "%2x", &v) != 1)
            return -1;
        out[j] = (unsigned char)v;
    }
    return 0;
}

/* The MD5 of what fd holds, read from its start. */
static int md5_of(int fd, unsigned char out[16])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    char buf[65536];
    ssize_t r;
    off_t off = 0;

    EVP_DigestInit_ex(c, EVP_md5(), NULL);
    while ((r = pread(fd, buf, sizeof(buf), off)) > 0) {
        EVP_DigestUpdate(c, buf, (size_t)r);
        off += r;
    }
    EVP_DigestFinal_ex(c, md, &len);
    EVP_MD_CTX_free(c);
    memcpy(out, md, 16);
    return r < 0 ? -1 : 0;
}

/* Finds part n; -1 when it was never uploaded (or its upload did not finish). */
static int part_find(int dfd, int n, int64_t size, struct part_at *at)
{
    char name[32], rec[64], hex[33];
    struct stat st;
    long long len;

    memset(at, 0, sizeof(*at));
    snprintf(name, sizeof(name), "part.%d", n);
    at->fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (at->fd >= 0) {
        if (fstat(at->fd, &st)) {
            close(at->fd);
            at->fd = -1;
            return -1;
        }
        at->len = st.st_size;
        if (fgetxattr(at->fd, ETAG_XATTR, hex, 32) == 32) {
            hex[32] = '\0';
            return hex16(hex, at->md5);
        }
        return md5_of(at->fd, at->md5); /* a filesystem without extended attributes */
    }
    snprintf(name, sizeof(name), "slot.%d", n);
    if (size <= 0 || n < 1 || size > DATA_MAX / n || read_small(dfd, name, rec, sizeof(rec)) <= 0 ||
        sscanf(rec, "%lld %32s", &len, hex) != 2 || strlen(hex) != 32 || len < 0 || len > size)
        return -1;
    at->off = (int64_t)(n - 1) * size;
    at->len = len;
    return hex16(hex, at->md5);
}

/* The length of part n when it is stored (a part file, else a completed slot), else -1. No
 * MD5 is read: this is the cheap check of which parts are in. */
static int64_t part_len(int dfd, int n, int64_t size)
{
    char name[32], rec[64], hex[33];
    struct stat st;
    long long len;

    snprintf(name, sizeof(name), "part.%d", n);
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return S_ISREG(st.st_mode) ? st.st_size : -1;
    snprintf(name, sizeof(name), "slot.%d", n);
    if (size <= 0 || size > DATA_MAX / n || read_small(dfd, name, rec, sizeof(rec)) <= 0 ||
        sscanf(rec, "%lld %32s", &len, hex) != 2 || strlen(hex) != 32 || len < 0 || len > size)
        return -1;
    return len;
}

int bucket_mpu_parts(const char *user_id, const char *id, int max, unsigned char *have,
                     int64_t *bytes)
{
    int dfd = mpu_dir(user_id, id), fd;
    int64_t size;
    DIR *d;
    struct dirent *e;

    *bytes = 0;
    memset(have, 0, (size_t)max);
    if (dfd < 0)
        return LY_ENOTFOUND;
    size = psize_of(dfd);
    fd = dup(dfd);
    d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        close(dfd);
        return LY_EIO;
    }
    /* One pass over the entries, not one look-up per possible part. */
    while ((e = readdir(d))) {
        const char *num = strncmp(e->d_name, "part.", 5) == 0   ? e->d_name + 5
                          : strncmp(e->d_name, "slot.", 5) == 0 ? e->d_name + 5
                                                                : NULL;
        uint64_t n;
        int64_t len;

        if (!num || range_u64(num, (uint64_t)max, &n) || n < 1 || have[n - 1])
            continue;
        len = part_len(dfd, (int)n, size);
        if (len < 0)
            continue;
        have[n - 1] = 1;
        *bytes += len;
    }
    closedir(d);
    close(dfd);
    return 0;
}

/* Moves file name of dfd to key; LY_ECONFLICT when the key goes through an object. */
static int rename_to_key(const char *user_id, int dfd, const char *name, const char *key)
{
    int ofd = bk_open_sub(user_id, "objects", 1), kfd, err = 0;
    const char *base = NULL;

    kfd = ofd >= 0 ? bk_walk(ofd, key, 1, &base) : -1;
    if (kfd < 0)
        err = errno == ENOTDIR || errno == ELOOP ? LY_ECONFLICT : LY_EIO;
    else if (renameat(dfd, name, kfd, base))
        err = errno == EISDIR || errno == ENOTDIR ? LY_ECONFLICT : LY_EIO;
    if (kfd >= 0)
        close(kfd);
    if (ofd >= 0)
        close(ofd);
    return err;
}

int bucket_mpu_complete(const char *user_id, const char *id, const int *parts, int n, char etag[48],
                        const char **why)
{
    char key[BUCKET_KEY_MAX + 1], hex[33];
    struct part_at *at = xcalloc((size_t)n, sizeof(*at));
    EVP_MD_CTX *all = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    int64_t size = 0;
    int dfd = -1, data = -1, err, in_place = 1;

    err = bucket_mpu_key(user_id, id, key);
    if (err)
        goto out;
    dfd = mpu_dir(user_id, id);
    if (dfd < 0) {
        err = LY_ENOTFOUND;
        goto out;
    }
    size = psize_of(dfd);
    /* The S3 ETag of a multipart object: MD5 of the parts' MD5s, then "-n". */
    EVP_DigestInit_ex(all, EVP_md5(), NULL);
    for (int i = 0; i < n; i++) {
        at[i].fd = -1;
        if (part_find(dfd, parts[i], size, &at[i])) {
            *why = "One of the parts was never uploaded";
            err = LY_EBADREQ;
            goto out;
        }
        EVP_DigestUpdate(all, at[i].md5, 16);
        /* In place and already the object: parts 1..n, each but the last exactly P long. */
        if (at[i].fd >= 0 || parts[i] != i + 1 || (i < n - 1 && at[i].len != size))
            in_place = 0;
    }
    EVP_DigestFinal_ex(all, md, &len);
    hex_encode(md, 16, hex);
    snprintf(etag, 48, "%s-%d", hex, n);
    if (in_place) {
        /* Not while a part is being written into it (see still_data()). */
        data = openat(dfd, "data", O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (data >= 0 && flock(data, LOCK_EX | LOCK_NB)) {
            in_place = 0;
            close(data);
            data = -1;
        }
    }
    if (in_place) {
        if (data < 0 || ftruncate(data, (int64_t)(n - 1) * size + at[n - 1].len)) {
            err = LY_EIO;
            goto out;
        }
        fsetxattr(data, ETAG_XATTR, etag, strlen(etag), 0);
        err = rename_to_key(user_id, dfd, "data", key);
    } else {
        struct bucket_put p;

        /* The parts already count against the quota: the whole is as big again, for a
         * moment. */
        err = bucket_put_begin(&p, user_id, -1, 0, why);
        if (err)
            goto out;
        p.room = INT64_MAX;
        for (int i = 0; i < n && !err; i++) {
            int fd = at[i].fd;

            if (fd < 0) {
                if (data < 0)
                    data = openat(dfd, "data", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
                fd = data;
            }
            if (fd < 0 || lseek(fd, at[i].off, SEEK_SET) != at[i].off)
                err = LY_EIO;
            else
                err = bk_put_from_fd(&p, fd, at[i].len);
        }
        if (err) {
            bucket_put_abort(&p);
            goto out;
        }
        err = bucket_put_commit(&p, key, NULL);
        if (!err) {
            int ofd;
            struct stat st;

            if (bucket_open(user_id, key, &ofd, &st) == 0) {
                fsetxattr(ofd, ETAG_XATTR, etag, strlen(etag), 0);
                close(ofd);
            }
        }
    }
    if (!err) {
        close(dfd);
        dfd = -1;
        bucket_mpu_abort(user_id, id);
    }
out:
    for (int i = 0; i < n; i++)
        if (at[i].fd >= 0)
            close(at[i].fd);
    free(at);
    if (data >= 0)
        close(data);
    if (dfd >= 0)
        close(dfd);
    EVP_MD_CTX_free(all);
    return err;
}
