/*
 * The local executor: runs a Python run as child processes of lyceumd on this machine.
 *
 * A run's directory holds work/ (its code, import_files, requirements and virtualenv: the
 * process's working directory), install.log and output.log. A run with requirements has two
 * phases, each one process group: the install (python -m venv + pip, output to install.log),
 * then the user's code. Where bubblewrap exists (and the config does not turn it off) each
 * phase runs in a sandbox that sees the system read-only, its own work/ read-write, a private
 * /tmp, and neither the data directory (the database, keys, other runs) nor Docker's socket.
 *
 * One I/O thread reads every child's stdout and stderr (epoll on pipes) into the run's output
 * and learns of exits through pidfds. A run is reported ended once its main process exited and
 * both pipes reached EOF (stragglers in its process group are killed at the exit; pipes held
 * by an escaped process are closed after a short grace).
 *
 * The command line, the sandbox and the fork are shared with service.c (local_int.h), which
 * starts inference replicas the same way.
 */
#include "exec/exec.h"
#include "exec/cgroup.h"
#include "exec/local_int.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "runs/output.h"
#include "runs/runs.h"
#include "storage/bucket.h"
#include "store/runs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DRAIN_GRACE_US 2000000

enum { EP_OUT, EP_ERR, EP_PID };

struct ep {
    struct lrun *r;
    int what;
};

struct lrun {
    struct live *l;
    pthread_mutex_t mu; /* pid, phase, killed */
    int phase;          /* 0 install, 1 the user's code */
    int has_install;
    pid_t pid;
    int pidfd, fd[2]; /* -1 when closed */
    int exited, status;
    int64_t exited_at;
    int killed;
    int install_log;
    int has_cg; /* in its own control groups (memory, pids, cpu limits) */
    struct cgroup cg;
    struct ep ep[3];
    struct lrun *next;
};

static const struct config *cfg;
static int epfd = -1, evfd = -1;
static pthread_t io_thread;
static int io_running, io_stop;
static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lrun *all;
static char bwrap[PATH_MAX], python[PATH_MAX], data_abs[PATH_MAX];
static int sandbox;

int exec_find(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];

    if (strchr(name, '/')) {
        snprintf(out, n, "%s", name);
        return access(name, X_OK) == 0 ? 0 : -1;
    }
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");

        snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, name);
        if (len && access(buf, X_OK) == 0) {
            snprintf(out, n, "%s", buf);
            return 0;
        }
        path += len + (path[len] == ':');
    }
    return -1;
}

/* ---- the run's files ---- */

