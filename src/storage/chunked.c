/*
 * See chunked.h. A chunked upload is a multipart upload (multipart.c) with one more file in
 * its folder, "chunked": "<total> <total_size> <key length>\n<key>". It and the upload's "key"
 * are each written whole under a name of their own and then linked into place, so that
 * chunks arriving side by side for a new upload agree on one record (the first link wins)
 * and a reader never sees half of one. The chunks themselves are written by bucket.c's puts:
 * in place when their length is known up front (multipart.c), else as part files renamed in
 * whole, so a chunk sent again replaces the one before and a chunk cut short leaves nothing.
 * The bytes count against the bucket's quota from the moment they land (usage walks
 * uploads/); nothing is visible in the bucket's objects until chunked_finish() renames or
 * joins the chunks into the object.
 */
#include "storage/chunked.h"
#include "storage/bucket_int.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "storage/range.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD   "chunked"
#define REC_MAX  (BUCKET_KEY_MAX + 64)
#define SWEEP_US (3600 * 1000000LL)

void chunked_id(const char *name, char id[33])
{
    char hex[65];
    char buf[BUCKET_KEY_MAX + 16];
    int n = snprintf(buf, sizeof(buf), "chunked:%s", name);

    /* The name is the client's; the id is only ever a digest of it. */
    sha256_hex(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1, hex);
    memcpy(id, hex, 32);
    id[32] = '\0';
}

/* Writes buf as file name of dfd unless it exists: written under a name of its own and linked,
 * so the first writer wins whole. 0 (ours or another's is there), or LY_EIO. */
static int write_once(int dfd, const char *name, const char *buf, size_t n)
{
    char tmp[48];
    int fd, err = 0;

    snprintf(tmp, sizeof(tmp), "%s.", name);
    random_base62(tmp + strlen(tmp), 16);
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return LY_EIO;
    if (write(fd, buf, n) != (ssize_t)n)
        err = LY_EIO;
    close(fd);
    if (!err && linkat(dfd, tmp, dfd, name, 0) && errno != EEXIST)
        err = LY_EIO;
    unlinkat(dfd, tmp, 0);
    return err;
}

