/* Preloaded ahead of the shim: an anonymous mmap() of exactly FAILALLOC_SIZE bytes fails
 * with ENOMEM; every other one is the kernel's. With the size of one page of the shim's
 * descriptor table (4096 slots of 8 bytes, mapped with mmap so that a signal handler may
 * make one), the shim runs out of memory exactly where it needs a slot (issue 16, item 8).
 * Not for sanitizer builds: they bring their own allocator. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static long fail_size = -1;

	if (fail_size < 0) {
		const char *s = getenv("FAILALLOC_SIZE");
		fail_size = s ? atol(s) : 0;
	}
	if (fail_size > 0 && len == (size_t)fail_size && (flags & MAP_ANONYMOUS)) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}
