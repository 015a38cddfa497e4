/*
 * Services: long-running commands that lyceumd starts and ends itself (inference replicas),
 * started as local runs are (see exec.h).
 *
 * A service is one fork through exec_fork() (local.c): its own process group, killed with
 * lyceumd, in control groups of its own named after it with the profile's limits (or the same
 * rlimits a run falls back to), and, where runs are sandboxed, in the sandbox of sandbox.h as
 * an unprivileged uid of its own: the system read-only, a private /tmp, its home (read-write)
 * and the paths it may read, and a network namespace of its own, with outbound access as runs
 * have it. lyceumd reaches it on its own loopback, through sockets made in that namespace
 * (exec_service_netns, exec_netns_socket): nothing outside lyceumd can. Its environment is
 * lyceumd's own (where the operator keeps what the model server needs: PATH, LD_LIBRARY_PATH,
 * proxies) with HOME, TMPDIR under the sandbox, and the caller's variables over it.
 */
#include "exec/exec.h"
#include "exec/cgroup.h"
#include "exec/local_int.h"
#include "exec/sandbox.h"
#include "core/arena.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct service {
    pid_t pid;
    int has_cg;
    struct cgroup cg;
    uid_t uid;         /* 0: not sandboxed */
    int own_uid;       /* the uid is its own (taken here), not its owner's */
    struct sandbox sb; /* its network namespace (kept) and helper */
};

/* Whether NAME=... of environ is one that spec sets itself. */
static int overridden(const char *var, const struct service_spec *spec, int sandboxed)
{
    size_t n = strcspn(var, "=");

    if ((n == 4 && strncmp(var, "HOME", 4) == 0) ||
        (sandboxed && n == 6 && strncmp(var, "TMPDIR", 6) == 0))
        return 1;
    for (char *const *e = spec->env; e && *e; e++)
        if (strncmp(*e, var, n) == 0 && (*e)[n] == '=')
            return 1;
    return 0;
}

static void service_env(struct cmd *c, const struct service_spec *spec, int sandboxed)
{
    for (char **e = environ; e && *e; e++)
        if (strchr(*e, '=') && !overridden(*e, spec, sandboxed) && c->envc < ENV_MAX - 1)
            c->envp[c->envc++] = xstrdup(*e);
    cmd_env(c, "HOME", sandboxed ? SANDBOX_HOME : spec->home);
    if (sandboxed)
        cmd_env(c, "TMPDIR", "/tmp");
    for (char *const *e = spec->env; e && *e; e++)
        if (c->envc < ENV_MAX - 1)
            c->envp[c->envc++] = xstrdup(*e);
}

/* Frees c, clearing its environment first: it may hold a token. */
static void cmd_clear(struct cmd *c)
{
    for (int i = 0; i < c->envc; i++)
        explicit_bzero(c->envp[i], strlen(c->envp[i]));
    cmd_free(c);
}

struct service *exec_service_start(const struct service_spec *spec, char *why, size_t n)
{
    struct service *s;
    struct cmd c = {0};
    struct child_setup cs = {.dir = spec->home,
                             .fail_msg = "lyceumd: cannot start the service's command\n"};
    char found[PATH_MAX], cwd[PATH_MAX], exe[PATH_MAX];
    int sandboxed = sandbox_on(), log_fd;

