/*
 * The Docker executor: image runs through the Docker Engine API over its unix socket (libcurl),
 * Compose runs through the `docker-compose` (v1) command.
 *
 * Each Docker run has a thread of its own, because the Engine API calls block. For an image
 * run it makes sure the image is there (pulling it with the run's registry credentials when
 * not), creates the container (environment, limits, GPUs as device requests, the bucket at
 * /mnt/s3 when asked), starts it, follows its log stream (demultiplexing Docker's 8-byte frame
 * headers into stdout and stderr), waits for its exit code and removes it. A Compose run is
 * `docker-compose up --abort-on-container-exit` with its output piped into the run's, then
 * `down`.
 *
 * signal() may come from any thread at any time, the scheduler's lock held: it only records
 * the request and hands the blocking part to a short detached thread. A request that comes
 * before there is a container (or a Compose project) is applied by the run's thread as soon
 * as there is one; a SIGKILL that comes first means the container is never started.
 * struct drun is shared by the run's thread and the signal threads: its mutex guards the
 * fields marked so; release() joins the run's thread and waits for the signal threads.
 */
#include "exec/docker.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"
#include "storage/bucket.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The Engine API version every call names: 1.41 is Docker 20.10, and later engines accept it. */
#define API "http://localhost/v1.41"
/* The most of an Engine answer kept in memory (image pulls stream progress lines). */
#define ANSWER_CAP (16u << 20)

enum { RUN_IMAGE_KIND = 2, RUN_COMPOSE_KIND = 3 }; /* RUN_IMAGE, RUN_COMPOSE of runs/runs.h */

struct drun {
    struct live *l;
    struct arena pool; /* the run thread's strings */
    pthread_t thread;
    int thread_started;
    char project[48]; /* the Compose project: lyceumd-<first 12 of the id> */
    char file[1100];  /* the Compose file */

    pthread_mutex_t mu;
    pthread_cond_t idle;
    /* Guarded by mu: */
    char container[80]; /* its id, "" until created */
    int started;        /* the container was started (signals go to it from then on) */
    pid_t up_pid;       /* `docker-compose up` (a process group of its own), 0 when none */
    pid_t stop_pid;     /* `docker-compose stop` (likewise) */
    int sig_wanted;     /* 0, SIGTERM or SIGKILL: the strongest asked for */
    int sig_sent;       /* the strongest sent to the container */
    int inflight;       /* signal threads still running: release() waits for them */

    /* The log stream's frame being read (the run's thread only). */
    unsigned char hdr[8];
    size_t hdr_n, frame_left;
    int frame_stream;
};

/* Set at start-up (before any run) by docker_configure and docker_set_network. */
static char sock[256] = "/var/run/docker.sock";
static char network[32] = "none";

static pthread_mutex_t ping_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t ping_at; /* guarded by ping_mu, like the two below */
static int ping_ok;
static char ping_why[320];

void docker_configure(const char *socket_path)
{
    if (socket_path && *socket_path)
        snprintf(sock, sizeof(sock), "%s", socket_path);
    pthread_mutex_lock(&ping_mu);
    ping_at = 0;
    pthread_mutex_unlock(&ping_mu);
}

void docker_set_network(const char *mode)
{
    snprintf(network, sizeof(network), "%s", mode && *mode ? mode : "none");
}

static int wanted(struct drun *d)
{
    int sig;

    pthread_mutex_lock(&d->mu);
    sig = d->sig_wanted;
    pthread_mutex_unlock(&d->mu);
    return sig;
}

/* ---- the Engine API ---- */

struct answer {
    char *p;
    size_t n;
};

static size_t collect(char *p, size_t s, size_t n, void *u)
{
    struct answer *b = u;
    size_t k = s * n;

    if (b->n + k > ANSWER_CAP)
        return 0;
    b->p = realloc(b->p, b->n + k + 1);
    if (!b->p)
        abort();
    memcpy(b->p + b->n, p, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

/* Ends a transfer (an image pull) once the run is to be killed. */
static int on_progress(void *u, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return wanted(u) == SIGKILL;
}

/* One Engine API call. Returns the HTTP status (0 when the engine did not answer); the body
 * is left in *out (when out), NUL-terminated, for the caller to free. timeout_ms 0: none. A
 * call given a run (d) gives up as soon as that run is to be killed. */
static long call(const char *method, const char *path, const char *body, const char *auth,
                 long timeout_ms, struct drun *d, char **out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct answer b = {0};
    char url[2048], *ah = NULL;
    long status = 0;

    if (!c)
        abort();
    snprintf(url, sizeof(url), API "%s", path);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (auth) {
        ah = xmalloc(strlen(auth) + 20);
        sprintf(ah, "X-Registry-Auth: %s", auth);
        h = curl_slist_append(h, ah);
    }
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms && timeout_ms < 3000 ? timeout_ms : 3000L);
    if (timeout_ms)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (d) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, d);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(ah);
    if (out)
        *out = b.p ? b.p : xstrdup("");
    else
        free(b.p);
    return status;
}

