/*
 * See sandbox.h. Three parts:
 *   - the uid pool: a bitmap over the config's range, taken round-robin so that a uid is
 *     reused as late as possible; every process still running as a uid is killed before it
 *     goes back (by the uid itself: kill(-1) as that uid), and at start-up what a killed
 *     lyceumd left running in its slice of the range is;
 *   - bubblewrap's command line: the root it builds (system directories read-only, data files
 *     of its own for passwd, group and hosts, tmpfs where the host keeps sockets), the binds
 *     from descriptors, the namespaces, and the seccomp filter compiled once at start-up by
 *     libseccomp and handed over in a memfd;
 *   - the network: bubblewrap tells its child's pid through --info-fd and waits on --block-fd;
 *     meanwhile slirp4netns is started as the sandbox's uid, in a mount namespace of its own
 *     (no host /run or /tmp; a tun node it may open), in the egress filter's cgroup, attached
 *     to the sandbox's network namespace; once it says ready, the command may start.
 */
#include "exec/sandbox.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "exec/egress.h"
#include "exec/exec.h"
#include "exec/local_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 10000

static int on;
static char bwrap[PATH_MAX], slirp[PATH_MAX];
static json_t *extra_ro; /* the config's sandbox_ro_paths */
static int network_on;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static uint32_t uid_base, uid_count, uid_next;
static unsigned char *uid_used; /* a bit per uid of the range */

static unsigned char *filter; /* the seccomp program (struct sock_filter[]), as exported */
static size_t filter_len;

/* ---- the uid pool ---- */

/* The config's range is cut into slices; each lyceumd on the host claims one with a lock
 * held for its life (/run/lyceumd/uids-<first uid>.lock), so that servers side by side (the
 * tests start several) never hand out the same uid or end each other's runs. A slice whose
 * owner died is claimed again, and what it left running is ended. */
#define SLICE 4096

static int claim_slice(uint32_t base, uint32_t count, uint32_t *first, uint32_t *n, int *index)
{
    uint32_t slices = count > SLICE ? count / SLICE : 1, size = count > SLICE ? SLICE : count;

    mkdir("/run/lyceumd", 0700);
    for (uint32_t i = 0; i < slices; i++) {
        char path[96];
        int fd;

        snprintf(path, sizeof(path), "/run/lyceumd/uids-%u.lock", base + i * size);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *first = base + i * size; /* the descriptor stays open: the lock is ours */
            *n = size;
            *index = (int)i;
            return 0;
        }
        close(fd);
    }
    errno = EBUSY;
    return -1;
}

