/* The kernel side of common/splice.c (AF_VSOCK and TCP stream sockets). Every socket of a
 * pair sits in two sockmaps: `redir`, without programs, where the verdict finds the other
 * socket, and `verd`, which carries the verdict program. A socket joins `verd` only once both
 * are in `redir`, so a redirect never misses its target.
 *
 * Per direction two counts, in an array that user space maps: `in` is what the verdict took
 * off the source socket and queued on the target's psock; `out` is what the psock's
 * backlog worker (sk_psock_backlog) handed to the target's sendmsg, seen at the return of
 * skb_send_sock. A direction whose source saw EOF is drained exactly when out == in.
 *
 * Taking the verdict away (user space deletes the socket from `verd`) races with a packet
 * under way: sk_psock_verdict_recv runs after the packet has left the socket's queue and,
 * finding no program, drops it. splice_rescue and splice_rescue_bytes copy such a packet
 * out through `rescued` as it is freed, so that user space can pass it on in its place. */
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

struct sk_buff {
	unsigned int len;
} __attribute__((preserve_access_index));

struct sk_psock {
	struct sock *sk;
} __attribute__((preserve_access_index));

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
	__u32 lost; /* packets dropped off the source and not (yet) rescued */
	__u64 window_full; /* sends that found the target's window full (EAGAIN): its reader lags */
	__u64 limit; /* a queue (in - out) past it wakes user space, once: set by user space */
	__u32 told;  /* 1 once it has */
	__u32 pad;
};

/* A packet the kernel dropped off a source socket, for user space. */
#define RESCUE_MAX 65536 /* a vsock packet's largest payload (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE) */
struct rescue {
	__u64 cookie; /* of the source socket */
	__u32 dir;    /* its dir_out */
	__u32 len;
	__u8 data[RESCUE_MAX];
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

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * RESCUE_MAX); /* one per pause is the most seen */
} rescued SEC(".maps");

/* The dir_out of a direction whose queue passed its limit: user space waits for these
 * (splice_wake_fd) and looks at its pairs at once rather than at its next tick. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* a missed one is seen at the next tick */
} crossed SEC(".maps");

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
	/* A TCP FIN without data (tcp_read_skb hands it over like any skb): splice.h. */
	if (skb->len == 0)
		return SK_DROP;
	struct splice_dir *d = bpf_map_lookup_elem(&dirs, &s->dir_out);
	if (!d)
		return SK_PASS;
	/* A target whose connection is no longer established takes no redirect
	 * (sock_map_redirect_allowed): keep the bytes readable here for user space. */
	if (bpf_sk_redirect_map(skb, &redir, s->target, 0) != SK_PASS)
		return SK_PASS;
	__sync_fetch_and_add(&d->in, skb->len);
	/* A vsock socket returns credit as soon as the verdict takes the bytes, so the queue
	 * grows as fast as the writer writes until user space takes the pair back. */
	if (d->in - d->out > d->limit && !d->told) {
		d->told = 1;
		bpf_ringbuf_output(&crossed, &s->dir_out, sizeof(s->dir_out), 0);
	}
	return SK_PASS;
}

/* The pair entry of one of our sockets, NULL for any other socket; *cookie is its cookie. */
static __always_inline struct splice_sock *ours(struct sock *sk, __u64 *cookie)
{
	*cookie = sk->__sk_common.skc_cookie.counter;
	return bpf_map_lookup_elem(&socks, cookie);
}

SEC("fexit/skb_send_sock")
int BPF_PROG(splice_sent, struct sock *sk, struct sk_buff *skb, int offset, int len, int ret)
{
	__u64 cookie;
	struct splice_sock *s = ours(sk, &cookie);

	if (!s)
		return 0;
	struct splice_dir *d = bpf_map_lookup_elem(&dirs, &s->dir_in);
	if (!d)
		return 0;
	if (ret > 0)
		__sync_fetch_and_add(&d->out, ret);
	else if (ret == -EAGAIN)
		__sync_fetch_and_add(&d->window_full, 1);
	else /* the backlog stops sending to this socket for good */
		d->err = ret ? -ret : 32 /* EPIPE, as sk_psock_backlog reports */;
	return 0;
}

