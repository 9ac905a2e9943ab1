/* libFuzzer target: policy files (policy/FORMAT.md). Whatever the bytes, reading them must
 * neither crash, read out of bounds nor leak; a refusal names the file (and the line) as
 * every policy error does; an accepted policy builds a decision table for no guest and for
 * each of its first peers, and looking its addresses up in that table stays in bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "table_build.h"

#define NAME "fuzz.policy"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void look_up_every_peer(const struct policy *pol, const void *body, uint32_t capacity)
{
	for (size_t i = 0; i < pol->n_peers; i++) {
		const struct policy_peer *p = &pol->peers[i];
		for (size_t j = 0; j < p->n_prefixes; j++) {
			struct vmshim_route route;
			vmshim_table_route(body, capacity, p->prefixes[j].family, p->prefixes[j].addr,
					   80, &route);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *pol = NULL;
	char err[512];

	if (size == 0)
		return 0; /* fmemopen refuses an empty buffer */
	FILE *f = fmemopen((void *)data, size, "r");
	if (!f)
		abort();
	int rc = policy_read(f, NAME, &pol, err, sizeof(err));
	fclose(f);
	if (rc < 0) {
		if (strncmp(err, NAME ":", strlen(NAME) + 1) != 0)
			abort();
		return 0;
	}
	for (int self = -1; self < (int)pol->n_peers && self < 4; self++) {
		uint32_t capacity;
		void *body = table_build(pol, self, NULL, &capacity);
		if (!body)
			abort();
		look_up_every_peer(pol, body, capacity);
		free(body);
	}
	policy_free(pol);
	return 0;
}
