/*
 * Walks a folder tree of a bucket for listings, usage and permissions (bk_tree_walk in
 * bucket_int.h). Runs write their bucket directly (it is bound at /mnt/s3), so the tree may
 * hold anything a process can make: symlinks, FIFOs, sockets, hard links, names that are no
 * keys, trees deeper than any key. So the walk never follows a symlink (each entry is
 * lstat'ed, each folder opened with O_NOFOLLOW | O_DIRECTORY from its parent's fd), never
 * opens anything but folders (a FIFO cannot block it), and is iterative: its own stack of
 * open folders, at most WALK_DEPTH_MAX deep, so neither the C stack nor the file descriptors
 * grow with what a tenant builds. The key path of each folder is kept while it fits a key.
 */
#include "storage/bucket_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct frame {
    DIR *d;
    size_t plen;
};

static void close_all(struct frame *st, int n)
{
    while (n > 0)
        closedir(st[--n].d);
}

/* Opens folder name of dfd for the walk; NULL when it is not one (any more). */
static DIR *open_folder(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    DIR *d;

    if (fd < 0)
        return NULL;
    d = fdopendir(fd);
    if (!d)
        close(fd);
    return d;
}

int bk_tree_walk(struct bk_walk *w, int fd)
{
    struct frame st[WALK_DEPTH_MAX + 1];
    int n = 0, stop = 0;
    DIR *top = fdopendir(fd);

    if (!top) {
        close(fd);
        return -1;
    }
    w->path[w->plen < sizeof(w->path) ? w->plen : 0] = '\0';
    st[n++] = (struct frame){top, w->plen};
    w->depth = 0;
    if (w->enter)
        w->enter(w, dirfd(top));
    while (n > 0 && !stop) {
        struct frame *f = &st[n - 1];
        struct dirent *e = readdir(f->d);
        struct stat sb;
        size_t len;
        DIR *sub;

        if (!e) {
            closedir(f->d);
            n--;
            if (n) {
                w->plen = st[n - 1].plen;
                if (w->plen < sizeof(w->path))
                    w->path[w->plen] = '\0';
            }
            w->depth = n - 1;
            continue;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(f->d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW))
            continue;
        switch (w->visit(w, dirfd(f->d), e->d_name, &sb)) {
        case WALK_STOP:
            stop = 1;
            continue;
        case WALK_ENTER:
            break;
        default:
            continue;
        }
        if (!S_ISDIR(sb.st_mode))
            continue;
        if (n > WALK_DEPTH_MAX) {
            w->too_deep = 1;
            continue;
        }
        sub = open_folder(dirfd(f->d), e->d_name);
        if (!sub)
            continue;
        /* The key path of the folder, while it fits; its length either way. */
        len = strlen(e->d_name);
        if (f->plen + len + 1 < sizeof(w->path)) {
            memcpy(w->path + f->plen, e->d_name, len);
            w->path[f->plen + len] = '/';
            w->path[f->plen + len + 1] = '\0';
        }
        w->plen = f->plen + len + 1;
        st[n++] = (struct frame){sub, w->plen};
        w->depth = n - 1;
        if (w->enter)
            w->enter(w, dirfd(sub));
    }
    close_all(st, n);
    return 0;
}

int bk_walk_key_fits(const struct bk_walk *w, const char *name)
{
    return w->plen + strlen(name) <= BUCKET_KEY_MAX;
}
