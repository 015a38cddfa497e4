/*
 * Deployments and their replicas, and the leases calls take on them (see inference.h).
 *
 * Every deployment that is not stopped lives in the list `deps`, guarded by `mu`; the
 * supervisor thread is the only one that starts, reaps or frees replicas and deployments, so
 * it may drop the lock around slow work (health checks) and find its pointers still valid.
 * Request threads only lease ready replicas (acquire/release) and record arrivals, and wait
 * on `ready_cv` for a replica of a starting or paused deployment.
 *
 * A replica is a model server (replica.c: started sandboxed, in its own control groups, on a
 * free loopback port). It takes traffic once GET /health answers 200. A replica that dies is
 * replaced; one that dies before it was ever ready counts as a failed start, and three in a
 * row fail the deployment.
 *
 * A deployment's hf_token (for the runtime's model download) is stored sealed under the
 * secrets master key, with the deployment's id as associated data, in its own column that no
 * API query reads; the plaintext lives only in memory, for the replicas' environment, and is
 * cleared when the deployment is freed. Restored deployments open it again.
 *
 * Autoscaling, once a tick: the arrival rate over stabilisation_window against target_rps,
 * and the p95 latency of the requests that ended in that window against
 * target_latency_p95_ms, ask for between min_replicas and max_replicas; a scale-up happens at
 * once, a scale-down only after the window passed with fewer wanted (it drains a replica: no
 * new requests, killed once idle). No request for idle_seconds scales to zero (paused); the
 * next request wakes it.
 *
 * Money: each replica is charged from its start, in windows of the metering window, at its
 * profile's price per hour, into the ledger as kind 'deployment' with ref = the replica id;
 * a unique index on (ref, window_start) writes each window once.
 */
#include "billing/billing.h"
#include "core/config.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"
#include "inference/call.h"
#include "inference/deploy_int.h"
#include "inference/inference.h"
#include "runs/profiles.h"
#include "runs/runs.h"
#include "secrets/secrets.h"
#include "store/db.h"
#include "store/inference.h"
#include "store/ledger.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FAILS  3
#define KILL_GRACE (5 * MICRO)

struct inference_settings inf_set;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cv;
static pthread_cond_t tick_cv;
static struct deployment *deps;
static pthread_t sup_thread;
static int sup_started, sup_stop;

static const char default_cpu[] = "llama-server -m {model_path} --host 127.0.0.1 --port {port} "
                                  "--api-key {api_key} -t 1 -np 4 -c 8192 --alias {deployment_id}";
static const char default_gpu[] =
    "vllm serve {model} --host 127.0.0.1 --port {port} --api-key {api_key} "
    "--served-model-name {deployment_id} --tensor-parallel-size {gpu_count} {vllm_args}";

/* ---- settings ---- */

static int cfg_int(json_t *o, const char *k, int def, int min, int max)
{
    json_t *v = json_object_get(o, k);

    if (!v)
        return def;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return INT_MIN;
    return (int)json_integer_value(v);
}

static int settings_load(const struct config *cfg)
{
    json_t *o = cfg->inference, *cmds = json_object_get(o, "commands");
    const char *k;
    json_t *v;
    char abs[PATH_MAX];

    /* Absolute: the sandbox binds replicas' homes by their paths. */
    snprintf(inf_set.data_dir, sizeof(inf_set.data_dir), "%.1000s",
             realpath(cfg->data_dir, abs) ? abs : cfg->data_dir);
    inf_set.idle_s = cfg_int(o, "idle_seconds", 3600, 1, 365 * 86400);
    inf_set.wake_s = cfg_int(o, "wake_timeout_seconds", 120, 1, 3600);
    inf_set.startup_s = cfg_int(o, "startup_timeout_seconds", 900, 1, 86400);
    inf_set.tick_ms = cfg_int(o, "tick_ms", 100, 10, 5000);
    inf_set.network = cfg->sandbox_network;
    if (inf_set.idle_s == INT_MIN || inf_set.wake_s == INT_MIN || inf_set.startup_s == INT_MIN ||
        inf_set.tick_ms == INT_MIN) {
        fprintf(stderr, "lyceumd: config: inference.idle_seconds, wake_timeout_seconds, "
                        "startup_timeout_seconds and tick_ms must be positive integers\n");
        return LY_EINVAL;
    }
    inf_set.commands = json_object();
    json_object_set_new(inf_set.commands, "cpu", json_string(default_cpu));
    json_object_set_new(inf_set.commands, "gpu", json_string(default_gpu));
    json_object_foreach(cmds, k, v)
    {
        if (!json_is_string(v) || !strstr(json_string_value(v), "{port}") ||
            !strstr(json_string_value(v), "{api_key}")) {
            fprintf(stderr,
                    "lyceumd: config: inference.commands.%s must be a string with {port} "
                    "and {api_key} (the model server must answer only lyceumd, which sends "
                    "the key it is given: e.g. --api-key {api_key})\n",
                    k);
            json_decref(inf_set.commands);
            inf_set.commands = NULL;
            return LY_EINVAL;
        }
        json_object_set(inf_set.commands, k, v);
    }
    return 0;
}

