/* The relay's listeners and its connections to guests (transport.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "relay.h"
#include "session.h"
#include "transport.h"
#include "vmshim/log.h"
#include "vmshim/relayproto.h"

#define BACKLOG 1024
#define ACCEPTS_PER_EVENT 64 /* then the others get their turn */

/* One listener: the vsock one (guest -1: who called is read from the address), or a hybrid
 * guest's PATH_PORT. */
struct listener {
	struct watch w;
	int guest;
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
			log_warn("connection from cid %u port %u refused: no guest of the policy",
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

static int add_listener(int fd, int guest)
{
	struct listener *l = calloc(1, sizeof *l);

	if (!l || listen(fd, BACKLOG) < 0) {
		free(l);
		close(fd);
		return -1;
	}
	*l = (struct listener){.w = {.fd = fd, .on_event = on_listener, .owner = l},
			       .guest = guest, .next = listeners};
	if (loop_add(&l->w, EPOLLIN) < 0) {
		free(l);
		close(fd);
		return -1;
	}
	listeners = l;
	return 0;
}

static int listen_vsock(void)
{
	struct sockaddr_vm svm = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
				  .svm_port = relay.policy->port};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&svm, sizeof svm) < 0) {
		log_err("vsock port %u: %m", relay.policy->port);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return add_listener(fd, -1);
}

static socklen_t unix_address(struct sockaddr_un *sun, const char *path, uint32_t port)
{
	*sun = (struct sockaddr_un){.sun_family = AF_UNIX};
	if (port)
		snprintf(sun->sun_path, sizeof sun->sun_path, "%s_%" PRIu32, path, port);
	else
		snprintf(sun->sun_path, sizeof sun->sun_path, "%s", path);
	return (socklen_t)sizeof *sun;
}

/* PATH_PORT for a hybrid guest, where its VMM delivers the guest's connections to the
 * relay's port. Only the relay's user and group (the VMM's) may connect. */
static int listen_hybrid(size_t g)
{
	struct sockaddr_un sun;
	socklen_t len = unix_address(&sun, relay.policy->guests[g].hybrid, relay.policy->port);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd >= 0)
		unlink(sun.sun_path); /* a previous relay's */
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, len) < 0 || chmod(sun.sun_path, 0660) < 0) {
		log_err("%s: %m", sun.sun_path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return add_listener(fd, (int)g);
}

int transport_listen(void)
{
	bool any_vsock = false;

	for (size_t g = 0; g < relay.policy->n_guests; g++) {
		if (!relay.policy->guests[g].hybrid[0])
			any_vsock = true;
		else if (listen_hybrid(g) < 0)
			return -1;
	}
	return any_vsock ? listen_vsock() : 0;
}

void transport_close(void)
{
	while (listeners) {
		struct listener *l = listeners;
		listeners = l->next;
		if (l->guest >= 0) {
			struct sockaddr_un sun;
			unix_address(&sun, relay.policy->guests[l->guest].hybrid,
				     relay.policy->port);
			unlink(sun.sun_path);
		}
		loop_del(&l->w);
		close(l->w.fd);
		free(l);
	}
}

/* A vsock socket bound to a free source port of the relay: a privileged one (1..1023),
 * which only the host's root can bind, so guests can tell the relay from other host
 * processes; where the relay shares its CID with guests (tests), one of the 1023 ports after
 * its own. */
static int relay_socket(void)
{
	uint32_t first = host_shares_cid(relay.policy) ? relay.policy->port + 1 : 1;
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	for (uint32_t port = first; port < first + RELAYPROTO_SOURCE_PORTS; port++) {
		struct sockaddr_vm svm = {
			.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
		if (bind(fd, (struct sockaddr *)&svm, sizeof svm) == 0)
			return fd;
		if (errno != EADDRINUSE)
			break;
	}
	log_warn("no free relay source port (%u..%u): %m", first, first + RELAYPROTO_SOURCE_PORTS - 1);
	close(fd);
	return -1;
}

int transport_dial(size_t to, uint32_t port)
{
	const struct host_guest *g = &relay.policy->guests[to];
	int fd;

	if (g->hybrid[0]) {
		struct sockaddr_un sun;
		socklen_t len = unix_address(&sun, g->hybrid, 0);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, len) < 0 && errno != EINPROGRESS) {
			log_info("%s: %m", g->hybrid);
			close(fd);
			return -1;
		}
		return fd;
	}
	struct sockaddr_vm svm = {.svm_family = AF_VSOCK, .svm_cid = g->cid, .svm_port = port};
	fd = relay_socket();
	if (fd >= 0 && connect(fd, (struct sockaddr *)&svm, sizeof svm) < 0 && errno != EINPROGRESS) {
		log_info("cid %u port %u: %m", g->cid, port);
		close(fd);
		return -1;
	}
	return fd;
}

int hybrid_connect_line(char *buf, uint32_t port)
{
	return snprintf(buf, 24, "CONNECT %" PRIu32 "\n", port);
}

int hybrid_accepted(const char *line)
{
	unsigned long port;
	char end;

	return sscanf(line, "OK %lu%c", &port, &end) == 1;
}