/* "what: the engine's message" for an error answer. */
static void message_of(const char *body, char *why, size_t n, const char *what)
{
    json_t *j = json_loads(body ? body : "", 0, NULL);
    const char *m = json_string_value(json_object_get(j, "message"));

    snprintf(why, n, "%s: %.300s", what,
             m ? m : (body && *body ? body : "the engine did not answer"));
    json_decref(j);
}

int docker_available(const char **why)
{
    int ok;

    pthread_mutex_lock(&ping_mu);
    if (!ping_at || now_mono_us() - ping_at > 3000000) {
        char *body = NULL;
        long st = call("GET", "/_ping", NULL, NULL, 1000, NULL, &body);

        ping_ok = st == 200;
        if (!ping_ok && st)
            snprintf(ping_why, sizeof(ping_why), "the Docker engine at %.200s answers %ld", sock,
                     st);
        else if (!ping_ok)
            snprintf(ping_why, sizeof(ping_why), "no Docker engine answers at %.200s", sock);
        free(body);
        ping_at = now_mono_us();
    }
    ok = ping_ok;
    if (why)
        *why = ok ? NULL : ping_why;
    pthread_mutex_unlock(&ping_mu);
    return ok;
}

/* ---- image runs ---- */

static char *base64url(const char *text)
{
    size_t len = strlen(text);
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)len);
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

/* The X-Registry-Auth header's value for the run's credentials (NULL: none), or NULL with why
 * set when they cannot be used. The caller frees it. */
static char *registry_auth(json_t *spec, char *why, size_t n)
{
    const char *type = json_string_value(json_object_get(spec, "docker_registry_credential_type"));
    const char *creds = json_string_value(json_object_get(spec, "docker_registry_credentials"));
    json_t *c, *a;
    char *text, *out;

    if (!type)
        return NULL;
    if (strcmp(type, "aws") == 0) {
        snprintf(why, n,
                 "ECR (aws) registry credentials are not supported by this server (no ECR "
                 "login); use a registry with basic credentials, or an image present locally");
        return NULL;
    }
    c = json_loads(creds ? creds : "", 0, NULL);
    if (!json_is_string(json_object_get(c, "username")) ||
        !json_is_string(json_object_get(c, "password"))) {
        json_decref(c);
        snprintf(why, n,
                 "docker_registry_credentials must be a JSON string of {\"username\", "
                 "\"password\"} for basic credentials");
        return NULL;
    }
    a = json_pack("{s:O,s:O}", "username", json_object_get(c, "username"), "password",
                  json_object_get(c, "password"));
    text = json_dumps(a, JSON_COMPACT);
    out = base64url(text);
    free(text);
    json_decref(a);
    json_decref(c);
    return out;
}

/* Whether ref names a tag or a digest (else a pull would fetch every tag of it). */
static int has_tag(const char *ref)
{
    const char *last = strrchr(ref, '/');

    return strchr(ref, '@') || strchr(last ? last : ref, ':');
}

/* The first error in a pull's progress lines ({"status"...} or {"error"...}) into why:
 * 1 when there is one. */
static int pull_error(const char *body, char *why, size_t n)
{
    for (const char *p = body; *p;) {
        size_t len = strcspn(p, "\n");
        json_t *j = json_loadb(p, len, 0, NULL);
        const char *e = json_string_value(json_object_get(j, "error"));

        if (e)
            snprintf(why, n, "%s", e);
        json_decref(j);
        if (e)
            return 1;
        p += len + (p[len] == '\n');
    }
    return 0;
}

/* Makes sure the image is here: 0; -1 with why set when it cannot be had; 1 when the run was
 * killed while it was being pulled. */
static int ensure_image(struct drun *d, const char *ref, char *why, size_t n)
{
    char path[1400], perr[300] = "", *enc, *auth = NULL, *body = NULL;
    long st;
    int rc = -1;

    enc = curl_easy_escape(NULL, ref, 0);
    if (!enc)
        abort();
    snprintf(path, sizeof(path), "/images/%s/json", enc);
    st = call("GET", path, NULL, NULL, 10000, NULL, NULL);
    if (st == 200) {
        rc = 0;
        goto out;
    }
    if (st != 404) {
        snprintf(why, n, "the Docker engine did not answer about the image '%.200s' (%ld)", ref,
                 st);
        goto out;
    }
    why[0] = '\0';
    auth = registry_auth(d->l->spec, why, n);
    if (why[0])
        goto out;
    snprintf(path, sizeof(path), "/images/create?fromImage=%s%s", enc,
             has_tag(ref) ? "" : "&tag=latest");
    st = call("POST", path, NULL, auth, 600000, d, &body);
    if (wanted(d) == SIGKILL) {
        rc = 1;
        goto out;
    }
    /* A pull answers 200 and then streams progress lines; a failure is an "error" in one. */
    if (st != 200 || pull_error(body, perr, sizeof(perr))) {
        if (st != 200)
            message_of(body, perr, sizeof(perr), "the engine answered");
        snprintf(why, n, "the image '%.200s' is not on this server and cannot be pulled: %.200s",
                 ref, perr);
        goto out;
    }
    rc = 0;
out:
    curl_free(enc);
    free(auth);
    free(body);
    return rc;
}

