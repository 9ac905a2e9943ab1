/* sendto(), sendmsg() and sendmmsg(). Their data is the kernel's; the shim looks only at the
 * two things TCP reads an address for (net/ipv4/tcp.c):
 * - MSG_FASTOPEN connects to the address (connect.c), and on a connected socket fails:
 *   EISCONN, or EOPNOTSUPP for an AF_UNSPEC address (tcp_sendmsg_fastopen);
 * - any other address given on a connected socket is ignored (tcp_sendmsg reads msg_name only
 *   for MSG_FASTOPEN), where vsock refuses one (EISCONN, or EOPNOTSUPP once the peer has
 *   gone): on a redirected connection the shim sends without it.
 * A call with neither goes straight to the kernel, and so does one with an address (but no
 * MSG_FASTOPEN) on a descriptor that holds no state, after two loads. */
#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "connect.h"
#include "fdstate.h"
#include "shim.h"

enum send_way {
	SEND_AS_GIVEN, /* the call as the application made it */
	SEND_UNNAMED,  /* without the address, and without MSG_FASTOPEN: fd is connected */
	SEND_REFUSED,  /* fails with errno */
};

/* Only a descriptor with a state (not a mark) can be a redirected connection. */
static bool may_be_redirected(int fd)
{
	return fdstate_ptr(fdstate_peek(fd)) != NULL;
}

/* The address a message carries, as the kernel reads one (__copy_msghdr): a name of
 * positive length. */
static const struct sockaddr *msg_address(const struct msghdr *msg)
{
	return msg && msg->msg_name && (int)msg->msg_namelen > 0 ? msg->msg_name : NULL;
}

/* MSG_FASTOPEN on a connected TCP socket: tcp_sendmsg_fastopen, then __inet_stream_connect. */
static int fastopen_connected_errno(const struct sockaddr *name, socklen_t len)
{
	if (name && len < sizeof(sa_family_t))
		return EINVAL;
	return name && name->sa_family == AF_UNSPEC ? EOPNOTSUPP : EISCONN;
}

/* How a send goes on fd if it is a redirected connection: as on a connected TCP socket.
 * SEND_AS_GIVEN when fd is none, or no longer one: once disconnected (connect(AF_UNSPEC)),
 * MSG_FASTOPEN takes it for a new TCP socket, and it becomes one. */
static enum send_way on_redirected(int fd, int flags, const struct sockaddr *name,
				   socklen_t len)
{
	struct fd_state *st = fdstate_acquire_redirected(fd);
	enum send_way way = SEND_AS_GIVEN;

	if (!st)
		return way;
	if (!(flags & MSG_FASTOPEN)) {
		way = SEND_UNNAMED;
	} else if (!atomic_load(&st->conn.disconnected)) {
		errno = fastopen_connected_errno(name, len);
		way = SEND_REFUSED;
	} else if (redirected_afresh(fd, st) < 0) {
		way = SEND_REFUSED;
	}
	fdstate_release(st);
	return way;
}

/* MSG_FASTOPEN with an address on a socket that is not connected: a sibling's connects
 * first, then the data goes without the address. */
static enum send_way fastopen(int fd, const struct sockaddr *name, socklen_t len)
{
	switch (connect_sibling(fd, name, len, false)) {
	case REDIRECT_TCP:
		break;
	case REDIRECT_DONE:
	case REDIRECT_IN_PROGRESS:
		return SEND_UNNAMED;
	case REDIRECT_FD_GONE:
		errno = EBADF; /* closed by another thread meanwhile */
		return SEND_REFUSED;
	case REDIRECT_ALREADY: /* a non-blocking connect() of it is under way */
		errno = EALREADY;
		return SEND_REFUSED;
	case REDIRECT_INTERRUPTED: /* not for MSG_FASTOPEN, which waits the outcome out */
		errno = EINTR;
		return SEND_REFUSED;
	}
	return SEND_AS_GIVEN;
}

/* The way of a sendto or sendmsg with this address (NULL for none) and these flags. */
static enum send_way send_way(int fd, int flags, const struct sockaddr *name, socklen_t len)
{
	enum send_way way = on_redirected(fd, flags, name, len);

