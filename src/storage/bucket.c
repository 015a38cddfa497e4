/*
 * See bucket.h. Every path inside a bucket is reached by bk_walk(): it opens the bucket's
 * directory and then each folder of the key with openat(O_NOFOLLOW | O_DIRECTORY), so a
 * symlink anywhere on the way fails the open instead of being followed; an object is opened
 * with O_NOFOLLOW | O_NONBLOCK and read only when fstat says it is a regular file (a FIFO a
 * run left cannot block a thread). Listings and usage walk the tree with walk.c, which
 * follows no symlink either. What lyceumd writes into objects/ is open to every uid (0666
 * files, 0777 folders: see perm.c for why that is safe).
 */
#include "storage/bucket.h"
#include "storage/bucket_int.h"
#include "storage/chunked.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

static char bk_root[PATH_MAX];
static int64_t quota;

/* Removes what uploads cut short by a crash or kill -9 left in each bucket's tmp/: nothing
 * there belongs to a live request before the server serves. */
static void sweep_tmp(void)
{
    DIR *d = opendir(bk_root);
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char path[PATH_MAX + 320];
        DIR *t;
        struct dirent *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s/tmp", bk_root, e->d_name);
        t = opendir(path);
        while (t && (f = readdir(t)))
            if (strncmp(f->d_name, "up-", 3) == 0)
                unlinkat(dirfd(t), f->d_name, 0);
        if (t)
            closedir(t);
    }
    if (d)
        closedir(d);
}

void bucket_set_quota(int64_t quota_bytes)
{
    __atomic_store_n(&quota, quota_bytes, __ATOMIC_RELAXED);
}

int bucket_init(const char *data_dir, int64_t quota_bytes)
{
    char abs_root[PATH_MAX];

    snprintf(bk_root, sizeof(bk_root), "%s/buckets", data_dir);
    quota = quota_bytes;
    if (mkdir(bk_root, 0700) && errno != EEXIST) {
        log_error("cannot create %s: %s", bk_root, strerror(errno));
        return LY_EIO;
    }
    /* Absolute, because the sandbox binds a bucket from whatever its directory is. */
    if (!realpath(bk_root, abs_root))
        return LY_EIO;
    snprintf(bk_root, sizeof(bk_root), "%s", abs_root);
    bk_root_private();
    sweep_tmp();
    chunked_sweep(NULL, now_unix() - CHUNKED_TTL_S);
    return 0;
}

int bk_open_root(void)
{
    return open(bk_root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

void bk_root_private(void)
{
    struct stat st;

    if (stat(bk_root, &st) == 0 && (st.st_mode & 07777) != 0700 && chmod(bk_root, 0700))
        log_error("cannot make %s private: %s", bk_root, strerror(errno));
}

int64_t bucket_quota(void)
{
    return quota;
}

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i], len, cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        if (!len || c > 0xf4 || i + len > n)
            return 0;
        cp = c & (0x7f >> len);
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

int bucket_prefix_ok(const char *s)
{
    size_t n = strlen(s);

    return n <= BUCKET_KEY_MAX && utf8_ok((const unsigned char *)s, n) && !strstr(s, "%00");
}

int bucket_key_check(const char *key, size_t n, const char **why)
{
    size_t seg = 0;

    *why = NULL;
    if (n == 0)
        *why = "The key is empty";
    else if (n > BUCKET_KEY_MAX)
        *why = "The key is longer than 1024 bytes";
    else if (memchr(key, 0, n) || memmem(key, n, "%00", 3))
        *why = "The key contains a NUL byte";
    else if (key[0] == '/')
        *why = "The key starts with '/'";
    else if (key[n - 1] == '/')
        *why = "The key ends with '/'";
    else if (!utf8_ok((const unsigned char *)key, n))
        *why = "The key is not valid UTF-8";
    if (*why)
        return LY_EINVAL;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && key[i] != '/')
            continue;
        if (i == seg || (i - seg == 1 && key[seg] == '.') ||
            (i - seg == 2 && key[seg] == '.' && key[seg + 1] == '.')) {
            *why = "The key has an empty, '.' or '..' segment";
            return LY_EINVAL;
        }
        if (i - seg > 255) {
            *why = "A segment of the key (between '/') is longer than 255 bytes";
            return LY_EINVAL;
        }
        seg = i + 1;
    }
    return 0;
}