static void add_env(struct drun *d, json_t *env, const char *k, const char *v)
{
    json_array_append_new(env, json_string(arena_sprintf(&d->pool, "%s=%s", k, v)));
}

/* The body of POST /containers/create. */
static json_t *container_spec(struct drun *d)
{
    struct live *l = d->l;
    json_t *spec = l->spec, *env = json_array(), *host, *cmd, *o, *v;
    const char *denv = json_string_value(json_object_get(spec, "docker_run_env")), *k;
    json_t *s3_flag = json_object_get(spec, "enable_s3_mount");
    char *copy, *line, *save = NULL, *s3;
    struct stat st;

    /* KEY=VALUE lines; blank lines and # comments are skipped. */
    if (denv) {
        copy = arena_strdup(&d->pool, denv);
        for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            line[strcspn(line, "\r")] = '\0';
            line += strspn(line, " \t");
            if (line[0] && line[0] != '#' && line[0] != '=' && strchr(line, '='))
                json_array_append_new(env, json_string(line));
        }
    }
    json_object_foreach(l->env, k, v)
    {
        if (json_is_string(v))
            add_env(d, env, k, json_string_value(v));
    }
    add_env(d, env, "LYCEUM_EXECUTION_ID", l->id);
    if (l->gpus[0])
        add_env(d, env, "CUDA_VISIBLE_DEVICES", l->gpus);

    /* Init: PID 1 is docker-init, which passes SIGTERM on to the command. */
    host = json_pack("{s:s,s:b}", "NetworkMode", network, "Init", 1);
    if (l->mem_bytes > 0) {
        json_object_set_new(host, "Memory", json_integer(l->mem_bytes));
        json_object_set_new(host, "MemorySwap", json_integer(l->mem_bytes)); /* no swap */
    }
    if (l->cpus > 0)
        json_object_set_new(host, "NanoCpus", json_integer((json_int_t)l->cpus * 1000000000));
    if (l->pids_max > 0)
        json_object_set_new(host, "PidsLimit", json_integer(l->pids_max));
    if (l->gpus[0]) {
        json_t *ids = json_array();
        char *g = arena_strdup(&d->pool, l->gpus), *tok, *sv = NULL;

        for (tok = strtok_r(g, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv))
            json_array_append_new(ids, json_string(tok));
        json_object_set_new(host, "DeviceRequests",
                            json_pack("[{s:s,s:o,s:[[s]]}]", "Driver", "nvidia", "DeviceIDs", ids,
                                      "Capabilities", "gpu"));
    }
    /* The owner's bucket (image runs default to enable_s3_mount true, API.md 4.3). */
    s3 = arena_alloc(&d->pool, PATH_MAX);
    if ((!s3_flag || json_is_true(s3_flag)) && bucket_objects_dir(l->bucket, s3, PATH_MAX) == 0 &&
        stat(s3, &st) == 0 && S_ISDIR(st.st_mode))
        json_object_set_new(host, "Binds",
                            json_pack("[s]", arena_sprintf(&d->pool, "%s:/mnt/s3", s3)));

    cmd = json_object_get(spec, "docker_run_cmd");
    o = json_pack("{s:O,s:o,s:o,s:{s:s,s:s},s:b,s:b,s:b}", "Image",
                  json_object_get(spec, "docker_image_ref"), "Env", env, "HostConfig", host,
                  "Labels", "lyceumd.run", l->id, "lyceumd.org", l->org_id, "AttachStdout", 1,
                  "AttachStderr", 1, "Tty", 0);
    if (o && json_is_array(cmd) && json_array_size(cmd))
        json_object_set(o, "Cmd", cmd);
    return o;
}

/* Sends the wanted signal to the container once it is started (and not already sent). */
static void send_signal(struct drun *d)
{
    char path[200];
    int sig;

    pthread_mutex_lock(&d->mu);
    sig = d->sig_wanted;
    if (!sig || !d->started || d->sig_sent == SIGKILL || sig == d->sig_sent) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    d->sig_sent = sig;
    snprintf(path, sizeof(path), "/containers/%s/kill?signal=%s", d->container,
             sig == SIGTERM ? "SIGTERM" : "SIGKILL");
    pthread_mutex_unlock(&d->mu);
    call("POST", path, NULL, NULL, 10000, NULL, NULL);
}

