/*
 * Compose runs: the tenant's file, normalised and checked (compose_file.c), made into a file of
 * lyceumd's own and run with `docker-compose` (v1).
 *
 * The run's file is the normalised one with: each service's image replaced by the image id
 * that images.c resolved for the run's org (pulled with the run's docker_username and
 * docker_password when given), so docker-compose never pulls, builds or tags anything; the
 * profile's memory (no swap), CPU and process limits; every capability dropped and
 * no-new-privileges; the run's labels; the run's variables in each service's environment
 * (where the file does not give a name a value: docker-compose itself never sees them); the
 * GPUs it holds as a device request; and, while containers get no network (docker_network
 * "none"), the project's networks internal and without an address on the host, so services
 * reach each other and nothing else. `docker-compose up --abort-on-container-exit` runs it
 * (a clean environment again) with its output piped into the run's, then `down -v`.
 */
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/docker.h"
#include "exec/docker_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- docker-compose ---- */

/* Starts `docker-compose args...` in dir with envp, its stdin /dev/null; 0 or -1. */
int docker_compose_spawn(const char *dir, char *const args[], char *const envp[], struct child *c)
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

        /* It dies with the thread that started it (lyceumd killed: restart recovery
         * removes what it left). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
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

static void keep(char *buf, size_t n, size_t *k, const char *p, size_t r)
{
    size_t take;

    if (!buf || *k + 1 >= n)
        return;
    take = r < n - 1 - *k ? r : n - 1 - *k;
    memcpy(buf + *k, p, take);
    *k += take;
    buf[*k] = '\0';
}

/* Reads the child's output to its end into s; then reaps it, forgetting it as d's up or stop
 * process (when d). Returns its exit status (128 + signal if killed). */
