#include <stdbool.h>
#include <stdlib.h>

#include "guestwide.h"
#include "helperd.h"
#include "vmshim/log.h"
#include "peers.h"
#include "publish.h"
#include "reload.h"
#include "siblings.h"
#include "table_build.h"

struct helperd helperd = {.self = -1};

int helperd_publish(void)
{
	uint32_t size;
	void *body = table_build(helperd.policy, helperd.self, peers_views(), &size);

	if (!body) {
		log_err("out of memory building the table");
		return -1;
	}
	int rc = publish_table(helperd.rundir, body, size);
	guestwide_mirror(body, size);
	free(body);
	return rc;
}

/* Whether `what` was marked; unmarks it. */
static bool take(enum helperd_change what)
{
	bool marked = helperd.changed & what;

	helperd.changed &= ~(unsigned)what;
	return marked;
}

/* A new policy first: it marks the rest. Then the sweep: it may mark the served ports and
 * the registrations. */
void helperd_before_sleep(void)
{
	if (take(CHANGED_HOST_PEERS))
		helperd_reload();
	if (take(CHANGED_LISTENER_MAY_BE_GONE))
		siblings_sweep();
	if (take(CHANGED_SERVED_PORTS)) {
		uint64_t v4[POLICY_PORT_WORDS], v6[POLICY_PORT_WORDS];
		siblings_served(v4, v6);
		peers_announce_served(v4, v6);
	}
	if (take(CHANGED_REGISTRATIONS))
		siblings_save();
	if (take(CHANGED_TABLE_INPUTS))
		helperd_publish();
}