/* The log stream: frames of an 8-byte header (stream, 0, 0, 0, size big-endian) and data. */
static size_t on_log(char *p, size_t s, size_t n, void *u)
{
    struct drun *d = u;
    size_t left = s * n, total = left, take;

    while (left) {
        if (d->frame_left == 0) {
            take = 8 - d->hdr_n < left ? 8 - d->hdr_n : left;
            memcpy(d->hdr + d->hdr_n, p, take);
            d->hdr_n += take;
            p += take;
            left -= take;
            if (d->hdr_n == 8) {
                d->frame_stream = d->hdr[0] == 2 ? OUT_STDERR : OUT_STDOUT;
                d->frame_left = ((size_t)d->hdr[4] << 24) | ((size_t)d->hdr[5] << 16) |
                                ((size_t)d->hdr[6] << 8) | d->hdr[7];
                d->hdr_n = 0;
            }
            continue;
        }
        take = d->frame_left < left ? d->frame_left : left;
        live_output(d->l, d->frame_stream, p, take);
        d->frame_left -= take;
        p += take;
        left -= take;
    }
    return total;
}

/* Follows the container's output until it exits. */
static void follow_logs(struct drun *d)
{
    CURL *c = curl_easy_init();
    char url[300];

    if (!c)
        abort();
    snprintf(url, sizeof(url), API "/containers/%s/logs?follow=1&stdout=1&stderr=1&timestamps=0",
             d->container);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_log);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
}

/* Waits for the container's end: its exit code, or -1 with why set. Says in the run's note
 * when the kernel killed it for its memory limit. */
static int wait_exit(struct drun *d, char *why, size_t n)
{
    char path[200], *body = NULL;
    json_t *ans;
    long st;
    int code = -1;

    snprintf(path, sizeof(path), "/containers/%s/wait", d->container);
    st = call("POST", path, NULL, NULL, 0, NULL, &body);
    ans = json_loads(body, 0, NULL);
    if (st == 200 && json_is_integer(json_object_get(ans, "StatusCode")))
        code = (int)json_integer_value(json_object_get(ans, "StatusCode"));
    else
        message_of(body, why, n, "cannot wait for the container");
    json_decref(ans);
    free(body);

    snprintf(path, sizeof(path), "/containers/%s/json", d->container);
    st = call("GET", path, NULL, NULL, 10000, NULL, &body);
    ans = json_loads(body, 0, NULL);
    if (st == 200 && json_is_true(json_object_get(json_object_get(ans, "State"), "OOMKilled")))
        snprintf(d->l->note, sizeof(d->l->note),
                 "Killed: out of memory (the limit is %lld MiB); exited with code %d",
                 (long long)(d->l->mem_bytes >> 20), code);
    json_decref(ans);
    free(body);
    return code;
}

static void *image_main(void *arg)
{
    struct drun *d = arg;
    struct live *l = d->l;
    const char *ref = json_string_value(json_object_get(l->spec, "docker_image_ref"));
    char why[480] = "", path[200], *body = NULL, *text;
    json_t *spec = NULL, *ans = NULL;
    long st;
    int code = -1, sig, err;

    if (!ref) {
        snprintf(why, sizeof(why), "the run has no docker_image_ref");
        goto out;
    }
    err = ensure_image(d, ref, why, sizeof(why));
    if (err > 0)
        code = 128 + SIGKILL;
    if (err)
        goto out;
    spec = container_spec(d);
    if (!spec) {
        snprintf(why, sizeof(why), "cannot describe the container");
        goto out;
    }
    text = json_dumps(spec, JSON_COMPACT);
    snprintf(path, sizeof(path), "/containers/create?name=lyceumd-%s", l->id);
    st = call("POST", path, text, NULL, 30000, NULL, &body);
    free(text);
    ans = json_loads(body, 0, NULL);
    if (st != 201 || !json_string_value(json_object_get(ans, "Id"))) {
        message_of(body, why, sizeof(why), "cannot create the container");
        goto out;
    }
    pthread_mutex_lock(&d->mu);
    snprintf(d->container, sizeof(d->container), "%s",
             json_string_value(json_object_get(ans, "Id")));
    sig = d->sig_wanted;
    pthread_mutex_unlock(&d->mu);
    free(body);
    body = NULL;

    if (sig == SIGKILL) {
        code = 128 + SIGKILL; /* killed before it ran */
        goto out;
    }
    snprintf(path, sizeof(path), "/containers/%s/start", d->container);
    st = call("POST", path, NULL, NULL, 30000, NULL, &body);
    if (st != 204 && st != 304) {
        message_of(body, why, sizeof(why), "cannot start the container");
        goto out;
    }
    pthread_mutex_lock(&d->mu);
    d->started = 1;
    pthread_mutex_unlock(&d->mu);
    live_running(l);
    send_signal(d); /* one asked for while it was being created or started */
    follow_logs(d);
    code = wait_exit(d, why, sizeof(why));
out:
    json_decref(ans);
    json_decref(spec);
    free(body);
    if (d->container[0]) {
        snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", d->container);
        call("DELETE", path, NULL, NULL, 30000, NULL, NULL);
    }
    live_exited(l, why[0] ? -1 : code, why[0] ? why : NULL);
    return NULL;
}

