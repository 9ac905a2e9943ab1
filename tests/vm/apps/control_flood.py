#!/usr/bin/env python3
"""An unprivileged local user against helperd's control socket (open to every user).

  control_flood.py hold HELPERD_SOCKET N SECONDS
      opens N connections and sends nothing on them, holding them for up to SECONDS; prints
      how many helperd accepted and how many it closed before the end (issue 15, item 3)
  control_flood.py garbage HELPERD_SOCKET N
      sends N malformed requests, one per connection (issue 15, item 5)
"""
import select
import signal
import socket
import sys
import time


def connect(path):
    """A blocking connect: it waits while helperd's backlog is full."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    return s


def hold(path, n, seconds):
    held = []
    for _ in range(n):
        try:
            held.append(connect(path))
        except OSError:
            break
    print(f"opened {len(held)} idle connections", flush=True)
    deadline = time.monotonic() + seconds
    closed = set()
    while time.monotonic() < deadline and len(closed) < len(held):
        r, _, _ = select.select([s for s in held if s not in closed], [], [], 0.2)
        for s in r:
            try:
                if s.recv(64) == b"":
                    closed.add(s)
            except OSError:
                closed.add(s)
    print(f"helperd closed {len(closed)} of them within {seconds} s")


def garbage(path, n):
    """Sends as fast as it can: helperd may close a connection of a user with too many
    open before the request is on it."""
    sent = refused = 0
    for _ in range(n):
        with connect(path) as s:
            try:
                s.send(b"not a request")
                sent += 1
            except (BrokenPipeError, ConnectionResetError):
                refused += 1
    print(f"sent {sent} malformed requests, {refused} connections closed before")


if __name__ == "__main__":
    signal.alarm(30)  # bounded, whatever helperd does
    if sys.argv[1] == "hold":
        hold(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        garbage(sys.argv[2], int(sys.argv[3]))