static int mkdirs(const char *base, const char *rel)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", base, rel);

    if (n < 0 || (size_t)n >= sizeof(path))
        return -1;
    for (char *p = path + strlen(base) + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

static int write_file(const char *dir, const char *rel, const char *data, size_t n)
{
    char path[PATH_MAX];
    int fd;
    ssize_t w = 0;

    /* The API refused unsafe names; this is the second lock on the door. */
    if (!*rel || rel[0] == '/' || strstr(rel, "..") || mkdirs(dir, rel))
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -1;
    while (n && (w = write(fd, data, n)) > 0) {
        data += w;
        n -= (size_t)w;
    }
    close(fd);
    return n ? -1 : 0;
}

/* The file the code is written to: the client's file_name when it is a plain .py name. */
void exec_code_file(struct live *l, char *out, size_t n)
{
    const char *fn = json_string_value(json_object_get(l->spec, "file_name"));
    const char *base = fn ? strrchr(fn, '/') : NULL;
    int ok = 1;

    base = base ? base + 1 : fn;
    if (base) {
        size_t len = strlen(base);

        ok = len > 3 && len < 128 && strcmp(base + len - 3, ".py") == 0 && base[0] != '.';
        for (const char *p = base; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '_' || *p == '-' || *p == '.';
    }
    snprintf(out, n, "%s", base && ok ? base : "main.py");
}

int exec_prepare_python(struct live *l, const char *base, char *work, size_t wn, char *why,
                        size_t n)
{
    const char *code = json_string_value(json_object_get(l->spec, "code"));
    const char *req = json_string_value(json_object_get(l->spec, "requirements_content"));
    const char *imports = json_string_value(json_object_get(l->spec, "import_files"));
    char file[160];

    if (!req)
        req = json_string_value(json_object_get(l->spec, "requirements"));
    snprintf(work, wn, "%s/work", base);
    if (mkdir(work, 0755) != 0 && errno != EEXIST) {
        snprintf(why, n, "cannot create the run's directory: %s", strerror(errno));
        return -1;
    }
    if (imports) {
        json_t *files = json_loads(imports, 0, NULL), *v;
        const char *k;

        json_object_foreach(files, k, v)
        {
            const char *text = json_string_value(v);

            if (text && write_file(work, k, text, strlen(text))) {
                snprintf(why, n, "cannot write import file '%.200s'", k);
                json_decref(files);
                return -1;
            }
        }
        json_decref(files);
    }
    exec_code_file(l, file, sizeof(file));
    if (write_file(work, file, code ? code : "", code ? strlen(code) : 0)) {
        snprintf(why, n, "cannot write the run's code");
        return -1;
    }
    if (req && *req && write_file(work, "requirements.txt", req, strlen(req))) {
        snprintf(why, n, "cannot write requirements.txt");
        return -1;
    }
    return 0;
}

/* ---- spawning ---- */

void cmd_arg(struct cmd *c, const char *s)
{
    if (c->argc < ARGV_MAX - 1)
        c->argv[c->argc++] = xstrdup(s);
    else
        c->too_long = 1;
}

void cmd_env(struct cmd *c, const char *name, const char *value)
{
    char *s;

    if (c->envc >= ENV_MAX - 1) {
        log_error("a run's environment holds at most %d variables: %s is left out", ENV_MAX - 1,
                  name);
        return;
    }
    s = xmalloc(strlen(name) + strlen(value) + 2);
    sprintf(s, "%s=%s", name, value);
    c->envp[c->envc++] = s;
}

void cmd_free(struct cmd *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    for (int i = 0; i < c->envc; i++)
        free(c->envp[i]);
}

int exec_sandboxed(void)
{
    return sandbox;
}

/* Shows NVIDIA's device files (/dev/nvidia0, nvidiactl, nvidia-uvm, nvidia-caps/ ...) in the
 * sandbox's own /dev: CUDA opens them. */
static void gpu_devices(struct cmd *c)
{
    DIR *d = opendir("/dev");
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d))) {
        char path[300];

        if (strncmp(de->d_name, "nvidia", 6) != 0)
            continue;
        snprintf(path, sizeof(path), "/dev/%s", de->d_name);
        cmd_arg(c, "--dev-bind");
        cmd_arg(c, path);
        cmd_arg(c, path);
    }
    closedir(d);
}

void sandbox_args(struct cmd *c, const struct sandbox_view *v)
{
    char bucket[PATH_MAX];

    cmd_arg(c, bwrap);
    cmd_arg(c, "--ro-bind");
    cmd_arg(c, "/");
    cmd_arg(c, "/");
    cmd_arg(c, "--dev");
    cmd_arg(c, "/dev");
    if (v->gpus)
        gpu_devices(c);
    cmd_arg(c, "--proc");
    cmd_arg(c, "/proc");
    cmd_arg(c, "--tmpfs");
    cmd_arg(c, "/tmp");
    /* Hide the data directory (database, keys, other runs), then give back this command's own
     * directory, and what it may read. */
    cmd_arg(c, "--tmpfs");
    cmd_arg(c, data_abs);
    cmd_arg(c, "--bind");
    cmd_arg(c, v->rw_dir);
    cmd_arg(c, v->rw_dir);
    for (const char *const *p = v->ro_paths; p && *p; p++) {
        cmd_arg(c, "--ro-bind");
        cmd_arg(c, *p);
        cmd_arg(c, *p);
    }
    {
        /* Docker's socket would be root on the host: cover it (by its real path, as /var/run
         * is a link that bubblewrap cannot mount through). */
        char real[PATH_MAX];

        if (cfg->docker_socket[0] && realpath(cfg->docker_socket, real)) {
            cmd_arg(c, "--ro-bind");
            cmd_arg(c, "/dev/null");
            cmd_arg(c, real);
        }
    }
    /* The owner's bucket at /mnt/s3 (a tmpfs /mnt gives the mount point a place). */
    if (v->bucket_user && bucket_objects_dir(v->bucket_user, bucket, sizeof(bucket)) == 0) {
        cmd_arg(c, "--tmpfs");
        cmd_arg(c, "/mnt");
        cmd_arg(c, "--bind");
        cmd_arg(c, bucket);
        cmd_arg(c, "/mnt/s3");
    }
    cmd_arg(c, "--chdir");
    cmd_arg(c, v->rw_dir);
    cmd_arg(c, "--unshare-pid");
    cmd_arg(c, "--unshare-ipc");
    cmd_arg(c, "--unshare-uts");
    cmd_arg(c, "--unshare-cgroup-try");
    if (!v->network)
        cmd_arg(c, "--unshare-net");
    cmd_arg(c, "--die-with-parent");
    cmd_arg(c, "--");
}

