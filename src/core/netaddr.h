/*
 * IP addresses as values: parsing, formatting, CIDR ranges and the kind of an address
 * (loopback, private, link-local...), for code that must decide whether to connect somewhere
 * on a tenant's behalf (completion callbacks). An IPv6 address that carries an IPv4 one
 * (mapped ::ffff:a.b.c.d, the deprecated compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4
 * 2002::/16) is of the kind of the IPv4 address it reaches, so that no spelling of
 * 127.0.0.1 passes for a public address. Pure functions: thread-safe.
 */
#ifndef LYCEUMD_CORE_NETADDR_H
#define LYCEUMD_CORE_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* An address: family AF_INET (b[0..4) used) or AF_INET6 (b[0..16)). */
struct ipaddr {
    int family;
    unsigned char b[16];
};

enum addr_kind {
    ADDR_PUBLIC = 0,
    ADDR_LOOPBACK,    /* 127/8, ::1 */
    ADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10, 64:ff9b:1::/48 */
    ADDR_LINK_LOCAL,  /* 169.254/16 (the cloud metadata address), fe80::/10 */
    ADDR_CGNAT,       /* 100.64/10, shared address space */
    ADDR_UNSPECIFIED, /* 0/8 ("this network": 0.0.0.0 reaches the host), :: */
    ADDR_MULTICAST,   /* 224/4, ff00::/8 */
    ADDR_RESERVED,    /* documentation, benchmarking, 240/4 and broadcast, Teredo, discard */
};

/* "public", "loopback", "private", "link-local", "shared (CGNAT)", "unspecified",
 * "multicast", "reserved". */
const char *addr_kind_name(enum addr_kind k);

/* From a socket address (AF_INET or AF_INET6); 0, or -1 for another family or a short len. */
int ipaddr_from_sockaddr(const struct sockaddr *sa, size_t len, struct ipaddr *out);
/* A literal address in the usual text forms ("10.0.0.1", "::1", "[::1]"; an IPv6 zone
 * "%eth0" is refused); 0, or -1 when s is not one. */
int ipaddr_parse(const char *s, struct ipaddr *out);
/* The text form (inet_ntop) into out (46 bytes are enough for any). */
void ipaddr_format(const struct ipaddr *a, char *out, size_t n);
/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is; others unchanged. */
void ipaddr_unmap(struct ipaddr *a);
/* The kind of a (see the top of this file for addresses that carry IPv4 ones). */
enum addr_kind ipaddr_kind(const struct ipaddr *a);

/* A range: "10.0.0.0/8", "fd00::/8", or a single address ("127.0.0.1" = /32, "::1" = /128).
 * Host bits set below the prefix are refused (a typo more often than an intent). */
struct cidr {
    struct ipaddr net;
    int bits;
};
int cidr_parse(const char *s, struct cidr *out);
/* Whether a lies in c; an IPv4-mapped address matches IPv4 ranges (and the reverse). */
int cidr_contains(const struct cidr *c, const struct ipaddr *a);

#endif