/* ---- compose runs ---- */

struct child {
    pid_t pid;
    int out, err; /* the read ends of its stdout and stderr, -1 when closed */
};

/* Starts `docker-compose args...` in dir with envp, its stdin /dev/null; 0 or -1. */
static int spawn(const char *dir, char *const args[], char *const envp[], struct child *c)
{
    char *argv[32];
    int o[2], e[2], a = 0;

    argv[a++] = "docker-compose";
    for (int i = 0; args[i] && a < 31; i++)
        argv[a++] = args[i];
    argv[a] = NULL;
    if (pipe2(o, O_CLOEXEC))
        return -1;
    if (pipe2(e, O_CLOEXEC)) {
        close(o[0]);
        close(o[1]);
        return -1;
    }
    c->pid = fork();
    if (c->pid == 0) {
        /* Only async-signal-safe calls from here: the server has other threads. */
        int devnull = open("/dev/null", O_RDONLY);

        setpgid(0, 0);
        dup2(devnull, 0);
        dup2(o[1], 1);
        dup2(e[1], 2);
        close_range(3, ~0U, 0);
        if (chdir(dir) != 0)
            _exit(126);
        execve("/usr/bin/docker-compose", argv, envp);
        execve("/usr/local/bin/docker-compose", argv, envp);
        _exit(127);
    }
    close(o[1]);
    close(e[1]);
    if (c->pid < 0) {
        close(o[0]);
        close(e[0]);
        return -1;
    }
    c->out = o[0];
    c->err = e[0];
    return 0;
}

/* Reads the child's output to its end, into the run (when to_run) or into buf (size n, keeping
 * the first n - 1 bytes); then reaps it, forgetting it as d's up or stop process (when d).
 * Returns its exit status (128 + signal if killed). */
static int drain(struct drun *d, int to_run, struct child *c, char *buf, size_t n)
{
    size_t k = 0;
    int st = 0;

    while (c->out >= 0 || c->err >= 0) {
        struct pollfd p[2] = {{c->out, POLLIN, 0}, {c->err, POLLIN, 0}};
        char chunk[16384];

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            int *fd = i == 0 ? &c->out : &c->err;
            ssize_t r;

            if (*fd < 0 || !p[i].revents)
                continue;
            r = read(*fd, chunk, sizeof(chunk));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                close(*fd);
                *fd = -1;
                continue;
            }
            if (to_run) {
                live_output(d->l, i == 0 ? OUT_STDOUT : OUT_STDERR, chunk, (size_t)r);
            } else if (buf && k + 1 < n) {
                size_t take = (size_t)r < n - 1 - k ? (size_t)r : n - 1 - k;

                memcpy(buf + k, chunk, take);
                k += take;
            }
        }
    }
    if (c->out >= 0)
        close(c->out);
    if (c->err >= 0)
        close(c->err);
    if (buf && n)
        buf[k] = '\0';
    /* The pid stays ours (a zombie) until reaped: forget it first, so that no signal thread
     * sends to a pid the kernel has given to another process. */
    if (d) {
        pthread_mutex_lock(&d->mu);
        if (d->up_pid == c->pid)
            d->up_pid = 0;
        if (d->stop_pid == c->pid)
            d->stop_pid = 0;
        pthread_mutex_unlock(&d->mu);
    }
    while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs docker-compose to its end, its output into buf (when buf). */
static int compose(const char *dir, char *const args[], char *const envp[], char *buf, size_t n)
{
    struct child c;

    if (spawn(dir, args, envp, &c))
        return -1;
    return drain(NULL, 0, &c, buf, n);
}

/* The environment of docker-compose for a run: the engine, a home of the run's own (so no
 * one's ~/.docker is read), and the run's variables for ${...} in the file. */
