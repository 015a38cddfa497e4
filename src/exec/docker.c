/*
 * The Docker executor: image runs through the Docker Engine API over its unix socket (libcurl),
 * Compose runs through the `docker-compose` command.
 *
 * Each Docker run has a thread of its own, because the Engine API calls block: for an image
 * run it makes sure the image is there (pulling it with the run's registry credentials when
 * not), creates the container (environment, limits, GPUs as device requests, the bucket at
 * /mnt/s3 when asked), starts it, follows its log stream (demultiplexing Docker's 8-byte frame
 * headers into stdout and stderr), waits for its exit code and removes it. A Compose run is
 * `docker-compose up --abort-on-container-exit` with its output piped into the run's, then
 * `down`. signal() may come from any thread at any time: it is remembered, and sent as soon
 * as there is a container (or a Compose project) to send it to.
 */
#include "exec/docker.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#define API "http://localhost/v1.41"

struct drun {
    struct live *l;
    pthread_t thread;
    pthread_mutex_t mu;
    char container[80]; /* "" until created */
    char project[48];   /* compose project name */
    int sig_wanted;     /* 0, SIGTERM or SIGKILL: asked for */
    int sig_sent;
    int inflight; /* signal threads still running (release waits for them) */
    pthread_cond_t idle;
    /* the log stream's frame being read */
    unsigned char hdr[8];
    size_t hdr_n, frame_left;
    int frame_stream;
};

static char sock[256] = "/var/run/docker.sock";
static char network[32] = "none";
static pthread_mutex_t ping_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t ping_at;
static int ping_ok;
static char ping_why[200];

void docker_configure(const char *socket_path)
{
    snprintf(sock, sizeof(sock), "%s", socket_path);
}

void docker_set_network(const char *mode)
{
    snprintf(network, sizeof(network), "%s", mode && *mode ? mode : "none");
}

struct buf {
    char *p;
    size_t n;
};

static size_t collect(char *p, size_t s, size_t n, void *u)
{
    struct buf *b = u;
    size_t k = s * n;

    if (b->n + k > (16u << 20))
        return 0;
    b->p = realloc(b->p, b->n + k + 1);
    if (!b->p)
        abort();
    memcpy(b->p + b->n, p, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

/* One Engine API call. Returns the HTTP status (0 when the engine did not answer); the body
 * (if out) is left in *out, NUL-terminated, for the caller to free. */
static long call(const char *method, const char *path, const char *body, const char *auth,
                 long timeout_s, char **out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct buf b = {0};
    char url[2048], ah[4200];
    long status = 0;

    if (!c)
        return 0;
    snprintf(url, sizeof(url), API "%s", path);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (auth) {
        snprintf(ah, sizeof(ah), "X-Registry-Auth: %s", auth);
        h = curl_slist_append(h, ah);
    }
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
    if (timeout_s)
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out)
        *out = b.p ? b.p : xstrdup("");
    else
        free(b.p);
    return status;
}

/* The engine's "message" of an error answer, for errors. */
static void message_of(const char *body, char *why, size_t n, const char *what)
{
    json_t *j = json_loads(body ? body : "", 0, NULL);
    const char *m = json_string_value(json_object_get(j, "message"));

    snprintf(why, n, "%s: %s", what, m ? m : (body && *body ? body : "no answer"));
    json_decref(j);
}

int docker_available(const char **why)
{
    int ok;

    pthread_mutex_lock(&ping_mu);
    if (now_mono_us() - ping_at > 3000000 || !ping_at) {
        long st = call("GET", "/_ping", NULL, NULL, 2, NULL);

        ping_ok = st == 200;
        if (!ping_ok)
            snprintf(ping_why, sizeof(ping_why), "no Docker engine answers at %.150s", sock);
        ping_at = now_mono_us();
    }
    ok = ping_ok;
    if (why)
        *why = ok ? NULL : ping_why;
    pthread_mutex_unlock(&ping_mu);
    return ok;
}

/* ---- image runs ---- */

/* X-Registry-Auth for basic credentials: base64url of {"username","password"}. */
static char *registry_auth(json_t *spec, char *why, size_t n)
{
    const char *type = json_string_value(json_object_get(spec, "docker_registry_credential_type"));
    const char *creds = json_string_value(json_object_get(spec, "docker_registry_credentials"));
    json_t *c, *a;
    char *text, *out;
    size_t len;

    if (!type)
        return NULL;
    if (strcmp(type, "aws") == 0) {
        snprintf(why, n,
                 "ECR (aws) registry credentials are not supported by this server; "
                 "use a registry with basic credentials or an image present locally");
        return NULL;
    }
    c = json_loads(creds ? creds : "", 0, NULL);
    a = json_pack("{s:s?,s:s?}", "username", json_string_value(json_object_get(c, "username")),
                  "password", json_string_value(json_object_get(c, "password")));
    text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    json_decref(c);
    len = strlen(text);
    out = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)len);
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    free(text);
    return out;
}

