/*
 * The executors: one interface, several backends (local processes, Docker, Slurm), so the
 * scheduler never knows which one runs a job. Backends are registered by name (registry.c);
 * the scheduler looks one up by its profile's backend name and the run's kind, and learns
 * what differs between them (whether runs draw on this machine's GPUs, whether jobs outlive
 * lyceumd) from the backend's capacity().
 *
 * The scheduler (src/runs/) owns every struct live and is the only one that records a run's
 * state. It hands the executor a table of events (l->ev) before start(); from then on the
 * executor reports through it, from any thread it likes (the live_*() helpers below call it):
 *   live_output(l, stream, bytes, n)   every byte the run writes, in order per stream;
 *   live_running(l)                    once the user's code is running (after installs);
 *   live_exited(l, code, error)        exactly once, when nothing of the run is left running:
 *                                      error NULL and code = the exit status, or error = why
 *                                      the platform failed it (a system failure);
 *   live_reference(l, ref)             the backend's own id of the job (a Slurm job id), once
 *                                      it has one: handed back to adopt() after a restart;
 *   live_queued(l)                     the backend queued the job itself (Slurm accepted it);
 *   live_waiting(l, reason)            why the job waits (Slurm down or refusing it);
 *   live_pid(l, pid, start)            the process group leader and its start time (clock
 *                                      ticks since boot, exec_proc_start), for adopt();
 *   live_install_rc(l, rc)             the exit status of the requirements' install.
 * After live_exited() the executor must not touch l again, except in release().
 * signal() may be called at any time before live_exited() returned, from any thread.
 *
 * This layer includes only core/ and its own headers: whatever of the domain an executor
 * needs (a bucket's directory, the sealed registry secrets, the image cache's records) comes
 * through the struct exec_host table the domain sets once at start-up (exec_set_host).
 */
#ifndef LYCEUMD_EXEC_EXEC_H
#define LYCEUMD_EXEC_EXEC_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

struct config;
struct live;

enum { OUT_STDOUT = 1, OUT_STDERR = 2, OUT_SYSTEM = 3 };

/* What a run is: Python code, a Docker image, a Compose project. */
enum run_kind { RUN_PYTHON = 1, RUN_IMAGE = 2, RUN_COMPOSE = 3 };

/* What a backend says of itself (exec_ops.capacity). */
struct exec_capacity {
    int kinds;      /* the run kinds it runs: a bit (1 << kind) each */
    int local_gpus; /* runs of its profiles draw on this machine's GPUs, which the scheduler
                       hands out by index (l->gpus); else the backend places GPUs itself */
    int outlives;   /* its jobs go on when lyceumd stops (they are not ended at shutdown, and
                       adopt() follows them again at the next start) */
};

/* What the executor knew of a run before a restart (as recorded through the events). */
struct exec_prior {
    const char *ref;   /* live_reference()'s, or NULL: none, or the run cannot be followed */
    int64_t pid;       /* live_pid()'s, 0 when none */
    int64_t pid_start; /* its start time */
    int64_t logged[4]; /* bytes of each stream (OUT_STDOUT, OUT_STDERR) its log holds */
};

struct exec_ops {
    const char *name;
    /* Starts the backend's threads, at start-up before any run; used: a profile names this
     * backend. NULL: nothing to start. 0 or LY_E*. */
    int (*init)(const struct config *cfg, int used);
    /* Stops them (outliving backends first, before their runs are let go; the others last). */
    void (*shutdown)(void);
    /* Starts the run. Returns 0 (and later calls live_exited), or a negative LY_E* code with
     * *why set (static or malloc'd into l->errbuf) when it could not start at all. */
    int (*start)(struct live *l);
    /* SIGTERM asks the run to end (graceful stop); SIGKILL ends it now. */
    void (*signal)(struct live *l, int sig);
    /* Frees what the executor hung on l->exec_priv (called once, after live_exited). */
    void (*release)(struct live *l);
    /* After a restart, for a run this backend had going: 0 when it follows the run again (it
     * then reports through l->ev as after start()); else LY_ENOTFOUND, once nothing of the
     * run is left (what remained, a process group, containers, was ended and removed). */
    int (*adopt)(struct live *l, const struct exec_prior *prior);
    void (*capacity)(struct exec_capacity *cap);
};

/* The events, passed in by the scheduler through l->ev (see the top). */
struct exec_events {
    void (*output)(struct live *l, int stream, const char *buf, size_t n);
    void (*running)(struct live *l);
    void (*exited)(struct live *l, int code, const char *error);
    void (*reference)(struct live *l, const char *ref);
    void (*queued)(struct live *l);
    void (*waiting)(struct live *l, const char *reason);
    void (*pid)(struct live *l, int64_t pid, int64_t start);
    void (*install_rc)(struct live *l, int rc);
};

