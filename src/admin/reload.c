/* See reload.h. */
#include "admin/reload.h"

#include "admin/service.h"
#include "billing/billing.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "metrics/sampler.h"
#include "runs/runs.h"
#include "storage/bucket.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int json_same(json_t *a, json_t *b)
{
    return (!a && !b) || (a && b && json_equal(a, b));
}

/* Names in the log each setting that changed in the file but takes effect only at a restart. */
static void restart_only(const struct config *cur, const struct config *next)
{
    struct {
        const char *name;
        int changed;
    } s[] = {
        {"sandbox", cur->sandbox != next->sandbox},
        {"sandbox_network", cur->sandbox_network != next->sandbox_network},
        {"sandbox_network_allow",
         !json_same(cur->sandbox_network_allow, next->sandbox_network_allow)},
        {"sandbox_ro_paths", !json_same(cur->sandbox_ro_paths, next->sandbox_ro_paths)},
        {"python", strcmp(cur->python, next->python) != 0},
        {"pip_index_url", strcmp(cur->pip_index_url, next->pip_index_url) != 0},
        {"docker_socket", strcmp(cur->docker_socket, next->docker_socket) != 0},
        {"docker_network", strcmp(cur->docker_network, next->docker_network) != 0},
        {"slurm", strcmp(cur->slurm_rest_url, next->slurm_rest_url) != 0 ||
                      strcmp(cur->slurm_jwt_key, next->slurm_jwt_key) != 0 ||
                      strcmp(cur->slurm_user, next->slurm_user) != 0 ||
                      strcmp(cur->slurm_shared_dir, next->slurm_shared_dir) != 0},
        {"meter_window_seconds", cur->meter_window_s != next->meter_window_s},
        {"metrics_interval_seconds", cur->metrics_interval_s != next->metrics_interval_s},
        {"metrics_endpoint", cur->metrics_endpoint != next->metrics_endpoint},
        {"inference", !json_same(cur->inference, next->inference)},
        {"callback_allow", !json_same(cur->callback_allow, next->callback_allow)},
        {"public_url", strcmp(cur->public_url, next->public_url) != 0},
        {"port_domain", strcmp(cur->port_domain, next->port_domain) != 0},
        {"max_connections", cur->max_connections != next->max_connections ||
                                cur->max_connections_per_ip != next->max_connections_per_ip ||
                                cur->connection_timeout_s != next->connection_timeout_s},
        {"backup_*", strcmp(cur->backup_dir, next->backup_dir) != 0 ||
                         cur->backup_interval_hours != next->backup_interval_hours ||
                         cur->backup_keep != next->backup_keep},
    };

    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        if (s[i].changed)
            log_warn("reload: '%s' changed in the config: it takes effect at the next restart",
                     s[i].name);
}

int admin_reload(struct config *cur, const char *path)
{
    struct config next;
    char why[512];

    service_reloading();
    if (!path) {
        log_warn("reload: lyceumd was started without a config file (--config): nothing to read");
        service_reloaded("serving (nothing to reload)");
        return 0;
    }
    log_info("reload: reading %s", path);
    config_defaults(&next);
    if (config_load_file(&next, path)) {
        /* config_load_file said what is wrong, just before. */
        log_error("reload: %s refused; the running config stays as it was", path);
        config_release(&next);
        service_reloaded("serving (reload refused: the config does not parse)");
        return LY_EINVAL;
    }
    config_load_env(&next);
    if (runs_reload(&next, why, sizeof(why))) {
        log_error("reload: %s refused (%s); the running config stays as it was", path, why);
        config_release(&next);
        service_reloaded("serving (reload refused: bad machine_types)");
        return LY_EINVAL;
    }
    if (billing_prices_record(now_us()))
        log_error("reload: the price book could not be written: runs go on at the prices "
                  "recorded before");
    billing_set_monthly_free(next.monthly_free_micro);
    bucket_set_quota(next.storage_quota_bytes);
    sampler_reload(&next);
    restart_only(cur, &next);

    /* What changed is the running config now. */
    json_decref(cur->machine_types);
    cur->machine_types = json_incref(next.machine_types);
    cur->monthly_free_micro = next.monthly_free_micro;
    cur->storage_quota_bytes = next.storage_quota_bytes;
    cur->run_output_max_bytes = next.run_output_max_bytes;
    cur->run_dir_max_bytes = next.run_dir_max_bytes;
    cur->log_retention_hours = next.log_retention_hours;
    cur->log_retention_bytes = next.log_retention_bytes;
    config_release(&next);
    log_info("reload: %s applied", path);
    service_reloaded("serving");
    return 0;
}