/* Kills every process whose real uid is in [lo, lo + n). */
static void sweep(uid_t lo, uint32_t n)
{
    DIR *d = opendir("/proc");
    struct dirent *de;

    while (d && (de = readdir(d))) {
        char path[64], line[128];
        FILE *f;
        long pid = atol(de->d_name);

        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        f = fopen(path, "re");
        while (f && fgets(line, sizeof(line), f)) {
            unsigned long uid;

            if (sscanf(line, "Uid: %lu", &uid) == 1) {
                if (uid >= lo && uid - lo < n)
                    kill((pid_t)pid, SIGKILL);
                break;
            }
        }
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
}

uid_t sandbox_uid_take(void)
{
    uid_t uid = 0;

    pthread_mutex_lock(&pool_mu);
    for (uint32_t i = 0; i < uid_count && !uid; i++) {
        uint32_t k = (uid_next + i) % uid_count;

        if (!(uid_used[k / 8] & (1u << (k % 8)))) {
            uid_used[k / 8] |= (unsigned char)(1u << (k % 8));
            uid_next = k + 1;
            uid = uid_base + k;
        }
    }
    pthread_mutex_unlock(&pool_mu);
    return uid;
}

/* Kills every process of uid, as uid itself: kill(-1) reaches exactly the processes the
 * sender may signal, those whose real or saved uid is its own. */
static void kill_uid(uid_t uid)
{
    pid_t pid = fork();

    if (pid == 0) {
        if (setresgid(uid, uid, uid) == 0 && setresuid(uid, uid, uid) == 0)
            kill(-1, SIGKILL);
        _exit(0);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    else
        sweep(uid, 1);
}

void sandbox_uid_give(uid_t uid)
{
    uint32_t k = uid - uid_base;

    if (!uid || uid < uid_base || k >= uid_count)
        return;
    kill_uid(uid);
    pthread_mutex_lock(&pool_mu);
    uid_used[k / 8] &= (unsigned char)~(1u << (k % 8));
    pthread_mutex_unlock(&pool_mu);
}

/* ---- the seccomp filter ---- */

/* System calls a tenant never needs and that reach into the kernel's riskiest parts or the
 * host: refused with EPERM (ENOSYS for clone3, so that libc falls back to clone, whose flags
 * can be checked). */
static const char *const refused[] = {
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "ptrace",
    "process_vm_writev",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "userfaultfd",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "vhangup",
    "uselib",
    "nfsservctl",
    "personality",
    "fanotify_init",
    "pidfd_getfd",
};

static int compile_filter(char *why, size_t n)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int err = 0, fd = -1;
    struct stat st;

    if (!ctx) {
        snprintf(why, n, "libseccomp cannot make a filter");
        return -1;
    }
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]) && !err; i++) {
        int nr = seccomp_syscall_resolve_name(refused[i]);

        if (nr != __NR_SCMP_ERROR)
            err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    if (!err)
        err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* New user namespaces (bubblewrap's own --disable-userns refuses them too). */
    if (!err)
        err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    if (!err)
        err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    /* Packet sockets and raw IP sockets (the type's low bits; flags may be or-ed in). */
    if (!err)
        err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                               SCMP_A0(SCMP_CMP_EQ, AF_PACKET));
    for (int fam = 0; fam < 2 && !err; fam++)
        err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 2,
                               SCMP_A0(SCMP_CMP_EQ, fam ? AF_INET6 : AF_INET),
                               SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW));
    /* Typing into a terminal (there is none, but no door is left ajar). */
    if (!err)
        err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                               SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
    if (!err)
        err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                               SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX));
    if (!err) {
        fd = memfd_create("lyceumd-seccomp", MFD_CLOEXEC);
        err = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
    }
    if (!err && fstat(fd, &st) == 0 && st.st_size > 0) {
        filter_len = (size_t)st.st_size;
        filter = xmalloc(filter_len);
        if (pread(fd, filter, filter_len, 0) != (ssize_t)filter_len)
            err = -EIO;
    } else if (!err) {
        err = -EIO;
    }
    if (fd >= 0)
        close(fd);
    seccomp_release(ctx);
    if (err)
        snprintf(why, n, "cannot compile the seccomp filter: %s", strerror(-err));
    return err ? -1 : 0;
}

/* ---- bubblewrap's command line ---- */

static void arg3(struct cmd *c, const char *a, const char *b, const char *d)
{
    cmd_arg(c, a);
    cmd_arg(c, b);
    if (d)
        cmd_arg(c, d);
}

/* A descriptor bubblewrap will read, numbered in its argument list. */
static int keep(struct sandbox *sb, int fd)
{
    if (fd < 0 || sb->nkeep >= SANDBOX_FDS) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    sb->keep[sb->nkeep++] = fd;
    return fd;
}