static int read_record(int dfd, struct chunked_info *info)
{
    char buf[REC_MAX + 1];
    int fd = openat(dfd, RECORD, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    ssize_t n;
    long long total, size;
    unsigned klen;
    int used = 0;

    if (fd < 0)
        return LY_ENOTFOUND;
    n = read(fd, buf, REC_MAX);
    close(fd);
    if (n <= 0)
        return LY_EIO;
    buf[n] = '\0';
    if (sscanf(buf, "%lld %lld %u\n%n", &total, &size, &klen, &used) != 3 || used <= 0 ||
        total < 1 || total > CHUNKED_MAX_CHUNKS || size < -1 || klen > BUCKET_KEY_MAX ||
        (size_t)used + klen != (size_t)n)
        return LY_EIO;
    info->total = (int)total;
    info->total_size = size;
    memcpy(info->key, buf + used, klen);
    info->key[klen] = '\0';
    return 0;
}

int chunked_open(const char *owner, const char *id, const struct chunked_info *want,
                 struct chunked_info *have, int *created)
{
    char sub[96], rec[REC_MAX];
    int dfd, n, err;
    struct stat st;

    *created = 0;
    close(bk_open_sub(owner, "uploads", 1));
    snprintf(sub, sizeof(sub), "uploads/%s", id);
    dfd = bk_open_sub(owner, sub, 1);
    if (dfd < 0)
        return LY_EIO;
    if (fstatat(dfd, RECORD, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        n = snprintf(rec, sizeof(rec), "%d %lld %u\n%s", want->total, (long long)want->total_size,
                     (unsigned)strlen(want->key), want->key);
        err = write_once(dfd, RECORD, rec, (size_t)n);
        if (err)
            goto out;
        *created = 1;
    }
    err = read_record(dfd, have);
    if (err)
        goto out;
    if (have->total != want->total || have->total_size != want->total_size ||
        strcmp(have->key, want->key) != 0) {
        *created = 0;
        err = LY_ECONFLICT;
        goto out;
    }
    /* multipart.c completes to the key it finds in "key". */
    err = write_once(dfd, "key", have->key, strlen(have->key));
out:
    close(dfd);
    return err;
}

int chunked_received(const char *owner, const char *id, int total, int *received, int64_t *bytes)
{
    unsigned char *have = xcalloc((size_t)total, 1);
    int err = bucket_mpu_parts(owner, id, total, have, bytes);

    *received = 0;
    for (int i = 0; !err && i < total; i++)
        *received += have[i];
    free(have);
    return err;
}

/* The upload's folder is gone: a request beside this one completed it (or it was removed). */
static int finished_elsewhere(const char *owner, const struct chunked_info *info, int *done,
                              int *received, int64_t *size)
{
    struct stat st;
    int fd;

    if (bucket_open(owner, info->key, &fd, &st))
        return LY_ENOTFOUND;
    close(fd);
    *done = 1;
    *received = info->total;
    *size = st.st_size;
    return 0;
}

int chunked_finish(const char *owner, const char *id, const struct chunked_info *info, int *done,
                   int *received, int64_t *size, const char **why)
{
    int ufd = bk_open_sub(owner, "uploads", 0), dfd = -1, err;
    int *parts = NULL;
    struct stat a, b;
    char etag[48];

    *done = 0;
    *received = 0;
    *size = 0;
    dfd = ufd < 0 ? -1 : openat(ufd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        err = finished_elsewhere(owner, info, done, received, size);
        goto out;
    }
    /* One completion at a time; whoever comes second finds the folder gone. */
    if (flock(dfd, LOCK_EX) || fstat(dfd, &a)) {
        err = LY_EIO;
        goto out;
    }
    if (fstatat(ufd, id, &b, AT_SYMLINK_NOFOLLOW) || a.st_ino != b.st_ino) {
        err = finished_elsewhere(owner, info, done, received, size);
        goto out;
    }
    err = chunked_received(owner, id, info->total, received, size);
    if (err || *received < info->total)
        goto out;
    if (info->total_size >= 0 && *size != info->total_size) {
        chunked_abort(owner, id);
        *why = "The chunks do not add up to total_size: the upload was discarded";
        err = LY_EINVAL;
        goto out;
    }
    parts = xcalloc((size_t)info->total, sizeof(*parts));
    for (int i = 0; i < info->total; i++)
        parts[i] = i + 1;
    err = bucket_mpu_complete(owner, id, parts, info->total, etag, why);
    if (err == LY_ECONFLICT) {
        chunked_abort(owner, id);
        *why = "The key goes through an existing file, or names a folder: the upload was "
               "discarded";
    }
    if (!err)
        err = finished_elsewhere(owner, info, done, received, size);
out:
    free(parts);
    if (dfd >= 0)
        close(dfd);
    if (ufd >= 0)
        close(ufd);
    return err;
}

int chunked_abort(const char *owner, const char *id)
{
    return bucket_mpu_abort(owner, id);
}

/* The chunked uploads of one bucket whose folder last changed before older_than. */
static void sweep_bucket(const char *owner, int64_t older_than)
{
    int ufd = bk_open_sub(owner, "uploads", 0), fd;
    DIR *d;
    struct dirent *e;

    if (ufd < 0)
        return;
    fd = dup(ufd);
    d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d && fd >= 0)
        close(fd);
    while (d && (e = readdir(d))) {
        struct stat st, rec;
        int dfd;

        if (e->d_name[0] == '.')
            continue;
        dfd = openat(ufd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
            continue;
        /* Each chunk that lands is renamed or made in the folder: its time is the last's. */
        if (fstatat(dfd, RECORD, &rec, AT_SYMLINK_NOFOLLOW) == 0 && fstat(dfd, &st) == 0 &&
            st.st_mtim.tv_sec < older_than)
            bucket_mpu_abort(owner, e->d_name);
        close(dfd);
    }
    if (d)
        closedir(d);
    close(ufd);
}

void chunked_sweep(const char *owner, int64_t older_than)
{
    int rfd, fd;
    DIR *d;
    struct dirent *e;

    if (owner) {
        sweep_bucket(owner, older_than);
        return;
    }
    rfd = bk_open_root();
    fd = rfd >= 0 ? dup(rfd) : -1;
    d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d && fd >= 0)
        close(fd);
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            sweep_bucket(e->d_name, older_than);
    if (d)
        closedir(d);
    if (rfd >= 0)
        close(rfd);
}

void chunked_sweep_due(const char *owner)
{
    static _Atomic int64_t last_all;
    int64_t now = now_mono_us(), last = atomic_load(&last_all);
    int64_t older = now_unix() - CHUNKED_TTL_S;

    if ((!last || now - last >= SWEEP_US) && atomic_compare_exchange_strong(&last_all, &last, now))
        chunked_sweep(NULL, older);
    else
        chunked_sweep(owner, older);
}
