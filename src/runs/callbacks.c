/*
 * See callbacks.h. The sender wakes when a callback is queued or one is due, sends the due
 * ones one after another with a short timeout each (a receiver must answer fast), and
 * records each try. A 2xx answer ends a callback; anything else is tried again after 1, 2,
 * 4 and 8 seconds, then given up with its last error kept.
 *
 * Where callbacks may go: a tenant chooses the URL, and lyceumd makes the request from inside
 * the operator's network, so a callback must not reach the host's loopback, the cloud's
 * metadata address or private networks (blind SSRF). The check that binds is made on the
 * address curl is about to connect to (its open-socket callback sees each resolved address,
 * so a name that resolves, or later re-resolves, to 127.0.0.1 is caught as surely as the
 * literal), with no proxy from the environment and no redirect followed. A destination that
 * is not public (netaddr.h's kinds) is refused unless callback_allow lists its range, or the
 * URL's host name itself; a refusal is final (no retry), with its reason kept in the
 * callback's last_error and logged. Submission refuses literal addresses early, for a clear
 * 422 (callbacks_check_url).
 */
#include "runs/callbacks.h"
#include "billing/billing.h"
#include "core/worker.h"
#include "core/err.h"
#include "core/fbuf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/netaddr.h"
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
#include <strings.h>
#include <sys/socket.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct worker_pool *pool; /* its thread: a pool of one (core/worker.h) */
static int running, stopping, pending = 1;

/* callback_allow (borrowed from the config, which outlives the threads): CIDRs and names. */
static const json_t *allow;

/* One delivery's view of its connections (the open-socket callback's argument). */
struct guard {
    const char *host; /* the URL's host */
    int refused;
    char why[256];
};

int callbacks_allow(const json_t *list)
{
    size_t i;
    json_t *v;

    if (list && !json_is_array(list))
        return LY_EINVAL;
    json_array_foreach(list, i, v) if (!json_is_string(v)) return LY_EINVAL;
    allow = list;
    return 0;
}

/* Whether a connection for host to a may be made: public, or allowed (a few entries, parsed
 * at each look: nothing to keep or free). */
static int destination_ok(const char *host, const struct ipaddr *a)
{
    size_t i;
    json_t *v;

    if (ipaddr_kind(a) == ADDR_PUBLIC)
        return 1;
    json_array_foreach(allow, i, v)
    {
        const char *s = json_string_value(v);
        struct cidr c;

        if (cidr_parse(s, &c) == 0 ? cidr_contains(&c, a) : strcasecmp(host, s) == 0)
            return 1;
    }
    return 0;
}

/* "refused: <host> is|resolves to 127.0.0.1, a loopback address; ..." into why. */
static void refusal(char *why, size_t n, const char *host, const struct ipaddr *a)
{
    char text[64];
    struct ipaddr lit;
    int literal = ipaddr_parse(host, &lit) == 0;

    ipaddr_format(a, text, sizeof(text));
    snprintf(why, n,
             "refused: %.100s %s %s, a %s address; callbacks go to public addresses only "
             "(the server's callback_allow does not list it)",
             host, literal ? "is" : "resolves to", text, addr_kind_name(ipaddr_kind(a)));
}

/* curl's open-socket callback: every address it is about to connect to passes here. */
static curl_socket_t guard_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *sa)
{
    struct guard *g = arg;
    struct ipaddr a;

    if (purpose != CURLSOCKTYPE_IPCXN || ipaddr_from_sockaddr(&sa->addr, sa->addrlen, &a) != 0) {
        g->refused = 1;
        snprintf(g->why, sizeof(g->why), "refused: not an IP connection");
        return CURL_SOCKET_BAD;
    }
    if (!destination_ok(g->host, &a)) {
        g->refused = 1;
        refusal(g->why, sizeof(g->why), g->host, &a);
        return CURL_SOCKET_BAD;
    }
    return socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
}

