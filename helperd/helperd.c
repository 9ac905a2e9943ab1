#include <stdlib.h>

#include "helperd.h"
#include "vmshim/log.h"
#include "peers.h"
#include "publish.h"
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
	free(body);
	return rc;
}