/* What a run is, as the executor needs it. Set by the scheduler before start(); read-only
 * for the executor. */
struct live {
    char id[40], org_id[40], user_id[40];
    char bucket[48]; /* whose bucket the run sees at /mnt/s3 (a bucket owner id; "" for none) */
    char profile[64];
    int kind;          /* enum run_kind */
    json_t *spec;      /* the start request's body as stored (owned by the scheduler) */
    json_t *env;       /* extra environment: an object of name -> value (may be empty) */
    char gpus[64];     /* "0,1": the GPU indices this run holds, or "" */
    int cpus;          /* vCPUs of the profile (0: unlimited) */
    int64_t mem_bytes; /* memory limit (0: none) */
    int64_t pids_max;  /* process limit (0: none) */
    int timeout_s, graceful_s;
    char partition[64]; /* a Slurm profile's partition ("" = the cluster's default) */
    char gres[64];      /* a Slurm profile's gres, e.g. "gpu:a100:1" */
    char dir[1024];     /* the run's own directory (created by the scheduler, empty) */
    const struct exec_ops *ops;
    const struct exec_events *ev; /* where the executor reports (set by the scheduler) */
    void *exec_priv;              /* the executor's own state */
    char errbuf[512];             /* room for an executor's error text */
    char note[256];               /* set by the executor: why a non-zero exit failed (replaces the
                                     generic "exited with code N" in the run's errors) */
    int timed_out; /* set by the executor when the backend ended it for its time limit */

    /* The scheduler's own state follows (see runs/sched.c). */
    struct live_sched *sched;
};

static inline void live_output(struct live *l, int stream, const char *buf, size_t n)
{
    l->ev->output(l, stream, buf, n);
}
static inline void live_running(struct live *l)
{
    l->ev->running(l);
}
static inline void live_exited(struct live *l, int code, const char *error)
{
    l->ev->exited(l, code, error);
}
static inline void live_reference(struct live *l, const char *ref)
{
    l->ev->reference(l, ref);
}
static inline void live_queued(struct live *l)
{
    l->ev->queued(l);
}
static inline void live_waiting(struct live *l, const char *reason)
{
    l->ev->waiting(l, reason);
}
static inline void live_pid(struct live *l, int64_t pid, int64_t start)
{
    l->ev->pid(l, pid, start);
}
static inline void live_install_rc(struct live *l, int rc)
{
    l->ev->install_rc(l, rc);
}

/* The registry (registry.c): the built-in backends (local, docker, slurm), and those
 * registered over them. exec_register() replaces a backend of the same name (a test's fake);
 * call it at start-up, before runs_init. */
void exec_register(const struct exec_ops *ops);
const struct exec_ops *exec_lookup(const char *name);
/* The backend that runs kind for a profile whose backend is named name: that one when it runs
 * kind, else the first registered one that does (image runs go to Docker); NULL if none. */
const struct exec_ops *exec_for(const char *name, int kind);
int exec_count(void);
const struct exec_ops *exec_at(int i);
/* ops->capacity(), or all zero without one (and kinds: Python only). */
void exec_capacity_of(const struct exec_ops *ops, struct exec_capacity *cap);

/* The start time (clock ticks since boot) of a process, from /proc, or -1 when it does not
 * exist (proc.c). Tells a pid from a later process that reuses it. */
int64_t exec_proc_start(int64_t pid);

/* What executors need of the domain, set once at start-up (before any run) by the domain. */
struct exec_host {
    /* The directory of bucket's objects (for a sandbox's /mnt/s3): 0, or -1. */
    int (*bucket_dir)(const char *bucket, char *out, size_t n);
    /* The same, readied to be bind-mounted into a container (created, owned for it): 0/-1. */
    int (*bucket_mount)(const char *bucket, char *out, size_t n);
    /* A run's registry secrets (JSON text), kept sealed: stored in the caller's transaction
     * (0 or LY_E*), read back (malloc'd plain text, the caller wipes and frees; NULL with *err
     * 0 when there are none, else *err set and why written) and dropped (0 or LY_EDB). */
    int (*creds_put)(const char *run_id, const char *text);
    char *(*creds_get)(const char *run_id, int *err, char *why, size_t n);
    int (*creds_drop)(const char *run_id);
    /* The image cache's records (exec/images.c says what they decide): as store/docker.h. */
    int (*pull_mark)(const char *org_id, const char *repo, const char *image_id, int private_);
    int (*pull_unmark)(const char *org_id, const char *repo, const char *image_id);
    int (*repo_private)(const char *org_id, const char *repo);
    int (*image_usable)(const char *org_id, const char *image_id);
};
void exec_set_host(const struct exec_host *host);
/* The table set (never NULL once set; executors call it only after start-up). */
extern const struct exec_host *exec_host;

