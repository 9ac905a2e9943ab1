#!/usr/bin/env python3
"""Hostile peer helperds that announce as many ports as a frame holds (issue 15, item 10):
each connects to a helperd's control port from the privileged port of its own block, as a
peer's helperd does, and announces TCP ports 10000 on, 7546 of them, no address.

  peer_announce.py CONTROL_PORT SOURCE_PORT... GO
      announces from each source port to CID 1's CONTROL_PORT, again every 0.5 s (the
      peers stay up), prints "announcing" once all did, until the file GO appears (at most
      120 s).
"""
import os
import socket
import struct
import sys
import time

control, sources, go = int(sys.argv[1]), [int(p) for p in sys.argv[2:-1]], sys.argv[-1]
MAGIC, VERSION, ANNOUNCE, MAX_PORTS = 0x564D5350, 1, 1, 7546
payload = struct.pack("!III", 0, MAX_PORTS, 0) + struct.pack(f"!{MAX_PORTS}H",
                                                               *range(10000, 10000 + MAX_PORTS))
frame = struct.pack("!IBBHI", MAGIC, VERSION, ANNOUNCE, 0, len(payload)) + payload
socks = []
for src in sources:
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.bind((socket.VMADDR_CID_ANY, src))
    s.settimeout(10)
    s.connect((1, control))
    socks.append(s)
deadline = time.monotonic() + 120
said = False
while not os.path.exists(go) and time.monotonic() < deadline:
    for s in socks:
        s.sendall(frame)
    if not said:
        print("announcing", flush=True)
        said = True
    time.sleep(0.5)
