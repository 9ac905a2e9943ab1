/* The control connections peers open to announce themselves: this guest's control port
 * takes them only from a privileged port of a peer's helperd, and reads each without
 * blocking, a bounded number of frames per wake-up, so no peer can stall helperd. */
#ifndef HELPERD_INBOUND_H
#define HELPERD_INBOUND_H

struct inbound;

/* Listens on this guest's control port, or again on a new one after a policy change.
 * 0 or -1 (logged). */
int inbound_listen(void);

void inbound_close(struct inbound *in);

/* Reads what waits on in now, as its event would (a bounded number of frames). */
void inbound_read_waiting(struct inbound *in);

/* Closes the control port (helperd stopping). */
void inbound_stop(void);

#endif
