/* Whoever can change a policy file holds root's say (statements.h). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statements.h"

int policy_file_trusted(FILE *f, const char *path, const char *what, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fileno(f), &st) < 0)
		policy_error(err, errlen, path, 0, "cannot stat: %s", strerror(errno));
	else if (st.st_uid != 0 && st.st_uid != geteuid())
		policy_error(err, errlen, path, 0, "belongs to uid %u: none but root may be able "
			     "to change %s", (unsigned)st.st_uid, what);
	else if (st.st_mode & 022)
		policy_error(err, errlen, path, 0, "writable by its group or others (mode %03o): "
			     "none but root may be able to change %s",
			     (unsigned)(st.st_mode & 0777), what);
	else
		return 0;
	return -1;
}
