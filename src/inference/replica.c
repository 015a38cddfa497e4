/*
 * A replica's life (see inference_int.h): its model server, its slot of the profile, its charges.
 *
 * A replica is a model server started from the profile's command template (the config's
 * inference.commands, with {model_path}, {model}, {port}, {deployment_id}, {gpu_count} and
 * {vllm_args} filled in) as an executor service (exec.h): in the sandbox and the control
 * groups that local runs get, with the profile's vCPUs, memory and process limits, its own
 * process group, killed with lyceumd. Under the sandbox it runs as the deployment's uid
 * (its replicas share one, and their home) and listens on a port of its own network
 * namespace's loopback, which only lyceumd reaches (replica_curl); ports are still unique
 * among live replicas so that curl's pooled connections never mix them up. It answers only
 * requests carrying its API key ({api_key}: random, per replica). It writes its output to
 * DATA/inference/<deployment>/<replica>.log, and has DATA/inference/<deployment>/home as HOME
 * and working directory (shared by the deployment's replicas, so that one download of the
 * model serves them all; removed when the deployment ends). The model file it serves is shown
 * to it read-only even where it lies inside the hidden data directory (it must be readable by
 * others: the replica's uid is no one's). Its environment gets HF_TOKEN (the deployment's
 * token, never on its command line) and CUDA_VISIBLE_DEVICES (the GPUs of its slot).
 *
 * The model directory (`lyceumd model add`) is here too: DATA/models/<id> are symbolic links
 * to the operator's model files.
 */
#include "billing/billing.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/fbuf.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"
#include "inference/inference_int.h"
#include "inference/inference.h"
#include "inference/replica.h"
#include "runs/profiles.h"
#include "runs/sched.h"
#include "store/inference.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARGS_MAX 128

static const char *command_for(const char *profile)
{
    json_t *v = json_object_get(inf_set.commands, profile);

    if (!v)
        v = json_object_get(inf_set.commands, strncmp(profile, "gpu", 3) == 0 ? "gpu" : "cpu");
    return json_string_value(v);
}

/* ---- the model directory ---- */

static void model_link(const char *id, char *out, size_t n)
{
    char name[256];
    size_t i;

    for (i = 0; id[i] && i + 1 < sizeof(name); i++)
        name[i] = id[i] == '/' ? '-' : id[i];
    name[i] = 0;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        name[0] = '_';
    snprintf(out, n, "%s/models/%s", inf_set.data_dir[0] ? inf_set.data_dir : ".", name);
}

int inference_model_add(const char *data_dir, const char *id, const char *path)
{
    char dir[1100], link[1400], abs[PATH_MAX];

    if (!*id || strlen(id) > 200 || strstr(id, "..")) {
        fprintf(stderr, "lyceumd: bad model id '%s'\n", id);
        return LY_EINVAL;
    }
    if (!realpath(path, abs)) {
        fprintf(stderr, "lyceumd: %s: %s\n", path, strerror(errno));
        return LY_EIO;
    }
    snprintf(inf_set.data_dir, sizeof(inf_set.data_dir), "%s", data_dir);
    snprintf(dir, sizeof(dir), "%s/models", data_dir);
    mkdir(dir, 0755);
    model_link(id, link, sizeof(link));
    unlink(link);
    if (symlink(abs, link)) {
        fprintf(stderr, "lyceumd: %s: %s\n", link, strerror(errno));
        return LY_EIO;
    }
    return 0;
}

/* ---- the model server ---- */

static mode_t st_mode_of(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_mode : 0;
}

/* Under the sandbox: the next port not used by a live replica (each has its own loopback). */
static int next_port(void)
{
    static int last = 20000;

    for (int i = 0; i < 40000; i++) {
        last = last >= 59999 ? 20000 : last + 1;
        if (!replica_port_in_use(last))
            return last;
    }
    return -1;
}

