/*
 * What the Docker executor's files share: docker.c (the Engine API, image runs, signals, the
 * exec_ops), images.c (images per org, the run's registry secrets), compose.c (Compose runs,
 * docker-compose as a child) and compose_file.c (the Compose file's allowlist). Not for use
 * outside src/exec/.
 */
#ifndef LYCEUMD_EXEC_DOCKER_INT_H
#define LYCEUMD_EXEC_DOCKER_INT_H

#include "core/arena.h"
#include "exec/exec.h"

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A Docker run, shared by the run's thread and the signal threads: mu guards the fields
 * marked so; release() joins the run's thread and waits for the signal threads. */
struct drun {
    struct live *l;
    struct arena pool;  /* the run thread's strings */
    int thread_started; /* its thread (a job of the runs' pool) was queued */
    int thread_done;    /* and has returned (d->mu, d->idle) */
    char project[48];   /* the Compose project: lyceumd-<first 12 of the id> */
    char file[1100];    /* the Compose file */
    json_t *secrets;    /* the run's registry secrets, opened (images.c); NULL once pulled */

    pthread_mutex_t mu;
    pthread_cond_t idle;
    /* Guarded by mu: */
    char container[80]; /* its id, "" until created */
    int started;        /* the container was started (signals go to it from then on) */
    pid_t up_pid;       /* `docker-compose up` (a process group of its own), 0 when none */
    pid_t stop_pid;     /* `docker-compose stop` (likewise) */
    int sig_wanted;     /* 0, SIGTERM or SIGKILL: the strongest asked for */
    int sig_sent;       /* the strongest sent to the container */
    int inflight;       /* signal threads still running: release() waits for them */

    /* The log stream's frame being read (the run's thread only). */
    unsigned char hdr[8];
    size_t hdr_n, frame_left;
    int frame_stream;
};

/* docker.c */
/* The engine's socket path and the NetworkMode of image runs (set at start-up). */
const char *docker_socket_path(void);
const char *docker_network_mode(void);
/* One Engine API call: the HTTP status (0 when the engine did not answer), the body in *out
 * (when out; NUL-terminated, the caller frees). timeout_ms 0: none. auth: X-Registry-Auth.
 * Given a run (d), it gives up as soon as that run is to be killed. */
long docker_call(const char *method, const char *path, const char *body, const char *auth,
                 long timeout_ms, struct drun *d, char **out);
/* "what: the engine's message" of an error answer, into why. */
void docker_message_of(const char *body, char *why, size_t n, const char *what);
/* The strongest signal asked for the run so far (0 when none). */
int docker_wanted(struct drun *d);
/* Standard base64 of n bytes (malloc'd). */
char *docker_base64(const void *data, size_t n);

/* images.c */
/* Opens the run's registry secrets into d->secrets (sealed in the store, or, for runs stored
 * before they were sealed, still in the spec). 0, or -1 with why set. */
int docker_secrets_load(struct drun *d, char *why, size_t n);
/* A secret of the run (a field of the start request), or NULL. */
const char *docker_secret(struct drun *d, const char *name);
/* Forgets the run's secrets: cleared in memory and dropped from the store. */
void docker_secrets_drop(struct drun *d);
/* The X-Registry-Auth value for user and password (malloc'd). */
char *docker_auth_header(const char *user, const char *pass);
/* Makes sure the image ref may run for the run's org and is here, pulling it (with auth, an
 * X-Registry-Auth value, when not NULL) as exec/images.c explains; its image id into id (80
 * bytes). 0; -1 with why set; 1 when the run was killed meanwhile. */
int docker_image_resolve(struct drun *d, const char *ref, const char *auth, char id[80], char *why,
                         size_t n);

/* compose.c */
void *docker_compose_main(void *d);
void docker_compose_signal(struct drun *d, int sig);
/* docker-compose as a child: its pid and the read ends of its stdout and stderr (-1 closed). */
struct child {
    pid_t pid;
    int out, err;
};
/* Where a child's output goes: into the run (to_run), else stdout into out (up to out_n - 1
 * bytes; beyond, the child is killed: it said too much) and stderr into err (the first
 * err_n - 1 bytes), both NUL-terminated when given. */
struct sink {
    int to_run;
    char *out, *err;
    size_t out_n, err_n, out_k, err_k;
    int64_t deadline_us; /* 0: none; past it the child's group is killed */
};
/* Starts `docker-compose args...` in dir with exactly envp, its stdin /dev/null, in a process
 * group of its own that dies with the calling thread; 0 or -1. */
int docker_compose_spawn(const char *dir, char *const args[], char *const envp[], struct child *c);
/* Reads the child's output to its end into s; then reaps it, forgetting it as d's up or stop
 * process (when d). Returns its exit status (128 + signal if killed). */
int docker_compose_drain(struct drun *d, struct child *c, struct sink *s);
/* The whole environment of docker-compose: the engine, HOME (a directory with nothing of
 * anyone's), PATH, LANG; nothing of the tenant's. envp[0] and envp[1] are malloc'd. */
void docker_compose_env(const char *home, char *envp[6]);
/* Writes n bytes to path (mode 0600): 0 or -1. */
int docker_write_file(const char *path, const char *text, size_t n);

/* compose_file.c */
/* Normalises yaml with `docker-compose config` (in a scratch directory under dir, removed
 * again) and checks it: 0 with the file in *out (the caller's), else docker_compose_check's
 * errors. */
int docker_compose_normalise(const char *yaml, const char *dir, json_t **out, char *why, size_t n);

#endif
