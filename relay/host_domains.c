/* The host policy in force, from the policy as written and libvirt's domains
 * (host_domains.h). */
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_domains.h"
#include "statements.h"
#include "vmshim/log.h"

/* Whether written block b stands for the domain named name. */
static bool stands_for(const struct host_guest *b, const char *name)
{
	if (!b->libvirt)
		return false;
	if (!b->n_patterns)
		return strcmp(b->name, name) == 0;
	for (size_t k = 0; k < b->n_patterns; k++)
		if (fnmatch(b->patterns[k], name, 0) == 0)
			return true;
	return false;
}

/* Why domain d cannot be a guest beside the guests of p so far, or NULL. */
static const char *refusal(const struct host_policy *p, const struct host_domain *d)
{
	if (!stmt_name_ok(d->name))
		return "its name is not a policy name (1-32 of A-Z a-z 0-9 . _ -)";
	if (d->cid < 3 || d->cid == UINT32_MAX)
		return "its CID is not a guest's";
	for (size_t i = 0; i < p->n_guests; i++) {
		const struct host_guest *g = &p->guests[i];
		if (strcmp(g->name, d->name) == 0)
			return "a guest of the policy has its name";
		/* a hybrid guest's CID is its own VMM's business, not the host's */
		if (!g->hybrid[0] && g->cid == d->cid)
			return "another guest has its CID";
	}
	return NULL;
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const struct host_domain *const *)a)->name,
		      (*(const struct host_domain *const *)b)->name);
}

/* Appends to g a reach of guest `to` with a copy of re's ports; -1: out of memory. */
static int add_reach(struct host_guest *g, size_t to, const struct host_reach *re)
{
	struct host_reach *all = realloc(g->reach, (g->n_reach + 1) * sizeof *all);

	if (!all)
		return -1;
	g->reach = all;
	struct host_reach *copy = &g->reach[g->n_reach];
	*copy = (struct host_reach){.guest = to, .line = re->line};
	if (re->n_ranges) {
		copy->ranges = malloc(re->n_ranges * sizeof *copy->ranges);
		if (!copy->ranges)
			return -1;
		memcpy(copy->ranges, re->ranges, re->n_ranges * sizeof *copy->ranges);
		copy->n_ranges = re->n_ranges;
	}
	g->n_reach++;
	return 0;
}

/* Each guest of p reaches every other guest of the written blocks its block reaches. */
static int resolve_reach(const struct host_policy *written, struct host_policy *p,
			 const size_t *block_of)
{
	for (size_t i = 0; i < p->n_guests; i++) {
		const struct host_guest *b = &written->guests[block_of[i]];
		for (size_t k = 0; k < b->n_reach; k++)
			for (size_t j = 0; j < p->n_guests; j++)
				if (j != i && block_of[j] == b->reach[k].guest &&
				    add_reach(&p->guests[i], j, &b->reach[k]) < 0)
					return -1;
	}
	return 0;
}

/* Adds the guest of domain d, of block b; the caller made room. */
static void add_domain(struct host_policy *p, const struct host_guest *b,
		       const struct host_domain *d)
{
	struct host_guest *g = &p->guests[p->n_guests++];

	*g = (struct host_guest){
		.line = b->line,
		.cid = d->cid,
		.vsock_base = b->vsock_base,
		.control_port = b->control_port,
		.n_owned = b->n_owned,
		.libvirt = true,
	};
	memcpy(g->owned, b->owned, sizeof g->owned);
	memcpy(g->name, d->name, strlen(d->name) + 1); /* refusal checked its length */
	snprintf(g->uuid, sizeof g->uuid, "%s", d->uuid);
	snprintf(g->block, sizeof g->block, "%s", b->name);
}

int host_domains_in_force(const struct host_policy *written, const struct host_domain *domains,
			  size_t n_domains, struct host_policy **out)
{
	size_t room = written->n_guests + n_domains + 1;
	struct host_policy *p = calloc(1, sizeof *p);
	size_t *block_of = calloc(room, sizeof *block_of);
	const struct host_domain **order = calloc(n_domains + 1, sizeof *order);

	if (!p || !block_of || !order || !(p->guests = calloc(room, sizeof *p->guests)))
		goto fail;
	struct host_guest *guests = p->guests;
	*p = *written;
	p->guests = guests;
	p->n_guests = 0;
	for (size_t i = 0; i < written->n_guests; i++) {
		const struct host_guest *w = &written->guests[i];
		if (w->libvirt)
			continue;
		p->guests[p->n_guests] = *w;
		p->guests[p->n_guests].reach = NULL;
		p->guests[p->n_guests].n_reach = 0;
		p->guests[p->n_guests].patterns = NULL;
		p->guests[p->n_guests].n_patterns = 0;
		block_of[p->n_guests++] = i;
	}
	/* in name order: which of two domains with one CID is refused does not depend on
	 * the order libvirt lists them in */
	for (size_t i = 0; i < n_domains; i++)
		order[i] = &domains[i];
	qsort(order, n_domains, sizeof *order, by_name);
	for (size_t k = 0; k < n_domains; k++) {
		const struct host_domain *d = order[k];
		size_t b = 0;
		while (b < written->n_guests && !stands_for(&written->guests[b], d->name))
			b++;
		if (b == written->n_guests)
			continue;
		const char *why = refusal(p, d);
		if (why) {
			log_warn("libvirt domain %s (cid %u): not a guest of block %s: %s", d->uuid,
				 d->cid, written->guests[b].name, why);
			continue;
		}
		block_of[p->n_guests] = b;
		add_domain(p, &written->guests[b], d);
	}
	if (resolve_reach(written, p, block_of) < 0)
		goto fail;
	free(block_of);
	free(order);
	*out = p;
	return 0;
fail:
	host_policy_free(p);
	free(block_of);
	free(order);
	return -1;
}