#define SK_DROP_VERDICT 0 /* __SK_DROP in the kernel's enum __sk_action */

/* Packets of ours that sk_psock_verdict_apply is dropping, by skb address. Their bytes can
 * only be read where the skb is trusted, in the kfree_skb tracepoint that follows. */
struct dropped {
	__u64 cookie;
	__u32 dir, pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, struct dropped);
	__uint(max_entries, 64);
} dropping SEC(".maps");

/* Entries in `dropping`: while 0, splice_rescue_bytes returns at once on every kfree_skb. */
__u32 n_dropping;

SEC("fentry/sk_psock_verdict_apply")
int BPF_PROG(splice_rescue, struct sk_psock *psock, struct sk_buff *skb, int verdict)
{
	/* splice_verdict drops only what has no bytes: otherwise no program ran */
	if (verdict != SK_DROP_VERDICT || skb->len == 0)
		return 0;
	__u64 cookie;
	struct splice_sock *s = ours(psock->sk, &cookie);
	if (!s)
		return 0;
	struct splice_dir *d = bpf_map_lookup_elem(&dirs, &s->dir_out);
	if (!d)
		return 0;
	__u64 key = (__u64)skb;
	struct dropped drop = { .cookie = cookie, .dir = s->dir_out };
	/* lost until splice_rescue_bytes has copied it out */
	__sync_fetch_and_add(&d->lost, 1);
	if (bpf_map_update_elem(&dropping, &key, &drop, BPF_ANY) == 0)
		__sync_fetch_and_add(&n_dropping, 1);
	return 0;
}

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;

SEC("tp_btf/kfree_skb")
int BPF_PROG(splice_rescue_bytes, struct sk_buff *skb)
{
	if (!n_dropping)
		return 0;
	__u64 key = (__u64)skb;
	struct dropped *found = bpf_map_lookup_elem(&dropping, &key);
	if (!found)
		return 0;
	struct dropped drop = *found;
	if (bpf_map_delete_elem(&dropping, &key))
		return 0; /* taken by another CPU */
	__sync_fetch_and_sub(&n_dropping, 1);
	struct splice_dir *d = bpf_map_lookup_elem(&dirs, &drop.dir);
	if (!d)
		return 0;

	struct bpf_dynptr bytes; /* reads paged packets too */
	__u32 len = skb->len;
	struct rescue *r;
	if (len > RESCUE_MAX || bpf_dynptr_from_skb((struct __sk_buff *)skb, 0, &bytes) ||
	    !(r = bpf_ringbuf_reserve(&rescued, sizeof(*r), 0)))
		return 0;
	r->cookie = drop.cookie;
	r->dir = drop.dir;
	r->len = len;
	barrier_var(len);
	if (len > RESCUE_MAX || bpf_dynptr_read(r->data, len, &bytes, 0, 0)) {
		bpf_ringbuf_discard(r, 0);
		return 0;
	}
	bpf_ringbuf_submit(r, 0);
	__sync_fetch_and_sub(&d->lost, 1);
	return 0;
}

/* A drop that did not reach the tracepoint (the skb still referenced elsewhere) stays
 * counted in `lost`; its entry goes, so that a later skb at the same address is not taken
 * for it. */
SEC("fexit/sk_psock_verdict_apply")
int BPF_PROG(splice_rescue_done, struct sk_psock *psock, struct sk_buff *skb, int verdict, int ret)
{
	__u64 key = (__u64)skb;

	if (verdict == SK_DROP_VERDICT && n_dropping && !bpf_map_delete_elem(&dropping, &key))
		__sync_fetch_and_sub(&n_dropping, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
