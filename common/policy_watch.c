/* Reloading a policy when its file changes, through inotify on its directory (helperd and
 * vmshim-relay). */
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "vmshim/policy_watch.h"

static struct watch watch = {.fd = -1};
static char name[NAME_MAX + 1];
static char *watched; /* the file's path */
static void (*changed)(void);

/* Whether the event is about the file as it will be read. A regular file just created is
 * still being written (an empty policy would be read, and may be valid): its writer's close
 * says when it is whole. Other entries, a symbolic link, are whole when they appear. */
static bool whole(const struct inotify_event *e)
{
	struct stat st;

	return !(e->mask & IN_CREATE) || lstat(watched, &st) < 0 || !S_ISREG(st.st_mode);
}

static void on_events(struct watch *w, uint32_t events)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool ours = false;
	ssize_t n;

	(void)events;
	while ((n = read(w->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const void *)p;
			if (e->len && strcmp(e->name, name) == 0 && whole(e))
				ours = true;
			p += sizeof(*e) + e->len;
		}
	}
	if (ours) /* once for a burst of events: the file is read whole each time */
		changed();
}

int policy_watch_start(const char *path, void (*on_change)(void))
{
	char *copy_dir = strdup(path), *copy_base = strdup(path);
	int rc = -1;

	free(watched);
	watched = strdup(path);
	if (!copy_dir || !copy_base || !watched)
		goto out;
	snprintf(name, sizeof(name), "%s", basename(copy_base));
	changed = on_change;
	watch = (struct watch){.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), .on_event = on_events};
	if (watch.fd < 0 ||
	    inotify_add_watch(watch.fd, dirname(copy_dir),
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0 ||
	    loop_add(&watch, EPOLLIN) < 0) {
		log_warn("cannot watch %s for changes (%m): reload it with SIGHUP", path);
		if (watch.fd >= 0)
			close(watch.fd);
		watch.fd = -1;
		goto out;
	}
	rc = 0;
out:
	free(copy_dir);
	free(copy_base);
	return rc;
}

void policy_watch_stop(void)
{
	if (watch.fd >= 0)
		close(watch.fd);
	watch.fd = -1;
	free(watched);
	watched = NULL;
}
