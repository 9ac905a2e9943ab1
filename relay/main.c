/* vmshim-relay: runs on the host and forwards sibling traffic between guests whose host
 * does not route vsock from guest to guest (README, "Host side").
 *
 *   vmshim-relay [-c POLICY] [-r RUNDIR] [-f] [--syslog|--stderr] [-d] [--copy]
 *   vmshim-relay --check [-c POLICY]
 *   vmshim-relay [-r RUNDIR] status
 *
 * SIGHUP, or any change of the policy file, reloads the host policy (reload.h).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "libvirt.h"
#include "relay.h"
#include "reload.h"
#include "session.h"
#include "siblings.h"
#include "vmshim/splice.h"
#include "status.h"
#include "transport.h"
#include "vmshim/clock.h"
#include "vmshim/daemon.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "vmshim/policy_watch.h"

#define DEFAULT_POLICY "/etc/vmshim/relay.policy"
#define DEFAULT_RUNDIR "/run/vmshim-relay"

struct relay relay;
static volatile int stopping;

static void on_signal(struct watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	while (read(w->fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP)
			relay_reload();
		else
			stopping = 1;
	}
}

static void on_tick(struct watch *w, uint32_t events)
{
	uint64_t ticks;

	(void)events;
	if (read(w->fd, &ticks, sizeof ticks) == sizeof ticks) {
		session_tick();
		status_tick();
	}
	log_limited_flush();
}

/* libvirt has a new list of domains. */
static void on_libvirt(struct watch *w, uint32_t events)
{
	struct host_domain *domains;
	size_t n;

	(void)w, (void)events;
	if (libvirt_take(&domains, &n))
		relay_domains_changed(domains, n);
}

void relay_describe(void)
{
	const struct host_policy *p = relay.policy;

	log_info("policy %s: port %u, %zu guests, at most %u connections (%u per guest), %u "
		 "bytes buffered per direction",
		 relay.policy_path, p->port, p->n_guests, p->max_connections, p->max_per_guest,
		 p->buffer);
	for (size_t i = 0; i < p->n_guests; i++) {
		const struct host_guest *g = &p->guests[i];
		log_info("guest %s: cid %u, %s%s%s%s%s, reaches %zu guests", g->name, g->cid,
			 g->hybrid[0] ? "hybrid vsock at " : "vhost-vsock", g->hybrid,
			 g->loses_half_close ? " (loses half-closes: only without-half-close ports)"
					     : "",
			 g->libvirt ? ", libvirt domain " : "", g->uuid, g->n_reach);
	}
	if (!p->libvirt_uri[0])
		return;
	for (size_t i = 0; i < relay.written->n_guests; i++) {
		const struct host_guest *b = &relay.written->guests[i];
		char patterns[256] = "";
		for (size_t k = 0, at = 0; k < b->n_patterns && at < sizeof patterns; k++)
			at += (size_t)snprintf(patterns + at, sizeof patterns - at, " %s",
					       b->patterns[k]);
		if (b->libvirt)
			log_info("block %s: %s%s, while it runs (%s)", b->name,
				 b->n_patterns ? "each libvirt domain whose name matches"
					       : "the libvirt domain of that name",
				 patterns, p->libvirt_uri);
	}
}

/* A kernel queue passed its limit: the sessions are looked at now, not at the next tick. */
static void on_splice_wake(struct watch *w, uint32_t events)
{
	(void)w, (void)events;
	splice_wake_clear(relay.splice);
	session_tick();
}

/* The kernel's splice if it can, else copies; says which. */
static void choose_forwarding(bool copy_only)
{
	static struct watch wake = {.on_event = on_splice_wake};

	if (copy_only)
		snprintf(relay.splice_why, sizeof relay.splice_why, "--copy given");
	else if (splice_open(&relay.splice, relay.policy->max_connections, relay.splice_why,
			     sizeof relay.splice_why) == 0) {
		relay.splice_why[0] = '\0';
		relay.splice_pairs = relay.policy->max_connections;
		wake.fd = splice_wake_fd(relay.splice);
		if (loop_add(&wake, EPOLLIN) < 0)
			log_warn("the kernel's queues are looked at every %d ms only: %m",
				 SESSION_TICK_MS);
	}
	if (relay.splice)
		log_info("forwarding in the kernel (BPF sockmap)");
	else
		log_info("forwarding by copies in user space: %s", relay.splice_why);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vmshim-relay [options]\n"
		"       vmshim-relay [-r RUNDIR] status\n"
		"  -c, --policy FILE   host policy (default " DEFAULT_POLICY ")\n"
		"  -r, --rundir DIR    run directory (default " DEFAULT_RUNDIR ")\n"
		"  -f, --foreground    stay in the foreground (logs to stderr)\n"
		"      --syslog        log to syslog, --stderr log to stderr\n"
		"  -d, --debug         log every connection\n"
		"      --copy          forward by copies even where the kernel could splice\n"
		"      --check         check the policy, print what is wrong, and exit\n");
}

