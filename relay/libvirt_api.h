/* libvirt's client library and libxml2, loaded only by a relay whose host policy says
 * `libvirt` (relay/libvirt.c): the relay, and every `vmshim-relay status`, otherwise start
 * with 6 shared libraries, not 59. The calls are the headers' own declarations, so each is
 * typed as if linked. */
#ifndef RELAY_LIBVIRT_API_H
#define RELAY_LIBVIRT_API_H

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stddef.h>

#define LIBVIRT_CALLS(X)                                                                          \
	X(virInitialize)                                                                          \
	X(virSetErrorFunc)                                                                        \
	X(virEventRegisterDefaultImpl)                                                            \
	X(virEventRunDefaultImpl)                                                                 \
	X(virEventAddHandle)                                                                      \
	X(virEventRemoveHandle)                                                                   \
	X(virEventAddTimeout)                                                                     \
	X(virEventUpdateTimeout)                                                                  \
	X(virEventRemoveTimeout)                                                                  \
	X(virConnectOpenReadOnly)                                                                 \
	X(virConnectClose)                                                                        \
	X(virConnectRegisterCloseCallback)                                                        \
	X(virConnectUnregisterCloseCallback)                                                      \
	X(virConnectDomainEventRegisterAny)                                                       \
	X(virConnectDomainEventDeregisterAny)                                                     \
	X(virConnectListAllDomains)                                                               \
	X(virDomainGetXMLDesc)                                                                    \
	X(virDomainGetName)                                                                       \
	X(virDomainGetUUIDString)                                                                 \
	X(virDomainFree)

#define LIBXML_CALLS(X)                                                                           \
	X(xmlInitParser)                                                                          \
	X(xmlReadMemory)                                                                          \
	X(xmlFreeDoc)                                                                             \
	X(xmlXPathNewContext)                                                                     \
	X(xmlXPathFreeContext)                                                                    \
	X(xmlXPathEvalExpression)                                                                 \
	X(xmlXPathFreeObject)

#define LIBVIRT_API_MEMBER(f) __typeof__(f) *f;
struct libvirt_api {
	LIBVIRT_CALLS(LIBVIRT_API_MEMBER)
	LIBXML_CALLS(LIBVIRT_API_MEMBER)
};
#undef LIBVIRT_API_MEMBER

extern struct libvirt_api lv;

/* Loads both libraries and every call: 0, or -1 with why in err. */
int libvirt_api_load(char *err, size_t errlen);

#endif