/* Without the sandbox: a port free on the host's loopback now. */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Writes tok with every {name} of vars replaced into out. */
static void subst(char *out, size_t n, const char *tok, json_t *vars)
{
    struct fbuf b;

    fbuf_init(&b, out, n);
    while (*tok && !b.cut) {
        const char *end = *tok == '{' ? strchr(tok, '}') : NULL;

        if (end) {
            char name[64];
            json_t *v;

            snprintf(name, sizeof(name), "%.*s", (int)(end - tok - 1), tok + 1);
            v = json_object_get(vars, name);
            if (json_is_string(v)) {
                fbuf_printf(&b, "%s", json_string_value(v));
                tok = end + 1;
                continue;
            }
        }
        fbuf_add(&b, tok++, 1);
    }
}

/* The template of d's profile with its placeholders filled, into argv (malloc'd strings,
 * NULL-ended); the number of arguments. */
static int build_argv(struct deployment *d, const char *tpl, json_t *vars, char **argv)
{
    char buf[4096], *copy = xstrdup(tpl), *save = NULL;
    int argc = 0;

    for (char *tok = strtok_r(copy, " \t", &save); tok && argc < 100;
         tok = strtok_r(NULL, " \t", &save)) {
        if (strcmp(tok, "{vllm_args}") == 0) {
            size_t i;
            json_t *a;

            json_array_foreach(d->vllm_args, i, a)
            {
                if (argc >= ARGS_MAX - 8)
                    break;
                snprintf(buf, sizeof(buf), "--%s", json_string_value(a));
                argv[argc++] = xstrdup(buf);
            }
            continue;
        }
        subst(buf, sizeof(buf), tok, vars);
        argv[argc++] = xstrdup(buf);
    }
    argv[argc] = NULL;
    free(copy);
    return argc;
}

/* Starts r's model server. 0, or -1 with why set (a configuration problem: retrying will
 * not help). */
static int replica_spawn(struct deployment *d, struct replica *r, char *why, size_t wn)
{
    const char *tpl = command_for(d->profile);
    const struct profile *p = profile_find(d->profile);
    char link[1400], path[PATH_MAX], dir[1200], home[1300], logp[1300], port[16], gpus[16];
    char msg[300] = "the command is empty", *argv[ARGS_MAX], *env[3] = {NULL};
    const char *ro[2] = {path, NULL};
    struct service_spec spec = {0};
    json_t *vars = json_object();
    int argc, have_path, nenv = 0;

    model_link(d->hf_model_id, link, sizeof(link));
    have_path = realpath(link, path) != NULL;
    if (strstr(tpl, "{model_path}") && !have_path) {
        snprintf(why, wn,
                 "model '%.180s' is not in this server's model directory (the operator "
                 "adds it with: lyceumd model add ID PATH)",
                 d->hf_model_id);
        json_decref(vars);
        return -1;
    }
    if (have_path && !(st_mode_of(path) & S_IROTH)) {
        snprintf(why, wn,
                 "the model file of '%.180s' is not readable by others (chmod o+r): replicas "
                 "run as an unprivileged user of their own",
                 d->hf_model_id);
        json_decref(vars);
        return -1;
    }
    if (!d->uid)
        d->uid = exec_uid_take();
    r->port = d->uid ? next_port() : free_port();
    random_base62(r->key, 40);
    snprintf(port, sizeof(port), "%d", r->port);
    json_object_set_new(vars, "api_key", json_string(r->key));
    snprintf(gpus, sizeof(gpus), "%d", d->gpu_count > 0 ? d->gpu_count : 1);
    json_object_set_new(vars, "port", json_string(port));
    json_object_set_new(vars, "model_path", json_string(have_path ? path : ""));
    json_object_set_new(vars, "model", json_string(have_path ? path : d->hf_model_id));
    json_object_set_new(vars, "deployment_id", json_string(d->id));
    json_object_set_new(vars, "gpu_count", json_string(gpus));
    argc = build_argv(d, tpl, vars, argv);
    json_decref(vars);
    if (d->hf_token) {
        env[nenv] = xmalloc(strlen(d->hf_token) + 10);
        sprintf(env[nenv++], "HF_TOKEN=%s", d->hf_token);
    }
    if (r->has_slot) {
        env[nenv] = xmalloc(strlen(r->gpus) + 22);
        sprintf(env[nenv++], "CUDA_VISIBLE_DEVICES=%s", r->gpus);
    }
    snprintf(dir, sizeof(dir), "%s/inference", inf_set.data_dir);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/inference/%s", inf_set.data_dir, d->id);
    mkdir(dir, 0700);
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(logp, sizeof(logp), "%s/%s.log", dir, r->id);
    spec.name = r->id;
    spec.argv = argv;
    spec.env = env;
    spec.home = home;
    spec.log_path = logp;
    spec.ro_paths = have_path ? ro : NULL;
    if (p) {
        spec.cpus = p->vcpus;
        spec.mem_bytes = p->mem_bytes;
        spec.pids_max = p->pids_max;
    }
    spec.gpus = r->gpus[0] != '\0';
    spec.network = inf_set.network;
    spec.uid = d->uid;
    r->svc = argc ? exec_service_start(&spec, msg, sizeof(msg)) : NULL;
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    for (int i = 0; i < nenv; i++) {
        explicit_bzero(env[i], strlen(env[i]));
        free(env[i]);
    }
    if (!r->svc) {
        snprintf(why, wn, "cannot start the model server: %s", msg);
        return -1;
    }
    r->pid = exec_service_pid(r->svc);
    r->netns = exec_service_netns(r->svc);
    return 0;
}

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    int netns = *(const int *)arg;

    (void)purpose;
    if (netns < 0)
        return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return exec_netns_socket(netns, a->family, a->socktype, a->protocol);
}

