/* The answer to a status request (`vmshimctl status [--json]`). */
#include <stdio.h>
#include <stdlib.h>

#include "counters.h"
#include "helperd.h"
#include "peers.h"
#include "status.h"
#include "vmshim/table.h"

char *status_render(bool json, size_t *len)
{
	const struct policy_peer *self = helperd_self();
	const struct helperd_counters *c = &helperd.counters;
	long uptime = (long)(vmshim_now_ms() - helperd.started_ms);
	const struct vmshim_counters *page = counters_page();
	unsigned long shim[VMSHIM_COUNT_N] = {0};
	char *text = NULL;
	FILE *out = open_memstream(&text, len);

	if (!out)
		return NULL;
	for (size_t i = 0; page && i < VMSHIM_COUNT_N; i++)
		shim[i] = (unsigned long)atomic_load_explicit(&page->n[i], memory_order_relaxed);
	if (json) {
		fprintf(out, "{\"self\":\"%s\",\"uptime_ms\":%ld,\"liveness_timeout_ms\":%u,"
			     "\"peers\":",
			self ? self->name : "", uptime, helperd.policy->liveness_ms);
		peers_status(out, true);
		fprintf(out, ",\"counters\":{\"sibling_accepted\":%lu,\"sibling_refused\":%lu,"
			     "\"rejected_cids\":%lu,\"bad_messages\":%lu,\"refused_claims\":%lu,"
			     "\"redirected\":%lu,\"fallback_refused\":%lu,\"fallback_timeout\":%lu,"
			     "\"fallback_error\":%lu,\"fallback_local\":%lu}}\n",
			c->sibling_accepted, c->sibling_refused, c->rejected_cids, c->bad_messages,
			c->refused_claims, shim[VMSHIM_COUNT_REDIRECTED],
			shim[VMSHIM_COUNT_FALLBACK_REFUSED], shim[VMSHIM_COUNT_FALLBACK_TIMEOUT],
			shim[VMSHIM_COUNT_FALLBACK_ERROR], shim[VMSHIM_COUNT_FALLBACK_LOCAL]);
	} else {
		fprintf(out, "helperd: this guest is %s, up %ld s, policy %s, liveness timeout %u ms\n",
			self ? self->name : "none of the peers", uptime / 1000, helperd.policy_path,
			helperd.policy->liveness_ms);
		peers_status(out, false);
		fprintf(out, "sibling connections accepted: %lu, refused (no listener): %lu\n"
			     "rejected (CID or port outside the policy): %lu\n"
			     "malformed messages from peers: %lu\nrefused address claims: %lu\n"
			     "connections redirected by the shims: %lu\n"
			     "fallbacks to TCP: %lu refused, %lu timed out, %lu other errors, "
			     "%lu not set up\n",
			c->sibling_accepted, c->sibling_refused, c->rejected_cids, c->bad_messages,
			c->refused_claims, shim[VMSHIM_COUNT_REDIRECTED],
			shim[VMSHIM_COUNT_FALLBACK_REFUSED], shim[VMSHIM_COUNT_FALLBACK_TIMEOUT],
			shim[VMSHIM_COUNT_FALLBACK_ERROR], shim[VMSHIM_COUNT_FALLBACK_LOCAL]);
	}
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
