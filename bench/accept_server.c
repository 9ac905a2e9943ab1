/* The server side of connect_bench: accepts connections one after another; from each it
 * reads at most one byte, echoes it back if there was one, and closes it. So it serves both
 * connect_bench modes: "connect" (the client closes at once: the read sees EOF) and "echo".
 *
 *   accept_server PORT [BIND_ADDR [SECONDS]]
 *
 * BIND_ADDR defaults to 0.0.0.0. Bounded: the process ends itself after SECONDS (default
 * 300), and waits at most 5 s for a connection's byte. Prints the number of connections
 * served when it ends by SIGTERM or SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: accept_server PORT [BIND_ADDR [SECONDS]]\n");
		return 2;
	}
	int port = atoi(argv[1]);
	const char *bind_addr = argc > 2 ? argv[2] : "0.0.0.0";
	long seconds = argc > 3 ? atol(argv[3]) : 300;
	if (port < 1 || port > 65535 || seconds < 1 || seconds > 3600) {
		fprintf(stderr, "accept_server: PORT 1..65535, SECONDS 1..3600\n");
		return 2;
	}

	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	if (strchr(bind_addr, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		len = sizeof(*in6);
		if (inet_pton(AF_INET6, bind_addr, &in6->sin6_addr) != 1) {
			fprintf(stderr, "accept_server: bad address %s\n", bind_addr);
			return 2;
		}
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		len = sizeof(*in);
		if (inet_pton(AF_INET, bind_addr, &in->sin_addr) != 1) {
			fprintf(stderr, "accept_server: bad address %s\n", bind_addr);
			return 2;
		}
	}

	/* No SA_RESTART: a signal ends a blocked accept() with EINTR. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	alarm((unsigned)seconds); /* SIGALRM's default action ends the process */

	int one = 1;
	int s = socket(ss.ss_family, SOCK_STREAM, 0);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&ss, len) < 0 || listen(s, 4096) < 0) {
		fprintf(stderr, "accept_server: listen on %s:%d: %s\n", bind_addr, port,
			strerror(errno));
		return 1;
	}

	long served = 0, errors = 0;
	while (!stop) {
		int c = accept(s, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "accept_server: accept: %s\n", strerror(errno));
			return 1;
		}
		struct timeval tv = {.tv_sec = 5};
		char b;
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ssize_t n = read(c, &b, 1);
		if (n < 0 || (n == 1 && write(c, &b, 1) != 1))
			errors++;
		close(c);
		served++;
	}
	printf("accept_server port=%d served=%ld errors=%ld\n", port, served, errors);
	return 0;
}
