/* The policy in force: the file, with the peers the relay told of where it says `peers
 * relay` (hostpeers.h), loaded at start, on SIGHUP, on a change of the file and on a new
 * list from the relay. */
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "helperd.h"
#include "hostpeers.h"
#include "peers.h"
#include "policy_risks.h"
#include "reload.h"
#include "siblings.h"
#include "vmshim/log.h"

/* This guest's CID, as the hypervisor set it, or VMADDR_CID_ANY if there is no vsock. */
static uint32_t local_cid(void)
{
	uint32_t cid = VMADDR_CID_ANY;
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
			cid = VMADDR_CID_ANY;
		close(fd);
	}
	return cid;
}

/* Which peer this guest is: --self, else the policy's `self`, else the name the relay
 * gives it (`peers relay`), else the one peer whose CID is ours. A policy without peers
 * needs none, nor one whose peers come from the relay while it has not said. */
static int find_self(const struct policy *policy, char *err, size_t errlen)
{
	if (helperd.self_name) {
		int i = policy_find_peer(policy, helperd.self_name);
		if (i < 0)
			snprintf(err, errlen, "%s: --self %s: no such peer", helperd.policy_path,
				 helperd.self_name);
		return i;
	}
	if (policy->self >= 0 || policy->n_peers == 0)
		return policy->self;
	if (policy->peers_from_relay && hostpeers_self())
		return policy_find_peer(policy, hostpeers_self());
	uint32_t cid = local_cid();
	int found = -1;
	for (size_t i = 0; i < policy->n_peers; i++) {
		if (policy->peers[i].cid != cid)
			continue;
		if (found >= 0) {
			found = -1;
			break;
		}
		found = (int)i;
	}
	if (found < 0)
		snprintf(err, errlen,
			 "%s: no `self` line, and no single peer has this guest's CID %u: "
			 "say which peer this guest is with `self NAME` or --self",
			 helperd.policy_path, cid);
	return found;
}

/* The file with the relay's siblings, if it says `peers relay` and the relay has said; the
 * file alone, and why, if they do not fit together (a sibling's block overlapping a peer's
 * of the file, say): what the host says cannot break what the file says. */
static struct policy *with_host_peers(struct policy *file)
{
	char *more = file->peers_from_relay ? hostpeers_text(file) : NULL;
	struct policy *merged;
	char err[512];

	if (!more)
		return file;
	int rc = policy_load_more(helperd.policy_path, more, &merged, err, sizeof err);
	free(more);
	if (rc < 0) {
		log_warn("the relay's siblings do not fit the policy, only its own peers are in "
			 "force: %s (the lines after the file's are the relay's)",
			 err);
		return file;
	}
	hostpeers_mark(file, merged);
	policy_free(file);
	return merged;
}

/* Loads and checks the policy file; on success it becomes the one in force. */
int helperd_load_policy(char *err, size_t errlen)
{
	struct policy *policy;

	if (policy_load(helperd.policy_path, &policy, err, errlen) < 0)
		return -1;
	policy = with_host_peers(policy);
	int self = find_self(policy, err, errlen);
	if (self < 0 && policy->n_peers > 0 && !policy->peers_from_relay) {
		policy_free(policy);
		return -1;
	}
	policy_free(helperd.policy);
	helperd.policy = policy;
	helperd.self = self;
	return 0;
}

void helperd_describe(void)
{
	const struct policy_peer *self = helperd_self();

	log_info("policy %s: %zu peers, this guest is %s", helperd.policy_path,
		 helperd.policy->n_peers, self ? self->name : "none of them");
	policy_warn_risks(helperd.policy, helperd.self);
}

void helperd_reload(void)
{
	char err[512];

	if (helperd_load_policy(err, sizeof(err)) < 0) {
		log_err("reload refused, keeping the policy in force: %s", err);
		return;
	}
	helperd_describe();
	peers_policy_changed();
	helperd_mark(CHANGED_TABLE_INPUTS);
	siblings_sync();
}
