#ifndef VMSHIM_POLICY_WATCH_H
#define VMSHIM_POLICY_WATCH_H

/* Calls on_change whenever the policy file at path is written, replaced or created (editors
 * and configuration tools often write a new file and rename it over the old one, so the
 * directory is watched). A regular file that appears is read once its writer closes it, not
 * when it is created (empty), so a file linked in by ln is seen at its next change or
 * SIGHUP. 0, or -1 (logged: SIGHUP still works). */
int policy_watch_start(const char *path, void (*on_change)(void));

void policy_watch_stop(void);

#endif
