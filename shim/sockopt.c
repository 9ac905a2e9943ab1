/* getsockopt()/setsockopt() on a redirected connection. vsock refuses TCP- and IP-level
 * options, so those are answered from tcpopts (TCP_INFO from tcpinfo); at the socket level the kernel answers, but
 * for the socket's identity (SO_DOMAIN, SO_PROTOCOL) and its receive buffer, which can raise
 * vsock's buffer size. */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>

#include "fdstate.h"
#include "pending.h"
#include "shim.h"
#include "swap.h"
#include "tcpinfo.h"
#include "vmshim/vsock.h"

static int int_out(int value, void *val, socklen_t *len)
{
	if ((int)*len < 0) {
		errno = EINVAL;
		return -1;
	}
	tcp_opts_copy_out(&value, sizeof(value), val, len);
	return 0;
}

static int get_redirected(int fd, const struct fd_state *st, int level, int name, void *val,
			  socklen_t *len)
{
	if (level == IPPROTO_TCP && name == TCP_INFO && (int)*len >= 0)
		return tcp_info_get(fd, st, val, len);
	if (tcp_opts_level(level))
		return tcp_opts_get(&st->conn.opts, st->family, level, name, val, len);
	if (level == SOL_SOCKET && name == SO_DOMAIN)
		return int_out(st->family, val, len);
	if (level == SOL_SOCKET && name == SO_PROTOCOL)
		return int_out(IPPROTO_TCP, val, len);
	return real.getsockopt(fd, level, name, val, len);
}

/* A descriptor that is not a redirected connection: while its sibling connect is pending,
 * its TCP socket answers (SO_ERROR 0, as a connecting socket's); once that connect has
 * fallen back to TCP, SO_ERROR says an error TCP's connect said at once. */
static int get_unredirected(int fd, int level, int name, void *val, socklen_t *len)
{
	int kept, err;
	struct fd_state *pre = pending_hold(fd, &kept);

	if (pre) {
		int rc = real.getsockopt(kept, level, name, val, len);
		pending_unhold(pre);
		return rc;
	}
	if (level == SOL_SOCKET && name == SO_ERROR && (err = pending_take_error(fd)))
		return int_out(err, val, len);
	return real.getsockopt(fd, level, name, val, len);
}

HOOK int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct fd_state *st = shim_off() ? NULL : fdstate_acquire_redirected(fd);

	if (!st)
		return shim_config.disabled ? real.getsockopt(fd, level, name, val, len)
					    : get_unredirected(fd, level, name, val, len);
	int rc = get_redirected(fd, st, level, name, val, len);
	fdstate_release(st);
	return rc;
}

/* vsock's buffer follows SO_RCVBUF up, never down: below the size the connection started
 * with, fewer unread small writes would get through (vmshim/vsockbuf.h). */
static void size_vsock_buffer(int fd, const void *val, socklen_t len)
{
	int requested;
	uint64_t size;
	socklen_t size_len = sizeof(size);

	if (len < sizeof(int))
		return;
	memcpy(&requested, val, sizeof(requested));
	if (requested <= 0 ||
	    real.getsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size, &size_len) < 0 ||
	    (uint64_t)requested <= size)
		return;
	vsock_buffer_set(fd, (uint64_t)requested);
}

/* Notes an option set on a socket that may yet be swapped (or on a listener, whose accepted
 * sockets inherit it), so that a swap reads only the options that were set. */
static void note_option(int fd, int level, int name)
{
	int bit;

	if (!fdstate_peek(fd))
		return;
	if ((bit = tcp_opts_bit(level, name)) >= 0)
		fdstate_note_option(fd, bit);
	else if (swap_carries(level, name))
		fdstate_note_option(fd, FD_OPT_SOCKET_LEVEL);
}

static int set_redirected(int fd, struct fd_state *st, int level, int name, const void *val,
			  socklen_t len)
{
	if (tcp_opts_level(level))
		return tcp_opts_set(&st->conn.opts, st->family, level, name, val, len);
	int rc = real.setsockopt(fd, level, name, val, len);
	if (rc == 0 && level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_RCVBUFFORCE)) {
		int saved = errno;
		size_vsock_buffer(fd, val, len);
		errno = saved;
	}
	return rc;
}

HOOK int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct fd_state *st = shim_off() ? NULL : fdstate_acquire_redirected(fd);

	if (!st) {
		int kept;
		struct fd_state *pre = shim_config.disabled ? NULL : pending_hold(fd, &kept);
		int rc = real.setsockopt(pre ? kept : fd, level, name, val, len);
		if (rc == 0 && !shim_config.disabled)
			note_option(fd, level, name);
		if (pre)
			pending_unhold(pre);
		return rc;
	}
	int rc = set_redirected(fd, st, level, name, val, len);
	fdstate_release(st);
	return rc;
}
