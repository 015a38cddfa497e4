/*
 * The Docker executor: image runs through the Docker Engine API over its unix socket (libcurl);
 * Compose runs are compose.c's, images per org and the runs' registry secrets images.c's.
 *
 * Each Docker run has a thread of its own, because the Engine API calls block. For an image
 * run it resolves the image (images.c: pulled with the run's registry credentials, or one its
 * org may use), creates the container from that image id (environment, limits, GPUs as
 * device requests, the bucket at /mnt/s3 when asked), starts it, follows its log stream
 * (demultiplexing Docker's 8-byte frame headers into stdout and stderr), waits for its exit
 * code and removes it.
 *
 * Containers are confined by construction: the engine remaps user namespaces (dockerd
 * --userns-remap, scripts/dockerd.sh), so uid 0 inside is an unprivileged uid on the host;
 * every capability is dropped, no_new_privs is set, the engine's default seccomp profile
 * applies (no container asks for another), nothing is privileged and no device is given but
 * the GPUs the run holds; the profile's memory (no swap), CPU and process limits are set.
 *
 * signal() may come from any thread at any time, the scheduler's lock held: it only records
 * the request and hands the blocking part to a short detached thread. A request that comes
 * before there is a container (or a Compose project) is applied by the run's thread as soon
 * as there is one; a SIGKILL that comes first means the container is never started.
 * struct drun (docker_int.h) is shared by the run's thread and the signal threads.
 *
 * exec_docker_netns() gives the port proxy (api/ports.c) a running container's network
 * namespace, found through the engine (the container named after the run, labelled with it and
 * its org), so that lyceumd reaches the container's loopback from inside instead of publishing
 * ports on the host.
 */
#include "exec/docker.h"
#include "exec/docker_int.h"
#include "core/worker.h"
#include "core/buf.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The Engine API version every call names: 1.41 is Docker 20.10, and later engines accept it. */
#define API "http://localhost/v1.41"
/* The most of an Engine answer kept in memory (image pulls stream progress lines). */
#define ANSWER_CAP (16u << 20)

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

int docker_wanted(struct drun *d)
{
    int sig;

    pthread_mutex_lock(&d->mu);
    sig = d->sig_wanted;
    pthread_mutex_unlock(&d->mu);
    return sig;
}

/* ---- the Engine API ---- */

/* Ends a transfer (an image pull) once the run is to be killed. */
static int on_progress(void *u, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return docker_wanted(u) == SIGKILL;
}

/* One Engine API call. Returns the HTTP status (0 when the engine did not answer); the body
 * is left in *out (when out), NUL-terminated, for the caller to free. timeout_ms 0: none. A
 * call given a run (d) gives up as soon as that run is to be killed. */
long docker_call(const char *method, const char *path, const char *body, const char *auth,
                 long timeout_ms, struct drun *d, char **out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct buf b = BUF_INIT(ANSWER_CAP);
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
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_collect);
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
        *out = buf_take(&b, NULL);
    else
        buf_free(&b);
    return status;
}

/* "what: the engine's message" for an error answer. */
void docker_message_of(const char *body, char *why, size_t n, const char *what)
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
        long st = docker_call("GET", "/_ping", NULL, NULL, 1000, NULL, &body);

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

