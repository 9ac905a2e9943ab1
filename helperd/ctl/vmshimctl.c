/* vmshimctl: asks this guest's helperd how things stand.
 *
 *   vmshimctl [-r RUNDIR] status [--json]
 *
 * It talks to helperd's control socket, so it needs no privilege beyond reaching that. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmshim/proto.h"

#define STATUS_MAX (64 << 20) /* far beyond what any policy can make */

static void usage(FILE *out)
{
	fputs("usage: vmshimctl [-r RUNDIR] status [--json]\n"
	      "  -r, --rundir DIR   helperd's run directory (default $VMSHIM_RUNDIR, else "
	      VMSHIM_DEFAULT_RUNDIR ")\n",
	      out);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"rundir", required_argument, NULL, 'r'}, {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *rundir = getenv("VMSHIM_RUNDIR");
	int json = 0, opt;

	while ((opt = getopt_long(argc, argv, "r:h", options, NULL)) != -1) {
		switch (opt) {
		case 'r': rundir = optarg; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || strcmp(argv[optind], "status") != 0) {
		usage(stderr);
		return 2;
	}
	if (!rundir || !*rundir)
		rundir = VMSHIM_DEFAULT_RUNDIR;

	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval timeout = {.tv_sec = 5};
	struct vmshim_request req = {.magic = VMSHIM_PROTO_MAGIC, .type = VMSHIM_REQ_STATUS,
				     .port = json ? VMSHIM_STATUS_JSON : VMSHIM_STATUS_TEXT};
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", rundir,
			     VMSHIM_SOCKET_FILE) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "vmshimctl: run directory %s: path too long\n", rundir);
		return 1;
	}
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0 ||
	    connect(s, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "vmshimctl: cannot reach helperd at %s: %s\n", sun.sun_path,
			strerror(errno));
		return 1;
	}
	if (send(s, &req, sizeof(req), MSG_NOSIGNAL) != sizeof(req)) {
		fprintf(stderr, "vmshimctl: cannot ask helperd: %s\n", strerror(errno));
		return 1;
	}
	/* The answer comes in messages of at most VMSHIM_STATUS_CHUNK bytes, up to the end. */
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (cap - len < VMSHIM_STATUS_CHUNK) {
			cap = cap ? 2 * cap : 4 * VMSHIM_STATUS_CHUNK;
			char *more = cap <= STATUS_MAX ? realloc(buf, cap) : NULL;
			if (!more) {
				fprintf(stderr, "vmshimctl: answer too long\n");
				return 1;
			}
			buf = more;
		}
		ssize_t n = recv(s, buf + len, cap - len, MSG_TRUNC);
		if (n < 0 || (size_t)n > cap - len) {
			fprintf(stderr, "vmshimctl: %s\n", n < 0 ? strerror(errno) : "message too long");
			return 1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == 0) {
		fprintf(stderr, "vmshimctl: helperd gave no answer (an older helperd?)\n");
		return 1;
	}
	fwrite(buf, 1, len, stdout);
	free(buf);
	close(s);
	return 0;
}
