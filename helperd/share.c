/* Shares of a bounded room (share.h). */
#include <stdlib.h>

#include "share.h"

struct share *share_take(struct share **table, uint64_t key, unsigned max)
{
	struct share *sh;

	HASH_FIND(hh, *table, &key, sizeof(key), sh);
	if (sh && sh->n >= max)
		return NULL;
	if (!sh) {
		sh = calloc(1, sizeof(*sh));
		if (!sh)
			return NULL;
		sh->key = key;
		HASH_ADD(hh, *table, key, sizeof(sh->key), sh);
	}
	sh->n++;
	return sh;
}

void share_give(struct share **table, struct share *sh)
{
	if (sh && --sh->n == 0) {
		HASH_DEL(*table, sh);
		free(sh);
	}
}

unsigned share_per_peer(unsigned room, size_t n_peers)
{
	unsigned share = n_peers > 4 ? (unsigned)(room / n_peers) : room / 4;

	return share ? share : 1;
}
