/*
 * What local.c shares with service.c and sandbox.c, and no one else: a command line being
 * built (argv and environment) and the fork into its own process group, control groups and
 * uid. Local runs and services (inference replicas) go through the same code, so they see the
 * same sandbox (sandbox.h) and the same limits. All of it is thread-safe.
 */
#ifndef LYCEUMD_EXEC_LOCAL_INT_H
#define LYCEUMD_EXEC_LOCAL_INT_H

#include "exec/cgroup.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARGV_MAX 320  /* bubblewrap's arguments, a GPU machine's devices, a model server's */
#define ENV_MAX  1024 /* the environment of a run, variables included */

/* A command being built: argv[0] is a path (execve does not search PATH). The strings are
 * owned by the struct: cmd_free() frees them. */
struct cmd {
    char *argv[ARGV_MAX];
    int argc;
    int too_long; /* an argument was left out */
    char *envp[ENV_MAX];
    int envc;
};

/* Appends an argument (past ARGV_MAX - 1 arguments the rest are left out, and too_long set). */
void cmd_arg(struct cmd *c, const char *s);
/* Appends NAME=value to the environment (past ENV_MAX - 1 it is left out, with a log line). */
void cmd_env(struct cmd *c, const char *name, const char *value);
void cmd_free(struct cmd *c);

/* Finds an executable on PATH (or takes a path with a slash as it is): 0, or -1. */
int exec_find(const char *name, char *out, size_t n);

/* How a forked child starts: stdin from /dev/null, stdout and stderr on the given
 * descriptors, in dir, in the control groups cg (NULL: none), under the rlimits given
 * (0: none), as uid (0: lyceumd's own; else that uid and gid, with no supplementary groups,
 * set after everything that needs root), with the descriptors keep[] passed on (their
 * close-on-exec flag is cleared in the child only). fail_msg is written to stderr when the
 * exec fails. */
struct child_setup {
    int out, err;
    const char *dir;
    const struct cgroup *cg;
    int64_t rlimit_as, rlimit_nproc;
    const char *fail_msg;
    uid_t uid;
    const int *keep;
    int nkeep;
    /* Called in the child before the uid changes (async-signal-safe); non-zero: it exits. */
    int (*setup)(const void *arg);
    const void *setup_arg;
};
/* Forks c into a session and process group of its own (no controlling terminal), with
 * PR_SET_PDEATHSIG (it dies with the thread that forked it). The child's pid, or -1 with
 * errno set. */
pid_t exec_fork(struct cmd *c, const struct child_setup *s);

/* Sends sig to the process group pgid. A SIGTERM under the sandbox spares bubblewrap's own
 * processes, which would end the sandbox at once with no grace for the command. */
void exec_signal_group(pid_t pgid, int sig);

#endif
