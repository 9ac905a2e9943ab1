/* Code of common/ that also goes into libvmshim.so makes its libc calls through REAL():
 * inside the library the shim's hooks have libc's names, and a call from there would reach
 * them. The Makefile builds the shim's copy with REAL(call) as real.call (shim/shim.h);
 * everywhere else it is the call itself. */
#ifndef VMSHIM_REAL_H
#define VMSHIM_REAL_H

#ifndef REAL
#define REAL(call) call
#endif

#endif
