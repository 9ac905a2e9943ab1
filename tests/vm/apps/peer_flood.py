#!/usr/bin/env python3
"""A hostile peer guest against a sibling's helperd (issue 15, item 7): vsock connections
from its own port block, as its shims would make them (each names HOST:TCP_PORT as the
address it dialled, include/vmshim/dialled.h), to a sibling port of the other guest, that
it never takes further: no shim waits for the hand-over, so each stays in the other
helperd's pool of connections waiting to be accepted.

  peer_flood.py CID PORT FIRST_SOURCE N GO HOST TCP_PORT
      opens N connections to CID:PORT from source ports FIRST_SOURCE on (one made again,
      at most 50 times, while the kernel resets it for a full accept queue; after 20
      connections in a row that could not be made, no more are tried), waits until
      the other end has closed what it will close, prints "opened O of N, held H (closed
      C by the other end)", then waits (up to 120 s) for the file GO to appear, closes
      them all and prints "closed all".
"""
import os
import resource
import socket
import struct
import sys
import time

cid, port, first, n, go = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                           int(sys.argv[4]), sys.argv[5])
dialled = (b"VMSD\x01\x04" + struct.pack(">H", int(sys.argv[7]))
           + socket.inet_aton(sys.argv[6]).ljust(16, b"\0"))
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64, n + 64))
socks = []
failed_in_a_row = 0
for i in range(n):
    if failed_in_a_row >= 20:
        break
    failed_in_a_row += 1
    for _ in range(50):
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.bind((socket.VMADDR_CID_ANY, first + i))
        s.settimeout(5)
        try:
            s.connect((cid, port))
            s.sendall(dialled)
            s.setblocking(False)  # closed() must not wait
            socks.append(s)
            failed_in_a_row = 0
            break
        except (ConnectionResetError, TimeoutError, socket.timeout):
            s.close()
            time.sleep(0.01)
        except OSError:
            s.close()
            break


def closed(s):
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


# The other end closes what it refuses as it accepts: wait until that count stands still.
count, since = -1, time.monotonic()
deadline = since + 30
while time.monotonic() < deadline:
    now = sum(closed(s) for s in socks)
    if now != count:
        count, since = now, time.monotonic()
    elif time.monotonic() - since > 1:
        break
    time.sleep(0.2)
print(f"opened {len(socks)} of {n}, held {len(socks) - count} (closed {count} by the other end)",
      flush=True)
deadline = time.monotonic() + 120
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.05)
for s in socks:
    s.close()
print("closed all", flush=True)