static char **compose_env(struct drun *d)
{
    struct live *l = d->l;
    size_t n = 8 + (l->env ? json_object_size(l->env) : 0), i = 0;
    char **envp = arena_alloc(&d->pool, n * sizeof(*envp));
    const char *k;
    json_t *v;

    envp[i++] = arena_sprintf(&d->pool, "DOCKER_HOST=unix://%s", sock);
    envp[i++] = "PATH=/usr/local/bin:/usr/bin:/bin";
    envp[i++] = "LANG=C.UTF-8";
    envp[i++] = arena_sprintf(&d->pool, "HOME=%s", l->dir);
    envp[i++] = arena_sprintf(&d->pool, "DOCKER_CONFIG=%s/.docker", l->dir);
    envp[i++] = arena_sprintf(&d->pool, "LYCEUM_EXECUTION_ID=%s", l->id);
    json_object_foreach(l->env, k, v)
    {
        if (json_is_string(v) && i + 1 < n)
            envp[i++] = arena_sprintf(&d->pool, "%s=%s", k, json_string_value(v));
    }
    envp[i] = NULL;
    return envp;
}

/* Writes n bytes to path (mode 0600): 0 or -1. */
static int write_file(const char *path, const char *text, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t w = -1;

    if (fd < 0)
        return -1;
    w = write(fd, text, n);
    if (close(fd) != 0 || w != (ssize_t)n)
        return -1;
    return 0;
}

/* docker_username/docker_password as a Docker client config (DOCKER_CONFIG) with those
 * credentials for Docker Hub and for each registry host named in an image: line. */
static int write_credentials(struct drun *d, const char *yaml)
{
    json_t *spec = d->l->spec, *auths = json_object(), *cfg;
    const char *user = json_string_value(json_object_get(spec, "docker_username"));
    const char *pass = json_string_value(json_object_get(spec, "docker_password"));
    char *plain, *b64, *text, *copy, *line, *save = NULL;
    int rc;

    if (!user || !pass || !*user) {
        json_decref(auths);
        return 0;
    }
    plain = arena_sprintf(&d->pool, "%s:%s", user, pass);
    b64 = base64url(plain);
    for (char *p = b64; *p; p++) /* the config wants standard base64 */
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    json_object_set_new(auths, "https://index.docker.io/v1/", json_pack("{s:s}", "auth", b64));
    copy = arena_strdup(&d->pool, yaml);
    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *v = line + strspn(line, " \t-"), *slash;

        if (strncmp(v, "image:", 6) != 0)
            continue;
        v += 6 + strspn(v + 6, " \t\"'");
        slash = strchr(v, '/');
        if (!slash)
            continue;
        *slash = '\0';
        if (strchr(v, '.') || strchr(v, ':') || strcmp(v, "localhost") == 0)
            json_object_set_new(auths, v, json_pack("{s:s}", "auth", b64));
    }
    free(b64);
    mkdir(arena_sprintf(&d->pool, "%s/.docker", d->l->dir), 0700);
    cfg = json_pack("{s:o}", "auths", auths);
    text = json_dumps(cfg, JSON_COMPACT);
    rc = write_file(arena_sprintf(&d->pool, "%s/.docker/config.json", d->l->dir), text,
                    strlen(text));
    free(text);
    json_decref(cfg);
    return rc;
}

static void *compose_main(void *arg)
{
    struct drun *d = arg;
    struct live *l = d->l;
    const char *yaml = json_string_value(json_object_get(l->spec, "compose_file_code"));
    const char *type =
        json_string_value(json_object_get(l->spec, "docker_registry_credential_type"));
    char why[300] = "", **envp = compose_env(d);
    char *up[] = {"-p", d->project, "-f", d->file, "up", "--no-color", "--abort-on-container-exit",
                  NULL};
    char *down[] = {"-p", d->project,         "-f", d->file, "down",
                    "-v", "--remove-orphans", "-t", "2",     NULL};
    struct child c;
    int code = -1, sig, err;

    if (!yaml || write_file(d->file, yaml, strlen(yaml)) != 0) {
        snprintf(why, sizeof(why), "cannot write the compose file");
        goto out;
    }
    if (type && strcmp(type, "aws") == 0) {
        snprintf(why, sizeof(why),
                 "ECR (aws) registry credentials are not supported by this server (no ECR "
                 "login); use docker_username/docker_password, or images present locally");
        goto out;
    }
    if (write_credentials(d, yaml) != 0) {
        snprintf(why, sizeof(why), "cannot write the registry credentials");
        goto out;
    }
    /* Started under the lock, so that a signal sees either no up (and this sees the signal)
     * or up's pid. */
    pthread_mutex_lock(&d->mu);
    sig = d->sig_wanted;
    err = sig ? 0 : spawn(l->dir, up, envp, &c);
    if (!sig && !err)
        d->up_pid = c.pid;
    pthread_mutex_unlock(&d->mu);
    if (sig) {
        code = 128 + sig;
        goto out;
    }
    if (err) {
        snprintf(why, sizeof(why), "cannot start docker-compose: %s", strerror(errno));
        goto out;
    }
    live_running(l);
    code = drain(d, 1, &c, NULL, 0);
    if (code == 127)
        snprintf(why, sizeof(why), "docker-compose is not installed on this server");
    if (wanted(d) == SIGKILL)
        down[8] = "0";
    compose(l->dir, down, envp, NULL, 0);
    /* A `stop` still waiting out its grace period has nothing left to stop. */
    pthread_mutex_lock(&d->mu);
    if (d->stop_pid)
        kill(-d->stop_pid, SIGKILL);
    pthread_mutex_unlock(&d->mu);
out:
    if (l->dir[0]) {
        unlink(arena_sprintf(&d->pool, "%s/.docker/config.json", l->dir));
        rmdir(arena_sprintf(&d->pool, "%s/.docker", l->dir));
    }
    live_exited(l, why[0] ? -1 : code, why[0] ? why : NULL);
    return NULL;
}

