/*
 * A standalone driver for the Docker executor (src/exec/docker.c) against a real engine: it
 * plays the scheduler's part (its own table of events, struct exec_events, records what the
 * executor reports) and checks image runs (output per stream, environment, exit code,
 * limits, no network, SIGTERM, SIGKILL before and after the container started, an image that
 * cannot be pulled, ECR credentials) and Compose runs (two services, an exit code, SIGKILL,
 * the file check). Needs dockerd with the image lyceumd-test/busybox:1: tests/docker/run.sh
 * starts both (scripts/dockerd.sh) and builds this with the sanitizers, with the store and
 * the secrets (a database and master key of its own under the scratch directory), where
 * images per org and the runs' registry secrets are kept.
 */
#include "core/err.h"
#include "exec/docker.h"
#include "exec/exec.h"
#include "secrets/secrets.h"
#include "storage/bucket.h"
#include "store/db.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAGE "lyceumd-test/busybox:1"

struct rec {
    struct live l;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char out[3][65536]; /* by stream: stdout, stderr, system */
    size_t n[3];
    int running, exited, code;
    char error[600];
};

static int failures, checks;
static char base[] = "/tmp/lyceumd-docker-driver-XXXXXX";

#define CHECK(cond, ...) check(!!(cond), #cond, __LINE__, __VA_ARGS__)

