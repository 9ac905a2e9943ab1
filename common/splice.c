/* The sockmap engine (splice.h): loads splice.bpf.c through its bpftool skeleton, puts the
 * pairs into its maps and reads its byte counts from an array mapped into this process, so
 * that splice_bytes and splice_drained cost no system call but one peek. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "vmshim/splice.h"
#include "splice.skel.h"

/* The layouts of splice.bpf.c's `socks` and `dirs` values; splice_open checks the sizes. */
struct splice_sock {
	uint32_t target, dir_out, dir_in;
};

struct splice_dir {
	uint64_t in, out;
	int32_t err;
	uint32_t lost;
	uint64_t window_full;
	uint64_t limit;
	uint32_t told, pad;
};

/* The head of a `rescued` record: a packet dropped off a source socket (splice.bpf.c). */
struct rescue {
	uint64_t cookie;
	uint32_t dir, len;
	uint8_t data[];
};

#define VSOCK_SOCKMAP_FUNC "vsock_bpf_update_proto"

/* The psock's backlog sends to a socket only while it is writeable (sk_psock_handle_skb:
 * sk_wmem_alloc below half of sk_sndbuf) and otherwise waits a jiffy; vsock charges every
 * packet not yet delivered to sk_wmem_alloc at its allocation, about twice its bytes (a
 * 32 KiB packet is a 64 KiB allocation), so at the default sndbuf (208 KiB) the kernel sent
 * one 64 KiB skb per jiffy: 2,247 runs of sk_psock_backlog, busy 0.54 s of 7.1 s, and
 * 12-15 MB/s (bench/splice_probe.sh, 6.12). vsock's own sends ignore sk_sndbuf (its credit
 * bounds what is in flight), so a large one lets the backlog keep pace and holds nothing. */
#define SPLICE_SNDBUF (32 << 20)

/* How long taking a pair out after a failed splice_add waits for the bytes the kernel
 * had already taken to be sent: 1 ms steps. */
#define UNDO_WAIT_STEPS 1000

struct pair {
	int fd[2]; /* -1: free */
	uint64_t cookie[2]; /* 0: not in `socks` (the kernel's cookies start at 1) */
	uint8_t *rescued[2]; /* packets the kernel dropped off fd[i] while pausing */
	size_t rescued_len[2];
	bool rescue_failed; /* no memory to keep one */
};

struct splice_engine {
	struct splice_bpf *skel;
	int redir, verd, socks; /* map descriptors */
	struct splice_dir *dirs; /* 2 per pair: a->b, b->a */
	size_t dirs_len;
	struct ring_buffer *rescued;
	struct ring_buffer *crossed; /* only wakes: what crossed is read from `dirs` */
	unsigned max_pairs;
	struct pair *pairs;
	/* Free ids in a ring, reused oldest first: a send the kernel was still finishing for a
	 * pair just taken out then cannot count into the pair that follows it. */
	unsigned *ring, head, n_free;
};

static __thread char libbpf_msg[200];

/* libbpf's last warning, for the reason splice_open gives. */
static int keep_libbpf_msg(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBBPF_DEBUG) {
		vsnprintf(libbpf_msg, sizeof(libbpf_msg), fmt, ap);
		libbpf_msg[strcspn(libbpf_msg, "\n")] = '\0';
	}
	return 0;
}

void splice_close(struct splice_engine *e)
{
	if (!e)
		return;
	if (e->dirs)
		munmap(e->dirs, e->dirs_len);
	ring_buffer__free(e->rescued);
	ring_buffer__free(e->crossed);
	splice_bpf__destroy(e->skel); /* closing the maps takes every socket out */
	free(e->pairs);
	free(e->ring);
	free(e);
}

/* Whether this kernel puts vsock sockets into sockmaps (Linux 6.4 and later): vsock_bpf.c's
 * entry point is in its BTF, built in or in the vsock module (which a socket loads). Older
 * kernels load the programs and only refuse each socket. */
