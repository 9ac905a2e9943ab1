/* Following the relay's list of this guest's siblings (hostpeers.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helperd.h"
#include "hostpeers.h"
#include "link.h"
#include "policy_addr.h"
#include "vmshim/log.h"
#include "vmshim/ports.h"
#include "vmshim/loop.h"
#include "vmshim/relayproto.h"
#include "vmshim/vsock.h"

enum hostpeers_state { HP_IDLE, HP_CONNECTING, HP_ASKING, HP_FOLLOWING };

static struct {
	enum hostpeers_state state;
	struct watch w;
	/* the message being read: the reply, a list's header, then its entries */
	uint8_t buf[RELAYPROTO_SIBLINGS_HEADER_SIZE +
		    RELAYPROTO_SIBLINGS_MAX * RELAYPROTO_SIBLING_SIZE];
	unsigned have, want;
	uint16_t count; /* entries of the list being read */
	struct relayproto_sibling *list; /* the last whole list; NULL: none yet */
	int n_list;
	uint8_t *raw; /* its entries as they came, to tell a new list from the same again */
} hp = {.w = {.fd = -1}, .n_list = -1};

static void hang_up(const char *why)
{
	if (hp.state == HP_IDLE)
		return;
	log_debug("relay's list of siblings: %s", why);
	loop_retire(&hp.w);
	close(hp.w.fd);
	hp.w = (struct watch){.fd = -1};
	hp.state = HP_IDLE;
}

/* A whole list in hp.buf: checked entry by entry, then in force if it differs. */
static void take_list(void)
{
	struct relayproto_sibling *list = calloc(hp.count + 1u, sizeof *list);
	const char *why = NULL;

	for (unsigned i = 0; list && i < hp.count; i++)
		if (relayproto_parse_sibling(hp.buf + RELAYPROTO_SIBLINGS_HEADER_SIZE +
						     i * RELAYPROTO_SIBLING_SIZE,
					     &list[i], &why) < 0) {
			log_limited(0, LOG_WARNING, "the relay's list of siblings, entry %u: %s: "
				    "not used", i, why);
			free(list);
			hang_up("broken entry");
			return;
		}
	size_t size = (size_t)hp.count * RELAYPROTO_SIBLING_SIZE;
	const uint8_t *entries = hp.buf + RELAYPROTO_SIBLINGS_HEADER_SIZE;
	uint8_t *raw = list ? malloc(size + 1) : NULL;
	if (!raw) {
		free(list);
		hang_up("out of memory");
		return;
	}
	if (hp.n_list == hp.count && !memcmp(entries, hp.raw, size)) {
		free(list);
		free(raw);
		return;
	}
	memcpy(raw, entries, size);
	free(hp.list);
	free(hp.raw);
	hp.list = list;
	hp.raw = raw;
	hp.n_list = hp.count;
	int siblings = 0;
	for (int i = 0; i < hp.n_list; i++)
		siblings += !(list[i].flags & RELAYPROTO_SIBLING_SELF);
	log_info("the relay says this guest has %d siblings", siblings);
	helperd_mark(CHANGED_HOST_PEERS);
}

/* Reads on: the reply, then headers and lists, as many as have come. */
static void on_readable(void)
{
	for (;;) {
		int got = relayproto_recv(hp.w.fd, hp.buf, hp.want, &hp.have);
		enum relayproto_status status;
		const char *why = NULL;
		if (got <= 0) {
			if (got < 0)
				hang_up(errno ? strerror(errno) : "the relay closed the connection");
			return;
		}
		if (hp.state == HP_ASKING) {
			if (relayproto_parse_reply(hp.buf, &status, &why) == 0 && status != RELAY_OK)
				why = relayproto_status_name(status);
		} else if (hp.want == RELAYPROTO_SIBLINGS_HEADER_SIZE &&
			   relayproto_parse_siblings_header(hp.buf, &hp.count, &why) == 0 &&
			   hp.count) {
			hp.want += hp.count * RELAYPROTO_SIBLING_SIZE; /* its entries */
			continue;
		} else if (!why)
			take_list();
		if (why) {
			log_limited(0, LOG_WARNING, "the relay's list of siblings: %s", why);
			hang_up(why);
			return;
		}
		if (hp.state == HP_IDLE) /* take_list let it go */
			return;
		hp.state = HP_FOLLOWING;
		hp.have = 0;
		hp.want = RELAYPROTO_SIBLINGS_HEADER_SIZE;
	}
}

