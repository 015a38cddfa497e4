/* See doctor.h. */
#include "admin/doctor.h"

#include "core/config.h"
#include "exec/exec.h"
#include "core/fbuf.h"
#include "exec/cgroup.h"
#include "metrics/nvml.h"
#include "runs/gpu.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <unistd.h>

enum verdict { OK, WARN, FAIL };

struct tally {
    FILE *out;
    int n[3];
};

static void say(struct tally *t, enum verdict v, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void say(struct tally *t, enum verdict v, const char *what, const char *fmt, ...)
{
    static const char *const word[] = {"ok", "warn", "FAIL"};
    va_list ap;

    fprintf(t->out, "  %-5s %-16s ", word[v], what);
    va_start(ap, fmt);
    vfprintf(t->out, fmt, ap);
    va_end(ap);
    fputc('\n', t->out);
    t->n[v]++;
}

/* The path of command on PATH into out, or 0. */
static int on_path(const char *command, char *out, size_t n)
{
    const char *path = getenv("PATH");
    char dir[1024];

    if (strchr(command, '/')) {
        snprintf(out, n, "%s", command);
        return access(out, X_OK) == 0;
    }
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t len = strcspn(p, ":");
        snprintf(dir, sizeof(dir), "%.*s", (int)len, p);
        snprintf(out, n, "%s/%s", dir[0] ? dir : ".", command);
        if (access(out, X_OK) == 0)
            return 1;
        p += len;
        if (*p == ':')
            p++;
    }
    return 0;
}

/* Runs argv with no input and its output discarded; its exit status, or -1. */
static int quiet(char *const argv[])
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void check_data(struct tally *t, const struct config *cfg)
{
    struct statvfs vs;
    struct stat sb;
    char dir[1100];

    snprintf(dir, sizeof(dir), "%s", cfg->data_dir);
    if (stat(dir, &sb) != 0) {
        /* Not made yet: the disk it will be on is the parent's. */
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
            *slash = '\0';
        else
            snprintf(dir, sizeof(dir), ".");
    } else if ((sb.st_mode & 0077) != 0) {
        say(t, WARN, "data directory", "%s is mode %03o: lyceumd makes it 0700 when it serves",
            cfg->data_dir, (unsigned)(sb.st_mode & 0777));
    }
    if (statvfs(dir, &vs) != 0) {
        say(t, FAIL, "disk", "%s: %s", dir, strerror(errno));
        return;
    }
    double free_b = (double)vs.f_bavail * (double)vs.f_frsize;
    double total = (double)vs.f_blocks * (double)vs.f_frsize;
    double pct = total > 0 ? 100.0 * free_b / total : 0;
    enum verdict v = free_b < 256.0 * (1 << 20)              ? FAIL
                     : (free_b < 2.0 * (1 << 30) || pct < 5) ? WARN
                                                             : OK;
    say(t, v, "disk", "%s: %.1f GiB free of %.1f GiB (%.0f%%)%s", cfg->data_dir, free_b / (1 << 30),
        total / (1 << 30), pct,
        v == OK ? "" : ": free space before runs' output, logs and buckets fill it");
}

static void check_sandbox(struct tally *t, const struct config *cfg)
{
    char bwrap[1100], slirp[1100];

    if (!cfg->sandbox) {
        say(t, WARN, "sandbox",
            "off (\"sandbox\": false): tenants' code runs unconfined, as "
            "lyceumd's own user; only for a single trusted user");
        return;
    }
    if (!on_path("bwrap", bwrap, sizeof(bwrap))) {
        say(t, FAIL, "bubblewrap", "bwrap is not on PATH: apt install bubblewrap");
        return;
    }
    pid_t pid = fork();
    int status = -1;
    if (pid == 0)
        _exit(unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) == 0 ? 0 : 1);
    if (pid > 0)
        waitpid(pid, &status, 0);
    if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        say(t, FAIL, "namespaces",
            "user, mount, pid and network namespaces cannot be made: enable them "
            "(sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone = 1)");
        return;
    }
    char *const argv[] = {bwrap,  "--unshare-all", "--ro-bind", "/",    "/", "--dev",
                          "/dev", "--proc",        "/proc",     "true", NULL};
    if (quiet(argv) != 0)
        say(t, FAIL, "bubblewrap",
            "%s cannot start a sandbox here (bwrap --unshare-all ... "
            "true failed): run lyceumd as root on a host that allows "
            "namespaces",
            bwrap);
    else
        say(t, OK, "bubblewrap",
            "%s starts sandboxes; user, mount, pid and network namespaces "
            "work",
            bwrap);
    if (!on_path("slirp4netns", slirp, sizeof(slirp)))
        say(t, cfg->sandbox_network ? FAIL : WARN, "slirp4netns",
            "not on PATH: runs get no network (apt install slirp4netns)");
    else
        say(t, OK, "slirp4netns", "%s gives runs their filtered network", slirp);
}

