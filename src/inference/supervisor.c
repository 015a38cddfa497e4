/*
 * The supervisor (see inference.h, inference_int.h): one thread that does all the slow work of
 * the deployments, once a tick or when woken (inf_tick_cv): reaps replicas that exited and
 * replaces them, health-checks starting ones (GET /health, with inf_mu dropped), autoscales
 * between min_replicas and max_replicas on the arrival rate and the p95 latency of the
 * stabilisation window, drains and scales to zero (paused), and charges every replica's
 * windows. A replica that dies before it was ever ready counts as a failed start; MAX_FAILS in
 * a row fail the deployment.
 */
#include "billing/billing.h"
#include "core/config.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "inference/inference_int.h"
#include "inference/inference.h"
#include "runs/profiles.h"
#include "store/inference.h"
#include "store/ledger.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_FAILS  3
#define KILL_GRACE (5 * MICRO)

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
        db_rep_end(r->id, now);
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
                deployment_set_status(d, "failed", msg);
        } else if (r->state == R_READY) {
            log_warn("deployment %s: replica %s died; replacing it", d->id, r->id);
        }
        *pp = r->next;
        replica_free(r, d->profile);
        pthread_cond_broadcast(&inf_ready_cv);
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
        deployment_set_status(d, "starting", NULL);
    }
    if (strcmp(d->status, "running") == 0 && !outstanding &&
        mono - d->last_req_mono > (int64_t)inf_set.idle_s * MICRO) {
        for (struct replica *r = d->reps; r; r = r->next)
            replica_kill(r, SIGTERM);
        deployment_set_status(d, "paused", NULL);
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
            deployment_set_status(d, "failed", why);
            return;
        }
        active++;
        d->last_up_mono = mono;
        if (strcmp(d->status, "pending") == 0)
            deployment_set_status(d, "starting", NULL);
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
    pthread_mutex_lock(&inf_mu);
    for (struct deployment *d = inf_deps; d; d = d->next)
        for (struct replica *r = d->reps; r && nt < 64; r = r->next)
            if (r->state == R_STARTING)
                t[nt++] = (struct target){r, r->port, r->netns, 0};
    pthread_mutex_unlock(&inf_mu);
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

    pthread_mutex_lock(&inf_mu);
    now = now_us();
    mono = now_mono_us();
    for (int i = 0; i < nt; i++)
        if (t[i].ok && t[i].r->state == R_STARTING)
            t[i].r->healthy = 1;
    for (pp = &inf_deps; *pp;) {
        struct deployment *d = *pp;

        reap(d, now, mono);
        for (struct replica *r = d->reps; r; r = r->next) {
            if (r->state == R_STARTING && r->healthy) {
                r->state = R_READY;
                d->fails = 0;
                log_info("deployment %s: replica %s ready after %.2f s", d->id, r->id,
                         (double)(mono - r->spawned_mono) / 1e6);
                if (strcmp(d->status, "starting") == 0 || strcmp(d->status, "pending") == 0)
                    deployment_set_status(d, "running", NULL);
                pthread_cond_broadcast(&inf_ready_cv);
            } else if (r->state == R_STARTING &&
                       mono - r->spawned_mono > (int64_t)inf_set.startup_s * MICRO) {
                log_warn("deployment %s: replica %s not ready after %d s", d->id, r->id,
                         inf_set.startup_s);
                replica_kill(r, SIGKILL);
                if (++d->fails >= MAX_FAILS)
                    deployment_set_status(d, "failed",
                                          "the model server did not become ready in time");
            }
            if (r->state != R_KILLED || r->pid > 0)
                replica_meter(d, r, now, 0);
        }
        if (mono - d->broke_check_mono > MICRO && strcmp(d->status, "stopping") != 0 &&
            strcmp(d->status, "failed") != 0 && strcmp(d->status, "paused") != 0) {
            int64_t bal = 1;

            d->broke_check_mono = mono;
            if (ledger_balance(d->org_id, &bal) == 0 && bal <= 0) {
                deployment_set_status(d, "stopping",
                                      "Insufficient credits: the deployment was stopped");
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
        if (!d->reps && (strcmp(d->status, "stopping") == 0 || strcmp(d->status, "failed") == 0 ||
                         inf_sup_stop)) {
            if (strcmp(d->status, "stopping") == 0)
                deployment_set_status(d, "stopped", NULL);
            if (strcmp(d->status, "stopped") == 0 || strcmp(d->status, "failed") == 0 ||
                inf_sup_stop) {
                *pp = d->next;
                if (strcmp(d->status, "stopped") == 0 || strcmp(d->status, "failed") == 0)
                    json_array_append_new(ended, json_string(d->id));
                deployment_free(d);
                continue;
            }
        }
        pp = &d->next;
    }
    pthread_mutex_unlock(&inf_mu);
    for (size_t i = 0; i < json_array_size(ended); i++)
        replica_home_remove(json_string_value(json_array_get(ended, i)));
    json_decref(ended);
}

void inference_supervisor(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts;

        tick();
        pthread_mutex_lock(&inf_mu);
        if (inf_sup_stop) {
            pthread_mutex_unlock(&inf_mu);
            break;
        }
        deadline_in(&ts, CLOCK_MONOTONIC, (int64_t)inf_set.tick_ms * 1000);
        pthread_cond_timedwait(&inf_tick_cv, &inf_mu, &ts);
        pthread_mutex_unlock(&inf_mu);
    }
    /* Shutting down: end every replica and charge it to now. */
    pthread_mutex_lock(&inf_mu);
    for (struct deployment *d = inf_deps; d; d = d->next)
        for (struct replica *r = d->reps; r; r = r->next)
            replica_kill(r, SIGTERM);
    pthread_mutex_unlock(&inf_mu);
    for (int i = 0; i < 50; i++) {
        int left = 0;

        pthread_mutex_lock(&inf_mu);
        for (struct deployment *d = inf_deps; d; d = d->next) {
            reap(d, now_us(), now_mono_us());
            left += d->reps != NULL;
        }
        pthread_mutex_unlock(&inf_mu);
        if (!left)
            break;
        usleep(100 * 1000);
    }
    pthread_mutex_lock(&inf_mu);
    for (struct deployment *d = inf_deps; d; d = d->next) {
        for (struct replica *r = d->reps; r; r = r->next)
            replica_kill(r, SIGKILL);
        reap(d, now_us(), now_mono_us());
    }
    while (inf_deps) {
        struct deployment *d = inf_deps;

        inf_deps = d->next;
        while (d->reps) {
            struct replica *r = d->reps;

            d->reps = r->next;
            replica_free(r, d->profile);
        }
        deployment_free(d);
    }
    pthread_mutex_unlock(&inf_mu);
}
