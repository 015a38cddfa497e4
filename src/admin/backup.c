/* See backup.h. */
#include "admin/backup.h"

#include "core/worker.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "store/db.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FORMAT 1

/* What an archive holds besides MANIFEST.json: the database first, then the keys. */
static const char *const files[] = {"lyceumd.db", "jwt.key", "master.key", "invoice.key", NULL};
/* The files of the live database that a restore moves aside with it. */
static const char *const live_files[] = {
    "lyceumd.db", "lyceumd.db-wal", "lyceumd.db-shm", "jwt.key", "master.key", "invoice.key", NULL};

int backup_lock_data(const char *data_dir, char *why, size_t n)
{
    char path[1100], pid[32];
    int fd;

    snprintf(path, sizeof(path), "%s/lyceumd.lock", data_dir);
    if (mkdir(data_dir, 0700) && errno != EEXIST) {
        snprintf(why, n, "cannot create %s: %s", data_dir, strerror(errno));
        return LY_EIO;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, n, "%s: %s", path, strerror(errno));
        return LY_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        ssize_t k = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[k > 0 ? k : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(why, n, "a lyceumd server is using %s (pid %s holds %s): stop it first", data_dir,
                 pid[0] ? pid : "?", path);
        close(fd);
        return LY_ECONFLICT;
    }
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, pid, strlen(pid), 0) < 0) {
        snprintf(why, n, "%s: %s", path, strerror(errno));
        close(fd);
        return LY_EIO;
    }
    return fd;
}