static void base_env(struct cmd *c, struct live *l, const char *work)
{
    const char *k;
    json_t *v;

    cmd_env(c, "PATH", "/usr/local/bin:/usr/bin:/bin");
    cmd_env(c, "HOME", work);
    cmd_env(c, "LANG", "C.UTF-8");
    cmd_env(c, "PYTHONUNBUFFERED", "1");
    cmd_env(c, "PYTHONDONTWRITEBYTECODE", "1");
    cmd_env(c, "LYCEUM_EXECUTION_ID", l->id);
    cmd_env(c, "CUDA_VISIBLE_DEVICES", l->gpus);
    if (!sandbox) {
        char tmp[PATH_MAX + 8];

        snprintf(tmp, sizeof(tmp), "%s/.tmp", work);
        mkdir(tmp, 0700);
        cmd_env(c, "TMPDIR", tmp);
    }
    json_object_foreach(l->env, k, v) if (json_is_string(v)) cmd_env(c, k, json_string_value(v));
}

pid_t exec_fork(struct cmd *c, const struct child_setup *s)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC), saved;
    struct rlimit as = {0}, np = {0};
    pid_t pid;

    if (s->rlimit_as > 0)
        as.rlim_cur = as.rlim_max = (rlim_t)s->rlimit_as;
    if (s->rlimit_nproc > 0)
        np.rlim_cur = np.rlim_max = (rlim_t)s->rlimit_nproc;
    c->argv[c->argc] = NULL;
    c->envp[c->envc] = NULL;
    pid = fork();
    if (pid == 0) {
        /* The child: only async-signal-safe calls from here to execve. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (s->cg)
            cgroup_join_child(s->cg);
        dup2(devnull, 0);
        dup2(s->out, 1);
        dup2(s->err, 2);
        if (chdir(s->dir) != 0)
            _exit(126);
        if (as.rlim_max)
            setrlimit(RLIMIT_AS, &as);
        if (np.rlim_max)
            setrlimit(RLIMIT_NPROC, &np);
        execve(c->argv[0], c->argv, c->envp);
        {
            ssize_t w = write(2, s->fail_msg, strlen(s->fail_msg));

            (void)w;
        }
        _exit(127);
    }
    saved = errno;
    if (devnull >= 0)
        close(devnull);
    if (pid > 0)
        setpgid(pid, pid); /* also here, so the group exists before anyone signals it */
    errno = saved;
    return pid;
}

/* Forks the command into its own process group with stdout/stderr on new pipes. */
static int spawn(struct lrun *r, struct cmd *c, const char *work)
{
    int out[2], err[2];
    struct child_setup cs = {.dir = work, .cg = r->has_cg ? &r->cg : NULL};
    pid_t pid;

    if (pipe2(out, O_CLOEXEC))
        return LY_EIO;
    if (pipe2(err, O_CLOEXEC)) {
        close(out[0]);
        close(out[1]);
        return LY_EIO;
    }
    cs.out = out[1];
    cs.err = err[1];
    /* Without a cgroup, the memory limit falls back to the address-space rlimit. */
    cs.rlimit_as = r->has_cg ? 0 : r->l->mem_bytes;
    cs.rlimit_nproc = r->l->pids_max;
    cs.fail_msg = "lyceumd: cannot start the run's process\n";
    pid = exec_fork(c, &cs);
    close(out[1]);
    close(err[1]);
    if (pid < 0) {
        close(out[0]);
        close(err[0]);
        return LY_EIO;
    }
    pthread_mutex_lock(&r->mu);
    r->pid = pid;
    r->pidfd = pidfd_open(pid, 0);
    r->fd[0] = out[0];
    r->fd[1] = err[0];
    r->exited = 0;
    pthread_mutex_unlock(&r->mu);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    runs_set_pid(r->l->id, pid, runs_proc_start(pid));
    for (int i = 0; i < 3; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &r->ep[i]};
        int fd = i == EP_PID ? r->pidfd : r->fd[i];

        r->ep[i].r = r;
        r->ep[i].what = i;
        if (fd >= 0)
            epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    return 0;
}

