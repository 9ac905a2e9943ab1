/* The policy in force (reload.c). */
#ifndef HELPERD_RELOAD_H
#define HELPERD_RELOAD_H

#include <stddef.h>

/* Loads and checks the policy; on success it becomes the one in force. 0, or -1 with
 * "FILE:LINE: what is wrong" in err. */
int helperd_load_policy(char *err, size_t errlen);

/* Logs what the policy in force says, and its risks. */
void helperd_describe(void);

/* Loads the policy again and puts it in force; one that does not load is refused and
 * logged, and the one in force stays. */
void helperd_reload(void);

#endif