/* SIGTERM: `docker-compose stop` with the grace period (up then ends, its containers
 * stopped); SIGKILL: up's process group is killed, and the run's thread runs `down -t 0`. */
static void compose_signal(struct drun *d, int sig)
{
    char t[16], *host = NULL, *envp[4];
    char *stop[] = {"-p", d->project, "-f", d->file, "stop", "-t", t, NULL};
    struct child c;
    int err = -1;

    snprintf(t, sizeof(t), "%d", d->l->graceful_s > 0 ? d->l->graceful_s : 10);
    if (asprintf(&host, "DOCKER_HOST=unix://%s", sock) < 0)
        abort();
    envp[0] = host;
    envp[1] = "PATH=/usr/local/bin:/usr/bin:/bin";
    envp[2] = "LANG=C.UTF-8";
    envp[3] = NULL;
    pthread_mutex_lock(&d->mu);
    if (d->up_pid && sig == SIGKILL) {
        kill(-d->up_pid, SIGKILL);
        d->sig_sent = SIGKILL;
    } else if (d->up_pid && sig == SIGTERM && !d->sig_sent) {
        d->sig_sent = SIGTERM;
        err = spawn(d->l->dir, stop, envp, &c);
        if (!err)
            d->stop_pid = c.pid;
    }
    pthread_mutex_unlock(&d->mu);
    if (!err)
        drain(d, 0, &c, NULL, 0);
    free(host);
}

int docker_compose_check(const char *yaml, const char *dir, char *why, size_t n)
{
    char tmpl[1100], file[1200], out[2048];
    char *args[] = {"-f", file, "config", "-q", NULL};
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL};
    char *p;
    int rc;

    snprintf(tmpl, sizeof(tmpl), "%.1000s/compose-check-XXXXXX", dir);
    if (!mkdtemp(tmpl)) {
        snprintf(why, n, "cannot check the compose file: %s", strerror(errno));
        return LY_EIO;
    }
    snprintf(file, sizeof(file), "%s/docker-compose.yml", tmpl);
    if (write_file(file, yaml, strlen(yaml)) != 0) {
        unlink(file);
        rmdir(tmpl);
        snprintf(why, n, "cannot check the compose file: %s", strerror(errno));
        return LY_EIO;
    }
    rc = compose(tmpl, args, envp, out, sizeof(out));
    if (rc == 0) {
        /* Valid; now what it asks for. A Compose file could otherwise take the host: no
         * privileged containers, host bind mounts, host PID/IPC/user namespaces, devices or
         * added capabilities. */
        static const char *const banned[] = {
            "privileged: true", "pid: host",    "ipc: host",     "userns_mode: host",
            "cap_add:",         "devices:",     "security_opt:", "cgroup_parent:",
            "type: bind",       "driver_opts:", "uts: host",     NULL,
        };
        char *full = xmalloc(256 * 1024), *line, *save = NULL;
        char *args2[] = {"-f", file, "config", NULL};
        const char *hit = NULL;

        int vol_indent = -1; /* inside a "volumes:" list indented this much */

        rc = compose(tmpl, args2, envp, full, 256 * 1024);
        for (line = strtok_r(full, "\n", &save); rc == 0 && line && !hit;
             line = strtok_r(NULL, "\n", &save)) {
            int indent = (int)strspn(line, " ");
            char *item = line + indent;

            if (vol_indent >= 0 && indent <= vol_indent && *item != '-')
                vol_indent = -1;
            if (strcmp(item, "volumes:") == 0 && indent > 0) {
                vol_indent = indent;
                continue;
            }
            if (vol_indent >= 0 && item[0] == '-') {
                /* A short-form volume "SOURCE:TARGET": a path source is the host's. */
                item += strspn(item, "- ");
                if (*item == '/' || *item == '.' || *item == '~')
                    hit = "host paths as volumes";
            }
            while (*item == '-' || *item == ' ')
                item++;
            for (int i = 0; banned[i] && !hit; i++)
                if (strncmp(item, banned[i], strlen(banned[i])) == 0)
                    hit = banned[i];
        }
        free(full);
        unlink(file);
        rmdir(tmpl);
        if (hit) {
            snprintf(why, n, "'%s' is not allowed on this server (it would reach the host)", hit);
            return LY_EINVAL;
        }
        return 0;
    }
    unlink(file);
    rmdir(tmpl);
    if (rc == 127 || rc < 0) {
        snprintf(why, n, "docker-compose is not installed on this server");
        return LY_EUNAVAIL;
    }
    /* What docker-compose said, less its "ERROR: " and the temporary file's path. */
    p = out;
    if (strncmp(p, "ERROR: ", 7) == 0)
        p += 7;
    for (char *f; (f = strstr(p, tmpl));)
        memmove(f, f + strlen(tmpl) + 1, strlen(f + strlen(tmpl) + 1) + 1);
    for (size_t k = strlen(p); k && (p[k - 1] == '\n' || p[k - 1] == ' '); k--)
        p[k - 1] = '\0';
    snprintf(why, n, "%.400s", *p ? p : "docker-compose config failed");
    return LY_EINVAL;
}

