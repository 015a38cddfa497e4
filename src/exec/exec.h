/*
 * The executors: one interface, several backends (local processes, Docker, later Slurm), so
 * the scheduler never knows which one runs a job.
 *
 * The scheduler (src/runs/sched.c) owns every struct live. It calls an executor's start()
 * once the run holds a slot; from then on the executor reports, from any thread it likes:
 *   live_output(l, stream, bytes, n)   every byte the run writes, in order per stream;
 *   live_running(l)                    once the user's code is running (after installs);
 *   live_exited(l, code, error)        exactly once, when nothing of the run is left running:
 *                                      error NULL and code = the exit status, or error = why
 *                                      the platform failed it (a system failure).
 * After live_exited() the executor must not touch l again, except in release().
 * signal() may be called at any time before live_exited() returned, from any thread.
 */
#ifndef LYCEUMD_EXEC_EXEC_H
#define LYCEUMD_EXEC_EXEC_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

struct config;
struct live;

enum { OUT_STDOUT = 1, OUT_STDERR = 2, OUT_SYSTEM = 3 };

struct exec_ops {
    const char *name;
    /* Starts the run. Returns 0 (and later calls live_exited), or a negative LY_E* code with
     * *why set (static or malloc'd into l->errbuf) when it could not start at all. */
    int (*start)(struct live *l);
    /* SIGTERM asks the run to end (graceful stop); SIGKILL ends it now. */
    void (*signal)(struct live *l, int sig);
    /* Frees what the executor hung on l->exec_priv (called once, after live_exited). */
    void (*release)(struct live *l);
};

/* What a run is, as the executor needs it. Set by the scheduler before start(); read-only
 * for the executor. */
struct live {
    char id[40], org_id[40], user_id[40];
    char bucket[48]; /* whose bucket the run sees at /mnt/s3 (a bucket owner id; "" for none) */
    char profile[64];
    int kind;          /* RUN_PYTHON, RUN_IMAGE, RUN_COMPOSE (runs/runs.h) */
    json_t *spec;      /* the start request's body as stored (owned by the scheduler) */
    json_t *env;       /* extra environment: an object of name -> value (may be empty) */
    char gpus[64];     /* "0,1": the GPU indices this run holds, or "" */
    int cpus;          /* vCPUs of the profile (0: unlimited) */
    int64_t mem_bytes; /* memory limit (0: none) */
    int64_t pids_max;  /* process limit (0: none) */
    int timeout_s, graceful_s;
    char dir[1024]; /* the run's own directory (created by the scheduler, empty) */
    const struct exec_ops *ops;
    void *exec_priv;  /* the executor's own state */
    char errbuf[512]; /* room for an executor's error text */
    char note[256];   /* set by the executor: why a non-zero exit failed (replaces the
                         generic "exited with code N" in the run's errors) */
    int timed_out;    /* set by the executor when the backend ended it for its time limit */

    /* The scheduler's own state follows (see runs/sched.c). */
    struct live_sched *sched;
};

void live_output(struct live *l, int stream, const char *buf, size_t n);
void live_running(struct live *l);
void live_exited(struct live *l, int code, const char *error);

/* Writes a Python run's files (code, import_files, requirements.txt) into base/work, which it
 * creates; work receives that path. 0, or -1 with why set. */
int exec_prepare_python(struct live *l, const char *base, char *work, size_t wn, char *why,
                        size_t n);
/* The file name the code is written to (the client's file_name when it is a plain .py). */
void exec_code_file(struct live *l, char *out, size_t n);

/* The Slurm backend: its thread starts with the runs machinery when a profile uses it;
 * exec_slurm_adopt() follows a run submitted before a restart, by its job id. */
int exec_slurm_init(const struct config *cfg);
void exec_slurm_shutdown(void);
int exec_slurm_adopt(struct live *l, const char *job_id);

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
