/*
 * See sampler.h. Each tick reads the runs going from the store (so it needs no hook in the
 * scheduler), reads /proc once for all of them, and writes every sample in one transaction.
 * CPU percent is of one CPU (100 = one core busy for the whole interval, as top shows it), from
 * the difference of the run's CPU time between two ticks; a run's first sample counts from
 * when it began running.
 */
#include "metrics/sampler.h"
#include "core/worker.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/util.h"
#include "logs/logs.h"
#include "metrics/nvml.h"
#include "runs/profiles.h"
#include "runs/runs.h"
#include "store/db.h"
#include "store/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JANITOR_EVERY_US (60 * 1000000LL)

struct prev {
    char id[40];
    uint64_t cpu_ns;
    int64_t at_us; /* wall clock */
};

struct target {
    char id[40];
    int64_t pid;
    int64_t running_at;
    int64_t mem_limit;
    char gpus[64];
    uint64_t proc_cpu_ns, proc_rss; /* summed from /proc */
    int seen;
};

static struct worker_pool *pool; /* its thread: a pool of one (core/worker.h) */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int started, stopping;
static int interval_s = 5;
static int64_t max_age_s;
static uint64_t max_bytes;
static struct prev *prevs;
static size_t nprev;

/* Reads a file's first number; -1 when it cannot. For "key value" files, key picks the line. */
static long long read_num(const char *path, const char *key)
{
    char line[256];
    long long v = -1;
    FILE *f = fopen(path, "re");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        size_t k = key ? strlen(key) : 0;

        if (key && (strncmp(line, key, k) != 0 || line[k] != ' '))
            continue;
        if (sscanf(line + k, "%lld", &v) != 1)
            v = -1;
        break;
    }
    fclose(f);
    return v;
}

/* Whether a cgroup directory has processes in it. */
static int cg_populated(const char *dir)
{
    char path[1200];
    FILE *f;
    int c;

    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    f = fopen(path, "re");
    if (!f)
        return 0;
    c = fgetc(f);
    fclose(f);
    return c != EOF;
}

/* Memory in use as docker stats counts it: the usage less the page cache it could drop. */
static long long cg_mem(const char *dir, const char *usage_file, const char *inactive_key)
{
    char path[800];
    long long used, inactive;

    snprintf(path, sizeof(path), "%s/%s", dir, usage_file);
    used = read_num(path, NULL);
    snprintf(path, sizeof(path), "%s/memory.stat", dir);
    inactive = used >= 0 ? read_num(path, inactive_key) : -1;
    return inactive > 0 && inactive < used ? used - inactive : used;
}

/* CPU time (ns) and memory (bytes) of a run's cgroup; -1 each where it has none. */
static void cg_read(const char *id, long long *cpu_ns, long long *mem)
{
    char dir[600], path[800];

    *cpu_ns = *mem = -1;
    snprintf(dir, sizeof(dir), "/sys/fs/cgroup/lyceumd/%s", id);
    if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
        if (!cg_populated(dir))
            return;
        snprintf(path, sizeof(path), "%s/cpu.stat", dir);
        *cpu_ns = read_num(path, "usage_usec");
        if (*cpu_ns >= 0)
            *cpu_ns *= 1000;
        *mem = cg_mem(dir, "memory.current", "inactive_file");
        return;
    }
    /* cgroup v1: cpuacct beside cpu, or mounted with it. */
    static const char *const cpu_roots[] = {"/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu"};
    for (size_t i = 0; i < 2 && *cpu_ns < 0; i++) {
        snprintf(dir, sizeof(dir), "%s/lyceumd/%s", cpu_roots[i], id);
        snprintf(path, sizeof(path), "%s/cpuacct.usage", dir);
        if (cg_populated(dir))
            *cpu_ns = read_num(path, NULL);
    }
    snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory/lyceumd/%s", id);
    if (cg_populated(dir))
        *mem = cg_mem(dir, "memory.usage_in_bytes", "total_inactive_file");
}

