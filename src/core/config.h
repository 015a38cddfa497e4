/*
 * The server's settings: defaults, then the JSON config file (--config), then LYCEUMD_*
 * environment variables, then command-line options, each overriding the one before.
 * Read once at start-up; read-only afterwards.
 */
#ifndef LYCEUMD_CORE_CONFIG_H
#define LYCEUMD_CORE_CONFIG_H

#include <stddef.h>

struct config {
    char listen[128];
    char data_dir[1024];
    unsigned threads;
    size_t max_body;
    int access_log;
};

void config_defaults(struct config *c);
/* Applies a JSON file: {"listen", "data", "threads", "max_body_bytes", "access_log"}.
 * Returns 0, or LY_EINVAL after printing what is wrong. */
int config_load_file(struct config *c, const char *path);
void config_load_env(struct config *c);

#endif
