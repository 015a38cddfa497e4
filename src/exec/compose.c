/*
 * Compose runs: a tenant's docker-compose.yml, checked against an allowlist, made into a file
 * of lyceumd's own and run with `docker-compose` (v1).
 *
 * The file is normalised by `docker-compose config` (every shorthand expanded, merges and
 * anchors applied, ${...} interpolated) run with a clean environment (PATH, the engine, an
 * empty HOME) in an empty directory of its own: no tenant variable reaches docker-compose (a
 * PYTHONPATH of theirs would run their code in it). Before that, the raw file is scanned for
 * the keys that make `config` itself read host files (env_file, extends) and for alias bombs;
 * after it, the normalised file (parsed with libyaml) must use only keys of the allowlist
 * below: no build, secrets, configs, host networking or namespaces, privileges, capabilities,
 * devices, host paths, published ports, logging drivers or container names. A refused key is
 * named in the answer (422).
 *
 * The run's file is the normalised one with: each service's image replaced by the image id
 * that images.c resolved for the run's org (pulled with the run's docker_username and
 * docker_password when given), so docker-compose never pulls, builds or tags anything; the
 * profile's memory (no swap), CPU and process limits; every capability dropped and
 * no-new-privileges; the run's labels; the run's variables in each service's environment
 * (where the file does not give a name a value); the GPUs it holds as a device request; and,
 * while containers get no network (docker_network "none"), the project's networks internal
 * and without an address on the host, so services reach each other and nothing else.
 * `docker-compose up --abort-on-container-exit` runs it with its output piped into the
 * run's, then `down -v`.
 */
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/docker.h"
#include "exec/docker_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>

/* The most nodes a file may have with its aliases expanded, and the longest `config` takes. */
#define NODES_MAX         100000
#define CONFIG_TIMEOUT_MS 60000
/* The most of the normalised file read back. */
#define CONFIG_OUT_MAX (4u << 20)

/* ---- the allowlist ---- */

/* Keys refused wherever they are, with the reason the answer gives. */
struct refusal {
    const char *key, *why;
};

static const struct refusal service_refused[] = {
    {"build", "images are pulled, never built here"},
    {"pull_policy", "images are pulled by lyceumd"},
    {"secrets", "secrets would be files of the host"},
    {"configs", "configs would be files of the host"},
    {"env_file", "it reads a file of the host"},
    {"extends", "it reads another file"},
    {"network_mode", "only network_mode: none is allowed"},
    {"pid", "it would share a process namespace"},
    {"ipc", "it would share an IPC namespace"},
    {"uts", "it would share the host's UTS namespace"},
    {"userns_mode", "user namespaces are remapped for every container"},
    {"privileged", "containers are not privileged"},
    {"cap_add", "containers get no capabilities"},
    {"security_opt", "containers keep the default security options"},
    {"devices", "containers see no devices but their run's GPUs"},
    {"device_cgroup_rules", "containers see no devices but their run's GPUs"},
    {"sysctls", "kernel settings are the host's"},
    {"cgroup_parent", "containers stay in the engine's control groups"},
    {"cgroup", "containers stay in the engine's control groups"},
    {"runtime", "containers use the engine's runtime"},
    {"isolation", "containers use the engine's isolation"},
    {"ports", "ports would be published on the host"},
    {"volumes_from", "it would mount another container's volumes"},
    {"external_links", "it would reach containers outside the project"},
    {"container_name", "container names are the project's"},
    {"logging", "logs go to the run's output"},
    {"deploy", "resources are the run's hardware profile"},
    {"storage_opt", "storage options are the engine's"},
    {"oom_kill_disable", "the profile's memory limit applies"},
    {"oom_score_adj", "the profile's memory limit applies"},
    {"cpuset", "the profile's CPU limit applies"},
    {"cpu_quota", "the profile's CPU limit applies"},
    {"cpu_period", "the profile's CPU limit applies"},
    {"cpu_rt_runtime", "the profile's CPU limit applies"},
    {"cpu_rt_period", "the profile's CPU limit applies"},
    {"cpu_count", "the profile's CPU limit applies"},
    {"cpu_percent", "the profile's CPU limit applies"},
    {"blkio_config", "block I/O settings are the engine's"},
    {"credential_spec", "not supported here"},
    {NULL, NULL},
};