static int data_fd(struct sandbox *sb, const char *name, const void *data, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC);

    if (fd < 0)
        return -1;
    if (write(fd, data, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return keep(sb, fd);
}

/* --<opt> FD DEST for a file we write. */
static int bind_data(struct sandbox *sb, struct cmd *c, const char *dest, const char *text)
{
    char num[16];
    int fd = data_fd(sb, dest, text, strlen(text));

    if (fd < 0)
        return -1;
    snprintf(num, sizeof(num), "%d", fd);
    arg3(c, "--ro-bind-data", num, dest);
    return 0;
}

/* A path lyceumd opens itself (the sandbox's uid could not reach it), staged by
 * sandbox_child() and bound from there by bubblewrap. */
static int bind_path(struct sandbox *sb, struct cmd *c, const char *src, const char *dest, int rw)
{
    struct sandbox_bind *b;
    struct stat st;
    const char *earlier = sb->failed;
    int fd;

    sb->failed = earlier ? earlier : src;
    if (sb->nbind >= SANDBOX_BINDS) {
        errno = E2BIG;
        return -1;
    }
    if (stat(src, &st) != 0)
        return -1;
    if (!(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
        errno = EINVAL;
        return -1;
    }
    /* A detached bind mount of it, which the child attaches in its own namespace. */
    fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0)
        return -1;
    b = &sb->bind[sb->nbind];
    b->fd = fd;
    b->is_dir = S_ISDIR(st.st_mode);
    snprintf(b->stage, sizeof(b->stage), "/run/lyceumd/%d", sb->nbind);
    sb->nbind++;
    sb->failed = earlier;
    arg3(c, rw ? "--bind" : "--ro-bind", b->stage, dest);
    return 0;
}

int sandbox_child(const void *arg)
{
    const struct sandbox *sb = arg;

    if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
        mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") ||
        mkdir("/run/lyceumd", 0755))
        return -1;
    for (int i = 0; i < sb->nbind; i++) {
        const struct sandbox_bind *b = &sb->bind[i];
        int fd = b->is_dir ? mkdir(b->stage, 0755) : open(b->stage, O_CREAT | O_WRONLY, 0644);

        if (fd < 0)
            return -1;
        if (!b->is_dir)
            close(fd);
        if (move_mount(b->fd, "", AT_FDCWD, b->stage, MOVE_MOUNT_F_EMPTY_PATH))
            return -1;
    }
    return 0;
}

static int under_system(const char *path)
{
    static const char *const sys[] = {"/usr/", "/opt/", "/etc/"};

    for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
        if (strncmp(path, sys[i], strlen(sys[i])) == 0)
            return 1;
    return 0;
}

/* The system: /usr, /etc and /opt read-only, the top-level links (or directories) of a
 * merged-/usr or classic layout, and nothing else of the host's tree. */
static void system_root(struct cmd *c)
{
    static const char *const tops[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
    struct stat st;

    arg3(c, "--ro-bind", "/usr", "/usr");
    arg3(c, "--ro-bind", "/etc", "/etc");
    if (stat("/opt", &st) == 0 && S_ISDIR(st.st_mode))
        arg3(c, "--ro-bind", "/opt", "/opt");
    for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
        char path[32], target[PATH_MAX];
        ssize_t len;

        snprintf(path, sizeof(path), "/%s", tops[i]);
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISLNK(st.st_mode) && (len = readlink(path, target, sizeof(target) - 1)) > 0) {
            target[len] = '\0';
            arg3(c, "--symlink", target, path);
        } else if (S_ISDIR(st.st_mode)) {
            arg3(c, "--ro-bind", path, path);
        }
    }
}

/* NVIDIA's device files (/dev/nvidia0, nvidiactl, nvidia-uvm, nvidia-caps/ ...) in the
 * sandbox's own /dev, and /sys, which NVML reads: CUDA opens them. */
static void gpu_devices(struct cmd *c)
{
    DIR *d = opendir("/dev");
    struct dirent *de;

    while (d && (de = readdir(d))) {
        char path[300];

        if (strncmp(de->d_name, "nvidia", 6) != 0)
            continue;
        snprintf(path, sizeof(path), "/dev/%s", de->d_name);
        arg3(c, "--dev-bind", path, path);
    }
    if (d)
        closedir(d);
    arg3(c, "--ro-bind", "/sys", "/sys");
}

static int pipe_pair(struct sandbox *sb, int *ours, int read_end_is_ours)
{
    int p[2];

    if (pipe2(p, O_CLOEXEC))
        return -1;
    *ours = p[read_end_is_ours ? 0 : 1];
    return keep(sb, p[read_end_is_ours ? 1 : 0]);
}