/* The host of url (without IPv6 brackets) into out; 0, or -1 when url does not parse. */
static int url_host(const char *url, char *out, size_t n)
{
    CURLU *u = curl_url();
    char *host = NULL;
    int rc = -1;

    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) {
        size_t len = strlen(host);

        if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
            memmove(host, host + 1, len - 2);
            host[len - 2] = '\0';
        }
        rc = (size_t)snprintf(out, n, "%s", host) < n ? 0 : -1;
    }
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

int callbacks_check_url(const char *url, char *why, size_t n)
{
    char host[256];
    struct ipaddr a;

    if (url_host(url, host, sizeof(host))) {
        snprintf(why, n, "not a URL lyceumd can parse");
        return LY_EINVAL;
    }
    if (ipaddr_parse(host, &a) != 0 || destination_ok(host, &a))
        return 0; /* a name is judged by the address it resolves to, when sent */
    refusal(why, n, host, &a);
    return LY_EINVAL;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t us)
{
    return us ? json_time(us) : json_null();
}

json_t *callbacks_body(const struct run_row *row)
{
    return json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o}", "execution_id", row->id, "status",
                     str_or_null(row->status), "return_code",
                     row->has_return_code ? json_integer(row->return_code) : json_null(), "errors",
                     str_or_null(row->errors), "started_at", time_or_null(row->running_at),
                     "finished_at", time_or_null(row->finished_at), "billed", json_money(0));
}

void callbacks_sign(const char *secret, const char *body, size_t n, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    struct fbuf b;

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, n, mac, &len);
    fbuf_init(&b, out, 72);
    fbuf_printf(&b, "sha256=");
    for (unsigned i = 0; i < len; i++)
        fbuf_printf(&b, "%02x", mac[i]);
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

/* POSTs one callback; 0 on a 2xx answer, else -1 with the reason in why, or -2 when the
 * destination was refused (final). */
static int send_one(CURL *curl, const char *url, const char *body, const char *sig, const char *id,
                    char *why, size_t n)
{
    struct curl_slist *h = NULL;
    char hsig[100], hid[80], host[256];
    struct guard g = {.host = host};
    long status = 0;
    CURLcode rc;

    if (url_host(url, host, sizeof(host))) {
        snprintf(why, n, "refused: the URL does not parse");
        return -2;
    }

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
    /* The guard (see the top of this file): every address connected to is checked, no proxy
     * from the environment stands between, no redirect is followed. */
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, guard_socket);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &g);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    rc = curl_easy_perform(curl);
    curl_slist_free_all(h);
    if (rc != CURLE_OK && g.refused) {
        snprintf(why, n, "%s", g.why);
        return -2;
    }
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
    struct arena a;
    struct callback_row *rows;
    int n;

    arena_init(&a);
    n = db_callback_due(&a, now_us(), 32, &rows);
    for (int i = 0; i < n; i++) {
        const struct callback_row *row = &rows[i];
        const char *body = row->body;
        int64_t tries = row->tries + 1;
        const char *run_id = row->run_id;
        char secret[64] = "", sig[72], why[256] = "";
        int rc;

        db_callback_secret(row->org_id, secret, sizeof(secret));
        callbacks_sign(secret, body, strlen(body), sig);
        rc = send_one(curl, row->url, body, sig, run_id, why, sizeof(why));
        if (rc == -2)
            log_warn("callback for run %s not sent: %s", run_id, why);
        else if (rc)
            log_info("callback for run %s, try %lld: %s", run_id, (long long)tries, why);
        db_callback_result(row->id, rc == 0, why, now_us() + (1LL << (tries - 1)) * 1000000,
                           rc == -2 || tries >= CALLBACK_TRIES);
    }
    arena_release(&a);
}

static void *sender_main(void *arg);

static void sender_main_job(void *arg)
{
    sender_main(arg);
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
    pool = worker_pool_new("callbacks sender", 1, 0);
    if (worker_submit(pool, sender_main_job, NULL) != 0) {
        worker_pool_free(pool);
        pool = NULL;
        return -1;
    }
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
    worker_pool_free(pool);
    pool = NULL;
    running = 0;
}
