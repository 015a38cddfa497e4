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

/* The backends. */
extern const struct exec_ops exec_local;
extern const struct exec_ops exec_docker;
extern const struct exec_ops exec_slurm;

/* Docker: connects to the engine's socket (path from config, default /var/run/docker.sock).
 * Returns 1 when an engine answers /_ping, else 0 (with *why set). Thread-safe. */
int docker_available(const char **why);
void docker_configure(const char *socket_path);

#endif
