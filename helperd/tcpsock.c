#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tcpsock.h"
#include "vmshim/log.h"

int sock_int_option(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, level, name, &v, &len) < 0 ? -1 : v;
}

/* The network namespace of socket fd, or of helperd itself (fd < 0), as its nsfs inode. */
static int netns_of(int fd, struct stat *st)
{
	int ns = fd < 0 ? -1 : ioctl(fd, SIOCGSKNS); /* root may ask this of any socket */
	int r = fd < 0 ? stat("/proc/self/ns/net", st) : ns < 0 ? -1 : fstat(ns, st);

	if (ns >= 0)
		close(ns);
	return r;
}

bool tcp_socket_here(int fd)
{
	static struct stat own;
	struct stat theirs;
	int domain = sock_int_option(fd, SOL_SOCKET, SO_DOMAIN);

	if ((domain != AF_INET && domain != AF_INET6) ||
	    sock_int_option(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
	    sock_int_option(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP)
		return false;
	if (own.st_ino == 0 && netns_of(-1, &own) < 0) {
		log_warn("cannot tell helperd's network namespace: %m");
		return false;
	}
	if (netns_of(fd, &theirs) < 0) {
		log_warn("cannot tell a socket's network namespace: %m");
		return false;
	}
	return theirs.st_dev == own.st_dev && theirs.st_ino == own.st_ino;
}
