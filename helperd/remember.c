#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helperd.h"
#include "vmshim/log.h"
#include "remember.h"

#define FILE_NAME "listeners"
#define MAGIC 0x324c5356u /* "VSL2": with the owner */
#define MAX_RECORDS 65536

struct file_header {
	uint32_t magic;
	uint32_t count;
};

static void path_of(char *buf, size_t len, const char *suffix)
{
	snprintf(buf, len, "%s/" FILE_NAME "%s", helperd.rundir, suffix);
}

int remember_listeners(const struct listener_record *records, size_t n)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	struct file_header h = {.magic = MAGIC, .count = (uint32_t)n};

	path_of(path, sizeof(path), "");
	path_of(tmp, sizeof(tmp), ".new");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    write(fd, records, n * sizeof(*records)) != (ssize_t)(n * sizeof(*records)) ||
	    close(fd) < 0 || rename(tmp, path) < 0) {
		log_warn("cannot write %s: %m", path);
		if (fd >= 0)
			unlink(tmp);
		return -1;
	}
	return 0;
}

size_t recall_listeners(struct listener_record **records)
{
	char path[PATH_MAX];
	struct file_header h = {0};
	struct stat st;
	size_t n = 0;

	*records = NULL;
	path_of(path, sizeof(path), "");
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	/* Only a file of our own, in the form we write, is believed. */
	if (fstat(fd, &st) == 0 && st.st_uid == geteuid() && !(st.st_mode & 077) &&
	    read(fd, &h, sizeof(h)) == (ssize_t)sizeof(h) && h.magic == MAGIC &&
	    h.count <= MAX_RECORDS &&
	    st.st_size == (off_t)(sizeof(h) + h.count * sizeof(**records))) {
		*records = calloc(h.count ? h.count : 1, sizeof(**records));
		if (*records && read(fd, *records, h.count * sizeof(**records)) ==
					(ssize_t)(h.count * sizeof(**records)))
			n = h.count;
	}
	if (!n && h.count) {
		log_warn("%s is not a list of listeners: ignored", path);
		free(*records);
		*records = NULL;
	}
	close(fd);
	return n;
}
