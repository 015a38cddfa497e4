/*
 * The egress filter: where a sandbox's user-mode network stack (slirp4netns, which makes the
 * host-side sockets for a run's outbound connections) may connect. Kernel-enforced: BPF
 * programs of the cgroup-sock-addr kind on a cgroup v2 group that every helper joins before
 * it starts, so the check sees the address each connect() and sendmsg() really uses, and a
 * helper that was taken over by its tenant's packets cannot lift it.
 *
 * Refused: the host's loopback, the host's own addresses, private, shared, link-local
 * (metadata services), documentation, benchmarking, multicast and reserved IPv4 ranges, all
 * IPv6, and any socket but TCP and UDP (no ICMP or raw). Allowed before those: the host's DNS
 * resolvers on port 53 (slirp4netns forwards the sandbox's DNS to them) and the config's
 * "sandbox_network_allow" entries ("CIDR" or "CIDR:port", e.g. a package mirror).
 */
#ifndef LYCEUMD_EXEC_EGRESS_H
#define LYCEUMD_EXEC_EGRESS_H

#include <jansson.h>
#include <stddef.h>

/* Builds and attaches the programs to the group of uid slice `slice` (sandbox.c: each server
 * on the host has its own). allow: the config's array of "CIDR[:port]" strings (may be NULL).
 * 0, or -1 with why set: this host cannot filter (no cgroup v2, no BPF). */
int egress_init(json_t *allow, int slice, char *why, size_t n);
/* 1 when an allowed entry lies in the host's loopback (127.0.0.0/8): then the user-mode stack
 * must map its gateway (10.0.2.2) to the host's loopback, where the filter still allows only
 * that entry. */
int egress_loopback_allowed(void);
/* The group's cgroup.procs, open for writing: a forked helper writes "0" to it before exec
 * (async-signal-safe). -1 before egress_init. */
int egress_procs_fd(void);
/* Checks one "CIDR[:port]" entry of the config: 0, or -1 with why set. */
int egress_parse(const char *entry, unsigned *net, unsigned *mask, unsigned *port, char *why,
                 size_t n);

#endif
