/*
 * What local.c shares with service.c, and no one else: a command line being built (argv and
 * environment), the bubblewrap sandbox around it, and the fork into its own process group and
 * control groups. Local runs and services (inference replicas) go through the same code, so
 * they see the same sandbox and the same limits.
 *
 * exec_local_init() sets the sandbox up (whether bubblewrap is used, the data directory it
 * hides) before anything here is called; afterwards all of it is thread-safe.
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
/* 1 when commands run in the bubblewrap sandbox (it is installed and the config allows it). */
int exec_sandboxed(void);

/* What a sandboxed command sees beside the read-only system and a private /tmp. */
struct sandbox_view {
    const char *rw_dir;          /* its own directory, read-write, the working directory */
    const char *bucket_user;     /* the user whose bucket is at /mnt/s3, or NULL */
    const char *const *ro_paths; /* more paths shown read-only (NULL-ended; may be NULL) */
    int network;                 /* 0: a network namespace of its own (loopback only) */
    int gpus;                    /* it holds GPUs: NVIDIA's device files are shown */
};
/* Appends bubblewrap and its arguments, ending with "--": the command follows. */
void sandbox_args(struct cmd *c, const struct sandbox_view *v);

/* How a forked child starts: stdin from /dev/null, stdout and stderr on the given
 * descriptors, in dir, in the control groups cg (NULL: none), under the rlimits given
 * (0: none). fail_msg is written to stderr when the exec fails. */
struct child_setup {
    int out, err;
    const char *dir;
    const struct cgroup *cg;
    int64_t rlimit_as, rlimit_nproc;
    const char *fail_msg;
};
/* Forks c into its own process group, with PR_SET_PDEATHSIG (it dies with the thread that
 * forked it). The child's pid, or -1 with errno set. */
pid_t exec_fork(struct cmd *c, const struct child_setup *s);

/* Sends sig to the process group pgid. A SIGTERM under the sandbox spares bubblewrap's own
 * processes, which would end the sandbox at once with no grace for the command. */
void exec_signal_group(pid_t pgid, int sig);

#endif