int sandbox_prepare(struct sandbox *sb, struct cmd *c, const struct sandbox_view *v, char *why,
                    size_t n)
{
    char text[1024], num[16], dir[PATH_MAX];
    int fail = 0, fd;

    memset(sb, 0, sizeof(*sb));
    sb->uid = v->uid;
    sb->info_r = sb->block_w = sb->netns = -1;
    sb->network = v->network && network_on;
    sb->keep_netns = v->keep_netns;
    cmd_arg(c, bwrap);
    system_root(c);
    snprintf(text, sizeof(text),
             "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
             "lyceum:x:%u:%u:lyceum:" SANDBOX_HOME ":/bin/sh\n"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
             (unsigned)v->uid, (unsigned)v->uid);
    fail |= bind_data(sb, c, "/etc/passwd", text);
    snprintf(text, sizeof(text), "root:x:0:\nlyceum:x:%u:\nnogroup:x:65534:\n", (unsigned)v->uid);
    fail |= bind_data(sb, c, "/etc/group", text);
    fail |= bind_data(sb, c, "/etc/hosts", "127.0.0.1\tlocalhost lyceum\n::1\tlocalhost\n");
    fail |= bind_data(sb, c, "/etc/hostname", "lyceum\n");
    if (sb->network)
        fail |= bind_data(sb, c, "/etc/resolv.conf", "nameserver 10.0.2.3\n");
    arg3(c, "--dev", "/dev", NULL);
    if (v->gpus)
        gpu_devices(c);
    arg3(c, "--proc", "/proc", NULL);
    arg3(c, "--tmpfs", "/tmp", NULL);
    arg3(c, "--tmpfs", "/var/tmp", NULL);
    arg3(c, "--tmpfs", "/run", NULL);
    arg3(c, "--symlink", "../run", "/var/run");
    fail |= bind_path(sb, c, v->rw_dir, SANDBOX_HOME, 1);
    if (v->bucket && exec_host->bucket_dir(v->bucket, dir, sizeof(dir)) == 0)
        fail |= bind_path(sb, c, dir, "/mnt/s3", 1);
    for (const char *const *p = v->ro_paths; p && *p; p++)
        fail |= bind_path(sb, c, *p, *p, 0);
    {
        size_t i;
        json_t *p;

        json_array_foreach(extra_ro, i, p) fail |=
            bind_path(sb, c, json_string_value(p), json_string_value(p), 0);
    }
    if (v->exe && v->exe[0] == '/' && !under_system(v->exe)) {
        const char *slash = strrchr(v->exe, '/');

        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - v->exe), v->exe);
        if (dir[0])
            fail |= bind_path(sb, c, dir, dir, 0);
    }
    fd = data_fd(sb, "seccomp", filter, filter_len);
    fail |= fd < 0;
    snprintf(num, sizeof(num), "%d", fd);
    arg3(c, "--seccomp", num, NULL);
    if (sb->network || sb->keep_netns) {
        fd = pipe_pair(sb, &sb->info_r, 1);
        snprintf(num, sizeof(num), "%d", fd);
        arg3(c, "--info-fd", num, NULL);
        fail |= fd < 0;
        fd = pipe_pair(sb, &sb->block_w, 0);
        snprintf(num, sizeof(num), "%d", fd);
        arg3(c, "--block-fd", num, NULL);
        fail |= fd < 0;
    }
    arg3(c, "--chdir", SANDBOX_HOME, NULL);
    arg3(c, "--unshare-user", "--disable-userns", NULL);
    arg3(c, "--unshare-pid", "--unshare-ipc", "--unshare-net");
    arg3(c, "--unshare-uts", "--hostname", "lyceum");
    arg3(c, "--unshare-cgroup-try", "--die-with-parent", "--");
    if (fail || c->too_long) {
        int e = errno;

        if (c->too_long)
            snprintf(why, n, "cannot prepare the sandbox: too many arguments");
        else if (sb->failed)
            snprintf(why, n, "cannot show %.300s in the sandbox: %s", sb->failed, strerror(e));
        else
            snprintf(why, n, "cannot prepare the sandbox: %s", strerror(e));
        sandbox_end(sb);
        return -1;
    }
    return 0;
}

/* ---- after the fork ---- */

static void close_keep(struct sandbox *sb)
{
    for (int i = 0; i < sb->nkeep; i++)
        close(sb->keep[i]);
    sb->nkeep = 0;
    for (int i = 0; i < sb->nbind; i++)
        close(sb->bind[i].fd);
    sb->nbind = 0;
}