/* The service keys a user may write (the limits among them are replaced by the profile's). */
static const char *const service_keys[] = {
    "image",
    "command",
    "entrypoint",
    "environment",
    "working_dir",
    "depends_on",
    "healthcheck",
    "volumes",
    "user",
    "labels",
    "restart",
    "stop_grace_period",
    "stop_signal",
    "tmpfs",
    "shm_size",
    "networks",
    "expose",
    "hostname",
    "domainname",
    "init",
    "tty",
    "stdin_open",
    "read_only",
    "cap_drop",
    "ulimits",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "mac_address",
    "group_add",
    "links",
    "mem_limit",
    "memswap_limit",
    "mem_reservation",
    "cpus",
    "cpu_shares",
    "pids_limit",
    "scale",
    "profiles",
    "platform",
    "network_mode",
    "privileged",
    NULL,
};

static const struct refusal top_refused[] = {
    {"secrets", "secrets would be files of the host"},
    {"configs", "configs would be files of the host"},
    {NULL, NULL},
};

static int listed(const char *const *list, const char *key)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], key) == 0)
            return 1;
    return 0;
}

static const char *refused(const struct refusal *r, const char *key)
{
    for (; r->key; r++)
        if (strcmp(r->key, key) == 0)
            return r->why;
    return NULL;
}

/* Whether a service's volume (short "SOURCE:TARGET[:MODE]" or long form) is a named volume
 * of the file, an anonymous one or a tmpfs: not a path of the host. */
static int volume_ok(json_t *v, json_t *named)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v), *colon = strchr(s, ':');
        char src[256];

        if (!colon)
            return s[0] == '/'; /* an anonymous volume at that path */
        if ((size_t)(colon - s) >= sizeof(src))
            return 0;
        memcpy(src, s, (size_t)(colon - s));
        src[colon - s] = '\0';
        return json_object_get(named, src) != NULL;
    }
    if (json_is_object(v)) {
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *src = json_string_value(json_object_get(v, "source"));

        if (type && strcmp(type, "tmpfs") == 0)
            return !src;
        if (type && strcmp(type, "volume") != 0)
            return 0;
        return !src || json_object_get(named, src) != NULL;
    }
    return 0;
}

/* Top-level volumes and networks: only local volumes and bridge networks of the project. */
static int resource_check(json_t *all, const char *kind, const char *driver, char *why, size_t n)
{
    const char *name, *k;
    json_t *v, *opt;

    json_object_foreach(all, name, v)
    {
        if (json_is_null(v))
            continue;
        if (!json_is_object(v)) {
            snprintf(why, n, "'%s.%.100s' must be a mapping", kind, name);
            return LY_EINVAL;
        }
        json_object_foreach(v, k, opt)
        {
            if (strcmp(k, "labels") == 0 || strcmp(k, "internal") == 0 ||
                (strcmp(k, "driver") == 0 && json_is_string(opt) &&
                 strcmp(json_string_value(opt), driver) == 0))
                continue;
            snprintf(why, n,
                     "'%s.%.100s.%.100s' is not allowed on this server (only %s %s of the "
                     "project itself: no external, named, driver_opts or ipam)",
                     kind, name, k, driver, kind);
            return LY_EINVAL;
        }
    }
    return 0;
}

static int labels_check(json_t *labels, const char *where, char *why, size_t n)
{
    const char *k;
    json_t *v;
    size_t i;

    json_object_foreach(labels, k, v)
    {
        if (strncmp(k, "lyceumd.", 8) == 0 || strncmp(k, "com.docker.compose.", 19) == 0)
            goto bad;
    }
    json_array_foreach(labels, i, v)
    {
        k = json_string_value(v);
        if (k && (strncmp(k, "lyceumd.", 8) == 0 || strncmp(k, "com.docker.compose.", 19) == 0))
            goto bad;
    }
    return 0;
bad:
    snprintf(why, n,
             "'%s.labels' is not allowed on this server with lyceumd's or Compose's own "
             "labels",
             where);
    return LY_EINVAL;
}