char *docker_base64(const void *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

const char *docker_socket_path(void)
{
    return sock;
}

const char *docker_network_mode(void)
{
    return network;
}

/* The X-Registry-Auth header's value for the run's credentials (NULL: none), or NULL with why
 * set when they cannot be used. The caller frees it. */
static char *registry_auth(struct drun *d, char *why, size_t n)
{
    const char *type =
        json_string_value(json_object_get(d->l->spec, "docker_registry_credential_type"));
    const char *creds = docker_secret(d, "docker_registry_credentials");
    json_t *c;
    char *out;

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
    out = docker_auth_header(json_string_value(json_object_get(c, "username")),
                             json_string_value(json_object_get(c, "password")));
    json_decref(c);
    return out;
}

/* Resolves the run's image (images.c) into id, with the run's credentials, which are then
 * forgotten: 0; -1 with why set; 1 when the run was killed meanwhile. */
static int image_of(struct drun *d, const char *ref, char id[80], char *why, size_t n)
{
    char *auth;
    int rc;

    why[0] = '\0';
    if (docker_secrets_load(d, why, n) != 0)
        return -1;
    auth = registry_auth(d, why, n);
    rc = why[0] ? -1 : docker_image_resolve(d, ref, auth, id, why, n);
    /* Pulled (or not to be): the secrets are not needed again. A restart before this line
     * queues the run again, and it pulls with them. */
    if (rc >= 0)
        docker_secrets_drop(d);
    if (auth)
        OPENSSL_cleanse(auth, strlen(auth));
    free(auth);
    return rc;
}

static void add_env(struct drun *d, json_t *env, const char *k, const char *v)
{
    json_array_append_new(env, json_string(arena_sprintf(&d->pool, "%s=%s", k, v)));
}

/* The body of POST /containers/create, for the image id. */
static json_t *container_spec(struct drun *d, const char *image_id)
{
    struct live *l = d->l;
    json_t *spec = l->spec, *env = json_array(), *host, *cmd, *o, *v;
    const char *denv = json_string_value(json_object_get(spec, "docker_run_env")), *k;
    json_t *s3_flag = json_object_get(spec, "enable_s3_mount");
    char *copy, *line, *save = NULL, *s3;

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

    /* Init: PID 1 is docker-init, which passes SIGTERM on to the command. No capability, no
     * privilege to gain, no device but the GPUs below; the default seccomp profile. */
    host = json_pack("{s:s,s:b,s:[s],s:[s],s:b,s:[]}", "NetworkMode", network, "Init", 1, "CapDrop",
                     "ALL", "SecurityOpt", "no-new-privileges", "Privileged", 0, "Devices");
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
    if ((!s3_flag || json_is_true(s3_flag)) && l->bucket[0] &&
        exec_host->bucket_mount(l->bucket, s3, PATH_MAX) == 0)
        json_object_set_new(host, "Binds",
                            json_pack("[s]", arena_sprintf(&d->pool, "%s:/mnt/s3", s3)));

    cmd = json_object_get(spec, "docker_run_cmd");
    o = json_pack("{s:s,s:o,s:o,s:{s:s,s:s},s:b,s:b,s:b}", "Image", image_id, "Env", env,
                  "HostConfig", host, "Labels", "lyceumd.run", l->id, "lyceumd.org", l->org_id,
                  "AttachStdout", 1, "AttachStderr", 1, "Tty", 0);
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
    docker_call("POST", path, NULL, NULL, 10000, NULL, NULL);
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
    st = docker_call("POST", path, NULL, NULL, 0, NULL, &body);
    ans = json_loads(body, 0, NULL);
    if (st == 200 && json_is_integer(json_object_get(ans, "StatusCode")))
        code = (int)json_integer_value(json_object_get(ans, "StatusCode"));
    else
        docker_message_of(body, why, n, "cannot wait for the container");
    json_decref(ans);
    free(body);

    snprintf(path, sizeof(path), "/containers/%s/json", d->container);
    st = docker_call("GET", path, NULL, NULL, 10000, NULL, &body);
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
    char why[480] = "", path[200], id[80], *body = NULL, *text;
    json_t *spec = NULL, *ans = NULL;
    long st;
    int code = -1, sig, err;

    if (!ref) {
        snprintf(why, sizeof(why), "the run has no docker_image_ref");
        goto out;
    }
    err = image_of(d, ref, id, why, sizeof(why));
    if (err > 0) {
        code = 128 + SIGKILL;
        why[0] = '\0';
    }
    if (err)
        goto out;
    spec = container_spec(d, id);
    if (!spec) {
        snprintf(why, sizeof(why), "cannot describe the container");
        goto out;
    }
    text = json_dumps(spec, JSON_COMPACT);
    snprintf(path, sizeof(path), "/containers/create?name=lyceumd-%s", l->id);
    st = docker_call("POST", path, text, NULL, 30000, NULL, &body);
    free(text);
    ans = json_loads(body, 0, NULL);
    if (st != 201 || !json_string_value(json_object_get(ans, "Id"))) {
        docker_message_of(body, why, sizeof(why), "cannot create the container");
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
    st = docker_call("POST", path, NULL, NULL, 30000, NULL, &body);
    if (st != 204 && st != 304) {
        docker_message_of(body, why, sizeof(why), "cannot start the container");
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
        docker_call("DELETE", path, NULL, NULL, 30000, NULL, NULL);
    }
    live_exited(l, why[0] ? -1 : code, why[0] ? why : NULL);
    return NULL;
}

/* ---- reaching a container's ports ---- */

/* The container of run_id as the engine describes it, when it runs for that run and org:
 * 1 with its init's pid and start time, 0 when it is not there or not running, -1 when no
 * engine answers. */
static int container_state(const char *run_id, const char *org_id, long long *pid, char started[64])
{
    char path[200], *body = NULL;
    long st;
    json_t *j, *state, *labels;
    int ok = 0;

    snprintf(path, sizeof(path), "/containers/lyceumd-%s/json", run_id);
    st = docker_call("GET", path, NULL, NULL, 2000, NULL, &body);
    j = st == 200 ? json_loads(body, 0, NULL) : NULL;
    free(body);
    if (!st)
        return -1;
    state = json_object_get(j, "State");
    labels = json_object_get(json_object_get(j, "Config"), "Labels");
    if (json_is_true(json_object_get(state, "Running")) &&
        json_integer_value(json_object_get(state, "Pid")) > 0 &&
        json_string_value(json_object_get(labels, "lyceumd.run")) &&
        json_string_value(json_object_get(labels, "lyceumd.org")) &&
        strcmp(json_string_value(json_object_get(labels, "lyceumd.run")), run_id) == 0 &&
        strcmp(json_string_value(json_object_get(labels, "lyceumd.org")), org_id) == 0) {
        *pid = json_integer_value(json_object_get(state, "Pid"));
        snprintf(started, 64, "%s",
                 json_string_value(json_object_get(state, "StartedAt"))
                     ? json_string_value(json_object_get(state, "StartedAt"))
                     : "");
        ok = 1;
    }
    json_decref(j);
    return ok;
}

int exec_docker_netns(const char *run_id, const char *org_id, char *why, size_t n)
{
    char path[64], started[64], again_started[64];
    long long pid = 0, again_pid = 0;
    struct stat ns, own;
    int fd, rc;

    rc = container_state(run_id, org_id, &pid, started);
    if (rc <= 0) {
        snprintf(why, n, rc < 0 ? "no Docker engine answers" : "the run has no running container");
        return rc < 0 ? LY_EUNAVAIL : LY_ENOTFOUND;
    }
    snprintf(path, sizeof(path), "/proc/%lld/ns/net", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, n, "the run's container has ended");
        return LY_ENOTFOUND;
    }
    /* The pid could have ended and been reused between the engine's answer and open(): when
     * the same container still runs with that pid now, it was its process all along. */
    rc = container_state(run_id, org_id, &again_pid, again_started);
    if (rc <= 0 || again_pid != pid || strcmp(started, again_started) != 0) {
        close(fd);
        snprintf(why, n, "the run's container has ended");
        return LY_ENOTFOUND;
    }
    /* A container on the host's network would give the host's loopback: never that. */
    if (fstat(fd, &ns) || stat("/proc/self/ns/net", &own) ||
        (ns.st_ino == own.st_ino && ns.st_dev == own.st_dev)) {
        close(fd);
        snprintf(why, n, "the run's container has no network namespace of its own");
        return LY_EIO;
    }
    return fd;
}

/* ---- what a restart left ---- */

/* The Compose project of run id: lyceumd-<first 12 of the id>, in the characters Compose
 * allows (lower-case letters, digits, '-' and '_'). */
static void project_of(const char *id, char *out, size_t n)
{
    snprintf(out, n, "lyceumd-%.12s", id);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
        else if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-_", *p))
            *p = '_';
}

/* Removes every object of kind ("containers", "networks", "volumes") whose label is label. */
static void remove_labelled(const char *kind, const char *label)
{
    json_t *f = json_pack("{s:[s]}", "label", label), *list, *items, *it;
    char *ftext = json_dumps(f, JSON_COMPACT), *enc = curl_easy_escape(NULL, ftext, 0);
    char path[600], *body = NULL;
    size_t i;

    if (!enc)
        abort();
    if (strcmp(kind, "containers") == 0)
        snprintf(path, sizeof(path), "/containers/json?all=1&filters=%s", enc);
    else
        snprintf(path, sizeof(path), "/%s?filters=%s", kind, enc);
    list = docker_call("GET", path, NULL, NULL, 10000, NULL, &body) == 200
               ? json_loads(body, 0, NULL)
               : NULL;
    /* Containers and networks answer a list; volumes {"Volumes": [...]}. */
    items = json_is_array(list) ? list : json_object_get(list, "Volumes");
    json_array_foreach(items, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "Id"));

        if (!id)
            id = json_string_value(json_object_get(it, "Name"));
        if (!id || strlen(id) > 200)
            continue;
        snprintf(path, sizeof(path), "/%s/%s%s", kind, id,
                 strcmp(kind, "containers") == 0 ? "?force=1&v=1" : "");
        if (docker_call("DELETE", path, NULL, NULL, 30000, NULL, NULL) / 100 == 2)
            log_info("removed the %s %.12s that a run left before the restart (%s)", kind, id,
                     label);
    }
    json_decref(list);
    json_decref(f);
    free(ftext);
    free(body);
    curl_free(enc);
}