/* Appends the file at path to a as name. */
static int add_file(struct archive *a, const char *path, const char *name, char *why, size_t n)
{
    struct stat sb;
    char chunk[65536];
    ssize_t k;
    int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

    if (fd < 0 || fstat(fd, &sb)) {
        snprintf(why, n, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return LY_EIO;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, sb.st_size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0600);
    archive_entry_set_mtime(e, sb.st_mtime, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK) {
        snprintf(why, n, "archive: %s", archive_error_string(a));
        err = LY_EIO;
    }
    while (!err && (k = read(fd, chunk, sizeof(chunk))) > 0)
        if (archive_write_data(a, chunk, (size_t)k) != k) {
            snprintf(why, n, "archive: %s", archive_error_string(a));
            err = LY_EIO;
        }
    archive_entry_free(e);
    close(fd);
    return err;
}

static int add_text(struct archive *a, const char *name, const char *text, char *why, size_t n)
{
    size_t len = strlen(text);
    struct archive_entry *e = archive_entry_new();
    int err = 0;

    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0600);
    archive_entry_set_mtime(e, time(NULL), 0);
    if (archive_write_header(a, e) != ARCHIVE_OK ||
        archive_write_data(a, text, len) != (la_ssize_t)len) {
        snprintf(why, n, "archive: %s", archive_error_string(a));
        err = LY_EIO;
    }
    archive_entry_free(e);
    return err;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

int backup_create(const char *data_dir, const char *out, char *why, size_t n)
{
    char db_copy[1200], tmp[1200], path[1200], when[32];
    int schema = 0, err;
    time_t now = time(NULL);
    struct tm tm;
    struct archive *a;
    json_t *manifest, *names;

    snprintf(db_copy, sizeof(db_copy), "%s.db-%ld", out, (long)getpid());
    snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", out, (long)getpid());
    unlink(db_copy);
    err = store_backup(db_copy, why, n);
    if (!err)
        err = store_check_file(db_copy, &schema, why, n);
    if (err) {
        unlink(db_copy);
        return err;
    }
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    names = json_array();
    json_array_append_new(names, json_string("lyceumd.db"));
    for (int i = 1; files[i]; i++) {
        snprintf(path, sizeof(path), "%s/%s", data_dir, files[i]);
        if (access(path, R_OK) == 0)
            json_array_append_new(names, json_string(files[i]));
    }
    manifest = json_pack("{s:s, s:i, s:s, s:i, s:O}", "kind", "lyceumd-backup", "format", FORMAT,
                         "created_at", when, "schema", schema, "files", names);
    char *text = json_dumps(manifest, JSON_INDENT(2));

    a = archive_write_new();
    if (archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
        archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_open_filename(a, tmp) != ARCHIVE_OK) {
        snprintf(why, n, "%s: %s", tmp, archive_error_string(a));
        err = LY_EIO;
    }
    if (!err)
        err = add_text(a, "MANIFEST.json", text, why, n);
    for (size_t i = 0; !err && i < json_array_size(names); i++) {
        const char *name = json_string_value(json_array_get(names, i));
        if (i == 0)
            snprintf(path, sizeof(path), "%s", db_copy);
        else
            snprintf(path, sizeof(path), "%s/%s", data_dir, name);
        err = add_file(a, path, name, why, n);
    }
    if (archive_write_close(a) != ARCHIVE_OK && !err) {
        snprintf(why, n, "%s: %s", tmp, archive_error_string(a));
        err = LY_EIO;
    }
    archive_write_free(a);
    free(text);
    json_decref(manifest);
    json_decref(names);
    unlink(db_copy);
    if (!err && (fsync_path(tmp) || rename(tmp, out))) {
        snprintf(why, n, "%s: %s", out, strerror(errno));
        err = LY_EIO;
    }
    if (err)
        unlink(tmp);
    return err;
}

static int allowed(const char *name)
{
    if (strcmp(name, "MANIFEST.json") == 0)
        return 1;
    for (int i = 0; files[i]; i++)
        if (strcmp(name, files[i]) == 0)
            return 1;
    return 0;
}

/* Extracts the archive's files into dir (made here, empty). */
static int extract(const char *archive, const char *dir, char *why, size_t n)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    char path[1200], chunk[65536];
    int err = 0, rc;

    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, archive, 65536) != ARCHIVE_OK) {
        snprintf(why, n, "%s: %s", archive, archive_error_string(a));
        archive_read_free(a);
        return LY_EINVAL;
    }
    while (!err && (rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (!name || !allowed(name) || archive_entry_filetype(e) != AE_IFREG) {
            snprintf(why, n, "%s holds '%s', which no lyceumd backup holds", archive,
                     name ? name : "?");
            err = LY_EINVAL;
            break;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(why, n, "%s: %s", path, strerror(errno));
            err = LY_EIO;
            break;
        }
        la_ssize_t k;
        while ((k = archive_read_data(a, chunk, sizeof(chunk))) > 0)
            if (write(fd, chunk, (size_t)k) != k) {
                snprintf(why, n, "%s: %s", path, strerror(errno));
                err = LY_EIO;
                break;
            }
        if (!err && k < 0) {
            snprintf(why, n, "%s: %s", archive, archive_error_string(a));
            err = LY_EINVAL;
        }
        if (!err && fsync(fd)) {
            snprintf(why, n, "%s: %s", path, strerror(errno));
            err = LY_EIO;
        }
        close(fd);
    }
    if (!err && rc != ARCHIVE_EOF) {
        snprintf(why, n, "%s: %s", archive, archive_error_string(a));
        err = LY_EINVAL;
    }
    archive_read_free(a);
    return err;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[1400];

    if (!d)
        return;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

/* The extracted backup in dir is whole: a manifest of this format, a sound database. */
static int check_extracted(const char *dir, const char *archive, char *why, size_t n)
{
    char path[1200];
    json_error_t jerr;
    int schema;

    snprintf(path, sizeof(path), "%s/MANIFEST.json", dir);
    json_t *m = json_load_file(path, 0, &jerr);
    if (!m || strcmp(json_string_value(json_object_get(m, "kind")) ?: "", "lyceumd-backup") ||
        json_integer_value(json_object_get(m, "format")) != FORMAT) {
        snprintf(why, n, "%s is not a lyceumd backup of format %d (no MANIFEST.json saying so)",
                 archive, FORMAT);
        json_decref(m);
        return LY_EINVAL;
    }
    json_decref(m);
    snprintf(path, sizeof(path), "%s/lyceumd.db", dir);
    if (access(path, R_OK)) {
        snprintf(why, n, "%s holds no lyceumd.db", archive);
        return LY_EINVAL;
    }
    return store_check_file(path, &schema, why, n);
}

int backup_restore(const char *archive, const char *data_dir, char *why, size_t n)
{
    char stage[1100], aside[1100], from[1300], to[1300], when[32];
    time_t now = time(NULL);
    struct tm tm;
    int lock, err;

    lock = backup_lock_data(data_dir, why, n);
    if (lock < 0)
        return lock;
    snprintf(stage, sizeof(stage), "%s/.restore-%ld", data_dir, (long)getpid());
    remove_dir(stage);
    if (mkdir(stage, 0700)) {
        snprintf(why, n, "%s: %s", stage, strerror(errno));
        close(lock);
        return LY_EIO;
    }
    err = extract(archive, stage, why, n);
    if (!err)
        err = check_extracted(stage, archive, why, n);
    if (err) {
        remove_dir(stage);
        close(lock);
        return err;
    }
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(aside, sizeof(aside), "%s/pre-restore-%s", data_dir, when);
    for (int i = 0; !err && live_files[i]; i++) {
        snprintf(from, sizeof(from), "%s/%s", data_dir, live_files[i]);
        if (access(from, F_OK))
            continue;
        snprintf(to, sizeof(to), "%s/%s", aside, live_files[i]);
        if ((mkdir(aside, 0700) && errno != EEXIST) || rename(from, to)) {
            snprintf(why, n, "moving %s aside: %s", from, strerror(errno));
            err = LY_EIO;
        }
    }
    for (int i = 0; !err && files[i]; i++) {
        snprintf(from, sizeof(from), "%s/%s", stage, files[i]);
        if (access(from, F_OK))
            continue;
        snprintf(to, sizeof(to), "%s/%s", data_dir, files[i]);
        if (rename(from, to)) {
            snprintf(why, n, "%s: %s", to, strerror(errno));
            err = LY_EIO;
        }
    }
    remove_dir(stage);
    close(lock);
    return err;
}

/* The periodic backup. */

static struct worker_pool *pool; /* the periodic backup: a pool of one */
static char dir_of[1024], data_of[1024];
static int interval_s, keep;

static int newest_first(const void *a, const void *b)
{
    return -strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes the oldest lyceumd-*.tar.gz of dir beyond keep (their names sort by time). */
static void prune(void)
{
    DIR *d = opendir(dir_of);
    struct dirent *de;
    char **names = NULL, path[1400];
    size_t count = 0, cap = 0;

    if (!d)
        return;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "lyceumd-", 8) || len < 15 ||
            strcmp(de->d_name + len - 7, ".tar.gz"))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            names = realloc(names, cap * sizeof(*names));
            if (!names)
                abort();
        }
        names[count++] = xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, count, sizeof(*names), newest_first);
    for (size_t i = 0; i < count; i++) {
        if (i >= (size_t)keep) {
            snprintf(path, sizeof(path), "%s/%s", dir_of, names[i]);
            if (unlink(path) == 0)
                log_info("backup: removed %s (backup_keep %d)", path, keep);
        }
        free(names[i]);
    }
    free(names);
}

