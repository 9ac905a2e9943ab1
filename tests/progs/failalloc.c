/* Preloaded ahead of the shim: calloc() of exactly FAILALLOC_SIZE bytes fails with ENOMEM,
 * every other allocation is glibc's. With the size of one page of the shim's descriptor
 * table (4096 slots of 8 bytes), the shim runs out of memory exactly where it needs a slot
 * (issue 16, item 8). Not for sanitizer builds: they bring their own allocator. */
#include <errno.h>
#include <stdlib.h>

void *__libc_calloc(size_t n, size_t size);

void *calloc(size_t n, size_t size)
{
	static long fail_size = -1;

	if (fail_size < 0) {
		const char *s = getenv("FAILALLOC_SIZE");
		fail_size = s ? atol(s) : 0;
	}
	if (fail_size > 0 && n * size == (size_t)fail_size) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(n, size);
}