/* One pass over /proc: CPU time and resident memory of every target's process group. */
static void proc_scan(struct target *t, size_t n)
{
    static long tck, page;
    DIR *d = opendir("/proc");
    struct dirent *de;

    if (!tck) {
        tck = sysconf(_SC_CLK_TCK);
        page = sysconf(_SC_PAGESIZE);
    }
    if (!d)
        return;
    while ((de = readdir(d))) {
        char path[64], buf[1024], *p;
        long long pgrp, utime, stime, rss;
        FILE *f;
        int ok;

        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%.20s/stat", de->d_name);
        f = fopen(path, "re");
        if (!f)
            continue;
        ok = fgets(buf, sizeof(buf), f) != NULL;
        fclose(f);
        p = ok ? strrchr(buf, ')') : NULL;
        /* After ")": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
         * utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss */
        if (!p || sscanf(p + 1,
                         " %*c %*d %lld %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld %*d %*d %*d %*d "
                         "%*d %*d %*u %*u %lld",
                         &pgrp, &utime, &stime, &rss) != 4)
            continue;
        for (size_t i = 0; i < n; i++)
            if (t[i].pid == pgrp) {
                t[i].proc_cpu_ns += (uint64_t)(utime + stime) * (1000000000ULL / (uint64_t)tck);
                t[i].proc_rss += (uint64_t)(rss > 0 ? rss : 0) * (uint64_t)page;
                t[i].seen = 1;
                break;
            }
    }
    closedir(d);
}

static int64_t machine_memory(void)
{
    return (int64_t)sysconf(_SC_PHYS_PAGES) * (int64_t)sysconf(_SC_PAGESIZE);
}

/* Adds the readings of the run's GPUs ("0,1") to s: means and sums over them. */
static void gpu_sample(const char *gpus, struct metric_sample *s)
{
    static const int col[GPU_NREAD] = {MS_GPU_UTIL,      MS_GPU_MEM_UTIL,    MS_GPU_TEMP,
                                       MS_GPU_POWER,     MS_GPU_POWER_LIMIT, MS_GPU_CLOCK_SM,
                                       MS_GPU_CLOCK_MEM, MS_GPU_PCIE_RX,     MS_GPU_PCIE_TX};
    static const int summed[GPU_NREAD] = {0, 0, 0, 1, 1, 0, 0, 1, 1};
    double sum[GPU_NREAD] = {0};
    int count[GPU_NREAD] = {0};
    const char *p = gpus;

    while (p && *p) {
        char *end;
        long idx = strtol(p, &end, 10);
        struct gpu_reading r;

        if (end == p)
            break;
        if (nvml_read((int)idx, &r) == 0)
            for (int k = 0; k < GPU_NREAD; k++)
                if (r.have & 1u << k) {
                    sum[k] += r.v[k];
                    count[k]++;
                }
        p = *end == ',' ? end + 1 : NULL;
    }
    for (int k = 0; k < GPU_NREAD; k++)
        if (count[k]) {
            s->v[col[k]] = summed[k] ? sum[k] : sum[k] / count[k];
            s->have |= 1u << col[k];
        }
}

static struct prev *prev_find(const char *id)
{
    for (size_t i = 0; i < nprev; i++)
        if (strcmp(prevs[i].id, id) == 0)
            return &prevs[i];
    return NULL;
}

