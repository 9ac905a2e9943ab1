#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uthash.h>

#include "channel.h"
#include "vmshim/fdpass.h"
#include "vmshim/log.h"

/* Room for a listener's whole share of helperd's pool (doorbell.c) of small messages, each
 * of which the kernel counts at about a kilobyte. */
#define CHANNEL_BUFFER (4 << 20)

struct channel_key {
	struct vmshim_endpoint bound;
	uid_t uid;
};

struct channel {
	struct channel_key key;
	int sender, receiver; /* helperd keeps the receiver to hand it out and to take back */
	unsigned refs;
	uint8_t secret[VMSHIM_SECRET_LEN];
	UT_hash_handle hh;
};

static struct channel *channels;

/* Only helperd writes into a channel: a shim's end cannot send (shut down here). */
static int open_pair(struct channel *ch)
{
	int pair[2], size = CHANNEL_BUFFER;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) < 0)
		return -1;
	if ((setsockopt(pair[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0 &&
	     setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0) ||
	    shutdown(pair[0], SHUT_RD) < 0) {
		close(pair[0]);
		close(pair[1]);
		return -1;
	}
	ch->sender = pair[0];
	ch->receiver = pair[1];
	return 0;
}

struct channel *channel_get(const struct vmshim_endpoint *bound, uid_t uid)
{
	struct channel_key key;
	struct channel *ch;

	memset(&key, 0, sizeof(key)); /* hashed whole: no stray padding */
	key.bound = *bound;
	key.uid = uid;
	HASH_FIND(hh, channels, &key, sizeof(key), ch);
	if (ch)
		return channel_ref(ch);
	ch = calloc(1, sizeof(*ch));
	if (!ch || getrandom(ch->secret, sizeof(ch->secret), 0) != sizeof(ch->secret) ||
	    open_pair(ch) < 0) {
		log_warn("cannot make a channel for TCP port %u: %m", bound->port);
		free(ch);
		return NULL;
	}
	ch->key = key;
	ch->refs = 1;
	HASH_ADD(hh, channels, key, sizeof(ch->key), ch);
	return ch;
}

struct channel *channel_ref(struct channel *ch)
{
	ch->refs++;
	return ch;
}

void channel_put(struct channel *ch)
{
	if (!ch || --ch->refs)
		return;
	HASH_DEL(channels, ch);
	close(ch->sender);
	close(ch->receiver);
	free(ch);
}

int channel_receiver(const struct channel *ch)
{
	return ch->receiver;
}

const uint8_t *channel_secret(const struct channel *ch)
{
	return ch->secret;
}

int channel_send(struct channel *ch, const struct vmshim_endpoint *peer,
		 const struct vmshim_endpoint *local, int vs)
{
	struct vmshim_arrival a = {.magic = VMSHIM_ARRIVAL_MAGIC, .peer = *peer, .local = *local};

	return fdpass_send(ch->sender, &a, sizeof(a), vs) == (ssize_t)sizeof(a) ? 0 : -1;
}

void channel_take_back(struct channel *ch)
{
	struct vmshim_arrival a;
	int vs;

	if (fdpass_recv(ch->receiver, &a, sizeof(a), &vs) < 0 || vs < 0)
		return; /* a process took it already: then its doorbell's arrival is still there */
	shutdown(vs, SHUT_RDWR); /* helperd's own copy (doorbell.c) keeps it open a while */
	close(vs);
}
