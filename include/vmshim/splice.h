/* Forwarding in the kernel: a connected pair of AF_VSOCK or TCP stream sockets (vsock to
 * vsock, as the relay has them, or vsock to TCP, as the guest-wide bridge has) spliced
 * through BPF sockmaps, so that bytes never cross into user space. Needs vsock in sockmap
 * (Linux 6.4 and later), a tracing program that may read an skb (bpf_dynptr_from_skb in
 * tp_btf: seen in 6.12) for splice_pause's rescue, BTF, and CAP_BPF with CAP_NET_ADMIN (or
 * root).
 *
 * How fast the kernel sends into a vsock socket depends on the receiver's buffer there
 * (SO_VM_SOCKETS_BUFFER_SIZE, the sender's credit): the psock's backlog, finding no credit
 * (EAGAIN), schedules itself again a jiffy later (sk_psock_backlog). One 64 MiB stream on 6.12
 * under TCG, every vsock buffer of the pair set alike (bench/results/2026-12-07-splice-tcp):
 * spliced/copied into vsock 0.58-0.60 with 256 KiB buffers, 0.87-0.99 with 1 MiB, 1.05-1.27
 * with 4 MiB; into TCP 1.52-1.72, 0.90-0.99 of a direct connection, whatever the size.
 *
 * AF_UNIX is refused (EOPNOTSUPP: copy it in user space): its peer's shutdown(), of any
 * kind, takes the socket out of every sockmap (unix_shutdown calls the peer's
 * sk_prot->unhash, which is sock_map_unhash), and the psock goes with whatever it still
 * had to send or to hand to user space.
 *
 * While a pair is spliced:
 * - A TCP FIN without data reaches the verdict as an empty skb, which it drops (the EOF is
 *   marked on the socket already): redirected, its send of 0 bytes would count in the
 *   kernel's backlog as a broken pipe and stop all sending to the other socket (seen on
 *   6.12: a half-closed request's response never came).
 * - EOF from a peer shows as EPOLLRDHUP and EPOLLIN on its socket, but read() is no guide:
 *   it returns 0 only while bytes wait to be sent on that socket, else fails with EAGAIN
 *   (vsock_bpf_recvmsg looks at the socket's own shutdown flags, not the peer's). Watch
 *   EPOLLRDHUP.
 * - Forwarded bytes never make a socket readable. EPOLLIN without EPOLLRDHUP means bytes the
 *   kernel would not forward, as when the other connection is no longer established: read
 *   them and write them to the other socket yourself (that write then reports the error).
 * - A send that fails for good on one socket sets its SO_ERROR (EPOLLERR); the bytes queued
 *   for it are lost, and splice_drained says so.
 * - The kernel queues what it takes off one socket on the other's psock without limit (a
 *   vsock socket returns credit as soon as the verdict takes the bytes): a peer that does
 *   not read lets the other side fill kernel memory. Watch splice_queued against what you
 *   allow: splice_wake_fd turns readable as soon as a queue passes splice_add's limit. */
#ifndef VMSHIM_SPLICE_H
#define VMSHIM_SPLICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct splice_engine;

/* Loads the BPF programs and maps for up to max_pairs pairs. -1 with a reason in err when
 * this kernel cannot splice at all (no BPF, no BTF, not privileged), without double quotes,
 * backslashes or control characters (JSON takes it as is). A kernel that loads
 * them may still refuse a socket type: splice_add says so. */
int splice_open(struct splice_engine **out, unsigned max_pairs, char *err, size_t errlen);