    if (!spec->argv || !spec->argv[0] || !*spec->argv[0]) {
        snprintf(why, n, "the command is empty");
        return NULL;
    }
    if (exec_find(spec->argv[0], found, sizeof(found))) {
        snprintf(why, n, "'%.200s' was not found on PATH or is not executable", spec->argv[0]);
        return NULL;
    }
    /* Absolute, as the command starts in its home; not resolved further: a virtualenv's
     * python is a link that must keep its name. */
    if (found[0] == '/' || !getcwd(cwd, sizeof(cwd)))
        snprintf(exe, sizeof(exe), "%s", found);
    else
        snprintf(exe, sizeof(exe), "%.2000s/%.2000s", cwd, found);
    if (mkdir(spec->home, 0700) != 0 && errno != EEXIST) {
        snprintf(why, n, "cannot create %.200s: %s", spec->home, strerror(errno));
        return NULL;
    }
    log_fd = open(spec->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        snprintf(why, n, "cannot open %.200s: %s", spec->log_path, strerror(errno));
        return NULL;
    }
    s = xcalloc(1, sizeof(*s));
    s->sb.info_r = s->sb.block_w = s->sb.netns = -1;
    s->has_cg = cgroup_create(&s->cg, spec->name, spec->mem_bytes, spec->pids_max, spec->cpus) == 0;
    if (sandboxed) {
        struct sandbox_view v = {.rw_dir = spec->home,
                                 .ro_paths = spec->ro_paths,
                                 .exe = exe,
                                 .network = spec->network,
                                 .gpus = spec->gpus,
                                 .keep_netns = 1};

        s->own_uid = !spec->uid;
        s->uid = v.uid = spec->uid ? spec->uid : sandbox_uid_take();
        if (!s->uid) {
            snprintf(why, n, "every uid of the sandbox's range is in use");
        } else if (chown(spec->home, s->uid, s->uid) == 0 && chmod(spec->home, 0700) == 0) {
            if (sandbox_prepare(&s->sb, &c, &v, why, n) == 0)
                why[0] = '\0';
        } else {
            snprintf(why, n, "cannot give the service its home: %s", strerror(errno));
        }
        if (!s->uid || why[0]) {
            close(log_fd);
            cmd_clear(&c);
            exec_service_free(s);
            return NULL;
        }
    }
    cmd_arg(&c, exe);
    for (char *const *a = spec->argv + 1; *a; a++)
        cmd_arg(&c, *a);
    service_env(&c, spec, sandboxed);
    if (c.too_long) {
        snprintf(why, n, "the command has too many arguments (at most %d with the sandbox's)",
                 ARGV_MAX - 1);
        close(log_fd);
        cmd_clear(&c);
        exec_service_free(s);
        return NULL;
    }
    cs.out = cs.err = log_fd;
    cs.cg = s->has_cg ? &s->cg : NULL;
    /* Without a cgroup the memory limit falls back to the address-space rlimit, as for a run;
     * not for a service on GPUs: CUDA maps far more address space than it uses. */
    cs.rlimit_as = s->has_cg || spec->gpus ? 0 : spec->mem_bytes;
    cs.rlimit_nproc = spec->pids_max;
    cs.uid = s->uid;
    cs.keep = s->sb.keep;
    cs.nkeep = s->uid ? s->sb.nkeep : 0;
    cs.setup = s->uid ? sandbox_child : NULL;
    cs.setup_arg = &s->sb;
    s->pid = exec_fork(&c, &cs);
    if (s->pid < 0)
        snprintf(why, n, "cannot fork: %s", strerror(errno));
    else if (s->uid && sandbox_started(&s->sb, why, n) != 0) {
        kill(-s->pid, SIGKILL);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = -1;
    }
    close(log_fd);
    cmd_clear(&c);
    if (s->has_cg)
        cgroup_close_fds(&s->cg);
    if (s->pid < 0) {
        exec_service_free(s);
        return NULL;
    }
    return s;
}

pid_t exec_service_pid(const struct service *s)
{
    return s->pid;
}

void exec_service_signal(struct service *s, int sig)
{
    if (s->pid > 0)
        exec_signal_group(s->pid, sig);
}

uid_t exec_uid_take(void)
{
    return sandbox_on() ? sandbox_uid_take() : 0;
}

void exec_uid_give(uid_t uid)
{
    sandbox_uid_give(uid);
}

int exec_service_netns(const struct service *s)
{
    return s->sb.netns >= 0 ? fcntl(s->sb.netns, F_DUPFD_CLOEXEC, 0) : -1;
}

void exec_service_free(struct service *s)
{
    if (!s)
        return;
    if (s->pid > 0)
        kill(-s->pid, SIGKILL); /* whatever is left in its group */
    if (s->has_cg)
        cgroup_destroy(&s->cg);
    sandbox_end(&s->sb);
    if (s->own_uid)
        sandbox_uid_give(s->uid);
    free(s);
}

void exec_service_forget(const char *name)
{
    cgroup_remove(name);
}