/* Reads bubblewrap's --info-fd document up to its end: the pid of the sandbox's first
 * process, or -1. */
static pid_t child_pid(int fd)
{
    char buf[2048];
    size_t len = 0;
    const char *p;

    while (len < sizeof(buf) - 1) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t r;

        if (poll(&pfd, 1, READY_TIMEOUT_MS) <= 0)
            return -1;
        r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if (strstr(buf, "\n}"))
            break;
    }
    buf[len] = '\0';
    p = strstr(buf, "\"child-pid\":");
    return p ? (pid_t)atol(p + 12) : -1;
}

/* Starts slirp4netns for the namespace netns (owned by userns) as the sandbox's uid. */
static pid_t net_helper(struct sandbox *sb, int netns, int userns, int ready_w, int exit_r)
{
    char ns_path[32], us_path[48], ready[16], ex[16];
    char *argv[16] = {
        slirp, "--configure", "--mtu=65520", "--netns-type=path", us_path, "-r", ready, "-e", ex};
    int argc = 9;
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC), procs = egress_procs_fd();
    uid_t uid = sb->uid;
    pid_t pid;

    snprintf(ns_path, sizeof(ns_path), "/proc/self/fd/%d", netns);
    /* The gateway (10.0.2.2) reaches the host's loopback only when an allowed entry lies
     * there; the egress filter still decides what it may reach. */
    if (!egress_loopback_allowed())
        argv[argc++] = "--disable-host-loopback";
    argv[argc++] = ns_path;
    argv[argc++] = "tap0";
    argv[argc] = NULL;
    snprintf(us_path, sizeof(us_path), "--userns-path=/proc/self/fd/%d", userns);
    snprintf(ready, sizeof(ready), "%d", ready_w);
    snprintf(ex, sizeof(ex), "%d", exit_r);
    pid = fork();
    if (pid == 0) {
        /* The child: async-signal-safe calls only. A mount namespace of its own where the
         * host's sockets are out of sight and a tun node it may open exists. */
        const int fds[] = {netns, userns, ready_w, exit_r};

        setsid();
        if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
            _exit(120);
        if (mount("tmpfs", "/dev/net", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=16k") ||
            mknod("/dev/net/tun", S_IFCHR | 0666, makedev(10, 200)) || chmod("/dev/net/tun", 0666))
            _exit(121);
        mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k");
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k");
        mount("tmpfs", "/var/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k");
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k");
        if (procs < 0 || write(procs, "0", 1) != 1)
            _exit(122);
        for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
            fcntl(fds[i], F_SETFD, 0);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
            _exit(123);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execve(slirp, argv, envp);
        _exit(127);
    }
    if (devnull >= 0)
        close(devnull);
    return pid;
}

/* Waits until bubblewrap has brought the sandbox's loopback up (it adds 127.0.0.1, then sets
 * the link up): slirp4netns sets lo up too, and had it come first, bubblewrap's own address
 * request would fail as a duplicate and end the sandbox. 0, or -1 after READY_TIMEOUT_MS. */
static int loopback_up(int netns)
{
    int fd = exec_netns_socket(netns, AF_INET, SOCK_DGRAM, 0), up = 0;

    for (int ms = 0; fd >= 0 && ms < READY_TIMEOUT_MS && !up; ms++) {
        struct ifreq ifr = {0};

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        up = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
        if (!up)
            usleep(1000);
    }
    if (fd >= 0)
        close(fd);
    return up ? 0 : -1;
}