void replica_curl(CURL *h, const int *netns, int port, const char *key, const char *path,
                  struct curl_slist **hdr)
{
    char url[300], auth[96];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%.200s", port, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, (void *)netns);
    *hdr = curl_slist_append(*hdr, auth);
}

void replica_kill(struct replica *r, int sig)
{
    if (r->svc)
        exec_service_signal(r->svc, sig);
    if (r->state != R_KILLED) {
        r->state = R_KILLED;
        r->killed_mono = now_mono_us();
    }
}

int replica_exited(struct replica *r, int *st)
{
    if (!r->svc || waitpid(r->pid, st, WNOHANG) != r->pid)
        return 0;
    exec_service_free(r->svc);
    r->svc = NULL;
    return 1;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

void replica_home_remove(const char *dep_id)
{
    char home[1300];

    snprintf(home, sizeof(home), "%s/inference/%s/home", inf_set.data_dir, dep_id);
    if (access(home, F_OK) == 0)
        nftw(home, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* ---- slots and charges ---- */

void replica_meter(struct deployment *d, struct replica *r, int64_t now, int final)
{
    struct profile *p = profile_find(d->profile);
    int64_t price = p ? p->price_micro : 0;

    while (r->metered_until < now) {
        int64_t end = r->metered_until + meter_window_us;

        if (end > now) {
            if (!final)
                break;
            end = now;
        }
        if (db_rep_charge(r->id, d->org_id, d->id,
                          billing_charge(price, r->started_us, r->metered_until, end),
                          r->metered_until, end) < 0) {
            log_error("deployment %s: cannot charge replica %s", d->id, r->id);
            break;
        }
        r->metered_until = end;
    }
}

void replica_free(struct replica *r, const char *profile)
{
    if (r->has_slot)
        runs_slot_release(profile, r->gpus);
    exec_service_free(r->svc);
    if (r->netns >= 0)
        close(r->netns);
    explicit_bzero(r->key, sizeof(r->key));
    free(r);
}

struct replica *replica_new(struct deployment *d, char *why, size_t wn, int *full)
{
    struct replica *r = xcalloc(1, sizeof(*r));
    int err = runs_slot_take(d->profile, r->gpus);

    r->netns = -1;

    *full = err == LY_EUNAVAIL;
    if (*full) {
        free(r);
        return NULL;
    }
    r->has_slot = err == 0;
    uuid_v4(r->id);
    r->started_us = r->metered_until = now_us();
    r->spawned_mono = now_mono_us();
    if (replica_spawn(d, r, why, wn)) {
        replica_free(r, d->profile);
        return NULL;
    }
    db_rep_insert(r->id, d->id, d->org_id, d->profile, r->started_us);
    r->next = d->reps;
    d->reps = r;
    log_info("deployment %s: replica %s started (pid %d, port %d%s%s)", d->id, r->id, (int)r->pid,
             r->port, r->gpus[0] ? ", GPUs " : "", r->gpus);
    return r;
}
