/*
 * Who may touch a bucket's objects. Runs execute as unprivileged host uids (a different one per
 * run) and Docker containers as remapped uids; all of them reach their owner's bucket only
 * through a bind mount of DATA/buckets/<owner>/objects at /mnt/s3, and must read and write
 * there what lyceumd and earlier runs wrote. So inside objects/ everything is open to
 * everyone: each folder has mode 0777 and a default POSIX ACL granting user, group and other
 * rwx, which every file and folder made there inherits, whoever makes it and whatever its
 * umask (the umask does not apply under a default ACL); lyceumd's own files are made 0666
 * and its folders 0777. Where the filesystem has no ACLs, lyceumd's writes still follow
 * those modes, while files that runs make follow their own umask (logged once).
 *
 * The security boundary is not these modes but the folders above them: the data directory
 * and DATA/buckets are root's alone (0700), so no host user can reach any bucket through the
 * filesystem; a run sees only the one bucket bound into its sandbox.
 *
 * Buckets that lyceumd wrote before this (files 0644 or 0600, folders 0755) are opened up
 * once, by bucket_prepare_mount(), which then leaves a marker beside objects/. That walk
 * never follows a symlink, opens only what lstat says is a file or a folder (a FIFO cannot
 * block it), drops setuid and setgid bits, and never touches a root-owned file with more than
 * one link: lyceumd never links objects, so such a file may be a link to one of its keys.
 */
#include "core/err.h"
#include "core/log.h"
#include "storage/bucket.h"
#include "storage/bucket_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/acl.h>
#include <unistd.h>

#define MARKER "perm-v1" /* beside objects/: the bucket was opened up */

static pthread_once_t acl_once = PTHREAD_ONCE_INIT;
static acl_t dir_acl;      /* the default ACL of every folder; lives as long as the process */
static atomic_int acl_off; /* the filesystem has no ACLs: mode bits only */
static atomic_int acl_err_logged;

static void acl_make(void)
{
    dir_acl = acl_from_text("u::rwx,g::rwx,o::rwx");
    if (!dir_acl) {
        log_error("storage: cannot build the buckets' default ACL: %s", strerror(errno));
        atomic_store(&acl_off, 1);
    }
}

void bk_perm_dir(int fd)
{
    char path[48];

    if (fchmod(fd, 0777))
        return;
    pthread_once(&acl_once, acl_make);
    if (atomic_load(&acl_off))
        return;
    /* libacl sets a default ACL by path only: the fd's own path in /proc is that folder. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (acl_set_file(path, ACL_TYPE_DEFAULT, dir_acl) == 0)
        return;
    if (errno == EOPNOTSUPP || errno == ENOTSUP) {
        if (!atomic_exchange(&acl_off, 1))
            log_info("storage: the buckets' filesystem has no POSIX ACLs: folders and files "
                     "lyceumd makes are 0777 and 0666, but files that runs make in /mnt/s3 "
                     "follow the runs' umask");
    } else if (!atomic_exchange(&acl_err_logged, 1)) {
        log_error("storage: cannot set a bucket folder's default ACL: %s", strerror(errno));
    }
}

void bk_perm_file(int fd)
{
    (void)fchmod(fd, 0666);
}

int bk_servable(const struct stat *st)
{
    return S_ISREG(st->st_mode) && !(st->st_uid == 0 && st->st_nlink > 1);
}

/* ---- opening up a bucket written before ---- */

static void fix_enter(struct bk_walk *w, int fd)
{
    (void)w;
    bk_perm_dir(fd);
}

static int fix_visit(struct bk_walk *w, int dfd, const char *name, const struct stat *st)
{
    struct stat now;
    int fd;

    (void)w;
    if (S_ISDIR(st->st_mode))
        return WALK_ENTER;
    if (!bk_servable(st))
        return WALK_NEXT;
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return WALK_NEXT;
    /* What was opened, not what was lstat'ed: it may have been swapped meanwhile. */
    if (fstat(fd, &now) == 0 && bk_servable(&now))
        (void)fchmod(fd, 0666 | (now.st_mode & 0111 ? 0111 : 0));
    close(fd);
    return WALK_NEXT;
}

/* Opens up every folder and file of the bucket once (see the top of this file). */
static void fix_once(const char *owner, int ofd)
{
    int bfd = bk_open_sub(owner, "", 0), mfd;
    struct bk_walk w = {.visit = fix_visit, .enter = fix_enter};

    if (bfd < 0)
        return;
    if (faccessat(bfd, MARKER, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
        bk_perm_dir(ofd); /* the mount point itself, cheaply, every time */
        close(bfd);
        return;
    }
    bk_tree_walk(&w, dup(ofd));
    if (w.too_deep)
        log_info("storage: bucket %s has folders deeper than %d levels: those were left as they "
                 "were",
                 owner, WALK_DEPTH_MAX);
    mfd = openat(bfd, MARKER, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (mfd >= 0)
        close(mfd);
    close(bfd);
}

int bucket_prepare_mount(const char *owner, char *objects_dir, size_t n)
{
    int ofd;

    bk_root_private();
    ofd = bk_open_sub(owner, "objects", 1);
    if (ofd < 0)
        return LY_EIO;
    fix_once(owner, ofd);
    close(ofd);
    bk_objects_path(owner, objects_dir, n);
    return 0;
}
