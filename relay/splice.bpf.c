/* The kernel side of relay/splice.c (AF_VSOCK stream sockets). Every socket of a pair sits
 * in two sockmaps: `redir`, without programs, where the verdict finds the other socket, and
 * `verd`, which carries the verdict program. A socket joins `verd` only once both are in
 * `redir`, so a redirect never misses its target.
 *
 * Per direction two counts, in an array that user space maps: `in` is what the verdict took
 * off the source socket and queued on the target's psock; `out` is what the psock's
 * backlog worker (sk_psock_backlog) handed to the target's sendmsg, seen at the return of
 * skb_send_sock. A direction whose source saw EOF is drained exactly when out == in. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define EAGAIN 11

/* The few kernel fields read here; CO-RE finds them in the running kernel's BTF. */
struct sock_common {
	struct {
		__s64 counter;
	} skc_cookie;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct sk_buff;

/* The same layouts as in splice.c, which checks the sizes against the maps'. */
struct splice_sock {
	__u32 target;  /* key of the other socket in `redir` */
	__u32 dir_out; /* counters of the bytes that arrive here and leave by the other socket */
	__u32 dir_in;  /* counters of the bytes that arrive on the other one and leave here */
};

struct splice_dir {
	__u64 in;  /* taken off the source by the verdict, queued on the target's psock */
	__u64 out; /* handed to the target's sendmsg by the psock's backlog */
	__s32 err; /* errno of the send that made the backlog give up on the target */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 2); /* 2 * max_pairs, set by splice_open */
} redir SEC(".maps"), verd SEC(".maps");

/* Socket cookie -> where its bytes go and which counters they touch. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, struct splice_sock);
	__uint(max_entries, 2);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct splice_dir);
	__uint(max_entries, 2);
} dirs SEC(".maps");

SEC("sk_skb/stream_verdict") /* what libbpf 1.1 knows; without a parser it runs per skb */
int splice_verdict(struct __sk_buff *skb)
{
	/* vsock's receive path makes the receiving socket the skb's owner
	 * (virtio_transport_recv_pkt), so the cookie names the socket the bytes arrived on. */
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct splice_sock *s = bpf_map_lookup_elem(&socks, &cookie);

	/* Not one of ours: pass keeps the bytes readable on the socket, never drops them. */
	if (!s)
		return SK_PASS;
	struct splice_dir *d = bpf_map_lookup_elem(&dirs, &s->dir_out);
	if (!d)
		return SK_PASS;
	/* A target whose connection is no longer established takes no redirect
	 * (sock_map_redirect_allowed): keep the bytes readable here for user space. */
	if (bpf_sk_redirect_map(skb, &redir, s->target, 0) != SK_PASS)
		return SK_PASS;
	__sync_fetch_and_add(&d->in, skb->len);
	return SK_PASS;
}

SEC("fexit/skb_send_sock")
int BPF_PROG(splice_sent, struct sock *sk, struct sk_buff *skb, int offset, int len, int ret)
{
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	struct splice_sock *s = bpf_map_lookup_elem(&socks, &cookie);

	if (!s)
		return 0;
	struct splice_dir *d = bpf_map_lookup_elem(&dirs, &s->dir_in);
	if (!d)
		return 0;
	if (ret > 0)
		__sync_fetch_and_add(&d->out, ret);
	else if (ret != -EAGAIN) /* the backlog stops sending to this socket for good */
		d->err = ret ? -ret : 32 /* EPIPE, as sk_psock_backlog reports */;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
