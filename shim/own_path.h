#ifndef SHIM_OWN_PATH_H
#define SHIM_OWN_PATH_H

/* Marks fd, a TCP socket the shim gives back to TCP after deciding on a sibling for it, as
 * its own (vmshim/ownpath.h): guest-wide mode leaves its connect alone. */
void own_path_mark(int fd);

#endif