void docker_forget(const char *run_id)
{
    char label[200], project[48];

    if (!docker_available(NULL))
        return;
    project_of(run_id, project, sizeof(project));
    snprintf(label, sizeof(label), "lyceumd.run=%s", run_id);
    remove_labelled("containers", label);
    snprintf(label, sizeof(label), "com.docker.compose.project=%s", project);
    remove_labelled("containers", label);
    remove_labelled("networks", label);
    remove_labelled("volumes", label);
}

/* ---- the interface ---- */

/* A run's thread and its signals' blocking calls run in two pools (core/worker), made with
 * the first run and ended at shutdown, once every run was released. */
#define DOCKER_RUNS_MAX 1024 /* runs at once: one past it fails to start, as no thread did */
static struct worker_pool *run_pool, *sig_pool;
static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;

static struct worker_pool *pool_of(int signals)
{
    struct worker_pool *p;

    pthread_mutex_lock(&pools_mu);
    if (!run_pool) {
        run_pool = worker_pool_new("Docker runs", DOCKER_RUNS_MAX, 0);
        sig_pool = worker_pool_new("Docker signals", 16, 4096);
    }
    p = signals ? sig_pool : run_pool;
    pthread_mutex_unlock(&pools_mu);
    return p;
}

/* A run's thread: its main, then the mark that release() waits for. */
static void run_job(void *arg)
{
    struct drun *d = arg;

    if (d->l->kind == RUN_COMPOSE)
        docker_compose_main(d);
    else
        image_main(d);
    pthread_mutex_lock(&d->mu);
    d->thread_done = 1;
    pthread_cond_broadcast(&d->idle);
    pthread_mutex_unlock(&d->mu);
}

