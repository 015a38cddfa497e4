/*
 * See egress.h. The programs are a few dozen BPF instructions, generated here from the rules
 * (no compiler, no libbpf): for IPv4 destinations a list of "allow when (ip & mask) == net and
 * the port matches" tests, then "deny when (ip & mask) == net" tests, then allow; for IPv6
 * destinations, deny; at socket creation, allow TCP and UDP only. Addresses and ports are
 * compared in network byte order, as the context holds them.
 *
 * The group is <cgroup v2 root>/lyceumd-egress.<slice> (the v2 root is /sys/fs/cgroup, or the
 * hybrid layout's /sys/fs/cgroup/unified; the slice is the server's share of the uid range).
 * Attaching replaces what a previous lyceumd of that slice attached there, and what it left
 * in the group is killed first.
 */
#include "exec/egress.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_RULES 256
#define MAX_INSNS 4096

struct rule {
    uint32_t net, mask; /* network byte order, as the context's user_ip4 */
    uint32_t port;      /* network byte order in the low 16 bits; 0: any */
};

struct prog {
    struct bpf_insn in[MAX_INSNS];
    int n;
};

static int procs_fd = -1;
static int loopback_allowed;

/* Special-purpose IPv4 ranges (IANA's registry of addresses not globally reachable, plus
 * multicast and the reserved block). */
static const char *const denied_v4[] = {
    "0.0.0.0/8",     "10.0.0.0/8",      "100.64.0.0/10",  "127.0.0.0/8",    "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24",    "192.0.2.0/24",   "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",    "240.0.0.0/4",
};

static void emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    if (p->n < MAX_INSNS)
        p->in[p->n++] =
            (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

static void emit_return(struct prog *p, int v)
{
    emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, v);
    emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

/* The IPv4 destination check of connect() and UDP sendmsg(). */
static void build_v4(struct prog *p, const struct rule *allow, int na, const struct rule *deny,
                     int nd)
{
    int jumps[MAX_RULES], nj = 0;

    emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1,
         offsetof(struct bpf_sock_addr, user_ip4), 0);
    emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_3, BPF_REG_1,
         offsetof(struct bpf_sock_addr, user_port), 0);
    for (int i = 0; i < na; i++) {
        /* w4 = w2 & mask; if w4 != net skip; [if w3 != port skip]; return 1 */
        int skip = allow[i].port ? 3 : 2;

        emit(p, BPF_ALU | BPF_MOV | BPF_X, BPF_REG_4, BPF_REG_2, 0, 0);
        emit(p, BPF_ALU | BPF_AND | BPF_K, BPF_REG_4, 0, 0, (int32_t)allow[i].mask);
        emit(p, BPF_JMP32 | BPF_JNE | BPF_K, BPF_REG_4, 0, (int16_t)skip, (int32_t)allow[i].net);
        if (allow[i].port)
            emit(p, BPF_JMP32 | BPF_JNE | BPF_K, BPF_REG_3, 0, 2, (int32_t)allow[i].port);
        emit_return(p, 1);
    }
    for (int i = 0; i < nd && nj < MAX_RULES; i++) {
        emit(p, BPF_ALU | BPF_MOV | BPF_X, BPF_REG_4, BPF_REG_2, 0, 0);
        emit(p, BPF_ALU | BPF_AND | BPF_K, BPF_REG_4, 0, 0, (int32_t)deny[i].mask);
        jumps[nj++] = p->n;
        emit(p, BPF_JMP32 | BPF_JEQ | BPF_K, BPF_REG_4, 0, 0, (int32_t)deny[i].net);
    }
    emit_return(p, 1);
    for (int i = 0; i < nj; i++)
        p->in[jumps[i]].off = (int16_t)(p->n - jumps[i] - 1);
    emit_return(p, 0);
}

/* At socket creation: TCP (any stream socket) and UDP only. */
static void build_create(struct prog *p)
{
    emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, offsetof(struct bpf_sock, type), 0);
    emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_3, BPF_REG_1, offsetof(struct bpf_sock, protocol),
         0);
    emit(p, BPF_JMP32 | BPF_JNE | BPF_K, BPF_REG_2, 0, 2, SOCK_STREAM);
    emit_return(p, 1);
    emit(p, BPF_JMP32 | BPF_JNE | BPF_K, BPF_REG_2, 0, 3, SOCK_DGRAM);
    emit(p, BPF_JMP32 | BPF_JNE | BPF_K, BPF_REG_3, 0, 2, IPPROTO_UDP);
    emit_return(p, 1);
    emit_return(p, 0);
}

