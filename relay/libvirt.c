/* Following libvirt from a thread of its own (libvirt.h). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "libvirt.h"
#include "libvirt_api.h"
#include "statements.h"
#include "vmshim/log.h"

#define RECONNECT_MS 1000

/* What the thread hands over, under lock. */
static struct {
	pthread_mutex_t lock;
	struct host_domain *latest; /* not yet taken */
	size_t n_latest;
	bool fresh, connected;
	unsigned long lists;
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The thread's own. */
static struct {
	char uri[256];
	pthread_t thread;
	bool running;
	int wake, stop; /* eventfds: to the relay's loop, and from it */
	bool stopping, lost, failing; /* failing: said so, until connected again */
	char error[256];              /* libvirt's last error message */
	virConnectPtr conn;
	int lifecycle, added, removed; /* event callback ids; -1: none */
	int timer;                     /* connects, or lists, when it fires */
} me = {.wake = -1, .stop = -1, .lifecycle = -1, .added = -1, .removed = -1, .timer = -1};

/* libvirt prints its errors to stderr unless told otherwise: the thread keeps the last one
 * and says it once when the connection fails (a libvirtd that is down fails every
 * reconnect). */
static void on_libvirt_error(void *opaque, virErrorPtr e)
{
	(void)opaque;
	snprintf(me.error, sizeof me.error, "%s", e && e->message ? e->message : "error");
}

/* The live CID in a domain's XML (/domain/devices/vsock/cid/@address): 0, or -1 if it has
 * none. */
static int vsock_cid(const char *xml, uint32_t *cid)
{
	xmlDocPtr doc = lv.xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
				      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	xmlXPathContextPtr ctx = doc ? lv.xmlXPathNewContext(doc) : NULL;
	xmlXPathObjectPtr o = ctx ? lv.xmlXPathEvalExpression(
					    BAD_CAST "string(/domain/devices/vsock/cid/@address)", ctx)
				  : NULL;
	uint64_t v;
	int rc = -1;

	if (o && o->type == XPATH_STRING && o->stringval &&
	    policy_parse_number((const char *)o->stringval, &v) == 0 && v <= UINT32_MAX) {
		*cid = (uint32_t)v;
		rc = 0;
	}
	lv.xmlXPathFreeObject(o);
	lv.xmlXPathFreeContext(ctx);
	lv.xmlFreeDoc(doc);
	return rc;
}

/* Hands a list (NULL: none new) and whether it is connected to the relay's loop. */
static void publish(struct host_domain *domains, size_t n, bool connected)
{
	uint64_t one = 1;

	pthread_mutex_lock(&shared.lock);
	if (domains) {
		free(shared.latest);
		shared.latest = domains;
		shared.n_latest = n;
		shared.fresh = true;
		shared.lists++;
	}
	shared.connected = connected;
	pthread_mutex_unlock(&shared.lock);
	/* an eventfd's counter only overflows after 2^64 - 2 writes */
	(void)!write(me.wake, &one, sizeof one);
}

/* The running domains with a vsock CID. 0, or -1 (libvirtd did not answer). */
static int list_domains(struct host_domain **out, size_t *count)
{
	virDomainPtr *doms = NULL;
	int n = lv.virConnectListAllDomains(me.conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	struct host_domain *v = n >= 0 ? calloc((size_t)n + 1, sizeof *v) : NULL;
	size_t m = 0;

	for (int i = 0; i < (n > 0 ? n : 0); i++) {
		char *xml = v ? lv.virDomainGetXMLDesc(doms[i], 0) : NULL;
		const char *name = lv.virDomainGetName(doms[i]);
		/* one that stopped meanwhile has no XML: its stop comes as an event */
		if (xml && name && vsock_cid(xml, &v[m].cid) == 0 &&
		    lv.virDomainGetUUIDString(doms[i], v[m].uuid) == 0) {
			snprintf(v[m].name, sizeof v[m].name, "%s", name);
			m++;
		}
		free(xml);
		lv.virDomainFree(doms[i]);
	}
	free(doms);
	if (!v)
		return -1;
	*out = v;
	*count = m;
	return 0;
}

static void list_soon(void)
{
	lv.virEventUpdateTimeout(me.timer, 0);
}

static void on_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
	(void)c, (void)d, (void)event, (void)detail, (void)opaque;
	list_soon(); /* not here: a call to libvirtd inside its own callback */
}

static void on_device(virConnectPtr c, virDomainPtr d, const char *alias, void *opaque)
{
	(void)c, (void)d, (void)alias, (void)opaque;
	list_soon();
}

static void on_close(virConnectPtr c, int reason, void *opaque)
{
	(void)c, (void)opaque;
	log_warn("libvirt: the connection to libvirtd closed (reason %d); reconnecting every %d ms",
		 reason, RECONNECT_MS);
	me.lost = true;
	list_soon();
}

static void disconnect(void)
{
	if (!me.conn)
		return;
	int *ids[] = {&me.lifecycle, &me.added, &me.removed};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		if (*ids[i] >= 0)
			lv.virConnectDomainEventDeregisterAny(me.conn, *ids[i]);
		*ids[i] = -1;
	}
	lv.virConnectUnregisterCloseCallback(me.conn, on_close);
	lv.virConnectClose(me.conn);
	me.conn = NULL;
	me.lost = false;
}