static int service_check(const char *name, json_t *svc, json_t *named, char *why, size_t n)
{
    char where[128];
    const char *k, *r;
    json_t *v, *x;
    size_t i;

    if (!json_is_object(svc)) {
        snprintf(why, n, "'services.%.100s' must be a mapping", name);
        return LY_EINVAL;
    }
    json_object_foreach(svc, k, v)
    {
        if (strncmp(k, "x-", 2) == 0)
            continue;
        if (strcmp(k, "network_mode") == 0 && json_is_string(v) &&
            strcmp(json_string_value(v), "none") == 0)
            continue;
        if (strcmp(k, "privileged") == 0 && json_is_false(v))
            continue;
        r = refused(service_refused, k);
        if (r || !listed(service_keys, k)) {
            snprintf(why, n, "'services.%.100s.%.60s' is not allowed on this server (%s)", name, k,
                     r ? r : "not among the keys it runs");
            return LY_EINVAL;
        }
    }
    if (!json_is_string(json_object_get(svc, "image"))) {
        snprintf(why, n, "'services.%.100s' needs an image (images are not built here)", name);
        return LY_EINVAL;
    }
    json_array_foreach(json_object_get(svc, "volumes"), i, v)
    {
        if (!volume_ok(v, named)) {
            snprintf(why, n,
                     "'services.%.100s.volumes' is not allowed on this server with a path of the "
                     "host (only named volumes of the file, anonymous volumes and tmpfs)",
                     name);
            return LY_EINVAL;
        }
    }
    /* Networks of the project only, by name, with aliases. */
    x = json_object_get(svc, "networks");
    json_object_foreach(x, k, v)
    {
        const char *k2;
        json_t *v2;

        json_object_foreach(v, k2, v2)
        {
            if (strcmp(k2, "aliases") != 0) {
                snprintf(why, n,
                         "'services.%.100s.networks.%.60s.%.60s' is not allowed on this "
                         "server (aliases only)",
                         name, k, k2);
                return LY_EINVAL;
            }
        }
    }
    snprintf(where, sizeof(where), "services.%.100s", name);
    return labels_check(json_object_get(svc, "labels"), where, why, n);
}

/* Checks the normalised file against the allowlist: 0, or LY_EINVAL with why naming the key. */
static int allowlist(json_t *doc, char *why, size_t n)
{
    json_t *services = json_object_get(doc, "services"), *named, *v;
    const char *k, *r;
    int err;

    if (!json_is_object(doc) || !json_is_object(services) || !json_object_size(services)) {
        snprintf(why, n, "the file has no services");
        return LY_EINVAL;
    }
    json_object_foreach(doc, k, v)
    {
        if (strcmp(k, "version") == 0 || strcmp(k, "services") == 0 || strcmp(k, "volumes") == 0 ||
            strcmp(k, "networks") == 0 || strncmp(k, "x-", 2) == 0)
            continue;
        r = refused(top_refused, k);
        snprintf(why, n, "'%.60s' is not allowed on this server (%s)", k,
                 r ? r : "not among the keys it runs");
        return LY_EINVAL;
    }
    named = json_object_get(doc, "volumes");
    err = resource_check(named, "volumes", "local", why, n);
    if (!err)
        err = resource_check(json_object_get(doc, "networks"), "networks", "bridge", why, n);
    json_object_foreach(services, k, v)
    {
        if (!err)
            err = service_check(k, v, named, why, n);
    }
    return err;
}

/* ---- YAML ---- */

/* The node count of node with its aliases expanded (memo per node, -2 while being counted: a
 * cycle), capped at NODES_MAX + 1. */
static long expanded(yaml_document_t *doc, int id, long *memo)
{
    yaml_node_t *node = yaml_document_get_node(doc, id);
    long total = 1;

    if (!node)
        return 1;
    if (memo[id] == -2)
        return NODES_MAX + 1;
    if (memo[id] >= 0)
        return memo[id];
    memo[id] = -2;
    if (node->type == YAML_SEQUENCE_NODE)
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             it < node->data.sequence.items.top && total <= NODES_MAX; it++)
            total += expanded(doc, *it, memo);
    else if (node->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
             p < node->data.mapping.pairs.top && total <= NODES_MAX; p++)
            total += expanded(doc, p->key, memo) + expanded(doc, p->value, memo);
    memo[id] = total > NODES_MAX ? NODES_MAX + 1 : total;
    return memo[id];
}

