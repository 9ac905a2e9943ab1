/* The shims' counter page: a memfd sealed at its size, mapped here for reading. */
#include <fcntl.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

#include "counters.h"
#include "vmshim/log.h"

static int fd = -1;
static struct vmshim_counters *page;

int counters_open(void)
{
	fd = memfd_create("vmshim-counters", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, VMSHIM_COUNTERS_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
	    (page = mmap(NULL, VMSHIM_COUNTERS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
		    MAP_FAILED) {
		log_warn("no counters for the shims: %m");
		if (fd >= 0)
			close(fd);
		fd = -1;
		page = NULL;
		return -1;
	}
	page->magic = VMSHIM_COUNTERS_MAGIC;
	return 0;
}

int counters_fd(void)
{
	return fd;
}

const struct vmshim_counters *counters_page(void)
{
	return page;
}

void counters_close(void)
{
	if (!page)
		return;
	munmap(page, VMSHIM_COUNTERS_SIZE);
	close(fd);
	page = NULL;
	fd = -1;
}
