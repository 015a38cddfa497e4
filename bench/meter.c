/*
 * Metering cost: one metering pass over N running runs (rows in a fresh database, default
 * 10,000), timed in CPU seconds. Usage: build/bench/meter [N]. Target: <= 1 s for 10,000.
 */
#include "billing/billing.h"
#include "core/util.h"
#include "runs/profiles.h"
#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    char dir[] = "/tmp/lyceumd-meter-XXXXXX", path[128], why[128];
    int64_t now = now_us();
    json_t *broke = json_array();
    double t0, t1, t2;

    if (!mkdtemp(dir) || profiles_init(NULL, why, sizeof(why)))
        return 1;
    snprintf(path, sizeof(path), "%s/lyceumd.db", dir);
    if (store_open(path) || billing_init(dir, 0, 10))
        return 1;
    store_begin();
    for (int o = 0; o < 100; o++) {
        char org[40];

        snprintf(org, sizeof(org), "org-%d", o);
        q_exec("INSERT INTO orgs (id, slug, name, created_at) VALUES (?, ?, ?, ?)", "sssi", org,
               org, org, now);
        q_exec("INSERT INTO ledger (org_id, kind, amount, created_at) VALUES (?, 'grant', ?, ?)",
               "sii", org, (int64_t)1000000000000LL, now);
    }
    for (int i = 0; i < n; i++) {
        char id[40], org[40];

        snprintf(id, sizeof(id), "run-%06d", i);
        snprintf(org, sizeof(org), "org-%d", i % 100);
        /* Each has run 25 s: two whole windows to charge in the pass. */
        q_exec("INSERT INTO runs (id, org_id, user_id, kind, profile, status, spec, timeout_s, "
               "graceful_s, stream_token, created_at, running_at) VALUES (?, ?, 'u', 1, 'cpu', "
               "'running', '{}', 600, 10, 'x', ?, ?)",
               "ssii", id, org, now - 25000000, now - 25000000);
    }
    store_commit();
    t0 = cpu_seconds();
    billing_meter_pass(now, broke, NULL);
    t1 = cpu_seconds();
    json_decref(broke);
    broke = json_array();
    billing_meter_pass(now + 1000000, broke, NULL); /* nothing new to charge: the steady state */
    t2 = cpu_seconds();
    printf("metering pass over %d running runs: %.3f s CPU charging %d windows; %.3f s CPU "
           "when nothing is due (target <= 1 s)\n",
           n, t1 - t0, 2 * n, t2 - t1);
    json_decref(broke);
    store_close();
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    return system(path) == 0 ? 0 : 1;
}