static int connect_libvirtd(void)
{
	if (!(me.conn = lv.virConnectOpenReadOnly(me.uri)))
		return -1;
	me.lifecycle = lv.virConnectDomainEventRegisterAny(
		me.conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
		NULL, NULL);
	me.added = lv.virConnectDomainEventRegisterAny(me.conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
						    VIR_DOMAIN_EVENT_CALLBACK(on_device), NULL, NULL);
	me.removed = lv.virConnectDomainEventRegisterAny(
		me.conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, VIR_DOMAIN_EVENT_CALLBACK(on_device),
		NULL, NULL);
	if (me.lifecycle < 0 || me.added < 0 || me.removed < 0 ||
	    lv.virConnectRegisterCloseCallback(me.conn, on_close, NULL, NULL) < 0) {
		disconnect();
		return -1;
	}
	log_info("libvirt: connected to %s", me.uri);
	return 0;
}

/* Connects if it must, then lists; on failure, again in RECONNECT_MS. */
static void on_timer(int timer, void *opaque)
{
	struct host_domain *domains;
	size_t n;

	(void)timer, (void)opaque;
	lv.virEventUpdateTimeout(me.timer, -1);
	if (me.lost) {
		disconnect();
		publish(NULL, 0, false);
	}
	if ((me.conn || connect_libvirtd() == 0) && list_domains(&domains, &n) == 0) {
		me.failing = false;
		publish(domains, n, true);
		return;
	}
	if (me.conn) { /* it answered the connect, not the list: start again */
		disconnect();
		publish(NULL, 0, false);
	}
	if (!me.failing)
		log_warn("libvirt: no list of domains from %s (%s); trying every %d ms, with the "
			 "last list in force meanwhile",
			 me.uri, me.error, RECONNECT_MS);
	me.failing = true;
	lv.virEventUpdateTimeout(me.timer, RECONNECT_MS);
}

static void on_stop(int watch, int fd, int events, void *opaque)
{
	(void)watch, (void)fd, (void)events, (void)opaque;
	me.stopping = true;
}

static void *follow(void *arg)
{
	(void)arg;
	int stop_watch = lv.virEventAddHandle(me.stop, VIR_EVENT_HANDLE_READABLE, on_stop, NULL, NULL);

	me.timer = lv.virEventAddTimeout(0, on_timer, NULL, NULL);
	if (stop_watch < 0 || me.timer < 0)
		log_err("libvirt: cannot start libvirt's event loop: not following %s", me.uri);
	else
		while (!me.stopping && lv.virEventRunDefaultImpl() == 0)
			;
	disconnect();
	if (me.timer >= 0)
		lv.virEventRemoveTimeout(me.timer);
	if (stop_watch >= 0)
		lv.virEventRemoveHandle(stop_watch);
	return NULL;
}

int libvirt_start(const char *uri)
{
	char err[512];

	snprintf(me.uri, sizeof me.uri, "%s", uri);
	if (libvirt_api_load(err, sizeof err) < 0) {
		log_err("libvirt: %s", err);
		return -1;
	}
	lv.xmlInitParser();
	lv.virSetErrorFunc(NULL, on_libvirt_error);
	if (lv.virInitialize() < 0 || lv.virEventRegisterDefaultImpl() < 0)
		return -1;
	me.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	me.stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (me.wake < 0 || me.stop < 0 || pthread_create(&me.thread, NULL, follow, NULL) != 0) {
		libvirt_stop();
		return -1;
	}
	me.running = true;
	return 0;
}

int libvirt_fd(void)
{
	return me.wake;
}

bool libvirt_take(struct host_domain **domains, size_t *n)
{
	uint64_t count;
	bool fresh;

	(void)!read(me.wake, &count, sizeof count); /* EAGAIN: woken for another list */
	pthread_mutex_lock(&shared.lock);
	fresh = shared.fresh;
	if (fresh) {
		*domains = shared.latest;
		*n = shared.n_latest;
		shared.latest = NULL;
		shared.fresh = false;
	}
	pthread_mutex_unlock(&shared.lock);
	return fresh;
}

void libvirt_state(bool *connected, unsigned long *lists)
{
	pthread_mutex_lock(&shared.lock);
	*connected = shared.connected;
	*lists = shared.lists;
	pthread_mutex_unlock(&shared.lock);
}

void libvirt_stop(void)
{
	uint64_t one = 1;

	if (me.running && write(me.stop, &one, sizeof one) == sizeof one)
		pthread_join(me.thread, NULL);
	me.running = false;
	if (me.wake >= 0)
		close(me.wake);
	if (me.stop >= 0)
		close(me.stop);
	me.wake = me.stop = -1;
	free(shared.latest);
	shared.latest = NULL;
	shared.fresh = false;
}
