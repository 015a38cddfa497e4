/* See service.h. */
#include "admin/service.h"

#include "core/worker.h"
#include "core/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

static char health_url[320];
static struct worker_pool *dog; /* the watchdog: a pool of one */
static int dog_running;
static uint64_t dog_usec;

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* 1 when GET /health answers 200 within timeout_ms. */
static int healthy(long timeout_ms)
{
    CURL *c = curl_easy_init();
    long code = 0;

    if (!c)
        return 0;
    curl_easy_setopt(c, CURLOPT_URL, health_url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code == 200;
}

/* The server's own address as a URL: a wildcard listen address is reached on loopback. */
static void make_url(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    char host[256];
    size_t n = colon ? (size_t)(colon - listen) : 0;

    if (!colon || n >= sizeof(host)) {
        snprintf(health_url, sizeof(health_url), "http://127.0.0.1:8000/health");
        return;
    }
    memcpy(host, listen, n);
    host[n] = '\0';
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    else if (strcmp(host, "[::]") == 0 || strcmp(host, "::") == 0)
        snprintf(host, sizeof(host), "[::1]");
    snprintf(health_url, sizeof(health_url), "http://%s:%s/health", host, colon + 1);
}

static void watchdog(void *arg)
{
    (void)arg;
    do {
        if (healthy((long)(dog_usec / 4000)))
            sd_notify(0, "WATCHDOG=1");
        else
            log_warn("watchdog: %s did not answer 200: not pinging systemd", health_url);
    } while (!worker_sleep(dog, (int64_t)(dog_usec / 2)));
}

void service_ready(const char *listen)
{
    if (!getenv("NOTIFY_SOCKET"))
        return;
    make_url(listen);
    for (int i = 0; i < 100 && !healthy(1000); i++)
        usleep(100 * 1000);
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s\nMAINPID=%ld", listen, (long)getpid());
    if (sd_watchdog_enabled(0, &dog_usec) > 0 && dog_usec >= 1000) {
        dog = worker_pool_new("watchdog", 1, 0);
        if (worker_submit(dog, watchdog, NULL) == 0) {
            dog_running = 1;
        } else {
            worker_pool_free(dog);
            dog = NULL;
        }
        log_info("watchdog: pinging systemd every %llu ms while %s answers",
                 (unsigned long long)(dog_usec / 2000), health_url);
    }
}

void service_reloading(void)
{
    if (!getenv("NOTIFY_SOCKET"))
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    /* MONOTONIC_USEC is what systemd 253 and later want beside RELOADING=1. */
    sd_notifyf(0, "RELOADING=1\nSTATUS=reloading the config\nMONOTONIC_USEC=%llu",
               (unsigned long long)now.tv_sec * 1000000ull +
                   (unsigned long long)now.tv_nsec / 1000);
}

void service_reloaded(const char *status)
{
    if (!getenv("NOTIFY_SOCKET"))
        return;
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void service_stopping(void)
{
    if (getenv("NOTIFY_SOCKET"))
        sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
    if (dog_running) {
        worker_pool_free(dog);
        dog = NULL;
        dog_running = 0;
    }
}