/* Attaches the network of the sandbox whose first process is child. 0 or -1 (why set). */
static int attach_network(struct sandbox *sb, char *why, size_t n)
{
    int userns = ioctl(sb->netns, NS_GET_USERNS), ready[2] = {-1, -1}, ex[2] = {-1, -1}, err = -1;
    struct pollfd pfd;
    char byte;

    if (userns < 0 || pipe2(ready, O_CLOEXEC) || pipe2(ex, O_CLOEXEC)) {
        snprintf(why, n, "cannot set the run's network up: %s", strerror(errno));
        goto out;
    }
    if (loopback_up(sb->netns)) {
        snprintf(why, n, "the sandbox's loopback did not come up");
        goto out;
    }
    fcntl(userns, F_SETFD, FD_CLOEXEC);
    sb->net_pid = net_helper(sb, sb->netns, userns, ready[1], ex[0]);
    close(ready[1]);
    ready[1] = -1;
    close(ex[0]);
    ex[0] = -1;
    if (sb->net_pid < 0) {
        sb->net_pid = 0;
        snprintf(why, n, "cannot start slirp4netns: %s", strerror(errno));
        goto out;
    }
    pfd = (struct pollfd){.fd = ready[0], .events = POLLIN};
    if (poll(&pfd, 1, READY_TIMEOUT_MS) != 1 || read(ready[0], &byte, 1) != 1) {
        int st = 0;

        snprintf(why, n, "the run's network (slirp4netns) did not come up%s",
                 waitpid(sb->net_pid, &st, WNOHANG) == sb->net_pid ? " (it exited)" : "");
        goto out;
    }
    /* The helper lives as long as the write end of its exit pipe, held here through ex[1]:
     * sandbox_end closes it. It is kept among the sandbox's descriptors for that. */
    sb->keep[sb->nkeep++] = ex[1];
    ex[1] = -1;
    err = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (ready[i] >= 0)
            close(ready[i]);
        if (ex[i] >= 0)
            close(ex[i]);
    }
    if (userns >= 0)
        close(userns);
    return err;
}

int sandbox_started(struct sandbox *sb, char *why, size_t n)
{
    char path[64];
    pid_t child;

    close_keep(sb);
    if (sb->info_r < 0)
        return 0;
    child = child_pid(sb->info_r);
    close(sb->info_r);
    sb->info_r = -1;
    if (child <= 0) {
        snprintf(why, n, "the sandbox did not start (bubblewrap gave no pid)");
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)child);
    sb->netns = open(path, O_RDONLY | O_CLOEXEC);
    if (sb->netns < 0) {
        snprintf(why, n, "cannot open the sandbox's network namespace: %s", strerror(errno));
        return -1;
    }
    if (sb->network && attach_network(sb, why, n))
        return -1;
    if (!sb->keep_netns) {
        close(sb->netns);
        sb->netns = -1;
    }
    if (write(sb->block_w, "1", 1) != 1) {
        snprintf(why, n, "the sandbox ended before its command started");
        return -1;
    }
    close(sb->block_w);
    sb->block_w = -1;
    return 0;
}

void sandbox_end(struct sandbox *sb)
{
    close_keep(sb);
    if (sb->info_r >= 0)
        close(sb->info_r);
    if (sb->block_w >= 0)
        close(sb->block_w);
    if (sb->netns >= 0)
        close(sb->netns);
    sb->info_r = sb->block_w = sb->netns = -1;
    if (sb->net_pid > 0) {
        kill(sb->net_pid, SIGKILL);
        waitpid(sb->net_pid, NULL, 0);
        sb->net_pid = 0;
    }
}

int exec_netns_socket(int netns, int domain, int type, int protocol)
{
    static __thread int home = -1;
    int fd, saved;

    if (home < 0)
        home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0 || setns(netns, CLONE_NEWNET) != 0)
        return -1;
    fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    saved = errno;
    /* This thread must not stay in a sandbox's network: nothing could go on safely. */
    if (setns(home, CLONE_NEWNET) != 0) {
        log_error("cannot return to lyceumd's network namespace: %s", strerror(errno));
        abort();
    }
    errno = saved;
    return fd;
}

/* ---- start-up ---- */