static int start_phase(struct lrun *r)
{
    struct live *l = r->l;
    struct cmd c = {0};
    char work[PATH_MAX], file[160], venv_py[PATH_MAX + 32];
    const char *py = python;
    int err;

    snprintf(work, sizeof(work), "%.1000s/work", l->dir);
    snprintf(venv_py, sizeof(venv_py), "%s/.venv/bin/python", work);
    if (sandbox) {
        struct sandbox_view v = {.rw_dir = work,
                                 .bucket_user = l->bucket[0] ? l->bucket : NULL,
                                 .network = cfg->sandbox_network,
                                 .gpus = l->gpus[0] != '\0'};

        sandbox_args(&c, &v);
    }
    if (r->phase == 0) {
        char script[PATH_MAX + 1024];
        const char *index = cfg->pip_index_url;

        snprintf(script, sizeof(script),
                 "'%s' -m venv --system-site-packages .venv && .venv/bin/python -m pip install "
                 "--disable-pip-version-check --no-input --retries 0 --timeout 15 %s%s%s "
                 "-r requirements.txt",
                 python, index[0] ? "--index-url '" : "", index, index[0] ? "'" : "");
        cmd_arg(&c, "/bin/sh");
        cmd_arg(&c, "-c");
        cmd_arg(&c, script);
    } else {
        json_t *mods = json_object_get(l->spec, "prior_imports");

        if (r->has_install)
            py = venv_py;
        exec_code_file(l, file, sizeof(file));
        cmd_arg(&c, py);
        cmd_arg(&c, "-u");
        if (json_is_array(mods) && json_array_size(mods)) {
            /* Pre-import the modules, then run the file as __main__ with their top-level
             * names already bound. */
            char pre[4096];
            size_t k = 0, i;
            json_t *m;

            k += (size_t)snprintf(pre, sizeof(pre), "import runpy, importlib\n_g = {}\n");
            json_array_foreach(mods, i, m) if (k < sizeof(pre) - 300)
            {
                const char *name = json_string_value(m);

                k += (size_t)snprintf(pre + k, sizeof(pre) - k,
                                      "importlib.import_module('%s')\n_g['%.*s'] = "
                                      "__import__('%s')\n",
                                      name, (int)strcspn(name, "."), name, name);
            }
            snprintf(pre + k, sizeof(pre) - k,
                     "runpy.run_path('%s', init_globals=_g, run_name='__main__')", file);
            cmd_arg(&c, "-c");
            cmd_arg(&c, pre);
        } else {
            cmd_arg(&c, file);
        }
    }
    base_env(&c, l, work);
    err = spawn(r, &c, work);
    cmd_free(&c);
    if (!err && r->phase == 1)
        live_running(l);
    return err;
}

/* ---- the I/O thread ---- */

static void close_fd(struct lrun *r, int i)
{
    if (r->fd[i] < 0)
        return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, r->fd[i], NULL);
    close(r->fd[i]);
    pthread_mutex_lock(&r->mu);
    r->fd[i] = -1;
    pthread_mutex_unlock(&r->mu);
}