int inference_batch_concurrency(const struct config *cfg)
{
    int n = cfg_int(cfg->inference, "batch_concurrency", 8, 1, 256);

    return n == INT_MIN ? 8 : n;
}

static void set_status(struct deployment *d, const char *status, const char *errors)
{
    if (strcmp(d->status, status) == 0 && !errors)
        return;
    snprintf(d->status, sizeof(d->status), "%s", status);
    if (dep_set_status(d->id, status, errors))
        log_error("deployment %s: cannot record status %s", d->id, status);
    else
        log_info("deployment %s: %s%s%s", d->id, status, errors ? ": " : "", errors ? errors : "");
    pthread_cond_broadcast(&ready_cv);
}

int replica_port_in_use(int port)
{
    for (struct deployment *d = deps; d; d = d->next)
        for (struct replica *r = d->reps; r; r = r->next)
            if (r->port == port)
                return 1;
    return 0;
}

/* Frees d (out of the list, with no replicas), clearing its token. */
static void dep_free(struct deployment *d)
{
    if (d->hf_token) {
        explicit_bzero(d->hf_token, strlen(d->hf_token));
        free(d->hf_token);
    }
    json_decref(d->vllm_args);
    exec_uid_give(d->uid);
    free(d);
}

/* ---- the supervisor ---- */

static int count_active(struct deployment *d)
{
    int n = 0;

    for (struct replica *r = d->reps; r; r = r->next)
        n += r->state == R_STARTING || r->state == R_READY;
    return n;
}

static void reap(struct deployment *d, int64_t now, int64_t mono)
{
    struct replica **pp = &d->reps;

    while (*pp) {
        struct replica *r = *pp;
        int st;

        if (r->state == R_KILLED && mono - r->killed_mono > KILL_GRACE)
            replica_kill(r, SIGKILL);
        if (!replica_exited(r, &st)) {
            pp = &r->next;
            continue;
        }
        replica_meter(d, r, now, 1);
        rep_end(r->id, now);
        if (r->state == R_STARTING) {
            char msg[256];

            d->fails++;
            snprintf(msg, sizeof(msg),
                     "the model server exited (%s %d) before it was ready; its log is "
                     "inference/%s/%s.log in the data directory",
                     WIFEXITED(st) ? "code" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), d->id, r->id);
            log_warn("deployment %s: %s", d->id, msg);
            if (d->fails >= MAX_FAILS)
                set_status(d, "failed", msg);
        } else if (r->state == R_READY) {
            log_warn("deployment %s: replica %s died; replacing it", d->id, r->id);
        }
        *pp = r->next;
        replica_free(r, d->profile);
        pthread_cond_broadcast(&ready_cv);
    }
}

static void metrics(struct deployment *d, int64_t mono, double *rps, double *p95, int *nlat)
{
    int64_t win = (int64_t)d->window_s * MICRO;
    unsigned n = d->narr < RING ? d->narr : RING, k = 0;
    double lat[RING];

    *rps = 0;
    for (unsigned i = 0; i < n; i++)
        if (mono - d->arrivals[i] <= win)
            (*rps)++;
    *rps /= d->window_s;
    n = d->nlat < RING ? d->nlat : RING;
    for (unsigned i = 0; i < n; i++)
        if (mono - d->lat_t[i] <= win)
            lat[k++] = d->lat_ms[i];
    for (unsigned i = 1; i < k; i++) /* insertion sort: k is small */
        for (unsigned j = i; j > 0 && lat[j - 1] > lat[j]; j--) {
            double t = lat[j];

            lat[j] = lat[j - 1];
            lat[j - 1] = t;
        }
    *p95 = k ? lat[(95 * k + 99) / 100 - 1] : 0;
    *nlat = (int)k;
}