/* ---- the interface ---- */

static int docker_start(struct live *l)
{
    struct drun *d = xcalloc(1, sizeof(*d));
    int i;

    d->l = l;
    arena_init(&d->pool);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->idle, NULL);
    /* Compose project names are lower-case letters, digits, '-' and '_'. */
    snprintf(d->project, sizeof(d->project), "lyceumd-%.12s", l->id);
    for (i = 0; d->project[i]; i++)
        if (d->project[i] >= 'A' && d->project[i] <= 'Z')
            d->project[i] = (char)(d->project[i] - 'A' + 'a');
        else if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-_", d->project[i]))
            d->project[i] = '_';
    snprintf(d->file, sizeof(d->file), "%.1000s/docker-compose.yml", l->dir);
    l->exec_priv = d;
    if (l->kind != RUN_IMAGE_KIND && l->kind != RUN_COMPOSE_KIND) {
        snprintf(l->errbuf, sizeof(l->errbuf), "the Docker executor runs images and Compose only");
        return LY_EBADREQ;
    }
    if (pthread_create(&d->thread, NULL, l->kind == RUN_COMPOSE_KIND ? compose_main : image_main,
                       d) != 0) {
        snprintf(l->errbuf, sizeof(l->errbuf), "cannot start a thread for the run");
        return LY_EINTERNAL;
    }
    d->thread_started = 1;
    return 0;
}

struct sigjob {
    struct drun *d;
    int sig;
};

/* The blocking part of a signal, on a thread of its own: the Engine call or
 * `docker-compose stop` (which takes the grace period). */
static void *signal_main(void *arg)
{
    struct sigjob *j = arg;
    struct drun *d = j->d;

    if (d->l->kind == RUN_COMPOSE_KIND)
        compose_signal(d, j->sig);
    else
        send_signal(d);
    free(j);
    pthread_mutex_lock(&d->mu);
    d->inflight--;
    pthread_cond_broadcast(&d->idle);
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void docker_signal(struct live *l, int sig)
{
    struct drun *d = l->exec_priv;
    struct sigjob *j;
    pthread_attr_t attr;
    pthread_t t;

    if (!d || (sig != SIGTERM && sig != SIGKILL))
        return;
    pthread_mutex_lock(&d->mu);
    if (d->sig_wanted != SIGKILL)
        d->sig_wanted = sig;
    d->inflight++;
    pthread_mutex_unlock(&d->mu);
    j = xmalloc(sizeof(*j));
    j->d = d;
    j->sig = sig;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, signal_main, j) != 0) {
        free(j);
        pthread_mutex_lock(&d->mu);
        d->inflight--;
        pthread_mutex_unlock(&d->mu);
        log_error("run %s: cannot start a thread to signal it", l->id);
    }
    pthread_attr_destroy(&attr);
}

static void docker_release(struct live *l)
{
    struct drun *d = l->exec_priv;

    if (!d)
        return;
    if (d->thread_started)
        pthread_join(d->thread, NULL);
    pthread_mutex_lock(&d->mu);
    while (d->inflight > 0)
        pthread_cond_wait(&d->idle, &d->mu);
    pthread_mutex_unlock(&d->mu);
    pthread_cond_destroy(&d->idle);
    pthread_mutex_destroy(&d->mu);
    arena_release(&d->pool);
    free(d);
    l->exec_priv = NULL;
}

const struct exec_ops exec_docker = {
    .name = "docker",
    .start = docker_start,
    .signal = docker_signal,
    .release = docker_release,
};
