/* See cgroup.h. */
#include "exec/cgroup.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int warned;

static int write_file(const char *dir, const char *file, const char *value)
{
    char path[PATH_MAX + 64];
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = write(fd, value, strlen(value));
    close(fd);
    return n == (ssize_t)strlen(value) ? 0 : -1;
}

static int make_dir(char *out, const char *root, const char *name)
{
    char parent[PATH_MAX];

    snprintf(parent, sizeof(parent), "%s/lyceumd", root);
    if (mkdir(parent, 0755) != 0 && errno != EEXIST)
        return -1;
    snprintf(out, PATH_MAX, "%.3000s/%s", parent, name);
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static void warn_once(const char *what)
{
    if (!warned++)
        log_info("cgroups not usable (%s: %s): runs are limited by rlimits only", what,
                 strerror(errno));
}

/* The v1 hierarchies a group has a directory in, one per controller. */
static const char *const v1_roots[CGROUP_MAX_DIRS] = {"/sys/fs/cgroup/memory",
                                                      "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu"};

int cgroup_create(struct cgroup *cg, const char *name, int64_t mem, int64_t pids, int cpus)
{
    char v[64];
    int ok = 1;

    memset(cg, 0, sizeof(*cg));
    for (int i = 0; i < CGROUP_MAX_DIRS; i++)
        cg->procs_fd[i] = -1;
    if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
        /* cgroup v2: one directory with every controller the root delegates. */
        write_file("/sys/fs/cgroup", "cgroup.subtree_control", "+memory +pids +cpu");
        if (make_dir(cg->dir[0], "/sys/fs/cgroup", name)) {
            warn_once("mkdir");
            return -1;
        }
        write_file("/sys/fs/cgroup/lyceumd", "cgroup.subtree_control", "+memory +pids +cpu");
        cg->ndirs = 1;
        if (mem > 0) {
            snprintf(v, sizeof(v), "%lld", (long long)mem);
            ok &= write_file(cg->dir[0], "memory.max", v) == 0;
            write_file(cg->dir[0], "memory.swap.max", "0");
        }
        if (pids > 0) {
            snprintf(v, sizeof(v), "%lld", (long long)pids);
            ok &= write_file(cg->dir[0], "pids.max", v) == 0;
        }
        if (cpus > 0) {
            snprintf(v, sizeof(v), "%d 100000", cpus * 100000);
            write_file(cg->dir[0], "cpu.max", v);
        }
    } else {
        /* cgroup v1: a directory per controller. */
        for (int i = 0; i < CGROUP_MAX_DIRS; i++) {
            if (access(v1_roots[i], W_OK) != 0 || make_dir(cg->dir[cg->ndirs], v1_roots[i], name))
                continue;
            if (i == 0 && mem > 0) {
                snprintf(v, sizeof(v), "%lld", (long long)mem);
                ok &= write_file(cg->dir[cg->ndirs], "memory.limit_in_bytes", v) == 0;
            } else if (i == 1 && pids > 0) {
                snprintf(v, sizeof(v), "%lld", (long long)pids);
                ok &= write_file(cg->dir[cg->ndirs], "pids.max", v) == 0;
            } else if (i == 2 && cpus > 0) {
                snprintf(v, sizeof(v), "%d", cpus * 100000);
                write_file(cg->dir[cg->ndirs], "cpu.cfs_period_us", "100000");
                write_file(cg->dir[cg->ndirs], "cpu.cfs_quota_us", v);
            }
            cg->ndirs++;
        }
        if (!cg->ndirs) {
            warn_once("mkdir");
            return -1;
        }
    }
    if (!ok)
        warn_once("limits");
    for (int i = 0; i < cg->ndirs; i++) {
        char path[PATH_MAX + 32];

        snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dir[i]);
        cg->procs_fd[i] = open(path, O_WRONLY | O_CLOEXEC);
    }
    return 0;
}

void cgroup_join_child(const struct cgroup *cg)
{
    for (int i = 0; i < cg->ndirs; i++)
        if (cg->procs_fd[i] >= 0) {
            ssize_t n = write(cg->procs_fd[i], "0", 1);

            (void)n;
        }
}

void cgroup_close_fds(struct cgroup *cg)
{
    for (int i = 0; i < cg->ndirs; i++)
        if (cg->procs_fd[i] >= 0) {
            close(cg->procs_fd[i]);
            cg->procs_fd[i] = -1;
        }
}

void cgroup_destroy(struct cgroup *cg)
{
    cgroup_close_fds(cg);
    for (int i = 0; i < cg->ndirs; i++) {
        char path[PATH_MAX + 32], line[32];
        FILE *f;

        /* Anything still inside (it escaped its process group) goes too. */
        snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dir[i]);
        for (int tries = 0; tries < 20; tries++) {
            int any = 0;

            f = fopen(path, "r");
            while (f && fgets(line, sizeof(line), f)) {
                kill((pid_t)atol(line), SIGKILL);
                any = 1;
            }
            if (f)
                fclose(f);
            if (!any || rmdir(cg->dir[i]) == 0)
                break;
            usleep(10000);
        }
        rmdir(cg->dir[i]);
    }
    cg->ndirs = 0;
}

void cgroup_remove(const char *name)
{
    struct cgroup cg = {0};
    const char *const v2_root[] = {"/sys/fs/cgroup"};
    int v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    const char *const *roots = v2 ? v2_root : v1_roots;

    for (int i = 0; i < (v2 ? 1 : CGROUP_MAX_DIRS); i++) {
        snprintf(cg.dir[cg.ndirs], PATH_MAX, "%s/lyceumd/%.3000s", roots[i], name);
        cg.procs_fd[cg.ndirs] = -1;
        if (access(cg.dir[cg.ndirs], F_OK) == 0)
            cg.ndirs++;
    }
    cgroup_destroy(&cg);
}
