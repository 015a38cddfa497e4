/*
 * Files (API.md 12; see file.h): a file's bytes are DATA/files/<id>, written to a temporary
 * file that is renamed, then its row; deleting one deletes its row, then its bytes.
 */
#include "batch/file.h"
#include "core/err.h"
#include "core/util.h"
#include "store/inference.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char files_dir[1024]; /* DATA: set once at start-up, before any request */

void batch_file_dir(const char *data_dir)
{
    snprintf(files_dir, sizeof(files_dir), "%s", data_dir);
}

void batch_file_path(const char *id, char *out, size_t n)
{
    snprintf(out, n, "%s/files/%s", files_dir, id);
}

int batch_file_store(const char *org_id, const char *id, const char *filename, const char *purpose,
                     const char *data, size_t len)
{
    char path[1200], tmp[1300];
    int fd, err = 0;

    snprintf(path, sizeof(path), "%s/files", files_dir);
    mkdir(path, 0700);
    batch_file_path(id, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return LY_EIO;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = LY_EIO;
            break;
        }
        off += (size_t)w;
    }
    if (!err && fsync(fd))
        err = LY_EIO;
    close(fd);
    if (!err && rename(tmp, path))
        err = LY_EIO;
    if (err) {
        unlink(tmp);
        return err;
    }
    err = db_file_insert(id, org_id, filename, purpose, (int64_t)len);
    return err == LY_ECONFLICT ? 0 : err; /* a finalization done again writes the same file */
}

int batch_file_write(const char *org_id, const char *filename, const char *purpose,
                     const char *data, size_t len, char *id)
{
    char u[40];

    uuid_v4(u);
    snprintf(id, 40, "file-%.8s%.4s%.4s%.4s%.12s", u, u + 9, u + 14, u + 19, u + 24);
    return batch_file_store(org_id, id, filename, purpose, data, len);
}

int batch_file_get(const char *org_id, const char *id, struct file_row *out)
{
    return db_file_get(org_id, id, out);
}

int batch_file_list(const char *org_id, const char *purpose, struct file_rows *out)
{
    return db_file_list(org_id, purpose, out);
}

int batch_file_delete(const char *org_id, const char *id)
{
    char path[1200];
    int n = db_file_delete(org_id, id);

    if (n <= 0)
        return n;
    batch_file_path(id, path, sizeof(path));
    unlink(path);
    return 1;
}