static void check(int ok, const char *what, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check(int ok, const char *what, int line, const char *fmt, ...)
{
    va_list ap;

    checks++;
    if (ok)
        return;
    failures++;
    fprintf(stderr, "FAIL line %d: %s: ", line, what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the scheduler's side ---- */

static void ev_output(struct live *l, int stream, const char *buf, size_t n)
{
    struct rec *r = (struct rec *)l;
    int i = stream - 1;

    if (i < 0 || i > 2) {
        CHECK(0, "stream %d", stream);
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (r->exited)
        CHECK(0, "run %s: output after live_exited", l->id);
    if (r->n[i] + n < sizeof(r->out[i])) {
        memcpy(r->out[i] + r->n[i], buf, n);
        r->n[i] += n;
        r->out[i][r->n[i]] = '\0';
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void ev_running(struct live *l)
{
    struct rec *r = (struct rec *)l;

    pthread_mutex_lock(&r->mu);
    r->running++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void ev_exited(struct live *l, int code, const char *error)
{
    struct rec *r = (struct rec *)l;

    pthread_mutex_lock(&r->mu);
    r->exited++;
    r->code = code;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* The Docker executor reports nothing else: any other event is a defect. */
static void ev_reference(struct live *l, const char *ref)
{
    CHECK(0, "run %s: a reference (%s) from the Docker executor", l->id, ref);
}

static void ev_queued(struct live *l)
{
    CHECK(0, "run %s: queued by the Docker executor", l->id);
}

static void ev_waiting(struct live *l, const char *reason)
{
    CHECK(0, "run %s: waiting (%s) in the Docker executor", l->id, reason);
}

static void ev_pid(struct live *l, int64_t pid, int64_t start)
{
    (void)start;
    CHECK(0, "run %s: a pid (%lld) from the Docker executor", l->id, (long long)pid);
}

static void ev_install_rc(struct live *l, int rc)
{
    CHECK(0, "run %s: an install (rc %d) in the Docker executor", l->id, rc);
}

static const struct exec_events events = {
    .output = ev_output,
    .running = ev_running,
    .exited = ev_exited,
    .reference = ev_reference,
    .queued = ev_queued,
    .waiting = ev_waiting,
    .pid = ev_pid,
    .install_rc = ev_install_rc,
};

/* ---- runs ---- */

static struct rec *run_new(int kind, const char *spec_json)
{
    static int seq;
    struct rec *r = calloc(1, sizeof(*r));
    json_error_t je;

    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    snprintf(r->l.id, sizeof(r->l.id), "drv%d-%ld", ++seq, (long)getpid());
    snprintf(r->l.org_id, sizeof(r->l.org_id), "org-driver");
    r->l.kind = kind;
    r->l.spec = json_loads(spec_json, 0, &je);
    if (!r->l.spec) {
        fprintf(stderr, "bad spec in the driver: %s\n", je.text);
        abort();
    }
    r->l.env = json_object();
    r->l.timeout_s = 60;
    r->l.graceful_s = 3;
    snprintf(r->l.dir, sizeof(r->l.dir), "%s/%s", base, r->l.id);
    mkdir(r->l.dir, 0700);
    r->l.ops = &exec_docker;
    r->l.ev = &events;
    return r;
}

/* Waits until pred holds or timeout_s pass: 1 when it held. */
static int wait_for(struct rec *r, int (*pred)(struct rec *), double timeout_s)
{
    double end = now_s() + timeout_s;
    int ok;

    pthread_mutex_lock(&r->mu);
    while (!(ok = pred(r)) && now_s() < end) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static int is_exited(struct rec *r)
{
    return r->exited > 0;
}

static int is_up(struct rec *r)
{
    return r->running > 0 && strstr(r->out[0], "up\n") != NULL;
}

/* Starts a run and waits for its end (at most timeout_s); then releases it. */
static void run_end(struct rec *r, double timeout_s)
{
    CHECK(wait_for(r, is_exited, timeout_s), "run %s did not end in %.0f s", r->l.id, timeout_s);
    usleep(100000);
    CHECK(r->exited == 1, "run %s: live_exited called %d times", r->l.id, r->exited);
}

static void run_free(struct rec *r)
{
    char cmd[1200];

    exec_docker.release(&r->l);
    CHECK(r->l.exec_priv == NULL, "release leaves exec_priv");
    json_decref(r->l.spec);
    json_decref(r->l.env);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->l.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", r->l.dir);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void show(const char *name, struct rec *r)
{
    printf("-- %s: code %d, error '%s', running %d\n   stdout: %.400s\n   stderr: %.400s\n", name,
           r->code, r->error, r->running, r->out[0], r->out[1]);
}

/* What `docker ps -aq` lists for a filter, trimmed, into out. */
static void containers(const char *filter, char *out, size_t n)
{
    char cmd[400];
    FILE *p;
    size_t k;

    snprintf(cmd, sizeof(cmd), "docker ps -aq --filter '%s'", filter);
    p = popen(cmd, "r");
    k = p ? fread(out, 1, n - 1, p) : 0;
    out[k] = '\0';
    while (k && (out[k - 1] == '\n' || out[k - 1] == ' '))
        out[--k] = '\0';
    if (p)
        pclose(p);
}

static struct rec *start(int kind, const char *spec)
{
    struct rec *r = run_new(kind, spec);
    int err = exec_docker.start(&r->l);

    CHECK(err == 0, "start: %d (%s)", err, r->l.errbuf);
    if (err)
        live_exited(&r->l, -1, r->l.errbuf);
    return r;
}

/* ---- image runs ---- */

static void test_image_output_env_code(void)
{
    struct rec *r = run_new(2, "{\"docker_image_ref\": \"" IMAGE "\", \"docker_run_cmd\": "
                               "[\"sh\", \"-c\", \"echo out $GREETING $OTHER $FROM_ENV "
                               "$LYCEUM_EXECUTION_ID; echo err >&2; exit 3\"], "
                               "\"docker_run_env\": \"GREETING=hello world\\n# a comment\\n\\n"
                               "OTHER=2\\r\\n\"}");
    char want[200], left[200], filter[100];

    json_object_set_new(r->l.env, "FROM_ENV", json_string("secret-ish"));
    CHECK(exec_docker.start(&r->l) == 0, "start: %s", r->l.errbuf);
    run_end(r, 60);
    show("image: output, env, exit 3", r);
    snprintf(want, sizeof(want), "out hello world 2 secret-ish %s\n", r->l.id);
    CHECK(strcmp(r->out[0], want) == 0, "stdout '%s' (want '%s')", r->out[0], want);
    CHECK(strcmp(r->out[1], "err\n") == 0, "stderr '%s'", r->out[1]);
    CHECK(r->code == 3 && r->error[0] == 0, "code %d error '%s'", r->code, r->error);
    CHECK(r->running == 1, "live_running called %d times", r->running);
    snprintf(filter, sizeof(filter), "label=lyceumd.run=%s", r->l.id);
    containers(filter, left, sizeof(left));
    CHECK(left[0] == 0, "the container is left: %s", left);
    run_free(r);
}

static void test_image_limits_and_network(void)
{
    struct rec *r = run_new(2, "{\"docker_image_ref\": \"" IMAGE "\", \"docker_run_cmd\": "
                               "[\"sh\", \"-c\", \"ls /sys/class/net; "
                               "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max "
                               "2>/dev/null; cat /sys/fs/cgroup/memory.max "
                               "/sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; "
                               "cat /mnt/s3/hello; cat /sys/fs/cgroup/cpu.max "
                               "/sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null; true\"]}");
    char want[100], path[1200];
    FILE *f;

    /* The bucket's directory, mounted at /mnt/s3 (enable_s3_mount defaults to true). */
    snprintf(r->l.bucket, sizeof(r->l.bucket), "driver-bucket");
    CHECK(bucket_prepare_mount(r->l.bucket, path, sizeof(path) - 8) == 0, "no bucket");
    strcat(path, "/hello");
    f = fopen(path, "w");
    fputs("from the bucket\n", f);
    fclose(f);
    r->l.pids_max = 77;
    r->l.mem_bytes = 96 << 20;
    r->l.cpus = 1;
    CHECK(exec_docker.start(&r->l) == 0, "start: %s", r->l.errbuf);
    run_end(r, 60);
    show("image: limits and network", r);
    snprintf(want, sizeof(want), "lo\n77\n%d\nfrom the bucket\n", 96 << 20);
    CHECK(strncmp(r->out[0], want, strlen(want)) == 0 && strstr(r->out[0], "100000"),
          "stdout '%s' (want '%s' and a CPU quota of 100000)", r->out[0], want);
    CHECK(r->code == 0 && !r->error[0], "code %d error '%s'", r->code, r->error);
    run_free(r);
}

static void test_image_sigkill(void)
{
    struct rec *r = start(2, "{\"docker_image_ref\": \"" IMAGE "\", \"docker_run_cmd\": "
                             "[\"sh\", \"-c\", \"echo up; sleep 60; echo never\"]}");
    double t0;

    CHECK(wait_for(r, is_up, 30), "no 'up' from the container");
    t0 = now_s();
    exec_docker.signal(&r->l, SIGKILL);
    exec_docker.signal(&r->l, SIGTERM); /* a weaker one after it changes nothing */
    run_end(r, 15);
    show("image: SIGKILL", r);
    CHECK(now_s() - t0 < 5, "SIGKILL took %.1f s", now_s() - t0);
    CHECK(r->code == 137 && !r->error[0], "code %d error '%s'", r->code, r->error);
    CHECK(!strstr(r->out[0], "never"), "it went on");
    run_free(r);
}

static void test_image_sigkill_before_start(void)
{
    struct rec *r = run_new(2, "{\"docker_image_ref\": \"" IMAGE "\", \"docker_run_cmd\": "
                               "[\"sh\", \"-c\", \"echo started; sleep 60\"]}");
    char left[200], filter[100];

    /* The signal comes before start(): the executor has no state yet, and says nothing. */
    CHECK(exec_docker.start(&r->l) == 0, "start: %s", r->l.errbuf);
    exec_docker.signal(&r->l, SIGKILL);
    run_end(r, 15);
    show("image: SIGKILL at once", r);
    CHECK(r->code == 137 && !r->error[0], "code %d error '%s'", r->code, r->error);
    CHECK(!strstr(r->out[0], "started") && r->running == 0, "it ran: '%s', running %d", r->out[0],
          r->running);
    snprintf(filter, sizeof(filter), "label=lyceumd.run=%s", r->l.id);
    containers(filter, left, sizeof(left));
    CHECK(left[0] == 0, "the container is left: %s", left);
    run_free(r);
}

static void test_image_sigterm(void)
{
    struct rec *r = start(2, "{\"docker_image_ref\": \"" IMAGE "\", \"docker_run_cmd\": "
                             "[\"sh\", \"-c\", \"trap 'echo term; exit 5' TERM; echo up; "
                             "while :; do sleep 0.1; done\"]}");

    CHECK(wait_for(r, is_up, 30), "no 'up' from the container");
    exec_docker.signal(&r->l, SIGTERM);
    run_end(r, 15);
    show("image: SIGTERM", r);
    CHECK(strcmp(r->out[0], "up\nterm\n") == 0, "stdout '%s'", r->out[0]);
    CHECK(r->code == 5 && !r->error[0], "code %d error '%s'", r->code, r->error);
    run_free(r);
}

static void test_image_missing(void)
{
    struct rec *r = start(2, "{\"docker_image_ref\": \"127.0.0.1:1/lyceumd-test/nope:0\", "
                             "\"docker_run_cmd\": [\"true\"]}");

    run_end(r, 120);
    show("image: not here", r);
    CHECK(r->code == -1 && strstr(r->error, "127.0.0.1:1/lyceumd-test/nope:0") &&
              strstr(r->error, "cannot be pulled"),
          "code %d error '%s'", r->code, r->error);
    run_free(r);

    r = start(2, "{\"docker_image_ref\": \"127.0.0.1:1/lyceumd-test/nope:0\", \"docker_run_cmd\": "
                 "[\"true\"], "
                 "\"docker_registry_credential_type\": \"aws\", \"aws_access_key_id\": \"AK\"}");
    run_end(r, 30);
    show("image: ECR credentials", r);
    CHECK(r->code == -1 && strstr(r->error, "ECR"), "code %d error '%s'", r->code, r->error);
    run_free(r);

    r = start(2, "{\"docker_image_ref\": \"127.0.0.1:1/lyceumd-test/nope:0\", "
                 "\"docker_run_cmd\": [\"true\"], \"docker_registry_credential_type\": "
                 "\"basic\", \"docker_registry_credentials\": "
                 "\"{\\\"username\\\": \\\"u\\\", \\\"password\\\": \\\"p\\\"}\"}");
    run_end(r, 30);
    show("image: basic credentials", r);
    CHECK(r->code == -1 && strstr(r->error, "cannot be pulled") && !strstr(r->error, "\"p\""),
          "code %d error '%s'", r->code, r->error);
    run_free(r);

    r = start(2, "{\"docker_image_ref\": \"127.0.0.1:1/lyceumd-test/nope:0\", "
                 "\"docker_run_cmd\": [\"true\"], \"docker_registry_credential_type\": "
                 "\"basic\", \"docker_registry_credentials\": \"not json\"}");
    run_end(r, 30);
    show("image: bad basic credentials", r);
    CHECK(r->code == -1 && strstr(r->error, "docker_registry_credentials"), "code %d error '%s'",
          r->code, r->error);
    run_free(r);
}

static void test_image_gpus_without_nvidia(void)
{
    /* GPUs are asked for as device requests: an engine with no nvidia runtime refuses them,
     * and the run fails as a system failure saying so. */
    struct rec *r = run_new(2, "{\"docker_image_ref\": \"" IMAGE "\", \"docker_run_cmd\": "
                               "[\"true\"]}");

    snprintf(r->l.gpus, sizeof(r->l.gpus), "0,1");
    CHECK(exec_docker.start(&r->l) == 0, "start: %s", r->l.errbuf);
    run_end(r, 60);
    show("image: GPUs", r);
    CHECK(r->code == -1 && strstr(r->error, "nvidia"), "code %d error '%s'", r->code, r->error);
    run_free(r);
}

static void test_image_env_from_spec_only(void)
{
    /* An image's own default command runs when docker_run_cmd is empty; GPUs are not asked
     * for when none are held (no DeviceRequests: this engine has no nvidia runtime). */
    struct rec *r = start(2, "{\"docker_image_ref\": \"" IMAGE "\", \"docker_run_cmd\": "
                             "[\"env\"], \"docker_run_env\": null}");

    run_end(r, 60);
    show("image: env", r);
    CHECK(strstr(r->out[0], "LYCEUM_EXECUTION_ID=") && !strstr(r->out[0], "CUDA_VISIBLE_DEVICES"),
          "env '%s'", r->out[0]);
    CHECK(r->code == 0, "code %d error '%s'", r->code, r->error);
    run_free(r);
}

/* ---- compose runs ---- */

#define SVC(name, cmd)                                                                             \
    "  " name ":\\n    image: " IMAGE "\\n    network_mode: none\\n    command: " cmd "\\n"

static void project_left(struct rec *r, char *out, size_t n)
{
    char filter[120];

    snprintf(filter, sizeof(filter), "label=com.docker.compose.project=lyceumd-%.12s", r->l.id);
    containers(filter, out, n);
}

static void test_compose_two_services(void)
{
    struct rec *r =
        start(3, "{\"compose_file_code\": \"services:\\n" SVC(
                     "one", "sh -c 'echo from-one; sleep 1'") SVC("two", "sh -c 'echo "
                                                                         "from-two; "
                                                                         "sleep 1'") "\"}");
    char left[400];

    run_end(r, 120);
    show("compose: two services", r);
    CHECK(strstr(r->out[0], "from-one") && strstr(r->out[0], "from-two"), "stdout '%s'", r->out[0]);
    CHECK(r->code == 0 && !r->error[0], "code %d error '%s'", r->code, r->error);
    CHECK(r->running == 1, "live_running called %d times", r->running);
    project_left(r, left, sizeof(left));
    CHECK(left[0] == 0, "containers left: %s", left);
    run_free(r);
}

static void test_compose_exit_code(void)
{
    struct rec *r =
        start(3, "{\"compose_file_code\": \"services:\\n" SVC("bad", "sh -c 'echo failing; exit 4'")
                     SVC("slow", "sleep 30") "\"}");
    double t0 = now_s();

    run_end(r, 90);
    show("compose: exit code", r);
    CHECK(r->code == 4 && !r->error[0], "code %d error '%s'", r->code, r->error);
    CHECK(strstr(r->out[0], "failing"), "stdout '%s'", r->out[0]);
    CHECK(now_s() - t0 < 40, "it took %.1f s", now_s() - t0);
    run_free(r);
}

static void test_compose_sigkill(void)
{
    struct rec *r = start(3, "{\"compose_file_code\": \"services:\\n" SVC(
                                 "a", "sh -c 'echo up; sleep 60'") SVC("b", "sleep 60") "\"}");
    char left[400];
    double t0;

    CHECK(wait_for(r, is_up, 60), "no 'up' from the project: '%s'", r->out[0]);
    t0 = now_s();
    exec_docker.signal(&r->l, SIGKILL);
    run_end(r, 30);
    show("compose: SIGKILL", r);
    CHECK(now_s() - t0 < 15, "SIGKILL took %.1f s", now_s() - t0);
    CHECK(r->code != 0 && !r->error[0], "code %d error '%s'", r->code, r->error);
    project_left(r, left, sizeof(left));
    CHECK(left[0] == 0, "containers left: %s", left);
    run_free(r);
}

static void test_compose_sigterm_then_sigkill(void)
{
    /* The scheduler's stop: SIGTERM, then SIGKILL once the grace period is over (sooner
     * here). The `stop` still waiting must not hold up the end or release(). */
    struct rec *r = run_new(
        3, "{\"compose_file_code\": \"services:\\n" SVC("a", "sh -c 'echo up; sleep 120'") "\"}");
    double t0;

    r->l.graceful_s = 100;
    CHECK(exec_docker.start(&r->l) == 0, "start: %s", r->l.errbuf);
    CHECK(wait_for(r, is_up, 60), "no 'up' from the project: '%s'", r->out[0]);
    t0 = now_s();
    exec_docker.signal(&r->l, SIGTERM);
    sleep(2);
    exec_docker.signal(&r->l, SIGKILL);
    run_end(r, 30);
    show("compose: SIGTERM then SIGKILL", r);
    CHECK(!r->error[0], "error '%s'", r->error);
    exec_docker.release(&r->l);
    CHECK(now_s() - t0 < 20, "the end and release took %.1f s", now_s() - t0);
    run_free(r);
}

static void test_compose_sigkill_at_once(void)
{
    /* Registry credentials become a client config of the run's own, gone afterwards. */
    struct rec *r =
        start(3, "{\"compose_file_code\": \"services:\\n" SVC(
                     "a", "sh -c 'echo started; sleep 60'") "\", "
                                                            "\"docker_username\": \"u\", "
                                                            "\"docker_password\": \"p\"}");
    char left[400], path[1200];
    struct stat st;

    exec_docker.signal(&r->l, SIGKILL);
    run_end(r, 30);
    show("compose: SIGKILL at once", r);
    CHECK(r->code == 137 && !r->error[0], "code %d error '%s'", r->code, r->error);
    project_left(r, left, sizeof(left));
    CHECK(left[0] == 0, "containers left: %s", left);
    snprintf(path, sizeof(path), "%s/.docker/config.json", r->l.dir);
    CHECK(stat(path, &st) != 0, "%s is left", path);
    run_free(r);
}

static void test_compose_sigterm(void)
{
    struct rec *r = start(
        3, "{\"compose_file_code\": \"services:\\n" SVC("a", "sh -c 'echo up; sleep 60'") "\"}");
    char left[400];
    double t0;

    CHECK(wait_for(r, is_up, 60), "no 'up' from the project: '%s'", r->out[0]);
    t0 = now_s();
    exec_docker.signal(&r->l, SIGTERM); /* sh as PID 1 ignores it: stopped after 3 s */
    run_end(r, 40);
    show("compose: SIGTERM", r);
    CHECK(now_s() - t0 < 20, "SIGTERM took %.1f s", now_s() - t0);
    CHECK(!r->error[0], "error '%s'", r->error);
    project_left(r, left, sizeof(left));
    CHECK(left[0] == 0, "containers left: %s", left);
    run_free(r);
}

static void test_compose_check(void)
{
    char why[512] = "";
    int rc;

    rc = docker_compose_check("services:\n  x:\n    image: " IMAGE "\n    network_mode: none\n",
                              base, why, sizeof(why));
    CHECK(rc == 0, "a good file: %d '%s'", rc, why);
    rc = docker_compose_check("services:\n  x:\n    imagee: [\n", base, why, sizeof(why));
    printf("-- compose check of a bad file: %d '%s'\n", rc, why);
    CHECK(rc == LY_EBADREQ && why[0] && !strstr(why, base), "a bad file: %d '%s'", rc, why);
    rc = docker_compose_check("services:\n  x:\n    imag: " IMAGE "\n", base, why, sizeof(why));
    printf("-- compose check of a file with an unknown key: %d '%s'\n", rc, why);
    CHECK(rc == LY_EBADREQ && strstr(why, "imag"), "unknown key: %d '%s'", rc, why);
    rc = docker_compose_check("services:\n  x:\n    image: " IMAGE "\n    privileged: true\n", base,
                              why, sizeof(why));
    printf("-- compose check of a file that asks for privileges: %d '%s'\n", rc, why);
    CHECK(rc == LY_EINVAL && strstr(why, "privileged"), "privileged: %d '%s'", rc, why);
}

int main(int argc, char **argv)
{
    const char *why = NULL;
    const char *only = argc > 1 ? argv[1] : "";
    char db[100];

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getenv("DOCKER_SOCK"))
        docker_configure(getenv("DOCKER_SOCK"));
    if (!docker_available(&why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    /* Images per org and the runs' registry secrets live in the store, sealed. */
    snprintf(db, sizeof(db), "%s/driver.db", base);
    if (store_open(db) != 0 || secrets_init(base) != 0 || bucket_init(base, 0) != 0) {
        fprintf(stderr, "cannot open the store in %s\n", base);
        return 1;
    }
    if (!*only || strstr(only, "image")) {
        test_image_output_env_code();
        test_image_limits_and_network();
        test_image_env_from_spec_only();
        test_image_gpus_without_nvidia();
        test_image_sigkill();
        test_image_sigkill_before_start();
        test_image_sigterm();
        test_image_missing();
    }
    if (!*only || strstr(only, "compose")) {
        test_compose_check();
        test_compose_two_services();
        test_compose_exit_code();
        test_compose_sigkill();
        test_compose_sigterm();
        test_compose_sigkill_at_once();
        test_compose_sigterm_then_sigkill();
    }
    store_close();
    snprintf(db, sizeof(db), "rm -rf '%s/buckets'", base);
    if (system(db) != 0)
        printf("cannot remove %s/buckets\n", base);
    for (const char *f = "driver.db\0driver.db-wal\0driver.db-shm\0driver.db-gen\0master.key\0"; *f;
         f += strlen(f) + 1) {
        snprintf(db, sizeof(db), "%s/%s", base, f);
        unlink(db);
    }
    rmdir(base);
    /* The cache answers without asking again, and a socket with no engine says so. */
    docker_configure("/tmp/no-such-docker.sock");
    CHECK(!docker_available(&why) && why && strstr(why, "no-such-docker"), "why '%s'",
          why ? why : "");
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