/* The groups a run would get (exec/cgroup.c itself, with limits), made and removed. */
static void check_cgroups(struct tally *t)
{
    struct cgroup cg;
    char name[64], dirs[3 * PATH_MAX + 8] = "";
    int rc, ndirs;

    snprintf(name, sizeof(name), "doctor-%ld", (long)getpid());
    rc = cgroup_create(&cg, name, 64 << 20, 64, 1);
    ndirs = cg.ndirs;
    for (int i = 0; i < cg.ndirs; i++)
        snprintf(dirs + strlen(dirs), sizeof(dirs) - strlen(dirs), "%s%s", i ? ", " : "",
                 cg.dir[i]);
    cgroup_close_fds(&cg);
    cgroup_destroy(&cg);
    if (rc != 0 || ndirs == 0)
        say(t, WARN, "cgroups",
            "a run's control groups cannot be made here: run limits fall "
            "back to rlimits (memory and CPU not enforced per run); run "
            "lyceumd as root on a host with writable cgroups");
    else
        say(t, OK, "cgroups", "runs get memory, process and CPU limits (%s)", dirs);
}

static void check_python(struct tally *t, const struct config *cfg)
{
    char py[1100];
    const char *want = cfg->python[0] ? cfg->python : "python3";

    if (!on_path(want, py, sizeof(py))) {
        say(t, FAIL, "python",
            "%s is not on PATH: Python runs cannot start (apt install "
            "python3 python3-venv)",
            want);
        return;
    }
    char *const argv[] = {py, "-c", "import venv, ensurepip", NULL};
    if (quiet(argv) != 0)
        say(t, WARN, "python",
            "%s has no venv/ensurepip: runs with requirements fail "
            "(apt install python3-venv)",
            py);
    else
        say(t, OK, "python", "%s, with venv", py);
}

static void check_docker(struct tally *t, const struct config *cfg)
{
    const char *why = NULL;

    docker_configure(cfg->docker_socket[0] ? cfg->docker_socket : NULL);
    if (docker_available(&why))
        say(t, OK, "docker", "the engine at %s answers: image and Compose runs work",
            cfg->docker_socket[0] ? cfg->docker_socket : "/var/run/docker.sock");
    else
        say(t, WARN, "docker",
            "%s: image and Compose runs are refused (install docker.io, "
            "start dockerd, or set docker_socket)",
            why ? why : "no engine answers");
}

static void check_nvml(struct tally *t)
{
    struct gpu_info gpus[GPU_MAX];
    char list[600];
    struct fbuf b;

    if (nvml_open()) {
        int n = gpu_detect(gpus, GPU_MAX);
        fbuf_init(&b, list, sizeof(list));
        for (int i = 0; i < n; i++)
            fbuf_printf(&b, "%s%d: %s (%lld GiB)", i ? ", " : "", gpus[i].index, gpus[i].name,
                        (long long)(gpus[i].mem_bytes >> 30));
        say(t, n ? OK : WARN, "nvml", "NVML is loaded and sees %d GPU%s%s%s", n, n == 1 ? "" : "s",
            n ? ": " : " (check the driver with nvidia-smi)", list);
    } else
        say(t, WARN, "nvml",
            "no NVIDIA driver (libnvidia-ml.so.1 does not load): no GPU "
            "metrics; GPUs in machine_types are still handed out by index");
}

