/* Forwarding in the kernel: a connected pair of sockets spliced through a BPF sockmap, so
 * that bytes never cross into user space (kernels with vsock in sockmap: 6.4 and later). */
#ifndef RELAY_SPLICE_H
#define RELAY_SPLICE_H

#include <stddef.h>
#include <stdint.h>

struct splice_engine;

/* Loads the BPF program and maps. -1 with a reason in err when this kernel cannot splice. */
int splice_open(struct splice_engine **out, unsigned max_pairs, char *err, size_t errlen);

/* Hands a connected pair to the kernel: 0, or -1 with errno and nothing changed. */
int splice_add(struct splice_engine *e, int a, int b, unsigned *id);

/* Bytes the kernel has forwarded a->b and b->a so far. */
int splice_bytes(struct splice_engine *e, unsigned id, uint64_t *a_to_b, uint64_t *b_to_a);

/* Whether everything that arrived on `from` (0: a, 1: b) has been sent on the other. */
int splice_drained(struct splice_engine *e, unsigned id, int from);

void splice_remove(struct splice_engine *e, unsigned id);
void splice_close(struct splice_engine *e);

#endif
