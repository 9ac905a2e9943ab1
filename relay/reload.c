/* A new host policy in force for a running relay (reload.h). */
#include <stdlib.h>
#include <string.h>

#include "regrant.h"
#include "relay.h"
#include "reload.h"
#include "session.h"
#include "siblings.h"
#include "transport.h"
#include "vmshim/log.h"

/* What a reload cannot change, kept as it was, and said so. */
static void keep_what_needs_restart(struct host_policy *new)
{
	const struct host_policy *old = relay.written;

	/* the listeners (vsock, and each hybrid guest's PATH_PORT) and the relay's source
	 * ports toward guests are made from it */
	if (new->port != old->port) {
		log_warn("policy %s: port %u needs a restart: the relay keeps port %u",
			 relay.policy_path, new->port, old->port);
		new->port = old->port;
	}
	/* the thread that follows libvirt is started once */
	if (strcmp(new->libvirt_uri, old->libvirt_uri) != 0) {
		log_warn("policy %s: libvirt '%s' needs a restart: the relay keeps '%s'",
			 relay.policy_path, new->libvirt_uri, old->libvirt_uri);
		memcpy(new->libvirt_uri, old->libvirt_uri, sizeof new->libvirt_uri);
	}
	/* the kernel's maps are sized once; connections past them are copied until a place frees */
	if (relay.splice && new->max_connections > relay.splice_pairs)
		log_warn("policy %s: max-connections %u: the kernel splices at most %u connections "
			 "at once until a restart; the others are copied until one of those ends",
			 relay.policy_path, new->max_connections, relay.splice_pairs);
}

/* The per-guest counts of the old policy's guests, given to those of the new one that map
 * says they are. */
static void carry_per_guest(const int *map, unsigned *per_guest, struct relay_counters *counters)
{
	for (size_t i = 0; i < relay.policy->n_guests; i++) {
		if (map[i] < 0)
			continue;
		per_guest[map[i]] = relay.per_guest[i];
		counters[map[i]] = relay.per_guest_counters[i];
	}
}

/* Puts in force what written says with domains: 0, or -1 (out of memory: the policy in
 * force stays, and neither is taken). The caller frees nothing it passed on success. */
static int put_in_force(struct host_policy *written, struct host_domain *domains, size_t n,
			unsigned *closed)
{
	struct host_policy *new;

	if (host_domains_in_force(written, domains, n, &new) < 0)
		return -1;
	size_t room = new->n_guests ? new->n_guests : 1, old_n = relay.policy->n_guests;
	int *map = regrant_map(relay.policy, new);
	unsigned *per_guest = calloc(room, sizeof *per_guest);
	struct relay_counters *counters = calloc(room, sizeof *counters);
	if (!map || !per_guest || !counters) {
		free(map);
		free(per_guest);
		free(counters);
		host_policy_free(new);
		return -1;
	}
	/* the sessions it closes are counted and let go under the old policy's numbering */
	*closed = session_regrant(new, map);
	carry_per_guest(map, per_guest, counters);
	free(relay.per_guest);
	free(relay.per_guest_counters);
	host_policy_free(relay.policy);
	relay.per_guest = per_guest;
	relay.per_guest_counters = counters;
	relay.policy = new;
	transport_regrant(map);
	siblings_regrant(map, old_n);
	free(map);
	if (written != relay.written) {
		host_policy_free(relay.written);
		relay.written = written;
	}
	if (domains != relay.domains) {
		free(relay.domains);
		relay.domains = domains;
		relay.n_domains = n;
	}
	return 0;
}

void relay_reload(void)
{
	struct host_policy *written;
	unsigned closed;
	char err[512];

	if (host_policy_load(relay.policy_path, &written, err, sizeof err) < 0) {
		relay.reloads_refused++;
		log_err("reload refused, keeping the policy in force: %s", err);
		return;
	}
	keep_what_needs_restart(written);
	if (put_in_force(written, relay.domains, relay.n_domains, &closed) < 0) {
		relay.reloads_refused++;
		log_err("reload refused, keeping the policy in force: out of memory");
		host_policy_free(written);
		return;
	}
	relay.reloads++;
	log_info("policy %s reloaded (reload %lu); connections it no longer grants, closed: %u",
		 relay.policy_path, relay.reloads, closed);
	relay_describe();
}

void relay_domains_changed(struct host_domain *domains, size_t n)
{
	unsigned closed;

	if (put_in_force(relay.written, domains, n, &closed) < 0) {
		log_err("libvirt: %zu domains: out of memory; the guests in force stay", n);
		free(domains);
		return;
	}
	relay.domain_updates++;
	log_info("libvirt: %zu running domains with a vsock device; connections no longer "
		 "granted, closed: %u",
		 n, closed);
	relay_describe();
}
