/*
 * The sandbox of tenant code: how a local run's phases and an inference replica's model server
 * are confined (exec/local.c, exec/service.c). Only exec/ includes this.
 *
 * A sandboxed command runs:
 *   - as an unprivileged host uid of its own (sandbox_uid_take: one per run or replica, from
 *     the config's range, never shared by two at once), set before bubblewrap is started, so
 *     nothing in the sandbox is ever host uid 0;
 *   - in bubblewrap's namespaces (user, mount, pid, ipc, uts, cgroup, network), with no
 *     capabilities, no_new_privs, no further user namespaces, and a seccomp filter (libseccomp)
 *     refusing mount, ptrace, bpf, keyctl, kexec, modules, raw and packet sockets and the like;
 *   - over a root made of the system's /usr, /etc and /opt read-only (a passwd naming its uid,
 *     no host /run, /tmp, /var, /home or /root: no host socket file), its own directory
 *     read-write, its bucket at /mnt/s3, and what its view adds read-only, all opened by
 *     lyceumd and staged for bubblewrap (struct sandbox_bind): the run's uid cannot even
 *     traverse the data directory;
 *   - in a network namespace of its own: loopback only, or with "sandbox_network" outbound
 *     through slirp4netns, whose sockets on the host pass the egress filter (exec/egress.h):
 *     never the host's loopback, its own addresses or private and special ranges.
 *
 * Life of one: sandbox_prepare() builds bubblewrap's arguments and descriptors, the caller
 * forks with exec_fork() (child_setup.uid and keep from the struct), then sandbox_started()
 * waits for bubblewrap's namespaces, attaches the network and lets the command run;
 * sandbox_end() stops the network helper and closes what is left. Thread-safe: each struct
 * sandbox has one owner.
 */
#ifndef LYCEUMD_EXEC_SANDBOX_H
#define LYCEUMD_EXEC_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

struct cmd;
struct config;

#define SANDBOX_FDS   24
#define SANDBOX_BINDS 16

/* What a sandboxed command sees beside the read-only system, a private /tmp and /run. */
/* Where a sandboxed command finds its own directory: its HOME and working directory. */
#define SANDBOX_HOME "/home/lyceum"

struct sandbox_view {
    const char *rw_dir;          /* its own directory, read-write, seen at SANDBOX_HOME */
    const char *bucket;          /* the bucket owner whose objects are at /mnt/s3, or NULL */
    const char *const *ro_paths; /* more paths shown read-only (NULL-ended; may be NULL) */
    const char *exe;             /* its executable: its directory is shown read-only when it
                                    is not under the system's directories (NULL: none) */
    int network;                 /* 1: outbound through the user-mode stack; 0: loopback only */
    int gpus;                    /* it holds GPUs: NVIDIA's device files and /sys are shown */
    int keep_netns;              /* the caller will reach into its network (replicas) */
    uid_t uid;                   /* the host uid it runs as (sandbox_uid_take) */
};

/* A path of lyceumd's that the sandbox shows: a detached bind mount of it made by lyceumd
 * (open_tree), attached by the forked child, in a mount namespace of its own and while it is
 * still root, at stage (/run/lyceumd/N), from where the unprivileged bubblewrap binds it to
 * its destination. The sandbox's uid never needs to traverse the data directory. */
struct sandbox_bind {
    int fd; /* the detached mount */
    int is_dir;
    char stage[40];
};

struct sandbox {
    uid_t uid;
    int keep[SANDBOX_FDS]; /* descriptors bubblewrap reads (close-on-exec here, not in it) */
    int nkeep;
    struct sandbox_bind bind[SANDBOX_BINDS];
    int nbind;
    int info_r, block_w; /* our ends of bubblewrap's --info-fd and --block-fd, or -1 */
    int network, keep_netns;
    int netns;          /* the sandbox's network namespace, when kept (keep_netns), else -1 */
    pid_t net_pid;      /* slirp4netns, or 0 */
    const char *failed; /* the path that could not be shown, when preparing failed */
};

/* Sets the sandbox up from the config: finds bubblewrap and slirp4netns, compiles the seccomp
 * filter, installs the egress filter, ends processes a killed lyceumd left under the uid
 * range, and proves it all by running `true` in a sandbox. 0, or LY_E* with the reason logged
 * (the config asked for a sandbox this host cannot give). A config with "sandbox": false
 * turns it off: then nothing here is used. */
int sandbox_init(const struct config *c);
/* 1 when tenant code runs sandboxed. */
int sandbox_on(void);

/* A uid of the range for a new run or replica, or 0 when all are taken. sandbox_uid_give()
 * ends every process still running as it, then returns it to the pool. */
uid_t sandbox_uid_take(void);
void sandbox_uid_give(uid_t uid);

/* Appends bubblewrap and its arguments to c, ending with "--" (the command follows), and
 * fills sb. 0, or -1 with why set (sb then holds nothing). */
int sandbox_prepare(struct sandbox *sb, struct cmd *c, const struct sandbox_view *v, char *why,
                    size_t n);
/* In the forked child, before its uid changes (async-signal-safe): a mount namespace of its
 * own with the staged binds of sb (a const struct sandbox *). 0, or -1. */
int sandbox_child(const void *sb);
/* After the fork of bubblewrap: closes the child's descriptors, waits for its
 * namespaces, attaches the network, and lets the command start. 0, or -1 with why set (the
 * caller kills bubblewrap's group and calls sandbox_end). */
int sandbox_started(struct sandbox *sb, char *why, size_t n);
/* Stops the network helper and closes every descriptor left. Safe to call twice. */
void sandbox_end(struct sandbox *sb);

#endif
