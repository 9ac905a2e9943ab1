/* Telling guests their siblings (siblings.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"
#include "siblings.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "vmshim/relayproto.h"

struct follower {
	struct watch w;
	int guest;
};

static struct follower **followers; /* per guest of the policy in force; NULL: none */
static size_t n_followers;

static void let_go(struct follower *f, const char *why)
{
	log_debug("guest %s no longer told its siblings: %s",
		  f->guest >= 0 ? relay.policy->guests[f->guest].name : "(gone)", why);
	if (f->guest >= 0 && (size_t)f->guest < n_followers)
		followers[f->guest] = NULL;
	loop_retire(&f->w);
	close(f->w.fd);
}

/* The entry of guest `of` for guest g. */
static void entry(const struct host_policy *p, size_t g, size_t of, uint8_t *out)
{
	const struct host_guest *h = &p->guests[of];
	struct relayproto_sibling e = {.cid = h->cid,
				       .vsock_base = h->vsock_base,
				       .control_port = h->control_port,
				       .n_addrs = (uint8_t)h->n_owned};

	memcpy(e.name, h->name, sizeof e.name);
	memcpy(e.uuid, h->uuid, sizeof e.uuid);
	if (of == g)
		e.flags |= RELAYPROTO_SIBLING_SELF;
	else {
		if (host_may_reach(p, g, of, h->control_port))
			e.flags |= RELAYPROTO_SIBLING_REACHES;
		if (host_may_reach(p, of, g, p->guests[g].control_port))
			e.flags |= RELAYPROTO_SIBLING_REACHED;
	}
	for (size_t i = 0; i < h->n_owned; i++) {
		e.addrs[i].family = (uint8_t)h->owned[i].family;
		e.addrs[i].len = (uint8_t)h->owned[i].len;
		memcpy(e.addrs[i].addr, h->owned[i].addr, sizeof e.addrs[i].addr);
	}
	relayproto_sibling(out, &e);
}

/* Sends g its list: itself, and every guest that it may reach or that may reach it (their
 * helperds' control ports). Whole or not at all: a guest that does not read is let go. */
static void tell(struct follower *f)
{
	const struct host_policy *p = relay.policy;
	size_t g = (size_t)f->guest, n = 0;
	uint8_t *msg = malloc(RELAYPROTO_SIBLINGS_HEADER_SIZE +
			      (p->n_guests + 1) * (size_t)RELAYPROTO_SIBLING_SIZE);

	if (!msg) {
		let_go(f, "out of memory");
		return;
	}
	for (size_t of = 0; of < p->n_guests && n < RELAYPROTO_SIBLINGS_MAX; of++) {
		if (of != g && !host_may_reach(p, g, of, p->guests[of].control_port) &&
		    !host_may_reach(p, of, g, p->guests[g].control_port))
			continue;
		entry(p, g, of,
		      msg + RELAYPROTO_SIBLINGS_HEADER_SIZE + n++ * RELAYPROTO_SIBLING_SIZE);
	}
	relayproto_siblings_header(msg, (uint16_t)n);
	size_t len = RELAYPROTO_SIBLINGS_HEADER_SIZE + n * RELAYPROTO_SIBLING_SIZE;
	ssize_t sent = send(f->w.fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	free(msg);
	if (sent != (ssize_t)len)
		let_go(f, "it does not read what it is told");
}

static void on_follower(struct watch *w, uint32_t events)
{
	(void)events;
	/* it may only listen: anything it sends, or its hang-up, ends it */
	let_go((struct follower *)w->owner, "it spoke or closed");
}

void siblings_take(int fd, int guest)
{
	uint8_t ok[RELAYPROTO_REPLY_SIZE];
	struct follower *f = calloc(1, sizeof *f);
	size_t n = relay.policy->n_guests;

	if (n_followers < n) {
		struct follower **all = realloc(followers, n * sizeof *all);
		if (all) {
			memset(all + n_followers, 0, (n - n_followers) * sizeof *all);
			followers = all;
			n_followers = n;
		}
	}
	relayproto_reply(ok, RELAY_OK);
	if (!f || (size_t)guest >= n_followers ||
	    send(fd, ok, sizeof ok, MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof ok) {
		free(f);
		close(fd);
		return;
	}
	*f = (struct follower){.w = {.fd = fd, .on_event = on_follower, .owner = f},
			       .guest = guest};
	if (loop_add(&f->w, EPOLLIN | EPOLLRDHUP) < 0) {
		free(f);
		close(fd);
		return;
	}
	if (followers[guest])
		let_go(followers[guest], "it asked again");
	followers[guest] = f;
	tell(f);
}

void siblings_regrant(const int *map, size_t old_n)
{
	size_t n = relay.policy->n_guests;
	struct follower **now = calloc(n ? n : 1, sizeof *now);

	for (size_t i = 0; i < old_n && i < n_followers; i++) {
		struct follower *f = followers[i];
		if (!f)
			continue;
		followers[i] = NULL;
		f->guest = map[i];
		if (map[i] < 0 || !now)
			let_go(f, map[i] < 0 ? "it is no longer that guest" : "out of memory");
		else
			now[map[i]] = f;
	}
	free(followers);
	followers = now;
	n_followers = now ? n : 0;
	for (size_t i = 0; i < n_followers; i++)
		if (followers[i])
			tell(followers[i]);
}

void siblings_close_all(void)
{
	for (size_t i = 0; i < n_followers; i++)
		if (followers[i])
			let_go(followers[i], "the relay stops");
	free(followers);
	followers = NULL;
	n_followers = 0;
}

size_t siblings_following(void)
{
	size_t n = 0;

	for (size_t i = 0; i < n_followers; i++)
		n += followers[i] != NULL;
	return n;
}