static void tick(void)
{
    struct db_local_run *rows;
    struct target *t;
    struct metric_sample *s;
    struct prev *next;
    size_t n, i, ns = 0;
    int64_t now = now_us();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (db_metrics_running_local(&rows, &n) != 0 || !n) {
        free(rows);
        free(prevs);
        prevs = NULL;
        nprev = 0;
        return;
    }
    t = xcalloc(n, sizeof(*t));
    s = xcalloc(n, sizeof(*s));
    next = xcalloc(n, sizeof(*next));
    for (i = 0; i < n; i++) {
        const struct db_local_run *row = &rows[i];
        struct profile *p = profile_find(row->profile);

        snprintf(t[i].id, sizeof(t[i].id), "%s", row->id);
        snprintf(t[i].gpus, sizeof(t[i].gpus), "%s", row->gpus);
        t[i].running_at = row->running_at;
        t[i].mem_limit = p ? p->mem_bytes : 0;
        /* A pid the run no longer has (it ended, the number was reused) is not read. */
        t[i].pid = runs_proc_start(row->pid) == row->pid_start ? row->pid : -1;
    }
    free(rows);
    proc_scan(t, n);
    for (i = 0; i < n; i++) {
        struct metric_sample *m = &s[ns];
        long long cg_cpu, cg_mem;
        uint64_t cpu;
        struct prev *pv;
        int64_t mem;

        if (t[i].pid <= 0 || !t[i].seen)
            continue;
        cg_read(t[i].id, &cg_cpu, &cg_mem);
        cpu = cg_cpu >= 0 ? (uint64_t)cg_cpu : t[i].proc_cpu_ns;
        mem = cg_mem >= 0 ? cg_mem : (int64_t)t[i].proc_rss;
        snprintf(m->run_id, sizeof(m->run_id), "%s", t[i].id);
        m->ts_us = now;
        pv = prev_find(t[i].id);
        {
            int64_t since = pv ? pv->at_us : t[i].running_at;
            uint64_t base = pv && pv->cpu_ns <= cpu ? pv->cpu_ns : 0;

            if (now > since) {
                double pct = 100.0 * (double)(cpu - base) / ((double)(now - since) * 1000.0);

                if (pct > 100.0 * (double)(ncpu > 0 ? ncpu : 1))
                    pct = 100.0 * (double)(ncpu > 0 ? ncpu : 1);
                m->v[MS_CPU] = pct;
                m->have |= 1u << MS_CPU;
            }
        }
        m->v[MS_RAM_USED] = (double)mem;
        m->v[MS_RAM_TOTAL] = (double)(t[i].mem_limit > 0 ? t[i].mem_limit : machine_memory());
        m->have |= 1u << MS_RAM_USED | 1u << MS_RAM_TOTAL;
        if (t[i].gpus[0])
            gpu_sample(t[i].gpus, m);
        snprintf(next[ns].id, sizeof(next[ns].id), "%s", t[i].id);
        next[ns].cpu_ns = cpu;
        next[ns].at_us = now;
        ns++;
    }
    if (db_metrics_insert(s, (int)ns) != 0)
        log_error("metrics: cannot store %zu samples", ns);
    free(prevs);
    prevs = next;
    nprev = ns;
    free(t);
    free(s);
}

static void janitor(void)
{
    logs_janitor(max_age_s, max_bytes);
    if (max_age_s > 0 && db_metrics_prune(now_us() - max_age_s * 1000000) != 0)
        log_error("metrics: cannot delete old samples");
}

static void *sampler_main(void *arg);

static void sampler_main_job(void *arg)
{
    sampler_main(arg);
}

static void *sampler_main(void *arg)
{
    int64_t next_janitor = 0;

    (void)arg;
    nvml_open();
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct timespec ts;

        pthread_mutex_unlock(&mu);
        tick();
        if (now_mono_us() >= next_janitor) {
            janitor();
            next_janitor = now_mono_us() + JANITOR_EVERY_US;
        }
        pthread_mutex_lock(&mu);
        if (stopping)
            break;
        deadline_in(&ts, CLOCK_MONOTONIC, (int64_t)interval_s * 1000000);
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    pthread_mutex_unlock(&mu);
    free(prevs);
    prevs = NULL;
    store_close();
    return NULL;
}

void sampler_reload(const struct config *cfg)
{
    __atomic_store_n(&max_age_s, (int64_t)cfg->log_retention_hours * 3600, __ATOMIC_RELAXED);
    __atomic_store_n(&max_bytes, (uint64_t)cfg->log_retention_bytes, __ATOMIC_RELAXED);
}

int sampler_start(const struct config *cfg)
{
    pthread_condattr_t ca;

    interval_s = cfg->metrics_interval_s > 0 ? cfg->metrics_interval_s : 5;
    max_age_s = (int64_t)cfg->log_retention_hours * 3600;
    max_bytes = (uint64_t)cfg->log_retention_bytes;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    pthread_condattr_destroy(&ca);
    pool = worker_pool_new("metrics sampler", 1, 0);
    if (worker_submit(pool, sampler_main_job, NULL) != 0) {
        worker_pool_free(pool);
        pool = NULL;
        log_error("cannot start the metrics sampler");
        return -1;
    }
    started = 1;
    return 0;
}

void sampler_stop(void)
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
}
