/* The relay's listeners and its connections to guests (transport.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hybrid_path.h"
#include "relay.h"
#include "session.h"
#include "transport.h"
#include "vmshim/log.h"
#include "vmshim/relayproto.h"
#include "vmshim/vsock.h"
#include "vmshim/vsockbuf.h"

#define BACKLOG 1024
#define ACCEPTS_PER_EVENT 64 /* then the others get their turn */

/* One listener: the vsock one (guest -1: who called is read from the address), or a hybrid
 * guest's PATH_PORT. */
struct listener {
	struct watch w;
	int guest;
	struct hybrid_sock hs; /* a hybrid guest's */
	struct listener *next;
};

static struct listener *listeners;

static void on_vsock_accept(struct listener *l)
{
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_vm from;
		socklen_t len = sizeof from;
		int fd = accept4(l->w.fd, (struct sockaddr *)&from, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("vsock port %u: accept: %m", relay.policy->port);
			return;
		}
		int g = host_guest_calling(relay.policy, from.svm_cid, from.svm_port);
		if (g < 0) {
			relay.unknown_callers++;
			log_limited(LOG_SOURCE(LOG_KIND_CID, from.svm_cid), LOG_WARNING,
				    "connection from cid %u port %u refused: no guest of the policy",
				    from.svm_cid, from.svm_port);
			close(fd);
			continue;
		}
		session_start(fd, g, from.svm_port, true);
	}
}

static void on_hybrid_accept(struct listener *l)
{
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		int fd = accept4(l->w.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("%s_%u: accept: %m", relay.policy->guests[l->guest].hybrid,
					 relay.policy->port);
			return;
		}
		/* the VMM does not say which port the guest connected from: its request will */
		session_start(fd, l->guest, 0, false);
	}
}

static void on_listener(struct watch *w, uint32_t events)
{
	struct listener *l = w->owner;

	(void)events;
	if (l->guest < 0)
		on_vsock_accept(l);
	else
		on_hybrid_accept(l);
}

/* Takes fd, a listening socket, and hs (a hybrid guest's, or NULL), in every case. */
static int add_listener(int fd, int guest, struct hybrid_sock *hs)
{
	struct listener *l = calloc(1, sizeof *l);

	if (l)
		*l = (struct listener){.w = {.fd = fd, .on_event = on_listener, .owner = l},
				       .guest = guest, .hs = {.dir = -1}, .next = listeners};
	if (l && hs)
		l->hs = *hs;
	if (!l || loop_add(&l->w, EPOLLIN) < 0) {
		int err = l ? errno : ENOMEM;
		if (hs)
			hybrid_unbind(hs);
		free(l);
		close(fd);
		errno = err;
		return -1;
	}
	listeners = l;
	return 0;
}

static int listen_vsock(void)
{
	int fd = vsock_listen(relay.policy->port, BACKLOG, SOCK_NONBLOCK | SOCK_CLOEXEC);

	/* A caller's session: the relay is its accepting end (vmshim/vsockbuf.h). */
	if (fd < 0 || vsock_buffer_set(fd, VMSHIM_VSOCK_BUFFER_ACCEPT) < 0) {
		log_err("vsock port %u: %m", relay.policy->port);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return add_listener(fd, -1, NULL);
}

/* PATH_PORT for a hybrid guest, where its VMM delivers the guest's connections to the
 * relay's port. Only the relay's user and group (the VMM's) may connect. A guest whose
 * socket cannot be made safely (a link on its path, no directory) cannot call through the
 * relay; the others are served. */
static void listen_hybrid(size_t g)
{
	const struct host_guest *guest = &relay.policy->guests[g];
	struct hybrid_sock hs;
	int fd = hybrid_listen(guest->hybrid, relay.policy->port, BACKLOG, &hs);

	if (fd < 0 || add_listener(fd, (int)g, &hs) < 0)
		log_err("guest %s: cannot listen at %s_%u (%m): it cannot call through the relay",
			guest->name, guest->hybrid, relay.policy->port);
}

int transport_listen(void)
{
	bool any_vsock = false;

	for (size_t g = 0; g < relay.policy->n_guests; g++) {
		if (!relay.policy->guests[g].hybrid[0])
			any_vsock = true;
		else
			listen_hybrid(g);
	}
	return any_vsock ? listen_vsock() : 0;
}

static void close_listener(struct listener *l)
{
	hybrid_unbind(&l->hs);
	loop_del(&l->w);
	close(l->w.fd);
	free(l);
}

void transport_close(void)
{
	while (listeners) {
		struct listener *l = listeners;
		listeners = l->next;
		close_listener(l);
	}
}

static bool listening_for(int guest)
{
	for (const struct listener *l = listeners; l; l = l->next)
		if (l->guest == guest)
			return true;
	return false;
}

/* The listeners follow the guests: a hybrid guest that stayed keeps its socket (its VMM's
 * connections in the backlog are not lost), one gone loses it, a new one (or one whose
 * socket could not be made before) gets one. The vsock listener is made if the first
 * vhost-vsock guest came, and kept when the last one went (a caller of no guest is
 * refused): it listens on the port of the start, which a reload does not change. */
void transport_regrant(const int *map)
{
	for (struct listener **p = &listeners; *p;) {
		struct listener *l = *p;
		if (l->guest >= 0 && map[l->guest] < 0) {
			*p = l->next;
			close_listener(l);
			continue;
		}
		if (l->guest >= 0)
			l->guest = map[l->guest];
		p = &l->next;
	}
	bool any_vsock = false;
	for (size_t g = 0; g < relay.policy->n_guests; g++) {
		if (!relay.policy->guests[g].hybrid[0])
			any_vsock = true;
		else if (!listening_for((int)g))
			listen_hybrid(g);
	}
	if (any_vsock && !listening_for(-1))
		listen_vsock();
}

/* A vsock socket bound to a free source port of the relay: a privileged one (1..1023),
 * which only the host's root can bind, so guests can tell the relay from other host
 * processes; where the relay shares its CID with guests (tests), one of the 1023 ports after
 * its own. Taken in turn: the lowest free one cost a bind per session held below it (three
 * binds per connection with two sessions held, bench/ "Where a connection's set-up goes"). */
static int relay_socket(void)
{
	uint32_t first = host_shares_cid(relay.policy) ? relay.policy->port + 1 : 1;
	static uint32_t next;
	int fd = vsock_source_socket(first, RELAYPROTO_SOURCE_PORTS, &next);

	/* Toward the destination the relay is the connecting end (vmshim/vsockbuf.h). */
	if (fd >= 0 && vsock_buffer_set(fd, VMSHIM_VSOCK_WINDOW) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int transport_dial(size_t to, uint32_t port)
{
	const struct host_guest *g = &relay.policy->guests[to];
	int fd;

	if (g->hybrid[0])
		return hybrid_dial_path(g->hybrid);
	fd = relay_socket();
	if (fd >= 0 && vsock_connect(fd, g->cid, port, VSOCK_FROM_HOST, 0) < 0 &&
	    errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}
