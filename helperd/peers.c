/* Discovery and liveness of the other helperds (peers.h): the links to every peer of the
 * policy (link.h), the tick that drops the silent ones and announces, and the views the
 * table is built from. Everything runs in helperd's one event loop, without blocking. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "announce.h"
#include "claims.h"
#include "helperd.h"
#include "inbound.h"
#include "link.h"
#include "outbound.h"
#include "peers.h"
#include "policy_addr.h"
#include "vmshim/clock.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "vmshim/ports.h"

struct link **links;
size_t n_links;
static struct table_peer_view *views;
static struct watch ticker = {.fd = -1};

/* Announces on every link that is connected. */
static void announce_all(void)
{
	for (size_t i = 0; i < n_links; i++)
		if (links[i]->state == LINK_ANNOUNCING)
			outbound_announce(links[i]);
}

/* Whether l is up and has announced nothing for longer than silence_max. */
static bool silent(const struct link *l, int64_t now, int64_t silence_max)
{
	return l->liveness == PEER_UP && now - l->last_ms > silence_max;
}

/* Every sixth of the liveness timeout T: a peer silent for 2T/3 (two announcements missed:
 * peers announce every T/3) is dropped. So one that stops is dropped at most 5T/6 after its
 * last announcement, which leaves T/6 for late timers in a loaded guest before the
 * promise, within T, is broken. Every other tick: announce, and connect to the peers this
 * helperd has no connection to. */
static void on_tick(struct watch *w, uint32_t events)
{
	static unsigned n;
	uint64_t ticks;
	int64_t now = vmshim_now_ms();
	int64_t silence_max = helperd.policy->liveness_ms * 2 / 3;

	(void)events;
	if (read(w->fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	for (size_t i = 0; i < n_links; i++) {
		struct link *l = links[i];

		/* A loop that ran late (a loaded guest) may come here before the announcement
		 * it has not read yet: what waits is read first, so that a peer is not blamed
		 * for this helperd's delay. */
		if (silent(l, now, silence_max) && l->speaker)
			inbound_read_waiting(l->speaker);
		if (silent(l, now, silence_max)) {
			char why[96];
			snprintf(why, sizeof why, "no announcement for %lld ms (liveness timeout %u ms)",
				 (long long)(now - l->last_ms), helperd.policy->liveness_ms);
			link_down(l, why);
		}
	}
	if (n++ % 2)
		return;
	announce_find_owned();
	announce_compose();
	/* Dialled first: a link closed by this round's announcement waits for the next. */
	for (size_t i = 0; i < n_links; i++)
		if ((int)i != helperd.self && links[i]->state == LINK_IDLE)
			outbound_dial(links[i]);
	announce_all();
}

static int arm_ticker(void)
{
	uint32_t ms = helperd.policy->liveness_ms / 6;
	struct itimerspec every = {
		.it_interval = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000},
		.it_value = {.tv_nsec = 1}, /* at once: announce without waiting a round */
	};

	return timerfd_settime(ticker.fd, 0, &every, NULL);
}

/* The link kept for policy entry pp: the one it had if nothing of it changed, else a new
 * one; exits when out of memory (the service manager starts helperd again). */
static struct link *link_for(const struct policy_peer *pp)
{
	for (size_t j = 0; j < n_links; j++) {
		struct link *l = links[j];
		if (l && !strcmp(l->name, pp->name) && !strcmp(l->uuid, pp->uuid) &&
		    l->cid == pp->cid && l->base == pp->vsock_base &&
		    l->control_port == pp->control_port && l->via_relay == pp->via_relay) {
			links[j] = NULL;
			return l;
		}
	}
	struct link *l = calloc(1, sizeof(*l));
	if (!l) {
		log_err("out of memory: peers forgotten");
		exit(1);
	}
	snprintf(l->name, sizeof(l->name), "%s", pp->name);
	memcpy(l->uuid, pp->uuid, sizeof(l->uuid));
	l->cid = pp->cid;
	l->base = pp->vsock_base;
	l->control_port = pp->control_port;
	l->via_relay = pp->via_relay;
	return l;
}

void peers_policy_changed(void)
{
	const struct policy *pol = helperd.policy;
	struct link **fresh = calloc(pol->n_peers ? pol->n_peers : 1, sizeof(*fresh));
	struct table_peer_view *v = calloc(pol->n_peers ? pol->n_peers : 1, sizeof(*v));

	if (!fresh || !v) {
		log_err("out of memory: peers forgotten");
		exit(1); /* the service manager starts helperd again */
	}
	for (size_t i = 0; i < pol->n_peers; i++)
		fresh[i] = link_for(&pol->peers[i]);
	for (size_t j = 0; j < n_links; j++)
		if (links[j])
			link_free(links[j]);
	free(links);
	free(views);
	links = fresh;
	views = v;
	n_links = pol->n_peers;
	announce_find_owned();
	announce_compose();
	for (size_t i = 0; i < n_links; i++)
		claims_judge_again(links[i], &pol->peers[i]);
	inbound_listen();
	if (ticker.fd >= 0)
		arm_ticker();
}

int peers_start(void)
{
	ticker = (struct watch){.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC),
				.on_event = on_tick};
	if (ticker.fd < 0 || loop_add(&ticker, EPOLLIN) < 0)
		return -1;
	peers_policy_changed();
	return views ? 0 : -1;
}

void peers_announce_served(const uint64_t *v4, const uint64_t *v6)
{
	announce_served(v4, v6);
	announce_all();
}

const struct table_peer_view *peers_views(void)
{
	size_t n_self;
	const struct policy_prefix *self = announce_owned(&n_self);

	for (size_t i = 0; i < n_links; i++) {
		const struct link *l = links[i];
		if ((int)i == helperd.self)
			views[i] = (struct table_peer_view){.up = 1, .owned = self, .n_owned = n_self};
		else
			views[i] = (struct table_peer_view){.up = l->liveness == PEER_UP,
							    .owned = l->owned,
							    .n_owned = l->n_owned,
							    .served4 = l->served4,
							    .served6 = l->served6};
	}
	return views;
}

int peers_identify(const struct sockaddr_vm *from, uint16_t *tcp_port)
{
	for (size_t i = 0; i < helperd.policy->n_peers; i++) {
		const struct policy_peer *p = &helperd.policy->peers[i];
		uint32_t first = vmshim_source_port(p->vsock_base, 0);

		if ((int)i == helperd.self || p->cid != from->svm_cid || from->svm_port < first ||
		    from->svm_port - first > 65535)
			continue;
		*tcp_port = (uint16_t)(from->svm_port - first);
		return (int)i;
	}
	return -1;
}

bool peers_address(int i, bool v6, uint8_t addr[16])
{
	size_t n;
	const struct policy_prefix *owned = announce_owned(&n);

	if (i != helperd.self) {
		owned = links[i]->owned;
		n = links[i]->n_owned;
	}
	const struct policy_prefix *a = policy_first_single(owned, n, v6 ? AF_INET6 : AF_INET);

	memset(addr, 0, 16);
	if (a)
		memcpy(addr, a->addr, v6 ? 16 : 4);
	return a != NULL;
}

void peers_stop(void)
{
	for (size_t i = 0; i < n_links; i++)
		link_free(links[i]);
	free(links);
	free(views);
	links = NULL;
	views = NULL;
	n_links = 0;
	inbound_stop();
	if (ticker.fd >= 0)
		close(ticker.fd);
}
