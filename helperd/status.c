/* The answer to a status request (`vmshimctl status [--json]`). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "counters.h"
#include "bridge.h"
#include "guestwide.h"
#include "helperd.h"
#include "hostpeers.h"
#include "peers.h"
#include "status.h"
#include "vmshim/clock.h"

char *status_render(bool json, size_t *len)
{
	const struct policy_peer *self = helperd_self();
	const struct helperd_counters *c = &helperd.counters;
	long uptime = (long)(vmshim_now_ms() - helperd.started_ms);
	const struct vmshim_counters *page = counters_page();
	unsigned long shim[VMSHIM_COUNT_N] = {0};
	struct mallinfo2 heap = mallinfo2(); /* before this answer allocates anything */
	char *text = NULL;
	FILE *out = open_memstream(&text, len);

	if (!out)
		return NULL;
	for (size_t i = 0; page && i < VMSHIM_COUNT_N; i++)
		shim[i] = (unsigned long)atomic_load_explicit(&page->n[i], memory_order_relaxed);
	const struct {
		const char *key, *label;
		unsigned long value;
	} counts[] = {
		{"sibling_accepted", "sibling connections accepted", c->sibling_accepted},
		{"sibling_refused", "sibling connections refused (no listener)", c->sibling_refused},
		{"sibling_busy", "sibling connections refused (too many waiting)", c->sibling_busy},
		{"rejected_cids", "vsock connections rejected (CID or port outside the policy)",
		 c->rejected_cids},
		{"bad_messages", "malformed messages from peers", c->bad_messages},
		{"refused_claims", "address claims refused", c->refused_claims},
		{"bridged_vsock", "guest-wide: bridged to siblings over vsock", c->bridged_vsock},
		{"bridged_tcp", "guest-wide: bridged over TCP (sibling path uncertain)",
		 c->bridged_tcp},
		{"bridging", "guest-wide: connections the bridge carries now", bridge_count()},
		{"bridge_strangers", "guest-wide: connections to the bridge from no redirected connect",
		 c->bridge_strangers},
		{"bridge_no_room", "guest-wide: connects left on TCP, the bridge or its user's share full",
		 guestwide_no_room()},
		{"bridge_spliced", "guest-wide: bridged connections the kernel forwarded (sockmap)",
		 c->bridge_spliced},
		{"bridge_taken_back", "guest-wide: ... and took back, to be copied",
		 c->bridge_taken_back},
		{"redirected", "connections redirected by the shims", shim[VMSHIM_COUNT_REDIRECTED]},
		{"fallback_refused", "fallbacks to TCP, refused", shim[VMSHIM_COUNT_FALLBACK_REFUSED]},
		{"fallback_timeout", "fallbacks to TCP, timed out", shim[VMSHIM_COUNT_FALLBACK_TIMEOUT]},
		{"fallback_error", "fallbacks to TCP, other errors", shim[VMSHIM_COUNT_FALLBACK_ERROR]},
		{"fallback_local", "fallbacks to TCP, not set up", shim[VMSHIM_COUNT_FALLBACK_LOCAL]},
	};
	const char *why, *forwarding = bridge_forwarding(&why);

	if (json) {
		fprintf(out, "{\"self\":\"%s\",\"uptime_ms\":%ld,\"liveness_timeout_ms\":%u,"
			     "\"heap_in_use_bytes\":%zu,\"heap_free_bytes\":%zu,",
			self ? self->name : "", uptime, helperd.policy->liveness_ms, heap.uordblks,
			heap.fordblks);
		if (helperd.policy->peers_from_relay)
			fprintf(out, "\"peers_from_relay\":{\"following\":%s,\"told\":%d},",
				hostpeers_following() ? "true" : "false", hostpeers_count());
		if (guestwide_on())
			fprintf(out, "\"bridge\":{\"forwarding\":\"%s\",\"note\":\"%s\"},", forwarding,
				why);
		fputs("\"peers\":", out);
		peers_status(out, true);
		fputs(",\"counters\":{", out);
		for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
			fprintf(out, "%s\"%s\":%lu", i ? "," : "", counts[i].key, counts[i].value);
		fputs("}}\n", out);
	} else {
		fprintf(out, "helperd: this guest is %s, up %ld s, policy %s, liveness timeout %u ms\n",
			self ? self->name : "none of the peers", uptime / 1000, helperd.policy_path,
			helperd.policy->liveness_ms);
		fprintf(out, "heap: %zu bytes in use, %zu free\n", heap.uordblks, heap.fordblks);
		if (helperd.policy->peers_from_relay)
			fprintf(out, "peers from the relay: %s, %d in its last list\n",
				hostpeers_following() ? "following" : "not connected",
				hostpeers_count());
		if (guestwide_on())
			fprintf(out, "guest-wide bridge: forwards by %s%s%s\n", forwarding,
				*why ? ": " : "", why);
		peers_status(out, false);
		for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
			fprintf(out, "%s: %lu\n", counts[i].label, counts[i].value);
	}
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
