/*
 * See limits.h. Runs write their bucket and their own directory directly, not through
 * lyceumd, so these limits are kept by measuring: one thread walks, every TICK_US, each bucket
 * that a live run has mounted (bucket_measure) and each live run's directory, and ends the
 * runs over a limit with the reason in their output and errors (runs_end_for). A walk costs
 * time in proportion to a tree's entries, so a tree whose walk took t is walked again after
 * max(TICK_US, 4 t): at most a fifth of a core per tree. A run can therefore pass a limit by
 * what it writes in about a second (more in a tree of millions of entries) before it is
 * stopped; its single files can be capped further with RLIMIT_FSIZE from bucket_room().
 * A bucket whose folders go deeper than the walk (deeper than any key) cannot be counted,
 * and ends its runs as if it were over the quota.
 *
 * The output.log and lines.idx of a run's directory are left out of its directory's count:
 * runs/output.c caps the output on its own.
 */
#include "runs/limits.h"
#include "core/worker.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "runs/output.h"
#include "runs/control.h"
#include "storage/bucket.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_US 1000000LL

struct watched {
    char run_id[40], bucket[40];
    char dir[1024];
    int64_t bucket_next_us, dir_next_us; /* when each is due again (monotonic) */
    int ended;                           /* asked to end: not again */
    struct watched *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static struct worker_pool *pool; /* its thread: a pool of one (core/worker.h) */
static int started, stopping;
static struct watched *watched;
static int64_t dir_max;

void limits_watch(const char *run_id, const char *bucket, const char *dir)
{
    struct watched *w = xcalloc(1, sizeof(*w));

    snprintf(w->run_id, sizeof(w->run_id), "%s", run_id);
    snprintf(w->bucket, sizeof(w->bucket), "%s", bucket ? bucket : "");
    snprintf(w->dir, sizeof(w->dir), "%s", dir ? dir : "");
    pthread_mutex_lock(&mu);
    w->next = watched;
    watched = w;
    pthread_mutex_unlock(&mu);
}

void limits_unwatch(const char *run_id)
{
    struct watched *gone = NULL;

    pthread_mutex_lock(&mu);
    for (struct watched **pp = &watched; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->run_id, run_id) == 0) {
            gone = *pp;
            *pp = gone->next;
            break;
        }
    pthread_mutex_unlock(&mu);
    free(gone);
}

/* Ends the runs of bucket (or the one run_id) with why; they are not asked twice. */
static void end_runs(const char *bucket, const char *run_id, const char *why)
{
    char ids[64][40];
    int n = 0;

    pthread_mutex_lock(&mu);
    for (struct watched *w = watched; w && n < 64; w = w->next)
        if (!w->ended &&
            (bucket ? strcmp(w->bucket, bucket) == 0 : strcmp(w->run_id, run_id) == 0)) {
            w->ended = 1;
            memcpy(ids[n++], w->run_id, sizeof(ids[0]));
        }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++) {
        log_info("run %s: %s", ids[i], why);
        runs_end_for(ids[i], "limit", why);
    }
}

/* Measures bucket if it is due; sets when it is due next in every run that has it. */
static void check_bucket(const char *bucket, int64_t now)
{
    int64_t quota = bucket_quota(), bytes, took;
    int deep = 0;
    char why[256];

    bytes = bucket_measure(bucket, &deep);
    took = now_mono_us() - now;
    pthread_mutex_lock(&mu);
    for (struct watched *w = watched; w; w = w->next)
        if (strcmp(w->bucket, bucket) == 0)
            w->bucket_next_us = now + (4 * took > TICK_US ? 4 * took : TICK_US);
    pthread_mutex_unlock(&mu);
    if (deep)
        snprintf(why, sizeof(why),
                 "Folders nested deeper than any key at /mnt/s3: the bucket's use of its storage "
                 "quota cannot be counted");
    else if (quota > 0 && bytes > quota)
        snprintf(why, sizeof(why),
                 "Storage quota of %lld bytes exceeded at /mnt/s3 (the bucket holds %lld bytes)",
                 (long long)quota, (long long)bytes);
    else
        return;
    end_runs(bucket, NULL, why);
}