static int bpf(int cmd, union bpf_attr *a)
{
    return (int)syscall(SYS_bpf, cmd, a, sizeof(*a));
}

static int load_once(const struct prog *p, int type, int attach, char *vlog, uint32_t vlen)
{
    union bpf_attr a;

    memset(&a, 0, sizeof(a));
    a.prog_type = (uint32_t)type;
    a.expected_attach_type = (uint32_t)attach;
    a.insns = (uint64_t)(uintptr_t)p->in;
    a.insn_cnt = (uint32_t)p->n;
    a.license = (uint64_t)(uintptr_t) "Dual BSD/GPL";
    if (vlog) {
        a.log_buf = (uint64_t)(uintptr_t)vlog;
        a.log_size = vlen;
        a.log_level = 1;
        vlog[0] = '\0';
    }
    return bpf(BPF_PROG_LOAD, &a);
}

/* Loads a program; the verifier's log is asked for only to explain a refusal (a log that
 * does not fit its buffer would fail the load itself). */
static int load(const struct prog *p, int type, int attach, char *why, size_t n)
{
    static char vlog[65536];
    int fd = load_once(p, type, attach, NULL, 0), e;

    if (fd >= 0)
        return fd;
    e = errno;
    load_once(p, type, attach, vlog, sizeof(vlog));
    vlog[sizeof(vlog) - 1] = '\0';
    snprintf(why, n, "the kernel refused the egress filter (BPF_PROG_LOAD: %s) %.200s", strerror(e),
             vlog);
    return -1;
}

static int attach(int cg, int prog, int type, char *why, size_t n)
{
    union bpf_attr a;

    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)cg;
    a.attach_bpf_fd = (uint32_t)prog;
    a.attach_type = (uint32_t)type;
    if (bpf(BPF_PROG_ATTACH, &a) == 0)
        return 0;
    snprintf(why, n, "cannot attach the egress filter to its cgroup: %s", strerror(errno));
    return -1;
}

int egress_parse(const char *entry, unsigned *net, unsigned *mask, unsigned *port, char *why,
                 size_t n)
{
    char ip[64];
    const char *slash = strchr(entry, '/'), *colon;
    long bits = 32, pt = 0;
    struct in_addr a;
    size_t len;

    colon = strchr(slash ? slash : entry, ':');
    len = slash ? (size_t)(slash - entry) : colon ? (size_t)(colon - entry) : strlen(entry);
    if (len == 0 || len >= sizeof(ip))
        goto bad;
    memcpy(ip, entry, len);
    ip[len] = '\0';
    if (inet_pton(AF_INET, ip, &a) != 1)
        goto bad;
    if (slash) {
        char *end;

        bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || bits < 0 || bits > 32 || (*end && *end != ':'))
            goto bad;
    }
    if (colon) {
        char *end;

        pt = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || pt < 1 || pt > 65535)
            goto bad;
    }
    *mask = bits ? htonl(0xffffffffu << (32 - bits)) : 0;
    *net = a.s_addr & *mask;
    *port = pt ? htons((uint16_t)pt) : 0;
    return 0;
bad:
    snprintf(why, n,
             "\"sandbox_network_allow\": '%.100s' is not an IPv4 address or CIDR with an optional "
             ":port (e.g. \"10.0.0.5/32:3128\")",
             entry);
    return -1;
}

static void add_rule(struct rule *r, int *nr, uint32_t net, uint32_t mask, uint32_t port)
{
    if (*nr < MAX_RULES)
        r[(*nr)++] = (struct rule){net & mask, mask, port};
}

/* The host's DNS resolvers (IPv4 nameserver lines of /etc/resolv.conf), allowed on port 53. */
static void add_resolvers(struct rule *allow, int *na)
{
    FILE *f = fopen("/etc/resolv.conf", "re");
    char line[256];

    while (f && fgets(line, sizeof(line), f)) {
        char ip[64];
        struct in_addr a;

        if (sscanf(line, " nameserver %63s", ip) == 1 && inet_pton(AF_INET, ip, &a) == 1)
            add_rule(allow, na, a.s_addr, 0xffffffffu, htons(53));
    }
    if (f)
        fclose(f);
}

/* The host's own IPv4 addresses: a service of the host listening on a public address is the
 * host's, not the internet's. */