static void on_event(struct watch *w, uint32_t events)
{
	uint8_t ask[RELAYPROTO_REQUEST_SIZE];
	struct sockaddr_vm local;
	socklen_t len = sizeof local;
	int err = 0;
	socklen_t errlen = sizeof err;

	(void)w;
	if (hp.state != HP_CONNECTING) {
		on_readable();
		return;
	}
	if (!(events & EPOLLOUT) || getsockopt(hp.w.fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0 ||
	    err || getsockname(hp.w.fd, (struct sockaddr *)&local, &len) < 0) {
		hang_up("cannot connect to the relay");
		return;
	}
	relayproto_ask_siblings(ask, local.svm_port);
	if (send(hp.w.fd, ask, sizeof ask, MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof ask) {
		hang_up("cannot send to the relay");
		return;
	}
	hp.state = HP_ASKING;
	hp.have = 0;
	hp.want = RELAYPROTO_REPLY_SIZE;
	loop_mod(&hp.w, EPOLLIN | EPOLLRDHUP);
}

static void dial(void)
{
	const struct policy *pol = helperd.policy;
	int s = link_control_socket();

	if (s < 0 || (vsock_connect(s, pol->relay_cid, pol->relay_port, VSOCK_FROM_GUEST, 0) < 0 &&
		      errno != EINPROGRESS)) {
		log_debug("relay's list of siblings: cannot connect to the relay: %m");
		if (s >= 0)
			close(s);
		return;
	}
	hp.w = (struct watch){.fd = s, .on_event = on_event};
	if (loop_add(&hp.w, EPOLLOUT | EPOLLRDHUP) < 0) {
		close(s);
		hp.w.fd = -1;
		return;
	}
	hp.state = HP_CONNECTING;
}

static void forget(void)
{
	free(hp.list);
	free(hp.raw);
	hp.list = NULL;
	hp.raw = NULL;
	hp.n_list = -1;
}

void hostpeers_tick(void)
{
	if (!helperd.policy->peers_from_relay) {
		hang_up("the policy no longer says `peers relay`");
		if (hp.list)
			helperd_mark(CHANGED_HOST_PEERS);
		forget();
		return;
	}
	if (hp.state == HP_IDLE)
		dial();
}

/* Whether name is a peer the file gives. */
static bool in_file(const struct policy *file, const char *name)
{
	return policy_find_peer(file, name) >= 0;
}

/* One entry as a peer block of the policy's syntax (policy/FORMAT.md). */
static void peer_block(FILE *out, const struct relayproto_sibling *e)
{
	fprintf(out, "peer %s\n cid %u\n vsock-base %u\n via relay\n", e->name, e->cid,
		e->vsock_base);
	/* the default is no port given by hand: that may not lie in a block of its CID */
	if (e->control_port != e->vsock_base + VMSHIM_CONTROL_OFFSET)
		fprintf(out, " control-port %u\n", e->control_port);
	for (unsigned i = 0; i < e->n_addrs; i++) {
		struct policy_prefix p = {.family = e->addrs[i].family, .len = e->addrs[i].len};
		char why[128], shown[POLICY_PREFIX_STRLEN];
		memcpy(p.addr, e->addrs[i].addr, sizeof p.addr);
		/* one the policy could never give a peer (loopback, ...) is left out */
		if (policy_prefix_check(&p, why, sizeof why) < 0) {
			log_limited(0, LOG_WARNING, "the relay gives %s %s: %s; left out", e->name,
				    policy_prefix_format(&p, shown), why);
			continue;
		}
		fprintf(out, " address %s\n", policy_prefix_format(&p, shown));
	}
}

char *hostpeers_text(const struct policy *file)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	if (!hp.list || !(out = open_memstream(&text, &len)))
		return NULL;
	fputs("# the siblings the relay told of (peers relay)\n", out);
	for (int i = 0; i < hp.n_list; i++)
		if (!in_file(file, hp.list[i].name))
			peer_block(out, &hp.list[i]);
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

const char *hostpeers_self(void)
{
	for (int i = 0; i < hp.n_list; i++)
		if (hp.list[i].flags & RELAYPROTO_SIBLING_SELF)
			return hp.list[i].name;
	return NULL;
}

void hostpeers_mark(const struct policy *file, struct policy *merged)
{
	for (int i = 0; i < hp.n_list; i++) {
		int p = policy_find_peer(merged, hp.list[i].name);
		if (p >= 0 && !in_file(file, hp.list[i].name))
			memcpy(merged->peers[p].uuid, hp.list[i].uuid, sizeof merged->peers[p].uuid);
	}
}

int hostpeers_count(void)
{
	return hp.n_list;
}

bool hostpeers_following(void)
{
	return hp.state == HP_FOLLOWING;
}

void hostpeers_stop(void)
{
	hang_up("helperd stops");
	forget();
}
