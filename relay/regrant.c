/* Old grants against a reloaded host policy (regrant.h). */
#include <stdlib.h>
#include <string.h>

#include "regrant.h"

static bool same_guest(const struct host_guest *a, const struct host_guest *b)
{
	return strcmp(a->name, b->name) == 0 && a->cid == b->cid &&
	       a->vsock_base == b->vsock_base && strcmp(a->hybrid, b->hybrid) == 0 &&
	       strcmp(a->uuid, b->uuid) == 0;
}

int *regrant_map(const struct host_policy *old, const struct host_policy *new)
{
	int *map = calloc(old->n_guests ? old->n_guests : 1, sizeof *map);

	if (!map)
		return NULL;
	for (size_t i = 0; i < old->n_guests; i++) {
		map[i] = -1;
		for (size_t j = 0; j < new->n_guests && map[i] < 0; j++)
			if (same_guest(&old->guests[i], &new->guests[j]))
				map[i] = (int)j;
	}
	return map;
}

const char *regrant_verdict(const struct host_policy *old, const struct host_policy *new,
			    const int *map, const struct regrant_session *s)
{
	const struct host_guest *from = &old->guests[s->from];

	if (map[s->from] < 0)
		return "its caller is no longer that guest of the host policy";
	/* guests that now share its CID may own the port it called from */
	if (!from->hybrid[0] && s->port_seen &&
	    host_guest_calling(new, from->cid, s->source_port) != map[s->from])
		return "the port it came from is another guest's now";
	if (s->to < 0)
		return NULL;
	if (map[s->to] < 0)
		return "its destination is no longer that guest of the host policy";
	if (host_guest_owning(new, old->guests[s->to].cid, s->dest_port) != map[s->to])
		return "its destination port is another guest's now";
	if (!host_may_reach(new, (size_t)map[s->from], (size_t)map[s->to], s->dest_port))
		return "the host policy no longer lets its caller reach that port";
	return NULL;
}
