/*
 * The port proxy: a request whose Host is "<execution_id>-<port>.<port_domain>" (config
 * port_domain; any ":port" after it) goes to that port of the run's container, as
 * `lyceum notebook launch` expects of its Jupyter URL; WebSockets included (http/proxy.c).
 * Every other request is served as before: api_dispatch() asks api_ports_request() first.
 *
 * Access: the execution id is the capability, as for streaming URLs: a v4 UUID of 122 bits
 * from getrandom(2) (core/util.c uuid_v4), listed to no other org, so a browser opens the URL
 * without a key. A request that carries lyceumd credentials (Authorization: Bearer) must be of
 * the run's org (another org's key gets the 404 of an unknown run) and those credentials are
 * never passed on: the tenant's app does not see its user's key. Other Authorization schemes
 * (Jupyter's "token ...", Basic) are the app's own and go through.
 *
 * Isolation: containers run with no network of the host's (docker_network "none" by
 * default), and nothing of theirs is published. lyceumd, as root, makes its socket inside the
 * container's network namespace (exec_docker_netns: the container's init's /proc/PID/ns/net,
 * checked against the engine before and after it is opened, never lyceumd's own) and connects
 * to 127.0.0.1:<port> there: the container's loopback, not the host's. Those namespaces are
 * cached for CACHE_TTL_S per run, so that a page's many requests do not each ask the engine;
 * the run's status is read from the store on every request.
 *
 * Bounds: at most PORTS_PER_RUN exchanges (requests being answered and open WebSockets) per run
 * at once; each exchange's own bounds are http/proxy.h's.
 */
#include "api/api.h"
#include "auth/identity.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"
#include "http/proxy.h"
#include "runs/query.h"
#include "runs/runs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define PORTS_PER_RUN 64  /* exchanges open at once through one run's ports */
#define CACHE_SIZE    256 /* runs whose namespace is kept */
#define CACHE_TTL_S   30  /* a namespace is asked of the engine again after this */

/* A run whose ports were reached lately: its container's network namespace, and how many
 * exchanges are open to it (an entry with some is never evicted). Guarded by mu. */
struct port_run {
    char id[40];
    int netns; /* -1: none (the slot is free or being refreshed) */
    int64_t at_us;
    unsigned open;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct port_run runs[CACHE_SIZE];
static int runs_ready;

/* One exchange, for the proxy's callbacks. */
struct xchg {
    struct port_run *run;
    char method[16];
    int64_t start_us;
};

static void cache_init(void)
{
    if (runs_ready)
        return;
    for (int i = 0; i < CACHE_SIZE; i++)
        runs[i].netns = -1;
    runs_ready = 1;
}

/* With mu held: the entry of id, or a slot for it (free, or the oldest idle one), or NULL when
 * every slot has exchanges open. */
static struct port_run *cache_slot(const char *id)
{
    struct port_run *free_slot = NULL;

    cache_init();
    for (int i = 0; i < CACHE_SIZE; i++) {
        struct port_run *e = &runs[i];

        if (e->id[0] && strcmp(e->id, id) == 0)
            return e;
        if (!e->open &&
            (!free_slot || !e->id[0] || (free_slot->id[0] && e->at_us < free_slot->at_us)))
            free_slot = e;
    }
    if (!free_slot)
        return NULL;
    if (free_slot->netns >= 0)
        close(free_slot->netns);
    memset(free_slot, 0, sizeof(*free_slot));
    free_slot->netns = -1;
    snprintf(free_slot->id, sizeof(free_slot->id), "%s", id);
    return free_slot;
}

/* Forgets id's namespace (its run is not running); its open exchanges keep their sockets. */
static void cache_forget(const char *id)
{
    pthread_mutex_lock(&mu);
    cache_init();
    for (int i = 0; i < CACHE_SIZE; i++)
        if (runs[i].id[0] && strcmp(runs[i].id, id) == 0) {
            if (runs[i].netns >= 0)
                close(runs[i].netns);
            runs[i].netns = -1;
            if (!runs[i].open)
                runs[i].id[0] = '\0';
        }
    pthread_mutex_unlock(&mu);
}

/* A socket to 127.0.0.1:port inside run id's container, connecting (non-blocking), and the
 * run's entry with one more exchange counted (*run). Returns the socket or a LY_E* code
 * recorded on req. */
static int container_socket(struct req *req, const char *id, const char *org_id, int port,
                            struct port_run **run)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct port_run *e;
    char why[256];
    int netns = -1, fd, err;

