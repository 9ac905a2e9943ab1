/* PLACEHOLDER until the sockmap engine lands (helper branch `sockmap`): never splices. */
#include <errno.h>
#include <stdio.h>

#include "splice.h"

int splice_open(struct splice_engine **out, unsigned max_pairs, char *err, size_t errlen)
{
	(void)out;
	(void)max_pairs;
	snprintf(err, errlen, "built without the sockmap engine");
	return -1;
}

int splice_add(struct splice_engine *e, int a, int b, unsigned *id)
{
	(void)e, (void)a, (void)b, (void)id;
	errno = EOPNOTSUPP;
	return -1;
}

int splice_bytes(struct splice_engine *e, unsigned id, uint64_t *a_to_b, uint64_t *b_to_a)
{
	(void)e, (void)id, (void)a_to_b, (void)b_to_a;
	return -1;
}

int splice_drained(struct splice_engine *e, unsigned id, int from)
{
	(void)e, (void)id, (void)from;
	return 1;
}

void splice_remove(struct splice_engine *e, unsigned id)
{
	(void)e, (void)id;
}

void splice_close(struct splice_engine *e)
{
	(void)e;
}