static int ensure_image(struct drun *d, const char *ref, char *why, size_t n)
{
    char path[1200], *enc, *auth, *body = NULL;
    long st;
    CURL *c = curl_easy_init();

    enc = curl_easy_escape(c, ref, 0);
    snprintf(path, sizeof(path), "/images/%s/json", enc);
    st = call("GET", path, NULL, NULL, 10, NULL);
    if (st == 200) {
        curl_free(enc);
        curl_easy_cleanup(c);
        return 0;
    }
    why[0] = '\0';
    auth = registry_auth(d->l->spec, why, n);
    if (why[0]) {
        curl_free(enc);
        curl_easy_cleanup(c);
        return -1;
    }
    snprintf(path, sizeof(path), "/images/create?fromImage=%s", enc);
    st = call("POST", path, NULL, auth, 600, &body);
    if (st != 200 || strstr(body, "\"error\"")) {
        char *e = strstr(body, "\"error\"");

        snprintf(why, n, "the image '%s' is not on this server and cannot be pulled%s%.200s", ref,
                 e ? ": " : "", e ? e : "");
        st = 0;
    }
    curl_free(enc);
    curl_easy_cleanup(c);
    free(auth);
    free(body);
    return st == 200 ? 0 : -1;
}

static json_t *container_spec(struct drun *d)
{
    struct live *l = d->l;
    json_t *spec = l->spec, *env = json_array(), *host, *labels, *o;
    const char *denv = json_string_value(json_object_get(spec, "docker_run_env"));
    char s3[1100], *copy, *line, *save = NULL, kv[600];
    const char *k;
    json_t *v;

    if (denv) {
        copy = xstrdup(denv);
        for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            line[strcspn(line, "\r")] = '\0';
            if (strchr(line, '=') && line[0] != '=')
                json_array_append_new(env, json_string(line));
        }
        free(copy);
    }
    json_object_foreach(l->env, k, v) if (json_is_string(v))
    {
        snprintf(kv, sizeof(kv), "%s=%s", k, json_string_value(v));
        json_array_append_new(env, json_string(kv));
    }
    snprintf(kv, sizeof(kv), "LYCEUM_EXECUTION_ID=%s", l->id);
    json_array_append_new(env, json_string(kv));
    if (l->gpus[0]) {
        snprintf(kv, sizeof(kv), "CUDA_VISIBLE_DEVICES=%s", l->gpus);
        json_array_append_new(env, json_string(kv));
    }
    host = json_pack("{s:s,s:b}", "NetworkMode", network, "Init", 1);
    if (l->mem_bytes > 0)
        json_object_set_new(host, "Memory", json_integer(l->mem_bytes));
    if (l->cpus > 0)
        json_object_set_new(host, "NanoCpus", json_integer((json_int_t)l->cpus * 1000000000));
    if (l->pids_max > 0)
        json_object_set_new(host, "PidsLimit", json_integer(l->pids_max));
    if (l->gpus[0]) {
        json_t *ids = json_array();
        char g[64], *tok, *sv = NULL;

        snprintf(g, sizeof(g), "%s", l->gpus);
        for (tok = strtok_r(g, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv))
            json_array_append_new(ids, json_string(tok));
        json_object_set_new(host, "DeviceRequests",
                            json_pack("[{s:s,s:o,s:[[s]]}]", "Driver", "nvidia", "DeviceIDs", ids,
                                      "Capabilities", "gpu"));
    }
    snprintf(s3, sizeof(s3), "%s/s3", l->dir);
    if (json_is_true(json_object_get(spec, "enable_s3_mount")) ||
        !json_object_get(spec, "enable_s3_mount")) {
        struct stat st;

        if (stat(s3, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(kv, sizeof(kv), "%.580s:/mnt/s3", s3);
            json_object_set_new(host, "Binds", json_pack("[s]", kv));
        }
    }
    labels = json_pack("{s:s,s:s}", "lyceumd.run", l->id, "lyceumd.org", l->org_id);
    o = json_pack("{s:O,s:O,s:o,s:o,s:o,s:b,s:b}", "Image",
                  json_object_get(spec, "docker_image_ref"), "Cmd",
                  json_object_get(spec, "docker_run_cmd"), "Env", env, "HostConfig", host, "Labels",
                  labels, "AttachStdout", 1, "AttachStderr", 1);
    return o;
}

