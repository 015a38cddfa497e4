/* See config.h. */
#include "core/config.h"
#include "core/err.h"
#include "core/netaddr.h"
#include "core/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8000");
    snprintf(c->data_dir, sizeof(c->data_dir), "var");
    c->threads = 4;
    c->max_body = 1u << 20;
    c->access_log = 1;
    c->max_connections_per_ip = 256;
    c->connection_timeout_s = 120;
    snprintf(c->python, sizeof(c->python), "%s",
             access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3");
    c->sandbox = 1;
    c->sandbox_network = 1;
    c->sandbox_uid_base = 1800000000;
    c->sandbox_uid_count = 65536;
    c->meter_window_s = 10;
    c->storage_quota_bytes = 50LL << 30;
    c->run_output_max_bytes = 256LL << 20;
    c->run_dir_max_bytes = 20LL << 30;
    c->log_retention_hours = 720;
    c->backup_keep = 7;
    c->log_retention_bytes = 20LL << 30;
    c->metrics_interval_s = 5;
    c->metrics_endpoint = 1;
    snprintf(c->slurm_user, sizeof(c->slurm_user), "root");
    c->slurm_poll_ms = 250;
    c->slurm_submit_per_s = 200;
    snprintf(c->docker_socket, sizeof(c->docker_socket), "/var/run/docker.sock");
    snprintf(c->docker_network, sizeof(c->docker_network), "none");
}

void config_release(struct config *c)
{
    json_decref(c->machine_types);
    c->machine_types = NULL;
    json_decref(c->inference);
    c->inference = NULL;
    json_decref(c->callback_allow);
    c->callback_allow = NULL;
    json_decref(c->sandbox_network_allow);
    c->sandbox_network_allow = NULL;
    json_decref(c->sandbox_ro_paths);
    c->sandbox_ro_paths = NULL;
}

/* port_domain: a host name (letters, digits, '-' and '.', no empty label), stored lower case;
 * 0 or -1. */
static int set_port_domain(struct config *c, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;

    if (!s || n >= sizeof(c->port_domain) || s[0] == '.' || (n && s[n - 1] == '.') ||
        strstr(s, ".."))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];

        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
            return -1;
        c->port_domain[i] = ch;
    }
    c->port_domain[n] = '\0';
    return 0;
}

/* callback_allow: an array of CIDRs ("10.0.0.0/8", "::1") and host names; 0 or -1. */
static int valid_allow(json_t *v)
{
    size_t i;
    json_t *e;
    struct cidr c;

    if (!json_is_array(v))
        return -1;
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);

        if (!s || !*s || strlen(s) > 253)
            return -1;
        if (cidr_parse(s, &c) == 0)
            continue;
        for (; *s; s++) /* a host name: letters, digits, '-' and '.' */
            if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
                return -1;
    }
    return 0;
}

/* Copies a string setting; 0, or -1 when v is not a string that fits. */
static int set_str(char *dst, size_t n, json_t *v)
{
    if (!json_is_string(v) || strlen(json_string_value(v)) >= n)
        return -1;
    snprintf(dst, n, "%s", json_string_value(v));
    return 0;
}