/* Writes a Python run's files (code, import_files, requirements.txt) into base/work, which it
 * creates; work receives that path. 0, or -1 with why set. */
int exec_prepare_python(struct live *l, const char *base, char *work, size_t wn, char *why,
                        size_t n);
/* The file name the code is written to (the client's file_name when it is a plain .py). */
void exec_code_file(struct live *l, char *out, size_t n);

/* The local backend's I/O thread: started once, before any run. */
int exec_local_init(const struct config *cfg);
void exec_local_shutdown(void);

/*
 * Services: long-running commands that lyceumd starts and ends itself (an inference replica's
 * model server), started as a local run is: where runs are sandboxed, in bubblewrap (the
 * system read-only, a private /tmp, the data directory hidden but for home and ro_paths,
 * Docker's socket covered, a pid namespace of its own) yet with the host's network; in
 * control groups of their own with the limits given (rlimits where cgroups cannot be
 * written); their own process group, killed with the thread that started them. Needs
 * exec_local_init(). The owner learns of the exit by waitpid() on exec_service_pid() (under
 * the sandbox that is bubblewrap, which exits with the command's status), then calls
 * exec_service_free(). One owner calls these for a service; different services may be
 * handled from different threads.
 */
struct service_spec {
    const char *name;            /* names its control groups: unique among live ones */
    char *const *argv;           /* the command, NULL-ended; argv[0] is looked up on PATH */
    char *const *env;            /* "NAME=value" over lyceumd's own environment, NULL-ended */
    const char *home;            /* its HOME and working directory, read-write (made here) */
    const char *log_path;        /* stdout and stderr are appended to it */
    const char *const *ro_paths; /* shown read-only in the sandbox (NULL-ended; may be NULL) */
    int cpus;                    /* limits, 0 = none */
    int64_t mem_bytes, pids_max;
    int gpus;    /* it holds GPUs: NVIDIA's devices are shown in the sandbox */
    int network; /* outbound network (filtered, as runs have it); else its loopback only */
    uid_t uid;   /* the uid it runs as, from exec_uid_take() and still the caller's (services
                    sharing a home share one); 0: a uid of its own */
};
struct service;
/* Starts the service: NULL with why set when it could not (no such command, no fork). */
struct service *exec_service_start(const struct service_spec *spec, char *why, size_t n);
pid_t exec_service_pid(const struct service *s);
/* A uid of the sandbox's range for services that share one (0 when not sandboxed or when
 * none is free); exec_uid_give() ends whatever still runs as it and returns it. */
uid_t exec_uid_take(void);
void exec_uid_give(uid_t uid);
/* Its network namespace (a new descriptor the caller closes), where it listens on its own
 * loopback; -1 when it is not sandboxed (it then listens on the host's). */
int exec_service_netns(const struct service *s);
/* A socket made inside the network namespace netns (from exec_service_netns), to reach a
 * service there. -1 with errno set. Thread-safe: only the calling thread switches, and back. */
int exec_netns_socket(int netns, int domain, int type, int protocol);
/* SIGTERM asks the command to end (the sandbox stays until it does); SIGKILL ends it all. */
void exec_service_signal(struct service *s, int sig);
/* After its pid was reaped: kills what it left in its group and removes its control groups. */
void exec_service_free(struct service *s);
/* Removes the control groups of a service named name that a previous process left. */
void exec_service_forget(const char *name);

/* The backends. */
extern const struct exec_ops exec_local;
extern const struct exec_ops exec_docker;
extern const struct exec_ops exec_slurm;

/* Docker: connects to the engine's socket (path from config, default /var/run/docker.sock).
 * Returns 1 when an engine answers /_ping, else 0 (with *why set). Thread-safe. */
int docker_available(const char **why);
void docker_configure(const char *socket_path);

/* The network namespace of image run run_id's container while it runs (a new descriptor the
 * caller closes), so that lyceumd can reach the container's own loopback (exec_netns_socket)
 * without any port of it published on the host. The engine must know a running container of
 * that name labelled with the run and org_id, in a namespace that is not lyceumd's own.
 * Returns the descriptor, or LY_ENOTFOUND (no such running container), LY_EUNAVAIL (no engine
 * answers) or LY_EIO, with why set. Blocks for two Engine calls (at most about 4 s in all);
 * thread-safe. */
int exec_docker_netns(const char *run_id, const char *org_id, char *why, size_t n);

#endif