static void send_signal(struct drun *d)
{
    char path[200];
    int sig;

    pthread_mutex_lock(&d->mu);
    sig = d->sig_wanted;
    if (!sig || sig == d->sig_sent || !d->container[0]) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    d->sig_sent = sig;
    snprintf(path, sizeof(path), "/containers/%s/kill?signal=%s", d->container,
             sig == SIGTERM ? "SIGTERM" : "SIGKILL");
    pthread_mutex_unlock(&d->mu);
    call("POST", path, NULL, NULL, 10, NULL);
}

/* The log stream: frames of an 8-byte header (stream, 0, 0, 0, size big-endian) and data. */
static size_t on_log(char *p, size_t s, size_t n, void *u)
{
    struct drun *d = u;
    size_t left = s * n, total = left;

    while (left) {
        if (d->frame_left == 0) {
            size_t take = 8 - d->hdr_n < left ? 8 - d->hdr_n : left;

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
        {
            size_t take = d->frame_left < left ? d->frame_left : left;

            live_output(d->l, d->frame_stream, p, take);
            d->frame_left -= take;
            p += take;
            left -= take;
        }
    }
    return total;
}

static void follow_logs(struct drun *d)
{
    CURL *c = curl_easy_init();
    char url[300];

    snprintf(url, sizeof(url), API "/containers/%s/logs?follow=1&stdout=1&stderr=1", d->container);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_log);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
}

static void *image_main(void *arg)
{
    struct drun *d = arg;
    struct live *l = d->l;
    char why[400] = "", path[200], *body = NULL, *text;
    json_t *spec, *ans;
    long st;
    int code = -1;

    if (ensure_image(d, json_string_value(json_object_get(l->spec, "docker_image_ref")), why,
                     sizeof(why))) {
        live_exited(l, -1, why);
        return NULL;
    }
    spec = container_spec(d);
    text = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    snprintf(path, sizeof(path), "/containers/create?name=lyceumd-%s", l->id);
    st = call("POST", path, text, NULL, 30, &body);
    free(text);
    ans = json_loads(body, 0, NULL);
    if (st != 201 || !json_string_value(json_object_get(ans, "Id"))) {
        message_of(body, why, sizeof(why), "cannot create the container");
        json_decref(ans);
        free(body);
        live_exited(l, -1, why);
        return NULL;
    }
    pthread_mutex_lock(&d->mu);
    snprintf(d->container, sizeof(d->container), "%s",
             json_string_value(json_object_get(ans, "Id")));
    pthread_mutex_unlock(&d->mu);
    json_decref(ans);
    free(body);
    body = NULL;
    if (d->sig_wanted != SIGKILL) {
        snprintf(path, sizeof(path), "/containers/%s/start", d->container);
        st = call("POST", path, NULL, NULL, 30, &body);
        if (st != 204 && st != 304) {
            message_of(body, why, sizeof(why), "cannot start the container");
        } else {
            live_running(l);
            send_signal(d); /* a stop that came while it was being created */
            follow_logs(d);
            free(body);
            body = NULL;
            snprintf(path, sizeof(path), "/containers/%s/wait", d->container);
            st = call("POST", path, NULL, NULL, 0, &body);
            ans = json_loads(body ? body : "", 0, NULL);
            if (st == 200 && json_is_integer(json_object_get(ans, "StatusCode")))
                code = (int)json_integer_value(json_object_get(ans, "StatusCode"));
            else
                message_of(body, why, sizeof(why), "cannot wait for the container");
            json_decref(ans);
        }
        free(body);
    } else {
        code = 137;
    }
    snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", d->container);
    call("DELETE", path, NULL, NULL, 30, NULL);
    live_exited(l, code, why[0] ? why : NULL);
    return NULL;
}

