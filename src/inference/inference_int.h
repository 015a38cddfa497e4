/*
 * What inference.c shares with replica.c and supervisor.c, and no one else: the in-memory
 * deployments and replicas, the settings, and a replica's life (start, signal, exit, charges, end).
 *
 * Locking: inference.c's mutex guards every struct deployment and struct replica. The supervisor
 * thread is the only one that creates, reaps or frees replicas, so every function below is
 * called by it, with that mutex held, unless said otherwise.
 */
#ifndef LYCEUMD_INFERENCE_INFERENCE_INT_H
#define LYCEUMD_INFERENCE_INFERENCE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#define RING 1024

struct service;

enum rstate { R_STARTING, R_READY, R_DRAINING, R_KILLED };

struct replica {
    char id[40];
    struct service *svc; /* its model server (exec.h); NULL once reaped */
    pid_t pid;           /* the service's pid, for waitpid */
    int port;            /* on its own loopback */
    int netns;           /* its network namespace, -1 when it is not sandboxed */
    char key[48];        /* its API key: the model server answers nothing without it */
    enum rstate state;
    int outstanding;
    int healthy; /* set by the last health check */
    int64_t started_us, metered_until, spawned_mono, killed_mono;
    int has_slot;  /* holds a slot of its profile, as a run would (runs_slot_take) */
    char gpus[64]; /* the GPUs of that slot: its CUDA_VISIBLE_DEVICES */
    struct replica *next;
};

struct deployment {
    char id[40], org_id[40], hf_model_id[256], profile[64];
    char status[16];
    char *hf_token;    /* stored sealed (secrets.h); this plaintext is cleared when freed */
    json_t *vllm_args; /* array of strings */
    int gpu_count;
    uid_t uid; /* the uid its replicas run as (they share a home), 0 until the first */
    int min_r, max_r;
    double target_rps, target_lat_ms;
    int window_s;
    int fails;
    int wake;
    int64_t last_req_mono, last_up_mono, low_since_mono, stop_mono, broke_check_mono;
    int64_t arrivals[RING];
    unsigned narr;
    int64_t lat_t[RING];
    double lat_ms[RING];
    unsigned nlat;
    struct replica *reps;
    struct deployment *next;
};

/* The config's "inference" settings (inference.c reads them at start-up; read-only after). */
struct inference_settings {
    char data_dir[1024];
    json_t *commands; /* profile (or "cpu"/"gpu") -> template; owned */
    int idle_s, wake_s, startup_s, tick_ms;
    int network; /* replicas get outbound network (the config's "sandbox_network") */
};
extern struct inference_settings inf_set;

/* Starts a replica of d and puts it first in d->reps. NULL with why set (a configuration
 * problem: retrying will not help), or with *full set when the profile has no free slot
 * (GPUs, max_concurrent) now: runs and replicas share them. */
struct replica *replica_new(struct deployment *d, char *why, size_t wn, int *full);
/* Signals r's model server (SIGTERM: asks it to end; SIGKILL) and marks r killed. */
void replica_kill(struct replica *r, int sig);
/* 1 when r's model server exited (its wait status in *st): what it left is killed and its
 * control groups removed. 0 while it runs. */
int replica_exited(struct replica *r, int *st);
/* Charges r's complete windows up to now (all of it up to now when final). */
void replica_meter(struct deployment *d, struct replica *r, int64_t now, int final);
/* Frees r (not in any list any more) and gives its profile's slot back. */
void replica_free(struct replica *r, const char *profile);
/* 1 when a live replica listens on port (its own loopback: ports are unique among them so
 * that a pooled connection can never reach another replica). */
int replica_port_in_use(int port);
/* Removes the home directory d's replicas shared (their model caches) once d ended; their
 * logs stay. Called without the mutex: it may take a while. */
void replica_home_remove(const char *dep_id);

/* inference.c's state, which supervisor.c shares: every deployment not stopped is in
 * inf_deps, guarded by inf_mu. inf_ready_cv is broadcast when a status changes or a replica
 * becomes ready (callers wait on it in inference_acquire), inf_tick_cv wakes the supervisor,
 * inf_sup_stop asks it to end. */
extern pthread_mutex_t inf_mu;
extern pthread_cond_t inf_ready_cv, inf_tick_cv;
extern struct deployment *inf_deps;
extern int inf_sup_stop;
/* Sets d's status (and errors, when not NULL) in memory and the store; wakes the waiters. */
void deployment_set_status(struct deployment *d, const char *status, const char *errors);
/* Frees d (out of the list, with no replicas), clearing its token. */
void deployment_free(struct deployment *d);
/* supervisor.c: the supervisor's body, the one job of a pool of one thread (core/worker.h)
 * that inference_init starts; it returns once inf_sup_stop is set. */
void inference_supervisor(void *arg);

#endif
