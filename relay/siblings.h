/* Guests that asked whom the host says their siblings are (relayproto.h, ASK_SIBLINGS): each
 * is told at once, and again whenever the policy in force changes (a reload, libvirt's
 * domains). Only a guest's helperd may ask (host_helperd_port: session.c refuses the rest),
 * so one such connection per guest, and a new one replaces the old (a helperd that started
 * again). A guest that is gone from the policy in force, that sends anything more,
 * or that does not read what it is told, loses its connection; its helperd asks again. */
#ifndef RELAY_SIBLINGS_H
#define RELAY_SIBLINGS_H

#include <stddef.h>
#include <stdio.h>

/* Takes over fd, a connection from guest `guest` of the policy in force that has asked:
 * answers OK and the list. */
void siblings_take(int fd, int guest);

/* The policy in force changed (map: regrant_map's, from the old one's guests to the new
 * one's): every guest still there is told its siblings again, the others let go. */
void siblings_regrant(const int *map, size_t old_n);

/* Lets every connection go. */
void siblings_close_all(void);

/* For status: how many guests are following. */
size_t siblings_following(void);

#endif