/* Runs `true` in a sandbox as the range's first uid, with the network the config asks for. */
static int probe(char *why, size_t n)
{
    char dir[] = "/tmp/lyceumd-probe-XXXXXX";
    struct cmd c = {0};
    struct sandbox sb;
    struct sandbox_view v = {.network = 1};
    struct child_setup cs = {.fail_msg = "lyceumd: cannot start bubblewrap\n"};
    int out[2], err = -1, st = 0;
    pid_t pid;
    char msg[512] = "";
    ssize_t got;

    if (!mkdtemp(dir) || pipe2(out, O_CLOEXEC)) {
        snprintf(why, n, "cannot make the sandbox's test directory: %s", strerror(errno));
        return -1;
    }
    v.rw_dir = dir;
    v.uid = uid_base;
    if (chown(dir, v.uid, v.uid) || sandbox_prepare(&sb, &c, &v, why, n))
        goto out;
    cmd_arg(&c, "/bin/true");
    cs.out = cs.err = out[1];
    cs.dir = dir;
    cs.uid = v.uid;
    cs.keep = sb.keep;
    cs.nkeep = sb.nkeep;
    cs.setup = sandbox_child;
    cs.setup_arg = &sb;
    pid = exec_fork(&c, &cs);
    close(out[1]);
    out[1] = -1;
    if (pid < 0) {
        snprintf(why, n, "cannot fork: %s", strerror(errno));
        sandbox_end(&sb);
        goto out;
    }
    if (sandbox_started(&sb, why, n)) {
        kill(-pid, SIGKILL);
        waitpid(pid, &st, 0);
        sandbox_end(&sb);
        goto out;
    }
    got = read(out[0], msg, sizeof(msg) - 1);
    msg[got > 0 ? got : 0] = '\0';
    waitpid(pid, &st, 0);
    sandbox_end(&sb);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        msg[strcspn(msg, "\n")] = '\0';
        snprintf(why, n, "a test sandbox failed (exit status %d): %s",
                 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), msg[0] ? msg : "no message");
        goto out;
    }
    err = 0;
out:
    cmd_free(&c);
    if (out[0] >= 0)
        close(out[0]);
    if (out[1] >= 0)
        close(out[1]);
    rmdir(dir);
    return err;
}

int sandbox_init(const struct config *c)
{
    char why[700] = "";
    int slice = 0;

    if (c->sandbox == 0) {
        log_warn("runs and replicas are NOT sandboxed (\"sandbox\": false): tenants' code runs "
                 "as lyceumd's own user with the host's network; use only with trusted code");
        return 0;
    }
    if (geteuid() != 0) {
        snprintf(why, sizeof(why),
                 "lyceumd must run as root to run tenants' code as users of "
                 "their own");
        goto fail;
    }
    if (exec_find("bwrap", bwrap, sizeof(bwrap))) {
        snprintf(why, sizeof(why),
                 "bubblewrap (bwrap) is not installed (apt-get install "
                 "bubblewrap)");
        goto fail;
    }
    extra_ro = c->sandbox_ro_paths;
    if (claim_slice((uint32_t)c->sandbox_uid_base, (uint32_t)c->sandbox_uid_count, &uid_base,
                    &uid_count, &slice)) {
        snprintf(why, sizeof(why),
                 "no free slice of %d uids in the sandbox's range (/run/lyceumd/uids-*.lock): "
                 "as many lyceumd servers run on this host as the range allows: %s",
                 SLICE, strerror(errno));
        goto fail;
    }
    free(uid_used);
    uid_used = xcalloc(uid_count / 8 + 1, 1);
    sweep(uid_base, uid_count);
    if (compile_filter(why, sizeof(why)))
        goto fail;
    network_on = c->sandbox_network;
    if (network_on) {
        if (exec_find("slirp4netns", slirp, sizeof(slirp))) {
            snprintf(why, sizeof(why),
                     "slirp4netns is not installed (apt-get install "
                     "slirp4netns), and \"sandbox_network\" is on");
            goto fail;
        }
        if (egress_init(c->sandbox_network_allow, slice, why, sizeof(why)))
            goto fail;
    }
    if (probe(why, sizeof(why)))
        goto fail;
    on = 1;
    log_info("runs are sandboxed: uids %u-%u, %s", uid_base, uid_base + uid_count - 1,
             network_on ? "outbound network through slirp4netns" : "no network");
    return 0;
fail:
    log_error("the sandbox cannot be set up: %s. Runs and inference replicas need it; set "
              "\"sandbox\": false in the config only to run trusted code unconfined",
              why);
    return LY_EINVAL;
}

int sandbox_on(void)
{
    return on;
}