static const char *scalar(yaml_node_t *node)
{
    return node && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

/* Loads the first document of text: 0, or LY_EBADREQ with why. */
static int yaml_load(const char *text, size_t len, yaml_document_t *doc, char *why, size_t n)
{
    yaml_parser_t p;
    int ok;

    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    ok = yaml_parser_load(&p, doc);
    if (!ok)
        snprintf(why, n, "not valid YAML: %.200s (line %zu)", p.problem ? p.problem : "?",
                 p.problem_mark.line + 1);
    yaml_parser_delete(&p);
    if (ok && !yaml_document_get_root_node(doc)) {
        yaml_document_delete(doc);
        snprintf(why, n, "the file is empty");
        return LY_EBADREQ;
    }
    return ok ? 0 : LY_EBADREQ;
}

/* The raw file, before docker-compose reads it: no key that makes `config` read a file of
 * the host (anywhere: merges and aliases included, as every node is looked at), and not too
 * large once its aliases are expanded. 0, LY_EINVAL or LY_EBADREQ with why. */
static int prescan(const char *yaml, char *why, size_t n)
{
    yaml_document_t doc;
    long *memo;
    size_t count;
    int err = yaml_load(yaml, strlen(yaml), &doc, why, n);

    if (err)
        return err;
    count = (size_t)(doc.nodes.top - doc.nodes.start);
    for (yaml_node_t *node = doc.nodes.start; node < doc.nodes.top && !err; node++) {
        if (node->type != YAML_MAPPING_NODE)
            continue;
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
             p < node->data.mapping.pairs.top && !err; p++) {
            const char *k = scalar(yaml_document_get_node(&doc, p->key));

            if (k && (strcmp(k, "env_file") == 0 || strcmp(k, "extends") == 0)) {
                snprintf(why, n, "'%s' is not allowed on this server (%s)", k,
                         refused(service_refused, k));
                err = LY_EINVAL;
            }
        }
    }
    memo = xmalloc((count + 2) * sizeof(*memo));
    for (size_t i = 0; i < count + 2; i++)
        memo[i] = -1;
    if (!err && expanded(&doc, 1, memo) > NODES_MAX) {
        snprintf(why, n, "the file is too large once its aliases are expanded");
        err = LY_EINVAL;
    }
    free(memo);
    yaml_document_delete(&doc);
    return err;
}

/* A plain scalar as JSON (YAML 1.1's null, booleans and numbers as PyYAML writes them), a
 * quoted one as a string. */
static json_t *scalar_json(yaml_node_t *node)
{
    const char *s = (const char *)node->data.scalar.value;
    char *end;

    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_string(s);
    if (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0)
        return json_null();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return json_true();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return json_false();
    if (strspn(s, "-+0123456789") == strlen(s) && strlen(s) < 19) {
        long long v = strtoll(s, &end, 10);

        if (!*end)
            return json_integer(v);
    }
    if (strspn(s, "-+0123456789.eE") == strlen(s) && strchr(s, '.')) {
        double v = strtod(s, &end);

        if (!*end)
            return json_real(v);
    }
    return json_string(s);
}

static json_t *node_json(yaml_document_t *doc, int id, int depth)
{
    yaml_node_t *node = yaml_document_get_node(doc, id);
    json_t *o;

    if (!node || depth > 64)
        return json_null();
    if (node->type == YAML_SCALAR_NODE)
        return scalar_json(node);
    if (node->type == YAML_SEQUENCE_NODE) {
        o = json_array();
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             it < node->data.sequence.items.top; it++)
            json_array_append_new(o, node_json(doc, *it, depth + 1));
        return o;
    }
    o = json_object();
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const char *k = scalar(yaml_document_get_node(doc, p->key));

        if (k)
            json_object_set_new(o, k, node_json(doc, p->value, depth + 1));
    }
    return o;
}

/* ---- docker-compose ---- */

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

/* Where a child's output goes: into the run (to_run), else stdout into out (up to out_n - 1
 * bytes, then the child is killed: it said too much) and stderr into err (the first err_n - 1
 * bytes). */
