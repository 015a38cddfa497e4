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

    /* Runs. */
    json_t *machine_types;   /* the "machine_types" array as written, or NULL (owned) */
    char public_url[256];    /* base of streaming_url; "" = from the request's Host */
    char python[256];        /* the interpreter of Python runs */
    int sandbox;             /* -1 auto (bubblewrap when present), 0 off, 1 required */
    int sandbox_network;     /* 1: runs share the host's network (default), 0: none */
    char pip_index_url[512]; /* "" = pip's default */
    char docker_socket[256];
    char docker_network[32]; /* NetworkMode of containers, default "none" */

    /* Money. */
    long long monthly_free_micro; /* free credits granted to every org each month (0: none) */
    int meter_window_s;           /* seconds of run time per ledger charge (default 10) */
};

void config_defaults(struct config *c);
/* Applies a JSON file: {"listen", "data", "threads", "max_body_bytes", "access_log",
 * "machine_types", "public_url", "python", "sandbox", "sandbox_network", "pip_index_url",
 * "docker_socket", "docker_network", "monthly_free_credits", "meter_window_seconds"} (README.md
 * documents each). Returns 0, or LY_EINVAL after printing what is wrong. */
int config_load_file(struct config *c, const char *path);
void config_load_env(struct config *c);
void config_release(struct config *c);

#endif
