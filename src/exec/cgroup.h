/*
 * Control groups for local runs and services (exec.h): a memory limit, a process limit and a
 * CPU quota per run,
 * under cgroup v2 (/sys/fs/cgroup/lyceumd/<run>) or, on a v1 hierarchy, under the memory,
 * pids and cpu controllers' lyceumd/<run>. Where cgroups cannot be written (no permission,
 * a read-only /sys), runs fall back to rlimits alone; that is logged once, never an error.
 */
#ifndef LYCEUMD_EXEC_CGROUP_H
#define LYCEUMD_EXEC_CGROUP_H

#include <limits.h>
#include <stdint.h>

#define CGROUP_MAX_DIRS 3

struct cgroup {
    int ndirs;
    char dir[CGROUP_MAX_DIRS][PATH_MAX];
    int procs_fd[CGROUP_MAX_DIRS]; /* cgroup.procs of each, open for the child to join */
};

/* Creates the run's groups with its limits (0 = none); 0 when the run will be in them. */
int cgroup_create(struct cgroup *cg, const char *name, int64_t mem_bytes, int64_t pids_max,
                  int cpus);
/* In the forked child, before exec: joins the groups (async-signal-safe). */
void cgroup_join_child(const struct cgroup *cg);
/* Closes the parent's descriptors (after the fork). */
void cgroup_close_fds(struct cgroup *cg);
/* Kills what is left in the groups and removes them. */
void cgroup_destroy(struct cgroup *cg);
/* The same for groups named name that a previous process left (it was killed): no-op where
 * there are none. */
void cgroup_remove(const char *name);

#endif
