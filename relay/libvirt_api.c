/* Loading libvirt and libxml2 at run time (libvirt_api.h). */
#include <dlfcn.h>
#include <stdio.h>

#include "libvirt_api.h"

struct libvirt_api lv;

/* The library of soname name, or NULL with why in err. */
static void *open_library(const char *name, const char *package, char *err, size_t errlen)
{
	void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);

	if (!lib)
		snprintf(err, errlen, "cannot load %s (Debian's %s): %s", name, package, dlerror());
	return lib;
}

int libvirt_api_load(char *err, size_t errlen)
{
	void *virt = open_library("libvirt.so.0", "libvirt0", err, errlen);
	void *xml = virt ? open_library("libxml2.so.2", "libxml2", err, errlen) : NULL;
	const char *missing = NULL;

	if (!xml)
		return -1;
	/* never closed: libvirt's threads and handlers live as long as the relay */
#define LOAD(lib, f)                                                                              \
	if (!missing && !(lv.f = (__typeof__(f) *)dlsym(lib, #f)))                                \
		missing = #f;
#define LOAD_VIRT(f) LOAD(virt, f)
#define LOAD_XML(f) LOAD(xml, f)
	LIBVIRT_CALLS(LOAD_VIRT)
	LIBXML_CALLS(LOAD_XML)
	if (missing) {
		snprintf(err, errlen, "%s is not in the libvirt or libxml2 found", missing);
		return -1;
	}
	return 0;
}
