/* Addresses and prefixes of the policy: parsing "A[/LEN]", printing, comparing. */
#ifndef VMSHIM_POLICY_ADDR_H
#define VMSHIM_POLICY_ADDR_H

#include <stddef.h>

#include "policy.h"

/* Room for any prefix policy_prefix_format() writes: an IPv6 address, '/', 3 digits. */
#define POLICY_PREFIX_STRLEN 64

/* Parses text as an address or prefix and checks it on its own: syntax, prefix length, host
 * bits, and the ranges that are never a peer's (loopback, unspecified, multicast, IPv4-mapped,
 * broadcast). Returns 0, or -1 with the reason in why. p->line is left alone. */
int policy_prefix_parse(const char *text, struct policy_prefix *p, char *why, size_t whylen);

/* The checks of policy_prefix_parse() on a prefix that did not come from text (a peer's
 * claim): length, host bits, reserved ranges. 0, or -1 with the reason in why. */
int policy_prefix_check(const struct policy_prefix *p, char *why, size_t whylen);

/* 1 if every address of inner is in outer. */
int policy_prefix_contains(const struct policy_prefix *outer, const struct policy_prefix *inner);

/* Writes "198.18.0.0/24", or just the address for a single address (/32, /128). */
const char *policy_prefix_format(const struct policy_prefix *p, char buf[POLICY_PREFIX_STRLEN]);

/* 1 if p is one address: /32 for IPv4, /128 for IPv6. */
int policy_prefix_is_single(const struct policy_prefix *p);

/* The first single address of a family among n prefixes (the one that stands for its
 * owner), or NULL. */
const struct policy_prefix *policy_first_single(const struct policy_prefix *p, size_t n,
					       int family);

/* 1 if a and b have an address in common. */
int policy_prefix_overlaps(const struct policy_prefix *a, const struct policy_prefix *b);

/* Orders by family, then address, then length (shorter first); for qsort-style use. */
int policy_prefix_cmp(const struct policy_prefix *a, const struct policy_prefix *b);

#endif
