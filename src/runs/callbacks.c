/*
 * See callbacks.h. The sender wakes when a callback is queued or one is due, sends the due
 * ones one after another with a short timeout each (a receiver must answer fast), and
 * records each try. A 2xx answer ends a callback; anything else is tried again after 1, 2,
 * 4 and 8 seconds, then given up with its last error kept.
 */
#include "runs/callbacks.h"
#include "billing/billing.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "store/db.h"
#include "store/runs.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_t thread;
static int running, stopping, pending = 1;

json_t *callbacks_body(json_t *row)
{
    json_t *started = json_object_get(row, "running_at");
    json_t *finished = json_object_get(row, "finished_at");

    return json_pack(
        "{s:O,s:O,s:O,s:O,s:o,s:o,s:o}", "execution_id", json_object_get(row, "id"), "status",
        json_object_get(row, "status"), "return_code", json_object_get(row, "return_code"),
        "errors", json_object_get(row, "errors"), "started_at",
        json_is_integer(started) ? json_time(json_integer_value(started)) : json_null(),
        "finished_at",
        json_is_integer(finished) ? json_time(json_integer_value(finished)) : json_null(), "billed",
        json_money(0));
}

void callbacks_sign(const char *secret, const char *body, size_t n, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    int k;

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, n, mac, &len);
    k = snprintf(out, 72, "sha256=");
    for (unsigned i = 0; i < len && k < 70; i++)
        k += snprintf(out + k, 72 - (size_t)k, "%02x", mac[i]);
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

/* POSTs one callback; 0 on a 2xx answer, else -1 with the reason in why. */
static int send_one(CURL *curl, const char *url, const char *body, const char *sig, const char *id,
                    char *why, size_t n)
{
    struct curl_slist *h = NULL;
    char hsig[100], hid[80];
    long status = 0;
    CURLcode rc;

    snprintf(hsig, sizeof(hsig), "X-Lyceum-Signature: %s", sig);
    snprintf(hid, sizeof(hid), "X-Lyceum-Execution-ID: %s", id);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, hsig);
    h = curl_slist_append(h, hid);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "lyceumd-callbacks/1");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    rc = curl_easy_perform(curl);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(why, n, "%s", curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        snprintf(why, n, "HTTP %ld", status);
        return -1;
    }
    return 0;
}

static void deliver_due(CURL *curl)
{
    json_t *rows = json_array(), *row;
    size_t i;

    if (callback_due(now_us(), 32, rows)) {
        json_decref(rows);
        return;
    }
    json_array_foreach(rows, i, row)
    {
        const char *body = json_string_value(json_object_get(row, "body"));
        int64_t tries = json_integer_value(json_object_get(row, "tries")) + 1;
        char secret[64] = "", sig[72], why[256] = "";
        int ok;

        org_webhook_secret(json_string_value(json_object_get(row, "org_id")), secret,
                           sizeof(secret));
        callbacks_sign(secret, body, strlen(body), sig);
        ok = send_one(curl, json_string_value(json_object_get(row, "url")), body, sig,
                      json_string_value(json_object_get(row, "run_id")), why, sizeof(why)) == 0;
        if (!ok)
            log_info("callback for run %s, try %lld: %s",
                     json_string_value(json_object_get(row, "run_id")), (long long)tries, why);
        callback_result(json_integer_value(json_object_get(row, "id")), ok, why,
                        now_us() + (1LL << (tries - 1)) * 1000000, tries >= CALLBACK_TRIES);
    }
    json_decref(rows);
}

static void *sender_main(void *arg)
{
    CURL *curl = curl_easy_init();

    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct timespec ts;

        if (pending) {
            pending = 0;
            pthread_mutex_unlock(&mu);
            deliver_due(curl);
            pthread_mutex_lock(&mu);
            continue;
        }
        /* Retries come due on their own: look every half second. */
        deadline_in(&ts, CLOCK_REALTIME, 500000);
        if (pthread_cond_timedwait(&cv, &mu, &ts) != 0)
            pending = 1;
    }
    pthread_mutex_unlock(&mu);
    curl_easy_cleanup(curl);
    store_close();
    return NULL;
}

int callbacks_start(void)
{
    if (pthread_create(&thread, NULL, sender_main, NULL) != 0)
        return -1;
    running = 1;
    return 0;
}

void callbacks_wake(void)
{
    pthread_mutex_lock(&mu);
    pending = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

void callbacks_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(thread, NULL);
    running = 0;
}
