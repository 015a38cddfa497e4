/*
 * See netaddr.h. The kinds come from two tables of prefixes (IANA's special-purpose address
 * registries, the entries a connection on a tenant's behalf must not reach), checked in
 * order: the first that contains the address decides. IPv6 prefixes that embed an IPv4
 * address say where it sits, and the address is then judged by the IPv4 table.
 */
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct prefix {
    unsigned char b[16];
    int bits;
    enum addr_kind kind;
    int v4_at; /* IPv6 only: the embedded IPv4 address starts at this byte (-1: none) */
};

static const struct prefix v4_table[] = {
    {{0}, 8, ADDR_UNSPECIFIED, -1},         {{10}, 8, ADDR_PRIVATE, -1},
    {{100, 64}, 10, ADDR_CGNAT, -1},        {{127}, 8, ADDR_LOOPBACK, -1},
    {{169, 254}, 16, ADDR_LINK_LOCAL, -1},  {{172, 16}, 12, ADDR_PRIVATE, -1},
    {{192, 0, 0}, 24, ADDR_RESERVED, -1},   {{192, 0, 2}, 24, ADDR_RESERVED, -1},
    {{192, 88, 99}, 24, ADDR_RESERVED, -1}, {{192, 168}, 16, ADDR_PRIVATE, -1},
    {{198, 18}, 15, ADDR_RESERVED, -1},     {{198, 51, 100}, 24, ADDR_RESERVED, -1},
    {{203, 0, 113}, 24, ADDR_RESERVED, -1}, {{224}, 4, ADDR_MULTICAST, -1},
    {{240}, 4, ADDR_RESERVED, -1}, /* with 255.255.255.255 */
};

static const struct prefix v6_table[] = {
    {{0}, 128, ADDR_UNSPECIFIED, -1},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, ADDR_LOOPBACK, -1},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, ADDR_PUBLIC, 12}, /* mapped */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, 96, ADDR_PUBLIC, 12}, /* SIIT */
    {{0}, 96, ADDR_PUBLIC, 12},                                        /* compatible */
    {{0, 0x64, 0xff, 0x9b}, 96, ADDR_PUBLIC, 12},                      /* NAT64 */
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, ADDR_PRIVATE, -1},               /* local NAT64 */
    {{0x01, 0x00}, 64, ADDR_RESERVED, -1},                             /* discard */
    {{0x20, 0x01, 0, 0}, 32, ADDR_RESERVED, -1},                       /* Teredo */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, ADDR_RESERVED, -1},                 /* documentation */
    {{0x20, 0x02}, 16, ADDR_PUBLIC, 2},                                /* 6to4 */
    {{0xfc}, 7, ADDR_PRIVATE, -1},
    {{0xfe, 0x80}, 10, ADDR_LINK_LOCAL, -1},
    {{0xfe, 0xc0}, 10, ADDR_PRIVATE, -1}, /* site-local, deprecated */
    {{0xff}, 8, ADDR_MULTICAST, -1},
};

const char *addr_kind_name(enum addr_kind k)
{
    switch (k) {
    case ADDR_PUBLIC:
        return "public";
    case ADDR_LOOPBACK:
        return "loopback";
    case ADDR_PRIVATE:
        return "private";
    case ADDR_LINK_LOCAL:
        return "link-local";
    case ADDR_CGNAT:
        return "shared (CGNAT)";
    case ADDR_UNSPECIFIED:
        return "unspecified";
    case ADDR_MULTICAST:
        return "multicast";
    case ADDR_RESERVED:
        return "reserved";
    }
    return "reserved";
}

/* Whether the first bits of a and p are equal. */
static int prefix_eq(const unsigned char *a, const unsigned char *p, int bits)
{
    int whole = bits / 8, rest = bits % 8;

    if (memcmp(a, p, (size_t)whole) != 0)
        return 0;
    if (!rest)
        return 1;
    return ((a[whole] ^ p[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

static enum addr_kind kind_v4(const unsigned char *b)
{
    for (size_t i = 0; i < sizeof(v4_table) / sizeof(v4_table[0]); i++)
        if (prefix_eq(b, v4_table[i].b, v4_table[i].bits))
            return v4_table[i].kind;
    return ADDR_PUBLIC;
}

enum addr_kind ipaddr_kind(const struct ipaddr *a)
{
    if (a->family == AF_INET)
        return kind_v4(a->b);
    if (a->family != AF_INET6)
        return ADDR_RESERVED;
    for (size_t i = 0; i < sizeof(v6_table) / sizeof(v6_table[0]); i++) {
        const struct prefix *p = &v6_table[i];

        if (!prefix_eq(a->b, p->b, p->bits))
            continue;
        return p->v4_at >= 0 ? kind_v4(a->b + p->v4_at) : p->kind;
    }
    return ADDR_PUBLIC;
}

int ipaddr_from_sockaddr(const struct sockaddr *sa, size_t len, struct ipaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        out->family = AF_INET;
        memcpy(out->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        out->family = AF_INET6;
        memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

int ipaddr_parse(const char *s, struct ipaddr *out)
{
    char buf[64];
    size_t n = strlen(s);

    memset(out, 0, sizeof(*out));
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (!n || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, out->b) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->b) == 1) {
        out->family = AF_INET6;
        return 0;
    }
    return -1;
}

void ipaddr_format(const struct ipaddr *a, char *out, size_t n)
{
    if (!inet_ntop(a->family, a->b, out, (socklen_t)n))
        snprintf(out, n, "?");
}

void ipaddr_unmap(struct ipaddr *a)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (a->family == AF_INET6 && memcmp(a->b, mapped, 12) == 0) {
        memmove(a->b, a->b + 12, 4);
        memset(a->b + 4, 0, 12);
        a->family = AF_INET;
    }
}

int cidr_parse(const char *s, struct cidr *out)
{
    const char *slash = strchr(s, '/');
    char addr[64];
    int max;

    memset(out, 0, sizeof(*out));
    if (slash) {
        if ((size_t)(slash - s) >= sizeof(addr))
            return -1;
        memcpy(addr, s, (size_t)(slash - s));
        addr[slash - s] = '\0';
    } else if (snprintf(addr, sizeof(addr), "%s", s) >= (int)sizeof(addr)) {
        return -1;
    }
    if (addr[0] == '[' || ipaddr_parse(addr, &out->net))
        return -1;
    max = out->net.family == AF_INET ? 32 : 128;
    out->bits = max;
    if (slash) {
        char *end;
        long bits;

        if (slash[1] < '0' || slash[1] > '9')
            return -1;
        bits = strtol(slash + 1, &end, 10);
        if (*end || bits > max)
            return -1;
        out->bits = (int)bits;
    }
    /* No host bits below the prefix. */
    for (int i = out->bits; i < max; i++)
        if (out->net.b[i / 8] & (0x80 >> (i % 8)))
            return -1;
    return 0;
}

int cidr_contains(const struct cidr *c, const struct ipaddr *a)
{
    struct ipaddr x = *a;
    struct cidr r = *c;

    ipaddr_unmap(&x);
    if (r.net.family == AF_INET6 && r.bits >= 96) {
        struct ipaddr n = r.net;

        ipaddr_unmap(&n);
        if (n.family == AF_INET) {
            r.net = n;
            r.bits -= 96;
        }
    }
    return x.family == r.net.family && prefix_eq(x.b, r.net.b, r.bits);
}