static bool vsock_in_sockmap(void)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	struct btf *module = NULL;
	bool found = false;
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0)
		close(fd);

	if (vmlinux) {
		found = btf__find_by_name_kind(vmlinux, VSOCK_SOCKMAP_FUNC, BTF_KIND_FUNC) > 0;
		if (!found && (module = btf__load_module_btf("vsock", vmlinux)))
			found = btf__find_by_name_kind(module, VSOCK_SOCKMAP_FUNC, BTF_KIND_FUNC) > 0;
	}
	btf__free(module);
	btf__free(vmlinux);
	return found;
}

static int valid(const struct splice_engine *e, unsigned id)
{
	return id < e->max_pairs && e->pairs[id].fd[0] >= 0;
}

/* A packet the kernel dropped off one of a pair's sockets, kept for splice_rescued. */
static int keep_rescued(void *ctx, void *data, size_t size)
{
	struct splice_engine *e = ctx;
	const struct rescue *r = data;
	unsigned id = r->dir / 2, side = r->dir % 2;

	if (size < sizeof(*r) + r->len || !valid(e, id) || e->pairs[id].cookie[side] != r->cookie)
		return 0; /* a pair taken out since */
	struct pair *p = &e->pairs[id];
	uint8_t *grown = realloc(p->rescued[side], p->rescued_len[side] + r->len);
	if (!grown) {
		p->rescue_failed = true;
		return 0;
	}
	memcpy(grown + p->rescued_len[side], r->data, r->len);
	p->rescued[side] = grown;
	p->rescued_len[side] += r->len;
	return 0;
}

static int ignore_crossed(void *ctx, void *data, size_t size)
{
	(void)ctx, (void)data, (void)size;
	return 0;
}

int splice_open(struct splice_engine **out, unsigned max_pairs, char *err, size_t errlen)
{
	libbpf_print_fn_t old_print = libbpf_set_print(keep_libbpf_msg);
	struct splice_engine *e = calloc(1, sizeof(*e));
	const char *step = "memory";

	libbpf_msg[0] = '\0';
	if (!e)
		goto fail;
	if (max_pairs == 0 || max_pairs > 1u << 20) {
		step = "max_pairs";
		errno = EINVAL;
		goto fail;
	}
	step = "this kernel has no vsock in BPF sockmap (Linux 6.4 and later have)";
	if (!vsock_in_sockmap()) {
		errno = EOPNOTSUPP;
		goto fail;
	}
	e->max_pairs = max_pairs;
	e->redir = e->verd = e->socks = -1;
	e->pairs = calloc(max_pairs, sizeof(*e->pairs));
	e->ring = calloc(max_pairs, sizeof(*e->ring));
	if (!e->pairs || !e->ring)
		goto fail;
	for (unsigned i = 0; i < max_pairs; i++) {
		e->pairs[i].fd[0] = e->pairs[i].fd[1] = -1;
		e->ring[i] = i;
	}
	e->n_free = max_pairs;

	step = "open the BPF object";
	e->skel = splice_bpf__open();
	if (!e->skel)
		goto fail;
	struct bpf_map *maps[] = { e->skel->maps.redir, e->skel->maps.verd, e->skel->maps.socks,
				   e->skel->maps.dirs };
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
		if (bpf_map__set_max_entries(maps[i], 2 * max_pairs))
			goto fail;
	step = "load the BPF programs";
	if (splice_bpf__load(e->skel))
		goto fail;
	step = "map layout";
	if (bpf_map__value_size(e->skel->maps.socks) != sizeof(struct splice_sock) ||
	    bpf_map__value_size(e->skel->maps.dirs) != sizeof(struct splice_dir)) {
		errno = EPROTO;
		goto fail;
	}
	e->redir = bpf_map__fd(e->skel->maps.redir);
	e->verd = bpf_map__fd(e->skel->maps.verd);
	e->socks = bpf_map__fd(e->skel->maps.socks);
	step = "attach the verdict program";
	if (bpf_prog_attach(bpf_program__fd(e->skel->progs.splice_verdict), e->verd,
			    BPF_SK_SKB_STREAM_VERDICT, 0))
		goto fail;
	step = "attach fexit/skb_send_sock";
	if (splice_bpf__attach(e->skel))
		goto fail;
	step = "map the counters";
	long page = sysconf(_SC_PAGESIZE);
	e->dirs_len = (2 * max_pairs * sizeof(struct splice_dir) + page - 1) / page * page;
	e->dirs = mmap(NULL, e->dirs_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       bpf_map__fd(e->skel->maps.dirs), 0);
	if (e->dirs == MAP_FAILED) {
		e->dirs = NULL;
		goto fail;
	}
	step = "open the rescue ring";
	e->rescued = ring_buffer__new(bpf_map__fd(e->skel->maps.rescued), keep_rescued, e, NULL);
	if (!e->rescued)
		goto fail;
	step = "open the wake-up ring";
	e->crossed = ring_buffer__new(bpf_map__fd(e->skel->maps.crossed), ignore_crossed, NULL, NULL);
	if (!e->crossed)
		goto fail;
	libbpf_set_print(old_print);
	*out = e;
	return 0;

fail:;
	int saved = errno;

	snprintf(err, errlen, "%s: %s%s%s%s", step, strerror(saved),
		 libbpf_msg[0] ? " (libbpf: " : "", libbpf_msg, libbpf_msg[0] ? ")" : "");
	for (char *c = err; *c; c++) /* shown as is in JSON status answers */
		if (*c == '"' || *c == '\\' || (unsigned char)*c < ' ')
			*c = '\'';
	splice_close(e);
	libbpf_set_print(old_print);
	errno = saved;
	return -1;
}