int docker_compose_drain(struct drun *d, struct child *c, struct sink *s)
{
    int st = 0;

    while (c->out >= 0 || c->err >= 0) {
        struct pollfd p[2] = {{c->out, POLLIN, 0}, {c->err, POLLIN, 0}};
        char chunk[16384];
        int wait_ms = -1;

        if (s->deadline_us) {
            int64_t left = s->deadline_us - now_mono_us();

            if (left <= 0)
                kill(-c->pid, SIGKILL);
            wait_ms = left <= 0 ? 1000 : (int)(left / 1000) + 1;
        }
        if (poll(p, 2, wait_ms) < 0) {
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
            if (s->to_run)
                live_output(d->l, i == 0 ? OUT_STDOUT : OUT_STDERR, chunk, (size_t)r);
            else if (i == 0) {
                if (s->out && s->out_k + (size_t)r >= s->out_n)
                    kill(-c->pid, SIGKILL);
                keep(s->out, s->out_n, &s->out_k, chunk, (size_t)r);
            } else
                keep(s->err, s->err_n, &s->err_k, chunk, (size_t)r);
        }
    }
    if (c->out >= 0)
        close(c->out);
    if (c->err >= 0)
        close(c->err);
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

/* The whole environment of docker-compose: the engine, a home with nothing in it (so no
 * one's ~/.docker is read), nothing of the tenant's. The caller frees the two it made. */
void docker_compose_env(const char *home, char *envp[6])
{
    if (asprintf(&envp[0], "DOCKER_HOST=unix://%s", docker_socket_path()) < 0 ||
        asprintf(&envp[1], "HOME=%s", home) < 0)
        abort();
    envp[2] = "PATH=/usr/local/bin:/usr/bin:/bin";
    envp[3] = "LANG=C.UTF-8";
    envp[4] = "DOCKER_CONFIG=/nonexistent";
    envp[5] = NULL;
}

/* Writes n bytes to path (mode 0600): 0 or -1. */
int docker_write_file(const char *path, const char *text, size_t n)
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

/* ---- the run's file ---- */

/* s with every '$' doubled: docker-compose interpolates the file it runs. */
static const char *escaped(struct drun *d, const char *s)
{
    size_t k = 0, dollars = 0;
    char *o;

    for (const char *p = s; *p; p++)
        dollars += *p == '$';
    o = arena_alloc(&d->pool, strlen(s) + dollars + 1);
    for (const char *p = s; *p; p++) {
        o[k++] = *p;
        if (*p == '$')
            o[k++] = '$';
    }
    o[k] = '\0';
    return o;
}

/* The run's variables where the service gives a name no value, and the run's own. */
static void service_env(struct drun *d, json_t *svc)
{
    struct live *l = d->l;
    json_t *env = json_object_get(svc, "environment"), *v, *cur;
    const char *k;

    if (!json_is_object(env)) {
        env = json_object();
        json_object_set_new(svc, "environment", env);
    }
    json_object_foreach(l->env, k, v)
    {
        cur = json_object_get(env, k);
        if (json_is_string(v) &&
            (!cur || json_is_null(cur) || (json_is_string(cur) && !json_string_length(cur))))
            json_object_set_new(env, k, json_string(escaped(d, json_string_value(v))));
    }
    json_object_set_new(env, "LYCEUM_EXECUTION_ID", json_string(l->id));
    if (l->gpus[0])
        json_object_set_new(env, "CUDA_VISIBLE_DEVICES", json_string(l->gpus));
}

/* The profile's limits, no capabilities, no privilege to gain, the run's labels and GPUs. */
static void service_limits(struct drun *d, json_t *svc)
{
    struct live *l = d->l;
    json_t *labels = json_object_get(svc, "labels");

    if (l->mem_bytes > 0) {
        json_object_set_new(svc, "mem_limit", json_integer(l->mem_bytes));
        json_object_set_new(svc, "memswap_limit", json_integer(l->mem_bytes));
    }
    if (l->cpus > 0)
        json_object_set_new(svc, "cpus", json_real(l->cpus));
    if (l->pids_max > 0)
        json_object_set_new(svc, "pids_limit", json_integer(l->pids_max));
    json_object_set_new(svc, "cap_drop", json_pack("[s]", "ALL"));
    json_object_set_new(svc, "security_opt", json_pack("[s]", "no-new-privileges:true"));
    if (json_is_array(labels)) {
        json_array_append_new(labels, json_sprintf("lyceumd.run=%s", l->id));
        json_array_append_new(labels, json_sprintf("lyceumd.org=%s", l->org_id));
    } else {
        if (!json_is_object(labels)) {
            labels = json_object();
            json_object_set_new(svc, "labels", labels);
        }
        json_object_set_new(labels, "lyceumd.run", json_string(l->id));
        json_object_set_new(labels, "lyceumd.org", json_string(l->org_id));
    }
    if (l->gpus[0]) {
        json_t *ids = json_array();
        char *g = arena_strdup(&d->pool, l->gpus), *tok, *sv = NULL;

        for (tok = strtok_r(g, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv))
            json_array_append_new(ids, json_string(tok));
        json_object_set_new(svc, "deploy",
                            json_pack("{s:{s:{s:[{s:s,s:o,s:[s]}]}}}", "resources", "reservations",
                                      "devices", "driver", "nvidia", "device_ids", ids,
                                      "capabilities", "gpu"));
    }
}

/* While containers get no network: the project's networks (the default one too, when a
 * service is on it) are internal, and their bridge has no address on the host. */
static void project_networks(json_t *doc)
{
    json_t *nets = json_object_get(doc, "networks"), *svc, *v;
    const char *k;
    int on_default = 0;

    if (strcmp(docker_network_mode(), "none") != 0)
        return;
    json_object_foreach(json_object_get(doc, "services"), k, svc)
    {
        if (!json_object_get(svc, "network_mode") && !json_object_get(svc, "networks"))
            on_default = 1;
    }
    if (!json_is_object(nets)) {
        nets = json_object();
        json_object_set_new(doc, "networks", nets);
    }
    if (on_default && !json_object_get(nets, "default"))
        json_object_set_new(nets, "default", json_object());
    json_object_foreach(nets, k, v)
    {
        if (!json_is_object(v)) {
            v = json_object();
            json_object_set_new(nets, k, v);
        }
        json_object_set_new(v, "internal", json_true());
        json_object_set_new(v, "driver_opts",
                            json_pack("{s:s}", "com.docker.network.bridge.inhibit_ipv4", "true"));
    }
    if (!json_object_size(nets))
        json_object_del(doc, "networks");
}

/* The run's file from the normalised one: images resolved for the run's org (0; -1 with why;
 * 1 when the run was killed meanwhile). */
static int run_file(struct drun *d, json_t *doc, char *why, size_t n)
{
    const char *user = json_string_value(json_object_get(d->l->spec, "docker_username"));
    const char *pass = docker_secret(d, "docker_password");
    char *auth = NULL, id[80];
    json_t *svc;
    const char *k;
    int rc = 0;

    if (user && *user && pass)
        auth = docker_auth_header(user, pass);
    json_object_foreach(json_object_get(doc, "services"), k, svc)
    {
        if (rc)
            break;
        rc = docker_image_resolve(d, json_string_value(json_object_get(svc, "image")), auth, id,
                                  why, n);
        if (rc)
            break;
        json_object_set_new(svc, "image", json_string(id));
        service_env(d, svc);
        service_limits(d, svc);
    }
    if (rc >= 0)
        docker_secrets_drop(d);
    if (auth)
        OPENSSL_cleanse(auth, strlen(auth));
    free(auth);
    project_networks(doc);
    return rc;
}

/* ---- the run ---- */

void *docker_compose_main(void *arg)
{
    struct drun *d = arg;
    struct live *l = d->l;
    const char *yaml = json_string_value(json_object_get(l->spec, "compose_file_code"));
    const char *type =
        json_string_value(json_object_get(l->spec, "docker_registry_credential_type"));
    char why[480] = "", *envp[6], *text = NULL;
    char *up[] = {"-p", d->project,   "-f",         d->file,
                  "up", "--no-color", "--no-build", "--abort-on-container-exit",
                  NULL};
    char *down[] = {"-p", d->project,         "-f", d->file, "down",
                    "-v", "--remove-orphans", "-t", "2",     NULL};
    struct sink to_run = {.to_run = 1}, none = {0};
    json_t *doc = NULL;
    struct child c;
    int code = -1, sig, err;

    docker_compose_env(l->dir, envp);
    if (type && strcmp(type, "aws") == 0) {
        snprintf(why, sizeof(why),
                 "ECR (aws) registry credentials are not supported by this server (no ECR "
                 "login); use docker_username/docker_password, or images present locally");
        goto out;
    }
    if (!yaml) {
        snprintf(why, sizeof(why), "the run has no compose_file_code");
        goto out;
    }
    err = docker_compose_normalise(yaml, l->dir, &doc, why, sizeof(why));
    if (err)
        goto out;
    if (docker_secrets_load(d, why, sizeof(why)) != 0)
        goto out;
    err = run_file(d, doc, why, sizeof(why));
    if (err > 0) {
        code = 128 + SIGKILL;
        why[0] = '\0';
    }
    if (err)
        goto out;
    text = json_dumps(doc, JSON_INDENT(1));
    if (!text || docker_write_file(d->file, text, strlen(text)) != 0) {
        snprintf(why, sizeof(why), "cannot write the compose file");
        goto out;
    }
    /* Started under the lock, so that a signal sees either no up (and this sees the signal)
     * or up's pid. */
    pthread_mutex_lock(&d->mu);
    sig = d->sig_wanted;
    err = sig ? 0 : docker_compose_spawn(l->dir, up, envp, &c);
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
    code = docker_compose_drain(d, &c, &to_run);
    if (code == 127)
        snprintf(why, sizeof(why), "docker-compose is not installed on this server");
    if (docker_wanted(d) == SIGKILL)
        down[8] = "0";
    if (docker_compose_spawn(l->dir, down, envp, &c) == 0)
        docker_compose_drain(NULL, &c, &none);
    /* A `stop` still waiting out its grace period has nothing left to stop. */
    pthread_mutex_lock(&d->mu);
    if (d->stop_pid)
        kill(-d->stop_pid, SIGKILL);
    pthread_mutex_unlock(&d->mu);
out:
    if (d->secrets)
        docker_secrets_drop(d);
    json_decref(doc);
    free(text);
    free(envp[0]);
    free(envp[1]);
    live_exited(l, why[0] ? -1 : code, why[0] ? why : NULL);
    return NULL;
}

/* SIGTERM: `docker-compose stop` with the grace period (up then ends, its containers
 * stopped); SIGKILL: up's process group is killed, and the run's thread runs `down -t 0`. */
void docker_compose_signal(struct drun *d, int sig)
{
    char t[16], *envp[6];
    char *stop[] = {"-p", d->project, "-f", d->file, "stop", "-t", t, NULL};
    struct sink none = {0};
    struct child c;
    int err = -1;

    snprintf(t, sizeof(t), "%d", d->l->graceful_s > 0 ? d->l->graceful_s : 10);
    docker_compose_env(d->l->dir, envp);
    pthread_mutex_lock(&d->mu);
    if (d->up_pid && sig == SIGKILL) {
        kill(-d->up_pid, SIGKILL);
        d->sig_sent = SIGKILL;
    } else if (d->up_pid && sig == SIGTERM && !d->sig_sent) {
        d->sig_sent = SIGTERM;
        err = docker_compose_spawn(d->l->dir, stop, envp, &c);
        if (!err)
            d->stop_pid = c.pid;
    }
    pthread_mutex_unlock(&d->mu);
    if (!err)
        docker_compose_drain(d, &c, &none);
    free(envp[0]);
    free(envp[1]);
}