static void scale(struct deployment *d, int64_t mono)
{
    int active = count_active(d), want, outstanding = 0, nlat;
    double rps, p95, tr;
    char why[512];

    for (struct replica *r = d->reps; r; r = r->next)
        outstanding += r->outstanding;
    if (strcmp(d->status, "paused") == 0) {
        if (!d->wake)
            return;
        d->wake = 0;
        d->last_req_mono = mono;
        set_status(d, "starting", NULL);
    }
    if (strcmp(d->status, "running") == 0 && !outstanding &&
        mono - d->last_req_mono > (int64_t)inf_set.idle_s * MICRO) {
        for (struct replica *r = d->reps; r; r = r->next)
            replica_kill(r, SIGTERM);
        set_status(d, "paused", NULL);
        return;
    }
    metrics(d, mono, &rps, &p95, &nlat);
    tr = d->target_rps > 0 ? d->target_rps : 1;
    want = (int)(rps / tr);
    if (want * tr < rps)
        want++; /* rounded up */
    if (nlat >= 3 && p95 > d->target_lat_ms && active > 0)
        want = want > active + 1 ? want : active + 1;
    if (want < d->min_r)
        want = d->min_r;
    if (want > d->max_r)
        want = d->max_r;
    if (want < active) {
        if (!d->low_since_mono)
            d->low_since_mono = mono;
        if (mono - d->low_since_mono < (int64_t)d->window_s * MICRO ||
            mono - d->last_up_mono < (int64_t)d->window_s * MICRO)
            want = active;
        else
            d->low_since_mono = mono;
    } else {
        d->low_since_mono = 0;
    }
    while (active < want) {
        int full;

        if (!replica_new(d, why, sizeof(why), &full)) {
            if (full)
                break; /* the profile is busy: again at the next tick */
            set_status(d, "failed", why);
            return;
        }
        active++;
        d->last_up_mono = mono;
        if (strcmp(d->status, "pending") == 0)
            set_status(d, "starting", NULL);
    }
    if (active > want) {
        /* Drain the replica with the least work; it is killed once it has none. */
        struct replica *best = NULL;

        for (struct replica *r = d->reps; r; r = r->next)
            if ((r->state == R_READY || r->state == R_STARTING) &&
                (!best || r->outstanding < best->outstanding))
                best = r;
        if (best) {
            best->state = R_DRAINING;
            log_info("deployment %s: scaling down (%.2f req/s), draining %s", d->id, rps, best->id);
        }
    }
    for (struct replica *r = d->reps; r; r = r->next)
        if (r->state == R_DRAINING && !r->outstanding)
            replica_kill(r, SIGTERM);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void tick(void)
{
    struct target {
        struct replica *r;
        int port, netns, ok;
    } t[64];
    int nt = 0;
    json_t *ended = json_array(); /* ids of the deployments that ended: their homes go */
    int64_t now, mono;
    struct deployment **pp;

    /* Health checks of starting replicas, without the lock (only this thread frees them). */
    pthread_mutex_lock(&mu);
    for (struct deployment *d = deps; d; d = d->next)
        for (struct replica *r = d->reps; r && nt < 64; r = r->next)
            if (r->state == R_STARTING)
                t[nt++] = (struct target){r, r->port, r->netns, 0};
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nt; i++) {
        CURL *h = curl_easy_init();
        struct curl_slist *hdr = NULL;
        long code = 0;

        replica_curl(h, &t[i].netns, t[i].port, t[i].r->key, "/health", &hdr);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 500L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        if (curl_easy_perform(h) == CURLE_OK &&
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200)
            t[i].ok = 1;
        curl_easy_cleanup(h);
        curl_slist_free_all(hdr);
    }

    pthread_mutex_lock(&mu);
    now = now_us();
    mono = now_mono_us();
    for (int i = 0; i < nt; i++)
        if (t[i].ok && t[i].r->state == R_STARTING)
            t[i].r->healthy = 1;
    for (pp = &deps; *pp;) {
        struct deployment *d = *pp;

        reap(d, now, mono);
        for (struct replica *r = d->reps; r; r = r->next) {
            if (r->state == R_STARTING && r->healthy) {
                r->state = R_READY;
                d->fails = 0;
                log_info("deployment %s: replica %s ready after %.2f s", d->id, r->id,
                         (double)(mono - r->spawned_mono) / 1e6);
                if (strcmp(d->status, "starting") == 0 || strcmp(d->status, "pending") == 0)
                    set_status(d, "running", NULL);
                pthread_cond_broadcast(&ready_cv);
            } else if (r->state == R_STARTING &&
                       mono - r->spawned_mono > (int64_t)inf_set.startup_s * MICRO) {
                log_warn("deployment %s: replica %s not ready after %d s", d->id, r->id,
                         inf_set.startup_s);
                replica_kill(r, SIGKILL);
                if (++d->fails >= MAX_FAILS)
                    set_status(d, "failed", "the model server did not become ready in time");
            }
            if (r->state != R_KILLED || r->pid > 0)
                replica_meter(d, r, now, 0);
        }
        if (mono - d->broke_check_mono > MICRO && strcmp(d->status, "stopping") != 0 &&
            strcmp(d->status, "failed") != 0 && strcmp(d->status, "paused") != 0) {
            int64_t bal = 1;

            d->broke_check_mono = mono;
            if (ledger_balance(d->org_id, &bal) == 0 && bal <= 0) {
                set_status(d, "stopping", "Insufficient credits: the deployment was stopped");
                d->stop_mono = mono;
            }
        }
        if (strcmp(d->status, "stopping") == 0 || strcmp(d->status, "failed") == 0) {
            for (struct replica *r = d->reps; r; r = r->next)
                if (r->state != R_KILLED)
                    replica_kill(r, SIGTERM);
        } else {
            scale(d, mono);
        }
        if (!d->reps &&
            (strcmp(d->status, "stopping") == 0 || strcmp(d->status, "failed") == 0 || sup_stop)) {
            if (strcmp(d->status, "stopping") == 0)
                set_status(d, "stopped", NULL);
            if (strcmp(d->status, "stopped") == 0 || strcmp(d->status, "failed") == 0 || sup_stop) {
                *pp = d->next;
                if (strcmp(d->status, "stopped") == 0 || strcmp(d->status, "failed") == 0)
                    json_array_append_new(ended, json_string(d->id));
                dep_free(d);
                continue;
            }
        }
        pp = &d->next;
    }
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < json_array_size(ended); i++)
        replica_home_remove(json_string_value(json_array_get(ended, i)));
    json_decref(ended);
}