/* Whether bytes wait to be read on fd: on a spliced socket, ones the kernel did not take. */
static int waiting(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static uint64_t load64(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Everything the verdict took has been handed to the other socket, in both directions.
 * `out` is read before `in`: it never passes `in`, so equal values leave nothing behind. */
static int all_sent(const struct splice_engine *e, unsigned id)
{
	for (int dir = 0; dir < 2; dir++) {
		const struct splice_dir *d = &e->dirs[2 * id + dir];
		uint64_t sent = load64(&d->out);

		if (sent != load64(&d->in) && !__atomic_load_n(&d->err, __ATOMIC_ACQUIRE))
			return 0;
	}
	return 1;
}

/* Out of `verd` first, which stops the verdicts, then (finish) out of `redir`, which drops
 * the psock and with it whatever it still had to send. */
static void stop_verdicts(struct splice_engine *e, unsigned id)
{
	for (unsigned k = 2 * id; k < 2 * id + 2; k++)
		bpf_map_delete_elem(e->verd, &k);
}

static void finish(struct splice_engine *e, unsigned id)
{
	struct pair *p = &e->pairs[id];

	for (unsigned k = 2 * id; k < 2 * id + 2; k++)
		bpf_map_delete_elem(e->redir, &k);
	for (int i = 0; i < 2; i++) {
		if (p->cookie[i])
			bpf_map_delete_elem(e->socks, &p->cookie[i]);
		p->cookie[i] = 0;
		free(p->rescued[i]);
		p->rescued[i] = NULL;
		p->rescued_len[i] = 0;
	}
	p->rescue_failed = false;
	p->fd[0] = p->fd[1] = -1;
	e->ring[(e->head + e->n_free++) % e->max_pairs] = id;
}

/* A verdict that began before stop_verdicts takes its skb off the socket and redirects it
 * while the transport holds the socket's lock (virtio_transport_recv_pkt): once a peek, which
 * takes that lock, has returned on both sockets, what it took counts in `in`, or, if it
 * found its program gone and dropped the packet, sits in `rescued`. Collects those. */
static void wait_verdicts(struct splice_engine *e, unsigned id)
{
	waiting(e->pairs[id].fd[0]);
	waiting(e->pairs[id].fd[1]);
	ring_buffer__consume(e->rescued);
}

/* Whether every packet dropped off the pair's sockets while pausing was rescued. */
static bool none_lost(struct splice_engine *e, unsigned id)
{
	const struct splice_dir *d = &e->dirs[2 * id];

	return !e->pairs[id].rescue_failed && !__atomic_load_n(&d[0].lost, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&d[1].lost, __ATOMIC_ACQUIRE);
}

/* Takes a pair out; with wait_sent, only after what the kernel took has been sent (within
 * about a second), then sends what it dropped itself. -1 (EIO) if a byte was lost. */
static int take_out(struct splice_engine *e, unsigned id, int wait_sent)
{
	struct pair *p = &e->pairs[id];
	int ok = 1;

	stop_verdicts(e, id);
	if (wait_sent) {
		wait_verdicts(e, id);
		for (int i = 0; i < UNDO_WAIT_STEPS && !all_sent(e, id); i++)
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
		ok = all_sent(e, id) && none_lost(e, id);
		/* a fresh connection has room for one packet */
		for (int i = 0; i < 2 && ok; i++)
			ok = !p->rescued_len[i] ||
			     send(p->fd[!i], p->rescued[i], p->rescued_len[i],
				  MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)p->rescued_len[i];
	}
	finish(e, id);
	if (!ok)
		errno = EIO;
	return ok ? 0 : -1;
}

/* SPLICE_SNDBUF for fd, beyond net.core.wmem_max where allowed (CAP_NET_ADMIN, which
 * sockmaps need too). */
static void let_backlog_send(int fd)
{
	int size = SPLICE_SNDBUF;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

int splice_add(struct splice_engine *e, int a, int b, uint64_t limit, unsigned *id)
{
	int fd[2] = { a, b };
	uint64_t cookie[2];
	bool vsock[2];

	if (!e->n_free) {
		errno = ENOSPC;
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		socklen_t len = sizeof(cookie[i]);
		int domain, type, protocol;
		socklen_t ilen = sizeof(int);

		if (getsockopt(fd[i], SOL_SOCKET, SO_DOMAIN, &domain, &ilen) < 0 ||
		    getsockopt(fd[i], SOL_SOCKET, SO_TYPE, &type, &ilen) < 0 ||
		    getsockopt(fd[i], SOL_SOCKET, SO_PROTOCOL, &protocol, &ilen) < 0 ||
		    getsockopt(fd[i], SOL_SOCKET, SO_COOKIE, &cookie[i], &len) < 0)
			return -1;
		/* AF_UNIX: a peer's shutdown() throws the socket out of every sockmap
		 * (unix_shutdown -> sock_map_unhash), dropping what its psock still held. */
		bool tcp = (domain == AF_INET || domain == AF_INET6) && protocol == IPPROTO_TCP;
		if ((domain != AF_VSOCK && !tcp) || type != SOCK_STREAM) {
			errno = EOPNOTSUPP;
			return -1;
		}
		vsock[i] = domain == AF_VSOCK;
		if (waiting(fd[i])) {
			errno = EBUSY;
			return -1;
		}
	}

	for (int i = 0; i < 2; i++)
		if (vsock[i]) /* TCP's own buffer sizing serves the backlog */
			let_backlog_send(fd[i]);
	unsigned n = e->ring[e->head];
	e->head = (e->head + 1) % e->max_pairs;
	e->n_free--;
	struct pair *p = &e->pairs[n];
	p->fd[0] = a, p->fd[1] = b;
	p->cookie[0] = p->cookie[1] = 0;
	memset(&e->dirs[2 * n], 0, 2 * sizeof(e->dirs[0]));
	e->dirs[2 * n].limit = e->dirs[2 * n + 1].limit = limit;

	int saved = 0;
	for (int i = 0; i < 2 && !saved; i++) {
		struct splice_sock s = { .target = 2 * n + !i, .dir_out = 2 * n + i,
					 .dir_in = 2 * n + !i };

		if (bpf_map_update_elem(e->socks, &cookie[i], &s, BPF_NOEXIST))
			saved = errno == EEXIST ? EBUSY : errno; /* spliced already */
		else
			p->cookie[i] = cookie[i];
	}
	/* Both into `redir` before either gets the verdict, so that no redirect misses. */
	int maps[2] = { e->redir, e->verd };
	for (int m = 0; m < 2 && !saved; m++) {
		for (int i = 0; i < 2 && !saved; i++) {
			uint32_t key = 2 * n + i;
			uint64_t value = (uint64_t)fd[i];

			if (bpf_map_update_elem(maps[m], &key, &value, BPF_ANY))
				saved = errno;
		}
	}
	/* Bytes that came in between the check above and the verdict stay on their socket;
	 * the next ones push them through, or they poll readable and the caller takes the pair
	 * back. Giving it back here would wait for what the verdict already took, and toward
	 * a reader whose window is full, that never comes (splice_check: late bytes). */
	if (saved) {
		if (take_out(e, n, 1) == 0)
			errno = saved;
		return -1;
	}
	*id = n;
	return 0;
}

int splice_bytes(struct splice_engine *e, unsigned id, uint64_t *a_to_b, uint64_t *b_to_a)
{
	if (!valid(e, id)) {
		errno = EINVAL;
		return -1;
	}
	*a_to_b = load64(&e->dirs[2 * id].out);
	*b_to_a = load64(&e->dirs[2 * id + 1].out);
	return 0;
}

int splice_queued(struct splice_engine *e, unsigned id, int from, uint64_t *queued)
{
	if (!valid(e, id) || (from != 0 && from != 1)) {
		errno = EINVAL;
		return -1;
	}
	const struct splice_dir *d = &e->dirs[2 * id + from];
	uint64_t sent = load64(&d->out);
	int err = __atomic_load_n(&d->err, __ATOMIC_ACQUIRE);

	if (err) {
		errno = err;
		return -1;
	}
	*queued = load64(&d->in) - sent;
	return 0;
}

uint64_t splice_window_full(struct splice_engine *e, unsigned id, int from)
{
	return valid(e, id) && (from == 0 || from == 1)
		       ? load64(&e->dirs[2 * id + from].window_full)
		       : 0;
}

int splice_wake_fd(struct splice_engine *e)
{
	return ring_buffer__epoll_fd(e->crossed);
}

void splice_wake_clear(struct splice_engine *e)
{
	ring_buffer__consume(e->crossed);
}

int splice_drained(struct splice_engine *e, unsigned id, int from)
{
	uint64_t queued;

	if (splice_queued(e, id, from, &queued) < 0)
		return -1;
	if (queued)
		return 0;
	if (waiting(e->pairs[id].fd[from])) {
		errno = EBUSY;
		return -1;
	}
	return 1;
}

void splice_remove(struct splice_engine *e, unsigned id)
{
	if (valid(e, id))
		take_out(e, id, 0);
}

void splice_pause(struct splice_engine *e, unsigned id)
{
	if (!valid(e, id))
		return;
	stop_verdicts(e, id);
	wait_verdicts(e, id);
}

ssize_t splice_rescued(struct splice_engine *e, unsigned id, int from, const uint8_t **bytes)
{
	if (!valid(e, id) || (from != 0 && from != 1)) {
		errno = EINVAL;
		return -1;
	}
	if (!none_lost(e, id)) {
		errno = EIO;
		return -1;
	}
	*bytes = e->pairs[id].rescued[from];
	return (ssize_t)e->pairs[id].rescued_len[from];
}

int splice_release(struct splice_engine *e, unsigned id, uint64_t *a_to_b, uint64_t *b_to_a)
{
	if (!valid(e, id)) {
		errno = EINVAL;
		return -1;
	}
	if (!all_sent(e, id)) {
		errno = EAGAIN;
		return -1;
	}
	/* all sent, and no verdict runs since splice_pause: the counts are final */
	splice_bytes(e, id, a_to_b, b_to_a);
	finish(e, id);
	return 0;
}
