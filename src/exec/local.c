/*
 * The local executor: runs a Python run as child processes of lyceumd on this machine.
 *
 * A run's directory holds work/ (its code, import_files, requirements and virtualenv: the
 * process's working directory), install.log and output.log. A run with requirements has two
 * phases, each one process group: the install (python -m venv + pip, output to install.log),
 * then the user's code. Each phase runs in the sandbox (sandbox.h) as the run's own
 * unprivileged uid, which owns work/: it sees the system read-only, work/ read-write, its
 * bucket at /mnt/s3, a private /tmp, and nothing else of the host.
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
#include "exec/sandbox.h"
#include "core/worker.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
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
    uid_t uid;         /* the host uid it runs as (0: not sandboxed) */
    struct sandbox sb; /* the current phase's (its network helper) */
    struct ep ep[3];
    struct lrun *next;
};

static const struct config *cfg;
static int epfd = -1, evfd = -1;
static struct worker_pool *io_pool; /* the I/O thread: a pool of one */
static int io_running, io_stop;
static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lrun *all;
static char python[PATH_MAX];

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

static void base_env(struct cmd *c, struct live *l, const char *work)
{
    const char *k;
    json_t *v;

    cmd_env(c, "PATH", "/usr/local/bin:/usr/bin:/bin");
    cmd_env(c, "HOME", sandbox_on() ? SANDBOX_HOME : work);
    cmd_env(c, "LANG", "C.UTF-8");
    cmd_env(c, "PYTHONUNBUFFERED", "1");
    cmd_env(c, "PYTHONDONTWRITEBYTECODE", "1");
    cmd_env(c, "LYCEUM_EXECUTION_ID", l->id);
    cmd_env(c, "CUDA_VISIBLE_DEVICES", l->gpus);
    if (!sandbox_on()) {
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
    pid_t pid, parent = getpid();
    uid_t uid = s->uid;

    if (s->rlimit_as > 0)
        as.rlim_cur = as.rlim_max = (rlim_t)s->rlimit_as;
    if (s->rlimit_nproc > 0)
        np.rlim_cur = np.rlim_max = (rlim_t)s->rlimit_nproc;
    c->argv[c->argc] = NULL;
    c->envp[c->envc] = NULL;
    pid = fork();
    if (pid == 0) {
        /* The child: only async-signal-safe calls from here to execve. A session of its own
         * leaves lyceumd's controlling terminal behind. */
        setsid();
        if (s->cg)
            cgroup_join_child(s->cg);
        dup2(devnull, 0);
        dup2(s->out, 1);
        dup2(s->err, 2);
        /* Before the uid changes: the run's uid cannot traverse the data directory. */
        if (chdir(s->dir) != 0)
            _exit(126);
        if (as.rlim_max)
            setrlimit(RLIMIT_AS, &as);
        if (np.rlim_max)
            setrlimit(RLIMIT_NPROC, &np);
        for (int i = 0; i < s->nkeep; i++)
            fcntl(s->keep[i], F_SETFD, 0);
        if (s->setup && s->setup(s->setup_arg))
            _exit(124);
        if (uid && (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
            _exit(125);
        /* After the uid change, which clears it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(125);
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
    errno = saved;
    return pid;
}

/* Forks the command into its own process group with stdout/stderr on new pipes; under the
 * sandbox, waits for it to be set up (r->sb was prepared with the command). */
static int spawn(struct lrun *r, struct cmd *c, const char *work)
{
    int out[2], err[2];
    struct child_setup cs = {.dir = work, .cg = r->has_cg ? &r->cg : NULL, .uid = r->uid};
    pid_t pid;
    char why[300] = "";

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
    cs.keep = r->sb.keep;
    cs.nkeep = r->uid ? r->sb.nkeep : 0;
    cs.setup = r->uid ? sandbox_child : NULL;
    cs.setup_arg = &r->sb;
    pid = exec_fork(c, &cs);
    close(out[1]);
    close(err[1]);
    if (pid > 0 && r->uid && sandbox_started(&r->sb, why, sizeof(why)) != 0) {
        char said[200];
        ssize_t got;

        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        /* What bubblewrap said on its way out, if anything. */
        fcntl(err[0], F_SETFL, O_NONBLOCK);
        got = read(err[0], said, sizeof(said) - 1);
        said[got > 0 ? got : 0] = '\0';
        said[strcspn(said, "\n")] = '\0';
        if (said[0])
            snprintf(why + strlen(why), sizeof(why) - strlen(why), " (%s)", said);
        pid = -1;
    }
    if (pid < 0) {
        snprintf(r->l->errbuf, sizeof(r->l->errbuf), "cannot start the run's process: %s",
                 why[0] ? why : strerror(errno));
        sandbox_end(&r->sb);
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
    live_pid(r->l, pid, exec_proc_start(pid));
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

/* The Python code that imports the run's prior_imports, then runs its file as __main__ with
 * their top-level names bound. The names were checked by the API (letters, digits, '_' and
 * '.', not starting with a digit), so they are safe inside quotes. The caller frees it. */
static char *prior_imports_script(json_t *mods, const char *file)
{
    char *text = NULL;
    size_t len = 0, i;
    FILE *f = open_memstream(&text, &len);
    json_t *m;

    if (!f)
        return NULL;
    fputs("import runpy, importlib\n_g = {}\n", f);
    json_array_foreach(mods, i, m)
    {
        const char *name = json_string_value(m);

        if (name)
            fprintf(f, "importlib.import_module('%s')\n_g['%.*s'] = __import__('%s')\n", name,
                    (int)strcspn(name, "."), name, name);
    }
    fprintf(f, "runpy.run_path('%s', init_globals=_g, run_name='__main__')", file);
    fclose(f);
    return text;
}

static int start_phase(struct lrun *r)
{
    struct live *l = r->l;
    struct cmd c = {0};
    char work[PATH_MAX], file[160], venv_py[PATH_MAX + 32];
    const char *py = python;
    int err;

    snprintf(work, sizeof(work), "%.1000s/work", l->dir);
    snprintf(venv_py, sizeof(venv_py), "%s/.venv/bin/python", r->uid ? SANDBOX_HOME : work);
    if (r->uid) {
        struct sandbox_view v = {.rw_dir = work,
                                 .bucket = l->bucket[0] ? l->bucket : NULL,
                                 .exe = python,
                                 .network = cfg->sandbox_network,
                                 .gpus = l->gpus[0] != '\0',
                                 .uid = r->uid};

        if (sandbox_prepare(&r->sb, &c, &v, l->errbuf, sizeof(l->errbuf))) {
            cmd_free(&c);
            return LY_EIO;
        }
    }
    if (r->phase == 0) {
        char script[PATH_MAX + 2048], trusted[300] = "";
        const char *index = cfg->pip_index_url;

        /* The operator's own index is trusted over plain HTTP too (a mirror on the host is
         * reached at the sandbox's gateway, which pip would otherwise refuse). */
        if (strncmp(index, "http://", 7) == 0)
            snprintf(trusted, sizeof(trusted), "--trusted-host '%.*s'",
                     (int)strcspn(index + 7, ":/'"), index + 7);
        snprintf(script, sizeof(script),
                 "'%s' -m venv --system-site-packages .venv && .venv/bin/python -m pip install "
                 "--disable-pip-version-check --no-input --retries 0 --timeout 15 %s%s%s %s "
                 "-r requirements.txt",
                 python, index[0] ? "--index-url '" : "", index, index[0] ? "'" : "", trusted);
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
            char *pre = prior_imports_script(mods, file);

            cmd_arg(&c, "-c");
            cmd_arg(&c, pre ? pre : "raise SystemExit('lyceumd: out of memory')");
            free(pre);
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
    sandbox_end(&r->sb);
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

#define INSTALL_TAIL 8192

/* Streams the end of install.log (pip's own error text: what it could not find or build) into
 * the run's output as stderr, so that a client following the run sees why it failed without
 * asking for install_log: at most its last INSTALL_TAIL bytes, from a line's start. */
static void install_tail(struct lrun *r)
{
    char path[PATH_MAX], *buf = xmalloc(INSTALL_TAIL), *p;
    struct stat st;
    ssize_t n = 0;
    off_t off;
    int fd;

    snprintf(path, sizeof(path), "%s/install.log", r->l->dir);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 && fstat(fd, &st) == 0) {
        off = st.st_size > INSTALL_TAIL ? st.st_size - INSTALL_TAIL : 0;
        n = pread(fd, buf, INSTALL_TAIL, off);
        p = buf;
        if (n > 0 && off > 0) {
            char *nl = memchr(buf, '\n', (size_t)n);

            if (nl && nl + 1 < buf + n)
                p = nl + 1;
        }
        if (n > 0) {
            live_output(r->l, OUT_STDERR, p, (size_t)(buf + n - p));
            if (buf[n - 1] != '\n')
                live_output(r->l, OUT_STDERR, "\n", 1);
        }
    }
    if (fd >= 0)
        close(fd);
    free(buf);
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
        live_install_rc(r->l, r->status);
        if (r->install_log >= 0)
            close(r->install_log);
        r->install_log = -1;
        if (r->status == 0 && !killed) {
            live_output(r->l, OUT_SYSTEM, "[lyceumd] requirements installed\n", 33);
            r->phase = 1;
            if (start_phase(r) == 0)
                return;
            unlink_run(r);
            live_exited(r->l, -1,
                        r->l->errbuf[0] ? r->l->errbuf : "cannot start the run's process");
            return;
        }
        if (!killed) {
            snprintf(r->l->note, sizeof(r->l->note),
                     "Installing the requirements failed (exit code %d); see install_log",
                     r->status);
            install_tail(r);
            live_output(r->l, OUT_SYSTEM, "[lyceumd] installing the requirements failed\n", 45);
        }
    }
    unlink_run(r);
    if (r->has_cg)
        cgroup_destroy(&r->cg);
    r->has_cg = 0;
    live_exited(r->l, r->status, NULL);
}

static void *io_main(void *arg);

static void io_job(void *arg)
{
    io_main(arg);
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

static uid_t chown_to;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return lchown(path, chown_to, chown_to) ? -1 : 0;
}

/* Makes the run's uid the owner of work/ and what lyceumd wrote in it (its code and files):
 * only it may write there. Serialised: runs start from one thread at a time per phase. */
static int give_work(const char *work, uid_t uid)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int err;

    pthread_mutex_lock(&mu);
    chown_to = uid;
    err = nftw(work, chown_one, 16, FTW_PHYS);
    pthread_mutex_unlock(&mu);
    return err ? -1 : chmod(work, 0700);
}

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
    r->sb.info_r = r->sb.block_w = r->sb.netns = -1;
    l->exec_priv = r;
    if (exec_prepare_python(l, l->dir, work, sizeof(work), why, sizeof(why))) {
        snprintf(l->errbuf, sizeof(l->errbuf), "%s", why);
        return LY_EIO;
    }
    if (sandbox_on()) {
        r->uid = sandbox_uid_take();
        if (!r->uid) {
            snprintf(l->errbuf, sizeof(l->errbuf),
                     "every uid of the sandbox's range is in use (config \"sandbox_uid_count\")");
            return LY_EUNAVAIL;
        }
        if (give_work(work, r->uid)) {
            snprintf(l->errbuf, sizeof(l->errbuf), "cannot give the run its directory: %s",
                     strerror(errno));
            return LY_EIO;
        }
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
        if (!l->errbuf[0])
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
    if (sig == SIGTERM && sandbox_on())
        signal_group_but_bwrap(pgid, sig);
    else if (kill(-pgid, sig) != 0 && errno == ESRCH)
        kill(pgid, sig); /* so early that it has not made its session yet */
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
    sandbox_end(&r->sb);
    sandbox_uid_give(r->uid);
    pthread_mutex_destroy(&r->mu);
    free(r);
    l->exec_priv = NULL;
}

/* A local run cannot be followed across a restart (its pipes went with the old process): its
 * process group, if it still lives as the same process, is ended. */
static int local_adopt(struct live *l, const struct exec_prior *prior)
{
    int64_t start = prior->pid > 0 ? exec_proc_start(prior->pid) : -1;

    if (prior->pid > 0 && start == prior->pid_start && start >= 0) {
        kill(-(pid_t)prior->pid, SIGKILL);
        log_info("run %s: ended its process group %lld left from before the restart", l->id,
                 (long long)prior->pid);
    }
    return LY_ENOTFOUND;
}

static void local_capacity(struct exec_capacity *cap)
{
    cap->kinds = 1 << RUN_PYTHON;
    cap->local_gpus = 1;
}

/* The I/O thread starts whether a profile runs locally or not: services need it too. */
static int local_init(const struct config *c, int used)
{
    (void)used;
    return exec_local_init(c);
}

const struct exec_ops exec_local = {
    .name = "local",
    .init = local_init,
    .shutdown = exec_local_shutdown,
    .start = local_start,
    .signal = local_signal,
    .release = local_release,
    .adopt = local_adopt,
    .capacity = local_capacity,
};

int exec_local_init(const struct config *c)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    cfg = c;
    if (exec_find(c->python, python, sizeof(python))) {
        log_error("the Python interpreter '%s' was not found (config \"python\")", c->python);
        return LY_EINVAL;
    }
    if (strchr(c->pip_index_url, '\'') || strchr(c->python, '\'')) {
        log_error("config: \"pip_index_url\" and \"python\" may not contain a quote (')");
        return LY_EINVAL;
    }
    if (sandbox_init(c))
        return LY_EINVAL;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev);
    io_pool = worker_pool_new("local runs' I/O", 1, 0);
    if (worker_submit(io_pool, io_job, NULL)) {
        worker_pool_free(io_pool);
        io_pool = NULL;
        return LY_EINTERNAL;
    }
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
    worker_pool_free(io_pool);
    io_pool = NULL;
    close(epfd);
    close(evfd);
    io_running = 0;
}
