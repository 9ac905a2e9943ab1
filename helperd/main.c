/* helperd: one per guest. Reads the policy, publishes the decision table for the shims,
 * answers them on its control socket, and accepts sibling connections for their listeners.
 *
 *   helperd [-f] [-c POLICY] [-r RUNDIR] [-s SELF] [--syslog|--stderr] [-d] [-w[CGROUP]]
 *   helperd --check [-c POLICY] [-s SELF]
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "counters.h"
#include "bridge.h"
#include "doorbell.h"
#include "fdbudget.h"
#include "guestwide.h"
#include "helperd.h"
#include "hostpeers.h"
#include "vmshim/daemon.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "peers.h"
#include "vmshim/policy_watch.h"
#include "publish.h"
#include "reload.h"
#include "preface.h"
#include "siblings.h"
#include "table_build.h"

#define DEFAULT_POLICY "/etc/vmshim/policy"
#define DEFAULT_CGROUP "/sys/fs/cgroup"

static volatile int stopping;

static void on_signal(struct watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			helperd_reload();
		else
			stopping = 1;
	}
}

/* glibc keeps what a crowd of waiting sibling connections freed inside the heap, where it
 * still counts in helperd's RSS: once none waits, hand it back to the system (at most once
 * a second, and only after sibling connections came). */
static void release_free_heap(void)
{
	static unsigned long accepted_at_last_trim;

	if (doorbell_waiting() == 0 && helperd.counters.sibling_accepted != accepted_at_last_trim) {
		malloc_trim(0);
		accepted_at_last_trim = helperd.counters.sibling_accepted;
	}
}

static void on_tick(struct watch *w, uint32_t events)
{
	uint64_t ticks;

	(void)events;
	if (read(w->fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	publish_heartbeat();
	hostpeers_tick();
	helperd_mark(CHANGED_LISTENER_MAY_BE_GONE);
	doorbell_expire(vmshim_now_ms());
	control_expire(vmshim_now_ms());
	bridge_expire(vmshim_now_ms());
	preface_expire(vmshim_now_ms());
	release_free_heap();
	log_limited_flush();
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: helperd [options]\n"
		"  -c, --policy FILE   policy file (default " DEFAULT_POLICY ")\n"
		"  -r, --rundir DIR    run directory (default " VMSHIM_DEFAULT_RUNDIR ")\n"
		"  -s, --self NAME     the peer of the policy that is this guest\n"
		"  -f, --foreground    stay in the foreground (logs to stderr)\n"
		"      --syslog        log to syslog, --stderr log to stderr\n"
		"  -d, --debug         log every sibling connection\n"
		"      --check         check the policy, print what is wrong, and exit\n"
		"  -w, --guest-wide[=CGROUP]  send every TCP connect to a sibling from the programs\n"
		"                      of CGROUP (default " DEFAULT_CGROUP ", the whole guest)\n"
		"                      over vsock, without LD_PRELOAD (needs BPF)\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"policy", required_argument, NULL, 'c'}, {"rundir", required_argument, NULL, 'r'},
		{"self", required_argument, NULL, 's'},   {"foreground", no_argument, NULL, 'f'},
		{"syslog", no_argument, NULL, 'S'},       {"stderr", no_argument, NULL, 'E'},
		{"debug", no_argument, NULL, 'd'},        {"check", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},         {"guest-wide", optional_argument, NULL, 'w'},
		{NULL, 0, NULL, 0},
	};
	int foreground = 0, debug = 0, check = 0, to_syslog = -1, opt;
	const char *guest_wide = NULL;
	char err[512];

	helperd.policy_path = DEFAULT_POLICY;
	helperd.rundir = VMSHIM_DEFAULT_RUNDIR;
	helperd.self = -1;
	helperd.started_ms = vmshim_now_ms();
	while ((opt = getopt_long(argc, argv, "c:r:s:fdhw::", options, NULL)) != -1) {
		switch (opt) {
		case 'c': helperd.policy_path = optarg; break;
		case 'r': helperd.rundir = optarg; break;
		case 's': helperd.self_name = optarg; break;
		case 'f': foreground = 1; break;
		case 'S': to_syslog = 1; break;
		case 'E': to_syslog = 0; break;
		case 'd': debug = 1; break;
		case 'C': check = 1; break;
		case 'w': guest_wide = optarg ? optarg : DEFAULT_CGROUP; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_open("helperd", 0, debug);
	if (helperd_load_policy(err, sizeof(err)) < 0) {
		fprintf(stderr, "helperd: %s\n", err);
		return 1;
	}
	if (check) {
		helperd_describe();
		return 0;
	}
	int lock = daemon_rundir(helperd.rundir, "helperd");
	if (lock < 0)
		return 1;
	if (!foreground && daemon(0, 0) < 0) {
		log_err("cannot become a daemon: %m");
		return 1;
	}
	log_open("helperd", to_syslog < 0 ? !foreground : to_syslog, debug);
	/* Descriptors for what helperd holds for others: the doorbell pool, and the bridge. */
	unsigned bridge_fds = guest_wide ? BRIDGE_MAX * BRIDGE_FDS_PER_CONN : 0;
	unsigned wanted = DOORBELL_POOL_MAX + bridge_fds, got = fd_budget(wanted);
	doorbell_init(fd_budget_part(got, DOORBELL_POOL_MAX, wanted));
	if (guest_wide)
		bridge_init(fd_budget_part(got, bridge_fds, wanted) / BRIDGE_FDS_PER_CONN);

	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	sigprocmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct itimerspec beat = {
		.it_interval = {.tv_sec = VMSHIM_HEARTBEAT_MS / 1000},
		.it_value = {.tv_sec = VMSHIM_HEARTBEAT_MS / 1000},
	};
	struct watch sig = {.fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC),
			    .on_event = on_signal};
	struct watch tick = {.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC),
			     .on_event = on_tick};
	if (loop_init() < 0 || sig.fd < 0 || tick.fd < 0 ||
	    timerfd_settime(tick.fd, 0, &beat, NULL) < 0 || loop_add(&sig, EPOLLIN) < 0 ||
	    loop_add(&tick, EPOLLIN) < 0 || (guest_wide && guestwide_start(guest_wide) < 0) ||
	    peers_start() < 0 || helperd_publish() < 0 ||
	    control_open(helperd.rundir) < 0) {
		log_err("cannot start: %m");
		guestwide_stop();
		publish_close();
		return 1;
	}
	siblings_restore();
	counters_open();
	policy_watch_start(helperd.policy_path, helperd_reload);
	helperd_describe();
	log_info("ready: run directory %s", helperd.rundir);
	daemon_notify_ready();
	int rc = loop_run(&stopping, helperd_before_sleep);

	/* New connects stay TCP from now on; those the bridge carries end with helperd. Shims
	 * see CLOSED at once and go back to plain TCP; their open connections are untouched. */
	guestwide_stop();
	publish_close();
	counters_close();
	control_close();
	doorbell_shutdown();
	preface_shutdown();
	siblings_shutdown();
	peers_stop();
	hostpeers_stop();
	policy_watch_stop();
	policy_free(helperd.policy);
	close(sig.fd);
	close(tick.fd);
	loop_close();
	close(lock);
	log_info("stopped");
	return rc < 0 ? 1 : 0;
}
