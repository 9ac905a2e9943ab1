/* TCP_INFO on a redirected connection. Its state follows the connection as TCP's would:
 * ESTABLISHED, FIN_WAIT2 once this end shut down its sending, CLOSE_WAIT once the peer's end
 * came, CLOSE once both did, the connection failed or connect(AF_UNSPEC) ended it. The
 * peer's end is what vsock's poll says (RDHUP), asked without waiting by a raw ppoll (the
 * libc call is a cancellation point; getsockopt is not); this end's shutdowns are those the
 * shim saw (shutdown.c). vsock counts nothing TCP_INFO reports: every counter and timer
 * (bytes, segments, retransmissions, the last send and receive, unacked, not sent, delivery
 * and pacing rates) reads 0, and RTT, MSS, window and congestion fields are fixed values of
 * a loopback TCP connection. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tcpinfo.h"
#include "tcpopts.h"

#define SHUT_RD_BIT 1u
#define SHUT_WR_BIT 2u

/* What vsock's poll says now: RDHUP (the peer ended its sending, or this end shut down its
 * reading), ERR (the connection failed). */
static unsigned poll_now(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};
	struct timespec zero = {0};

	return syscall(SYS_ppoll, &p, 1, &zero, NULL, 0) == 1 ? (unsigned short)p.revents : 0;
}

/* After a shutdown(SHUT_RD) here, RDHUP no longer tells of the peer: it is taken as not
 * having ended (README, Known differences from TCP). */
static unsigned char connection_state(int fd, const struct fd_state *st)
{
	if (atomic_load(&st->conn.disconnected))
		return TCP_CLOSE;
	unsigned shut = atomic_load(&st->conn.shut), events = poll_now(fd);
	if (events & POLLERR)
		return TCP_CLOSE;
	bool peer_ended = !(shut & SHUT_RD_BIT) && (events & POLLRDHUP);
	if (shut & SHUT_WR_BIT)
		return peer_ended ? TCP_CLOSE : TCP_FIN_WAIT2;
	return peer_ended ? TCP_CLOSE_WAIT : TCP_ESTABLISHED;
}

/* A connected TCP socket's TCP_INFO, as far as a vsock connection has one. */
static void loopback_tcp_info(struct tcp_info *info, unsigned char state)
{
	memset(info, 0, sizeof(*info));
	info->tcpi_state = state;
	info->tcpi_rto = 200000;
	info->tcpi_ato = 40000;
	info->tcpi_snd_mss = 65483;
	info->tcpi_rcv_mss = 65483;
	info->tcpi_pmtu = 65535;
	info->tcpi_rcv_ssthresh = 65483;
	info->tcpi_rtt = 50;
	info->tcpi_rttvar = 25;
	info->tcpi_snd_ssthresh = 0x7fffffff;
	info->tcpi_snd_cwnd = 10;
	info->tcpi_advmss = 65483;
	info->tcpi_reordering = 3;
	info->tcpi_rcv_space = 65483;
}

int tcp_info_get(int fd, const struct fd_state *st, void *val, socklen_t *len)
{
	struct tcp_info info;
	int saved = errno;

	loopback_tcp_info(&info, connection_state(fd, st));
	errno = saved;
	tcp_opts_copy_out(&info, sizeof(info), val, len);
	return 0;
}