    pthread_mutex_lock(&mu);
    e = cache_slot(id);
    if (!e) {
        pthread_mutex_unlock(&mu);
        req_add_header(req, "Retry-After", "5");
        return req_fail(req, LY_EUNAVAIL, "Too many runs' ports are open at once; retry shortly");
    }
    if (e->open >= PORTS_PER_RUN) {
        pthread_mutex_unlock(&mu);
        req_add_header(req, "Retry-After", "5");
        return req_fail(req, LY_EUNAVAIL,
                        "Run %s has %d connections to its ports open already (the most at once)",
                        id, PORTS_PER_RUN);
    }
    e->open++; /* held: the slot is not evicted while the engine is asked */
    if (e->netns >= 0 && now_mono_us() - e->at_us < (int64_t)CACHE_TTL_S * 1000000)
        netns = fcntl(e->netns, F_DUPFD_CLOEXEC, 0);
    pthread_mutex_unlock(&mu);
    if (netns < 0) {
        /* Engine calls: not under the lock. */
        netns = exec_docker_netns(id, org_id, why, sizeof(why));
        if (netns < 0) {
            err = netns == LY_ENOTFOUND ? LY_EGATEWAY : netns;
            err = req_fail(req, err, "Run %s: %s", id, why);
            goto fail;
        }
        pthread_mutex_lock(&mu);
        if (e->netns >= 0)
            close(e->netns);
        e->netns = fcntl(netns, F_DUPFD_CLOEXEC, 0);
        e->at_us = now_mono_us();
        pthread_mutex_unlock(&mu);
    }
    fd = exec_netns_socket(netns, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    close(netns);
    if (fd < 0) {
        err = req_fail(req, LY_EIO, "Cannot make a socket in run %s's container: %s", id,
                       strerror(errno));
        goto fail;
    }
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        int e2 = errno;

        close(fd);
        if (e2 == ECONNREFUSED)
            err = req_fail(req, LY_EGATEWAY, "Nothing listens on port %d in run %s's container",
                           port, id);
        else
            err = req_fail(req, LY_EGATEWAY, "Cannot connect to port %d in run %s's container: %s",
                           port, id, strerror(e2));
        goto fail;
    }
    *run = e;
    return fd;
fail:
    pthread_mutex_lock(&mu);
    e->open--;
    pthread_mutex_unlock(&mu);
    return err;
}

static void xchg_answered(void *arg, int status)
{
    struct xchg *x = arg;

    prom_request(NULL, NULL, "ports", x->method, status, now_mono_us() - x->start_us);
}

static void xchg_done(void *arg)
{
    struct xchg *x = arg;

    pthread_mutex_lock(&mu);
    x->run->open--;
    pthread_mutex_unlock(&mu);
    free(x);
}

/* Parses host (the Host header, lower or upper case) as "<id>-<port>.<domain>[:port]". 1 when
 * it is under the port domain (id and port then hold what it names, port 0 when it names
 * none that is valid), else 0. */
