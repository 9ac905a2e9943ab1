/* `vmshim-relay status`: a Unix socket in the run directory (root's alone) that answers
 * each connection with the relay's state as JSON and closes it. The answer is sent without
 * blocking, as the reader takes it: a reader that stops reading holds its own connection,
 * never the relay's loop, and is closed after STATUS_SEND_MS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "libvirt.h"
#include "relay.h"
#include "session.h"
#include "siblings.h"
#include "status.h"
#include "vmshim/clock.h"
#include "vmshim/log.h"

#define STATUS_SEND_MS 5000
#define STATUS_READERS 16 /* answers on their way at once; more readers are closed */

/* A reader whose answer did not fit into its socket at once. */
struct reader {
	struct watch w;
	char *text;
	size_t len, off;
	int64_t deadline_ms;
	struct reader *next;
};

static struct watch listener = {.fd = -1};
static struct reader *readers;
static unsigned n_readers;

static void print_counters(FILE *out, const struct relay_counters *c)
{
	fprintf(out,
		"{\"accepted\": %lu, \"relayed\": %lu, \"refused\": %lu, \"unreachable\": %lu, "
		"\"busy\": %lu, \"bad_requests\": %lu, \"no_half_close\": %lu, \"spliced\": %lu, "
		"\"taken_back\": %lu, \"rescued\": %lu, \"revoked\": %lu, \"bytes_up\": %llu, "
		"\"bytes_down\": %llu}",
		c->accepted, c->relayed, c->refused, c->unreachable, c->busy, c->bad_requests,
		c->no_half_close, c->spliced, c->taken_back, c->rescued, c->revoked, c->bytes_up,
		c->bytes_down);
}

static char *render(size_t *len)
{
	char *text = NULL;
	FILE *out = open_memstream(&text, len);

	if (!out)
		return NULL;
	fprintf(out, "{\"uptime_ms\": %lld, \"policy\": \"%s\", \"port\": %u, \"reloads\": %lu, "
		     "\"reloads_refused\": %lu,\n",
		(long long)(vmshim_now_ms() - relay.started_ms), relay.policy_path,
		relay.policy->port, relay.reloads, relay.reloads_refused);
	fprintf(out, " \"forwarding\": \"%s\", \"forwarding_note\": \"%s\",\n",
		relay.splice ? "sockmap" : "copy", relay.splice ? "" : relay.splice_why);
	if (relay.written->libvirt_uri[0]) {
		bool connected;
		unsigned long lists;
		libvirt_state(&connected, &lists);
		fprintf(out, " \"libvirt\": {\"uri\": \"%s\", \"connected\": %s, \"domains\": %zu, "
			     "\"lists\": %lu, \"updates\": %lu},\n",
			relay.written->libvirt_uri, connected ? "true" : "false", relay.n_domains,
			lists, relay.domain_updates);
	}
	fprintf(out, " \"connections\": %u, \"following_siblings\": %zu, \"unknown_callers\": %lu, "
		     "\"counters\": ",
		relay.n_sessions, siblings_following(), relay.unknown_callers);
	print_counters(out, &relay.total);
	fputs(",\n \"guests\": [", out);
	for (size_t i = 0; i < relay.policy->n_guests; i++) {
		const struct host_guest *g = &relay.policy->guests[i];
		fprintf(out, "%s\n  {\"name\": \"%s\", \"cid\": %u, \"source\": \"%s\", "
			     "\"uuid\": \"%s\", \"block\": \"%s\", \"transport\": \"%s\", "
			     "\"half_close\": %s, \"connections\": %u, \"counters\": ",
			i ? "," : "", g->name, g->cid, g->libvirt ? "libvirt" : "policy", g->uuid,
			g->block, g->hybrid[0] ? "hybrid" : "vsock",
			g->loses_half_close ? "false" : "true", relay.per_guest[i]);
		print_counters(out, &relay.per_guest_counters[i]);
		fputc('}', out);
	}
	fputs("],\n \"sessions\": [", out);
	session_print(out);
	fputs("]}\n", out);
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* Sends what the socket takes: 1 once all is sent, 0 while more is to go, -1 on an error. */
static int send_more(int fd, const char *text, size_t len, size_t *off)
{
	while (*off < len) {
		ssize_t n = send(fd, text + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		*off += (size_t)n;
	}
	return 1;
}

static void reader_end(struct reader *r)
{
	for (struct reader **p = &readers; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	n_readers--;
	free(r->text);
	r->text = NULL;
	loop_retire(&r->w);
	close(r->w.fd);
}

static void on_reader(struct watch *w, uint32_t events)
{
	struct reader *r = w->owner;

	(void)events;
	if (send_more(r->w.fd, r->text, r->len, &r->off) != 0)
		reader_end(r);
}

static void on_status(struct watch *w, uint32_t events)
{
	int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	size_t len, off = 0;
	char *text;

	(void)events;
	if (fd < 0)
		return;
	text = render(&len);
	if (!text || send_more(fd, text, len, &off) != 0 || n_readers >= STATUS_READERS) {
		free(text);
		close(fd);
		return;
	}
	struct reader *r = malloc(sizeof *r);
	if (r)
		*r = (struct reader){.w = {.fd = fd, .on_event = on_reader, .owner = r},
				     .text = text, .len = len, .off = off,
				     .deadline_ms = vmshim_now_ms() + STATUS_SEND_MS,
				     .next = readers};
	if (!r || loop_add(&r->w, EPOLLOUT) < 0) {
		free(r);
		free(text);
		close(fd);
		return;
	}
	readers = r;
	n_readers++;
}

void status_tick(void)
{
	int64_t now = vmshim_now_ms();

	for (struct reader *r = readers, *next; r; r = next) {
		next = r->next;
		if (now >= r->deadline_ms)
			reader_end(r);
	}
}

static int status_address(const char *rundir, struct sockaddr_un *sun)
{
	*sun = (struct sockaddr_un){.sun_family = AF_UNIX};
	if ((size_t)snprintf(sun->sun_path, sizeof sun->sun_path, "%s/status", rundir) >=
	    sizeof sun->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int status_open(const char *rundir)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || status_address(rundir, &sun) < 0)
		goto fail;
	unlink(sun.sun_path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || chmod(sun.sun_path, 0600) < 0 ||
	    listen(fd, 16) < 0)
		goto fail;
	listener = (struct watch){.fd = fd, .on_event = on_status};
	if (loop_add(&listener, EPOLLIN) < 0)
		goto fail;
	return 0;
fail:
	log_err("status socket in %s: %m", rundir);
	if (fd >= 0)
		close(fd);
	return -1;
}

void status_close(const char *rundir)
{
	struct sockaddr_un sun;

	if (listener.fd < 0)
		return;
	while (readers)
		reader_end(readers);
	loop_del(&listener);
	close(listener.fd);
	if (status_address(rundir, &sun) == 0)
		unlink(sun.sun_path);
}

int status_print(const char *rundir)
{
	struct sockaddr_un sun;
	struct timeval timeout = {.tv_sec = 5};
	char buf[65536];
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || status_address(rundir, &sun) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		fprintf(stderr, "vmshim-relay: cannot reach the relay at %s/status: %s\n", rundir,
			strerror(errno));
		return 1;
	}
	while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	close(fd);
	if (n < 0) {
		fprintf(stderr, "vmshim-relay: status: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}
