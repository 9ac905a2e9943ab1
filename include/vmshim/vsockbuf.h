/* The vsock buffer of every socket that carries a sibling connection's bytes: the shim's
 * connecting socket, the sockets helperd accepts (the application's after its accept), and
 * the relay's two of each session; vsock_buffer_set() (vmshim/vsock.h) gives it.
 *
 * Why these sizes: Linux 6.12.92 and later (and every stable line that took the 2026 fixes
 * 059b7dbd20a6, c6087c5aaad6, a4f0b001782b) refuse a packet by its queue's overhead, not only
 * by its bytes. net/vmw_vsock/virtio_transport_common.c, virtio_transport_inc_rx_pkt():
 *
 *	u64 skb_overhead = (skb_queue_len(&vvs->rx_queue) + 1) * SKB_TRUESIZE(0);
 *	...
 *	if ((u64)vvs->buf_used + len > vvs->buf_alloc ||
 *	    skb_overhead > vvs->buf_alloc)
 *		return false;
 *
 * and virtio_transport_recv_connected() then ends the connection:
 *
 *	if (!virtio_transport_recv_enqueue(vsk, skb)) {
 *		(void)virtio_transport_reset(vsk, skb);
 *		virtio_transport_do_close(vsk, true);
 *		sk->sk_err = ENOBUFS;
 *
 * SKB_TRUESIZE(0) is 576 on x86-64, buf_alloc is the receiver's buffer size, so a receiver
 * holds at most buf_alloc / 576 packets unread (455 at vsock's default 256 KiB). Each write
 * is a packet; virtio_transport_recv_enqueue() merges one only if it is at most GOOD_COPY_LEN
 * (128) bytes and fits the spare room of the packet before it, so unread packets carry 129
 * bytes or more on average (measured on 6.12.95: 129-byte writes 129 per packet, 1-byte ones
 * about 340, 100-byte ones 300). The sender may have min(its buf_alloc, the receiver's) bytes
 * unread (virtio_transport_tx_buf_size(), 6.1 and 6.12 alike), and the credit it is given
 * counts bytes, not packets: with equal buffers a writer of small packets fills the
 * receiver's packet allowance before its window, whatever the size (129-byte writes broke
 * the stream after 58 KB at 256 KiB, after 1.9 MB at 8 MiB).
 *
 * So the ends differ. The connecting end's buffer is the window both ways; the accepting
 * end's admits every packet that window can hold. Into the accepting end (into a server,
 * through the relay into a server) no write pattern breaks the stream. Into the connecting
 * end a stalled reader holds at most WINDOW / 576 unread packets (1,820): a bound no size
 * lifts while both ends receive through the one buf_alloc that also sets the window (README,
 * "Known differences from TCP"). MSG_ZEROCOPY packets are never merged and so escape the
 * 129-byte floor; net.core.optmem_max bounds them (136 unread at its default on 6.12).
 *
 * Why not larger: the kernel charges these queues to no socket memory and no cgroup (the
 * skb's owner is set by skb_set_owner_sk_safe(), destructor sock_efree), so the window is
 * the only bound, and small packets cost far more than their bytes: a stalled direction of
 * 129-byte writes held 7.4 bytes of slab per byte on 6.12 (61 MB for an 8 MiB window), of
 * 100-byte writes 7.7 on 6.1, which counts no overhead at all: about 8 MB for this window,
 * near TCP's own per-connection ceiling (tcp_rmem[2] + tcp_wmem[2], 10 MiB). */
#ifndef VMSHIM_VSOCKBUF_H
#define VMSHIM_VSOCKBUF_H

#define VMSHIM_VSOCK_WINDOW (1ull << 20) /* the connecting end's buffer */
#define VMSHIM_SKB_TRUESIZE_0 576ull     /* SKB_TRUESIZE(0), x86-64 and arm64 */
#define VMSHIM_PACKET_FLOOR 129ull       /* GOOD_COPY_LEN + 1: the least a packet carries */
/* The accepting end's: room for (every packet of a full window + 1) * 576 bytes, 4.47 MiB. */
#define VMSHIM_VSOCK_BUFFER_ACCEPT \
	(VMSHIM_SKB_TRUESIZE_0 * (VMSHIM_VSOCK_WINDOW / VMSHIM_PACKET_FLOOR + 2))

#endif