static void drain(struct lrun *r, int i)
{
    char buf[65536];

    for (;;) {
        ssize_t n = read(r->fd[i], buf, sizeof(buf));

        if (n > 0) {
            if (r->phase == 0) {
                if (r->install_log >= 0 && write(r->install_log, buf, (size_t)n) != n)
                    log_error("run %s: cannot write install.log", r->l->id);
            } else {
                live_output(r->l, i == EP_OUT ? OUT_STDOUT : OUT_STDERR, buf, (size_t)n);
            }
            if (n < (ssize_t)sizeof(buf))
                return;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        close_fd(r, i);
        return;
    }
}

static void reap(struct lrun *r)
{
    int st = 0;
    pid_t pgid = r->pid;

    if (waitpid(r->pid, &st, WNOHANG) != r->pid)
        return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, r->pidfd, NULL);
    close(r->pidfd);
    kill(-pgid, SIGKILL); /* whatever the run left behind in its group */
    pthread_mutex_lock(&r->mu);
    r->pidfd = -1;
    r->exited = 1;
    r->exited_at = now_mono_us();
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pthread_mutex_unlock(&r->mu);
}

static void unlink_run(struct lrun *r)
{
    pthread_mutex_lock(&list_mu);
    for (struct lrun **pp = &all; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    pthread_mutex_unlock(&list_mu);
}

/* Moves a run on when its phase is over: to the next phase, or to its end. */
static void advance(struct lrun *r)
{
    int killed;

    if (!r->exited || r->fd[0] >= 0 || r->fd[1] >= 0)
        return;
    pthread_mutex_lock(&r->mu);
    killed = r->killed;
    pthread_mutex_unlock(&r->mu);
    if (r->phase == 0) {
        runs_set_install_rc(r->l->id, r->status);
        if (r->install_log >= 0)
            close(r->install_log);
        r->install_log = -1;
        if (r->status == 0 && !killed) {
            live_output(r->l, OUT_SYSTEM, "[lyceumd] requirements installed\n", 33);
            r->phase = 1;
            if (start_phase(r) == 0)
                return;
            unlink_run(r);
            live_exited(r->l, -1, "cannot start the run's process");
            return;
        }
        if (!killed) {
            snprintf(r->l->note, sizeof(r->l->note),
                     "Installing the requirements failed (exit code %d); see install_log",
                     r->status);
            live_output(r->l, OUT_SYSTEM, "[lyceumd] installing the requirements failed\n", 45);
        }
    }
    unlink_run(r);
    if (r->has_cg)
        cgroup_destroy(&r->cg);
    r->has_cg = 0;
    live_exited(r->l, r->status, NULL);
}

static void *io_main(void *arg)
{
    struct epoll_event evs[64];

    (void)arg;
    while (!io_stop) {
        int n = epoll_wait(epfd, evs, 64, 200);
        int64_t now = now_mono_us();

        for (int i = 0; i < n; i++) {
            struct ep *e = evs[i].data.ptr;

            if (!e)
                continue; /* the eventfd */
            if (e->what == EP_PID)
                reap(e->r);
            else if (e->r->fd[e->what] >= 0)
                drain(e->r, e->what);
            advance(e->r);
        }
        /* Pipes held open by a process that escaped its group: stop waiting for them. */
        for (;;) {
            struct lrun *late = NULL;

            pthread_mutex_lock(&list_mu);
            for (struct lrun *r = all; r && !late; r = r->next)
                if (r->exited && now - r->exited_at > DRAIN_GRACE_US &&
                    (r->fd[0] >= 0 || r->fd[1] >= 0))
                    late = r;
            pthread_mutex_unlock(&list_mu);
            if (!late)
                break;
            close_fd(late, 0);
            close_fd(late, 1);
            advance(late);
        }
    }
    return NULL;
}

/* ---- the interface ---- */

static int local_start(struct live *l)
{
    struct lrun *r = xcalloc(1, sizeof(*r));
    char work[PATH_MAX], why[300] = "", path[PATH_MAX + 16];
    const char *req = json_string_value(json_object_get(l->spec, "requirements_content"));
    int err;

    if (!req)
        req = json_string_value(json_object_get(l->spec, "requirements"));
    pthread_mutex_init(&r->mu, NULL);
    r->l = l;
    r->pidfd = r->fd[0] = r->fd[1] = r->install_log = -1;
    l->exec_priv = r;
    if (exec_prepare_python(l, l->dir, work, sizeof(work), why, sizeof(why))) {
        snprintf(l->errbuf, sizeof(l->errbuf), "%s", why);
        return LY_EIO;
    }
    r->has_cg = cgroup_create(&r->cg, l->id, l->mem_bytes, l->pids_max, l->cpus) == 0;
    r->has_install = req && *req;
    r->phase = r->has_install ? 0 : 1;
    if (r->has_install) {
        snprintf(path, sizeof(path), "%s/install.log", l->dir);
        r->install_log = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        live_output(l, OUT_SYSTEM, "[lyceumd] installing requirements\n", 34);
    }
    pthread_mutex_lock(&list_mu);
    r->next = all;
    all = r;
    pthread_mutex_unlock(&list_mu);
    err = start_phase(r);
    if (err) {
        unlink_run(r);
        snprintf(l->errbuf, sizeof(l->errbuf), "cannot start the run's process: %s",
                 strerror(errno));
    }
    return err;
}

/* Sends sig to every process of group pgid except bubblewrap's own (a SIGTERM to bwrap would
 * end the sandbox at once, with no grace for the run). */
static void signal_group_but_bwrap(pid_t pgid, int sig)
{
    DIR *d = opendir("/proc");
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d))) {
        char path[64], buf[512], *p;
        long pid = strtol(de->d_name, &p, 10);
        FILE *f;
        int pg = 0;
        char comm[64] = "";

        if (*p || pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(buf, sizeof(buf), f)) {
            char *open = strchr(buf, '('), *close = strrchr(buf, ')');

            if (open && close && close > open) {
                snprintf(comm, sizeof(comm), "%.*s", (int)(close - open - 1), open + 1);
                /* After ")": state ppid pgrp. */
                sscanf(close + 1, " %*c %*d %d", &pg);
            }
        }
        fclose(f);
        if (pg == pgid && strcmp(comm, "bwrap") != 0)
            kill((pid_t)pid, sig);
    }
    closedir(d);
}

