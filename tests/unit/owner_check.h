/* Shared by the unit tests of the two policy loaders (include after cmocka.h). */
#ifndef VMSHIM_TEST_OWNER_CHECK_H
#define VMSHIM_TEST_OWNER_CHECK_H

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whoever can change a policy file holds root's say: a loader must refuse a file its group
 * or others may write, or another user's, and take one of root's at mode 644. load(path,
 * err, errlen) loads text's file as the loader under test does (and frees what it got):
 * 0, or -1 with the loader's message in err. */
static inline void expect_owner_checked(int (*load)(const char *, char *, size_t),
					const char *text)
{
	char path[] = "/tmp/vmshim-owner-XXXXXX", err[512];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, 0664), 0);
	assert_int_equal(load(path, err, sizeof err), -1);
	assert_non_null(strstr(err, "writable by its group or others (mode 664)"));
	assert_int_equal(strncmp(err, path, strlen(path)), 0);
	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(load(path, err, sizeof err), -1);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(load(path, err, sizeof err), 0);
	if (geteuid() == 0) { /* only root can give a file away */
		assert_int_equal(chown(path, 65534, 65534), 0);
		assert_int_equal(load(path, err, sizeof err), -1);
		assert_non_null(strstr(err, "belongs to uid 65534"));
	}
	unlink(path);
}

#endif