static void check_kvm(struct tally *t)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        say(t, WARN, "kvm",
            "/dev/kvm: %s: virtual machines would be emulated (TCG), many "
            "times slower",
            strerror(errno));
        return;
    }
    int api = ioctl(fd, KVM_GET_API_VERSION, 0);
    int vm = api == KVM_API_VERSION ? ioctl(fd, KVM_CREATE_VM, 0) : -1;
    if (vm >= 0) {
        close(vm);
        say(t, OK, "kvm",
            "/dev/kvm makes virtual machines (API %d); a nested host may "
            "still hang guests: vm.accel tcg avoids it",
            api);
    } else {
        say(t, WARN, "kvm",
            "/dev/kvm opens but makes no virtual machine (API %d): VMs would "
            "be emulated (TCG)",
            api);
    }
    close(fd);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void check_slurm(struct tally *t, const struct config *cfg)
{
    char url[400];
    long code = 0;
    CURL *c;
    CURLcode rc;

    if (!cfg->slurm_rest_url[0]) {
        say(t, OK, "slurm", "not configured (runs are local)");
        return;
    }
    if (cfg->slurm_jwt_key[0] && access(cfg->slurm_jwt_key, R_OK) != 0)
        say(t, FAIL, "slurm",
            "the jwt_key file %s cannot be read (%s): lyceumd cannot "
            "authenticate to slurmrestd",
            cfg->slurm_jwt_key, strerror(errno));
    snprintf(url, sizeof(url), "%s/slurm/v0.0.38/ping", cfg->slurm_rest_url);
    c = curl_easy_init();
    if (!c) {
        say(t, FAIL, "slurm", "libcurl does not start");
        return;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        say(t, FAIL, "slurm",
            "slurmrestd at %s does not answer (%s): start it, or fix "
            "slurm.rest_url",
            cfg->slurm_rest_url, curl_easy_strerror(rc));
    else
        say(t, OK, "slurm", "slurmrestd at %s answers (HTTP %ld without a token)",
            cfg->slurm_rest_url, code);
}

static void check_clock(struct tally *t)
{
    struct timex tx = {0};
    int state = adjtimex(&tx);

    if (state == TIME_ERROR || (tx.status & STA_UNSYNC))
        say(t, WARN, "clock",
            "not synchronised (NTP): billing windows, token expiry and TOTP "
            "codes use it (install chrony or systemd-timesyncd)");
    else
        say(t, OK, "clock", "synchronised (estimated error %ld us)", (long)tx.esterror);
}

static void check_listen(struct tally *t, const struct config *cfg)
{
    char host[128];
    const char *colon = strrchr(cfg->listen, ':');
    struct addrinfo hints = {0}, *ai = NULL;

    if (!colon || (size_t)(colon - cfg->listen) >= sizeof(host)) {
        say(t, FAIL, "listen", "'%s' is not HOST:PORT", cfg->listen);
        return;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - cfg->listen), cfg->listen);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
        say(t, FAIL, "listen", "'%s' is not a numeric address and port", cfg->listen);
        return;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        say(t, WARN, "listen", "%s: %s (a lyceumd serving already?)", cfg->listen, strerror(errno));
    else
        say(t, OK, "listen", "%s is free to serve on", cfg->listen);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
}

int doctor_run(const struct config *cfg, FILE *out)
{
    struct tally t = {out, {0, 0, 0}};

    fprintf(out, "lyceumd doctor: what this host offers lyceumd\n");
    check_data(&t, cfg);
    check_listen(&t, cfg);
    check_sandbox(&t, cfg);
    check_cgroups(&t);
    check_python(&t, cfg);
    check_docker(&t, cfg);
    check_nvml(&t);
    check_kvm(&t);
    check_slurm(&t, cfg);
    check_clock(&t);
    fprintf(out, "%d ok, %d to look at, %d to fix\n", t.n[OK], t.n[WARN], t.n[FAIL]);
    return t.n[FAIL] ? 1 : 0;
}
