/*
 * The server's settings: defaults, then the JSON config file (--config), then LYCEUMD_*
 * environment variables, then command-line options, each overriding the one before.
 * Read once at start-up; read-only afterwards.
 */
#ifndef LYCEUMD_CORE_CONFIG_H
#define LYCEUMD_CORE_CONFIG_H

#include <jansson.h>
#include <stddef.h>

struct config {
    char listen[128];
    char data_dir[1024];
    unsigned threads;
    size_t max_body;
    int access_log;
    /* Connections: 0 = the default (server.c: within the descriptor limit). */
    unsigned max_connections;        /* open at once, in all */
    unsigned max_connections_per_ip; /* open at once from one client address */
    unsigned connection_timeout_s;   /* an idle connection is closed after this */
    json_t *callback_allow;          /* CIDRs and host names callbacks may reach anyway (owned) */

    /* Runs. */
    json_t *machine_types;         /* the "machine_types" array as written, or NULL (owned) */
    char public_url[256];          /* base of streaming_url; "" = from the request's Host */
    char port_domain[200];         /* ports at "<run id>-<port>.<it>" (api/ports.c); "" = off */
    char python[256];              /* the interpreter of Python runs */
    int sandbox;                   /* 1 (default): tenants' code is sandboxed; 0: it is not */
    int sandbox_network;           /* 1: outbound only, filtered (default); 0: loopback only */
    json_t *sandbox_network_allow; /* "CIDR[:port]" strings let through the filter (owned) */
    json_t *sandbox_ro_paths;      /* host paths every sandbox shows read-only (owned) */
    long long sandbox_uid_base;    /* the first host uid runs and replicas run as */
    long long sandbox_uid_count;   /* how many (one per run or replica at a time) */
    char pip_index_url[512];       /* "" = pip's default */
    char docker_socket[256];
    char docker_network[32]; /* NetworkMode of containers, default "none" */

    /* Slurm (the "slurm" object of the config file). */
    char slurm_rest_url[256];   /* slurmrestd, e.g. http://127.0.0.1:6820; "" = the CLI tools */
    char slurm_jwt_key[512];    /* the cluster's jwt_key file, to mint tokens for slurmrestd */
    char slurm_user[64];        /* the user jobs run as */
    char slurm_shared_dir[512]; /* a directory both lyceumd and the nodes see */
    char slurm_conf[512];       /* SLURM_CONF for the CLI tools, if not the default */
    int slurm_poll_ms;          /* how often job states are read (one call for all jobs) */
    int slurm_submit_per_s;     /* at most this many submissions a second */

    /* Money. */
    long long monthly_free_micro; /* free credits granted to every org each month (0: none) */
    int meter_window_s;           /* seconds of run time per ledger charge (default 10) */

    /* Storage. */
    long long storage_quota_bytes;  /* each bucket holds at most this (0: no quota) */
    long long run_output_max_bytes; /* a run's output beyond this is dropped (0: no cap) */
    long long run_dir_max_bytes;    /* a run's own directory may hold this much (0: no cap) */
    /* Inference: the "inference" object as written, or NULL (owned; inference/ reads it). */
    json_t *inference;

    /* Observability. */
    int log_retention_hours;       /* logs of runs over this long are deleted (0: kept) */
    long long log_retention_bytes; /* the oldest runs' logs go beyond this total (0: no cap) */
    int metrics_interval_s;        /* how often running runs are sampled (default 5) */
    int metrics_endpoint;          /* GET /metrics served (default 1) */

    /* Backups (admin/backup.c): every backup_interval_hours (0: never) an archive into
     * backup_dir ("": <data>/backups), the newest backup_keep kept. */
    char backup_dir[1024];
    double backup_interval_hours;
    int backup_keep;
};

void config_defaults(struct config *c);
/* Applies a JSON file: {"listen", "data", "threads", "max_body_bytes", "access_log",
 * "machine_types", "public_url", "port_domain", "python", "sandbox", "sandbox_network",
 * "sandbox_network_allow", "sandbox_ro_paths", "sandbox_uid_base", "sandbox_uid_count",
 * "pip_index_url", "docker_socket", "docker_network", "monthly_free_credits",
 * "meter_window_seconds", "storage_quota_bytes", "inference", "log_retention_hours",
 * "log_retention_bytes", "metrics_interval_seconds", "metrics_endpoint", "max_connections",
 * "max_connections_per_ip", "connection_timeout_seconds", "callback_allow", "backup_dir",
 * "backup_interval_hours", "backup_keep"} (README.md documents
 * each). Returns 0, or LY_EINVAL after printing what is wrong. */
int config_load_file(struct config *c, const char *path);
void config_load_env(struct config *c);
void config_release(struct config *c);

#endif
