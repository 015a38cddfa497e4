/*
 * What a tenant's Compose file may ask for: the checks of compose.c's runs and of the start
 * path (docker_compose_check).
 *
 * The file is normalised by `docker-compose config` (every shorthand expanded, merges and
 * anchors applied, ${...} interpolated) run with a clean environment (PATH, the engine, an
 * empty HOME) in an empty directory of its own: no tenant variable reaches docker-compose (a
 * PYTHONPATH of theirs would run their code in it). Before that, the raw file is scanned
 * (libyaml, every node, so merges and aliases included) for the keys that make `config` itself
 * read host files (env_file, extends) and for alias bombs; after it, the normalised file
 * (parsed with libyaml) must use only keys of the allowlist below: no build, secrets, configs,
 * host networking or namespaces, privileges, capabilities, devices, host paths, published
 * ports, logging drivers, container names or deploy sections. A refused key is named in the
 * answer (422).
 */
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "exec/docker.h"
#include "exec/docker_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

/* The most nodes a file may have with its aliases expanded, and the longest `config` takes. */
#define NODES_MAX         100000
#define CONFIG_TIMEOUT_MS 60000
/* The most services a file may have: each gets the profile's limits. */
#define SERVICES_MAX 32
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
    {"scale", "each service is one container with the profile's limits"},
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
        if (strcmp(k, "init") == 0 && !json_is_boolean(v)) {
            snprintf(why, n,
                     "'services.%.100s.init' is not allowed on this server but as true "
                     "or false (a path would name a program of the host)",
                     name);
            return LY_EINVAL;
        }
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
    if (json_object_size(services) > SERVICES_MAX) {
        snprintf(why, n, "'services' is not allowed on this server with more than %d services",
                 SERVICES_MAX);
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

/* ---- docker-compose config ---- */

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
int docker_compose_normalise(const char *yaml, const char *dir, json_t **out, char *why, size_t n)
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
    docker_compose_env(scratch, envp);
    text = xmalloc(CONFIG_OUT_MAX);
    text[0] = '\0';
    s.out = text;
    s.out_n = CONFIG_OUT_MAX;
    s.err = err;
    s.err_n = sizeof(err);
    s.deadline_us = now_mono_us() + (int64_t)CONFIG_TIMEOUT_MS * 1000;
    if (docker_write_file(file, yaml, strlen(yaml)) != 0) {
        snprintf(why, n, "cannot check the compose file: %s", strerror(errno));
        rc = LY_EIO;
    } else if (docker_compose_spawn(scratch, args, envp, &c) != 0) {
        snprintf(why, n, "cannot start docker-compose: %s", strerror(errno));
        rc = LY_EIO;
    } else {
        rc = docker_compose_drain(NULL, &c, &s);
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
    int rc = docker_compose_normalise(yaml, dir, &doc, why, n);

    json_decref(doc);
    return rc;
}