static void *supervisor(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts;

        tick();
        pthread_mutex_lock(&mu);
        if (sup_stop) {
            pthread_mutex_unlock(&mu);
            break;
        }
        deadline_in(&ts, CLOCK_MONOTONIC, (int64_t)inf_set.tick_ms * 1000);
        pthread_cond_timedwait(&tick_cv, &mu, &ts);
        pthread_mutex_unlock(&mu);
    }
    /* Shutting down: end every replica and charge it to now. */
    pthread_mutex_lock(&mu);
    for (struct deployment *d = deps; d; d = d->next)
        for (struct replica *r = d->reps; r; r = r->next)
            replica_kill(r, SIGTERM);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 50; i++) {
        int left = 0;

        pthread_mutex_lock(&mu);
        for (struct deployment *d = deps; d; d = d->next) {
            reap(d, now_us(), now_mono_us());
            left += d->reps != NULL;
        }
        pthread_mutex_unlock(&mu);
        if (!left)
            break;
        usleep(100 * 1000);
    }
    pthread_mutex_lock(&mu);
    for (struct deployment *d = deps; d; d = d->next) {
        for (struct replica *r = d->reps; r; r = r->next)
            replica_kill(r, SIGKILL);
        reap(d, now_us(), now_mono_us());
    }
    while (deps) {
        struct deployment *d = deps;

        deps = d->next;
        while (d->reps) {
            struct replica *r = d->reps;

            d->reps = r->next;
            replica_free(r, d->profile);
        }
        dep_free(d);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* ---- deployments ---- */

static double num(json_t *o, const char *k, double def)
{
    json_t *v = json_object_get(o, k);

    return json_is_number(v) ? json_number_value(v) : def;
}

/* The associated data that binds a sealed hf_token to its deployment. */
static void token_aad(const char *dep_id, char *out, size_t n)
{
    snprintf(out, n, "hf_token:%s", dep_id);
}

/* The in-memory deployment of a stored row (status as stored); it takes hf_token (malloc'd
 * plaintext, or NULL). Called with mu held. */
static struct deployment *dep_from_row(json_t *row, char *hf_token)
{
    struct deployment *d = xcalloc(1, sizeof(*d));
    json_t *spec = json_loads(json_string_value(json_object_get(row, "spec")), 0, NULL);
    const char *va = json_string_value(json_object_get(spec, "vllm_args"));

    snprintf(d->id, sizeof(d->id), "%s", json_string_value(json_object_get(row, "id")));
    snprintf(d->org_id, sizeof(d->org_id), "%s", json_string_value(json_object_get(row, "org_id")));
    snprintf(d->hf_model_id, sizeof(d->hf_model_id), "%s",
             json_string_value(json_object_get(row, "hf_model_id")));
    snprintf(d->profile, sizeof(d->profile), "%s",
             json_string_value(json_object_get(row, "profile")));
    snprintf(d->status, sizeof(d->status), "%s", json_string_value(json_object_get(row, "status")));
    d->min_r = (int)json_integer_value(json_object_get(row, "min_replicas"));
    d->max_r = (int)json_integer_value(json_object_get(row, "max_replicas"));
    d->target_rps = num(spec, "target_rps", 10);
    d->target_lat_ms = num(spec, "target_latency_p95_ms", 5000);
    d->window_s = (int)json_integer_value(json_object_get(spec, "stabilisation_window"));
    if (d->window_s < 1)
        d->window_s = 300;
    d->gpu_count = (int)json_integer_value(json_object_get(spec, "gpu_count"));
    d->vllm_args = json_array();
    if (va) {
        char *copy = strdup(va), *save = NULL;

        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            if (*t)
                json_array_append_new(d->vllm_args, json_string(t));
        }
        free(copy);
    }
    d->hf_token = hf_token;
    d->last_req_mono = now_mono_us();
    json_decref(spec);
    d->next = deps;
    deps = d;
    return d;
}