/* Hands a connected pair to the kernel; *id names it. A queue of the pair that passes
 * `limit` bytes (splice_queued) makes splice_wake_fd readable, once per splice_add and
 * direction. 0: bytes that arrived while it worked
 * may still wait on their socket, ahead of the verdict, until the next ones push them
 * through; such a socket polls readable, and the caller takes the pair back (splice_pause).
 * Or -1 with errno, both sockets out of the kernel's hands, and every byte either still
 * waiting on its own socket or already sent, in order, on the other one, so that the caller
 * can copy instead:
 *   EOPNOTSUPP  not two AF_VSOCK stream sockets, or a kernel without vsock in sockmap
 *   EBUSY       bytes were waiting on a socket (the kernel only forwards what arrives after
 *               the splice starts): read and forward them, then try again or keep copying
 *   ENOSPC      max_pairs pairs are spliced already
 *   EIO         the kernel had begun and lost bytes giving the pair back: end both
 *               connections, as their streams have a gap */
int splice_add(struct splice_engine *e, int a, int b, uint64_t limit, unsigned *id);

/* Bytes the kernel has sent a->b and b->a so far (handed to the other socket's sendmsg). */
int splice_bytes(struct splice_engine *e, unsigned id, uint64_t *a_to_b, uint64_t *b_to_a);

/* Bytes taken off `from` (0: a, 1: b) and still queued in the kernel for the other socket,
 * without a system call. -1 with errno once sending them failed for good. */
int splice_queued(struct splice_engine *e, unsigned id, int from, uint64_t *queued);

/* How often the kernel, sending what came from `from` (0: a, 1: b), found the other socket's
 * window full (EAGAIN: the reader there lags), so far; without a system call. */
uint64_t splice_window_full(struct splice_engine *e, unsigned id, int from);

/* A descriptor (for epoll) that turns readable when a queue passes its limit: then look at
 * the pairs' queues at once, and splice_wake_clear it. */
int splice_wake_fd(struct splice_engine *e);
void splice_wake_clear(struct splice_engine *e);

/* Whether everything that has arrived on `from` (0: a, 1: b) has been sent on the other
 * socket. After EOF on `from` (EPOLLRDHUP), 1 is the exact moment to pass the half-close on
 * with shutdown(other, SHUT_WR); the other direction keeps flowing. 0: bytes are still
 * queued in the kernel (a slow reader on the other side), ask again later. -1 with errno:
 *   EBUSY       bytes wait on `from` that the kernel will not forward; all before them have
 *               been sent, so read them and write them to the other socket yourself
 *   other       sending on the other socket failed for good (EPIPE, ECONNRESET, ...): the
 *               bytes queued for it are lost */
int splice_drained(struct splice_engine *e, unsigned id, int from);

/* Takes both sockets out of the kernel's hands; the caller closes them. Bytes still queued
 * for sending are dropped: first wait for splice_drained in each direction that matters. */
void splice_remove(struct splice_engine *e, unsigned id);

/* Gives a pair back to user space without losing a byte, in two steps. splice_pause stops
 * the kernel taking bytes off either socket (when it returns, no verdict is under way): what
 * arrives afterwards waits on its socket, to be read by the caller at once if it likes, and
 * written to the other socket once splice_queued says the kernel's queue that way is empty
 * (or failed), so that the order holds. splice_release then takes both sockets out once all
 * the kernel took has been sent (0, id freed, the kernel's final splice_bytes in a_to_b and
 * b_to_a), or fails with EAGAIN while some is still queued: call it again later. Bytes held
 * for a peer that is gone are dropped with it.
 *
 * A packet under way while splice_pause takes the verdict away is dropped by the kernel
 * (sk_psock_verdict_recv finds no program); a tracing program copies it out first, and
 * splice_rescued gives it to the caller, who must write it to the other socket after what
 * the kernel queued that way and before anything read from `from` since. */
void splice_pause(struct splice_engine *e, unsigned id);

/* After splice_pause: the bytes the kernel dropped off `from` (0: a, 1: b) while pausing, at
 * *bytes until splice_release; usually none. -1 with EIO if some could not be copied out
 * (the stream has a gap: end both connections). */
ssize_t splice_rescued(struct splice_engine *e, unsigned id, int from, const uint8_t **bytes);

/* splice_pause's second step (above). */
int splice_release(struct splice_engine *e, unsigned id, uint64_t *a_to_b, uint64_t *b_to_a);

void splice_close(struct splice_engine *e);

#endif