	if (way == SEND_AS_GIVEN && (flags & MSG_FASTOPEN) && name)
		way = fastopen(fd, name, len);
	return way;
}

HOOK ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
		    socklen_t len)
{
	shim_init();
	/* A longer address the kernel refuses itself (EINVAL), whatever the socket. */
	const struct sockaddr *name = len > 0 && len <= sizeof(struct sockaddr_storage) ? addr
											 : NULL;
	if (shim_config.disabled || (!(flags & MSG_FASTOPEN) && (!name || !may_be_redirected(fd))))
		return real.sendto(fd, buf, n, flags, addr, len);
	switch (send_way(fd, flags, name, len)) {
	case SEND_AS_GIVEN:
		break;
	case SEND_UNNAMED:
		return real.sendto(fd, buf, n, flags & ~MSG_FASTOPEN, NULL, 0);
	case SEND_REFUSED:
		return -1;
	}
	return real.sendto(fd, buf, n, flags, addr, len);
}

HOOK ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	shim_init();
	if (shim_config.disabled || (!(flags & MSG_FASTOPEN) && !may_be_redirected(fd)))
		return real.sendmsg(fd, msg, flags);
	const struct sockaddr *name = msg_address(msg);
	if (!name && !(flags & MSG_FASTOPEN))
		return real.sendmsg(fd, msg, flags);
	switch (send_way(fd, flags, name, name ? msg->msg_namelen : 0)) {
	case SEND_AS_GIVEN:
		break;
	case SEND_UNNAMED: {
		struct msghdr unnamed = *msg;
		unnamed.msg_name = NULL;
		unnamed.msg_namelen = 0;
		return real.sendmsg(fd, &unnamed, flags & ~MSG_FASTOPEN);
	}
	case SEND_REFUSED:
		return -1;
	}
	return real.sendmsg(fd, msg, flags);
}

/* The kernel sends at most UIO_MAXIOV messages a call (__sys_sendmmsg). */
static unsigned sendmmsg_count(unsigned vlen)
{
	return vlen < UIO_MAXIOV ? vlen : UIO_MAXIOV;
}

static bool any_named(const struct mmsghdr *vec, unsigned vlen)
{
	for (unsigned i = 0; vec && i < sendmmsg_count(vlen); i++)
		if (msg_address(&vec[i].msg_hdr))
			return true;
	return false;
}

static size_t msg_size(const struct msghdr *msg)
{
	size_t size = 0;

	for (size_t i = 0; i < msg->msg_iovlen; i++)
		size += msg->msg_iov[i].iov_len;
	return size;
}

/* The messages one by one without their addresses, as the kernel's loop sends them
 * (__sys_sendmmsg): it stops at an error or a short send, and fails only if it sent none. */
static int send_each_unnamed(int fd, struct mmsghdr *vec, unsigned vlen, int flags)
{
	int saved = errno;
	unsigned sent = 0;

	while (sent < sendmmsg_count(vlen)) {
		struct msghdr unnamed = vec[sent].msg_hdr;
		unnamed.msg_name = NULL;
		unnamed.msg_namelen = 0;
		ssize_t n = real.sendmsg(fd, &unnamed, flags);
		if (n < 0)
			break;
		vec[sent++].msg_len = (unsigned)n;
		if ((size_t)n < msg_size(&unnamed))
			break;
	}
	if (sent == 0)
		return -1;
	errno = saved;
	return (int)sent;
}

/* MSG_FASTOPEN is not taken for a sibling connection here: such a socket stays TCP. */
HOOK int sendmmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags)
{
	shim_init();
	if (shim_config.disabled || !may_be_redirected(fd) ||
	    (!(flags & MSG_FASTOPEN) && !any_named(vec, vlen)))
		return real.sendmmsg(fd, vec, vlen, flags);
	const struct msghdr *first = vec && vlen ? &vec[0].msg_hdr : NULL;
	const struct sockaddr *name = msg_address(first);
	switch (on_redirected(fd, flags, name, name ? first->msg_namelen : 0)) {
	case SEND_AS_GIVEN:
		break;
	case SEND_UNNAMED:
		return send_each_unnamed(fd, vec, vlen, flags);
	case SEND_REFUSED:
		return -1;
	}
	return real.sendmmsg(fd, vec, vlen, flags);
}