static struct deployment *find(const char *id)
{
    for (struct deployment *d = deps; d; d = d->next)
        if (strcmp(d->id, id) == 0)
            return d;
    return NULL;
}

int deployment_create(const char *org_id, const char *user_id, json_t *body, char *id)
{
    json_t *spec = json_object(), *row, *v;
    const char *profile = json_string_value(json_object_get(body, "hardware_profile"));
    const char *token = json_string_value(json_object_get(body, "hf_token")), *k;
    int min_r = (int)json_integer_value(json_object_get(body, "min_replicas"));
    int max_r = (int)json_integer_value(json_object_get(body, "max_replicas"));
    char aad[64], *sealed = NULL;
    int err;

    if (min_r < 1)
        min_r = 1;
    if (max_r < min_r)
        max_r = min_r;
    /* The stored spec is the body but for the token, which is sealed into its own column. */
    json_object_foreach(body, k, v) if (strcmp(k, "hf_token") != 0) json_object_set(spec, k, v);
    uuid_v4(id);
    if (token && *token) {
        token_aad(id, aad, sizeof(aad));
        sealed = secrets_seal(aad, token, strlen(token));
    }
    err = dep_insert(id, org_id, user_id, json_string_value(json_object_get(body, "hf_model_id")),
                     profile, spec, min_r, max_r, sealed);
    free(sealed);
    json_decref(spec);
    if (err)
        return err;
    row = dep_get(org_id, id, &err);
    if (!row)
        return err ? err : LY_EDB;
    pthread_mutex_lock(&mu);
    dep_from_row(row, token && *token ? xstrdup(token) : NULL);
    pthread_cond_signal(&tick_cv);
    pthread_mutex_unlock(&mu);
    json_decref(row);
    return 0;
}

