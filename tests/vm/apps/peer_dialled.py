#!/usr/bin/env python3
"""A hostile peer guest's DIALLED (include/vmshim/dialled.h): one vsock connection from its
own port block to a sibling port of the other guest, as its shim would make it, that says
whatever it is given instead of the address its application dialled.

  peer_dialled.py CID PORT SOURCE HEX
      connects from vsock port SOURCE to CID:PORT, sends the bytes HEX (nothing if "-"),
      then waits (up to 6 s) for the hand-over byte that the server's shim sends once its
      application has accepted the connection; prints "handed over", or "closed" if the
      other end closed it first, or "nothing" if neither came.
"""
import socket
import sys

cid, port, source, msg = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, source))
s.settimeout(6)
s.connect((cid, port))
if msg != "-":
    s.sendall(bytes.fromhex(msg))
try:
    got = s.recv(1)
    print("handed over" if got == b"\x06" else "closed" if not got else f"sent {got!r}")
except ConnectionResetError:
    print("closed")
except (TimeoutError, socket.timeout):
    print("nothing")