void bucket_owner(const char *user_id, const char *org_id, int org_key, char out[40])
{
    if (org_key)
        snprintf(out, 40, "o-%s", org_id);
    else
        snprintf(out, 40, "%s", user_id);
}

void bucket_name(const char *owner, char out[48])
{
    if (strncmp(owner, "o-", 2) == 0)
        snprintf(out, 48, "%s", owner);
    else
        snprintf(out, 48, "u-%s", owner);
}

int bucket_owner_of(const char *name, char owner[40])
{
    size_t n = strlen(name);

    if (n < 3 || n > 39 || (strncmp(name, "u-", 2) != 0 && strncmp(name, "o-", 2) != 0))
        return LY_ENOTFOUND;
    for (const char *p = name + 2; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == '-'))
            return LY_ENOTFOUND;
    snprintf(owner, 40, "%s", name[0] == 'o' ? name : name + 2);
    return 0;
}

int bk_open_sub(const char *owner, const char *sub, int create)
{
    char path[PATH_MAX + 160];
    int fd, made = 0;

    if (strchr(owner, '/') || !*owner || owner[0] == '.') {
        errno = EINVAL;
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s", bk_root, owner);
    if (create && mkdir(path, 0700) && errno != EEXIST)
        return -1;
    if (*sub) {
        snprintf(path, sizeof(path), "%s/%s/%s", bk_root, owner, sub);
        if (create && mkdir(path, 0700) == 0)
            made = 1;
        else if (create && errno != EEXIST)
            return -1;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && made && strcmp(sub, "objects") == 0)
        bk_perm_dir(fd);
    return fd;
}

void bk_objects_path(const char *owner, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s/objects", bk_root, owner);
}

int bucket_objects_dir(const char *owner, char *buf, size_t n)
{
    return bucket_prepare_mount(owner, buf, n);
}

/*
 * Walks key's folders from dirfd (not consumed): returns an fd of the last folder (the caller
 * closes it) and points *base at the last segment. create: make missing folders. -1 with errno
 * (ENOTDIR / ELOOP when a segment is a file or a symlink).
 */
int bk_walk(int dirfd, const char *key, int create, const char **base)
{
    char seg[BUCKET_KEY_MAX + 1];
    const char *p = key, *slash;
    int fd = dup(dirfd);

    while (fd >= 0 && (slash = strchr(p, '/'))) {
        int next;

        int made = 0;

        memcpy(seg, p, (size_t)(slash - p));
        seg[slash - p] = '\0';
        if (create && mkdirat(fd, seg, 0777) == 0) {
            made = 1;
        } else if (create && errno != EEXIST) {
            close(fd);
            return -1;
        }
        next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (next >= 0 && made)
            bk_perm_dir(next);
        close(fd);
        fd = next;
        p = slash + 1;
    }
    *base = p;
    return fd;
}

/* Frees what a put holds; closes its file (but removes nothing). */
void bk_put_close(struct bucket_put *p)
{
    if (p->md5)
        EVP_MD_CTX_free(p->md5);
    p->md5 = NULL;
    free(p->buf);
    p->buf = NULL;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    if (p->slot_fd >= 0)
        close(p->slot_fd);
    p->slot_fd = -1;
}

int bk_put_init(struct bucket_put *p, const char *user_id, int64_t expect, int want_md5,
                const char **why)
{
    struct statvfs vfs;
    int dfd;

    memset(p, 0, sizeof(*p));
    p->fd = p->slot_fd = -1;
    snprintf(p->user_id, sizeof(p->user_id), "%s", user_id);
    dfd = bk_open_sub(user_id, "tmp", 1);
    if (dfd < 0)
        return LY_EIO;
    close(bk_open_sub(user_id, "objects", 1));
    p->room = INT64_MAX;
    if (quota > 0)
        p->room = quota - bucket_usage(user_id);
    if (fstatvfs(dfd, &vfs) == 0 && (int64_t)(vfs.f_bavail * vfs.f_frsize) < p->room)
        p->room = (int64_t)(vfs.f_bavail * vfs.f_frsize);
    close(dfd);
    if (expect > p->room || p->room <= 0) {
        *why = quota > 0 && p->room < quota ? "The bucket's quota is full" : "The disk is full";
        return LY_ETOOLARGE;
    }
    p->buf = xcalloc(1, PUT_BUF);
    if (want_md5) {
        p->md5 = EVP_MD_CTX_new();
        EVP_DigestInit_ex(p->md5, EVP_md5(), NULL);
    }
    return 0;
}

int bucket_put_begin(struct bucket_put *p, const char *user_id, int64_t expect, int want_md5,
                     const char **why)
{
    int err = bk_put_init(p, user_id, expect, want_md5, why), dfd;

    if (err) {
        bk_put_close(p);
        return err;
    }
    snprintf(p->tmp, sizeof(p->tmp), "up-");
    random_base62(p->tmp + 3, 24);
    dfd = bk_open_sub(user_id, "tmp", 0);
    p->fd = dfd < 0 ? -1 : openat(dfd, p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (dfd >= 0)
        close(dfd);
    if (p->fd < 0) {
        bk_put_close(p);
        return LY_EIO;
    }
    bk_perm_file(p->fd); /* it becomes an object: runs of any uid read and write it */
    return 0;
}

/* Writes out the buffered bytes at their place in the file. */
int bk_put_flush(struct bucket_put *p)
{
    size_t done = 0;

    while (done < p->blen) {
        ssize_t w = pwrite(p->fd, p->buf + done, p->blen - done, p->base + p->flushed);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno == ENOSPC || errno == EDQUOT ? LY_ETOOLARGE : LY_EIO;
        done += (size_t)w;
        p->flushed += w;
    }
    p->blen = 0;
    return 0;
}

int bucket_put_write(struct bucket_put *p, const void *buf, size_t n)
{
    const char *b = buf;

    if (p->written + (int64_t)n > p->room)
        return LY_ETOOLARGE;
    if (p->md5)
        EVP_DigestUpdate(p->md5, buf, n);
    p->written += (int64_t)n;
    while (n) {
        size_t k = n < PUT_BUF - p->blen ? n : PUT_BUF - p->blen;
        int err;

        memcpy(p->buf + p->blen, b, k);
        p->blen += k;
        b += k;
        n -= k;
        if (p->blen == PUT_BUF && (err = bk_put_flush(p)))
            return err;
    }
    return 0;
}

void bk_put_md5_hex(struct bucket_put *p, char hex[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;

    hex[0] = '\0';
    if (!p->md5)
        return;
    EVP_DigestFinal_ex(p->md5, md, &len);
    EVP_MD_CTX_free(p->md5);
    p->md5 = NULL;
    hex_encode(md, 16, hex);
}

/* Finishes the MD5 into the file's ETag attribute and etag (33 bytes, may be NULL). */
static void put_etag(struct bucket_put *p, char *etag)
{
    char hex[33];

    if (!p->md5)
        return;
    bk_put_md5_hex(p, hex);
    fsetxattr(p->fd, ETAG_XATTR, hex, 32, 0); /* best effort: some filesystems have none */
    if (etag)
        memcpy(etag, hex, 33);
}

int bk_put_finish(struct bucket_put *p, int dfd, const char *name)
{
    int tfd = bk_open_sub(p->user_id, "tmp", 0), err = bk_put_flush(p);

    if (err) {
        /* kept */
    } else if (tfd < 0 || dfd < 0) {
        err = errno == ENOTDIR || errno == ELOOP ? LY_ECONFLICT : LY_EIO;
    } else if (renameat(tfd, p->tmp, dfd, name)) {
        err = errno == EISDIR || errno == ENOTDIR ? LY_ECONFLICT : LY_EIO;
    }
    if (err && tfd >= 0)
        unlinkat(tfd, p->tmp, 0);
    if (!err)
        bk_usage_changed(p->user_id, p->written > 0 ? p->written : 0);
    if (tfd >= 0)
        close(tfd);
    if (dfd >= 0)
        close(dfd);
    bk_put_close(p);
    return err;
}

int bucket_put_commit(struct bucket_put *p, const char *key, char *etag)
{
    int ofd = bk_open_sub(p->user_id, "objects", 1), dfd;
    const char *base = NULL;

    put_etag(p, etag);
    dfd = ofd >= 0 ? bk_walk(ofd, key, 1, &base) : -1;
    if (ofd >= 0)
        close(ofd);
    return bk_put_finish(p, dfd, base);
}

int bucket_put_commit_part(struct bucket_put *p, const char *upload_id, int n, char *etag)
{
    char sub[96], name[32];
    int dfd;

    if (p->slot_fd >= 0)
        return mpu_commit_slot(p, etag);
    put_etag(p, etag);
    snprintf(sub, sizeof(sub), "uploads/%s", upload_id);
    snprintf(name, sizeof(name), "part.%d", n);
    dfd = bk_open_sub(p->user_id, sub, 0);
    if (dfd < 0 && errno == ENOENT) {
        bucket_put_abort(p);
        return LY_ENOTFOUND;
    }
    return bk_put_finish(p, dfd, name);
}

void bucket_put_abort(struct bucket_put *p)
{
    int tfd;

    if (p->slot_fd >= 0) {
        mpu_abort_slot(p);
        bk_put_close(p);
        return;
    }
    if (p->fd >= 0 && (tfd = bk_open_sub(p->user_id, "tmp", 0)) >= 0) {
        unlinkat(tfd, p->tmp, 0);
        close(tfd);
    }
    bk_put_close(p);
}

int bucket_open(const char *user_id, const char *key, int *fd, struct stat *st)
{
    int ofd = bk_open_sub(user_id, "objects", 0), dfd;
    const char *base;

    *fd = -1;
    if (ofd < 0)
        return LY_ENOTFOUND;
    dfd = bk_walk(ofd, key, 0, &base);
    close(ofd);
    if (dfd < 0)
        return LY_ENOTFOUND;
    *fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    close(dfd);
    if (*fd < 0)
        return LY_ENOTFOUND;
    if (fstat(*fd, st) || !bk_servable(st)) {
        close(*fd);
        *fd = -1;
        return LY_ENOTFOUND;
    }
    fcntl(*fd, F_SETFL, 0);
    return 0;
}

void bucket_etag(int fd, const struct stat *st, char out[48])
{
    ssize_t n = fgetxattr(fd, ETAG_XATTR, out, 47);

    if (n > 0) {
        out[n] = '\0';
        return;
    }
    snprintf(out, 48, "%llx-%llx", (unsigned long long)st->st_size,
             (unsigned long long)st->st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st->st_mtim.tv_nsec);
}

/* Removes the empty folders of key's path, deepest first, up to the bucket. */
static void prune(int ofd, const char *key)
{
    char path[BUCKET_KEY_MAX + 1];
    char *slash;

    snprintf(path, sizeof(path), "%s", key);
    while ((slash = strrchr(path, '/'))) {
        *slash = '\0';
        if (unlinkat(ofd, path, AT_REMOVEDIR))
            break;
    }
}

int bucket_delete(const char *user_id, const char *key)
{
    int ofd = bk_open_sub(user_id, "objects", 0), dfd, rc;
    const char *base;
    struct stat st;

    if (ofd < 0)
        return LY_ENOTFOUND;
    dfd = bk_walk(ofd, key, 0, &base);
    if (dfd < 0) {
        close(ofd);
        return LY_ENOTFOUND;
    }
    rc = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)
             ? unlinkat(dfd, base, 0)
             : -1;
    close(dfd);
    if (rc == 0) {
        prune(ofd, key);
        bk_usage_changed(user_id, 0);
    }
    close(ofd);
    return rc == 0 ? 0 : LY_ENOTFOUND;
}

/* ---- listing ---- */

struct lister {
    const char *prefix;
    size_t plen;
    json_t *out;
    int64_t bytes, entries; /* usage: what every regular file takes, and how many entries */
};

/* Only folders that can still lead to the prefix, or lie under it, are entered; only regular
 * files whose path is a valid key are listed (a run may leave names that are none). */
static int list_visit(struct bk_walk *w, int dfd, const char *name, const struct stat *st)
{
    struct lister *l = w->ctx;
    char key[BUCKET_KEY_MAX + 2];
    size_t n = strlen(name), len = w->plen, cmp;
    const char *why;

    (void)dfd;
    if (!bk_walk_key_fits(w, name))
        return WALK_NEXT;
    memcpy(key, w->path, len);
    memcpy(key + len, name, n + 1);
    cmp = len + n < l->plen ? len + n : l->plen;
    if (strncmp(key, l->prefix, cmp) != 0)
        return WALK_NEXT;
    if (S_ISDIR(st->st_mode))
        return WALK_ENTER;
    if (bk_servable(st) && len + n >= l->plen && bucket_key_check(key, len + n, &why) == 0)
        json_array_append_new(
            l->out,
            json_pack("{s:s,s:I,s:I}", "key", key, "size", (json_int_t)st->st_size, "mtime",
                      (json_int_t)st->st_mtim.tv_sec * 1000000 + st->st_mtim.tv_nsec / 1000));
    return WALK_NEXT;
}

static int by_key(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;

    return strcmp(json_string_value(json_object_get(x, "key")),
                  json_string_value(json_object_get(y, "key")));
}

int bucket_list(const char *owner, const char *prefix, const char *start_after, size_t max,
                json_t *out, int *more)
{
    struct lister l = {.prefix = prefix ? prefix : "", .out = json_array()};
    struct bk_walk w = {.visit = list_visit, .ctx = &l};
    int fd = bk_open_sub(owner, "objects", 0);
    size_t n, i;
    json_t **v;

    *more = 0;
    l.plen = strlen(l.prefix);
    if (fd >= 0)
        bk_tree_walk(&w, fd);
    n = json_array_size(l.out);
    v = xmalloc((n ? n : 1) * sizeof(*v));
    for (i = 0; i < n; i++)
        v[i] = json_array_get(l.out, i);
    qsort(v, n, sizeof(*v), by_key);
    for (i = 0; i < n; i++) {
        if (start_after &&
            strcmp(json_string_value(json_object_get(v[i], "key")), start_after) <= 0)
            continue;
        if (json_array_size(out) >= max) {
            *more = 1;
            break;
        }
        json_array_append(out, v[i]);
    }
    free(v);
    json_decref(l.out);
    return 0;
}

/* Usage counts every regular file wherever it lies, however long its path. */
static int usage_visit(struct bk_walk *w, int dfd, const char *name, const struct stat *st)
{
    struct lister *l = w->ctx;

    (void)dfd;
    (void)name;
    l->entries++;
    if (S_ISDIR(st->st_mode))
        return WALK_ENTER;
    /* What the file takes: a multipart upload's data file has holes. */
    if (S_ISREG(st->st_mode))
        l->bytes += st->st_blocks * 512 < st->st_size ? st->st_blocks * 512 : st->st_size;
    return WALK_NEXT;
}

struct tree_usage {
    struct lister l;
    const char *const *skip;
};

static int tree_visit(struct bk_walk *w, int dfd, const char *name, const struct stat *st)
{
    struct tree_usage *t = w->ctx;

    for (const char *const *p = t->skip; w->depth == 0 && p && *p; p++)
        if (strcmp(name, *p) == 0)
            return WALK_NEXT;
    w->ctx = &t->l;
    usage_visit(w, dfd, name, st);
    w->ctx = t;
    return S_ISDIR(st->st_mode) ? WALK_ENTER : WALK_NEXT;
}

int64_t bucket_tree_bytes(const char *path, const char *const *skip, int *too_deep)
{
    struct tree_usage t = {.l = {.prefix = ""}, .skip = skip};
    struct bk_walk w = {.visit = tree_visit, .ctx = &t};
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    *too_deep = 0;
    if (fd < 0)
        return 0;
    bk_tree_walk(&w, fd);
    *too_deep = w.too_deep;
    return t.l.bytes;
}

static int64_t usage_of(const char *owner, const char *sub, int *too_deep)
{
    struct lister l = {.prefix = ""};
    struct bk_walk w = {.visit = usage_visit, .ctx = &l};
    int fd = bk_open_sub(owner, sub, 0);

    if (fd >= 0)
        bk_tree_walk(&w, fd);
    if (w.too_deep)
        *too_deep = 1;
    return l.bytes;
}

/*
 * Usage is a walk of the bucket, too slow to repeat for every part of a multipart upload in a
 * big bucket: each bucket's figure is kept for USAGE_TTL_US, grows as uploads land, and is
 * walked again once stale or after a delete. The quota is therefore checked against a figure
 * at most that old (plus what landed since); uploads running side by side can pass it by
 * their own sizes. While runs have the bucket mounted, runs/quota.c walks it every second or
 * two (bucket_measure), which also refreshes the figure here.
 */
#define USAGE_TTL_US (5 * 1000000LL)

struct usage {
    char owner[40];
    int64_t bytes, at_us;
    struct usage *next;
};

static pthread_mutex_t usage_mu = PTHREAD_MUTEX_INITIALIZER;
static struct usage *usages; /* one per bucket seen; they live as long as the process */

static struct usage *usage_find(const char *owner)
{
    for (struct usage *u = usages; u; u = u->next)
        if (strcmp(u->owner, owner) == 0)
            return u;
    return NULL;
}

int64_t bucket_measure(const char *owner, int *too_deep)
{
    struct usage *u;
    int64_t bytes, now = now_mono_us();
    int deep = 0;

    bytes = usage_of(owner, "objects", &deep) + usage_of(owner, "uploads", &deep);
    if (too_deep)
        *too_deep = deep;
    pthread_mutex_lock(&usage_mu);
    u = usage_find(owner);
    if (!u) {
        u = xcalloc(1, sizeof(*u));
        snprintf(u->owner, sizeof(u->owner), "%s", owner);
        u->next = usages;
        usages = u;
    }
    u->bytes = bytes;
    u->at_us = now;
    pthread_mutex_unlock(&usage_mu);
    return bytes;
}

int64_t bucket_usage(const char *owner)
{
    struct usage *u;
    int64_t bytes, now = now_mono_us();

    pthread_mutex_lock(&usage_mu);
    u = usage_find(owner);
    if (u && u->at_us && now - u->at_us < USAGE_TTL_US) {
        bytes = u->bytes;
        pthread_mutex_unlock(&usage_mu);
        return bytes;
    }
    pthread_mutex_unlock(&usage_mu);
    return bucket_measure(owner, NULL);
}

int64_t bucket_room(const char *owner)
{
    int64_t room = INT64_MAX, used;
    struct statvfs vfs;

    if (quota > 0) {
        used = bucket_usage(owner);
        room = used < quota ? quota - used : 0;
    }
    if (statvfs(bk_root, &vfs) == 0 && (int64_t)(vfs.f_bavail * vfs.f_frsize) < room)
        room = (int64_t)(vfs.f_bavail * vfs.f_frsize);
    return room;
}

/* An upload of n bytes landed (n > 0), or something was deleted (n 0: walk again). */
void bk_usage_changed(const char *owner, int64_t n)
{
    struct usage *u;

    pthread_mutex_lock(&usage_mu);
    u = usage_find(owner);
    if (u && n > 0)
        u->bytes += n;
    else if (u)
        u->at_us = 0;
    pthread_mutex_unlock(&usage_mu);
}

int bucket_delete_prefix(const char *user_id, const char *prefix, int64_t *count)
{
    json_t *all = json_array(), *o;
    size_t i;
    int more;

    *count = 0;
    bucket_list(user_id, prefix, NULL, SIZE_MAX, all, &more);
    json_array_foreach(
        all, i,
        o) if (bucket_delete(user_id, json_string_value(json_object_get(o, "key"))) == 0)(*count)++;
    json_decref(all);
    return 0;
}

/* Copies size bytes from fd's position into the upload (copy_file_range, else read/write). */
int bk_put_from_fd(struct bucket_put *p, int fd, int64_t size)
{
    int64_t left = size;
    int err;

    if (p->written + size > p->room)
        return LY_ETOOLARGE;
    if ((err = bk_put_flush(p)))
        return err;
    while (!p->md5 && left > 0) {
        loff_t out = p->base + p->flushed;
        ssize_t n = copy_file_range(fd, NULL, p->fd, &out, (size_t)left, 0);

        if (n <= 0)
            break;
        left -= n;
        p->written += n;
        p->flushed += n;
    }
    while (left > 0) {
        char buf[65536];
        ssize_t n = read(fd, buf, left < (int64_t)sizeof(buf) ? (size_t)left : sizeof(buf));

        if (n <= 0)
            return LY_EIO;
        err = bucket_put_write(p, buf, (size_t)n);
        if (err)
            return err;
        left -= n;
    }
    return 0;
}

int bucket_copy(const char *user_id, const char *src, const char *dst, char etag[48],
                const char **why)
{
    struct bucket_put p;
    struct stat st;
    int fd, err = bucket_open(user_id, src, &fd, &st);

    if (err)
        return err;
    err = bucket_put_begin(&p, user_id, st.st_size, 1, why);
    if (!err)
        err = bk_put_from_fd(&p, fd, st.st_size);
    close(fd);
    if (err) {
        bucket_put_abort(&p);
        return err;
    }
    return bucket_put_commit(&p, dst, etag);
}

int bucket_copy_part(const char *user_id, const char *src, int64_t off, int64_t len,
                     const char *upload_id, int n, char etag[48], const char **why)
{
    struct bucket_put p;
    struct stat st;
    int fd, err = bucket_open(user_id, src, &fd, &st);

    if (err)
        return err;
    if (off < 0 || off > st.st_size) {
        close(fd);
        *why = "The copy range starts past the end of the source object";
        return LY_EBADREQ;
    }
    if (len < 0)
        len = st.st_size - off;
    /* Compared without adding: off + len could pass INT64_MAX. */
    if (len > st.st_size - off || lseek(fd, off, SEEK_SET) != off) {
        close(fd);
        *why = "The copy range lies outside the source object";
        return LY_EBADREQ;
    }
    err = bucket_put_begin(&p, user_id, len, 1, why);
    if (!err)
        err = bk_put_from_fd(&p, fd, len);
    close(fd);
    if (err) {
        bucket_put_abort(&p);
        return err;
    }
    return bucket_put_commit_part(&p, upload_id, n, etag);
}