static int run(int foreground, int to_syslog, int debug, bool copy_only)
{
	int lock = daemon_rundir(relay.rundir, "vmshim-relay");

	if (lock < 0)
		return 1;
	if (!foreground && daemon(0, 0) < 0) {
		log_err("cannot become a daemon: %m");
		return 1;
	}
	log_open("vmshim-relay", to_syslog < 0 ? !foreground : to_syslog, debug);
	daemon_raise_fd_limit(); /* two descriptors per relayed connection */
	relay.per_guest = calloc(relay.policy->n_guests, sizeof *relay.per_guest);
	relay.per_guest_counters =
		calloc(relay.policy->n_guests, sizeof *relay.per_guest_counters);

	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	sigprocmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct itimerspec every = {
		.it_interval = {.tv_nsec = SESSION_TICK_MS * 1000000L},
		.it_value = {.tv_nsec = SESSION_TICK_MS * 1000000L},
	};
	struct watch sig = {.fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC),
			    .on_event = on_signal};
	struct watch tick = {.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC),
			     .on_event = on_tick};
	if (!relay.per_guest || !relay.per_guest_counters || loop_init() < 0 || sig.fd < 0 ||
	    tick.fd < 0 || timerfd_settime(tick.fd, 0, &every, NULL) < 0 ||
	    loop_add(&sig, EPOLLIN) < 0 || loop_add(&tick, EPOLLIN) < 0) {
		log_err("cannot start: %m");
		return 1;
	}
	/* after the signals are blocked: the thread inherits the mask, so signalfd gets them */
	struct watch domains = {.on_event = on_libvirt};
	if (relay.written->libvirt_uri[0] &&
	    (libvirt_start(relay.written->libvirt_uri) < 0 || (domains.fd = libvirt_fd()) < 0 ||
	     loop_add(&domains, EPOLLIN) < 0)) {
		log_err("cannot start following libvirt at %s", relay.written->libvirt_uri);
		return 1;
	}
	/* before the status socket, which tells that the relay is up: every change of the
	 * file from then on is seen (t_relay_attacks wrote it while the BPF programs loaded) */
	policy_watch_start(relay.policy_path, relay_reload);
	if (transport_listen() < 0 || status_open(relay.rundir) < 0) {
		log_err("cannot start: %m");
		return 1;
	}
	choose_forwarding(copy_only);
	relay_describe();
	log_info("ready: run directory %s", relay.rundir);
	daemon_notify_ready();
	int rc = loop_run(&stopping, NULL);

	libvirt_stop();
	policy_watch_stop();
	siblings_close_all();
	session_close_all();
	transport_close();
	status_close(relay.rundir);
	if (relay.splice)
		splice_close(relay.splice);
	close(sig.fd);
	close(tick.fd);
	loop_close();
	free(relay.per_guest);
	free(relay.per_guest_counters);
	close(lock);
	log_info("stopped");
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"policy", required_argument, NULL, 'c'}, {"rundir", required_argument, NULL, 'r'},
		{"foreground", no_argument, NULL, 'f'},   {"syslog", no_argument, NULL, 'S'},
		{"stderr", no_argument, NULL, 'E'},       {"debug", no_argument, NULL, 'd'},
		{"copy", no_argument, NULL, 'P'},         {"check", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	int foreground = 0, debug = 0, check = 0, to_syslog = -1, copy_only = 0, opt;
	char err[512];

	relay.policy_path = DEFAULT_POLICY;
	relay.rundir = DEFAULT_RUNDIR;
	relay.started_ms = vmshim_now_ms();
	while ((opt = getopt_long(argc, argv, "c:r:fdh", options, NULL)) != -1) {
		switch (opt) {
		case 'c': relay.policy_path = optarg; break;
		case 'r': relay.rundir = optarg; break;
		case 'f': foreground = 1; break;
		case 'S': to_syslog = 1; break;
		case 'E': to_syslog = 0; break;
		case 'd': debug = 1; break;
		case 'P': copy_only = 1; break;
		case 'C': check = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind == argc - 1 && strcmp(argv[optind], "status") == 0)
		return status_print(relay.rundir);
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_open("vmshim-relay", 0, debug);
	if (host_policy_load(relay.policy_path, &relay.written, err, sizeof err) < 0) {
		fprintf(stderr, "vmshim-relay: %s\n", err);
		return 1;
	}
	/* libvirt's domains join once its thread has listed them */
	if (host_domains_in_force(relay.written, NULL, 0, &relay.policy) < 0) {
		fprintf(stderr, "vmshim-relay: out of memory\n");
		host_policy_free(relay.written);
		return 1;
	}
	int rc = check ? (relay_describe(), 0) : run(foreground, to_syslog, debug, copy_only);
	host_policy_free(relay.policy);
	host_policy_free(relay.written);
	free(relay.domains);
	return rc;
}