static json_t *deployment_obj(json_t *row)
{
    json_t *spec = json_loads(json_string_value(json_object_get(row, "spec")), 0, NULL);
    const char *id = json_string_value(json_object_get(row, "id"));
    json_t *o = json_object(), *reps = json_array(), *v;
    struct deployment *d;
    char ts[40], billed[32];
    const char *keys[] = {"gpu_type", "gpu_count", "gpu_vram_gb", "vllm_args", NULL};

    json_object_set(o, "deployment_id", json_object_get(row, "id"));
    json_object_set(o, "hf_model_id", json_object_get(row, "hf_model_id"));
    json_object_set(o, "hardware_profile", json_object_get(row, "profile"));
    for (int i = 0; keys[i]; i++)
        if ((v = json_object_get(spec, keys[i])))
            json_object_set(o, keys[i], v);
    pthread_mutex_lock(&mu);
    d = find(id);
    json_object_set_new(
        o, "status",
        json_string(d ? d->status : json_string_value(json_object_get(row, "status"))));
    for (struct replica *r = d ? d->reps : NULL; r; r = r->next) {
        static const char *const names[] = {"starting", "running", "draining", "stopping"};

        time_iso(r->started_us, ts, sizeof(ts));
        json_array_append_new(reps, json_pack("{s:s,s:s,s:s,s:i}", "replica_id", r->id, "status",
                                              names[r->state], "started_at", ts, "outstanding",
                                              r->outstanding));
    }
    pthread_mutex_unlock(&mu);
    json_object_set(o, "errors", json_object_get(row, "errors"));
    json_object_set(o, "min_replicas", json_object_get(row, "min_replicas"));
    json_object_set(o, "max_replicas", json_object_get(row, "max_replicas"));
    json_object_set_new(o, "replicas", reps);
    json_object_set(o, "target_rps", json_object_get(spec, "target_rps"));
    json_object_set(o, "target_latency_p95_ms", json_object_get(spec, "target_latency_p95_ms"));
    json_object_set(o, "stabilisation_window", json_object_get(spec, "stabilisation_window"));
    time_iso(json_integer_value(json_object_get(row, "created_at")), ts, sizeof(ts));
    json_object_set_new(o, "created_at", json_string(ts));
    v = json_object_get(row, "stopped_at");
    if (json_is_integer(v)) {
        time_iso(json_integer_value(v), ts, sizeof(ts));
        json_object_set_new(o, "stopped_at", json_string(ts));
    } else {
        json_object_set_new(o, "stopped_at", json_null());
    }
    micro_format(dep_billed(id), billed, sizeof(billed));
    json_object_set_new(o, "billed", json_real(strtod(billed, NULL)));
    json_decref(spec);
    return o;
}

json_t *deployment_json(const char *org_id, const char *id, int *err)
{
    json_t *row = dep_get(org_id, id, err), *o;

    if (!row) {
        if (!*err)
            *err = LY_ENOTFOUND;
        return NULL;
    }
    o = deployment_obj(row);
    json_decref(row);
    return o;
}

json_t *deployment_list_json(const char *org_id, int include_stopped, int *err)
{
    json_t *rows = json_array(), *out, *row;
    size_t i;

    *err = dep_list(org_id, include_stopped, rows);
    if (*err) {
        json_decref(rows);
        return NULL;
    }
    out = json_array();
    json_array_foreach(rows, i, row) json_array_append_new(out, deployment_obj(row));
    json_decref(rows);
    return json_pack("{s:o,s:I}", "deployments", out, "total", (json_int_t)json_array_size(out));
}