static int docker_start(struct live *l)
{
    struct drun *d = xcalloc(1, sizeof(*d));

    d->l = l;
    arena_init(&d->pool);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->idle, NULL);
    project_of(l->id, d->project, sizeof(d->project));
    snprintf(d->file, sizeof(d->file), "%.1000s/docker-compose.yml", l->dir);
    l->exec_priv = d;
    if (l->kind != RUN_IMAGE && l->kind != RUN_COMPOSE) {
        snprintf(l->errbuf, sizeof(l->errbuf), "the Docker executor runs images and Compose only");
        return LY_EBADREQ;
    }
    if (worker_submit(pool_of(0), run_job, d) != 0) {
        snprintf(l->errbuf, sizeof(l->errbuf),
                 "cannot start a thread for the run (%d Docker runs "
                 "at once at most)",
                 DOCKER_RUNS_MAX);
        return LY_EINTERNAL;
    }
    d->thread_started = 1;
    return 0;
}

struct sigjob {
    struct drun *d;
    int sig;
};

/* The blocking part of a signal, on a thread of the signals' pool: the Engine call or
 * `docker-compose stop` (which takes the grace period). */
static void signal_job(void *arg)
{
    struct sigjob *j = arg;
    struct drun *d = j->d;

    if (d->l->kind == RUN_COMPOSE)
        docker_compose_signal(d, j->sig);
    else
        send_signal(d);
    free(j);
    pthread_mutex_lock(&d->mu);
    d->inflight--;
    pthread_cond_broadcast(&d->idle);
    pthread_mutex_unlock(&d->mu);
}

