/* helperd's descriptors: the room for what it holds for others (sibling connections waiting
 * to be accepted, the bridge's connections), on top of a reserve for all else (control
 * connections, peers, listeners). */
#ifndef HELPERD_FDBUDGET_H
#define HELPERD_FDBUDGET_H

/* Raises RLIMIT_NOFILE so that `wanted` descriptors fit beyond the reserve, where it can
 * (root may raise the hard limit too), and returns how many of them fit: wanted, or fewer
 * (logged), never none. */
unsigned fd_budget(unsigned wanted);

/* part's share of got, when part of wanted was asked for: at least 1. */
unsigned fd_budget_part(unsigned got, unsigned part, unsigned wanted);

#endif