/* ---- compose runs ---- */

/* Runs docker-compose with args; its output into the run (when d) or into out. */
static int compose(struct drun *d, const char *dir, char *const args[], char *out, size_t n)
{
    char *argv[24], host[300];
    int p[2], a = 0, st = 0;
    size_t k = 0;
    pid_t pid;

    snprintf(host, sizeof(host), "DOCKER_HOST=unix://%s", sock);
    argv[a++] = "docker-compose";
    for (int i = 0; args[i] && a < 23; i++)
        argv[a++] = args[i];
    argv[a] = NULL;
    if (pipe2(p, O_CLOEXEC))
        return -1;
    pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        char *envp[] = {host, "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL};

        setpgid(0, 0);
        dup2(devnull, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        if (chdir(dir) != 0)
            _exit(126);
        execvpe("docker-compose", argv, envp);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    for (;;) {
        char buf[16384];
        ssize_t r = read(p[0], buf, sizeof(buf));

        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        if (d)
            live_output(d->l, OUT_STDOUT, buf, (size_t)r);
        else if (out && k < n - 1) {
            size_t take = (size_t)r < n - 1 - k ? (size_t)r : n - 1 - k;

            memcpy(out + k, buf, take);
            k += take;
        }
    }
    if (out)
        out[k] = '\0';
    close(p[0]);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void *compose_main(void *arg)
{
    struct drun *d = arg;
    struct live *l = d->l;
    char file[1100], why[300] = "";
    const char *yaml = json_string_value(json_object_get(l->spec, "compose_file_code"));
    int fd, code;

    snprintf(file, sizeof(file), "%s/docker-compose.yml", l->dir);
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, yaml, strlen(yaml)) != (ssize_t)strlen(yaml)) {
        if (fd >= 0)
            close(fd);
        live_exited(l, -1, "cannot write the compose file");
        return NULL;
    }
    close(fd);
    {
        char *up[] = {"-p", d->project, "-f", file, "up", "--no-color", "--abort-on-container-exit",
                      NULL};
        char *down[] = {"-p", d->project,         "-f", file, "down",
                        "-v", "--remove-orphans", "-t", "5",  NULL};

        live_running(l);
        code = compose(d, l->dir, up, NULL, 0);
        if (code == 127)
            snprintf(why, sizeof(why), "docker-compose is not installed on this server");
        compose(NULL, l->dir, down, NULL, 0);
    }
    live_exited(l, code, why[0] ? why : NULL);
    return NULL;
}

static void *compose_signal_main(void *arg)
{
    struct drun *d = arg;
    char file[1100], t[16];
    int sig;

    pthread_mutex_lock(&d->mu);
    sig = d->sig_wanted;
    pthread_mutex_unlock(&d->mu);
    snprintf(file, sizeof(file), "%s/docker-compose.yml", d->l->dir);
    snprintf(t, sizeof(t), "%d", d->l->graceful_s);
    if (sig == SIGTERM) {
        char *stop[] = {"-p", d->project, "-f", file, "stop", "-t", t, NULL};

        compose(NULL, d->l->dir, stop, NULL, 0);
    } else {
        char *kill_[] = {"-p", d->project, "-f", file, "kill", NULL};

        compose(NULL, d->l->dir, kill_, NULL, 0);
    }
    return NULL;
}

int docker_compose_check(const char *yaml, const char *dir, char *why, size_t n)
{
    char tmpl[1100], file[1200], out[2048];
    char *args[] = {"-f", file, "config", "-q", NULL};
    int fd, rc;

    snprintf(tmpl, sizeof(tmpl), "%.1000s/compose-check-XXXXXX", dir);
    if (!mkdtemp(tmpl)) {
        snprintf(why, n, "cannot check the compose file: %s", strerror(errno));
        return LY_EIO;
    }
    snprintf(file, sizeof(file), "%s/docker-compose.yml", tmpl);
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, yaml, strlen(yaml)) != (ssize_t)strlen(yaml)) {
        if (fd >= 0)
            close(fd);
        rmdir(tmpl);
        snprintf(why, n, "cannot check the compose file");
        return LY_EIO;
    }
    close(fd);
    rc = compose(NULL, tmpl, args, out, sizeof(out));
    unlink(file);
    rmdir(tmpl);
    if (rc == 0)
        return 0;
    /* The first lines of what docker-compose said. */
    for (char *p = out; *p; p++)
        if (*p == '\n' && p[1] == '\0')
            *p = '\0';
    snprintf(why, n, "%.400s", rc == 127 ? "docker-compose is not installed" : out);
    return LY_EINVAL;
}