static void take_one(void)
{
    char out[1200], when[32], why[512];
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out, sizeof(out), "%s/lyceumd-%s.tar.gz", dir_of, when);
    if (backup_create(data_of, out, why, sizeof(why)))
        log_error("backup: %s: %s", out, why);
    else
        log_info("backup: wrote %s", out);
    prune();
    store_close();
}

static void periodic(void *arg)
{
    (void)arg;
    while (!worker_sleep(pool, (int64_t)interval_s * 1000000))
        take_one();
}

int backup_periodic_start(const struct config *cfg)
{
    if (cfg->backup_interval_hours <= 0)
        return 0;
    if (cfg->backup_dir[0])
        snprintf(dir_of, sizeof(dir_of), "%s", cfg->backup_dir);
    else
        snprintf(dir_of, sizeof(dir_of), "%.1000s/backups", cfg->data_dir);
    snprintf(data_of, sizeof(data_of), "%s", cfg->data_dir);
    if (mkdir(dir_of, 0700) && errno != EEXIST) {
        log_error("backup: %s: %s", dir_of, strerror(errno));
        return LY_EIO;
    }
    interval_s = (int)(cfg->backup_interval_hours * 3600);
    if (interval_s < 1)
        interval_s = 1;
    keep = cfg->backup_keep;
    pool = worker_pool_new("periodic backups", 1, 0);
    if (worker_submit(pool, periodic, NULL)) {
        worker_pool_free(pool);
        pool = NULL;
        return LY_EINTERNAL;
    }
    log_info("backup: every %g h into %s, the newest %d kept", cfg->backup_interval_hours, dir_of,
             keep);
    return 0;
}

void backup_periodic_stop(void)
{
    worker_pool_free(pool); /* wakes its sleep */
    pool = NULL;
}