static void check_dir(const char *run_id, const char *dir, int64_t now)
{
    static const char *const skip[] = {"output.log", "lines.idx", NULL};
    int64_t bytes, took;
    int deep = 0;
    char why[256];

    bytes = bucket_tree_bytes(dir, skip, &deep);
    took = now_mono_us() - now;
    pthread_mutex_lock(&mu);
    for (struct watched *w = watched; w; w = w->next)
        if (strcmp(w->run_id, run_id) == 0)
            w->dir_next_us = now + (4 * took > TICK_US ? 4 * took : TICK_US);
    pthread_mutex_unlock(&mu);
    if (deep)
        snprintf(why, sizeof(why),
                 "The run's directory has folders nested too deep to be counted against "
                 "run_dir_max_bytes");
    else if (bytes > dir_max)
        snprintf(why, sizeof(why),
                 "The run's directory exceeded run_dir_max_bytes of %lld bytes (it holds %lld "
                 "bytes)",
                 (long long)dir_max, (long long)bytes);
    else
        return;
    end_runs(NULL, run_id, why);
}

/* One pass: the first due bucket or directory found is measured (without the lock), then the
 * list is looked at again, since it may have changed meanwhile. */
static void pass(void)
{
    for (;;) {
        char bucket[40] = "", run_id[40] = "", dir[1024] = "";
        int64_t now = now_mono_us();

        pthread_mutex_lock(&mu);
        for (struct watched *w = watched; w && !bucket[0] && !dir[0]; w = w->next) {
            if (w->ended)
                continue;
            if (w->bucket[0] && now >= w->bucket_next_us)
                memcpy(bucket, w->bucket, sizeof(bucket));
            else if (dir_max > 0 && w->dir[0] && now >= w->dir_next_us) {
                memcpy(run_id, w->run_id, sizeof(run_id));
                memcpy(dir, w->dir, sizeof(dir));
            }
        }
        pthread_mutex_unlock(&mu);
        if (bucket[0])
            check_bucket(bucket, now);
        else if (dir[0])
            check_dir(run_id, dir, now);
        else
            return;
    }
}

static void *limits_main(void *arg);

static void limits_main_job(void *arg)
{
    limits_main(arg);
}

static void *limits_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct timespec ts;

        pthread_mutex_unlock(&mu);
        pass();
        pthread_mutex_lock(&mu);
        if (stopping)
            break;
        deadline_in(&ts, CLOCK_MONOTONIC, TICK_US / 4);
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

void limits_reload(const struct config *cfg)
{
    output_limit(cfg->run_output_max_bytes > 0 ? (uint64_t)cfg->run_output_max_bytes : 0);
    __atomic_store_n(&dir_max, cfg->run_dir_max_bytes, __ATOMIC_RELAXED);
}

int limits_init(const struct config *cfg)
{
    pthread_condattr_t ca;

    output_limit(cfg->run_output_max_bytes > 0 ? (uint64_t)cfg->run_output_max_bytes : 0);
    dir_max = cfg->run_dir_max_bytes;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    pthread_condattr_destroy(&ca);
    stopping = 0;
    pool = worker_pool_new("run limits", 1, 0);
    if (worker_submit(pool, limits_main_job, NULL) != 0) {
        worker_pool_free(pool);
        pool = NULL;
        return LY_EINTERNAL;
    }
    started = 1;
    return 0;
}

void limits_stop(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    worker_pool_free(pool);
    pool = NULL;
    started = 0;
    pthread_mutex_lock(&mu);
    while (watched) {
        struct watched *w = watched;

        watched = w->next;
        free(w);
    }
    pthread_mutex_unlock(&mu);
}