struct sink {
    int to_run;
    char *out, *err;
    size_t out_n, err_n, out_k, err_k;
    int64_t deadline_us; /* 0: none; then the child's group is killed */
};

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
static int drain(struct drun *d, struct child *c, struct sink *s)
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
static void compose_env(const char *home, char *envp[6])
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

/* docker-compose's error, less its "ERROR: " and the scratch directory's path, into why. */
static void compose_error(char *text, const char *scratch, char *why, size_t n)
{
    char *p = text;

    if (strncmp(p, "ERROR: ", 7) == 0)
        p += 7;
    for (char *f; (f = strstr(p, scratch));)
        memmove(f, f + strlen(scratch) + 1, strlen(f + strlen(scratch) + 1) + 1);
    for (size_t k = strlen(p); k && (p[k - 1] == '\n' || p[k - 1] == ' '); k--)
        p[k - 1] = '\0';
    snprintf(why, n, "%.400s", *p ? p : "docker-compose config failed");
}

/* Normalises yaml (in a scratch directory under dir, removed again) and checks it: 0 with
 * the file in *out (the caller's), or an error of docker_compose_check's. */
static int normalise(const char *yaml, const char *dir, json_t **out, char *why, size_t n)
{
    char scratch[1100], file[1200], *envp[6], *text, err[2048] = "";
    char *args[] = {"-f", file, "config", NULL};
    struct sink s = {0};
    struct child c;
    yaml_document_t doc;
    int rc;

    *out = NULL;
    rc = prescan(yaml, why, n);
    if (rc)
        return rc;
    snprintf(scratch, sizeof(scratch), "%.1000s/compose-XXXXXX", dir);
    if (!mkdtemp(scratch)) {
        snprintf(why, n, "cannot check the compose file: %s", strerror(errno));
        return LY_EIO;
    }
    snprintf(file, sizeof(file), "%s/docker-compose.yml", scratch);
    compose_env(scratch, envp);
    text = xmalloc(CONFIG_OUT_MAX);
    text[0] = '\0';
    s.out = text;
    s.out_n = CONFIG_OUT_MAX;
    s.err = err;
    s.err_n = sizeof(err);
    s.deadline_us = now_mono_us() + (int64_t)CONFIG_TIMEOUT_MS * 1000;
    if (write_file(file, yaml, strlen(yaml)) != 0) {
        snprintf(why, n, "cannot check the compose file: %s", strerror(errno));
        rc = LY_EIO;
    } else if (spawn(scratch, args, envp, &c) != 0) {
        snprintf(why, n, "cannot start docker-compose: %s", strerror(errno));
        rc = LY_EIO;
    } else {
        rc = drain(NULL, &c, &s);
        if (rc == 127) {
            snprintf(why, n, "docker-compose is not installed on this server");
            rc = LY_EUNAVAIL;
        } else if (rc != 0) {
            compose_error(err, scratch, why, n);
            rc = LY_EBADREQ;
        } else if ((rc = yaml_load(text, s.out_k, &doc, why, n)) == 0) {
            *out = node_json(&doc, 1, 0);
            yaml_document_delete(&doc);
            rc = allowlist(*out, why, n);
        }
    }
    unlink(file);
    rmdir(scratch);
    free(text);
    free(envp[0]);
    free(envp[1]);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int docker_compose_check(const char *yaml, const char *dir, char *why, size_t n)
{
    json_t *doc;
    int rc = normalise(yaml, dir, &doc, why, n);

    json_decref(doc);
    return rc;
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
    docker_secrets_drop(d);
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

    compose_env(l->dir, envp);
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
    err = normalise(yaml, l->dir, &doc, why, sizeof(why));
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
    if (!text || write_file(d->file, text, strlen(text)) != 0) {
        snprintf(why, sizeof(why), "cannot write the compose file");
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
    code = drain(d, &c, &to_run);
    if (code == 127)
        snprintf(why, sizeof(why), "docker-compose is not installed on this server");
    if (docker_wanted(d) == SIGKILL)
        down[8] = "0";
    if (spawn(l->dir, down, envp, &c) == 0)
        drain(NULL, &c, &none);
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
    compose_env(d->l->dir, envp);
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
        drain(d, &c, &none);
    free(envp[0]);
    free(envp[1]);
}