/* ---- the interface ---- */

static int docker_start(struct live *l)
{
    struct drun *d = xcalloc(1, sizeof(*d));

    d->l = l;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->idle, NULL);
    snprintf(d->project, sizeof(d->project), "lyceumd%.8s", l->id);
    l->exec_priv = d;
    if (pthread_create(&d->thread, NULL, l->kind == 3 ? compose_main : image_main, d) != 0) {
        snprintf(l->errbuf, sizeof(l->errbuf), "cannot start a thread for the run");
        return LY_EINTERNAL;
    }
    return 0;
}

/* A signal is sent from a thread of its own: the Engine call (or `docker-compose stop`, which
 * takes the grace period) blocks, and the scheduler calls signal() holding its lock. */
static void *signal_main(void *arg)
{
    struct drun *d = arg;

    if (d->l->kind == 3)
        compose_signal_main(d);
    else
        send_signal(d);
    pthread_mutex_lock(&d->mu);
    d->inflight--;
    pthread_cond_broadcast(&d->idle);
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void docker_signal(struct live *l, int sig)
{
    struct drun *d = l->exec_priv;
    pthread_attr_t attr;
    pthread_t t;

    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    if (d->sig_wanted != SIGKILL)
        d->sig_wanted = sig;
    d->inflight++;
    pthread_mutex_unlock(&d->mu);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, signal_main, d) != 0) {
        pthread_mutex_lock(&d->mu);
        d->inflight--;
        pthread_mutex_unlock(&d->mu);
    }
    pthread_attr_destroy(&attr);
}

static void docker_release(struct live *l)
{
    struct drun *d = l->exec_priv;

    if (!d)
        return;
    pthread_join(d->thread, NULL);
    pthread_mutex_lock(&d->mu);
    while (d->inflight > 0)
        pthread_cond_wait(&d->idle, &d->mu);
    pthread_mutex_unlock(&d->mu);
    pthread_cond_destroy(&d->idle);
    pthread_mutex_destroy(&d->mu);
    free(d);
    l->exec_priv = NULL;
}

const struct exec_ops exec_docker = {
    .name = "docker",
    .start = docker_start,
    .signal = docker_signal,
    .release = docker_release,
};
