/* The peers' part of `vmshimctl status` (peers.h). */
#include <stdio.h>

#include "helperd.h"
#include "link.h"
#include "peers.h"
#include "policy_addr.h"
#include "vmshim/clock.h"

static void print_ports(FILE *out, const uint64_t *set, bool json)
{
	const char *sep = "";

	for (unsigned p = 1; p < 65536; p++) {
		if (!((set[p / 64] >> (p % 64)) & 1))
			continue;
		fprintf(out, "%s%u", sep, p);
		sep = json ? "," : " ";
	}
	if (!json && !*sep)
		fputc('-', out);
}

static void print_owned(FILE *out, const struct link *l, bool json)
{
	char shown[POLICY_PREFIX_STRLEN];

	for (size_t j = 0; j < l->n_owned; j++)
		fprintf(out, json ? "%s\"%s\"" : "%s%s", j ? (json ? "," : " ") : "",
			policy_prefix_format(&l->owned[j], shown));
	if (!json && !l->n_owned)
		fputc('-', out);
}

void peers_status(FILE *out, bool json)
{
	int64_t now = vmshim_now_ms();

	fputs(json ? "[" : "", out);
	for (size_t i = 0, shown = 0; i < n_links; i++) {
		const struct link *l = links[i];
		const char *liveness = l->liveness == PEER_UP ? "up" : "down";
		long ago = l->last_ms ? (long)(now - l->last_ms) : -1;
		if ((int)i == helperd.self)
			continue;
		if (json) {
			fprintf(out, "%s{\"name\":\"%s\",\"cid\":%u,\"uuid\":\"%s\",\"state\":\"%s\","
				     "\"addresses\":[",
				shown++ ? "," : "", l->name, l->cid, l->uuid, liveness);
			print_owned(out, l, true);
			fputs("],\"ports4\":[", out);
			print_ports(out, l->served4, true);
			fputs("],\"ports6\":[", out);
			print_ports(out, l->served6, true);
			fprintf(out, "],\"last_contact_ms_ago\":%ld,\"state_for_ms\":%ld,"
				     "\"announcements\":%lu}",
				ago, l->since_ms ? (long)(now - l->since_ms) : -1, l->announcements);
			continue;
		}
		fprintf(out, "peer %s: %s", l->name, liveness);
		if (l->since_ms)
			fprintf(out, " for %ld s", (long)(now - l->since_ms) / 1000);
		fprintf(out, ", cid %u, control port %u\n  addresses: ", l->cid, l->control_port);
		print_owned(out, l, false);
		fputs("\n  TCP ports served (IPv4): ", out);
		print_ports(out, l->served4, false);
		fputs("\n  TCP ports served (IPv6): ", out);
		print_ports(out, l->served6, false);
		if (ago < 0)
			fputs("\n  last contact: never\n", out);
		else
			fprintf(out, "\n  last contact: %ld.%01ld s ago (%lu announcements)\n", ago / 1000,
				ago % 1000 / 100, l->announcements);
	}
	fputs(json ? "]" : "", out);
}