static void docker_signal(struct live *l, int sig)
{
    struct drun *d = l->exec_priv;
    struct sigjob *j;

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
    if (worker_submit(pool_of(1), signal_job, j) != 0) {
        free(j);
        pthread_mutex_lock(&d->mu);
        d->inflight--;
        pthread_cond_broadcast(&d->idle);
        pthread_mutex_unlock(&d->mu);
        log_error("run %s: cannot queue its signal", l->id);
    }
}

static void docker_release(struct live *l)
{
    struct drun *d = l->exec_priv;

    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    while ((d->thread_started && !d->thread_done) || d->inflight > 0)
        pthread_cond_wait(&d->idle, &d->mu);
    pthread_mutex_unlock(&d->mu);
    if (d->secrets)
        docker_secrets_drop(d);
    pthread_cond_destroy(&d->idle);
    pthread_mutex_destroy(&d->mu);
    arena_release(&d->pool);
    free(d);
    l->exec_priv = NULL;
}

/* A Docker run cannot be followed across a restart: its containers, and a Compose project's
 * networks and volumes, are removed (whether the run ends now or goes back to the queue). */
static int docker_adopt(struct live *l, const struct exec_prior *prior)
{
    (void)prior;
    docker_forget(l->id);
    return LY_ENOTFOUND;
}

/* Image and Compose runs, on whichever profile they ask for: the GPUs they get are handed
 * out as the profile's own backend says (l->gpus). */
static void docker_capacity(struct exec_capacity *cap)
{
    cap->kinds = 1 << RUN_IMAGE | 1 << RUN_COMPOSE;
}

/* After every run was released (runs_shutdown). */
static void docker_shutdown(void)
{
    pthread_mutex_lock(&pools_mu);
    struct worker_pool *runs = run_pool, *sigs = sig_pool;
    run_pool = sig_pool = NULL;
    pthread_mutex_unlock(&pools_mu);
    worker_pool_free(runs);
    worker_pool_free(sigs);
}

const struct exec_ops exec_docker = {
    .name = "docker",
    .shutdown = docker_shutdown,
    .start = docker_start,
    .signal = docker_signal,
    .release = docker_release,
    .adopt = docker_adopt,
    .capacity = docker_capacity,
};