int deployment_stop(const char *org_id, const char *id)
{
    int err;
    json_t *row = dep_get(org_id, id, &err);
    struct deployment *d;

    if (!row)
        return err ? err : LY_ENOTFOUND;
    json_decref(row);
    pthread_mutex_lock(&mu);
    d = find(id);
    if (d && strcmp(d->status, "failed") != 0) {
        set_status(d, "stopping", NULL);
        pthread_cond_signal(&tick_cv);
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

json_t *inference_models(const char *org_id)
{
    json_t *rows = json_array(), *out = json_array(), *row;
    size_t i;

    dep_list(org_id, 0, rows);
    json_array_foreach(rows, i, row)
    {
        int64_t created = json_integer_value(json_object_get(row, "created_at")) / MICRO;

        json_array_append_new(out, json_pack("{s:O,s:s,s:I,s:s,s:O,s:O}", "id",
                                             json_object_get(row, "id"), "object", "model",
                                             "created", (json_int_t)created, "owned_by", org_id,
                                             "hf_model_id", json_object_get(row, "hf_model_id"),
                                             "status", json_object_get(row, "status")));
    }
    json_decref(rows);
    return json_pack("{s:s,s:o}", "object", "list", "data", out);
}

int inference_resolve(const char *org_id, const char *model, char *dep_id)
{
    struct deployment *best = NULL;
    int err = LY_ENOTFOUND;

    pthread_mutex_lock(&mu);
    for (struct deployment *d = deps; d; d = d->next) {
        if (strcmp(d->org_id, org_id) != 0 ||
            (strcmp(d->id, model) != 0 && strcmp(d->hf_model_id, model) != 0))
            continue;
        if (strcmp(d->status, "stopping") == 0)
            continue;
        if (strcmp(d->status, "failed") == 0) {
            err = LY_EUNAVAIL;
            continue;
        }
        if (!best || strcmp(d->id, model) == 0 || strcmp(best->status, "running") != 0)
            best = d;
    }
    if (best) {
        snprintf(dep_id, 40, "%s", best->id);
        err = 0;
    }
    pthread_mutex_unlock(&mu);
    return err;
}

int inference_acquire(const char *dep_id, struct lease *l)
{
    struct timespec ts;
    struct deployment *d;
    int err = 0;

    deadline_in(&ts, CLOCK_MONOTONIC, (int64_t)inf_set.wake_s * MICRO);
    pthread_mutex_lock(&mu);
    d = find(dep_id);
    if (d) {
        d->arrivals[d->narr++ % RING] = now_mono_us();
        d->last_req_mono = now_mono_us();
    }
    for (;;) {
        struct replica *best = NULL;

        d = find(dep_id);
        if (!d || strcmp(d->status, "stopping") == 0 || strcmp(d->status, "failed") == 0) {
            err = LY_ENOTFOUND;
            break;
        }
        if (strcmp(d->status, "paused") == 0 && !d->wake) {
            d->wake = 1;
            pthread_cond_signal(&tick_cv);
        }
        for (struct replica *r = d->reps; r; r = r->next)
            if (r->state == R_READY && (!best || r->outstanding < best->outstanding))
                best = r;
        if (best) {
            best->outstanding++;
            d->last_req_mono = now_mono_us();
            snprintf(l->dep_id, sizeof(l->dep_id), "%s", d->id);
            snprintf(l->rep_id, sizeof(l->rep_id), "%s", best->id);
            snprintf(l->org_id, sizeof(l->org_id), "%s", d->org_id);
            l->port = best->port;
            l->netns = best->netns >= 0 ? fcntl(best->netns, F_DUPFD_CLOEXEC, 0) : -1;
            snprintf(l->key, sizeof(l->key), "%s", best->key);
            l->t0 = now_mono_us();
            break;
        }
        if (sup_stop || pthread_cond_timedwait(&ready_cv, &mu, &ts) == ETIMEDOUT) {
            err = LY_EUNAVAIL;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return err;
}

void inference_release(struct lease *l)
{
    struct deployment *d;
    int64_t mono = now_mono_us();

    if (l->netns >= 0)
        close(l->netns);
    l->netns = -1;
    pthread_mutex_lock(&mu);
    d = find(l->dep_id);
    for (struct replica *r = d ? d->reps : NULL; r; r = r->next)
        if (strcmp(r->id, l->rep_id) == 0) {
            r->outstanding--;
            break;
        }
    if (d) {
        d->lat_t[d->nlat % RING] = mono;
        d->lat_ms[d->nlat++ % RING] = (double)(mono - l->t0) / 1000.0;
        d->last_req_mono = mono;
    }
    pthread_mutex_unlock(&mu);
}

void inference_unreachable(struct lease *l)
{
    struct deployment *d;

    pthread_mutex_lock(&mu);
    d = find(l->dep_id);
    for (struct replica *r = d ? d->reps : NULL; r; r = r->next)
        if (strcmp(r->id, l->rep_id) == 0) {
            if (r->state == R_READY) {
                log_warn("deployment %s: replica %s gave no answer; replacing it", d->id, r->id);
                replica_kill(r, SIGKILL);
            }
            break;
        }
    pthread_cond_signal(&tick_cv); /* reap it and start another now */
    pthread_mutex_unlock(&mu);
    inference_release(l);
}

void inference_meter(const char *org_id, const char *dep_id, json_t *obj)
{
    json_t *u = json_object_get(obj, "usage"), *t = json_object_get(obj, "timings");
    int64_t p, c;

    if (json_is_object(u)) {
        p = json_integer_value(json_object_get(u, "prompt_tokens"));
        c = json_integer_value(json_object_get(u, "completion_tokens"));
    } else if (json_is_object(t)) {
        p = json_integer_value(json_object_get(t, "prompt_n"));
        c = json_integer_value(json_object_get(t, "predicted_n"));
    } else {
        return;
    }
    if (usage_add(org_id, dep_id, p, c))
        log_error("deployment %s: cannot record usage", dep_id);
}

/* ---- start and stop ---- */

int inference_init(const struct config *cfg)
{
    json_t *open, *live, *row;
    pthread_condattr_t ca;
    size_t i;

    if (settings_load(cfg))
        return LY_EINVAL;
    /* Streaming inferences a restart cut short end as failed (their stream says so). */
    if (infres_fail_open("lyceumd restarted before the inference finished"))
        log_error("cannot end the streaming inferences of the last run");
    open = json_array();
    live = json_array();
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ready_cv, &ca);
    pthread_cond_init(&tick_cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Replicas of a previous process died with it (PR_SET_PDEATHSIG): they were charged up
     * to their last window; their control groups are left to remove. */
    if (rep_open(open) == 0)
        json_array_foreach(open, i, row)
        {
            const char *id = json_string_value(json_object_get(row, "id"));

            rep_end(id, json_integer_value(json_object_get(row, "metered_until")));
            exec_service_forget(id);
        }
    json_decref(open);
    dep_live(live);
    pthread_mutex_lock(&mu);
    json_array_foreach(live, i, row)
    {
        const char *sealed = json_string_value(json_object_get(row, "hf_token_sealed"));
        const char *id = json_string_value(json_object_get(row, "id"));
        char aad[64], *token = NULL;
        struct deployment *d;

        if (sealed) {
            token_aad(id, aad, sizeof(aad));
            token = secrets_open(aad, sealed, NULL);
            if (!token)
                log_error("deployment %s: its hf_token does not open (another master key?): "
                          "its replicas start without it",
                          id);
        }
        d = dep_from_row(row, token);

        if (strcmp(d->status, "stopping") == 0)
            set_status(d, "stopped", NULL);
        else if (strcmp(d->status, "paused") != 0)
            set_status(d, "starting", NULL);
    }
    pthread_mutex_unlock(&mu);
    json_decref(live);
    if (pthread_create(&sup_thread, NULL, supervisor, NULL)) {
        fprintf(stderr, "lyceumd: cannot start the inference supervisor\n");
        return LY_EINTERNAL;
    }
    sup_started = 1;
    return 0;
}

void inference_shutdown(void)
{
    if (!sup_started) {
        upstream_shutdown();
        call_shutdown();
        return;
    }
    pthread_mutex_lock(&mu);
    sup_stop = 1;
    pthread_cond_signal(&tick_cv);
    pthread_cond_broadcast(&ready_cv); /* calls waiting for a replica give up */
    pthread_mutex_unlock(&mu);
    pthread_join(sup_thread, NULL);
    sup_started = 0;
    /* The calls' workers end once their transfers ended (aborted) and no one waits for a
     * replica: then they are joined. */
    upstream_shutdown();
    call_shutdown();
    json_decref(inf_set.commands);
    inf_set.commands = NULL;
}
