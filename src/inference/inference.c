/*
 * Deployments and their replicas, and the leases calls take on them (see inference.h).
 *
 * Every deployment that is not stopped lives in the list `inf_deps`, guarded by `inf_mu`; the
 * supervisor thread (supervisor.c) is the only one that starts, reaps or frees replicas and
 * deployments, so it may drop the lock around slow work (health checks) and find its pointers still
 * valid. Request threads only lease ready replicas (acquire/release) and record arrivals, and wait
 * on `inf_ready_cv` for a replica of a starting or paused deployment.
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
#include "core/worker.h"
#include "exec/exec.h"
#include "inference/call.h"
#include "inference/inference_int.h"
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

struct inference_settings inf_set;

pthread_mutex_t inf_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t inf_ready_cv, inf_tick_cv;
struct deployment *inf_deps;
int inf_sup_stop;
static struct worker_pool *sup_pool; /* the supervisor's thread */
static int sup_started;

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

void deployment_set_status(struct deployment *d, const char *status, const char *errors)
{
    if (strcmp(d->status, status) == 0 && !errors)
        return;
    snprintf(d->status, sizeof(d->status), "%s", status);
    if (db_dep_set_status(d->id, status, errors))
        log_error("deployment %s: cannot record status %s", d->id, status);
    else
        log_info("deployment %s: %s%s%s", d->id, status, errors ? ": " : "", errors ? errors : "");
    pthread_cond_broadcast(&inf_ready_cv);
}

int replica_port_in_use(int port)
{
    for (struct deployment *d = inf_deps; d; d = d->next)
        for (struct replica *r = d->reps; r; r = r->next)
            if (r->port == port)
                return 1;
    return 0;
}