static void add_own(struct rule *deny, int *nd)
{
    struct ifaddrs *ifs, *i;

    if (getifaddrs(&ifs) != 0)
        return;
    for (i = ifs; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
            add_rule(deny, nd, ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr, 0xffffffffu,
                     0);
    freeifaddrs(ifs);
}

/* The cgroup v2 hierarchy's root: "" when there is none. */
static const char *v2_root(void)
{
    static const char *const roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    struct statfs s;

    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
        if (statfs(roots[i], &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC)
            return roots[i];
    return "";
}

/* Kills helpers a previous lyceumd left in the group. */
static void empty_group(const char *dir)
{
    char path[PATH_MAX + 16], line[32];
    FILE *f;

    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    f = fopen(path, "re");
    while (f && fgets(line, sizeof(line), f))
        kill((pid_t)atol(line), SIGKILL);
    if (f)
        fclose(f);
}

int egress_init(json_t *allow_cfg, int slice, char *why, size_t n)
{
    static struct prog p4, p6, pc;
    struct rule allow[MAX_RULES], deny[MAX_RULES];
    int na = 0, nd = 0, cg = -1, progs[5] = {-1, -1, -1, -1, -1}, err = -1;
    const char *root = v2_root();
    char dir[PATH_MAX], path[PATH_MAX + 16];
    size_t i;
    json_t *v;

    if (!*root) {
        snprintf(why, n,
                 "no cgroup v2 hierarchy is mounted (/sys/fs/cgroup or "
                 "/sys/fs/cgroup/unified): the runs' network cannot be filtered");
        return -1;
    }
    json_array_foreach(allow_cfg, i, v)
    {
        unsigned net, mask, port;

        if (!json_is_string(v) ||
            egress_parse(json_string_value(v), &net, &mask, &port, why, n) != 0)
            return -1;
        add_rule(allow, &na, net, mask, port);
        if ((ntohl(net) >> 24) == 127 || mask == 0)
            loopback_allowed = 1;
    }
    add_resolvers(allow, &na);
    for (i = 0; i < sizeof(denied_v4) / sizeof(denied_v4[0]); i++) {
        unsigned net, mask, port;

        egress_parse(denied_v4[i], &net, &mask, &port, why, n);
        add_rule(deny, &nd, net, mask, 0);
    }
    add_own(deny, &nd);
    p4.n = p6.n = pc.n = 0;
    build_v4(&p4, allow, na, deny, nd);
    emit_return(&p6, 0);
    build_create(&pc);

    snprintf(dir, sizeof(dir), "%s/lyceumd-egress.%d", root, slice);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(why, n, "cannot create the cgroup %s: %s", dir, strerror(errno));
        return -1;
    }
    empty_group(dir);
    cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg < 0) {
        snprintf(why, n, "cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    progs[0] = load(&p4, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, why, n);
    progs[1] = load(&p4, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_SENDMSG, why, n);
    progs[2] = load(&p6, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_CONNECT, why, n);
    progs[3] = load(&p6, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_SENDMSG, why, n);
    progs[4] = load(&pc, BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, why, n);
    for (i = 0; i < 5; i++)
        if (progs[i] < 0)
            goto out;
    if (attach(cg, progs[0], BPF_CGROUP_INET4_CONNECT, why, n) ||
        attach(cg, progs[1], BPF_CGROUP_UDP4_SENDMSG, why, n) ||
        attach(cg, progs[2], BPF_CGROUP_INET6_CONNECT, why, n) ||
        attach(cg, progs[3], BPF_CGROUP_UDP6_SENDMSG, why, n) ||
        attach(cg, progs[4], BPF_CGROUP_INET_SOCK_CREATE, why, n))
        goto out;
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    if (procs_fd >= 0)
        close(procs_fd);
    procs_fd = open(path, O_WRONLY | O_CLOEXEC);
    if (procs_fd < 0) {
        snprintf(why, n, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    log_info("runs' network: outbound only, filtered in %s (%d allowed, %d denied ranges)", dir, na,
             nd);
    err = 0;
out:
    /* Attached programs stay with the group: the descriptors are no longer needed. */
    for (i = 0; i < 5; i++)
        if (progs[i] >= 0)
            close(progs[i]);
    close(cg);
    return err;
}

int egress_loopback_allowed(void)
{
    return loopback_allowed;
}

int egress_procs_fd(void)
{
    return procs_fd;
}