void exec_signal_group(pid_t pgid, int sig)
{
    if (sig == SIGTERM && sandbox)
        signal_group_but_bwrap(pgid, sig);
    else
        kill(-pgid, sig);
}

static void local_signal(struct live *l, int sig)
{
    struct lrun *r = l->exec_priv;

    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    if (sig == SIGKILL)
        r->killed = 1;
    if (r->pid > 0 && !r->exited)
        exec_signal_group(r->pid, sig);
    pthread_mutex_unlock(&r->mu);
}

static void local_release(struct live *l)
{
    struct lrun *r = l->exec_priv;

    if (!r)
        return;
    if (r->install_log >= 0)
        close(r->install_log);
    if (r->has_cg)
        cgroup_destroy(&r->cg);
    pthread_mutex_destroy(&r->mu);
    free(r);
    l->exec_priv = NULL;
}

const struct exec_ops exec_local = {
    .name = "local",
    .start = local_start,
    .signal = local_signal,
    .release = local_release,
};

int exec_local_init(const struct config *c)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    cfg = c;
    if (exec_find(c->python, python, sizeof(python))) {
        log_error("the Python interpreter '%s' was not found (config \"python\")", c->python);
        return LY_EINVAL;
    }
    if (!realpath(c->data_dir, data_abs)) {
        log_error("cannot resolve the data directory %s", c->data_dir);
        return LY_EIO;
    }
    sandbox = c->sandbox != 0 && exec_find("bwrap", bwrap, sizeof(bwrap)) == 0;
    if (c->sandbox == 1 && !sandbox) {
        log_error("the config requires a sandbox but bubblewrap (bwrap) is not installed");
        return LY_EINVAL;
    }
    if (!sandbox)
        log_info("runs are not sandboxed%s", c->sandbox ? " (bubblewrap is not installed)" : "");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev);
    if (pthread_create(&io_thread, NULL, io_main, NULL) != 0)
        return LY_EINTERNAL;
    io_running = 1;
    return 0;
}

void exec_local_shutdown(void)
{
    uint64_t one = 1;

    if (!io_running)
        return;
    io_stop = 1;
    if (write(evfd, &one, sizeof(one)) != sizeof(one))
        log_error("cannot wake the I/O thread");
    pthread_join(io_thread, NULL);
    close(epfd);
    close(evfd);
    io_running = 0;
}