/* Frees d (out of the list, with no replicas), clearing its token. */
void deployment_free(struct deployment *d)
{
    if (d->hf_token) {
        explicit_bzero(d->hf_token, strlen(d->hf_token));
        free(d->hf_token);
    }
    json_decref(d->vllm_args);
    exec_uid_give(d->uid);
    free(d);
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
static struct deployment *dep_from_row(const struct dep_row *row, char *hf_token)
{
    struct deployment *d = xcalloc(1, sizeof(*d));
    json_t *spec = json_loads(row->spec, 0, NULL);
    const char *va = json_string_value(json_object_get(spec, "vllm_args"));

    snprintf(d->id, sizeof(d->id), "%s", row->id);
    snprintf(d->org_id, sizeof(d->org_id), "%s", row->org_id);
    snprintf(d->hf_model_id, sizeof(d->hf_model_id), "%s", row->hf_model_id);
    snprintf(d->profile, sizeof(d->profile), "%s", row->profile);
    snprintf(d->status, sizeof(d->status), "%s", row->status);
    d->min_r = (int)row->min_replicas;
    d->max_r = (int)row->max_replicas;
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
    d->next = inf_deps;
    inf_deps = d;
    return d;
}

static struct deployment *find(const char *id)
{
    for (struct deployment *d = inf_deps; d; d = d->next)
        if (strcmp(d->id, id) == 0)
            return d;
    return NULL;
}

int deployment_create(const char *org_id, const char *user_id, json_t *body, char *id)
{
    json_t *spec = json_object(), *v;
    struct dep_row row;
    const char *profile = json_string_value(json_object_get(body, "hardware_profile"));
    const char *token = json_string_value(json_object_get(body, "hf_token")), *k;
    int min_r = (int)json_integer_value(json_object_get(body, "min_replicas"));
    int max_r = (int)json_integer_value(json_object_get(body, "max_replicas"));
    char aad[64], *sealed = NULL, *js;
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
    js = json_dumps(spec, JSON_COMPACT);
    err =
        db_dep_insert(id, org_id, user_id, json_string_value(json_object_get(body, "hf_model_id")),
                      profile, js, min_r, max_r, sealed);
    free(js);
    free(sealed);
    json_decref(spec);
    if (err)
        return err;
    err = db_dep_get(org_id, id, &row);
    if (err)
        return err == LY_ENOTFOUND ? LY_EDB : err;
    pthread_mutex_lock(&inf_mu);
    dep_from_row(&row, token && *token ? xstrdup(token) : NULL);
    pthread_cond_signal(&inf_tick_cv);
    pthread_mutex_unlock(&inf_mu);
    dep_row_release(&row);
    return 0;
}

void deployment_info_release(struct deployment_info *d)
{
    dep_row_release(&d->row);
    free(d->reps);
    d->reps = NULL;
    d->nreps = 0;
}

void deployment_infos_release(struct deployment_infos *list)
{
    for (size_t i = 0; i < list->n; i++)
        deployment_info_release(&list->v[i]);
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

/* Adds to a stored row what lives in memory (the status, the replicas) and what it was
 * billed; takes the row's strings. */
static void info_of(struct deployment_info *out, struct dep_row *row)
{
    static const char *const names[] = {"starting", "running", "draining", "stopping"};
    struct deployment *d;
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    out->row = *row;
    pthread_mutex_lock(&inf_mu);
    d = find(row->id);
    snprintf(out->status, sizeof(out->status), "%s", d ? d->status : row->status);
    for (struct replica *r = d ? d->reps : NULL; r; r = r->next)
        n++;
    out->reps = n ? xcalloc(n, sizeof(*out->reps)) : NULL;
    for (struct replica *r = d ? d->reps : NULL; r; r = r->next) {
        struct replica_info *ri = &out->reps[out->nreps++];

        snprintf(ri->id, sizeof(ri->id), "%s", r->id);
        ri->status = names[r->state];
        ri->started_us = r->started_us;
        ri->outstanding = r->outstanding;
    }
    pthread_mutex_unlock(&inf_mu);
    out->billed = db_dep_billed(row->id);
}

int deployment_read(const char *org_id, const char *id, struct deployment_info *out)
{
    struct dep_row row;
    int err = db_dep_get(org_id, id, &row);

    memset(out, 0, sizeof(*out));
    if (err)
        return err;
    info_of(out, &row);
    return 0;
}

int deployment_read_all(const char *org_id, int include_stopped, struct deployment_infos *out)
{
    struct dep_rows rows;
    int err = db_dep_list(org_id, include_stopped, &rows);

    memset(out, 0, sizeof(*out));
    if (err)
        return err;
    out->v = xcalloc(rows.n ? rows.n : 1, sizeof(*out->v));
    out->n = rows.n;
    for (size_t i = 0; i < rows.n; i++)
        info_of(&out->v[i], &rows.v[i]);
    free(rows.v); /* the rows' strings moved over */
    return 0;
}

int deployment_rows(const char *org_id, struct dep_rows *out)
{
    return db_dep_list(org_id, 0, out);
}

int deployment_stop(const char *org_id, const char *id)
{
    struct dep_row row;
    struct deployment *d;
    int err = db_dep_get(org_id, id, &row);

    if (err)
        return err;
    dep_row_release(&row);
    pthread_mutex_lock(&inf_mu);
    d = find(id);
    if (d && strcmp(d->status, "failed") != 0) {
        deployment_set_status(d, "stopping", NULL);
        pthread_cond_signal(&inf_tick_cv);
    }
    pthread_mutex_unlock(&inf_mu);
    return 0;
}

int inference_resolve(const char *org_id, const char *model, char *dep_id)
{
    struct deployment *best = NULL;
    int err = LY_ENOTFOUND;

    pthread_mutex_lock(&inf_mu);
    for (struct deployment *d = inf_deps; d; d = d->next) {
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
    pthread_mutex_unlock(&inf_mu);
    return err;
}

int inference_acquire(const char *dep_id, struct lease *l)
{
    struct timespec ts;
    struct deployment *d;
    int err = 0;

    deadline_in(&ts, CLOCK_MONOTONIC, (int64_t)inf_set.wake_s * MICRO);
    pthread_mutex_lock(&inf_mu);
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
            pthread_cond_signal(&inf_tick_cv);
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
        if (inf_sup_stop || pthread_cond_timedwait(&inf_ready_cv, &inf_mu, &ts) == ETIMEDOUT) {
            err = LY_EUNAVAIL;
            break;
        }
    }
    pthread_mutex_unlock(&inf_mu);
    return err;
}

void inference_release(struct lease *l)
{
    struct deployment *d;
    int64_t mono = now_mono_us();

    if (l->netns >= 0)
        close(l->netns);
    l->netns = -1;
    pthread_mutex_lock(&inf_mu);
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
    pthread_mutex_unlock(&inf_mu);
}

void inference_unreachable(struct lease *l)
{
    struct deployment *d;

    pthread_mutex_lock(&inf_mu);
    d = find(l->dep_id);
    for (struct replica *r = d ? d->reps : NULL; r; r = r->next)
        if (strcmp(r->id, l->rep_id) == 0) {
            if (r->state == R_READY) {
                log_warn("deployment %s: replica %s gave no answer; replacing it", d->id, r->id);
                replica_kill(r, SIGKILL);
            }
            break;
        }
    pthread_cond_signal(&inf_tick_cv); /* reap it and start another now */
    pthread_mutex_unlock(&inf_mu);
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
    if (db_usage_add(org_id, dep_id, p, c))
        log_error("deployment %s: cannot record usage", dep_id);
}

/* ---- start and stop ---- */

int inference_init(const struct config *cfg)
{
    struct rep_rows open;
    struct dep_rows live;
    pthread_condattr_t ca;

    if (settings_load(cfg))
        return LY_EINVAL;
    /* Streaming inferences a restart cut short end as failed (their stream says so). */
    if (db_infres_fail_open("lyceumd restarted before the inference finished"))
        log_error("cannot end the streaming inferences of the last run");
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&inf_ready_cv, &ca);
    pthread_cond_init(&inf_tick_cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Replicas of a previous process died with it (PR_SET_PDEATHSIG): they were charged up
     * to their last window; their control groups are left to remove. */
    if (db_rep_open(&open) == 0) {
        for (size_t i = 0; i < open.n; i++) {
            db_rep_end(open.v[i].id, open.v[i].metered_until);
            exec_service_forget(open.v[i].id);
        }
        rep_rows_release(&open);
    }
    if (db_dep_live(&live))
        dep_rows_release(&live); /* none restored: they stay in the store as they are */
    pthread_mutex_lock(&inf_mu);
    for (size_t i = 0; i < live.n; i++) {
        const struct dep_row *row = &live.v[i];
        const char *sealed = row->hf_token_sealed;
        const char *id = row->id;
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
            deployment_set_status(d, "stopped", NULL);
        else if (strcmp(d->status, "paused") != 0)
            deployment_set_status(d, "starting", NULL);
    }
    pthread_mutex_unlock(&inf_mu);
    dep_rows_release(&live);
    sup_pool = worker_pool_new("inference supervisor", 1, 0);
    if (worker_submit(sup_pool, inference_supervisor, NULL)) {
        worker_pool_free(sup_pool);
        sup_pool = NULL;
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
    pthread_mutex_lock(&inf_mu);
    inf_sup_stop = 1;
    pthread_cond_signal(&inf_tick_cv);
    pthread_cond_broadcast(&inf_ready_cv); /* calls waiting for a replica give up */
    pthread_mutex_unlock(&inf_mu);
    worker_pool_free(sup_pool);
    sup_pool = NULL;
    sup_started = 0;
    /* The calls' workers end once their transfers ended (aborted) and no one waits for a
     * replica: then they are joined. */
    upstream_shutdown();
    call_shutdown();
    json_decref(inf_set.commands);
    inf_set.commands = NULL;
}