static int parse_host(const char *host, char id[40], int *port)
{
    const char *domain = runs_cfg ? runs_cfg->port_domain : "";
    size_t dn = strlen(domain), hn;
    const char *colon, *dash;
    char *end;
    long p;

    *port = 0;
    id[0] = '\0';
    if (!dn || !host)
        return 0;
    colon = strchr(host, ':');
    hn = colon ? (size_t)(colon - host) : strlen(host);
    if (hn && host[hn - 1] == '.')
        hn--; /* "name.domain." is the same name */
    if (hn <= dn + 1 || host[hn - dn - 1] != '.' || strncasecmp(host + hn - dn, domain, dn) != 0)
        return 0;
    hn -= dn + 1; /* the label before the domain */
    dash = memrchr(host, '-', hn);
    if (!dash || dash - host != 36 || strchr(host, '.') < host + hn)
        return 1;
    for (int i = 0; i < 36; i++) {
        char c = host[i];

        if (i == 8 || i == 13 || i == 18 || i == 23
                ? c != '-'
                : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 1;
        id[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    }
    id[36] = '\0';
    if (!(dash[1] >= '0' && dash[1] <= '9'))
        return 1;
    p = strtol(dash + 1, &end, 10);
    if (end != host + hn || p < 1 || p > 65535 || hn - 37 > 5)
        return 1;
    *port = (int)p;
    return 1;
}

int api_ports_request(struct req *req)
{
    char id[40];
    int port;

    return parse_host(req_header(req, "Host"), id, &port);
}

/* The caller's credentials, when it sent lyceumd's (Authorization: Bearer), must be of the
 * run's org: 0, or a LY_E* code recorded on req. *bearer says whether it sent them. */
static int check_caller(struct req *req, const char *run_org, int *bearer)
{
    const char *auth = req_header(req, "Authorization"), *why = NULL;
    struct caller c = {0};
    int err;

    *bearer = auth && strncasecmp(auth, "Bearer ", 7) == 0;
    if (!*bearer)
        return 0;
    err = identity_authenticate(&req->arena, auth, &c, &why);
    if (err) {
        if (err == LY_EUNAUTH)
            req_add_header(req, "WWW-Authenticate", "Bearer");
        return req_fail(req, err, "%s", why ? why : err_str(err));
    }
    if (c.via == VIA_ORG_KEY)
        err = strcmp(c.org_id, run_org) == 0 ? 0 : LY_ENOTFOUND;
    else
        err = runq_member(run_org, c.user_id);
    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "Execution not found");
    return err ? req_fail(req, err, "Cannot check the caller's organization") : 0;
}

static int serve(struct req *req)
{
    static const char *const drop_bearer[] = {"Authorization", "X-Org-Slug", NULL};
    static const char *const drop[] = {"X-Org-Slug", NULL};
    const char *status, *org;
    struct port_run *run = NULL;
    struct xchg *x;
    struct proxy_opts o = {0};
    struct run_row row;
    char id[40], what[120];
    int port, bearer = 0, err = 0, fd;

    parse_host(req_header(req, "Host"), id, &port);
    if (!id[0] || !port) {
        err = req_fail(req, LY_ENOTFOUND,
                       "No run port at this host name: a port's host is "
                       "<execution_id>-<port>.%s, with a port from 1 to 65535",
                       runs_cfg->port_domain);
        goto out;
    }
    err = runq_get_any(&req->arena, id, &row);
    if (err == LY_ENOTFOUND || (!err && row.deleted_at)) {
        err = req_fail(req, LY_ENOTFOUND, "Execution not found");
        goto out;
    }
    if (err)
        goto out;
    org = row.org_id;
    err = check_caller(req, org, &bearer);
    if (err)
        goto out;
    status = row.status;
    if (row.kind != RUN_IMAGE) {
        err = req_fail(req, LY_ENOTFOUND,
                       "Run %s is not a Docker image run: ports are served for those only", id);
        goto out;
    }
    if (run_is_terminal(status)) {
        cache_forget(id);
        err =
            req_fail(req, LY_ENOTFOUND, "Run %s has ended (%s): its ports are closed", id, status);
        goto out;
    }
    if (strcmp(status, "running") != 0) {
        req_add_header(req, "Retry-After", "2");
        err = req_fail(req, LY_EUNAVAIL, "Run %s is %s: its ports open once it runs", id, status);
        goto out;
    }
    fd = container_socket(req, id, org, port, &run);
    if (fd < 0) {
        err = fd;
        goto out;
    }
    x = xcalloc(1, sizeof(*x));
    x->run = run;
    snprintf(x->method, sizeof(x->method), "%s", req->method);
    x->start_us = req->start_us;
    snprintf(what, sizeof(what), "port %d in run %s's container", port, id);
    o.drop = bearer ? drop_bearer : drop;
    o.what = what;
    o.answered = xchg_answered;
    o.done = xchg_done;
    o.arg = x;
    err = proxy_start(req, fd, &o);
out:
    return err;
}

void api_ports_serve(struct req *req)
{
    int err = serve(req);

    if (err < 0) {
        req_set_error(req, err);
        prom_request(NULL, NULL, "ports", req->method, req->status, now_mono_us() - req->start_us);
    }
}