int config_load_file(struct config *c, const char *path)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *v;
    const char *key;
    int err = 0;

    if (!j || !json_is_object(j)) {
        fprintf(stderr, "lyceumd: %s:%d: %s\n", path, jerr.line,
                j ? "the config must be a JSON object" : jerr.text);
        json_decref(j);
        return LY_EINVAL;
    }
    json_object_foreach(j, key, v)
    {
        if (strcmp(key, "listen") == 0 && json_is_string(v)) {
            snprintf(c->listen, sizeof(c->listen), "%s", json_string_value(v));
        } else if (strcmp(key, "data") == 0 && json_is_string(v)) {
            snprintf(c->data_dir, sizeof(c->data_dir), "%s", json_string_value(v));
        } else if (strcmp(key, "threads") == 0 && json_is_integer(v) && json_integer_value(v) > 0 &&
                   json_integer_value(v) <= 256) {
            c->threads = (unsigned)json_integer_value(v);
        } else if (strcmp(key, "max_body_bytes") == 0 && json_is_integer(v) &&
                   json_integer_value(v) > 0) {
            c->max_body = (size_t)json_integer_value(v);
        } else if (strcmp(key, "max_connections") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 1 && json_integer_value(v) <= 1000000) {
            c->max_connections = (unsigned)json_integer_value(v);
        } else if (strcmp(key, "max_connections_per_ip") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 1 && json_integer_value(v) <= 1000000) {
            c->max_connections_per_ip = (unsigned)json_integer_value(v);
        } else if (strcmp(key, "connection_timeout_seconds") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 1 && json_integer_value(v) <= 86400) {
            c->connection_timeout_s = (unsigned)json_integer_value(v);
        } else if (strcmp(key, "callback_allow") == 0 && !valid_allow(v)) {
            json_decref(c->callback_allow);
            c->callback_allow = json_incref(v);
        } else if (strcmp(key, "access_log") == 0 && json_is_boolean(v)) {
            c->access_log = json_is_true(v);
        } else if (strcmp(key, "machine_types") == 0 && json_is_array(v)) {
            json_decref(c->machine_types);
            c->machine_types = json_incref(v);
        } else if (strcmp(key, "sandbox") == 0 && (json_is_boolean(v) || json_is_string(v))) {
            /* "auto" (bubblewrap where present) is gone: tenants' code is never run
             * unconfined by accident. It now means true. */
            if (json_is_boolean(v))
                c->sandbox = json_is_true(v);
            else if (strcmp(json_string_value(v), "auto") == 0)
                c->sandbox = 1;
            else
                err = LY_EINVAL;
        } else if (strcmp(key, "monthly_free_credits") == 0 &&
                   (json_is_string(v) || json_is_integer(v))) {
            char buf[48];
            int64_t m = 0;

            if (json_is_string(v))
                snprintf(buf, sizeof(buf), "%s", json_string_value(v));
            else
                snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
            if (micro_parse(buf, &m) || m < 0) {
                fprintf(stderr, "lyceumd: %s: monthly_free_credits must be a decimal >= 0\n", path);
                err = LY_EINVAL;
            }
            c->monthly_free_micro = m;
        } else if (strcmp(key, "slurm") == 0 && json_is_object(v)) {
            const char *k2;
            json_t *v2;

            json_object_foreach(v, k2, v2)
            {
                if ((strcmp(k2, "rest_url") == 0 &&
                     !set_str(c->slurm_rest_url, sizeof(c->slurm_rest_url), v2)) ||
                    (strcmp(k2, "jwt_key") == 0 &&
                     !set_str(c->slurm_jwt_key, sizeof(c->slurm_jwt_key), v2)) ||
                    (strcmp(k2, "user") == 0 &&
                     !set_str(c->slurm_user, sizeof(c->slurm_user), v2)) ||
                    (strcmp(k2, "shared_dir") == 0 &&
                     !set_str(c->slurm_shared_dir, sizeof(c->slurm_shared_dir), v2)) ||
                    (strcmp(k2, "conf") == 0 && !set_str(c->slurm_conf, sizeof(c->slurm_conf), v2)))
                    continue;
                if (strcmp(k2, "poll_ms") == 0 && json_integer_value(v2) >= 50)
                    c->slurm_poll_ms = (int)json_integer_value(v2);
                else if (strcmp(k2, "submit_per_second") == 0 && json_integer_value(v2) >= 1)
                    c->slurm_submit_per_s = (int)json_integer_value(v2);
                else {
                    fprintf(stderr, "lyceumd: %s: unknown setting or bad value for 'slurm.%s'\n",
                            path, k2);
                    err = LY_EINVAL;
                }
            }
        } else if (strcmp(key, "meter_window_seconds") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 1 && json_integer_value(v) <= 60) {
            c->meter_window_s = (int)json_integer_value(v);
        } else if (strcmp(key, "storage_quota_bytes") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 0) {
            c->storage_quota_bytes = json_integer_value(v);
        } else if (strcmp(key, "run_output_max_bytes") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 0) {
            c->run_output_max_bytes = json_integer_value(v);
        } else if (strcmp(key, "run_dir_max_bytes") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 0) {
            c->run_dir_max_bytes = json_integer_value(v);
        } else if (strcmp(key, "inference") == 0 && json_is_object(v)) {
            json_decref(c->inference);
            c->inference = json_incref(v);
        } else if (strcmp(key, "log_retention_hours") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 0 && json_integer_value(v) <= 1000000) {
            c->log_retention_hours = (int)json_integer_value(v);
        } else if (strcmp(key, "log_retention_bytes") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 0) {
            c->log_retention_bytes = json_integer_value(v);
        } else if (strcmp(key, "metrics_interval_seconds") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 1 && json_integer_value(v) <= 3600) {
            c->metrics_interval_s = (int)json_integer_value(v);
        } else if (strcmp(key, "backup_dir") == 0 && json_is_string(v) &&
                   json_string_length(v) < sizeof(c->backup_dir)) {
            snprintf(c->backup_dir, sizeof(c->backup_dir), "%s", json_string_value(v));
        } else if (strcmp(key, "backup_interval_hours") == 0 && json_is_number(v) &&
                   json_number_value(v) >= 0 && json_number_value(v) <= 24 * 365) {
            c->backup_interval_hours = json_number_value(v);
        } else if (strcmp(key, "backup_keep") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 1 && json_integer_value(v) <= 10000) {
            c->backup_keep = (int)json_integer_value(v);
        } else if (strcmp(key, "metrics_endpoint") == 0 && json_is_boolean(v)) {
            c->metrics_endpoint = json_is_true(v);
        } else if (strcmp(key, "sandbox_network") == 0 && json_is_boolean(v)) {
            c->sandbox_network = json_is_true(v);
        } else if (strcmp(key, "sandbox_network_allow") == 0 && json_is_array(v)) {
            json_decref(c->sandbox_network_allow);
            c->sandbox_network_allow = json_incref(v);
        } else if (strcmp(key, "sandbox_ro_paths") == 0 && json_is_array(v)) {
            size_t i;
            json_t *p;

            json_array_foreach(v, i, p) if (!json_is_string(p) || json_string_value(p)[0] != '/')
            {
                fprintf(stderr, "lyceumd: %s: sandbox_ro_paths holds absolute paths\n", path);
                err = LY_EINVAL;
            }
            json_decref(c->sandbox_ro_paths);
            c->sandbox_ro_paths = json_incref(v);
        } else if (strcmp(key, "sandbox_uid_base") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 1000 && json_integer_value(v) < 4000000000LL) {
            c->sandbox_uid_base = json_integer_value(v);
        } else if (strcmp(key, "sandbox_uid_count") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 1 && json_integer_value(v) <= 16777216) {
            c->sandbox_uid_count = json_integer_value(v);
        } else if (strcmp(key, "docker_network") == 0 && json_is_string(v) &&
                   (strcmp(json_string_value(v), "host") == 0 ||
                    strncmp(json_string_value(v), "container:", 10) == 0)) {
            fprintf(stderr,
                    "lyceumd: %s: docker_network '%s' would give containers the host's (or "
                    "another container's) network: use \"none\" or a network of the engine\n",
                    path, json_string_value(v));
            err = LY_EINVAL;
        } else if (strcmp(key, "port_domain") == 0) {
            if (set_port_domain(c, v)) {
                fprintf(stderr,
                        "lyceumd: %s: port_domain must be a host name such as "
                        "\"port.example.com\" (no scheme, port or path)\n",
                        path);
                err = LY_EINVAL;
            }
        } else if ((strcmp(key, "public_url") == 0 &&
                    !set_str(c->public_url, sizeof(c->public_url), v)) ||
                   (strcmp(key, "python") == 0 && !set_str(c->python, sizeof(c->python), v)) ||
                   (strcmp(key, "pip_index_url") == 0 &&
                    !set_str(c->pip_index_url, sizeof(c->pip_index_url), v)) ||
                   (strcmp(key, "docker_socket") == 0 &&
                    !set_str(c->docker_socket, sizeof(c->docker_socket), v)) ||
                   (strcmp(key, "docker_network") == 0 &&
                    !set_str(c->docker_network, sizeof(c->docker_network), v))) {
            /* set */
        } else {
            fprintf(stderr, "lyceumd: %s: unknown setting or bad value for '%s'\n", path, key);
            err = LY_EINVAL;
        }
    }
    json_decref(j);
    return err;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

void config_load_env(struct config *c)
{
    const char *listen = env("LYCEUMD_LISTEN"), *data = env("LYCEUMD_DATA");
    const char *threads = env("LYCEUMD_THREADS"), *body = env("LYCEUMD_MAX_BODY_BYTES");
    const char *alog = env("LYCEUMD_ACCESS_LOG");
    const char *quota = env("LYCEUMD_STORAGE_QUOTA_BYTES");

    if (listen)
        snprintf(c->listen, sizeof(c->listen), "%s", listen);
    if (data)
        snprintf(c->data_dir, sizeof(c->data_dir), "%s", data);
    if (threads && atoi(threads) > 0)
        c->threads = (unsigned)atoi(threads);
    if (body && atol(body) > 0)
        c->max_body = (size_t)atol(body);
    if (alog)
        c->access_log = strcmp(alog, "0") != 0 && strcmp(alog, "off") != 0;
    if (quota && atoll(quota) >= 0)
        c->storage_quota_bytes = atoll(quota);
}
